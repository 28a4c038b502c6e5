r"""Generalized latent equilibrium (GLE): operators, neuron and error dynamics, local plasticity.

A GLE layer ``l`` has, per neuron, a membrane time constant :math:`\tau_m` and a prospective
time constant :math:`\tau_r`. In continuous time (vectors are per layer, :math:`\odot` is
element-wise)

.. math::

    \tau_m \dot u_l &= -u_l + W_l r_{l-1} + b_l + \gamma e_l, \\
    \breve u_l &= u_l + \tau_r \dot u_l = \mathcal D^+_{\tau_r}[u_l], \\
    r_l &= \varphi_l(\breve u_l), \\
    \tau_r \dot v_l &= -v_l + \varphi'_l(\breve u_l) \odot W_{l+1}^\top e_{l+1}, \\
    e_l &= v_l + \tau_m \dot v_l = \mathcal D^+_{\tau_m}[v_l],

with the output error :math:`e_N = \beta\,\partial(-L)/\partial r_N \odot \varphi'_N` and the
plasticity :math:`\dot W_l = \eta\, e_l r_{l-1}^\top`, :math:`\dot b_l = \eta e_l`,
:math:`\dot\tau_m = -\eta_\tau e_l \odot \dot u_l`. Forward, the neuron integrates with
:math:`\tau_m` and looks ahead with :math:`\tau_r`; backward the two swap roles. With
:math:`\tau_r = \tau_m` this is Latent Equilibrium (instantaneous forward and error paths,
i.e. backprop at every instant).

Discretisation (:func:`step`): explicit Euler with step ``dt`` where **all layers update
synchronously from the previous step's values**, so signals travel one layer per step in both
directions, and the output returned at step ``n`` is the previous step's rate ``r_N^n``. All
states start at zero, the slopes ``r'`` included, so the first step carries no error.

Shapes: a network is a tuple of :class:`Layer` (``W: (n_out, n_in)``, ``b, tau_m, tau_r:
(n_out,)``); its dynamic state a tuple of :class:`LayerState` with batch-leading arrays
``(B, n_out)`` (``e_bottom: (B, n_in)``). Everything is float32 or float64, following the
parameters' dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class Layer(NamedTuple):
    """One GLE layer: ``r_out = phi(D+_{tau_r} I-_{tau_m}[W r_in + b])``.

    Attributes:
        W: ``(n_out, n_in)`` weights.
        b: ``(n_out,)`` biases (kept at zero where biases are not learned).
        tau_m: ``(n_out,)`` membrane time constants (integration forward, look-ahead backward).
        tau_r: ``(n_out,)`` prospective time constants (look-ahead forward, integration backward).
    """

    W: Array
    b: Array
    tau_m: Array
    tau_r: Array


class LayerState(NamedTuple):
    """Dynamic state of one layer for a batch of ``B`` streams.

    Attributes:
        u: ``(B, n_out)`` membrane potential.
        v: ``(B, n_out)`` error-neuron potential (integrates with ``tau_r``).
        r: ``(B, n_out)`` rate ``phi(u_breve)`` of the previous step.
        rp: ``(B, n_out)`` slope ``phi'(u_breve)`` of the previous step.
        e_bottom: ``(B, n_in)`` error sent down, ``W^T e`` of the previous step.
    """

    u: Array
    v: Array
    r: Array
    rp: Array
    e_bottom: Array


class Config(NamedTuple):
    """Static (hashable) settings of a GLE network.

    Attributes:
        activations: one name per layer, from :data:`ACTIVATIONS`.
        dt: Euler step.
        gamma: error feedback into the soma (``0``: errors never change the forward pass).
        beta: output nudging strength.
        prospective_errors: ``True``: GLE error dynamics ``e = D+_{tau_m} I-_{tau_r}[...]``;
            ``False``: the instantaneous error ``e = phi' W^T e_above`` (the "BP" baseline).
        loss: ``"mse"`` (error ``beta (target - r_N)``) or ``"ce"`` (softmax cross-entropy on
            linear logits, error ``beta (target - softmax(r_N))``, target a probability vector).
        learn_bias: produce bias gradients.
        learn_tau: produce ``tau_m`` gradients (``d tau_m/dt = -eta e u_dot``).
        plastic: per layer, whether it learns at all (``None``: every layer).
    """

    activations: tuple[str, ...]
    dt: float
    gamma: float = 0.0
    beta: float = 1.0
    prospective_errors: bool = True
    loss: str = "mse"
    learn_bias: bool = True
    learn_tau: bool = False
    plastic: tuple[bool, ...] | None = None


def _softplus_prime(x):
    return jax.nn.sigmoid(x)


def _tanh_prime(x):
    t = jnp.tanh(x)
    return 1.0 - t * t


def _sigmoid_prime(x):
    s = jax.nn.sigmoid(x)
    return s * (1.0 - s)


#: name -> (phi, phi'). ``linear`` is the identity (input filter banks and logit layers).
ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "linear": (lambda x: x, jnp.ones_like),
    "tanh": (jnp.tanh, _tanh_prime),
    "softplus": (jax.nn.softplus, _softplus_prime),
    "sigmoid": (jax.nn.sigmoid, _sigmoid_prime),
}

LOSSES = ("mse", "ce")


# --------------------------------------------------------------------------------------------
# Operators and their transfer functions
# --------------------------------------------------------------------------------------------


def transfer(op: str, omega, tau):
    r"""Continuous transfer function of an operator at angular frequency ``omega``.

    ``D+``: :math:`1 + i\omega\tau`; ``D-``: :math:`1 - i\omega\tau`; ``I-`` (causal low-pass,
    inverse of ``D+``): :math:`1/(1 + i\omega\tau)`; ``I+`` (anti-causal, inverse of ``D-``):
    :math:`1/(1 - i\omega\tau)`. Convention: a signal :math:`e^{i\omega t}` is multiplied by it.
    """
    jw = 1j * np.asarray(omega) * np.asarray(tau)
    table = {"D+": 1 + jw, "D-": 1 - jw, "I-": 1 / (1 + jw), "I+": 1 / (1 - jw)}
    if op not in table:
        raise ValueError(f"unknown operator {op!r}; use one of {sorted(table)}")
    return table[op]


def forward_transfer(omega, tau_m, tau_r):
    r"""Neuron transfer :math:`\mathcal D^+_{\tau_r}\mathcal I^-_{\tau_m}`:
    :math:`(1 + i\omega\tau_r)/(1 + i\omega\tau_m)` (phase :math:`\arctan\omega\tau_r -
    \arctan\omega\tau_m \le 0` for :math:`\tau_r \le \tau_m`: a lag)."""
    return transfer("D+", omega, tau_r) * transfer("I-", omega, tau_m)


def error_transfer(omega, tau_m, tau_r):
    r"""GLE error transfer :math:`\mathcal D^+_{\tau_m}\mathcal I^-_{\tau_r}`:
    :math:`(1 + i\omega\tau_m)/(1 + i\omega\tau_r)`, causal and phase-advancing."""
    return transfer("D+", omega, tau_m) * transfer("I-", omega, tau_r)


def adjoint_transfer(omega, tau_m, tau_r):
    r"""Exact adjoint transfer :math:`\mathcal I^+_{\tau_m}\mathcal D^-_{\tau_r}`:
    :math:`(1 - i\omega\tau_r)/(1 - i\omega\tau_m)`: the same phase as :func:`error_transfer`,
    the inverse amplitude, but anti-causal."""
    return transfer("I+", omega, tau_m) * transfer("D-", omega, tau_r)


def euler_transfer(omega, dt, tau_int, tau_look):
    r"""Exact transfer of the discretised prospective filter used by :func:`step`.

    With :math:`a = dt/\tau_{int}` and :math:`\rho = \tau_{look}/\tau_{int}`, the scheme
    :math:`x_{n+1} = x_n + a(s_n - x_n)`, :math:`y_n = x_n + \rho(s_n - x_n)` has
    :math:`H(z) = \rho + (1-\rho)\,a/(z - 1 + a)` at :math:`z = e^{i\omega\,dt}`. Forward:
    ``(tau_int, tau_look) = (tau_m, tau_r)``; error path: ``(tau_r, tau_m)``.
    """
    z = np.exp(1j * np.asarray(omega) * dt)
    a = dt / np.asarray(tau_int)
    rho = np.asarray(tau_look) / np.asarray(tau_int)
    return rho + (1 - rho) * a / (z - 1 + a)


def low_pass(xs: Array, tau, dt: float) -> Array:
    r"""Causal low-pass :math:`\mathcal I^-_\tau` by exact exponential integration over time.

    ``xs: (T, ...)``, time leading; zero initial state; sample-and-hold input.
    """
    decay = jnp.exp(-dt / jnp.asarray(tau, dtype=xs.dtype))

    def body(y, x):
        y = decay * y + (1 - decay) * x
        return y, y

    return jax.lax.scan(body, jnp.zeros_like(xs[0]), xs)[1]


# --------------------------------------------------------------------------------------------
# Construction and validation
# --------------------------------------------------------------------------------------------


def make_layer(
    key: Array,
    n_in: int,
    n_out: int,
    tau_m,
    tau_r,
    *,
    bias: bool = True,
    dtype=jnp.float32,
) -> Layer:
    """A layer with ``torch.nn.Linear``-style initialisation ``U(+-1/sqrt(n_in))`` for W and b.

    ``tau_m``, ``tau_r``: scalars or ``(n_out,)`` sequences.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"layer sizes must be positive, got n_in={n_in}, n_out={n_out}")
    kw, kb = jax.random.split(key)
    bound = 1.0 / np.sqrt(n_in)
    W = jax.random.uniform(kw, (n_out, n_in), dtype, -bound, bound)
    b = jax.random.uniform(kb, (n_out,), dtype, -bound, bound) if bias else jnp.zeros(n_out, dtype)
    tm = jnp.broadcast_to(jnp.asarray(tau_m, dtype), (n_out,))
    tr = jnp.broadcast_to(jnp.asarray(tau_r, dtype), (n_out,))
    return Layer(W, b, tm, tr)


