"""Naive references for EP: relaxation and update by ``jax.grad`` of the energy, per example.

Written from the energy alone, without the library's explicit forces, the clamped input's drive
or the contrast formula: every relaxation step is ``jax.grad`` of the batch-summed ``F`` and the
update is ``jax.grad`` of the energy difference, as in the reference code (``T.grad``) and the
seed notebook. The tests use them as ground truth for :mod:`gridlib.ep.model` and
:mod:`gridlib.ep.equilibrium`; ``benchmarks/ep.py`` times them against the library's training
step. Slow by design.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from gridlib.ep.model import DEFAULT, EPConfig, Params, energy, total_energy, zero_states


def autodiff_relax(params: Params, x, states, target, beta, n_steps: int,
                   cfg: EPConfig = DEFAULT):
    """``n_steps`` of ``s <- clip(s - eps dF/ds, 0, 1)`` with ``dF/ds`` from ``jax.grad``.

    ``x: (B, n_0)``, ``states = (h_1, ..., h_N)``, ``h_k: (B, n_k)``; the reference semantics
    (per-example forces, i.e. ``cfg.state_grad = "sum"``) whatever ``cfg.state_grad`` says.
    """

    def step(_, s):
        g = jax.grad(lambda s: jnp.sum(total_energy(params, x, s, target, beta, cfg)))(s)
        return tuple(jnp.clip(h - cfg.eps * gh, 0.0, 1.0) for h, gh in zip(s, g, strict=True))

    return jax.lax.fori_loop(0, n_steps, step, tuple(states))


@partial(jax.jit, static_argnames=("cfg",))
def autodiff_ep_gradient(params: Params, x, target, beta, cfg: EPConfig = DEFAULT):
    """One-sided EP from zero states, all by autodiff; returns ``(G, free_states)``.

    ``n_free`` free steps, ``n_nudge`` steps nudged with ``beta`` (scalar), then
    ``G = jax.grad(mean_b (E(s^beta) - E(s^0)) / beta)``: the batch mean whatever
    ``cfg.aggregate`` says.
    """
    s0 = zero_states(x.shape[0], cfg.sizes, x.dtype)
    free = autodiff_relax(params, x, s0, target, 0.0, cfg.n_free, cfg)
    nudged = autodiff_relax(params, x, free, target, beta, cfg.n_nudge, cfg)
    g = jax.grad(
        lambda p: jnp.mean(energy(p, x, nudged, cfg) - energy(p, x, free, cfg)) / beta
    )(params)
    return g, free


def per_example_ep_gradient(params: Params, x, target, beta, cfg: EPConfig = DEFAULT) -> Params:
    """The mean over the batch of :func:`autodiff_ep_gradient` run on one example at a time.

    A Python loop over examples, as the seed notebook ran (jitted per example, so that a timing
    compares the algorithm, not the interpreter).
    """
    grads = [
        autodiff_ep_gradient(params, x[i : i + 1], target[i : i + 1], beta, cfg)[0]
        for i in range(x.shape[0])
    ]
    return jax.tree.map(lambda *g: sum(g) / len(grads), *grads)
