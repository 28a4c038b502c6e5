"""Floating-point operations of a JAX function, counted from its jaxpr.

XLA's own ``compiled.cost_analysis()`` counts the body of a loop once, whatever its trip count
(a ``lax.scan`` of 10 matrix products reports the FLOPs of one), so it cannot compare rules that
differ in how they loop over time. :func:`count_flops` walks the jaxpr instead:

- ``dot_general``: ``2 * (output size) * (contracted size)`` (a multiply and an add each);
- ``scan``: its body times ``length``; ``while``: its body times ``trip_count`` when given
  (otherwise a :class:`ValueError`, since a while loop's length is not in its jaxpr);
- ``cond``: the costliest branch; ``pjit``, ``custom_jvp_call``, ``custom_vjp_call``,
  ``remat``, ``closed_call``: their inner jaxpr;
- every other primitive on floating-point arrays: one operation per output element (an add, a
  ``tanh``, a ``max`` each count one), reductions one per input element; integer, boolean and
  pure data-movement primitives (reshapes, slices, gathers, concatenations, random bits)
  count zero.

This is an operation count of the program as written, before XLA fuses or simplifies it: it
measures the work a rule asks for, not the time a machine takes (benchmarks measure that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.extend import core as jcore

#: Primitives that move or relabel data without arithmetic.
MOVEMENT = frozenset({
    "reshape", "broadcast_in_dim", "squeeze", "expand_dims", "transpose", "slice",
    "dynamic_slice", "dynamic_update_slice", "gather", "scatter", "concatenate", "pad", "rev",
    "select_n", "convert_element_type", "copy", "copy_p", "iota", "stop_gradient",
    "random_bits", "random_seed", "random_wrap", "random_unwrap", "threefry2x32",
    "device_put", "sharding_constraint", "split", "bitcast_convert_type",
})  # fmt: skip
REDUCTIONS = frozenset({"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax",
                        "argmin", "cumsum", "cumlogsumexp", "cummax", "cummin", "cumprod"})
#: Primitives whose inner jaxpr runs once per call.
CALLS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


def _size(aval: Any) -> int:
    return int(np.prod(aval.shape)) if hasattr(aval, "shape") else 1


def _is_float(aval: Any) -> bool:
    return hasattr(aval, "dtype") and np.issubdtype(aval.dtype, np.inexact)


def _inner(jaxpr: Any) -> Any:
    return jaxpr.jaxpr if isinstance(jaxpr, jcore.ClosedJaxpr) else jaxpr


def _dot_flops(eqn: Any) -> int:
    (contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval
    contracted = int(np.prod([lhs.shape[d] for d in contract])) if contract else 1
    return 2 * _size(eqn.outvars[0].aval) * contracted


def jaxpr_flops(jaxpr: Any, trip_count: int | None = None) -> int:
    """Operations of a (closed) jaxpr by the rules of the module docstring."""
    total = 0
    for eqn in _inner(jaxpr).eqns:
        name = eqn.primitive.name
        p = eqn.params
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "scan":
            total += p["length"] * jaxpr_flops(p["jaxpr"], trip_count)
        elif name == "while":
            if trip_count is None:
                raise ValueError("a while loop's trip count is not in its jaxpr: pass trip_count")
            body = jaxpr_flops(p["body_jaxpr"], trip_count) + jaxpr_flops(p["cond_jaxpr"], trip_count)
            total += trip_count * body
        elif name == "cond":
            total += max(jaxpr_flops(b, trip_count) for b in p["branches"])
        elif any(k in p for k in CALLS):
            total += jaxpr_flops(next(p[k] for k in CALLS if k in p), trip_count)
        elif name in MOVEMENT or not any(_is_float(v.aval) for v in eqn.outvars):
            continue
        elif name in REDUCTIONS:
            total += sum(_size(v.aval) for v in eqn.invars)
        else:
            total += sum(_size(v.aval) for v in eqn.outvars)
    return total


def count_flops(fn: Callable[..., Any], *args: Any, trip_count: int | None = None,
                **kwargs: Any) -> int:
    """Floating-point operations of one call ``fn(*args, **kwargs)``, from its jaxpr.

    ``args`` may be arrays or ``jax.ShapeDtypeStruct``; nothing is computed.

    >>> import jax.numpy as jnp
    >>> count_flops(lambda a, b: a @ b, jnp.ones((4, 3)), jnp.ones((3, 5)))  # 2 * 4 * 5 * 3
    120
    """
    return jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs), trip_count)


__all__ = ["count_flops", "jaxpr_flops"]
