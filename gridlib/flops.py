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

:func:`count_ops` splits the same total by kind, since a machine runs them at different rates:
matrix-product FLOPs, transcendental evaluations (:data:`TRANSCENDENTAL`, per primitive) and
every other operation. :func:`count_stages` counts the loop iterations that must run one
after another: the longest chain of ``scan`` / ``while`` iterations through the program's data
dependencies (:func:`jaxpr_stages`), the sequential length no parallel hardware can shorten.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
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
#: Primitives that evaluate a transcendental function: a polynomial or rational approximation
#: after a range reduction, tens of instructions per element where an add or a multiply is one.
#: ``sqrt`` and ``rsqrt`` are not among them: they are single vector instructions on the CPUs
#: this book runs on; ``integer_pow`` is a few multiplies; ``pow`` (a float exponent) is an
#: ``exp`` of a ``log``.
TRANSCENDENTAL = frozenset({
    "exp", "exp2", "expm1", "log", "log1p", "logistic", "tanh", "sin", "cos", "tan", "asin",
    "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh", "erf", "erfc",
    "erf_inv", "lgamma", "digamma", "pow", "cbrt",
})  # fmt: skip


def _size(aval: Any) -> int:
    return int(np.prod(aval.shape)) if hasattr(aval, "shape") else 1


def _is_float(aval: Any) -> bool:
    # jnp's issubdtype also reads JAX's own dtypes (typed PRNG keys: not floats)
    return hasattr(aval, "dtype") and jnp.issubdtype(aval.dtype, jnp.inexact)


def _inner(jaxpr: Any) -> Any:
    return jaxpr.jaxpr if isinstance(jaxpr, jcore.ClosedJaxpr) else jaxpr


