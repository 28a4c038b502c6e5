r"""Truncated BPTT with window :math:`K`: each step's error is back-propagated at most :math:`K` steps.

**Definition.** The exact gradient is :math:`\sum_t \big(\partial L/\partial r(t)\big)^\top
dr(t)/d\theta`. Truncated BPTT replaces :math:`dr(t)/d\theta` by the derivative of :math:`r(t)`
with the state :math:`s(t-K)` held constant (``stop_gradient``):

.. math:: g_K &= \sum_t \Big(\frac{\partial L}{\partial r(t)}\Big)^\top
          \frac{\partial r(t)}{\partial\theta}\Big|_{s(t-K)\ \text{fixed}} \\
        &= \sum_t \sum_{\tau = t-K+1}^{t} \Big(\frac{\partial L}{\partial r(t)}\Big)^\top
          \frac{\partial r(t)}{\partial\theta_\tau},

where :math:`\theta_\tau` is the copy of the parameters used at step :math:`\tau` (the second form
is how the tests check it, with per-step parameter copies and ``jax.jacrev``). So the error of
step :math:`t` reaches the parameter uses of steps :math:`t-K+1, \dots, t`: :math:`K` steps,
the current one included. :math:`K = 1` keeps only the current step's graph (every
:math:`J(t-1)` treated as zero, less than SnAP-0, which keeps the self-traces); :math:`K \ge T`
is BPTT exactly. This is the "every step gets its own :math:`K`-step window" form
(Williams and Peng's BPTT(:math:`h`) with :math:`h' = 1`), not the cheaper chunked form that
cuts the sequence into blocks.

**Implementation: the adjoint by age, on hyperplanes.** Reverse mode splits the error of step
:math:`t` into a stream that runs back through steps :math:`t, t-1, \dots`; at step
:math:`\tau` it has *age* :math:`\alpha = t - \tau`, and truncation drops it at age :math:`K`.
All streams obey the same linear backward recursion, so the adjoint of the state is kept per age,
an axis of length :math:`K` (:math:`\min(K, T)`): at step :math:`\tau`

.. math:: \bar s_\alpha(\tau) &= a\,\bar s_{\alpha-1}(\tau+1) \\
          &\quad + (1 - y^2)\Big([\alpha = 0]\,\frac{\partial L}{\partial r(\tau)} \\
          &\qquad + \sum_{d} \bar s_{\alpha,d}(\tau)\, c_d \kappa_d\Big)

(the readout term on the bottom row; :math:`d` the children, :math:`\kappa_d` the weight of the
link into :math:`d`), and a parameter's gradient at step :math:`\tau` is its local derivative of
:math:`s(\tau)` times :math:`\sum_\alpha \bar s_\alpha(\tau)` (the bias: times the :math:`(1-y^2)`
term alone). The children at step :math:`\tau` sit on hyperplane ``q + 1``, and so does the cell
itself at :math:`\tau + 1`: one backward sweep over the ``T + N + M - 2`` hyperplanes after
SnAP-1's forward (:func:`~gridlib.filtergrid.snap1.forward_sweep`, which keeps each cell's
``s(t-1), u, v`` for the local derivatives) gives the whole gradient, whatever :math:`K`. The
arithmetic per stage grows with :math:`K` (the age axis is :math:`K` wide); the number of
sequential stages does not.

The step-by-step form stays as :func:`tbptt_step`: at step :math:`t` it reruns the grid over the
window from :math:`s(t-K)` (detached) and takes one vector-Jacobian product with
:math:`\partial L/\partial r(t)`, the definition as written, :math:`O(TK)` sequential steps. It is
what a learner that sees one step at a time (``"per_t"`` loss) would run, its carry is what
:func:`~gridlib.filtergrid.temporal.carried_state` counts (the network state :math:`s(t-1)`, the
window's start state :math:`s(t-K)`, absent when :math:`K = 1`, and the :math:`K-1` inputs
:math:`x(t-K+1..t-1)`: :math:`NM + (K-1)N` floats for :math:`K \ge 2`, none for :math:`K = 1`),
and the tests check the hyperplane form against it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from gridlib.filtergrid.cell import DT, GridParams
from gridlib.filtergrid.model import step
from gridlib.filtergrid.snap1 import forward_sweep
from gridlib.filtergrid.stepwise import (
    batch_on_hyperplanes,
    hyperplane_constants,
    on_hyperplanes,
    shift,
)


class TbpttCarry(NamedTuple):
    """What truncated BPTT carries from step ``t-1`` to step ``t``.

    Attributes:
        s: the network state ``s(t-1)``, ``(N, M)``.
        s_back: ``s(t-K)``, ``(1, N, M)``; ``(0, N, M)`` when ``K = 1``.
        x_back: ``x(t-K+1 .. t-1)``, ``(K-1, N)``.
    """

    s: Array
    s_back: Array
    x_back: Array


def check_window(window: int) -> int:
    """Return ``window`` as an int; raise ``ValueError`` unless it is an integer ``>= 1``."""
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window K must be an integer >= 1, got {window!r}")
    return int(window)


def tbptt_init(params: GridParams, window: int) -> TbpttCarry:
    """The carry at rest for window ``K = window`` (before the first step; times < 0 are zero)."""
    k = check_window(window)
    n, m = params.w_left.shape
    dtype = params.w_left.dtype
    return TbpttCarry(jnp.zeros((n, m), dtype), jnp.zeros((min(k - 1, 1), n, m), dtype),
                      jnp.zeros((k - 1, n), dtype))


def tbptt_step(params: GridParams, carry: TbpttCarry, x_t: Array, dep: Array, t: Array,
               dt: float = DT) -> tuple[TbpttCarry, GridParams]:
    """One step: returns the next carry and ``(dL/dr(t))^T dr(t)/dtheta`` with ``s(t-K)`` fixed.

    ``x_t: (N,)``, ``dep = dL/dr(t): (M,)``, ``t``: the step index (window steps at negative
    times are skipped, which keeps the state at rest there).
    """
    k = carry.x_back.shape[0] + 1
    start = jax.lax.stop_gradient(carry.s_back[0] if k > 1 else carry.s)
    x_win = jnp.concatenate([carry.x_back, x_t[None]], axis=0)  # x(t-K+1 .. t)
    valid = t - k + 1 + jnp.arange(k) >= 0

    def window(p):
        def body(s, inp):
            x, ok = inp
            s_new, y = step(p, s, x, dt)
            s_new = jnp.where(ok, s_new, s)
            return s_new, (s_new, y[-1])

        _, (states, r) = jax.lax.scan(body, start, (x_win, valid))
        return r[-1], states

    _, pullback, states = jax.vjp(window, params, has_aux=True)
    (grad,) = pullback(dep)
    new = TbpttCarry(s=states[-1], s_back=states[:1] if k > 1 else carry.s_back, x_back=x_win[1:])
    return new, grad


def _tbptt_core(params: GridParams, xs: Array, labels: Array, mode: str, dt: float,
                chain: int = 1, *, window: int = 1) -> tuple[Array, Array, GridParams]:
    """Truncated BPTT of a batch laid out cell-major, ``xs: (T, N, B)``, ``labels: (B,)``:
    per-example losses ``(B,)``, logits ``(B, M)`` and the gradient **summed** over the batch.

    The backward sweep of the module docstring; the adjoint by age is ``(N, M, K, L)``.
    """
    ages = min(check_window(window), xs.shape[0])  # an error older than the sequence is none
    sweep = forward_sweep(params, xs, labels, mode, dt, chain, keep_inputs=True)
    k = hyperplane_constants(params, dt)
    pk = k.params
    by_age = lambda z: z[:, :, None]  # (N, M, L) -> (N, M, 1, L), to broadcast over ages
    couple_below, couple_right, a = by_age(k.couple_below), by_age(k.couple_right), by_age(k.a)
    tau = jnp.exp(pk.log_tau)

    def backward_stage(carry, inp):
        s_bar_next, grad = carry  # the adjoint of s by age on hyperplane q + 1, (N, M, K, L)
        dep, y, (s_prev, u, v), on, last = inp
        # dL/dy of every age: the children at the same step (hyperplane q + 1), and the readout
        # gradient, which is the error of this very step (age 0)
        y_bar = shift(s_bar_next, 1, 0) * couple_below + shift(s_bar_next, 0, 1) * couple_right
        y_bar = y_bar.at[-1, :, 0].add(dep)
        # the same cell at the next step, one age younger; an error at age K is dropped, and
        # nothing runs back across the boundary between two chained examples
        older = jnp.concatenate([jnp.zeros_like(s_bar_next[:, :, :1]), s_bar_next[:, :, :-1]],
                                axis=2)
        through_y = y_bar * by_age(1.0 - y**2)
        s_bar = by_age(on) * (a * by_age(1.0 - last) * older + through_y)
        total = s_bar.sum(2)  # every age's error reaches this step's parameters alike
        drive = pk.w_left * u + pk.w_top * v
        local = GridParams(
            log_tau=k.a * (dt / tau) * (s_prev - drive),  # ds/da da/dlog_tau
            w_left=k.c * u,
            w_top=k.c * v,
            bias=jnp.zeros_like(u),
        )
        grad = jax.tree.map(lambda g, ds: g + total * ds, grad, local)
        grad = grad._replace(bias=grad.bias + on * through_y.sum(2))
        return (s_bar, grad), None

    n, m_cols, lanes = sweep.y.shape[1:]
    zero = jnp.zeros((n, m_cols, lanes), xs.dtype)
    init = (jnp.zeros((n, m_cols, ages, lanes), xs.dtype), GridParams(zero, zero, zero, zero))
    (_, grad), _ = jax.lax.scan(backward_stage, init,
                                (sweep.deposit, sweep.y, sweep.inputs, sweep.started,
                                 sweep.last_step), reverse=True)
    return sweep.losses, sweep.readout.sum(0).T, jax.tree.map(lambda g: g.sum(-1), grad)


def tbptt_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT, *, window: int = 1
) -> tuple[Array, Array, GridParams]:
    """``(loss, logits, truncated-BPTT gradient)`` for one sequence ``xs: (T, N)`` and window ``K``.

    Shapes: ``loss ()``, ``logits (M,)``, each gradient ``(N, M)``. ``window >= T`` gives BPTT
    exactly; ``window = 1`` back-propagates each step's error through that step only. Computed
    by the adjoint by age on hyperplanes (module docstring); the numbers of :func:`tbptt_step`
    summed over the steps.

    >>> import jax, jax.numpy as jnp
    >>> from gridlib.filtergrid import init_params, bptt_grads, tbptt_grads
    >>> p = init_params(jax.random.PRNGKey(0), 3, 2)
    >>> xs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    >>> g5, g = tbptt_grads(p, xs, 1, window=5)[2], bptt_grads(p, xs, 1)[2]
    >>> bool(jnp.allclose(g5.w_left, g.w_left, rtol=1e-5, atol=1e-7))
    True
    """
    return on_hyperplanes(_tbptt_core, params, xs, label, mode, dt, window=window)


def tbptt_batch_grads(
    params: GridParams, xs: Array, labels: Array, mode: str = "sum", dt: float = DT,
    chain: int | None = None, *, window: int = 1,
) -> tuple[Array, Array, GridParams]:
    """Batched :func:`tbptt_grads`: ``xs: (B, T, N)``, ``labels: (B,)`` -> ``(losses (B,),
    logits (B, M), gradient averaged over the batch)``; the numbers of ``vmap(tbptt_grads)``
    then a mean. ``chain``: as for :func:`~gridlib.filtergrid.snap1.snap1_batch_grads`."""
    return batch_on_hyperplanes(_tbptt_core, params, xs, labels, mode, dt, chain, window=window)


__all__ = ["TbpttCarry", "tbptt_batch_grads", "tbptt_grads", "tbptt_init", "tbptt_step"]
