r"""The N x M grid of filter cells: initialisation, input wiring, the wavefront forward, losses.

Cell :math:`(i, j)` (row :math:`i`, column :math:`j`) takes its left input from
:math:`y_{i,j-1}(t)` (or the external channel :math:`x_t[i]` when :math:`j = 0`) and its top input
from :math:`y_{i-1,j}(t)` (or 0 when :math:`i = 0`), both **of the same time step**. The bottom row
is the readout :math:`r(t) = y_{N-1,\cdot}(t)`; logits are :math:`\ell = \sum_t r(t)`.

Within one time step the cells form a DAG of depth :math:`N+M-2`; cell :math:`(i,j,t)` depends on
:math:`(i-1,j,t)`, :math:`(i,j-1,t)` and :math:`(i,j,t-1)`. Two vectorised schedules follow:

- :func:`step`: one time step as :math:`N+M-1` anti-diagonal stages (cells with equal
  :math:`p = i+j` are independent). A per-step map, kept as the simpler schedule to check.
- :func:`forward`: a whole sequence as :math:`T+N+M-2` hyperplane stages :math:`q = t+i+j`: every
  stage updates the whole grid at once, each cell at its own time :math:`t = q-i-j`. This is the
  fast path (64 sequential stages for ``T=28``, 28x10 instead of ``28 * 37 = 1036``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from gridlib.filtergrid.cell import DT, GridParams, zoh_coefficients

LOSS_MODES = ("sum", "per_t")


class Trajectory(NamedTuple):
    """Everything the learning rules need from one forward pass; each array is ``(T, N, M)``.

    Attributes:
        s: state after the step, ``s(t)``.
        y: output ``tanh(s(t) + b)``.
        u: left input of the step (``x_t[i]`` in column 0).
        v: top input of the step (0 in row 0).
        s_prev: state before the step, ``s(t-1)`` (zero at ``t = 0``).
    """

    s: Array
    y: Array
    u: Array
    v: Array
    s_prev: Array


# ----------------------------------------------------------------------------------------------
# validation


def check_params(params: GridParams) -> tuple[int, int]:
    """Return ``(N, M)``; raise ``ValueError`` unless all four arrays are ``(N, M)`` with N, M >= 1."""
    if not isinstance(params, GridParams):
        raise ValueError(f"params must be a GridParams, got {type(params).__name__}")
    shape = np.shape(params.w_left)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"grid parameters must be (N, M) arrays with N, M >= 1, got shape {shape}")
    for name, arr in zip(GridParams._fields, params, strict=True):
        if np.shape(arr) != shape:
            raise ValueError(f"params.{name} has shape {np.shape(arr)}, expected {shape}")
    return shape


def check_inputs(params: GridParams, xs: Array) -> tuple[int, int, int]:
    """Return ``(T, N, M)``; raise ``ValueError`` unless ``xs`` is ``(T, N)`` with ``T >= 1``."""
    n, m = check_params(params)
    if np.ndim(xs) != 2 or np.shape(xs)[1] != n or np.shape(xs)[0] < 1:
        raise ValueError(
            f"xs must be (T, N) = (T, {n}) with T >= 1 (one drive per grid row and time step), "
            f"got shape {np.shape(xs)}"
        )
    return np.shape(xs)[0], n, m


def check_loss_mode(mode: str) -> None:
    if mode not in LOSS_MODES:
        raise ValueError(f"loss mode must be one of {LOSS_MODES}, got {mode!r}")


# ----------------------------------------------------------------------------------------------
# initialisation and input wiring


def init_params(
    key: Array, n_rows: int, n_cols: int, *, tau_min: float = 1e-3, tau_max: float = 20e-3,
    dtype=jnp.float32,
) -> GridParams:
    """Initial parameters as in the original scripts.

    ``log_tau ~ U[log tau_min, log tau_max]``, ``w_left, w_top ~ N(0,1)/sqrt(2)`` ("fan-in 2"),
    ``bias ~ N(0, 0.05^2)``. The key is split into 6 as ``(tau, wL, wT, b, enc, mask)``; the last
    two belong to :func:`make_routing`, so one key initialises the whole model.
    """
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"grid must have n_rows, n_cols >= 1, got {n_rows} x {n_cols}")
    if not 0 < tau_min <= tau_max:
        raise ValueError(f"need 0 < tau_min <= tau_max, got {tau_min}, {tau_max}")
    k_tau, k_wl, k_wt, k_b, _, _ = jax.random.split(key, 6)
    shape = (n_rows, n_cols)
    params = GridParams(
        log_tau=jax.random.uniform(k_tau, shape, dtype, np.log(tau_min), np.log(tau_max)),
        w_left=jax.random.normal(k_wl, shape, dtype) / np.sqrt(2.0),
        w_top=jax.random.normal(k_wt, shape, dtype) / np.sqrt(2.0),
        bias=0.05 * jax.random.normal(k_b, shape, dtype),
    )
    return jax.tree.map(lambda z: z.astype(dtype), params)  # numpy scalars must not promote


def make_routing(key: Array, n_inputs: int, n_rows: int, dtype=jnp.float32) -> Array:
    """Fixed (never trained) input wiring ``R: (N, N_ext)``; ``x_t = R @ x_ext(t)``.

    Identity when ``N_ext == N``; otherwise a sparse random matrix
    ``N(0,1)/sqrt(max(0.1 N_ext, 1))`` masked by Bernoulli(0.1).
    """
    if n_inputs < 1 or n_rows < 1:
        raise ValueError(f"need n_inputs, n_rows >= 1, got {n_inputs}, {n_rows}")
    if n_inputs == n_rows:
        return jnp.eye(n_rows, dtype=dtype)
    _, _, _, _, k_enc, k_mask = jax.random.split(key, 6)
    w = jax.random.normal(k_enc, (n_rows, n_inputs), dtype) / float(np.sqrt(max(0.1 * n_inputs, 1.0)))
    return w * jax.random.bernoulli(k_mask, 0.1, (n_rows, n_inputs)).astype(dtype)


def encode(routing: Array, x_ext: Array) -> Array:
    """``(T, N_ext) -> (T, N)``: the left-shoreline drive, ``x_t = R @ x_ext(t)``."""
    if np.ndim(x_ext) != 2 or np.ndim(routing) != 2 or np.shape(x_ext)[1] != np.shape(routing)[1]:
        raise ValueError(
            f"x_ext must be (T, N_ext) and routing (N, N_ext); got {np.shape(x_ext)} and "
            f"{np.shape(routing)}"
        )
    return x_ext @ routing.T


# ----------------------------------------------------------------------------------------------
# skewed (anti-diagonal) layout


def skew_indices(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays ``(rows, cols, valid)``, each ``(N+M-1, N)``: diagonal ``p``, slot ``i`` holds
    cell ``(i, p-i)``, which exists iff ``0 <= p-i < M``."""
    p = np.arange(n + m - 1)[:, None]
    i = np.broadcast_to(np.arange(n)[None, :], (n + m - 1, n))
    j = p - i
    valid = (j >= 0) & (j < m)
    return i, np.clip(j, 0, m - 1), valid