def le_layer(key: Array, n_in: int, n_out: int, tau, **kwargs) -> Layer:
    """A Latent Equilibrium layer: the special case ``tau_r = tau_m = tau``."""
    return make_layer(key, n_in, n_out, tau, tau, **kwargs)


def validate(net: Sequence[Layer], cfg: Config) -> None:
    """Raise ``ValueError`` on an inconsistent network/config (concrete arrays only).

    Checks: one activation per layer, known names, chained shapes, ``tau_m, tau_r >= dt``
    (explicit Euler is unstable/overshooting below that), ``dt > 0``, a known loss.
    """
    if len(net) == 0:
        raise ValueError("a GLE network needs at least one layer")
    if not cfg.dt > 0:
        raise ValueError(f"dt must be positive, got {cfg.dt}")
    if len(cfg.activations) != len(net):
        raise ValueError(
            f"{len(cfg.activations)} activations given for {len(net)} layers; give one per layer"
        )
    for name in cfg.activations:
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}")
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}; use one of {LOSSES}")
    if cfg.plastic is not None and len(cfg.plastic) != len(net):
        raise ValueError(f"plastic has {len(cfg.plastic)} entries for {len(net)} layers")
    for i, lay in enumerate(net):
        n_out, n_in = lay.W.shape
        if i > 0 and n_in != net[i - 1].W.shape[0]:
            raise ValueError(
                f"layer {i} expects {n_in} inputs but layer {i - 1} has {net[i - 1].W.shape[0]} units"
            )
        for name in ("b", "tau_m", "tau_r"):
            if getattr(lay, name).shape != (n_out,):
                raise ValueError(
                    f"layer {i}: {name} has shape {getattr(lay, name).shape}, expected ({n_out},)"
                )
        if isinstance(lay.tau_m, jax.core.Tracer) or isinstance(lay.tau_r, jax.core.Tracer):
            continue
        for name in ("tau_m", "tau_r"):
            t = np.asarray(getattr(lay, name))
            if np.any(t < cfg.dt * (1 - 1e-6)):
                raise ValueError(
                    f"layer {i}: {name} has values {t.min():.4g} below dt={cfg.dt}; explicit Euler "
                    f"needs every time constant >= dt"
                )


