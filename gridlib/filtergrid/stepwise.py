r"""What the forward-in-time rules share: the hyperplane sweep, and the pieces of one time step.

SnAP-0 (:mod:`~gridlib.filtergrid.snap0`), SnAP-2 (:mod:`~gridlib.filtergrid.snap2`) and truncated
BPTT (:mod:`~gridlib.filtergrid.tbptt`) run on SnAP-1's schedule (:mod:`~gridlib.filtergrid.snap1`):
the forward pass on hyperplanes :math:`q = t + i + j` (:func:`~gridlib.filtergrid.snap1.forward_sweep`,
``T + N + M - 2`` stages, a batch as chained lanes), then one backward sweep over the same
hyperplanes in which every cell meets its two children of the same step on hyperplane ``q + 1``.
Each rule differs only in what its backward stage carries. The helpers here:

- :func:`on_hyperplanes`, :func:`batch_on_hyperplanes`: a rule's backward core as the
  per-sequence and the batched function of :mod:`~gridlib.filtergrid.temporal`;
- :func:`hyperplane_constants`: the coefficients a backward stage needs, cell-major;
- :func:`shift`: the value at the cell ``(i + di, j + dj)``, zero past the grid (the coefficients
  of a descendant that does not exist are zero, so nothing flows from it).

The step-by-step pieces stay for the forms that must run one time step at a time (online
SnAP-1's per-step update, :func:`~gridlib.filtergrid.snap2.snap2_traces`, the tests' references):

- :func:`grid_step`: one step of the grid with the inputs ``u, v`` each cell saw;
- :func:`messages`: the within-step backward message :math:`m_k(t) = \partial L_t/\partial y_k(t)`
  with :math:`s(t-1)` held fixed, from the readout gradient of the step;
- :func:`loss_head`: forward pass, loss and readout gradient :math:`\partial L/\partial r(t)`;
- :func:`batched`: the batched form of a per-sequence rule (``vmap``, mean of the gradient).

The messages obey (chapter {ref}`snap1-chapter`, eq. ``message``)

.. math:: m_p &= [p \in \mathcal B]\,\frac{\partial L}{\partial r_p(t)} \\
          &\quad + \sum_{d \in \mathrm{children}(p)} m_d (1 - y_d^2)\, c_d\, \kappa_d ,

with :math:`\kappa = w_T` of the child below and :math:`w_L` of the child on the right. Within a
step the grid is a DAG whose children of a cell on anti-diagonal :math:`p` lie on diagonal
:math:`p + 1`, so one backward pass over the diagonals, the forward wavefront reversed, gives the
messages exactly. On hyperplanes the same children sit on hyperplane ``q + 1``, which the reverse
sweep has just left, so the messages of all ``T`` steps come out of one sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from gridlib.filtergrid.cell import DT, GridParams, zoh_coefficients
from gridlib.filtergrid.model import (
    check_inputs,
    check_loss_mode,
    forward,
    left_inputs,
    loss_from_readout,
    readout,
    skew,
    step,
    top_inputs,
    unskew,
)
from gridlib.filtergrid.snap1 import default_chain

RuleGrads = Callable[..., tuple[Array, Array, GridParams]]


def shift(x: Array, di: int, dj: int) -> Array:
    """``x[i + di, j + dj, ...]`` for ``di, dj >= 0``: the value at the cell ``di`` rows below and
    ``dj`` columns to the right, zero past the last row/column.

    ``x: (N, M, *rest)``, cell-major (any trailing axes, e.g. a batch, ride along).
    """
    n, m = x.shape[:2]
    di, dj = min(di, n), min(dj, m)
    pad = [(0, di, 0), (0, dj, 0)] + [(0, 0, 0)] * (x.ndim - 2)
    return jax.lax.pad(x[di:, dj:], jnp.zeros((), x.dtype), pad)


class HyperplaneConstants(NamedTuple):
    """What a backward stage on hyperplanes needs of the parameters, each ``(N, M, 1)`` (the
    trailing axis broadcasts over the lanes of :func:`~gridlib.filtergrid.snap1.forward_sweep`).

    Attributes:
        params: the parameters, expanded.
        a: each cell's retention ``a``.
        c: each cell's input gain ``c = 1 - a``.
        couple_below: ``c_d w_T,d`` of the child below ``d`` (0 in the last row): how much a
            message at ``d`` passes up to this cell.
        couple_right: ``c_d w_L,d`` of the child on the right (0 in the last column).
        a_below: ``a`` of the child below (0 in the last row).
        a_right: ``a`` of the child on the right (0 in the last column).
    """

    params: GridParams
    a: Array
    c: Array
    couple_below: Array
    couple_right: Array
    a_below: Array
    a_right: Array


def hyperplane_constants(params: GridParams, dt: float = DT) -> HyperplaneConstants:
    """The :class:`HyperplaneConstants` of ``params`` (each ``(N, M)``)."""
    a, c = zoh_coefficients(params.log_tau, dt)
    pb = jax.tree.map(lambda z: z[..., None], params)
    a, c = a[..., None], c[..., None]
    return HyperplaneConstants(pb, a, c, shift(c * pb.w_top, 1, 0), shift(c * pb.w_left, 0, 1),
                               shift(a, 1, 0), shift(a, 0, 1))


def on_hyperplanes(core: RuleGrads, params: GridParams, xs: Array, label: Array, mode: str,
                   dt: float, **kwargs) -> tuple[Array, Array, GridParams]:
    """One sequence ``xs: (T, N)`` through a hyperplane core: ``(loss, logits (M,), gradient)``.

    ``core(params, xs (T, N, B), labels (B,), mode, dt, chain, **kwargs)`` returns per-example
    losses ``(B,)``, logits ``(B, M)`` and the gradient summed over the batch; here ``B = 1``.
    """
    check_inputs(params, xs)
    check_loss_mode(mode)
    losses, logits, grad = core(params, xs[:, :, None], jnp.reshape(label, (1,)), mode, dt, 1,
                                **kwargs)
    return losses[0], logits[0], grad


def batch_on_hyperplanes(core: RuleGrads, params: GridParams, xs: Array, labels: Array, mode: str,
                         dt: float, chain: int | None = None,
                         **kwargs) -> tuple[Array, Array, GridParams]:
    """A batch ``xs: (B, T, N)``, ``labels: (B,)`` through a hyperplane core (see
    :func:`on_hyperplanes`): ``(losses (B,), logits (B, M), gradient averaged over the batch)``.

    ``chain``: examples run back to back per lane (:func:`~gridlib.filtergrid.snap1.forward_sweep`);
    by default :func:`~gridlib.filtergrid.snap1.default_chain` of the batch size, as for SnAP-1.
    """
    if np.ndim(xs) != 3 or np.shape(labels) != np.shape(xs)[:1]:
        raise ValueError(f"need xs (B, T, N) and labels (B,), got {np.shape(xs)}, {np.shape(labels)}")
    check_inputs(params, xs[0])
    check_loss_mode(mode)
    chain = default_chain(xs.shape[0]) if chain is None else chain
    losses, logits, grad = core(params, jnp.moveaxis(xs, 0, -1), labels, mode, dt, chain, **kwargs)
    return losses, logits, jax.tree.map(lambda g: g / xs.shape[0], grad)


def grid_step(params: GridParams, s_prev: Array, x_t: Array,
              dt: float = DT) -> tuple[Array, Array, Array, Array]:
    """One time step of the whole grid: ``(s(t-1) (N, M), x_t (N,)) -> (s, y, u, v)``, each ``(N, M)``.

    ``u``, ``v``: the left and top inputs each cell saw (the wavefront :func:`~gridlib.filtergrid.model.step`, then
    the inputs read off its outputs).
    """
    s, y = step(params, s_prev, x_t, dt)
    return s, y, left_inputs(y, x_t), top_inputs(y)


def messages(params: GridParams, y: Array, dep: Array, dt: float = DT) -> Array:
    """Within-step messages ``m: (N, M)`` of one step, from ``y(t): (N, M)`` and the readout
    gradient ``dep = dL/dr(t): (M,)``.

    The forward wavefront of :func:`~gridlib.filtergrid.model.step` run backwards: anti-diagonal ``p = i + j`` from
    the last (the bottom-right cell) to the first, ``N + M - 1`` stages of length-``N`` vector
    ops. A cell's children lie on the next diagonal, the one below in slot ``i + 1``, the one on
    the right in slot ``i``, so each diagonal's messages are final when it is reached.
    """
    n, m_cols = y.shape
    _, c = zoh_coefficients(params.log_tau, dt)
    gain = 1.0 - y**2
    deposit = jnp.zeros_like(y).at[-1].set(dep)
    # what a cell passes to its parent above and to its parent on the left: lam_d c_d kappa_d
    xs = (skew(gain * c * params.w_top), skew(gain * c * params.w_left), skew(deposit))

    def stage(passed, inp):
        to_above, to_left = passed  # of diagonal p + 1; cells past the grid pass zero (skew pads)
        k_top, k_left, dep_p = inp
        from_below = jnp.concatenate([to_above[1:], jnp.zeros_like(to_above[:1])])
        m_p = dep_p + from_below + to_left
        return (m_p * k_top, m_p * k_left), m_p

    rest = jnp.zeros(n, y.dtype)
    _, m_diag = jax.lax.scan(stage, (rest, rest), xs, reverse=True)
    return unskew(m_diag, m_cols)


def loss_head(params: GridParams, xs: Array, label: Array, mode: str, dt: float = DT):
    """Forward pass and loss head of one sequence ``xs: (T, N)``.

    Returns ``(loss, logits (M,), trajectory, dL/dr (T, M))``; the readout gradient of the
    ``"sum"`` loss is known only here, after the last step.
    """
    check_inputs(params, xs)
    check_loss_mode(mode)
    traj = forward(params, xs, dt)
    r = readout(traj)
    value, dr = jax.value_and_grad(loss_from_readout)(r, label, mode)
    return value, r.sum(0), traj, dr


def past_carry(lam: Array, a: Array, trace: GridParams) -> GridParams:
    """``lam_d a_d J_{d,k}(t-1)`` for every parameter type: the temporal-carry term of one kept
    descendant ``d`` (``lam``, ``a`` already shifted to the owner cell ``k``)."""
    return jax.tree.map(lambda e: lam * a * e, trace)


def batched(single: RuleGrads, name: str) -> RuleGrads:
    """The batched form of a per-sequence rule ``single(params, xs (T, N), label, mode, dt, **kw)``:
    ``xs (B, T, N)``, ``labels (B,)`` -> ``(losses (B,), logits (B, M), batch-mean gradient)``."""

    def batch_grads(params: GridParams, xs: Array, labels: Array, mode: str = "sum", dt: float = DT,
                    **kwargs) -> tuple[Array, Array, GridParams]:
        if np.ndim(xs) != 3 or np.shape(labels) != np.shape(xs)[:1]:
            raise ValueError(f"need xs (B, T, N) and labels (B,), got {np.shape(xs)}, {np.shape(labels)}")
        check_inputs(params, xs[0])
        losses, logits, grads = jax.vmap(lambda x, lab: single(params, x, lab, mode, dt, **kwargs))(
            xs, labels)
        return losses, logits, jax.tree.map(lambda g: g.mean(0), grads)

    batch_grads.__name__ = batch_grads.__qualname__ = f"{name}_batch_grads"
    batch_grads.__module__ = single.__module__  # documented beside ``single``
    batch_grads.__doc__ = (f"Batched :func:`{name}_grads`: ``xs: (B, T, N)``, ``labels: (B,)`` -> "
                           "``(losses (B,), logits (B, M), gradient averaged over the batch)``; "
                           f"the numbers of ``vmap({name}_grads)`` then a mean.")
    return batch_grads