def skew(x: Array) -> Array:
    """``(..., N, M) -> (..., N+M-1, N)``: anti-diagonal ``p = i + j`` as rows, zero-padded."""
    n, m = x.shape[-2:]
    rows, cols, valid = skew_indices(n, m)
    return jnp.where(valid, x[..., rows, cols], 0)


def unskew(z: Array, m: int) -> Array:
    """Inverse of :func:`skew`: ``(..., N+M-1, N) -> (..., N, M)``."""
    n = z.shape[-1]
    i = np.arange(n)[:, None]
    j = np.arange(m)[None, :]
    return z[..., i + j, np.broadcast_to(i, (n, m))]


# ----------------------------------------------------------------------------------------------
# forward


def step(params: GridParams, s_prev: Array, x_t: Array, dt: float = DT) -> tuple[Array, Array]:
    """One time step of the whole grid by anti-diagonal wavefront: ``(s(t-1), x_t) -> (s(t), y(t))``.

    Shapes: ``s_prev (N, M)``, ``x_t (N,)``. ``N+M-1`` sequential stages, each a length-``N`` vector
    op: on diagonal ``p`` the left input of slot ``i`` is slot ``i`` of diagonal ``p-1`` and the
    top input is slot ``i-1`` of diagonal ``p-1``.
    """
    n, m = check_params(params)
    a, c = zoh_coefficients(params.log_tau, dt)
    _, _, valid = skew_indices(n, m)
    first_col = np.arange(n + m - 1)[:, None] == np.arange(n)[None, :]  # j == 0  <=>  p == i
    xs = (skew(a), skew(c), skew(params.w_left), skew(params.w_top), skew(params.bias),
          skew(s_prev), valid, first_col)

    def stage(y_prev, inp):
        a_p, c_p, wl_p, wt_p, b_p, sp_p, valid_p, first_p = inp
        u = jnp.where(first_p, x_t, y_prev)
        v = jnp.concatenate([jnp.zeros_like(y_prev[:1]), y_prev[:-1]])
        s = a_p * sp_p + c_p * (wl_p * u + wt_p * v)
        y = jnp.where(valid_p, jnp.tanh(s + b_p), 0.0)
        return y, s

    _, s_diag = jax.lax.scan(stage, jnp.zeros(n, s_prev.dtype), xs)
    s = unskew(s_diag, m)
    return s, jnp.tanh(s + params.bias)


