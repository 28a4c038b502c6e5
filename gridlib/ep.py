"""Equilibrium propagation (EP) for layered Hopfield-like networks.

The network (Scellier & Bengio 2017) has layers ``h_0 = x`` (clamped input), hidden layers
``h_1 .. h_{N-1}`` and the output ``h_N = y``; ``W_k: (n_{k-1}, n_k)`` couples ``h_{k-1}`` and
``h_k`` symmetrically and ``b_k: (n_k,)`` is the bias of layer ``k >= 1``. Per example::

    E(s)  = sum_{k=0..N} 1/2 |rho(h_k)|^2 - sum_{k=1..N} rho(h_{k-1}) W_k rho(h_k)
            - sum_{k=1..N} b_k . rho(h_k)                              (reference-code form)
    C(y)  = c |y - d|^2                 (c = 1 in the reference code, c = 1/2 in the paper)
    F     = E + beta C,        rho(u) = clip(u, 0, 1)

The states relax by projected gradient descent ``s <- clip(s - eps dF/ds, 0, 1)`` (all layers
synchronously, ``x`` held fixed). EP runs a free phase (beta = 0) to a fixed point ``s^0``, then a
short nudged phase from ``s^0`` to ``s^beta``, and estimates the gradient of
``J(theta) = C(y^0(theta))`` as ``(dF/dtheta(s^beta) - dF/dtheta(s^0)) / beta``, i.e.::

    dJ/dW_k ~ -(1/beta) mean_b[ rho(h_{k-1}^beta)^T rho(h_k^beta) - rho(h_{k-1}^0)^T rho(h_k^0) ]

Estimators: one-sided EP (``"ep"``), symmetric / centered EP (``"symmetric"``, Laborieux et al.
2021: nudges ``+beta`` and ``-beta``, divided by ``2 beta``), and backprop through the free
relaxation (``"bptt"``, the gradient reference). :func:`rbp_gradient` is recurrent backprop
(Almeida-Pineda) at the fixed point.

The seed notebook's bugs are explicit options of :class:`EPConfig` (``rho="hard_sigmoid"``,
``aggregate="sum"``, ``sign="example-mismatch"``, ``state_grad="mean"``, ``square="u"`` which is
*not* a bug), so that each can be reproduced in isolation.

Speed: the input is clamped, so its drive ``rho(x) W_1 + b_1`` is computed once per minibatch and
each relaxation step only touches the (small) hidden/output couplings.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gridlib.cli import experiment

RHOS = ("clip", "hard_sigmoid")
SQUARES = ("rho", "u")
AGGREGATES = ("mean", "sum")
SIGNS = ("batch", "fixed", "example-mismatch")
STATE_GRADS = ("sum", "mean")
ESTIMATORS = ("ep", "symmetric", "bptt")


class EPConfig(NamedTuple):
    """Hyper-parameters and switches (defaults: the reference 784-500-10 configuration).

    Attributes:
        sizes: layer sizes ``(n_0, ..., n_N)``, input first; at least one hidden layer.
        eps: state step size of the relaxation.
        n_free: free-phase steps (training).
        n_nudge: nudged-phase steps (started from the free fixed point).
        n_eval: free-phase steps for evaluation (from zero states).
        beta: nudging strength ``|beta|``.
        alphas: learning rate of ``(W_k, b_k)`` per layer, ``len(sizes) - 1`` values.
        cost_scale: ``c`` in ``C = c |y - d|^2``; 1.0 is the reference code, 0.5 the paper.
        estimator: ``"ep"`` (one-sided), ``"symmetric"`` (centered) or ``"bptt"`` (backprop
            through the ``n_free`` free steps; the same network trained by backprop).
        sign: ``"batch"`` random sign of beta per minibatch (reference), ``"fixed"`` always
            ``+beta``, ``"example-mismatch"`` random sign per example in the nudge but the update
            divided by ``+beta`` (seed bug).
        persistent: start the free phase from per-example stored states (persistent particles);
            the example index then travels as the last input column (see :func:`with_index`).
        rho: ``"clip"`` (``clip(u, 0, 1)`` with derivative 1 on the closed interval, as Theano)
            or ``"hard_sigmoid"`` (``jax.nn.hard_sigmoid = relu6(u + 3) / 6``; seed bug).
        square: ``"rho"`` for ``1/2 rho(u)^2`` (reference code) or ``"u"`` for ``1/2 u^2``
            (paper); identical dynamics for clipped states.
        aggregate: ``"mean"`` (reference) or ``"sum"`` over the batch of the update (seed bug).
        state_grad: ``"sum"`` state forces from the batch-summed energy (per-example forces,
            reference) or ``"mean"`` from the batch-mean energy (step ``eps / B``; seed bug).
    """

    sizes: tuple[int, ...] = (784, 500, 10)
    eps: float = 0.5
    n_free: int = 20
    n_nudge: int = 4
    n_eval: int = 50
    beta: float = 0.5
    alphas: tuple[float, ...] = (0.1, 0.05)
    cost_scale: float = 1.0
    estimator: str = "ep"
    sign: str = "batch"
    persistent: bool = False
    rho: str = "clip"
    square: str = "rho"
    aggregate: str = "mean"
    state_grad: str = "sum"


DEFAULT = EPConfig()


class Params(NamedTuple):
    """``weights[k-1] = W_k: (n_{k-1}, n_k)``, ``biases[k-1] = b_k: (n_k,)`` for k = 1..N."""

    weights: tuple[jax.Array, ...]
    biases: tuple[jax.Array, ...]


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"EPConfig.{name} must be one of {allowed}, got {value!r}")


def check_config(cfg: EPConfig) -> EPConfig:
    """Validate ``cfg`` and return it; raise ``ValueError`` with the offending field."""
    sizes = tuple(cfg.sizes)
    if len(sizes) < 3:
        raise ValueError(
            f"EPConfig.sizes needs an input, at least one hidden layer and an output, got {sizes}"
        )
    if any((not isinstance(n, (int, np.integer))) or n < 1 for n in sizes):
        raise ValueError(f"EPConfig.sizes must be positive integers, got {sizes}")
    if len(cfg.alphas) != len(sizes) - 1:
        raise ValueError(
            f"EPConfig.alphas needs one learning rate per weight matrix ({len(sizes) - 1} for "
            f"sizes {sizes}), got {len(cfg.alphas)}: {cfg.alphas}"
        )
    if not cfg.eps > 0:
        raise ValueError(f"EPConfig.eps must be positive, got {cfg.eps}")
    for name in ("n_free", "n_eval"):
        if int(getattr(cfg, name)) < 1:
            raise ValueError(f"EPConfig.{name} must be >= 1, got {getattr(cfg, name)}")
    if int(cfg.n_nudge) < 0:
        raise ValueError(f"EPConfig.n_nudge must be >= 0, got {cfg.n_nudge}")
    if cfg.estimator != "bptt" and not cfg.beta > 0:
        raise ValueError(f"EPConfig.beta is the nudge magnitude and must be > 0, got {cfg.beta}")
    if not cfg.cost_scale > 0:
        raise ValueError(f"EPConfig.cost_scale must be positive, got {cfg.cost_scale}")
    _choice("estimator", cfg.estimator, ESTIMATORS)
    _choice("sign", cfg.sign, SIGNS)
    _choice("rho", cfg.rho, RHOS)
    _choice("square", cfg.square, SQUARES)
    _choice("aggregate", cfg.aggregate, AGGREGATES)
    _choice("state_grad", cfg.state_grad, STATE_GRADS)
    return cfg._replace(sizes=sizes, alphas=tuple(float(a) for a in cfg.alphas))


# --------------------------------------------------------------------------------------------
# activation


@jax.custom_jvp
def rho_clip(u: jax.Array) -> jax.Array:
    """``rho(u) = clip(u, 0, 1)`` with derivative 1 on the *closed* interval [0, 1].

    ``jnp.clip`` has derivative 1/2 exactly at 0 and 1 (JAX splits ties); states sit exactly
    there all the time (they start at 0 and are clipped), and Theano's clip, used by the
    reference code, is inclusive.
    """
    return jnp.clip(u, 0.0, 1.0)


@rho_clip.defjvp
def _rho_clip_jvp(primals, tangents):
    (u,), (du,) = primals, tangents
    return rho_clip(u), jnp.where((u >= 0.0) & (u <= 1.0), du, jnp.zeros_like(du))


def rho_fn(cfg: EPConfig):
    """``(rho, rho')`` for ``cfg.rho`` as elementwise functions."""
    if cfg.rho == "clip":
        return rho_clip, lambda u: ((u >= 0.0) & (u <= 1.0)).astype(u.dtype)
    # jax.nn.hard_sigmoid(u) = relu6(u + 3) / 6: slope 1/6 on [-3, 3], rho(0) = 1/2.
    return jax.nn.hard_sigmoid, lambda u: ((u >= -3.0) & (u <= 3.0)).astype(u.dtype) / 6.0


# --------------------------------------------------------------------------------------------
# parameters, energy, cost


def init_params(key: jax.Array, sizes: tuple[int, ...], dtype=jnp.float32, gain: float = 1.0,
                bias: float = 0.0) -> Params:
    """Glorot-uniform weights ``U(+-sqrt(6 / (n_in + n_out)))`` and zero biases, as the reference.

    ``gain`` scales the weights and ``bias`` sets every bias: small weights and biases near 1/2
    keep the fixed point inside (0, 1), the smooth regime of the EP theory (used in checks).
    """
    keys = jax.random.split(key, len(sizes) - 1)
    weights = tuple(
        gain * jax.random.uniform(
            k, (a, b), dtype, -math.sqrt(6.0 / (a + b)), math.sqrt(6.0 / (a + b))
        )
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    )
    biases = tuple(jnp.full((b,), bias, dtype) for b in sizes[1:])
    return Params(weights, biases)


def zero_states(batch: int, sizes: tuple[int, ...], dtype=jnp.float32) -> tuple[jax.Array, ...]:
    """Free-layer states ``(h_1, ..., h_N)``, each ``(batch, n_k)``, all zero."""
    return tuple(jnp.zeros((batch, n), dtype) for n in sizes[1:])


def _check_shapes(params: Params, x: jax.Array, states=None) -> None:
    sizes = (params.weights[0].shape[0],) + tuple(w.shape[1] for w in params.weights)
    if x.ndim != 2 or x.shape[1] != sizes[0]:
        raise ValueError(f"x must have shape (batch, {sizes[0]}), got {x.shape}")
    if states is not None:
        want = tuple((x.shape[0], n) for n in sizes[1:])
        got = tuple(s.shape for s in states)
        if got != want:
            raise ValueError(f"states must have shapes {want} (one per free layer), got {got}")


@partial(jax.jit, static_argnames=("cfg",))
def energy(params: Params, x: jax.Array, states, cfg: EPConfig = DEFAULT) -> jax.Array:
    """Hopfield-like energy ``E`` per example, shape ``(B,)``.

    ``x: (B, n_0)``, ``states = (h_1, ..., h_N)`` with ``h_k: (B, n_k)``. The square term is
    ``1/2 rho(u)^2`` (``cfg.square == "rho"``, reference code) or ``1/2 u^2`` (paper); the input's
    square term is included (a constant) so that the value matches the reference code.
    """
    _check_shapes(params, x, states)
    rho, _ = rho_fn(cfg)
    layers = (x, *states)
    r = [rho(h) for h in layers]
    sq = r if cfg.square == "rho" else [x if i == 0 else h for i, h in enumerate(layers)]
    e = sum(0.5 * jnp.sum(q * q, axis=-1) for q in sq)
    for k, (w, b) in enumerate(zip(params.weights, params.biases, strict=True), start=1):
        e = e - jnp.einsum("bi,ij,bj->b", r[k - 1], w, r[k]) - r[k] @ b
    return e


def cost(y: jax.Array, target: jax.Array, cfg: EPConfig = DEFAULT) -> jax.Array:
    """``C = c |y - d|^2`` per example, ``(B,)``; applied to the raw output state ``y``."""
    return cfg.cost_scale * jnp.sum((y - target) ** 2, axis=-1)


def total_energy(params, x, states, target, beta, cfg: EPConfig = DEFAULT) -> jax.Array:
    """``F = E + beta C`` per example, ``(B,)``; ``beta`` is a scalar or ``(B,)``."""
    return energy(params, x, states, cfg) + beta * cost(states[-1], target, cfg)


def one_hot(labels, n_classes: int) -> jax.Array:
    """One-hot targets ``(B, n_classes)`` for EVERY label; out-of-range labels raise.

    (``jax.nn.one_hot`` of a prefix of the labels, as in the seed notebook, and index clamping
    under jit silently give wrong targets; see chapter 21.)
    """
    lab = None if isinstance(labels, jax.core.Tracer) else np.asarray(labels)
    if lab is not None and lab.size and (lab.min() < 0 or lab.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got range [{lab.min()}, {lab.max()}]")
    return jax.nn.one_hot(labels, n_classes, dtype=jnp.float32)


# --------------------------------------------------------------------------------------------
# relaxation


def input_drive(params: Params, x: jax.Array, cfg: EPConfig = DEFAULT) -> jax.Array:
    """``rho(x) W_1 + b_1``, ``(B, n_1)``: constant while ``x`` is clamped, so computed once."""
    rho, _ = rho_fn(cfg)
    return rho(x) @ params.weights[0] + params.biases[0]


@partial(jax.jit, static_argnames=("cfg",))
def forces(params: Params, drive: jax.Array, states, target, beta, cfg: EPConfig = DEFAULT):
    """``-dF/dh_k`` per example for every free layer (explicit form of ``-jax.grad``).

    ``-dE/dh_k = rho'(h_k) (rho(h_{k-1}) W_k + b_k + rho(h_{k+1}) W_{k+1}^T) - rho'(h_k) rho(h_k)``
    (``- h_k`` for ``square="u"``), and ``-beta dC/dy = -2 c beta (y - d)``. ``drive`` is
    :func:`input_drive`; ``beta`` a scalar or ``(B,)``.
    """
    rho, drho = rho_fn(cfg)
    n = len(states)
    r = [rho(h) for h in states]
    out = []
    for k in range(n):  # over layers (static), not time
        inp = drive if k == 0 else r[k - 1] @ params.weights[k] + params.biases[k]
        if k + 1 < n:
            inp = inp + r[k + 1] @ params.weights[k + 1].T
        d = drho(states[k])
        f = d * (inp - r[k]) if cfg.square == "rho" else d * inp - states[k]
        out.append(f)
    b = jnp.asarray(beta, states[-1].dtype)
    b = b[:, None] if b.ndim == 1 else b
    out[-1] = out[-1] - 2.0 * cfg.cost_scale * b * (states[-1] - target)
    return tuple(out)


def relax_step(params, drive, states, target, beta, cfg: EPConfig = DEFAULT):
    """One projected step ``s <- clip(s + eps * force, 0, 1)`` of all free layers at once."""
    f = forces(params, drive, states, target, beta, cfg)
    # The seed took jax.grad of the batch-MEAN energy: every force is divided by B.
    step = cfg.eps / states[0].shape[0] if cfg.state_grad == "mean" else cfg.eps
    return tuple(jnp.clip(h + step * g, 0.0, 1.0) for h, g in zip(states, f, strict=True))


@partial(jax.jit, static_argnames=("n_steps", "cfg"))
def relax(params, drive, states, target, beta, n_steps: int, cfg: EPConfig = DEFAULT):
    """``n_steps`` relaxation steps (a ``lax.fori_loop``; differentiable for BPTT)."""
    body = lambda _, s: relax_step(params, drive, s, target, beta, cfg)
    return jax.lax.fori_loop(0, int(n_steps), body, tuple(states))


@partial(jax.jit, static_argnames=("cfg", "n_steps"))
def free_phase(params, x, cfg: EPConfig = DEFAULT, states=None, n_steps=None):
    """Free relaxation (beta = 0) from ``states`` (default zero) for ``n_steps`` (default n_free)."""
    _check_shapes(params, x, states)
    if states is None:
        states = zero_states(x.shape[0], cfg.sizes, x.dtype)
    drive = input_drive(params, x, cfg)
    zero_t = jnp.zeros_like(states[-1])
    return relax(params, drive, states, zero_t, 0.0, n_steps or cfg.n_free, cfg)


# --------------------------------------------------------------------------------------------
# gradient estimates (all return an estimate of dJ/dtheta, J = mean_b C(y^0))


@partial(jax.jit, static_argnames=("cfg",))
def contrast(params: Params, x, s_a, s_b, scale, cfg: EPConfig = DEFAULT) -> Params:
    """``-agg_b scale_b [ dE/dtheta... ]``: the EP contrast between states ``s_a`` and ``s_b``.

    Returns ``G`` with ``G.W_k = -agg_b scale_b (rho(a_{k-1})^T rho(a_k) - rho(b_{k-1})^T
    rho(b_k))`` and ``G.b_k = -agg_b scale_b (rho(a_k) - rho(b_k))``, i.e.
    ``scale * (dE/dtheta(s_a) - dE/dtheta(s_b))`` aggregated over the batch (``agg`` = mean, or
    sum for the seed bug). ``scale``: scalar or ``(B,)``, e.g. ``1 / beta``.
    """
    rho, _ = rho_fn(cfg)
    bsz = x.shape[0]
    sc = jnp.broadcast_to(jnp.asarray(scale, x.dtype), (bsz,))
    norm = 1.0 / bsz if cfg.aggregate == "mean" else 1.0
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


def loss_after_relaxation(params, x, target, cfg: EPConfig = DEFAULT, states=None, n_steps=None):
    """``J = mean_b C(y)`` after ``n_steps`` free steps: differentiable end to end (BPTT)."""
    s = free_phase(params, x, cfg, states, n_steps)
    return jnp.mean(cost(s[-1], target, cfg))


@partial(jax.jit, static_argnames=("cfg", "n_steps"))
def bptt_gradient(params, x, target, cfg: EPConfig = DEFAULT, states=None, n_steps=None):
    """``dJ/dtheta`` by backprop through the unrolled free relaxation (the gradient reference)."""
    return jax.grad(loss_after_relaxation)(params, x, target, cfg, states, n_steps)


@partial(jax.jit, static_argnames=("cfg", "n_iter"))
def rbp_gradient(params, x, target, fixed_point, cfg: EPConfig = DEFAULT, n_iter: int = 200):
    """Recurrent backprop (Almeida-Pineda) at the free fixed point ``s* = T(s*, theta)``.

    ``T(s, theta) = clip(s + eps force(s), 0, 1)``. The adjoint ``v = dJ/ds + v dT/ds`` is
    solved by ``n_iter`` fixed-point iterations, then ``dJ/dtheta = v dT/dtheta``. This is the
    implicit gradient of ``J = mean_b C(y*)`` with the saturated units held at their bounds.
    """
    zero_t = jnp.zeros_like(fixed_point[-1])

    def T(p, s):
        return relax_step(p, input_drive(p, x, cfg), s, zero_t, 0.0, cfg)

    dj_ds = jax.grad(lambda s: jnp.mean(cost(s[-1], target, cfg)))(tuple(fixed_point))
    _, vjp_s = jax.vjp(lambda s: T(params, s), tuple(fixed_point))

    def body(_, v):
        (vs,) = vjp_s(v)
        return jax.tree.map(jnp.add, dj_ds, vs)

    v = jax.lax.fori_loop(0, n_iter, body, dj_ds)
    _, vjp_p = jax.vjp(lambda p: T(p, tuple(fixed_point)), params)
    (g,) = vjp_p(v)
    return g


# --------------------------------------------------------------------------------------------
# training


class EPState(NamedTuple):
    """Training state: parameters and (optionally) persistent particles ``(n_examples, n_k)``."""

    params: Params
    particles: tuple[jax.Array, ...]


def init_state(key, cfg: EPConfig = DEFAULT, n_examples: int = 0) -> EPState:
    cfg = check_config(cfg)
    particles = zero_states(n_examples, cfg.sizes) if cfg.persistent else ()
    return EPState(init_params(key, cfg.sizes), particles)


def _split_index(x, cfg: EPConfig):
    """With persistent particles the last input column holds the example index."""
    if cfg.persistent:
        return x[:, :-1], x[:, -1].astype(jnp.int32)
    return x, None


def train_step(state: EPState, x, labels, key, cfg: EPConfig = DEFAULT):
    """One minibatch of EP (or BPTT) training; returns ``(state, metrics)``.

    ``x: (B, n_0)`` (``(B, n_0 + 1)`` with the example index last if ``cfg.persistent``),
    ``labels: (B,)`` ints. Metrics are measured at the free fixed point *before* the update,
    as the reference code does: ``loss = mean C``, ``err`` (fraction misclassified,
    prediction ``argmax y``), and ``dlogW_k = |dW_k| / |W_k|``.
    """
    params = state.params
    x, idx = _split_index(x, cfg)
    target = one_hot(labels, cfg.sizes[-1])
    s0 = (
        tuple(p[idx] for p in state.particles)
        if idx is not None
        else zero_states(x.shape[0], cfg.sizes, x.dtype)
    )
    free = free_phase(params, x, cfg, s0)
    particles = (
        tuple(p.at[idx].set(h) for p, h in zip(state.particles, free, strict=True))
        if idx is not None
        else state.particles
    )
    if cfg.estimator == "bptt":
        grads = bptt_gradient(params, x, target, cfg, s0)
    elif cfg.estimator == "symmetric":
        grads = symmetric_gradient(params, x, target, free, cfg.beta, cfg)
    else:
        bsz = x.shape[0]
        if cfg.sign == "fixed":
            beta = jnp.asarray(cfg.beta, x.dtype)
            ub = beta
        elif cfg.sign == "batch":
            beta = jnp.where(jax.random.bernoulli(key), cfg.beta, -cfg.beta).astype(x.dtype)
            ub = beta
        else:  # per-example sign in the nudge, but the update divided by +|beta|
            beta = jnp.where(jax.random.bernoulli(key, shape=(bsz,)), cfg.beta, -cfg.beta)
            beta = beta.astype(x.dtype)
            ub = jnp.asarray(cfg.beta, x.dtype)
        grads, _ = ep_gradient(params, x, target, free, beta, cfg, update_beta=ub)
    new_w = tuple(w - a * g for w, a, g in zip(params.weights, cfg.alphas, grads.weights,
                                                 strict=True))
    new_b = tuple(b - a * g for b, a, g in zip(params.biases, cfg.alphas, grads.biases,
                                                 strict=True))
    y = free[-1]
    metrics = {
        "loss": jnp.mean(cost(y, target, cfg)),
        "err": jnp.mean(jnp.argmax(y, -1) != labels),
    }
    for k, (w, g, a) in enumerate(zip(params.weights, grads.weights, cfg.alphas, strict=True), 1):
        metrics[f"dlogW{k}"] = a * jnp.linalg.norm(g) / jnp.linalg.norm(w)
    return EPState(Params(new_w, new_b), particles), metrics


def eval_step(state: EPState, x, labels, cfg: EPConfig = DEFAULT):
    """Sums over the batch at the free fixed point reached from zero in ``n_eval`` steps."""
    params = state.params
    x, _ = _split_index(x, cfg)
    target = one_hot(labels, cfg.sizes[-1])
    y = free_phase(params, x, cfg, n_steps=cfg.n_eval)[-1]
    wrong = jnp.argmax(y, -1) != labels
    return {
        "loss": jnp.sum(cost(y, target, cfg)),
        "err": jnp.sum(wrong),
        "acc": jnp.sum(~wrong),
    }


def make_task(cfg: EPConfig = DEFAULT, n_examples: int = 0):
    """A :class:`gridlib.experiment.Task` for ``cfg`` (``n_examples`` sizes the particles)."""
    from gridlib.experiment import Task

    cfg = check_config(cfg)
    if cfg.persistent and n_examples < 1:
        raise ValueError("persistent particles need n_examples (the training-set size)")
    return Task(
        init=partial(init_state, cfg=cfg, n_examples=n_examples),
        train_step=partial(train_step, cfg=cfg),
        eval_step=partial(eval_step, cfg=cfg),
    )


def with_index(splits):
    """Append the example index as a last float column of every split (for persistent particles).

    ``fit`` hands ``train_step`` only ``(x, y)``; the index (exact in float32 below 2^24) lets a
    step gather and scatter that example's stored state. Train indices are 0..n-1; the index of
    val/test examples is never used (evaluation starts from zero states).
    """
    width = int(np.prod(np.shape(splits.x_train)[1:]))
    out = {}
    for name in ("train", "val", "test"):
        xs = np.asarray(getattr(splits, f"x_{name}"), np.float32).reshape(-1, width)
        if len(xs) >= 2**24:
            raise ValueError("too many examples to carry their index exactly in float32")
        col = np.arange(len(xs), dtype=np.float32)[:, None]
        out[f"x_{name}"] = np.concatenate([xs, col], axis=1)
    return splits._replace(**out)


# --------------------------------------------------------------------------------------------
# the seed notebook's failures, one at a time


def seed_energy(x, h, y, biases, weights, rho=jax.nn.hard_sigmoid):
    """The seed notebook's energy, verbatim in structure (one example; ``jnp.linalg.norm``).

    ``0.5 * |rho(layer)|^2`` is written as the squared Euclidean *norm*; its gradient at a zero
    vector is ``2 |v| * v / |v| = 0 * nan = nan``. With ``rho = jax.nn.hard_sigmoid`` (the seed)
    ``rho(0) = 1/2`` hides this; with the correct ``rho = clip`` and zero initial states every
    state gradient is NaN.
    """
    layers = (x, h, y)
    squared_norm = 0.5 * sum(jnp.linalg.norm(rho(v)) ** 2 for v in layers)
    linear = -sum(jnp.dot(rho(v), b) for v, b in zip(layers, biases, strict=True))
    quadratic = -sum(
        jnp.dot(jnp.dot(rho(a), w), rho(b))
        for a, w, b in zip(layers[:-1], weights, layers[1:], strict=True)
    )
    return squared_norm + linear + quadratic


#: name -> (description, EPConfig changes, data change). Data changes: "labels-100" (targets of
#: ``jax.nn.one_hot(y[:100])[i]``: JAX clamps the index, so every example past 99 gets the
#: label of example 99) and "one-batch" (the seed's ``range(0, B, B)`` loop: every update sees
#: the first minibatch; we tile it to the training-set size so the number of updates is equal).
SEED_VARIANTS: dict[str, tuple[str, dict, str | None]] = {
    "reference": ("reference semantics", {}, None),
    "square-u": ("1/2 u^2 instead of 1/2 rho(u)^2 (not a bug)", {"square": "u"}, None),
    "hard-sigmoid": ("rho = jax.nn.hard_sigmoid", {"rho": "hard_sigmoid"}, None),
    "sum": ("update summed over the batch", {"aggregate": "sum"}, None),
    "sign-mismatch": ("per-example sign of beta, update divided by +beta",
                      {"sign": "example-mismatch"}, None),
    "mean-energy-grad": ("state gradient of the batch-mean energy", {"state_grad": "mean"}, None),
    "labels-100": ("only the first 100 labels one-hot encoded", {}, "labels-100"),
    "one-batch": ("one minibatch per epoch", {}, "one-batch"),
    "seed": ("the seed's actual bugs together: hard_sigmoid and one minibatch",
             {"rho": "hard_sigmoid"}, "one-batch"),
}


def seed_variant_splits(splits, data_change: str | None, batch_size: int):
    """The training split as the seed notebook's data pipeline would have fed it."""
    if data_change is None:
        return splits
    n = len(splits.y_train)
    if data_change == "labels-100":
        # what the seed's encoding gives when indexed by example: JAX clamps out-of-range gathers
        targets = jax.nn.one_hot(jnp.asarray(splits.y_train[:100]), 10)[jnp.arange(n)]
        return splits._replace(y_train=np.asarray(jnp.argmax(targets, -1), np.int32))
    if data_change == "one-batch":
        reps = n // batch_size
        return splits._replace(
            x_train=np.tile(splits.x_train[:batch_size], (reps, 1)),
            y_train=np.tile(splits.y_train[:batch_size], reps),
        )
    raise ValueError(f"unknown data change {data_change!r}; use 'labels-100' or 'one-batch'")


# --------------------------------------------------------------------------------------------
# command-line experiments


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError as err:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from err


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError as err:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from err


def run(cfg: EPConfig, splits, *, epochs: int, batch_size: int = 20, seed: int = 0,
        run_dir=None, name: str = "ep", progress: bool = True, eval_on=("test",)):
    """Train ``cfg`` on ``splits`` with :func:`gridlib.experiment.fit`; returns the ``Run``."""
    from gridlib.experiment import fit

    cfg = check_config(cfg)
    if cfg.persistent:
        splits = with_index(splits)
    task = make_task(cfg, n_examples=len(splits.y_train))
    return fit(task, splits, epochs=epochs, batch_size=batch_size, seed=seed, run_dir=run_dir,
               name=name, progress=progress, eval_on=eval_on, config=cfg._asdict())


@experiment("ep-mnist")
def ep_mnist(
    hidden: str = "500",
    epochs: int = 25,
    seed: int = 0,
    beta: float = 0.5,
    alphas: str = "0.1,0.05",
    eps: float = 0.5,
    n_free: int = 20,
    n_nudge: int = 4,
    n_eval: int = 50,
    estimator: str = "ep",
    sign: str = "batch",
    cost_scale: float = 1.0,
    persistent: bool = False,
    batch_size: int = 20,
    tag: str = "",
    progress: bool = True,
) -> dict:
    """Equilibrium propagation on MNIST (60k train, full 10k test); saves results/ep/<tag>.

    Defaults: the reference 784-500-10 configuration (25 epochs). ``--estimator bptt`` trains the
    same network by backprop through the free relaxation. At GRIDLIB_SCALE=ci: 2000/1000 examples.
    """
    from gridlib import data, results, scale
    from gridlib.results import REPO_ROOT

    cfg = check_config(EPConfig(
        sizes=(784, *_ints(hidden), 10), eps=eps, n_free=n_free, n_nudge=n_nudge, n_eval=n_eval,
        beta=beta, alphas=_floats(alphas), cost_scale=cost_scale, estimator=estimator, sign=sign,
        persistent=persistent,
    ))
    splits = data.load_mnist(n_train=scale.pick(ci=2000, full=None),
                             n_test=scale.pick(ci=1000, full=None))
    arch = "-".join(str(n) for n in cfg.sizes)
    tag = tag or f"mnist_{arch}_{estimator}"
    name = f"ep/{'ci/' if scale.is_ci() else ''}{tag}_seed{seed}"
    out = run(cfg, splits, epochs=epochs, batch_size=batch_size, seed=seed,
              run_dir=REPO_ROOT / "runs" / name, name=name, progress=progress)
    last = out.last
    metrics = {
        "test_err": last["test/err"], "test_acc": last["test/acc"],
        "train_err_running": last["train/err"], "mean_epoch_time_s":
            float(np.mean(out.history["epoch_time_s"])), "epochs": epochs,
    }
    results.save(name, config={**cfg._asdict(), "epochs": epochs, "batch_size": batch_size,
                               "n_train": len(splits.y_train), "n_test": len(splits.y_test)},
                 metrics=metrics, history=out.history, seed=seed)
    print(f"{name}: test error {100 * metrics['test_err']:.2f}%")
    return metrics


@experiment("ep-seed-failures")
def ep_seed_failures(
    epochs: int = 1, n_train: int = 60000, n_test: int = 10000, seed: int = 0,
    progress: bool = True,
) -> dict:
    """Short MNIST runs of 784-500-10, one per seed-notebook bug; saves results/ep/seed_failures."""
    from gridlib import data, results

    out = run_seed_variants(data.load_mnist(n_train=n_train, n_test=n_test), epochs=epochs,
                            seed=seed, progress=progress)
    results.save("ep/seed_failures", config={"epochs": epochs, "n_train": n_train,
                                             "n_test": n_test, "base": EPConfig()._asdict()},
                 metrics=out, seed=seed)
    return out


def run_seed_variants(splits, *, epochs: int, seed: int = 0, cfg: EPConfig = DEFAULT,
                      variants=None, progress: bool = False) -> dict:
    """Train every variant of :data:`SEED_VARIANTS` (or ``variants``); name -> final metrics."""
    out = {}
    for v in variants or SEED_VARIANTS:
        desc, change, data_change = SEED_VARIANTS[v]
        sp = seed_variant_splits(splits, data_change, 20)
        r = run(cfg._replace(**change), sp, epochs=epochs, seed=seed, name=v, progress=progress)
        out[v] = {"description": desc, "test_err": r.last["test/err"],
                  "train_err_running": r.last["train/err"], "train_loss": r.last["train/loss"],
                  "test_err_per_epoch": r.history["test/err"]}
    return out


# --------------------------------------------------------------------------------------------
# backprop through the relaxation: why it needs its own learning rates, and where it stalls


def pinned_target_fraction(params: Params, x, labels, cfg: EPConfig = DEFAULT) -> float:
    """Fraction of examples whose *target* output unit sits at the lower clip (0) after the free
    phase while its force still points down.

    Backprop through ``clip(s + eps * force, 0, 1)`` gives such a unit zero gradient, so no error
    reaches the network through it: the loss cannot pull the correct class up. EP is not
    blocked there: the nudge ``beta (d - y)`` pushes the unit off the bound and the contrast is
    non-zero.
    """
    x = jnp.asarray(x)
    free = free_phase(params, x, cfg)
    drive = input_drive(params, x, cfg)
    f = forces(params, drive, free, jnp.zeros_like(free[-1]), 0.0, cfg)[-1]
    rows = jnp.arange(x.shape[0])
    lab = jnp.asarray(labels)
    pinned = (free[-1][rows, lab] <= 0.0) & (f[rows, lab] <= 0.0)
    return float(jnp.mean(pinned))


@experiment("ep-bptt-sweep")
def ep_bptt_sweep(scales: str = "1,0.3,0.1,0.03", epochs: int = 2, n_train: int = 10000,
                  validation: int = 10000, seed: int = 0, progress: bool = True) -> dict:
    """Backprop through the 20-step free relaxation of 784-500-10 at the EP learning rates times
    each of ``scales``, selected on held-out validation data (the last ``validation`` training
    images); the same runs with EP for reference. Saves ``results/ep/bptt_sweep``."""
    from gridlib import data, results, scale

    n_train = scale.pick(ci=min(n_train, 1000), full=n_train)
    validation = scale.pick(ci=min(validation, 1000), full=validation)
    epochs = scale.pick(ci=1, full=epochs)
    splits = data.load_mnist(n_train=n_train, validation=validation, n_test=1)  # test unused
    base = check_config(DEFAULT)
    probe = jnp.asarray(splits.x_val[:2000])
    out = {"pinned_target_at_init": pinned_target_fraction(
        init_params(jax.random.PRNGKey(seed), base.sizes), probe, splits.y_val[:2000], base)}
    runs = [("ep", 1.0)] + [("bptt", s) for s in _floats(scales)]
    for estimator, s in runs:
        cfg = base._replace(estimator=estimator, alphas=tuple(a * s for a in base.alphas))
        r = run(cfg, splits, epochs=epochs, seed=seed, name=f"{estimator} x{s:g}",
                progress=progress, eval_on=("val",))
        key = f"{estimator} x{s:g}"
        out[key] = {"estimator": estimator, "lr_scale": s, "alphas": cfg.alphas,
                    "val_err": r.history["val/err"], "train_err_running": r.history["train/err"],
                    "pinned_target_after": pinned_target_fraction(
                        r.state.params, probe, splits.y_val[:2000], cfg)}
        print(f"{key}: validation error {100 * r.last['val/err']:.1f}%, targets pinned at 0: "
              f"{100 * out[key]['pinned_target_after']:.0f}%")
    name = f"ep/{'ci/' if scale.is_ci() else ''}bptt_sweep"
    results.save(name, config={"epochs": epochs, "n_train": n_train, "validation": validation,
                               "base": base._asdict(), "scales": _floats(scales)},
                 metrics=out, seed=seed)
    return out
