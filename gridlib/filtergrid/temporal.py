r"""Every temporal learning rule of the grid on common ground: one signature, one lookup, one
state count.

Each rule is a function ``(params, xs (T, N), label, mode, dt) -> (loss, logits, gradient summed
over time)`` with a batched twin ``(params, xs (B, T, N), labels (B,), mode, dt) -> (losses,
logits, batch-mean gradient)``, so one experiment swaps them by name (:func:`rule_grads`,
:func:`rule_batch_grads`):

=================  ==============================================================================
``bptt``           exact, reverse mode through the stored trajectory (:mod:`~gridlib.filtergrid.bptt`)
``rtrl``           exact, the full influence matrix carried forward (:mod:`~gridlib.filtergrid.rtrl`)
``snap0``          temporal carry of no descendant: :math:`m_k f_k` (:mod:`~gridlib.filtergrid.snap0`)
``snap1``          carry of the descendants at distance 1 (:mod:`~gridlib.filtergrid.snap1`)
``snap2``          carry of the descendants at distance :math:`\le 2` (:mod:`~gridlib.filtergrid.snap2`)
``tbptt``          each step's error back-propagated :math:`K` steps (:mod:`~gridlib.filtergrid.tbptt`, ``window=K``)
``online_snap1``   SnAP-1 of the per-step loss, computed within each step (:mod:`~gridlib.filtergrid.online`)
=================  ==============================================================================

**State carried forward in time** (:func:`carried_state`, :func:`state_floats_per_parameter`):
the arrays a rule hands from step :math:`t-1` to step :math:`t` in its forward-in-time form,
read off the code's own structures with ``jax.eval_shape`` (nothing is typed in by hand). The
network state ``s`` (``N M`` floats, which every rule needs to run the grid at all) and the
gradient accumulator are not counted; the count is divided by the ``4 N M`` parameters.

- SnAP-0: the self-traces (:func:`~gridlib.filtergrid.snap0.snap0_init`); SnAP-1 and online SnAP-1: self- and
  cross-traces (:func:`~gridlib.filtergrid.online.online_snap1_init`, less ``s``); SnAP-2:
  :func:`~gridlib.filtergrid.snap2.snap2_init`; truncated BPTT: :func:`~gridlib.filtergrid.tbptt.tbptt_init` less ``s``;
- RTRL: the influence matrix :math:`J = ds(t)/d\theta`, the shape of ``jax.jacfwd`` of one grid
  step with respect to the parameters;
- BPTT carries nothing forward but keeps the states :math:`s(0..T-1)` for the backward pass:
  the ``s`` field of :func:`~gridlib.filtergrid.model.forward`'s trajectory, which grows with ``T``.
"""

from __future__ import annotations

import functools
from typing import Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np

from gridlib.filtergrid.bptt import bptt_grads
from gridlib.filtergrid.cell import DT, GridParams
from gridlib.filtergrid.model import forward, step
from gridlib.filtergrid.online import online_snap1_batch_grads, online_snap1_grads, online_snap1_init
from gridlib.filtergrid.rtrl import rtrl_grads
from gridlib.filtergrid.snap0 import snap0_batch_grads, snap0_grads, snap0_init
from gridlib.filtergrid.snap1 import snap1_batch_grads, snap1_grads
from gridlib.filtergrid.snap2 import snap2_batch_grads, snap2_grads, snap2_init
from gridlib.filtergrid.stepwise import RuleGrads, batched
from gridlib.filtergrid.tbptt import check_window, tbptt_batch_grads, tbptt_grads, tbptt_init

#: A temporal rule's name, as :func:`rule_grads` and ``filtergrid-mnist --rule`` take it.
TemporalRule = Literal["bptt", "rtrl", "snap0", "snap1", "snap2", "tbptt", "online_snap1"]
#: Every temporal rule's name, in the order of the table in this module's docstring.
TEMPORAL_RULES: tuple[str, ...] = get_args(TemporalRule)

_SINGLE = {"bptt": bptt_grads, "rtrl": rtrl_grads, "snap0": snap0_grads, "snap1": snap1_grads,
           "snap2": snap2_grads, "tbptt": tbptt_grads, "online_snap1": online_snap1_grads}
