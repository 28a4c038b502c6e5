r"""One gridnet cell: the 27-neighbour stencil, the activation and the untied cell parameters.

A gridnet (after Nichol's *gridnet*) is a cube of ``G x G x G`` scalar activations ``H``. Every
cell ``u`` owns 27 weights ``W[:, u]`` (one per cell of its 3x3x3 neighbourhood, itself included),
a bias ``b[u]`` and a residual scale ``r[u]``; nothing is shared between cells (a locally connected
layer, not a convolution). One **local update** of cell ``u`` reads

.. math::

    z_u &= b_u + \sum_{\delta \in \{-1,0,1\}^3} W_{\delta,u} \, X_{u+\delta}, \\
    X'_u &= X_u + r_u \, \varphi(z_u),

with zeros outside the grid. Row ``9a + 3b + c`` of ``W`` weights the offset
``(a-1, b-1, c-1)`` along the axes ``(m, n, k)``, the same order as the seed code.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

#: Neighbour offsets, row ``9a + 3b + c`` <-> offset ``(a-1, b-1, c-1)``.
OFFSETS: tuple[tuple[int, int, int], ...] = tuple(itertools.product(range(3), repeat=3))

#: Names of the activations phi that :func:`activation` knows.
ACTIVATIONS = ("silu", "relu", "leaky_relu", "tanh")
#: Slope of the leaky ReLU for negative inputs (the seed's value).
LEAKY_SLOPE = 0.01


# --------------------------------------------------------------------------------------------
# activations and their derivatives (the derivative is needed by the hand-written VJP)
# --------------------------------------------------------------------------------------------


def activation(name: str) -> Callable[[Array], Array]:
    """phi for ``name`` in :data:`ACTIVATIONS` (leaky ReLU slope 0.01, as in the seed)."""
    check_activation(name)
    return {
        "silu": jax.nn.silu,
        "relu": jax.nn.relu,
        "leaky_relu": lambda z: jnp.where(z > 0, z, LEAKY_SLOPE * z),
        "tanh": jnp.tanh,
    }[name]


def activation_grad(name: str) -> Callable[[Array], Array]:
    r"""phi' for ``name``: silu' = s (1 + z (1 - s)) with s = sigmoid(z); relu' = [z > 0]."""
    check_activation(name)

    def silu_grad(z):
        s = jax.nn.sigmoid(z)
        return s * (1 + z * (1 - s))

    return {
        "silu": silu_grad,
        "relu": lambda z: (z > 0).astype(z.dtype),
        "leaky_relu": lambda z: jnp.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype),
        "tanh": lambda z: 1 - jnp.tanh(z) ** 2,
    }[name]


def check_activation(name: str) -> None:
    """ValueError unless ``name`` is one of :data:`ACTIVATIONS`."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


# --------------------------------------------------------------------------------------------
# the stencil: 27 static slices (no gathers)
# --------------------------------------------------------------------------------------------


def stencil(x: Array, w: Array, b: Array) -> Array:
    r"""``z_u = b_u + sum_delta W_delta,u x_{u+delta}`` for every interior cell of a padded array.

    ``x``: ``(..., S+2, S+2, S+2)`` (interior plus halo/padding); ``w``: ``(27, ..., S, S, S)``;
    ``b``: ``(..., S, S, S)``; all broadcast against each other. Returns ``(..., S, S, S)``.
    The 27 offsets are unrolled into static slices that XLA fuses into a single loop.
    """
    s = x.shape[-1] - 2
    z = b
    for i, (a, bb, c) in enumerate(OFFSETS):
        z = z + w[i] * x[..., a : a + s, bb : bb + s, c : c + s]
    return z


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------


class CellParams(NamedTuple):
    """Untied per-cell parameters of the grid update (natural or block layout).

    w: ``(27, G, G, G)`` neighbour weights; b: ``(G, G, G)`` bias; r: ``(G, G, G)`` residual scale.
    """

    w: Array
    b: Array
    r: Array


def init_cells(key: Array, grid: int, init_scale: float = 1.0, residual_scale: float = 1.0,
               dtype=jnp.float32) -> CellParams:
    """Seed initialisation: ``W ~ N(0, init_scale^2 / 27)``, ``b = 0``, ``r = residual_scale``."""
    w = jax.random.normal(key, (27, grid, grid, grid), dtype) * (init_scale / math.sqrt(27))
    return CellParams(w, jnp.zeros((grid,) * 3, dtype), jnp.full((grid,) * 3, residual_scale, dtype))

