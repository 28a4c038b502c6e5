r"""Online SnAP-1: the SnAP-1 rule with a loss at every step, its gradient ready at every step.

With the ``"sum"`` loss :math:`\mathrm{CE}(\mathrm{softmax}(\sum_t r(t)), y^*)` the readout
gradient is known only after the last step, so :func:`~gridlib.filtergrid.snap1.snap1_grads` stores the trajectory
and sweeps the messages afterwards. Here the loss is **per step**,

.. math::
    \ell_t &= \mathrm{CE}\big(\mathrm{softmax}(r(t)), y^*\big),\\
    L &= \frac1T \sum_t \ell_t \\
        &\qquad (\text{the library's } \texttt{"per\_t"} \text{ loss}),

so :math:`\partial\ell_t/\partial r(t)` is known as soon as step :math:`t` has run, and the whole
SnAP-1 update of step :math:`t` is computed within that step, forward in time:

1. the grid step (wavefront), then the 3 self-traces, :math:`f`, and the 8 cross-traces
   :math:`\varepsilon^d(t)` (:func:`~gridlib.filtergrid.snap1.cross_trace_step`);
2. :math:`\partial\ell_t/\partial r(t)` and the within-step messages :math:`m(t)`
   (:func:`~gridlib.filtergrid.stepwise.messages`);
3. :math:`\Delta_t\theta = m f + \sum_d \lambda_d(\varepsilon^d(t) - c_d\kappa_d f)`
   (:func:`~gridlib.filtergrid.snap1.step_gradient`, the rule as written, past-only subtraction included).

Nothing of the past is stored: the state carried from step to step (:class:`OnlineCarry`) is
the network state ``s: (N, M)``, the self-traces (3 x ``(N, M)``) and the cross-traces
(2 x 4 x ``(N, M)``): ``12 N M`` floats, of which ``11 N M`` (2.75 per parameter) are learning
state, whatever ``T``. The per-step gradient is that of :math:`\ell_t` (unscaled, so a learner
need not know ``T``); :func:`online_snap1_grads` returns the gradient of the mean :math:`L`, the
same number as ``snap1_grads(..., mode="per_t")`` computed backwards, and is exact where SnAP-1
is (:math:`T = 1`; 1 x 2 and 2 x 1 grids).

Two ways to learn from it:

- **one update per sequence** (:func:`online_snap1_grads`, :func:`online_snap1_batch_grads`): the
  per-step gradients are summed over the sequence and the optimiser steps once, at its end;
- **an update at every step** (:func:`online_snap1_learn`, :func:`online_snap1_batch_learn`):
  the optimiser steps inside the time scan, right after the step's gradient is known, so the
  parameters change *during* the sequence (real-time learning). The scan carries the parameters,
  the optimiser state, the network state and the traces, never anything per step. Each step's
  gradient is fed scaled by ``1/T``: no more than a learning rate divided by ``T``, chosen so
  that at a small rate the ``T`` steps of a sequence add up to the one step of the other way.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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

    Same signature as :func:`~gridlib.filtergrid.snap1.snap1_grads`; only ``mode="per_t"`` is online (the ``"sum"``
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


# ----------------------------------------------------------------------------------------------
# learning during the sequence: the optimiser steps at every time step


class OnlineLearning(NamedTuple):
    r"""What :func:`online_snap1_batch_learn` returns after the last step of a batch.

    Attributes:
        params: the parameters after the ``T`` per-step updates.
        opt_state: the optimiser state after them (``T`` optimiser steps more than before).
        losses: ``(B,)`` each sequence's mean per-step loss :math:`\frac1T\sum_t \ell_t`, every
            :math:`\ell_t` at the parameters current at step :math:`t`.
        logits: ``(B, M)`` each sequence's :math:`\sum_t r(t)`, likewise.
        grad: the sum over the steps of the gradients fed to the optimiser (batch means, each
            scaled by ``1/T``); with a learning rate of 0 it is :func:`online_snap1_batch_grads`'s.
    """

    params: GridParams
    opt_state: Any
    losses: Array
    logits: Array
    grad: GridParams


class _LearnCarry(NamedTuple):
    """The carry of the per-step-update scan: none of it grows with ``T``."""

    params: GridParams
    opt_state: Any
    state: OnlineCarry  # network state and traces, each leaf (B, N, M)
    loss_sum: Array  # (B,)
    logits: Array  # (B, M)
    grad: GridParams


def _check_learner(optimizer: Any, params: GridParams, opt_state: Any, xs: Array,
                   labels: Array) -> int:
    """``T``, after one-line ``ValueError`` checks of the optimiser, its state and the batch."""
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got "
                         f"{type(optimizer).__name__} {optimizer!r:.60}")
    if np.ndim(xs) != 3 or np.shape(labels) != np.shape(xs)[:1] or np.shape(xs)[0] < 1:
        raise ValueError(f"need xs (B, T, N) and labels (B,) with B >= 1, got {np.shape(xs)}, "
                         f"{np.shape(labels)}")
    t_len, _, _ = check_inputs(params, jax.ShapeDtypeStruct(np.shape(xs)[1:], jnp.float32))
    spec = jax.tree.map(lambda p: jax.ShapeDtypeStruct(np.shape(p), jnp.result_type(p)), params)
    want = jax.eval_shape(optimizer.init, spec)
    shapes = [[np.shape(x) for x in jax.tree.leaves(tree)] for tree in (want, opt_state)]
    if jax.tree.structure(want) != jax.tree.structure(opt_state) or shapes[0] != shapes[1]:
        raise ValueError(f"opt_state does not match optimizer.init(params): leaf shapes "
                         f"{shapes[0]} expected, got {shapes[1]}"[:300])
    return t_len


def online_snap1_batch_learn(optimizer: optax.GradientTransformation, params: GridParams,
                             opt_state: Any, xs: Array, labels: Array,
                             dt: float = DT) -> OnlineLearning:
    r"""Online SnAP-1 with an optimiser step at **every time step** of a batch ``xs: (B, T, N)``.

    At step :math:`t` the ``B`` sequences run one step of the grid and of the rule
    (:func:`online_snap1_step`, at the current parameters :math:`\theta_t`); the gradient fed to
    the optimiser is the batch mean of :math:`\nabla \ell_t / T`; then
    ``optimizer.update`` and ``optax.apply_updates`` give :math:`\theta_{t+1}`, used from step
    :math:`t+1` on. The update comes *after* the step's gradient: the gradient of
    :math:`\ell_t` is always taken at the parameters that produced :math:`r(t)`.

    The network state and the self- and cross-traces are **not** reset at an update: they
    continue across it, so the traces carried into step :math:`t+1` mix contributions computed
    with :math:`\theta_1, \dots, \theta_t`. This is the standard approximation of real-time
    learning (online RTRL, SnAP, e-prop): the exact sensitivities to the current parameters
    would need the past replayed at them. It vanishes as the learning rate goes to 0.

    The ``1/T`` makes the summed update of one sequence, to first order in the learning rate,
    that of one update with :func:`online_snap1_batch_grads` (the gradient of the *mean*
    per-step loss): with plain SGD at rate :math:`\eta` the two parameter vectors differ by
    :math:`O(\eta^2)`, and a learner that uses one SGD step size either way spends the same
    budget. (Adam is nearly scale-free: there the factor matters only next to ``eps``, and each
    sequence makes ``T`` Adam steps instead of one.)

    Memory does not grow with ``T``: the scan carries the parameters, the optimiser state, the
    state and traces ``(B, 12 N M)``, the running loss, logits and gradient sum; it stacks
    nothing per step.

    Args:
        optimizer: any optax transformation (e.g. ``optax.sgd(eta)``, ``optax.adam(lr)``).
        params: the grid parameters :math:`\theta_1`, each ``(N, M)``.
        opt_state: ``optimizer.init(params)``, or the state a previous call returned.
        xs: ``(B, T, N)`` drives.
        labels: ``(B,)`` integer classes.
        dt: the time step.

    Returns:
        :class:`OnlineLearning` ``(params, opt_state, losses (B,), logits (B, M), grad)``.

    Raises:
        ValueError: (one line) ``optimizer`` is not an optax transformation, ``opt_state`` does
            not match it, or ``xs``/``labels`` have the wrong shapes.
    """
    t_len = _check_learner(optimizer, params, opt_state, xs, labels)
    batch = np.shape(xs)[0]
    step_all = jax.vmap(online_snap1_step, in_axes=(None, 0, 0, 0, None))
    dtype = jnp.result_type(xs, params.w_left)

    def body(c: _LearnCarry, x_t: Array) -> tuple[_LearnCarry, None]:
        state, loss_t, r_t, g = step_all(c.params, c.state, x_t, labels, dt)
        g = jax.tree.map(lambda z: z.mean(0) / t_len, g)
        updates, opt_state = optimizer.update(g, c.opt_state, c.params)
        params = optax.apply_updates(c.params, updates)
        return _LearnCarry(params, opt_state, state, c.loss_sum + loss_t, c.logits + r_t,
                           jax.tree.map(jnp.add, c.grad, g)), None

    state0 = jax.tree.map(lambda z: jnp.broadcast_to(z, (batch, *z.shape)), online_snap1_init(params))
    init = _LearnCarry(params, opt_state, state0, jnp.zeros(batch, dtype),
                       jnp.zeros((batch, params.w_left.shape[1]), dtype),
                       jax.tree.map(jnp.zeros_like, params))
    last, _ = jax.lax.scan(body, init, jnp.swapaxes(xs, 0, 1))
    return OnlineLearning(last.params, last.opt_state, last.loss_sum / t_len, last.logits, last.grad)


def online_snap1_learn(optimizer: optax.GradientTransformation, params: GridParams,
                       opt_state: Any, xs: Array, label: Array, dt: float = DT) -> OnlineLearning:
    """:func:`online_snap1_batch_learn` of one sequence ``xs: (T, N)``, ``label`` a scalar:
    ``losses`` is then a scalar and ``logits`` ``(M,)``.

    >>> import jax, optax
    >>> from gridlib.filtergrid.model import init_params
    >>> params = init_params(jax.random.PRNGKey(0), 2, 2)
    >>> opt = optax.sgd(0.0)
    >>> out = online_snap1_learn(opt, params, opt.init(params), jax.numpy.ones((3, 2)), 1)
    >>> bool((out.params.w_left == params.w_left).all()), out.logits.shape
    (True, (2,))
    """
    if np.ndim(label) != 0:
        raise ValueError(f"label must be a scalar class for one sequence, got shape {np.shape(label)}")
    out = online_snap1_batch_learn(optimizer, params, opt_state, jnp.asarray(xs)[None],
                                   jnp.asarray(label)[None], dt)
    return out._replace(losses=out.losses[0], logits=out.logits[0])


__all__ = [
    "OnlineCarry",
    "OnlineLearning",
    "online_snap1_batch_grads",
    "online_snap1_batch_learn",
    "online_snap1_grads",
    "online_snap1_init",
    "online_snap1_learn",
    "online_snap1_step",
    "online_snap1_step_grads",
    "step_loss",
]