def _dot_flops(eqn: Any) -> int:
    (contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval
    contracted = int(np.prod([lhs.shape[d] for d in contract])) if contract else 1
    return 2 * _size(eqn.outvars[0].aval) * contracted


@dataclass(frozen=True)
class OpCounts:
    """Operations of a program by kind (the rules of the module docstring).

    Attributes:
        matmul: FLOPs of the ``dot_general`` products (a multiply and an add each).
        transcendental: evaluations per primitive, e.g. ``{"sin": 1024, "exp": 64}``
            (:data:`TRANSCENDENTAL`).
        other: every other floating-point operation (adds, multiplies, comparisons, ``sqrt``,
            reductions' inputs).

    ``total`` is what :func:`count_flops` returns.

    >>> OpCounts(matmul=120, transcendental={"sin": 12}, other=24).total
    156
    """

    matmul: int = 0
    transcendental: Mapping[str, int] = field(default_factory=dict)
    other: int = 0

    @property
    def transcendental_total(self) -> int:
        """Transcendental evaluations of every primitive together."""
        return sum(self.transcendental.values())

    @property
    def total(self) -> int:
        """The count of every operation (matrix-product FLOPs, transcendentals and the rest)."""
        return self.matmul + self.transcendental_total + self.other

    def __add__(self, other: OpCounts) -> OpCounts:
        trans = dict(self.transcendental)
        for k, v in other.transcendental.items():
            trans[k] = trans.get(k, 0) + v
        return OpCounts(self.matmul + other.matmul, trans, self.other + other.other)

    def __mul__(self, k: int) -> OpCounts:
        return OpCounts(k * self.matmul, {p: k * v for p, v in self.transcendental.items()},
                        k * self.other)

    __rmul__ = __mul__

    def as_dict(self) -> dict[str, Any]:
        """The counts as plain JSON-ready values (``transcendental`` sorted by primitive)."""
        return {"matmul": self.matmul, "transcendental": dict(sorted(self.transcendental.items())),
                "other": self.other, "total": self.total}


def jaxpr_ops(jaxpr: Any, trip_count: int | None = None) -> OpCounts:
    """Operations of a (closed) jaxpr by kind, by the rules of the module docstring."""
    total = OpCounts()
    for eqn in _inner(jaxpr).eqns:
        name = eqn.primitive.name
        p = eqn.params
        if name == "dot_general":
            total += OpCounts(matmul=_dot_flops(eqn))
        elif name == "scan":
            total += p["length"] * jaxpr_ops(p["jaxpr"], trip_count)
        elif name == "while":
            if trip_count is None:
                raise ValueError("a while loop's trip count is not in its jaxpr: pass trip_count")
            body = jaxpr_ops(p["body_jaxpr"], trip_count) + jaxpr_ops(p["cond_jaxpr"], trip_count)
            total += trip_count * body
        elif name == "cond":
            total += max((jaxpr_ops(b, trip_count) for b in p["branches"]), key=lambda c: c.total)
        elif any(k in p for k in CALLS):
            total += jaxpr_ops(next(p[k] for k in CALLS if k in p), trip_count)
        elif name in MOVEMENT or not any(_is_float(v.aval) for v in eqn.outvars):
            continue
        elif name in REDUCTIONS:
            total += OpCounts(other=sum(_size(v.aval) for v in eqn.invars))
        elif name in TRANSCENDENTAL:
            total += OpCounts(transcendental={name: sum(_size(v.aval) for v in eqn.outvars)})
        else:
            total += OpCounts(other=sum(_size(v.aval) for v in eqn.outvars))
    return total


def jaxpr_flops(jaxpr: Any, trip_count: int | None = None) -> int:
    """Operations of a (closed) jaxpr by the rules of the module docstring."""
    return jaxpr_ops(jaxpr, trip_count).total


def _eqn_stages(eqn: Any, trip_count: int | None) -> int:
    name, p = eqn.primitive.name, eqn.params
    if name == "scan":
        length, unroll = p["length"], p.get("unroll", 1)
        if length == 0:
            return 0
        u = length if unroll is True else min(max(int(unroll or 1), 1), length)
        return math.ceil(length / u) * max(1, u * jaxpr_stages(p["jaxpr"], trip_count))
    if name == "while":
        if trip_count is None:
            raise ValueError("a while loop's trip count is not in its jaxpr: pass trip_count")
        body = jaxpr_stages(p["body_jaxpr"], trip_count) + jaxpr_stages(p["cond_jaxpr"], trip_count)
        return trip_count * max(1, body)
    if name == "cond":
        return max(jaxpr_stages(b, trip_count) for b in p["branches"])
    if any(k in p for k in CALLS):
        return jaxpr_stages(next(p[k] for k in CALLS if k in p), trip_count)
    return 0


def jaxpr_stages(jaxpr: Any, trip_count: int | None = None) -> int:
    """Loop iterations on the longest chain of data dependencies of a (closed) jaxpr.

    A ``scan`` of length ``L`` runs its iterations one after another: it adds
    ``L * max(1, s)`` to the chain through it, ``s`` the body's own stages (an unrolled body of
    ``u`` iterations is one loop trip of ``u * s`` stages, or one stage without inner loops);
    a ``while`` loop likewise with ``trip_count``; a ``cond`` its longest branch; calls their
    inner jaxpr; every other primitive adds nothing. Loops that do not depend on each other
    are not added: the longest path counts, as if independent work could overlap.
    """
    inner = _inner(jaxpr)
    depth: dict[Any, int] = {}

    def at(v: Any) -> int:
        return depth.get(v, 0) if isinstance(v, jcore.Var) else 0

    for eqn in inner.eqns:
        start = max((at(v) for v in eqn.invars), default=0)
        own = start + _eqn_stages(eqn, trip_count)
        for v in eqn.outvars:
            depth[v] = own
    return max((at(v) for v in inner.outvars), default=0)


def count_flops(fn: Callable[..., Any], *args: Any, trip_count: int | None = None,
                **kwargs: Any) -> int:
    """Floating-point operations of one call ``fn(*args, **kwargs)``, from its jaxpr.

    ``args`` may be arrays or ``jax.ShapeDtypeStruct``; nothing is computed.

    >>> import jax.numpy as jnp
    >>> count_flops(lambda a, b: a @ b, jnp.ones((4, 3)), jnp.ones((3, 5)))  # 2 * 4 * 5 * 3
    120
    """
    return jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs), trip_count)


def count_ops(fn: Callable[..., Any], *args: Any, trip_count: int | None = None,
              **kwargs: Any) -> OpCounts:
    """:func:`count_flops`, split by kind (:class:`OpCounts`).

    >>> import jax.numpy as jnp
    >>> c = count_ops(lambda a, b: jnp.sin(a @ b) + 1.0, jnp.ones((4, 3)), jnp.ones((3, 5)))
    >>> c.matmul, c.transcendental, c.other
    (120, {'sin': 20}, 20)
    """
    return jaxpr_ops(jax.make_jaxpr(fn)(*args, **kwargs), trip_count)


def count_stages(fn: Callable[..., Any], *args: Any, trip_count: int | None = None,
                 **kwargs: Any) -> int:
    """Sequential loop iterations of one call ``fn(*args, **kwargs)`` (:func:`jaxpr_stages`).

    >>> import jax
    >>> body = lambda c, _: (c * 2.0, None)
    >>> count_stages(lambda x: jax.lax.scan(body, x, None, length=7)[0], 1.0)
    7
    """
    return jaxpr_stages(jax.make_jaxpr(fn)(*args, **kwargs), trip_count)


__all__ = ["TRANSCENDENTAL", "OpCounts", "count_flops", "count_ops", "count_stages",
           "jaxpr_flops", "jaxpr_ops", "jaxpr_stages"]
