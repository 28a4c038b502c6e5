r"""SnAP-2: SnAP-1 plus the influence of each cell on its descendants at Manhattan distance 2.

The exact gradient of the step-:math:`t` loss (notation of :mod:`~gridlib.filtergrid.snap0`)

.. math::
    \frac{dL_t}{d\theta_k} = m_k f_{\theta,k}
        + \sum_{d \in \mathrm{cone}(k),\, d \neq k} \lambda_d(t)\, a_d\, J_{d,k}(t-1)

is truncated by SnAP-:math:`n` to the descendants :math:`d` at distance :math:`1 \le |d-k| \le n`.
SnAP-2 keeps five per cell: below :math:`b = (i+1, j)` and right :math:`r = (i, j+1)` (SnAP-1's
cross-traces), and **below-below** :math:`bb = (i+2, j)`, **right-right** :math:`rr = (i, j+2)`,
**below-right** :math:`br = (i+1, j+1)`:

.. math:: \Delta_t\theta_k = m_k f_{\theta,k}
          + \sum_{d \in \{b, r, bb, rr, br\}} \lambda_d(t)\, a_d\, \varepsilon^d_{k,\theta}(t-1).

**Trace recursions.** Within a step, :math:`s_d(t) = a_d s_d(t-1) + c_d (w_{L,d} y_{\mathrm{left}(d)}
+ w_{T,d} y_{\mathrm{top}(d)})`, so for :math:`d \ne k` the exact influence obeys

.. math:: J_{d,k}(t) &= a_d J_{d,k}(t-1)
          + c_d\big[w_{L,d}\,(1-y_{\mathrm{left}(d)}^2)\, J_{\mathrm{left}(d),k}(t) \\
          &\qquad + w_{T,d}\,(1-y_{\mathrm{top}(d)}^2)\, J_{\mathrm{top}(d),k}(t)\big],

where a parent outside the cone of :math:`k` contributes nothing, and a parent that is :math:`k`
itself contributes :math:`f_{\theta,k} = (1-y_k^2)(J_{k,k}(t) + [\theta = b_k])` in place of
:math:`(1-y_k^2) J_{k,k}(t)` (the bias acts on :math:`y_k`, not on :math:`s_k`). A parent of a distance-2 descendant is at distance 1
(or outside the cone), so the distance-2 traces are driven by the distance-1 ones **of the same
step**:

.. math::
    \varepsilon^{bb}(t) &= a_{bb}\,\varepsilon^{bb}(t-1) + c_{bb} w_{T,bb}\,(1-y_b^2)\,\varepsilon^{b}(t),\\
    \varepsilon^{rr}(t) &= a_{rr}\,\varepsilon^{rr}(t-1) + c_{rr} w_{L,rr}\,(1-y_r^2)\,\varepsilon^{r}(t),\\
    \varepsilon^{br}(t) &= a_{br}\,\varepsilon^{br}(t-1) + c_{br}\big[w_{L,br}\,(1-y_b^2)\,\varepsilon^{b}(t)
        + w_{T,br}\,(1-y_r^2)\,\varepsilon^{r}(t)\big].

The left parent of :math:`bb` is :math:`(i+2, j-1)` and the top parent of :math:`rr` is
:math:`(i-1, j+2)`, both outside the cone: one path each. The diagonal cell :math:`br` has both
parents in the cone, :math:`b` (its left input) and :math:`r` (its top input): **two paths**, and
its trace sums both. Every trace is therefore the exact :math:`J_{d,k}` at every step, whatever
lies farther (the tests compare them with ``jax.jacfwd`` of the states on a 4 x 4 grid and the
recursions with sympy); what SnAP-2 drops is only the *use* of the carry of the descendants at
distance :math:`\ge 3`.

**Where it is exact.** The cone of cell :math:`(i, j)` reaches distance
:math:`(N-1-i) + (M-1-j)`, so SnAP-2 gives the exact gradient of every parameter of the cells with
:math:`(N-1-i) + (M-1-j) \le 2`, and of the whole grid, at every :math:`T`, exactly when
:math:`N + M \le 4`: the grids 1 x 1, 1 x 2, 2 x 1, 1 x 3, 3 x 1 and 2 x 2 (SnAP-1:
:math:`N + M \le 3`; SnAP-0: 1 x 1). On 2 x 3 the cell :math:`(1, 2)` is at distance 3 from
:math:`(0, 0)`. (With one column there is one class and the cross-entropy is constant, so on
1 x 1, 2 x 1 and 3 x 1 every rule's gradient is zero; the traces are exact there all the same.)

State carried forward in time: 3 self-traces + (2 + 3) descendants x 4 parameter types =
23 ``(N, M)`` arrays, 5.75 floats per parameter (SnAP-1: 11, 2.75).

The implementation is plain: the hyperplane forward, the within-step messages of every step at
once (:func:`~gridlib.filtergrid.stepwise.messages`, vectorised over time), then a scan over time carrying the
traces on whole ``(N, M)`` arrays (``T`` sequential steps, each elementwise with shifts). No
adjoint fast path like SnAP-1's.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
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
from gridlib.filtergrid.snap1 import CrossTraces, cross_trace_step
from gridlib.filtergrid.stepwise import batched, loss_head, messages, past_carry, shift


class FarTraces(NamedTuple):
    """The 12 distance-2 traces of every cell, each a :class:`GridParams` of ``(N, M)`` arrays:
    :math:`J_{d,k}` for ``d`` = below-below, right-right and below-right of ``k``."""

    below2: GridParams
    right2: GridParams
    diag: GridParams


class Snap2Traces(NamedTuple):
    """All SnAP-2 state of the grid: 3 self-traces, 8 near (SnAP-1) and 12 far cross-traces."""

    own: SelfTraces
    near: CrossTraces
    far: FarTraces


_OFFSETS = {"below": (1, 0), "right": (0, 1), "below2": (2, 0), "right2": (0, 2), "diag": (1, 1)}
"""Row and column offset of each kept descendant from its owner cell."""


def snap2_init(params: GridParams) -> Snap2Traces:
    """The state SnAP-2 carries from step to step, at rest (all zeros)."""
    shape, dtype = params.w_left.shape, params.w_left.dtype
    zero4 = GridParams(*(jnp.zeros(shape, dtype),) * 4)
    return Snap2Traces(zero_self_traces(shape, dtype), CrossTraces(zero4, zero4),
                       FarTraces(zero4, zero4, zero4))


def far_trace_step(far: FarTraces, near: CrossTraces, y: Array, params: GridParams,
                   dt: float = DT) -> FarTraces:
    """Advance the distance-2 traces by one step, given the distance-1 traces of the **same**
    step ``near`` (already advanced) and the outputs ``y(t)``; the recursions of the module
    docstring. Missing descendants have zero coefficients, so their traces stay zero."""
    a, c = zoh_coefficients(params.log_tau, dt)
    gain = 1.0 - y**2
    g_b, g_r = shift(gain, 1, 0), shift(gain, 0, 1)  # 1 - y^2 of the two children
    a_bb, a_rr, a_br = shift(a, 2, 0), shift(a, 0, 2), shift(a, 1, 1)
    in_bb = shift(c * params.w_top, 2, 0) * g_b  # bb's top parent is b
    in_rr = shift(c * params.w_left, 0, 2) * g_r  # rr's left parent is r
    in_br_b = shift(c * params.w_left, 1, 1) * g_b  # br's left parent is b ...
    in_br_r = shift(c * params.w_top, 1, 1) * g_r  # ... and its top parent is r: two paths
    return FarTraces(
        below2=jax.tree.map(lambda e, eb: a_bb * e + in_bb * eb, far.below2, near.below),
        right2=jax.tree.map(lambda e, er: a_rr * e + in_rr * er, far.right2, near.right),
        diag=jax.tree.map(lambda e, eb, er: a_br * e + in_br_b * eb + in_br_r * er,
                          far.diag, near.below, near.right),
    )


def snap2_trace_step(traces: Snap2Traces, s_prev: Array, u: Array, v: Array, y: Array,
                     params: GridParams, dt: float = DT) -> tuple[Snap2Traces, GridParams]:
    """Advance every SnAP-2 trace by one step; returns the new traces and ``f`` of the step.

    ``s_prev, u, v, y``: ``(N, M)`` state before the step, inputs and outputs of the step.
    """
    own = self_trace_step(traces.own, s_prev, u, v, params.log_tau, params.w_left,
                          params.w_top, dt)
    f = output_sensitivities(own, y, params.log_tau)
    near = cross_trace_step(traces.near, f, params, dt)
    far = far_trace_step(traces.far, near, y, params, dt)
    return Snap2Traces(own, near, far), f


def snap2_step_gradient(m: Array, y: Array, f: GridParams, old: Snap2Traces, params: GridParams,
                        dt: float = DT) -> GridParams:
    """One step's SnAP-2 gradient: ``m f + sum_d lam_d a_d eps_d(t-1)`` over the five kept
    descendants; ``old`` holds the traces *before* this step (the past-only carry)."""
    a, _ = zoh_coefficients(params.log_tau, dt)
    lam = m * (1.0 - y**2)
    grad = jax.tree.map(lambda fk: m * fk, f)
    kept = {"below": old.near.below, "right": old.near.right, **old.far._asdict()}
    for name, trace in kept.items():
        di, dj = _OFFSETS[name]
        carry = past_carry(shift(lam, di, dj), shift(a, di, dj), trace)
        grad = jax.tree.map(jnp.add, grad, carry)
    return grad


def snap2_traces(params: GridParams, xs: Array, dt: float = DT) -> Snap2Traces:
    """Every SnAP-2 trace after every step of ``xs: (T, N)``, each array ``(T, N, M)``
    (for the tests, which compare them with the exact influence ``ds(t)/dtheta``)."""
    _, _, traj, _ = loss_head(params, xs, 0, "sum", dt)

    def body(traces, inp):
        traces, _ = snap2_trace_step(traces, *inp, params, dt)
        return traces, traces

    return jax.lax.scan(body, snap2_init(params), (traj.s_prev, traj.u, traj.v, traj.y))[1]


def snap2_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT
) -> tuple[Array, Array, GridParams]:
    """``(loss, logits, SnAP-2 gradient summed over time)`` for one sequence ``xs: (T, N)``.

    Forward pass and readout gradient first (the ``"sum"`` loss knows it only at the end); the
    within-step messages of every step at once (:func:`~gridlib.filtergrid.stepwise.messages`, which needs only
    ``y(t)`` and ``dL/dr(t)``); then one scan over time carrying the 23 traces per cell: per step
    the traces advance (:func:`snap2_trace_step`) and :func:`snap2_step_gradient` is added.

    >>> import jax, jax.numpy as jnp
    >>> from gridlib.filtergrid import init_params, bptt_grads, snap2_grads
    >>> p = init_params(jax.random.PRNGKey(0), 2, 2, tau_min=5e-3, tau_max=50e-3)
    >>> xs = jax.random.normal(jax.random.PRNGKey(1), (30, 2))
    >>> g2, g = snap2_grads(p, xs, 1)[2], bptt_grads(p, xs, 1)[2]
    >>> bool(jnp.allclose(g2.w_left, g.w_left, rtol=1e-4, atol=1e-7))  # 2 x 2: exact at any T
    True
    """
    value, logits, traj, dr = loss_head(params, xs, label, mode, dt)
    msgs = jax.vmap(messages, in_axes=(None, 0, 0, None))(params, traj.y, dr, dt)  # (T, N, M)

    def body(carry, inp):
        traces, grad = carry
        s_prev, u, v, y, m = inp
        new, f = snap2_trace_step(traces, s_prev, u, v, y, params, dt)
        step_grad = snap2_step_gradient(m, y, f, traces, params, dt)
        return (new, jax.tree.map(jnp.add, grad, step_grad)), None

    zero = jax.tree.map(jnp.zeros_like, params)
    (_, grad), _ = jax.lax.scan(body, (snap2_init(params), zero),
                                (traj.s_prev, traj.u, traj.v, traj.y, msgs))
    return value, logits, grad


snap2_batch_grads = batched(snap2_grads, "snap2")

__all__ = [
    "FarTraces",
    "Snap2Traces",
    "far_trace_step",
    "snap2_batch_grads",
    "snap2_grads",
    "snap2_init",
    "snap2_step_gradient",
    "snap2_trace_step",
    "snap2_traces",
]
