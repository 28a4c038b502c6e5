r"""Online SnAP-1: the SnAP-1 rule with a loss at every step, its gradient ready at every step.

With the ``"sum"`` loss :math:`\mathrm{CE}(\mathrm{softmax}(\sum_t r(t)), y^*)` the readout
gradient is known only after the last step, so :func:`~.snap1.snap1_grads` stores the trajectory
and sweeps the messages afterwards. Here the loss is **per step**,

.. math:: \ell_t = \mathrm{CE}\big(\mathrm{softmax}(r(t)), y^*\big), \qquad
          L = \frac1T \sum_t \ell_t \quad (\text{the library's } \texttt{"per\_t"} \text{ loss}),

so :math:`\partial\ell_t/\partial r(t)` is known as soon as step :math:`t` has run, and the whole
SnAP-1 update of step :math:`t` is computed within that step, forward in time:

1. the grid step (wavefront), then the 3 self-traces, :math:`f`, and the 8 cross-traces
   :math:`\varepsilon^d(t)` (:func:`~.snap1.cross_trace_step`);
2. :math:`\partial\ell_t/\partial r(t)` and the within-step messages :math:`m(t)`
   (:func:`~.stepwise.messages`);
3. :math:`\Delta_t\theta = m f + \sum_d \lambda_d(\varepsilon^d(t) - c_d\kappa_d f)`
   (:func:`~.snap1.step_gradient`, the rule as written, past-only subtraction included).

Nothing of the past is stored: the state carried from step to step (:class:`OnlineCarry`) is
the network state ``s: (N, M)``, the self-traces (3 x ``(N, M)``) and the cross-traces
(2 x 4 x ``(N, M)``): ``12 N M`` floats, of which ``11 N M`` (2.75 per parameter) are learning
state, whatever ``T``. The per-step gradient is that of :math:`\ell_t` (unscaled, so a learner
need not know ``T``); :func:`online_snap1_grads` returns the gradient of the mean :math:`L`, the
same number as ``snap1_grads(..., mode="per_t")`` computed backwards, and is exact where SnAP-1
is (:math:`T = 1`; 1 x 2 and 2 x 1 grids).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

from gridlib.filtergrid.cell import (
    DT,
    GridParams,
    SelfTraces,
    output_sensitivities,
    self_trace_step,
    zero_self_traces,
)
from gridlib.filtergrid.model import check_inputs
from gridlib.filtergrid.snap1 import CrossTraces, cross_trace_step, step_gradient
from gridlib.filtergrid.stepwise import batched, grid_step, messages, shift


class OnlineCarry(NamedTuple):
    """Everything online SnAP-1 carries from step ``t-1`` to step ``t``, each leaf ``(N, M)``.

    Attributes:
        s: the network state ``s(t-1)``.
        own: the 3 self-traces.
        cross: the 8 cross-traces (below, right; one per parameter type).
    """

    s: Array
    own: SelfTraces
    cross: CrossTraces


def online_snap1_init(params: GridParams) -> OnlineCarry:
    """The carry at rest, before the first step."""
    shape, dtype = params.w_left.shape, params.w_left.dtype
    zero = jnp.zeros(shape, dtype)
    zero4 = GridParams(zero, zero, zero, zero)
    return OnlineCarry(zero, zero_self_traces(shape, dtype), CrossTraces(zero4, zero4))


def step_loss(r_t: Array, label: Array) -> Array:
    """The per-step loss ``CE(softmax(r(t)), label)`` of one readout ``r_t: (M,)``."""
    return optax.softmax_cross_entropy_with_integer_labels(r_t, label)


def online_snap1_step(params: GridParams, carry: OnlineCarry, x_t: Array, label: Array,
                      dt: float = DT) -> tuple[OnlineCarry, Array, Array, GridParams]:
    """One step of the grid and of the rule: ``(carry, x_t (N,), label)`` ->
    ``(carry, loss_t, r(t) (M,), SnAP-1 gradient of loss_t)``."""
    s, y, u, v = grid_step(params, carry.s, x_t, dt)
    own = self_trace_step(carry.own, carry.s, u, v, params.log_tau, params.w_left, params.w_top, dt)
    f = output_sensitivities(own, y, params.log_tau)
    cross = cross_trace_step(carry.cross, f, params, dt)
    loss_t, dep = jax.value_and_grad(step_loss)(y[-1], label)
    m = messages(params, y, dep, dt)
    lam = m * (1.0 - y**2)
    grad = step_gradient(m, shift(lam, 1, 0), shift(lam, 0, 1), f, cross, params, dt)
    return OnlineCarry(s, own, cross), loss_t, y[-1], grad


def online_snap1_step_grads(params: GridParams, xs: Array, label: Array,
                            dt: float = DT) -> tuple[Array, GridParams]:
    """Per-step losses ``(T,)`` and per-step SnAP-1 gradients (GridParams of ``(T, N, M)``) of
    ``loss_t = CE(softmax(r(t)), label)``, each computed within its step."""
    check_inputs(params, xs)

    def body(carry, x_t):
        carry, loss_t, _, grad = online_snap1_step(params, carry, x_t, label, dt)
        return carry, (loss_t, grad)

    return jax.lax.scan(body, online_snap1_init(params), xs)[1]


def online_snap1_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "per_t", dt: float = DT
) -> tuple[Array, Array, GridParams]:
    """``(loss, logits, online SnAP-1 gradient)`` of the ``"per_t"`` loss for ``xs: (T, N)``.

    Same signature as :func:`~.snap1.snap1_grads`; only ``mode="per_t"`` is online (the ``"sum"``
    loss's gradient waits for the last step) and any other mode raises. The gradient is the sum
    of the per-step gradients over ``T``, accumulated in the scan (memory independent of ``T``).
    """
    if mode != "per_t":
        raise ValueError(f"online SnAP-1 needs the per-step loss, mode='per_t'; got {mode!r} "
                         "(the 'sum' loss's readout gradient is known only after the last step)")
    t_len, _, _ = check_inputs(params, xs)

    def body(carry, x_t):
        state, loss_sum, logits, grad = carry
        state, loss_t, r_t, g = online_snap1_step(params, state, x_t, label, dt)
        return (state, loss_sum + loss_t, logits + r_t, jax.tree.map(jnp.add, grad, g)), None

    zero = jax.tree.map(jnp.zeros_like, params)
    init = (online_snap1_init(params), jnp.zeros((), xs.dtype), jnp.zeros(params.w_left.shape[1], xs.dtype),
            zero)
    (_, loss_sum, logits, grad), _ = jax.lax.scan(body, init, xs)
    return loss_sum / t_len, logits, jax.tree.map(lambda g: g / t_len, grad)


_online_batch = batched(online_snap1_grads, "online_snap1")


def online_snap1_batch_grads(params: GridParams, xs: Array, labels: Array, mode: str = "per_t",
                             dt: float = DT) -> tuple[Array, Array, GridParams]:
    """Batched :func:`online_snap1_grads`: ``xs: (B, T, N)``, ``labels: (B,)`` -> ``(losses (B,),
    logits (B, M), gradient averaged over the batch)``; ``mode`` must be ``"per_t"``."""
    if mode != "per_t":
        raise ValueError(f"online SnAP-1 needs the per-step loss, mode='per_t'; got {mode!r}")
    return _online_batch(params, xs, labels, mode, dt)


__all__ = [
    "OnlineCarry",
    "online_snap1_batch_grads",
    "online_snap1_grads",
    "online_snap1_init",
    "online_snap1_step",
    "online_snap1_step_grads",
    "step_loss",
]
