r"""SnAP-0: self-traces only, the e-prop-like end of the SnAP family of the grid.

The exact gradient of the step-:math:`t` loss (chapter {ref}`snap1-chapter`) splits into the
within-step message and a temporal carry,

.. math::
    \frac{dL_t}{d\theta_k} = m_k(t)\, f_{\theta,k}(t)
        + \sum_{d \in \mathrm{cone}(k),\, d \neq k} \lambda_d(t)\, a_d\, J_{d,k}(t-1),

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
    self_trace_step,
    zero_self_traces,
)
from gridlib.filtergrid.stepwise import batched, loss_head, messages


def snap0_init(params: GridParams) -> SelfTraces:
    """The state SnAP-0 carries from step to step, at rest: three ``(N, M)`` self-traces."""
    return zero_self_traces(params.w_left.shape, params.w_left.dtype)


def snap0_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT
) -> tuple[Array, Array, GridParams]:
    """``(loss, logits, SnAP-0 gradient summed over time)`` for one sequence ``xs: (T, N)``.

    The forward pass and the readout gradient come first (the ``"sum"`` loss knows it only at
    the end), as in :func:`~gridlib.filtergrid.snap1.snap1_grads`; then the within-step messages ``m`` of every
    step at once (a step's messages need only its ``y(t)`` and ``dL/dr(t)``); then one scan over
    time: self-traces, ``f``, and ``m f`` for every cell and parameter type.

    >>> import jax, jax.numpy as jnp
    >>> from gridlib.filtergrid import init_params, bptt_grads, snap0_grads
    >>> p = init_params(jax.random.PRNGKey(0), 3, 2)
    >>> xs = jnp.ones((1, 3))
    >>> g0, g = snap0_grads(p, xs, 1)[2], bptt_grads(p, xs, 1)[2]
    >>> bool(jnp.allclose(g0.w_left, g.w_left, atol=1e-6))  # T = 1: exact
    True
    """
    value, logits, traj, dr = loss_head(params, xs, label, mode, dt)
    msgs = jax.vmap(messages, in_axes=(None, 0, 0, None))(params, traj.y, dr, dt)  # (T, N, M)

    def body(carry, inp):
        traces, grad = carry
        s_prev, u, v, y, m = inp
        traces = self_trace_step(traces, s_prev, u, v, params.log_tau, params.w_left,
                                 params.w_top, dt)
        f = output_sensitivities(traces, y, params.log_tau)
        return (traces, jax.tree.map(lambda g, fk: g + m * fk, grad, f)), None

    zero = jax.tree.map(jnp.zeros_like, params)
    (_, grad), _ = jax.lax.scan(body, (snap0_init(params), zero),
                                (traj.s_prev, traj.u, traj.v, traj.y, msgs))
    return value, logits, grad


snap0_batch_grads = batched(snap0_grads, "snap0")

__all__ = ["snap0_batch_grads", "snap0_grads", "snap0_init"]