_BATCH = {"bptt": batched(bptt_grads, "bptt"), "rtrl": batched(rtrl_grads, "rtrl"),
          "snap0": snap0_batch_grads, "snap1": snap1_batch_grads, "snap2": snap2_batch_grads,
          "tbptt": tbptt_batch_grads, "online_snap1": online_snap1_batch_grads}


def _check(rule: str, window: int | None) -> None:
    if rule not in TEMPORAL_RULES:
        raise ValueError(f"rule must be one of {TEMPORAL_RULES}, got {rule!r}")
    if (rule == "tbptt") != (window is not None):
        raise ValueError(f"window K is required by 'tbptt' and only by it; got rule={rule!r}, "
                         f"window={window!r}")
    if window is not None:
        check_window(window)


def rule_grads(rule: str, window: int | None = None) -> RuleGrads:
    """The per-sequence function of ``rule``: ``(params, xs (T, N), label, mode, dt) -> (loss,
    logits, gradient)``. ``window`` (``K``) is required by ``"tbptt"`` and refused otherwise."""
    _check(rule, window)
    fn = _SINGLE[rule]
    return functools.partial(fn, window=window) if rule == "tbptt" else fn


def rule_batch_grads(rule: str, window: int | None = None) -> RuleGrads:
    """The batched function of ``rule``: ``(params, xs (B, T, N), labels (B,), mode, dt) ->
    (losses (B,), logits (B, M), batch-mean gradient)``."""
    _check(rule, window)
    fn = _BATCH[rule]
    return functools.partial(fn, window=window) if rule == "tbptt" else fn


def _without_network_state(carry):
    """A carry NamedTuple without its network-state field ``s`` (every rule needs that one)."""
    return {k: v for k, v in carry._asdict().items() if k != "s"}


def carried_state(rule: str, n: int, m: int, *, window: int | None = None, t_len: int = 1,
                  dtype=jnp.float32):
    """The learning state ``rule`` carries forward in time on an ``n x m`` grid, as a pytree of
    ``jax.ShapeDtypeStruct`` from ``jax.eval_shape`` of the rule's own code (module docstring).
    ``t_len`` matters only for ``"bptt"``; ``window`` is ``tbptt``'s ``K``."""
    _check(rule, window)
    if n < 1 or m < 1 or t_len < 1:
        raise ValueError(f"need n, m, t_len >= 1, got {n}, {m}, {t_len}")
    params = GridParams(*(jax.ShapeDtypeStruct((n, m), dtype),) * 4)
    s = jax.ShapeDtypeStruct((n, m), dtype)
    x = jax.ShapeDtypeStruct((n,), dtype)
    if rule == "snap0":
        return jax.eval_shape(snap0_init, params)
    if rule in ("snap1", "online_snap1"):
        return _without_network_state(jax.eval_shape(online_snap1_init, params))
    if rule == "snap2":
        return jax.eval_shape(snap2_init, params)
    if rule == "tbptt":
        return _without_network_state(jax.eval_shape(lambda p: tbptt_init(p, window), params))
    if rule == "rtrl":
        return jax.eval_shape(lambda p, s0, x0: jax.jacfwd(lambda q: step(q, s0, x0, DT)[0])(p),
                              params, s, x)
    if rule == "bptt":
        xs = jax.ShapeDtypeStruct((t_len, n), dtype)
        return jax.eval_shape(lambda p, x_seq: forward(p, x_seq).s, params, xs)
    raise ValueError(f"no carried state defined for rule {rule!r}")  # unreachable after _check


def state_floats_per_parameter(rule: str, n: int, m: int, *, window: int | None = None,
                               t_len: int = 1) -> float:
    """Floats of learning state per parameter that ``rule`` carries forward in time on an
    ``n x m`` grid: the sizes of :func:`carried_state` over ``4 n m``.

    >>> state_floats_per_parameter("snap1", 28, 10)  # 11 traces per cell, 4 parameters
    2.75
    """
    leaves = jax.tree.leaves(carried_state(rule, n, m, window=window, t_len=t_len))
    return sum(int(np.prod(leaf.shape)) for leaf in leaves) / (4 * n * m)


__all__ = [
    "TEMPORAL_RULES",
    "carried_state",
    "rule_batch_grads",
    "rule_grads",
    "state_floats_per_parameter",
]
