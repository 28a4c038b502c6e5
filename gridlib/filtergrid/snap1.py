r"""SnAP-1: the local learning rule of the analog-filter grid, in one place.

For a parameter :math:`\theta_k` of cell :math:`k` the exact per-step gradient is

.. math::
    \frac{dL_t}{d\theta_k} &= \sum_j m_j(t)\,(1-y_j^2(t)) \\
        &\qquad {}\times \big[a_j J_{j,k}(t-1) \\
        &\qquad\quad + \delta_{jk}\,\partial s_k(t)/\partial\theta_k|_{\text{imm}}\big] \\
        &\qquad \;(+\,m_k (1-y_k^2) \text{ for } \theta = b),

with :math:`m_j(t) = \partial L_t/\partial y_j(t)` the within-step backward message and
:math:`J_{j,k} = ds_j/d\theta_k`. SnAP-1 keeps :math:`j \in \{k, \mathrm{below}(k),
\mathrm{right}(k)\}`:

- **self-traces** (3 per cell) give :math:`J_{k,k}` exactly
  (:func:`~gridlib.filtergrid.cell.self_trace_step`), hence the output sensitivities
  :math:`f_\theta = dy_k/d\theta_k`;
- **cross-traces** (2 descendants x 4 parameter types = 8 per cell) give :math:`J_{d,k}` exactly:
  :math:`\varepsilon^d_{k,\theta}(t) = a_d\,\varepsilon^d_{k,\theta}(t-1) + c_d \kappa_d f_{\theta,k}(t)`
  with :math:`\kappa = w_T` of the cell below and :math:`w_L` of the cell to the right;
- the local gradient per step is

  .. math::
      \Delta_t\theta_k &= m_k f_{\theta,k} \\
          &\quad + \sum_{d} m_d (1-y_d^2)\,\big[\varepsilon^d_{k,\theta}(t) \\
          &\qquad\quad - c_d\kappa_d f_{\theta,k}(t)\big],

  where the bracket ("past-only subtraction") equals :math:`a_d\varepsilon^d(t-1)`: the same-step
  path through :math:`d` is already inside :math:`m_k`.

Dropped: the temporal carry :math:`a_j J_{j,k}(t-1)` of every descendant at Manhattan distance
:math:`\ge 2`. So SnAP-1 is exact at ``T = 1`` and approximate after.

With the ``"sum"`` loss the readout gradient is known only after the last step, so, like the
original code, the messages are computed after the forward pass from the stored trajectory. Since
they are computed backwards anyway, the fast path (:func:`snap1_batch_grads`) also runs the
cross-traces' linear recursion backwards, as *adjoint traces*: the same sum, a third less work
(see ``_snap1_core``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from gridlib.filtergrid.cell import (
    DT,
    GridParams,
    SelfTraces,
    output_sensitivities,
    self_trace_step,
    zero_self_traces,
    zoh_coefficients,
)
from gridlib.filtergrid.model import (
    check_inputs,
    check_loss_mode,
    hyperplane_stage,
    loss_from_readout,
)


class CrossTraces(NamedTuple):
    """The 8 cross-traces of every cell: ``below`` and ``right``, each a :class:`GridParams`."""

    below: GridParams
    right: GridParams


def _up(x: Array) -> Array:
    """``x[i+1, j, ...]`` with zeros past the last row: the value at the cell below.

    Arrays here are cell-major, ``(N, M, *batch)``.
    """
    return jnp.concatenate([x[1:], jnp.zeros_like(x[:1])], axis=0)


def _left(x: Array) -> Array:
    """``x[i, j+1, ...]`` with zeros past the last column: the value at the cell to the right."""
    return jnp.concatenate([x[:, 1:], jnp.zeros_like(x[:, :1])], axis=1)


def descendant_coefficients(params: GridParams, dt: float = DT):
    """``(a_d, c_d, kappa_d)`` of the two descendants, each ``(N, M)``, for ``d`` = below, right.

    Missing descendants (last row / last column) get zeros, so their cross-traces stay 0.
    """
    a, c = zoh_coefficients(params.log_tau, dt)
    below = (_up(a), _up(c), _up(params.w_top))  # y_k is the top input of the cell below
    right = (_left(a), _left(c), _left(params.w_left))  # ... and the left input of the right one
    return below, right


def cross_trace_step(cross: CrossTraces, f: GridParams, params: GridParams,
                     dt: float = DT) -> CrossTraces:
    """``eps_d <- a_d eps_d + c_d kappa_d f`` for d = below, right (elementwise, every cell)."""
    (a_b, c_b, k_b), (a_r, c_r, k_r) = descendant_coefficients(params, dt)
    return CrossTraces(
        below=jax.tree.map(lambda e, fk: a_b * e + c_b * k_b * fk, cross.below, f),
        right=jax.tree.map(lambda e, fk: a_r * e + c_r * k_r * fk, cross.right, f),
    )


def step_gradient(m: Array, gm_below: Array, gm_right: Array, f: GridParams, cross: CrossTraces,
                  params: GridParams, dt: float = DT) -> GridParams:
    """One step's local gradient of every parameter (elementwise, every cell).

    ``m``: the cell's own message; ``gm_below``, ``gm_right``: ``m_d (1 - y_d^2)`` of its two
    descendants (0 where missing). The bracket ``eps_d - c_d kappa_d f`` is the past-only
    subtraction: it equals ``a_d eps_d(t-1)``.
    """
    (_, c_b, k_b), (_, c_r, k_r) = descendant_coefficients(params, dt)
    return jax.tree.map(
        lambda fk, e_b, e_r: m * fk + gm_below * (e_b - c_b * k_b * fk)
        + gm_right * (e_r - c_r * k_r * fk),
        f, cross.below, cross.right,
    )


def _expand(params: GridParams, n_batch_dims: int) -> GridParams:
    """Append singleton axes so that ``(N, M)`` parameters broadcast over ``(N, M, *batch)``."""
    return jax.tree.map(lambda z: z.reshape(z.shape + (1,) * n_batch_dims), params)


class ForwardSweep(NamedTuple):
    """What both SnAP-1 backward sweeps need from the forward pass, in hyperplane layout.

    ``B`` examples run in ``L = B / K`` lanes of ``K`` examples each, one after the other (see
    :func:`forward_sweep`); ``Q = K T + N + M - 2`` stages; cell-major arrays ``(Q, N, M, L)``.

    Attributes:
        y: every cell's output on every stage.
        traces: the three self-traces (:class:`~gridlib.filtergrid.cell.SelfTraces`).
        started: ``(Q, N, M, 1)``, 1 where the cell's own time ``t = q - i - j`` is ``>= 0``.
        last_step: ``(Q, N, M, 1)``, 1 where ``t`` is the last step of an example, so that the
            step after it (if any) belongs to the next example of the lane.
        losses: per-example losses ``(B,)``.
        readout: ``r(t)`` per example, ``(T, M, B)``.
        dr: ``dL/dr(t)`` per example, ``(T, M, B)``.
        deposit: ``dL/dr`` on the bottom row in hyperplane layout, ``(Q, M, L)``.
        inputs: ``(s_prev, u, v)``, each ``(Q, N, M, L)``: every cell's state before its step and
            the left and top inputs of the step; only with ``keep_inputs=True`` (truncated BPTT
            needs them), else ``None``.
    """

    y: Array
    traces: SelfTraces
    started: Array
    last_step: Array
    losses: Array
    readout: Array
    dr: Array
    deposit: Array
    inputs: tuple[Array, Array, Array] | None = None


def forward_sweep(params: GridParams, xs: Array, labels: Array, mode: str, dt: float,
                  chain: int = 1, keep_inputs: bool = False) -> ForwardSweep:
    """The forward pass on hyperplanes with self-traces, and the loss head, for ``xs: (T, N, B)``.

    Cell-major layout ``(N, M, B)`` keeps the batch as the contiguous (vectorised) axis and makes
    the neighbour shifts cheap moves along the two leading axes.

    ``chain = K`` runs the batch as ``B / K`` lanes of ``K`` examples back to back: example
    ``k L + l`` occupies steps ``k T .. k T + T - 1`` of lane ``l``, and every cell's state and
    self-traces restart from zero at each example's first step. Why: on the hyperplanes a cell is
    busy for ``T`` of the ``T + N + M - 2`` stages of a sequence and idle (but computed) for the
    rest; chaining shares the ``N + M - 2`` idle stages among ``K`` examples, so the same batch
    costs ``K T + N + M - 2`` stages of width ``B / K`` instead of ``T + N + M - 2`` of width
    ``B``. The numbers are those of ``K = 1``.
    """
    t_len, n, n_batch = xs.shape
    if chain < 1 or n_batch % chain:
        raise ValueError(f"chain must be a positive divisor of the batch size {n_batch}, got {chain}")
    lanes = n_batch // chain
    # (T, N, K L) -> (K T, N, L): lane l runs examples l, L + l, 2 L + l, ... one after another
    xs = jnp.moveaxis(xs.reshape(t_len, n, chain, lanes), 2, 0).reshape(chain * t_len, n, lanes)
    t_chain = chain * t_len
    m_cols = params.w_left.shape[1]
    a, c = zoh_coefficients(params.log_tau, dt)
    pb = _expand(params, 1)
    a, c = a[..., None], c[..., None]
    n_stages = t_chain + n + m_cols - 2
    # hyperplane q: cell (i, j) is at time t = q - i - j; column 0 sees xs[q - i, i]
    tx = np.arange(n_stages)[:, None] - np.arange(n)[None, :]
    x_in = jnp.where(((tx >= 0) & (tx < t_chain))[..., None],
                     xs[np.clip(tx, 0, t_chain - 1), np.arange(n)], 0.0)  # (Q, N, L)
    t_of = (np.arange(n_stages)[:, None, None] - np.arange(n)[None, :, None]
            - np.arange(m_cols)[None, None, :])
    started = (t_of >= 0).astype(np.float32)[..., None]  # (Q, N, M, 1)
    # 1 on a lane's first step of every example but the first: the cell restarts from rest
    restart = ((t_of > 0) & (t_of < t_chain) & (t_of % t_len == 0)).astype(np.float32)[..., None]
    last_step = ((t_of >= 0) & (t_of % t_len == t_len - 1)).astype(np.float32)[..., None]
    zero = jnp.zeros((n, m_cols, lanes), xs.dtype)

    def forward_stage(carry, inp):
        s_prev, y, self_tr = carry
        x_col, on, fresh = inp
        s_prev, self_tr = jax.tree.map(lambda z: (1.0 - fresh) * z, (s_prev, self_tr))
        s, y, u, v = hyperplane_stage(pb, a, c, s_prev, y, x_col, on)  # the shared forward
        self_tr = self_trace_step(self_tr, s_prev, u, v, pb.log_tau, pb.w_left, pb.w_top, dt)
        return (s, y, self_tr), (y, self_tr, *([(s_prev, u, v)] if keep_inputs else []))

    init = (zero, zero, zero_self_traces(zero.shape, xs.dtype))
    _, (y_q, tr_q, *inputs) = jax.lax.scan(forward_stage, init, (x_in, started, restart))

    # readout r(t)_j = y[N-1, j] at time t, found on hyperplane t + N - 1 + j: (K T, M, L),
    # then per example (T, M, B)
    t_idx = np.arange(t_chain)[:, None]
    j_idx = np.arange(m_cols)[None, :]
    r = y_q[t_idx + n - 1 + j_idx, n - 1, j_idx]
    r = jnp.moveaxis(r.reshape(chain, t_len, m_cols, lanes), 0, 2).reshape(t_len, m_cols, n_batch)
    losses, dr = jax.vmap(jax.value_and_grad(loss_from_readout), in_axes=(2, 0, None),
                          out_axes=(0, 2))(r, labels, mode)  # loss head only
    # deposit of dL/dr(t) on the bottom row, in hyperplane layout: (Q, M, L)
    dr_chain = jnp.moveaxis(dr.reshape(t_len, m_cols, chain, lanes), 2, 0).reshape(
        t_chain, m_cols, lanes)
    tq = np.arange(n_stages)[:, None] - (n - 1) - j_idx
    deposit = jnp.where(((tq >= 0) & (tq < t_chain))[..., None],
                        dr_chain[np.clip(tq, 0, t_chain - 1), j_idx], 0.0)
    return ForwardSweep(y_q, tr_q, started, last_step, losses, r, dr, deposit,
                        inputs[0] if keep_inputs else None)


def _snap1_core(params: GridParams, xs: Array, labels: Array, mode: str, dt: float, chain: int = 1):
    """SnAP-1 for a batch laid out cell-major: ``xs: (T, N, B)``, ``labels: (B,)``.

    Returns per-example losses ``(B,)``, logits ``(B, M)`` and the gradient **summed** over the
    batch.

    The cross-traces enter the gradient only through the sum ``sum_t gm_d(t) eps_d(t)``, and
    ``eps_d`` obeys a linear recursion driven by ``c_d kappa_d f``. So the same sum is evaluated
    backwards: with the *adjoint trace* ``lam_d(t) = gm_d(t) + a_d lam_d(t+1)``,

    .. math:: \\sum_t gm_d(t)\\,\\varepsilon_d(t) = \\sum_t c_d \\kappa_d\\, f(t)\\, \\lambda_d(t),

    two arrays per cell instead of eight, and the forward pass stores the three self-traces (from
    which the backward sweep rebuilds ``f``) instead of the eight cross-traces. The numbers are
    those of the trace form up to rounding (tests: against the naive loop, which runs the
    cross-traces forward; :func:`cross_trace_step` against the adjoint identity).
    """
    sweep = forward_sweep(params, xs, labels, mode, dt, chain)
    n, m_cols, lanes = sweep.y.shape[1:]
    _, c = zoh_coefficients(params.log_tau, dt)
    pb = _expand(params, 1)
    c = c[..., None]
    zero = jnp.zeros((n, m_cols, lanes), xs.dtype)

    (a_b, _, _), (a_r, _, _) = descendant_coefficients(params, dt)
    a_b, a_r = a_b[..., None], a_r[..., None]
    couple_below = _up(c * pb.w_top)  # c_d kappa_d of each cell's lower child
    couple_right = _left(c * pb.w_left)  # ... and of its right child

    def backward_stage(carry, inp):
        gm_next, lam_b, lam_r, grad = carry  # gm_next = m (1 - y^2) on hyperplane q + 1
        dep, y, tr, on, last = inp
        f = jax.tree.map(lambda z: on * z, output_sensitivities(tr, y, pb.log_tau))
        gm_below, gm_right = _up(gm_next), _left(gm_next)
        # the within-step message: the two children at the same time sit on hyperplane q + 1
        m = (gm_below * couple_below + gm_right * couple_right).at[-1].add(dep)
        # adjoint cross-traces, then step_gradient(m, gm_below, gm_right, f, eps) summed over
        # time. With m substituted, the past-only subtraction cancels the same-step paths:
        #   m f + sum_d gm_d (eps_d - c_d k_d f) = dep f + sum_d gm_d eps_d,
        # and sum_t gm_d eps_d = sum_t c_d k_d f lam_d, so the weight of f is m with lam for gm.
        # (the adjoint carried from the next step stops at an example's last step)
        lam_b = gm_below + a_b * (1.0 - last) * lam_b
        lam_r = gm_right + a_r * (1.0 - last) * lam_r
        mu = (lam_b * couple_below + lam_r * couple_right).at[-1].add(dep)
        grad = jax.tree.map(lambda g, fk: g + mu * fk, grad, f)
        return (m * (1.0 - y**2), lam_b, lam_r, grad), None

    zeros4 = GridParams(zero, zero, zero, zero)
    (*_, grad), _ = jax.lax.scan(backward_stage, (zero, zero, zero, zeros4),
                                 (sweep.deposit, sweep.y, sweep.traces, sweep.started,
                                  sweep.last_step), reverse=True)
    return sweep.losses, sweep.readout.sum(0).T, jax.tree.map(lambda g: g.sum(-1), grad)


def snap1_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT
) -> tuple[Array, Array, GridParams]:
    """``(loss, logits, SnAP-1 gradient summed over time)`` for one sequence ``xs: (T, N)``.

    Schedule: both passes run on hyperplanes ``q = t + i + j`` (``T + N + M - 2`` stages), on which
    every cell is at its own time ``t = q - i - j``:

    1. forward (``q`` ascending): state, output, 3 self-traces and 8 cross-traces of every cell;
       the per-stage outputs ``y``, ``eps`` and the bottom row's ``f`` are stored (the readout
       gradient of the ``"sum"`` loss is only known at the end);
    2. backward (``q`` descending): the within-step messages. A cell's two children at the same
       time ``t`` sit on hyperplane ``q + 1``, which the reverse sweep has just finished, so
       ``m = deposit + m_below (1-y_below^2) c_below w_T,below + m_right (1-y_right^2) c_right
       w_L,right``; the step gradient (:func:`step_gradient`, in the equivalent form noted in the
       code) is accumulated in the same sweep.
    """
    check_inputs(params, xs)
    check_loss_mode(mode)
    losses, logits, grad = _snap1_core(params, xs[:, :, None], jnp.reshape(label, (1,)), mode, dt)
    return losses[0], logits[0], grad


CHAIN_LANES = 4
"""Fewest lanes :func:`default_chain` leaves: below this width a stage's vector work no longer
hides its fixed cost."""


def default_chain(n_batch: int) -> int:
    """The largest power of two ``K`` that divides ``n_batch`` and keeps ``n_batch / K >=``
    :data:`CHAIN_LANES` lanes (1 for small batches). Chosen by ``benchmarks/filtergrid.py``."""
    k = 1
    while n_batch % (2 * k) == 0 and n_batch // (2 * k) >= CHAIN_LANES:
        k *= 2
    return k


def snap1_batch_grads(
    params: GridParams, xs: Array, labels: Array, mode: str = "sum", dt: float = DT,
    chain: int | None = None,
) -> tuple[Array, Array, GridParams]:
    """Batched SnAP-1: ``xs: (B, T, N)``, ``labels: (B,)`` -> ``(losses (B,), logits (B, M),
    gradient averaged over the batch)``. Same numbers as ``vmap(snap1_grads)`` then a mean.

    ``chain``: examples run back to back per lane (:func:`forward_sweep`); by default
    :func:`default_chain` of the batch size.
    """
    if np.ndim(xs) != 3 or np.shape(labels) != np.shape(xs)[:1]:
        raise ValueError(f"need xs (B, T, N) and labels (B,), got {np.shape(xs)}, {np.shape(labels)}")
    check_inputs(params, xs[0])
    check_loss_mode(mode)
    chain = default_chain(xs.shape[0]) if chain is None else chain
    losses, logits, grad = _snap1_core(params, jnp.moveaxis(xs, 0, -1), labels, mode, dt, chain)
    return losses, logits, jax.tree.map(lambda g: g / xs.shape[0], grad)


__all__ = ["CHAIN_LANES", "CrossTraces", "ForwardSweep", "cross_trace_step", "default_chain", "forward_sweep",
           "snap1_batch_grads", "snap1_grads", "step_gradient"]
