"""The EP network: configuration, parameters, energy, forces and the relaxation (free phase).

The network (Scellier & Bengio 2017) has layers ``h_0 = x`` (clamped input), hidden layers
``h_1 .. h_{N-1}`` and the output ``h_N = y``; ``W_k: (n_{k-1}, n_k)`` couples ``h_{k-1}`` and
``h_k`` symmetrically and ``b_k: (n_k,)`` is the bias of layer ``k >= 1``. Per example::

    E(s)  = sum_{k=0..N} 1/2 |rho(h_k)|^2 - sum_{k=1..N} rho(h_{k-1}) W_k rho(h_k)
            - sum_{k=1..N} b_k . rho(h_k)                              (reference-code form)
    C(y)  = c |y - d|^2                 (c = 1 in the reference code, c = 1/2 in the paper)
    F     = E + beta C,        rho(u) = clip(u, 0, 1)

The states relax by projected gradient descent ``s <- clip(s - eps dF/ds, 0, 1)`` (all layers
synchronously, ``x`` held fixed). The learning rules estimate the gradient of
``J(theta) = mean_b C(y^0(theta))`` at the free fixed point ``s^0`` (:func:`loss_after_relaxation`).

The seed notebook's bugs are explicit options of :class:`EPConfig` (``rho="hard_sigmoid"``,
``aggregate="sum"``, ``sign="example-mismatch"``, ``state_grad="mean"``, ``square="u"`` which is
*not* a bug), so that each can be reproduced in isolation. Every option is a ``Literal`` checked
when the config is built, and every dispatch on one ends in ``raise``: a misspelt option must
never fall through to a bug variant.

Speed: the input is clamped, so its drive ``rho(x) W_1 + b_1`` is computed once per minibatch and
each relaxation step only touches the (small) hidden/output couplings.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Literal, NamedTuple, get_args, get_origin, get_type_hints

import jax
import jax.numpy as jnp
import numpy as np

Estimator = Literal["ep", "symmetric", "bptt"]
Sign = Literal["batch", "fixed", "example-mismatch"]
Rho = Literal["clip", "hard_sigmoid"]
Square = Literal["rho", "u"]
Aggregate = Literal["mean", "sum"]
StateGrad = Literal["sum", "mean"]

ESTIMATORS: tuple[str, ...] = get_args(Estimator)
SIGNS: tuple[str, ...] = get_args(Sign)
RHOS: tuple[str, ...] = get_args(Rho)
SQUARES: tuple[str, ...] = get_args(Square)
AGGREGATES: tuple[str, ...] = get_args(Aggregate)
STATE_GRADS: tuple[str, ...] = get_args(StateGrad)


# The fields and defaults of EPConfig; the subclass adds the check on construction (a NamedTuple
# class body may not define __new__).
class _EPConfigFields(NamedTuple):
    sizes: tuple[int, ...] = (784, 500, 10)
    eps: float = 0.5
    n_free: int = 20
    n_nudge: int = 4
    n_eval: int = 50
    beta: float = 0.5
    alphas: tuple[float, ...] = (0.1, 0.05)
    cost_scale: float = 1.0
    estimator: Estimator = "ep"
    sign: Sign = "batch"
    persistent: bool = False
    rho: Rho = "clip"
    square: Square = "rho"
    aggregate: Aggregate = "mean"
    state_grad: StateGrad = "sum"


class EPConfig(_EPConfigFields):
    """Hyper-parameters and switches (defaults: the reference 784-500-10 configuration).

    The string options are checked when the config is built (also by ``_replace``); the
    numbers by :func:`check_config`.

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
            divided by ``+beta`` (the first JAX attempt's bug).
        persistent: start the free phase from per-example stored states (persistent particles);
            the example index then travels as the last input column (see
            :func:`gridlib.ep.experiments.with_index`).
        rho: ``"clip"`` (``clip(u, 0, 1)`` with derivative 1 on the closed interval, as Theano)
            or ``"hard_sigmoid"`` (``jax.nn.hard_sigmoid = relu6(u + 3) / 6``; the first JAX
            attempt's bug).
        square: ``"rho"`` for ``1/2 rho(u)^2`` (reference code) or ``"u"`` for ``1/2 u^2``
            (paper); identical dynamics for clipped states.
        aggregate: ``"mean"`` (reference) or ``"sum"`` over the batch of the update (the first
            JAX attempt's bug).
        state_grad: ``"sum"`` state forces from the batch-summed energy (per-example forces,
            reference) or ``"mean"`` from the batch-mean energy (step ``eps / B``; the first JAX
            attempt's bug).
    """

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        cfg = super().__new__(cls, *args, **kwargs)
        check_options(cfg)
        return cfg

    @classmethod
    def _make(cls, iterable):
        # namedtuple's _replace builds through _make, which would skip __new__'s check
        return cls(*iterable)


#: field -> allowed values, for every ``Literal`` field of :class:`EPConfig`.
OPTIONS: dict[str, tuple[str, ...]] = {
    name: get_args(hint)
    for name, hint in get_type_hints(_EPConfigFields).items()
    if get_origin(hint) is Literal
}


def option_error(name: str, value) -> ValueError:
    """The error for a value of the option ``EPConfig.<name>`` outside :data:`OPTIONS`."""
    return ValueError(f"EPConfig.{name} must be one of {OPTIONS[name]}, got {value!r}")


def check_options(cfg: EPConfig) -> None:
    """Raise ``ValueError`` if a string option of ``cfg`` is not one of its allowed values."""
    for name, allowed in OPTIONS.items():
        if getattr(cfg, name) not in allowed:
            raise option_error(name, getattr(cfg, name))


DEFAULT = EPConfig()


class Params(NamedTuple):
    """``weights[k-1] = W_k: (n_{k-1}, n_k)``, ``biases[k-1] = b_k: (n_k,)`` for k = 1..N."""

    weights: tuple[jax.Array, ...]
    biases: tuple[jax.Array, ...]


class EPState(NamedTuple):
    """Training state: parameters and (optionally) persistent particles ``(n_examples, n_k)``.

    (Defined here, not with the training task, so that ``gridlib.ep.EPState`` stays importable
    without the command line.)
    """

    params: Params
    particles: tuple[jax.Array, ...]


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
    check_options(cfg)
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
    if cfg.rho == "hard_sigmoid":
        # jax.nn.hard_sigmoid(u) = relu6(u + 3) / 6: slope 1/6 on [-3, 3], rho(0) = 1/2.
        return jax.nn.hard_sigmoid, lambda u: ((u >= -3.0) & (u <= 3.0)).astype(u.dtype) / 6.0
    raise option_error("rho", cfg.rho)


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
    if cfg.square == "rho":
        sq = r
    elif cfg.square == "u":
        sq = list(layers)
    else:
        raise option_error("square", cfg.square)
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
    under jit silently give wrong targets; see *Why the first JAX attempt did not converge*.)
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
        if cfg.square == "rho":
            f = d * (inp - r[k])
        elif cfg.square == "u":
            f = d * inp - states[k]
        else:
            raise option_error("square", cfg.square)
        out.append(f)
    b = jnp.asarray(beta, states[-1].dtype)
    b = b[:, None] if b.ndim == 1 else b
    out[-1] = out[-1] - 2.0 * cfg.cost_scale * b * (states[-1] - target)
    return tuple(out)


def relax_step(params, drive, states, target, beta, cfg: EPConfig = DEFAULT):
    """One projected step ``s <- clip(s + eps * force, 0, 1)`` of all free layers at once."""
    f = forces(params, drive, states, target, beta, cfg)
    if cfg.state_grad == "sum":
        step = cfg.eps
    elif cfg.state_grad == "mean":
        # The seed took jax.grad of the batch-MEAN energy: every force is divided by B.
        step = cfg.eps / states[0].shape[0]
    else:
        raise option_error("state_grad", cfg.state_grad)
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


def loss_after_relaxation(params, x, target, cfg: EPConfig = DEFAULT, states=None, n_steps=None):
    """``J = mean_b C(y)`` after ``n_steps`` free steps: differentiable end to end (BPTT)."""
    s = free_phase(params, x, cfg, states, n_steps)
    return jnp.mean(cost(s[-1], target, cfg))
