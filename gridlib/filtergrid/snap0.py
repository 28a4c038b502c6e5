r"""SnAP-0: self-traces only, the e-prop-like end of the SnAP family of the grid.

The exact gradient of the step-:math:`t` loss (chapter {ref}`snap1-chapter`) splits into the
within-step message and a temporal carry,

.. math::
    \frac{dL_t}{d\theta_k} &= m_k(t)\, f_{\theta,k}(t) \\
        &\quad + \sum_{d \in \mathrm{cone}(k),\, d \neq k} \lambda_d(t)\, a_d\, J_{d,k}(t-1),

with :math:`m_k = \partial L_t/\partial y_k` (all same-step paths, :func:`~gridlib.filtergrid.stepwise.messages`),
:math:`\lambda_d = m_d(1-y_d^2)`, :math:`f_{\theta,k} = dy_k/d\theta_k` from the cell's
three self-traces and :math:`J_{d,k} = ds_d/d\theta_k`. SnAP-:math:`n` keeps the carry of the
descendants at Manhattan distance :math:`\le n`; **SnAP-0 keeps none of it**:

.. math:: \Delta_t \theta_k = m_k(t)\, f_{\theta,k}(t).

What "dropping the cross-traces" means for SnAP-1's past-only subtraction. SnAP-1 writes its
update as :math:`m_k f + \sum_d \lambda_d\,[\varepsilon^d(t) - c_d\kappa_d f]`, and the bracket
equals :math:`a_d\,\varepsilon^d(t-1)`, the temporal carry. SnAP-0 drops the **whole bracket**:
the carry goes, the same-step credit in :math:`m_k` stays. Setting only
:math:`\varepsilon^d := 0` and keeping the subtraction would instead leave
:math:`(m_k - \sum_d \lambda_d c_d \kappa_d) f = (\partial L/\partial r_k) f`: no spatial
credit at all, zero for every cell off the readout row. With the reading taken here SnAP-0 is
exact at :math:`T = 1` (every :math:`J(t-1)` is zero) and on a :math:`1 \times 1` grid (no
descendants); the tests check both, which the other reading fails.

State carried forward in time: the three self-traces, ``3 N M`` floats (0.75 per parameter;
the bias has no self-trace, :math:`\partial s_k/\partial b_k = 0`). Like e-prop, the rule is a
product of a cell-local eligibility (:math:`f`) and a learning signal (:math:`m_k`); unlike
e-prop's single-step signal, :math:`m_k` carries the credit of the whole downstream cone of the
current step.

**Schedule.** Every step's update needs the step's messages, and the ``"sum"`` loss knows its
readout gradient only after the last step, so the rule runs as SnAP-1 does: the forward pass on
hyperplanes with the self-traces (:func:`~gridlib.filtergrid.snap1.forward_sweep`), then one
backward sweep over the same ``T + N + M - 2`` hyperplanes that forms the messages and adds
:math:`m_k f_k`. It is SnAP-1's backward sweep without the adjoint cross-traces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from gridlib.filtergrid.cell import (
    DT,
    GridParams,
    SelfTraces,
    output_sensitivities,
    zero_self_traces,
)
from gridlib.filtergrid.snap1 import forward_sweep
from gridlib.filtergrid.stepwise import (
    batch_on_hyperplanes,
    hyperplane_constants,
    on_hyperplanes,
    shift,
)


def snap0_init(params: GridParams) -> SelfTraces:
    """The state SnAP-0 carries from step to step, at rest: three ``(N, M)`` self-traces."""
    return zero_self_traces(params.w_left.shape, params.w_left.dtype)


def _snap0_core(params: GridParams, xs: Array, labels: Array, mode: str, dt: float,
                chain: int = 1) -> tuple[Array, Array, GridParams]:
    """SnAP-0 of a batch laid out cell-major, ``xs: (T, N, B)``, ``labels: (B,)``: per-example
    losses ``(B,)``, logits ``(B, M)`` and the gradient **summed** over the batch.

    Backward stage ``q`` (descending): the two children of every cell at the same step are on
    hyperplane ``q + 1``, so ``m = dep + m_b (1-y_b^2) c_b w_T,b + m_r (1-y_r^2) c_r w_L,r`` is
    final, and ``m f`` is added. Nothing runs from one step to the next in this sweep (no
    temporal carry), so chained examples need no cut.
    """
    sweep = forward_sweep(params, xs, labels, mode, dt, chain)
    k = hyperplane_constants(params, dt)

    def backward_stage(carry, inp):
        gm_next, grad = carry  # gm_next: m (1 - y^2) on hyperplane q + 1, (N, M, L)
        dep, y, tr, on = inp
        f = output_sensitivities(tr, y, k.params.log_tau)
        m = shift(gm_next, 1, 0) * k.couple_below + shift(gm_next, 0, 1) * k.couple_right
        m = m.at[-1].add(dep)
        # cells that have not started (t < 0) have f = 0: only cells at t >= 0 contribute
        grad = jax.tree.map(lambda g, fk: g + on * m * fk, grad, f)
        return (m * (1.0 - y**2), grad), None

    zero = jnp.zeros(sweep.y.shape[1:], xs.dtype)
    init = (zero, GridParams(zero, zero, zero, zero))
    (_, grad), _ = jax.lax.scan(backward_stage, init,
                                (sweep.deposit, sweep.y, sweep.traces, sweep.started),
                                reverse=True)
    return sweep.losses, sweep.readout.sum(0).T, jax.tree.map(lambda g: g.sum(-1), grad)


def snap0_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT
) -> tuple[Array, Array, GridParams]:
    """``(loss, logits, SnAP-0 gradient summed over time)`` for one sequence ``xs: (T, N)``.

    Shapes: ``loss ()``, ``logits (M,)``, each gradient ``(N, M)``. On SnAP-1's schedule (module
    docstring): the hyperplane forward with self-traces, then one backward sweep that forms each
    step's messages ``m`` and sums ``m f`` over time.

    >>> import jax, jax.numpy as jnp
    >>> from gridlib.filtergrid import init_params, bptt_grads, snap0_grads
    >>> p = init_params(jax.random.PRNGKey(0), 3, 2)
    >>> xs = jnp.ones((1, 3))
    >>> g0, g = snap0_grads(p, xs, 1)[2], bptt_grads(p, xs, 1)[2]
    >>> bool(jnp.allclose(g0.w_left, g.w_left, atol=1e-6))  # T = 1: exact
    True
    """
    return on_hyperplanes(_snap0_core, params, xs, label, mode, dt)


def snap0_batch_grads(
    params: GridParams, xs: Array, labels: Array, mode: str = "sum", dt: float = DT,
    chain: int | None = None,
) -> tuple[Array, Array, GridParams]:
    """Batched :func:`snap0_grads`: ``xs: (B, T, N)``, ``labels: (B,)`` -> ``(losses (B,),
    logits (B, M), gradient averaged over the batch)``; the numbers of ``vmap(snap0_grads)``
    then a mean. ``chain``: as for :func:`~gridlib.filtergrid.snap1.snap1_batch_grads`."""
    return batch_on_hyperplanes(_snap0_core, params, xs, labels, mode, dt, chain)


__all__ = ["snap0_batch_grads", "snap0_grads", "snap0_init"]