def init_state(net: Sequence[Layer], batch: int, dtype=None) -> tuple[LayerState, ...]:
    """All-zero dynamic state (slopes ``r'`` included) for ``batch`` streams."""
    out = []
    for lay in net:
        n_out, n_in = lay.W.shape
        dt_ = dtype or lay.W.dtype
        z = jnp.zeros((batch, n_out), dt_)
        out.append(LayerState(z, z, z, z, jnp.zeros((batch, n_in), dt_)))
    return tuple(out)


def resize_state(state: Sequence[LayerState], batch: int) -> tuple[LayerState, ...]:
    """Tile (or narrow) a state to ``batch`` rows: rows ``i`` copy row ``i mod B``."""
    def fix(a):
        b0 = a.shape[0]
        reps = -(-batch // b0)
        return jnp.tile(a, (reps,) + (1,) * (a.ndim - 1))[:batch]

    return jax.tree.map(fix, tuple(state))


# --------------------------------------------------------------------------------------------
# One Euler step of the whole network
# --------------------------------------------------------------------------------------------


def output_error(r_out: Array, target: Array, cfg: Config) -> Array:
    """``beta * d(-L)/d r_N`` for the previous output ``r_out: (B, n)`` and ``target: (B, n)``."""
    if cfg.loss == "mse":
        return cfg.beta * (target - r_out)
    return cfg.beta * (target - jax.nn.softmax(r_out, axis=-1))


def loss_value(r_out: Array, target: Array, cfg: Config) -> Array:
    """Per-example loss ``(B,)``: ``0.5 ||target - r||^2`` or ``-sum target log softmax(r)``."""
    if cfg.loss == "mse":
        return 0.5 * jnp.sum((target - r_out) ** 2, axis=-1)
    return -jnp.sum(target * jax.nn.log_softmax(r_out, axis=-1), axis=-1)


class StepOut(NamedTuple):
    """What :func:`step` reports besides the new state.

    Attributes:
        out: ``(B, n_N)`` the network output of this step (the previous step's ``r_N``).
        errors: per layer ``(B, n_l)`` the error ``e_l`` used for plasticity this step.
        u_breve: per layer ``(B, n_l)`` the prospective potential computed this step.
    """

    out: Array
    errors: tuple[Array, ...]
    u_breve: tuple[Array, ...]


def step(
    net: Sequence[Layer],
    state: Sequence[LayerState],
    x: Array,
    target: Array | None,
    cfg: Config,
    drive: Sequence[Array] | None = None,
) -> tuple[tuple[LayerState, ...], tuple[Layer, ...], StepOut]:
    r"""One synchronous Euler step (all layers read the previous step's values).

    For layer ``l`` with input ``r_{l-1}^n`` (``x`` for ``l = 0``)::

        inst_e = e_bottom_{l+1}^n * r'_l^n        (top: output_error(r_N^n, target) * r'_N^n)
        inst_s = W_l r_{l-1}^n + b_l
        prospective:  v_dot = (inst_e - v^n)/tau_r;  v^{n+1} = v^n + dt v_dot;  e = v^n + tau_m v_dot
        otherwise:    v^{n+1} = e = inst_e
        u_dot = (inst_s + gamma e - u^n)/tau_m;  u^{n+1} = u^n + dt u_dot;  u_breve = u^n + tau_r u_dot
        r^{n+1} = phi(u_breve);  r'^{n+1} = phi'(u_breve);  e_bottom^{n+1} = W_l^T e

    Args:
        net: the layers.
        state: the dynamic state (``B`` streams).
        x: ``(B, n_0)`` the input at this step.
        target: ``(B, n_N)`` the target at this step, or ``None`` (no output error).
        cfg: static settings.
        drive: optional per-layer ``(B, n_l)`` currents added to ``W r + b`` (zero in the model;
            differentiating a loss with respect to them gives the exact adjoint).

    Returns:
        ``(new_state, grads, StepOut)``; ``grads`` has the structure of ``net`` and holds the
        *descent directions' negatives* in the optimiser convention
        ``grad W = -mean_b(e r_{l-1}^T)``, ``grad b = -mean_b(e)``,
        ``grad tau_m = mean_b(e u_dot)`` (``grad tau_r = 0``), so an optimiser that *descends*
        on them performs the GLE plasticity.
    """
    n_layers = len(net)
    plastic = cfg.plastic or (True,) * n_layers
    new_state, grads, errs, ubs = [], [], [], []
    for l in range(n_layers):  # unrolled at trace time: layers differ in shape
        lay, st = net[l], state[l]
        r_pre = x if l == 0 else state[l - 1].r
        if l == n_layers - 1:
            if target is None:
                inst_e = jnp.zeros_like(st.r)
            else:
                inst_e = output_error(st.r, target, cfg) * st.rp
        else:
            inst_e = state[l + 1].e_bottom * st.rp
        inst_s = r_pre @ lay.W.T + lay.b
        if drive is not None:
            inst_s = inst_s + drive[l]
        if cfg.prospective_errors:
            v_dot = (inst_e - st.v) / lay.tau_r
            v_new = st.v + cfg.dt * v_dot
            e = st.v + lay.tau_m * v_dot
        else:
            v_new = e = inst_e
        soma = inst_s + cfg.gamma * e if cfg.gamma != 0 else inst_s
        u_dot = (soma - st.u) / lay.tau_m
        u_new = st.u + cfg.dt * u_dot
        u_breve = st.u + lay.tau_r * u_dot
        phi, dphi = ACTIVATIONS[cfg.activations[l]]
        # the input layer's error has nowhere to go: skip the product, keep the pytree shape
        e_bottom = e @ lay.W if l > 0 else st.e_bottom
        new_state.append(LayerState(u_new, v_new, phi(u_breve), dphi(u_breve), e_bottom))
        batch = x.shape[0]
        zero = jnp.zeros_like
        if plastic[l]:
            gW = -(e.T @ r_pre) / batch
            gb = -jnp.mean(e, axis=0) if cfg.learn_bias else zero(lay.b)
            gt = jnp.mean(e * u_dot, axis=0) if cfg.learn_tau else zero(lay.tau_m)
        else:
            gW, gb, gt = zero(lay.W), zero(lay.b), zero(lay.tau_m)
        grads.append(Layer(gW, gb, gt, zero(lay.tau_r)))
        errs.append(e)
        ubs.append(u_breve)
    return tuple(new_state), tuple(grads), StepOut(state[-1].r, tuple(errs), tuple(ubs))


# --------------------------------------------------------------------------------------------
# Time loops
# --------------------------------------------------------------------------------------------


def simulate(
    net: Sequence[Layer],
    state: Sequence[LayerState],
    xs: Array,
    targets: Array | None,
    cfg: Config,
    *,
    record: bool = False,
    drives: Sequence[Array] | None = None,
):
    """Run the dynamics over ``xs: (T, B, n_0)`` with frozen parameters (``lax.scan``).

    ``targets: (T, B, n_N)`` or ``None``; ``drives``: optional per-layer ``(T, B, n_l)`` currents
    (see :func:`step`). Returns ``(final_state, outs)`` where ``outs: (T, B, n_N)``; with
    ``record=True`` instead of ``outs`` the pair ``(StepOut, grads)`` per step (time leading).
    """
    net = tuple(net)
    drives = None if drives is None else tuple(drives)

    def body(st, inp):
        x, t, d = inp  # t, d are None when absent (None is an empty pytree for scan)
        st, g, so = step(net, st, x, t, cfg, d)
        return st, ((so, g) if record else so.out)

    return jax.lax.scan(body, tuple(state), (xs, targets, drives))


def feedforward(net: Sequence[Layer], x: Array, cfg: Config) -> tuple[Array, ...]:
    """The instantaneous network ``r_l = phi_l(W_l r_{l-1} + b_l)`` (what LE computes)."""
    rs, r = [], x
    for l, lay in enumerate(net):
        r = ACTIVATIONS[cfg.activations[l]][0](r @ lay.W.T + lay.b)
        rs.append(r)
    return tuple(rs)