def hyperplane_schedule(xs: Array, n: int, m: int) -> tuple[Array, np.ndarray]:
    """Inputs of the hyperplane schedule for a sequence ``xs: (T, N)``.

    On stage ``q`` cell ``(i, j)`` processes time ``t = q - i - j``. Returns ``x_in: (Q, N)``, the
    drive that column 0 sees on each stage (``xs[q - i, i]``, zero outside ``[0, T)``), and
    ``started: (Q, N, M)``, which is 1 where ``t >= 0``. ``Q = T + N + M - 2``.
    """
    t_len = xs.shape[0]
    n_stages = t_len + n + m - 2
    tx = np.arange(n_stages)[:, None] - np.arange(n)[None, :]
    x_in = jnp.where((tx >= 0) & (tx < t_len), xs[np.clip(tx, 0, t_len - 1), np.arange(n)], 0.0)
    t_of = (np.arange(n_stages)[:, None, None] - np.arange(n)[None, :, None]
            - np.arange(m)[None, None, :])
    return x_in, (t_of >= 0).astype(np.float32)


def from_hyperplanes(z: Array, t_len: int) -> Array:
    """``(Q, N, M) -> (T, N, M)``: cell ``(i, j)`` at time ``t`` lives on hyperplane ``t + i + j``."""
    n, m = z.shape[-2:]
    t = np.arange(t_len)[:, None, None]
    i = np.arange(n)[None, :, None]
    j = np.arange(m)[None, None, :]
    return z[t + i + j, i, j]


def left_inputs(y: Array, x_col: Array) -> Array:
    """``u``: each cell's left neighbour's output, ``x_col[i]`` in column 0. ``y: (..., N, M)``."""
    return jnp.concatenate([x_col[..., :, None], y[..., :, :-1]], axis=-1)


def top_inputs(y: Array) -> Array:
    """``v``: each cell's upper neighbour's output, 0 in row 0. ``y: (..., N, M)``."""
    return jnp.concatenate([jnp.zeros_like(y[..., :1, :]), y[..., :-1, :]], axis=-2)


def hyperplane_stage(params: GridParams, a: Array, c: Array, s_prev: Array, y_prev: Array,
                     x_col: Array, on: Array) -> tuple[Array, Array, Array, Array]:
    """One hyperplane stage of the grid: every cell advances by one of its own time steps.

    Cell-major arrays ``(N, M, *batch)``: ``s_prev``, ``y_prev`` as left by the previous stage
    (each cell's own ``s(t-1)``; its neighbours' ``y(t)``), ``x_col: (N, *batch)`` the drive of
    column 0, ``on`` 1 where the cell has started (``t >= 0``). ``params``, ``a``, ``c`` must
    broadcast against ``(N, M, *batch)``. Returns ``(s, y, u, v)``. This is the one forward that
    BPTT, exact RTRL and SnAP-1 share.
    """
    u = jnp.concatenate([x_col[:, None], y_prev[:, :-1]], axis=1)  # left input, x in column 0
    v = jnp.concatenate([jnp.zeros_like(y_prev[:1]), y_prev[:-1]], axis=0)  # top input, 0 in row 0
    s = a * s_prev + c * (params.w_left * u + params.w_top * v)
    # Cells that have not started (t < 0) see zero inputs, so s stays 0; y must be masked
    # because tanh(0 + b) != 0. Cells past the end (t >= T) run on harmlessly and are never read.
    return s, on * jnp.tanh(s + params.bias), u, v


