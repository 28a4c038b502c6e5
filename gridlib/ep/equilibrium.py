"""Equilibrium propagation proper: the one-sided and the symmetric (centered) estimate.

EP runs a free phase (beta = 0) to a fixed point ``s^0``, then a short nudged phase from ``s^0``
to ``s^beta``, and estimates the gradient of ``J(theta) = C(y^0(theta))`` as
``(dF/dtheta(s^beta) - dF/dtheta(s^0)) / beta``, i.e.::

    dJ/dW_k ~ -(1/beta) mean_b[ rho(h_{k-1}^beta)^T rho(h_k^beta) - rho(h_{k-1}^0)^T rho(h_k^0) ]

Both estimates are a :func:`contrast` between two relaxed states: one-sided EP (``"ep"``)
between ``s^beta`` and ``s^0``, divided by ``beta``; symmetric EP (``"symmetric"``, Laborieux et
al. 2021) between ``s^{+beta}`` and ``s^{-beta}``, divided by ``2 beta``. :func:`sample_beta`
draws the signed nudge of a minibatch, including the seed's sign bug.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from gridlib.ep.model import DEFAULT, EPConfig, Params, input_drive, option_error, relax, rho_fn


@partial(jax.jit, static_argnames=("cfg",))
def contrast(params: Params, x, s_a, s_b, scale, cfg: EPConfig = DEFAULT) -> Params:
    """The EP contrast between states ``s_a`` and ``s_b``, weighted per example by ``scale``.

    Returns ``G`` with ``G.W_k = -agg_b scale_b (rho(a_{k-1})^T rho(a_k) - rho(b_{k-1})^T
    rho(b_k))`` and ``G.b_k = -agg_b scale_b (rho(a_k) - rho(b_k))``, i.e.
    ``scale * (dE/dtheta(s_a) - dE/dtheta(s_b))`` aggregated over the batch (``agg`` = mean, or
    sum for the seed bug). ``scale``: scalar or ``(B,)``, e.g. ``1 / beta``.
    """
    rho, _ = rho_fn(cfg)
    bsz = x.shape[0]
    sc = jnp.broadcast_to(jnp.asarray(scale, x.dtype), (bsz,))
    if cfg.aggregate == "mean":
        norm = 1.0 / bsz
    elif cfg.aggregate == "sum":
        norm = 1.0
    else:
        raise option_error("aggregate", cfg.aggregate)
    ra = [rho(x)] + [rho(h) for h in s_a]
    rb = [rho(x)] + [rho(h) for h in s_b]
    gw, gb = [], []
    for k in range(1, len(ra)):
        if k == 1:  # x is clamped: rho(x)^T (rho(a_1) - rho(b_1)), one matmul instead of two
            hw = jnp.einsum("bi,bj->ij", ra[0], sc[:, None] * (ra[1] - rb[1]))
        else:
            hw = jnp.einsum("bi,bj->ij", ra[k - 1], sc[:, None] * ra[k]) - jnp.einsum(
                "bi,bj->ij", rb[k - 1], sc[:, None] * rb[k]
            )
        gw.append(-norm * hw)
        gb.append(-norm * jnp.sum(sc[:, None] * (ra[k] - rb[k]), axis=0))
    return Params(tuple(gw), tuple(gb))


@partial(jax.jit, static_argnames=("cfg", "n_nudge"))
def ep_gradient(params, x, target, free_states, beta, cfg: EPConfig = DEFAULT, n_nudge=None,
                update_beta=None):
    """One-sided EP estimate of ``dJ/dtheta``: nudge from the free fixed point with ``beta``.

    ``beta``: signed scalar or ``(B,)``; ``update_beta`` (default ``beta``) divides the contrast
    (the seed bug divides by ``+|beta|`` whatever the nudge sign). Returns ``(G, nudged_states)``.
    """
    drive = input_drive(params, x, cfg)
    n = cfg.n_nudge if n_nudge is None else n_nudge
    s_b = relax(params, drive, free_states, target, beta, n, cfg)
    ub = beta if update_beta is None else update_beta
    return contrast(params, x, s_b, free_states, 1.0 / jnp.asarray(ub, x.dtype), cfg), s_b


@partial(jax.jit, static_argnames=("cfg", "n_nudge"))
def symmetric_gradient(params, x, target, free_states, beta, cfg: EPConfig = DEFAULT,
                       n_nudge=None) -> Params:
    """Centered EP (Laborieux et al. 2021): ``(dF/dtheta(s^{+b}) - dF/dtheta(s^{-b})) / 2b``."""
    drive = input_drive(params, x, cfg)
    n = cfg.n_nudge if n_nudge is None else n_nudge
    s_p = relax(params, drive, free_states, target, beta, n, cfg)
    s_m = relax(params, drive, free_states, target, -beta, n, cfg)
    return contrast(params, x, s_p, s_m, 0.5 / jnp.asarray(beta, x.dtype), cfg)


def sample_beta(key: jax.Array, batch: int, cfg: EPConfig = DEFAULT, dtype=jnp.float32):
    """``(beta, update_beta)`` of one minibatch for :func:`ep_gradient`, by ``cfg.sign``.

    ``"batch"``: one random sign of ``cfg.beta`` for the minibatch (reference; it cancels the
    O(beta) bias on average); ``"fixed"``: always ``+cfg.beta``; ``"example-mismatch"``: a random
    sign per example, ``beta: (batch,)``, but ``update_beta = +cfg.beta`` (seed bug). Otherwise
    both are scalars and equal.
    """
    if cfg.sign == "fixed":
        beta = jnp.asarray(cfg.beta, dtype)
        return beta, beta
    if cfg.sign == "batch":
        beta = jnp.where(jax.random.bernoulli(key), cfg.beta, -cfg.beta).astype(dtype)
        return beta, beta
    if cfg.sign == "example-mismatch":
        beta = jnp.where(jax.random.bernoulli(key, shape=(batch,)), cfg.beta, -cfg.beta)
        return beta.astype(dtype), jnp.asarray(cfg.beta, dtype)
    raise option_error("sign", cfg.sign)
