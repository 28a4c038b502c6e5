r"""Truncated BPTT with window :math:`K`: each step's error is back-propagated at most :math:`K` steps.

**Definition.** The exact gradient is :math:`\sum_t \big(\partial L/\partial r(t)\big)^\top
dr(t)/d\theta`. Truncated BPTT replaces :math:`dr(t)/d\theta` by the derivative of :math:`r(t)`
with the state :math:`s(t-K)` held constant (``stop_gradient``):

.. math:: g_K = \sum_t \Big(\frac{\partial L}{\partial r(t)}\Big)^\top
          \frac{\partial r(t)}{\partial\theta}\Big|_{s(t-K)\ \text{fixed}}
        = \sum_t \sum_{\tau = t-K+1}^{t} \Big(\frac{\partial L}{\partial r(t)}\Big)^\top
          \frac{\partial r(t)}{\partial\theta_\tau},

where :math:`\theta_\tau` is the copy of the parameters used at step :math:`\tau` (the second form
is how the tests check it, with per-step parameter copies and ``jax.jacrev``). So the error of
step :math:`t` reaches the parameter uses of steps :math:`t-K+1, \dots, t`: :math:`K` steps,
the current one included. :math:`K = 1` keeps only the current step's graph (every
:math:`J(t-1)` treated as zero, less than SnAP-0, which keeps the self-traces); :math:`K \ge T`
is BPTT exactly. This is the "every step gets its own :math:`K`-step window" form
(Williams and Peng's BPTT(:math:`h`) with :math:`h' = 1`), not the cheaper chunked form that
cuts the sequence into blocks.

**Implementation.** A scan over time that at step :math:`t` reruns the grid over the window from
:math:`s(t-K)` (detached) with the inputs :math:`x(t-K+1..t)` and takes one vector-Jacobian
product with :math:`\partial L/\partial r(t)`: :math:`K` forward steps and their backward per
step, :math:`O(TK)` in all. The carried state is the network state :math:`s(t-1)`, the window's
start state :math:`s(t-K)` (absent when :math:`K = 1`: the window then starts at
:math:`s(t-1)`) and the :math:`K-1` inputs :math:`x(t-K+1..t-1)`: :math:`NM + (K-1)N` floats of
learning state for :math:`K \ge 2`, none for :math:`K = 1`, and the :math:`K-1` intermediate
states are recomputed rather than stored. With the ``"per_t"`` loss the readout gradient of
step :math:`t` is known at step :math:`t` and the scan is online; with the ``"sum"`` loss it is
known only after the last step, so (as for SnAP-1) it is computed by a forward pass first.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from gridlib.filtergrid.cell import DT, GridParams
from gridlib.filtergrid.model import step
from gridlib.filtergrid.stepwise import batched, loss_head


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


def tbptt_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT, *, window: int = 1
) -> tuple[Array, Array, GridParams]:
    """``(loss, logits, truncated-BPTT gradient)`` for one sequence ``xs: (T, N)`` and window ``K``.

    ``window >= T`` gives BPTT exactly; ``window = 1`` back-propagates each step's error through
    that step only.

    >>> import jax, jax.numpy as jnp
    >>> from gridlib.filtergrid import init_params, bptt_grads, tbptt_grads
    >>> p = init_params(jax.random.PRNGKey(0), 3, 2)
    >>> xs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    >>> g5, g = tbptt_grads(p, xs, 1, window=5)[2], bptt_grads(p, xs, 1)[2]
    >>> bool(jnp.allclose(g5.w_left, g.w_left, rtol=1e-5, atol=1e-7))
    True
    """
    k = check_window(window)
    value, logits, _, dr = loss_head(params, xs, label, mode, dt)

    def body(carry, inp):
        state, grad = carry
        x_t, dep, t = inp
        state, g = tbptt_step(params, state, x_t, dep, t, dt)
        return (state, jax.tree.map(jnp.add, grad, g)), None

    zero = jax.tree.map(jnp.zeros_like, params)
    t_idx = jnp.arange(xs.shape[0])
    (_, grad), _ = jax.lax.scan(body, (tbptt_init(params, k), zero), (xs, dr, t_idx))
    return value, logits, grad


tbptt_batch_grads = batched(tbptt_grads, "tbptt")

__all__ = ["TbpttCarry", "tbptt_batch_grads", "tbptt_grads", "tbptt_init", "tbptt_step"]