def _hyperplane_scan(params: GridParams, xs: Array, dt: float, emit, unroll: int = 1) -> Array:
    """Run all ``T + N + M - 2`` hyperplane stages of one sequence; stack ``emit(s, y)`` per stage."""
    _, n, m = check_inputs(params, xs)
    a, c = zoh_coefficients(params.log_tau, dt)
    x_in, started = hyperplane_schedule(xs, n, m)

    def stage(carry, inp):
        s, y, _, _ = hyperplane_stage(params, a, c, *carry, *inp)
        return (s, y), emit(s, y)

    zero = jnp.zeros((n, m), xs.dtype)
    return jax.lax.scan(stage, (zero, zero), (x_in, started), unroll=unroll)[1]


def _hyperplane_states(params: GridParams, xs: Array, dt: float, unroll: int) -> Array:
    """All states ``s(t)`` as ``(T, N, M)``, computed on hyperplanes ``q = t + i + j``."""
    s_q = _hyperplane_scan(params, xs, dt, lambda s, y: s, unroll)
    return from_hyperplanes(s_q, xs.shape[0])


def hyperplane_readout(params: GridParams, xs: Array, dt: float = DT) -> Array:
    """Only the readout ``r(t) = y_{N-1,:}(t)``, shape ``(T, M)``, from the hyperplane forward.

    Cheaper to differentiate in forward mode than :func:`forward` (exact RTRL uses it): only the
    bottom row leaves the scan.
    """
    t_len, n, m = check_inputs(params, xs)
    r_q = _hyperplane_scan(params, xs, dt, lambda s, y: y[-1])  # (Q, M)
    j = np.arange(m)[None, :]
    return r_q[np.arange(t_len)[:, None] + n - 1 + j, j]  # r_j(t) lives on hyperplane t + N-1 + j


def forward(params: GridParams, xs: Array, dt: float = DT, unroll: int = 1) -> Trajectory:
    """Run the grid over a sequence ``xs: (T, N)`` from rest; returns a :class:`Trajectory`.

    Equations (every cell, every step): ``u = y_{i,j-1}(t)`` or ``x_t[i]``; ``v = y_{i-1,j}(t)``
    or 0; ``s(t) = a s(t-1) + c (w_L u + w_T v)``; ``y = tanh(s + b)``.
    """
    s = _hyperplane_states(params, xs, dt, unroll)
    y = jnp.tanh(s + params.bias)
    u = left_inputs(y, xs)
    v = top_inputs(y)
    s_prev = jnp.concatenate([jnp.zeros_like(s[:1]), s[:-1]], axis=0)
    return Trajectory(s=s, y=y, u=u, v=v, s_prev=s_prev)


# ----------------------------------------------------------------------------------------------
# readout and losses


def readout(traj: Trajectory) -> Array:
    """Bottom-row outputs ``r(t) = y_{N-1, :}(t)``, shape ``(T, M)``."""
    return traj.y[:, -1, :]


def loss_from_readout(r: Array, label: Array, mode: str = "sum") -> Array:
    r"""Cross-entropy of the readout ``r: (T, M)`` for an integer ``label``.

    ``"sum"``: :math:`\mathrm{CE}(\mathrm{softmax}(\sum_t r(t)), y^*)`;
    ``"per_t"``: :math:`\frac1T \sum_t \mathrm{CE}(\mathrm{softmax}(r(t)), y^*)`.
    """
    check_loss_mode(mode)
    if mode == "sum":
        return optax.softmax_cross_entropy_with_integer_labels(r.sum(0), label)
    labels = jnp.broadcast_to(label, r.shape[:1])
    return optax.softmax_cross_entropy_with_integer_labels(r, labels).mean()


def loss(params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT) -> Array:
    """Loss of one sequence ``xs: (T, N)`` with integer ``label``."""
    return loss_from_readout(readout(forward(params, xs, dt)), label, mode)


def predict(r: Array) -> Array:
    """Predicted class: ``argmax_m sum_t r(t)_m``."""
    return jnp.argmax(r.sum(-2), axis=-1)
