r"""SnAP-2: SnAP-1 plus the influence of each cell on its descendants at Manhattan distance 2.

The exact gradient of the step-:math:`t` loss (notation of :mod:`~gridlib.filtergrid.snap0`)

.. math::
    \frac{dL_t}{d\theta_k} &= m_k f_{\theta,k} \\
        &\quad + \sum_{d \in \mathrm{cone}(k),\, d \neq k} \lambda_d(t)\, a_d\, J_{d,k}(t-1)

is truncated by SnAP-:math:`n` to the descendants :math:`d` at distance :math:`1 \le |d-k| \le n`.
SnAP-2 keeps five per cell: below :math:`b = (i+1, j)` and right :math:`r = (i, j+1)` (SnAP-1's
cross-traces), and **below-below** :math:`bb = (i+2, j)`, **right-right** :math:`rr = (i, j+2)`,
**below-right** :math:`br = (i+1, j+1)`:

.. math:: \Delta_t\theta_k &= m_k f_{\theta,k} \\
          &\quad + \sum_{d \in \{b, r, bb, rr, br\}} \lambda_d(t)\, a_d\, \varepsilon^d_{k,\theta}(t-1).

**Trace recursions.** Within a step, :math:`s_d(t) = a_d s_d(t-1) + c_d (w_{L,d} y_{\mathrm{left}(d)}
+ w_{T,d} y_{\mathrm{top}(d)})`, so for :math:`d \ne k` the exact influence obeys

.. math:: J_{d,k}(t) &= a_d J_{d,k}(t-1) \\
          &\quad + c_d\big[w_{L,d}\,(1-y_{\mathrm{left}(d)}^2)\, J_{\mathrm{left}(d),k}(t) \\
          &\qquad + w_{T,d}\,(1-y_{\mathrm{top}(d)}^2)\, J_{\mathrm{top}(d),k}(t)\big],

where a parent outside the cone of :math:`k` contributes nothing, and a parent that is :math:`k`
itself contributes :math:`f_{\theta,k} = (1-y_k^2)(J_{k,k}(t) + [\theta = b_k])` in place of
:math:`(1-y_k^2) J_{k,k}(t)` (the bias acts on :math:`y_k`, not on :math:`s_k`). A parent of a distance-2 descendant is at distance 1
(or outside the cone), so the distance-2 traces are driven by the distance-1 ones **of the same
step**:

.. math::
    \varepsilon^{bb}(t) &= a_{bb}\,\varepsilon^{bb}(t-1) \\
        &\quad + c_{bb} w_{T,bb}\,(1-y_b^2)\,\varepsilon^{b}(t),\\
    \varepsilon^{rr}(t) &= a_{rr}\,\varepsilon^{rr}(t-1) \\
        &\quad + c_{rr} w_{L,rr}\,(1-y_r^2)\,\varepsilon^{r}(t),\\
    \varepsilon^{br}(t) &= a_{br}\,\varepsilon^{br}(t-1) \\
        &\quad + c_{br}\big[w_{L,br}\,(1-y_b^2)\,\varepsilon^{b}(t) \\
        &\qquad + w_{T,br}\,(1-y_r^2)\,\varepsilon^{r}(t)\big].

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

**Schedule: adjoint traces on hyperplanes.** The traces enter the gradient only through sums
:math:`\sum_t w(t)\, a\, \varepsilon(t-1)` of linear recursions, so, as SnAP-1 does
(``_snap1_core`` in :mod:`~gridlib.filtergrid.snap1`), the sums are evaluated backwards in time
with adjoints, in one backward sweep over the ``T + N + M - 2`` hyperplanes after the hyperplane
forward (:func:`~gridlib.filtergrid.snap1.forward_sweep`). With :math:`\lambda = m (1-y^2)` of
each cell, :math:`g = 1 - y^2`, and sequences cut at their last step:

- every cell :math:`d` carries its own *past-only adjoint*
  :math:`\rho_d(t) = a_d\,(\lambda_d(t+1) + \rho_d(t+1))
  = \sum_{t' > t} a_d^{t'-t} \lambda_d(t')`, so that
  :math:`\sum_t \lambda_{bb}(t)\, a_{bb}\, \varepsilon^{bb}(t-1) = \sum_t \mathrm{drive}_{bb}(t)\,\rho_{bb}(t)`;
- the far traces are driven by the near ones of the same step, so their adjoints fold into a
  weight on :math:`\varepsilon^b(t)` and :math:`\varepsilon^r(t)`. That weight depends only on the
  child :math:`d` (:math:`b` or :math:`r`) of the owner:
  :math:`\sigma_d(t) = g_d(t)\,[c_{d'} w_{T,d'}\,\rho_{d'}(t) + c_{d''} w_{L,d''}\,\rho_{d''}(t)]`
  with :math:`d'` below and :math:`d''` right of :math:`d` (for :math:`d = b` these are
  :math:`bb` and :math:`br`; for :math:`d = r`, :math:`br` and :math:`rr`: the two paths into
  :math:`br` are the two children of :math:`br`'s parents);
- the owner's adjoint of each near trace, :math:`\Lambda_d(t) = \lambda_d(t) + \sigma_d(t) + a_d
  \Lambda_d(t+1)`, then gives the whole update as SnAP-1's does with :math:`\Lambda` in place of
  its :math:`\lambda`: :math:`\sum_t f(t)\,[\partial L/\partial r(t) + c_b w_{T,b} \Lambda_b(t)
  + c_r w_{L,r} \Lambda_r(t)]` (the first term on the readout row only).

:math:`\rho` and :math:`\sigma` of a cell at step :math:`t` need its own values at :math:`t+1` and
its children's at :math:`t`: both on hyperplane ``q + 1``, just left by the reverse sweep. So
SnAP-2 costs SnAP-1's sweep plus two arrays per cell, where the step-by-step form carried 23.
The tests check this form against that one (:func:`snap2_trace_step`, :func:`snap2_step_gradient`
in a scan over time), which stays for :func:`snap2_traces` and the state count.
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
from gridlib.filtergrid.snap1 import CrossTraces, cross_trace_step, forward_sweep
from gridlib.filtergrid.stepwise import (
    batch_on_hyperplanes,
    hyperplane_constants,
    loss_head,
    on_hyperplanes,
    past_carry,
    shift,
)


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


def _snap2_core(params: GridParams, xs: Array, labels: Array, mode: str, dt: float,
                chain: int = 1) -> tuple[Array, Array, GridParams]:
    """SnAP-2 of a batch laid out cell-major, ``xs: (T, N, B)``, ``labels: (B,)``: per-example
    losses ``(B,)``, logits ``(B, M)`` and the gradient **summed** over the batch.

    The backward sweep of the module docstring; every array of a stage is ``(N, M, L)``.
    """
    sweep = forward_sweep(params, xs, labels, mode, dt, chain)
    k = hyperplane_constants(params, dt)

    def backward_stage(carry, inp):
        # on hyperplane q + 1: lam = m (1 - y^2), rho and sigma of every cell
        lam_next, rho_next, sigma_next, big_b, big_r, grad = carry
        dep, y, tr, on, last = inp
        gain = 1.0 - y**2
        f = output_sensitivities(tr, y, k.params.log_tau)
        lam_b, lam_r = shift(lam_next, 1, 0), shift(lam_next, 0, 1)  # the children, same step
        m = (lam_b * k.couple_below + lam_r * k.couple_right).at[-1].add(dep)
        keep = 1.0 - last  # the adjoints run back from t + 1 only within one example
        # rho: own lam and rho at t + 1 (same cell, hyperplane q + 1)
        rho = k.a * keep * (lam_next + rho_next)
        # sigma: the children's rho at t (hyperplane q + 1), through the couplings into them
        sigma = gain * (shift(rho_next, 1, 0) * k.couple_below
                        + shift(rho_next, 0, 1) * k.couple_right)
        big_b = lam_b + shift(sigma_next, 1, 0) + k.a_below * keep * big_b
        big_r = lam_r + shift(sigma_next, 0, 1) + k.a_right * keep * big_r
        mu = (big_b * k.couple_below + big_r * k.couple_right).at[-1].add(dep)
        grad = jax.tree.map(lambda g, fk: g + on * mu * fk, grad, f)
        return (m * gain, rho, sigma, big_b, big_r, grad), None

    zero = jnp.zeros(sweep.y.shape[1:], xs.dtype)
    init = (zero, zero, zero, zero, zero, GridParams(zero, zero, zero, zero))
    (*_, grad), _ = jax.lax.scan(backward_stage, init,
                                 (sweep.deposit, sweep.y, sweep.traces, sweep.started,
                                  sweep.last_step), reverse=True)
    return sweep.losses, sweep.readout.sum(0).T, jax.tree.map(lambda g: g.sum(-1), grad)


def snap2_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT
) -> tuple[Array, Array, GridParams]:
    """``(loss, logits, SnAP-2 gradient summed over time)`` for one sequence ``xs: (T, N)``.

    Shapes: ``loss ()``, ``logits (M,)``, each gradient ``(N, M)``. The hyperplane forward with
    self-traces, then one backward sweep with the adjoint traces of the module docstring
    (``T + N + M - 2`` stages each way); the numbers of the step-by-step form (the traces
    carried forward by :func:`snap2_trace_step`, :func:`snap2_step_gradient` added per step).

    >>> import jax, jax.numpy as jnp
    >>> from gridlib.filtergrid import init_params, bptt_grads, snap2_grads
    >>> p = init_params(jax.random.PRNGKey(0), 2, 2, tau_min=5e-3, tau_max=50e-3)
    >>> xs = jax.random.normal(jax.random.PRNGKey(1), (30, 2))
    >>> g2, g = snap2_grads(p, xs, 1)[2], bptt_grads(p, xs, 1)[2]
    >>> bool(jnp.allclose(g2.w_left, g.w_left, rtol=1e-4, atol=1e-7))  # 2 x 2: exact at any T
    True
    """
    return on_hyperplanes(_snap2_core, params, xs, label, mode, dt)


def snap2_batch_grads(
    params: GridParams, xs: Array, labels: Array, mode: str = "sum", dt: float = DT,
    chain: int | None = None,
) -> tuple[Array, Array, GridParams]:
    """Batched :func:`snap2_grads`: ``xs: (B, T, N)``, ``labels: (B,)`` -> ``(losses (B,),
    logits (B, M), gradient averaged over the batch)``; the numbers of ``vmap(snap2_grads)``
    then a mean. ``chain``: as for :func:`~gridlib.filtergrid.snap1.snap1_batch_grads`."""
    return batch_on_hyperplanes(_snap2_core, params, xs, labels, mode, dt, chain)


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
