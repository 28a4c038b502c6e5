r"""gridnet: a 3-D grid of scalar cells updated in blocks with a frozen halo.

The model (after Nichol's *gridnet*) is a cube of ``G x G x G`` scalar activations ``H``. Every
cell ``u`` owns 27 weights ``W[:, u]`` (one per cell of its 3x3x3 neighbourhood, itself included),
a bias ``b[u]`` and a residual scale ``r[u]``; nothing is shared between cells (a locally connected
layer, not a convolution). One **local update** of cell ``u`` reads

.. math::

    z_u = b_u + \sum_{\delta \in \{-1,0,1\}^3} W_{\delta,u} \, X_{u+\delta}, \qquad
    X'_u = X_u + r_u \, \varphi(z_u),

with zeros outside the grid. Row ``9a + 3b + c`` of ``W`` weights the offset
``(a-1, b-1, c-1)`` along the axes ``(m, n, k)``, the same order as the seed code.

**Blocks and the frozen halo.** The grid is cut into ``(G/S)^3`` blocks of ``S^3`` cells. One
*outer step* (:func:`block_step`) gives every block a private copy of its ``(S+2)^3`` window
(its cells plus a one-cell halo taken from its neighbours *at the start of the outer step*) and
applies ``I`` synchronous (Jacobi) local updates to the interior while the halo stays frozen. The
blocks never talk during those ``I`` updates; they exchange halos only between outer steps. With
``I = 1`` the blocking changes nothing; with ``S = G`` (one block) the outer step is ``I`` steps
of the synchronous grid (:func:`sync_step`).

**The full network** (:func:`forward`): a learned initial grid ``E``; the (normalised, possibly
pooled) image written into the face ``k = 0``; ``O`` outer steps, each followed by a global
LayerNorm over all ``G^3`` cells with per-cell gain and bias; a readout that takes the face
``k = G-1`` through its own LayerNorm and a linear layer.

**Layout.** Inside :func:`forward` the grid lives in *block layout*
``(B, nb, nb, nb, S, S, S)`` with ``nb = G / S``, so every block-wise operation is a broadcast over
the three block axes (no Python loops over blocks or cells). :func:`to_blocks` and
:func:`from_blocks` convert from and to the natural layout ``(B, G, G, G)``.

**Memory.** :func:`block_step` has a hand-derived VJP (:func:`_block_inner_bwd`) that stores only
the input grid of the outer step and recomputes the ``I`` inner updates during the backward pass,
like the seed's CUDA kernel; the outer loop is a ``lax.scan`` over ``jax.checkpoint``-ed outer
steps, so the memory of ``O`` outer steps is ``O`` grids per example.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

#: Neighbour offsets, row ``9a + 3b + c`` <-> offset ``(a-1, b-1, c-1)``.
OFFSETS: tuple[tuple[int, int, int], ...] = tuple(itertools.product(range(3), repeat=3))

ACTIVATIONS = ("silu", "relu", "leaky_relu", "tanh")
LEAKY_SLOPE = 0.01
LN_EPS = 1e-5
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


# --------------------------------------------------------------------------------------------
# activations and their derivatives (the derivative is needed by the hand-written VJP)
# --------------------------------------------------------------------------------------------


def activation(name: str) -> Callable[[Array], Array]:
    """phi for ``name`` in :data:`ACTIVATIONS` (leaky ReLU slope 0.01, as in the seed)."""
    _check_activation(name)
    return {
        "silu": jax.nn.silu,
        "relu": jax.nn.relu,
        "leaky_relu": lambda z: jnp.where(z > 0, z, LEAKY_SLOPE * z),
        "tanh": jnp.tanh,
    }[name]


def activation_grad(name: str) -> Callable[[Array], Array]:
    r"""phi' for ``name``: silu' = s (1 + z (1 - s)) with s = sigmoid(z); relu' = [z > 0]."""
    _check_activation(name)

    def silu_grad(z):
        s = jax.nn.sigmoid(z)
        return s * (1 + z * (1 - s))

    return {
        "silu": silu_grad,
        "relu": lambda z: (z > 0).astype(z.dtype),
        "leaky_relu": lambda z: jnp.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype),
        "tanh": lambda z: 1 - jnp.tanh(z) ** 2,
    }[name]


def _check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


def check_blocking(grid: int, block: int) -> int:
    """Number of blocks per axis, ``grid // block``; ValueError unless ``block`` divides ``grid``."""
    if not (isinstance(grid, int | np.integer) and isinstance(block, int | np.integer)):
        raise ValueError(f"grid and block sizes must be integers, got {grid!r} and {block!r}")
    if grid < 1 or block < 1:
        raise ValueError(f"grid and block sizes must be positive, got grid={grid}, block={block}")
    if grid % block:
        raise ValueError(
            f"block size {block} does not divide grid size {grid}: the grid must split into "
            f"whole blocks (choose a divisor of {grid})"
        )
    return grid // block


# --------------------------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------------------------


def to_blocks(x: Array, block: int) -> Array:
    """``(..., G, G, G) -> (..., nb, nb, nb, S, S, S)`` with ``nb = G / S`` (a reshape + transpose)."""
    g = x.shape[-1]
    if x.shape[-3:] != (g, g, g):
        raise ValueError(f"expected a cubic grid in the last three axes, got shape {x.shape}")
    nb = check_blocking(g, block)
    lead = x.shape[:-3]
    y = x.reshape(*lead, nb, block, nb, block, nb, block)
    d = len(lead)
    return y.transpose(*range(d), d, d + 2, d + 4, d + 1, d + 3, d + 5)


def from_blocks(y: Array) -> Array:
    """Inverse of :func:`to_blocks`: ``(..., nb, nb, nb, S, S, S) -> (..., G, G, G)``."""
    *lead, nb, _, _, s, _, _ = y.shape
    d = len(lead)
    x = y.transpose(*range(d), d, d + 3, d + 1, d + 4, d + 2, d + 5)
    return x.reshape(*lead, nb * s, nb * s, nb * s)


def windows(y: Array) -> Array:
    """Blocks with their one-cell halo: ``(..., nb,nb,nb, S,S,S) -> (..., nb,nb,nb, S+2,S+2,S+2)``.

    The low halo of block ``beta`` along an axis is the last slice of block ``beta - 1`` (zero for
    the first block: the grid is zero-padded), the high halo the first slice of block ``beta + 1``.
    Extending the three axes one after the other fills edges and corners of the halo correctly,
    because the second extension copies slices that already carry the first one's halo.
    Only slices and concatenations: no gather, so the transpose (used in the backward pass) is a
    cheap scatter-free sum.
    """
    for ax in (-3, -2, -1):  # the within-block axes; block axis is ax - 3
        bax = ax - 3
        last = jax.lax.slice_in_dim(y, y.shape[ax] - 1, y.shape[ax], axis=ax)
        first = jax.lax.slice_in_dim(y, 0, 1, axis=ax)
        lo = _shift_blocks(last, +1, bax)  # block beta sees block beta-1's last slice
        hi = _shift_blocks(first, -1, bax)  # block beta sees block beta+1's first slice
        y = jnp.concatenate([lo, y, hi], axis=ax)
    return y


def _shift_blocks(x: Array, shift: int, axis: int) -> Array:
    """Move blocks by ``shift`` along block ``axis``, filling with zeros (the grid's zero padding)."""
    nb = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    if shift > 0:
        x = jax.lax.slice_in_dim(x, 0, nb - shift, axis=axis)
        pad[axis] = (shift, 0)
    else:
        x = jax.lax.slice_in_dim(x, -shift, nb, axis=axis)
        pad[axis] = (0, -shift)
    return jnp.pad(x, pad)


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


def stencil_transpose(g: Array, w: Array) -> Array:
    r"""Adjoint of :func:`stencil` in ``x``: ``xbar = sum_delta pad_delta(W_delta * g)``.

    ``g``: ``(..., S, S, S)`` cotangent of ``z``; returns ``(..., S+2, S+2, S+2)``: each input cell
    collects the weighted cotangents of the (up to 27) cells that read it.
    """
    out = 0.0
    for i, (a, bb, c) in enumerate(OFFSETS):
        pad = [(0, 0)] * (g.ndim - 3) + [(a, 2 - a), (bb, 2 - bb), (c, 2 - c)]
        out = out + jnp.pad(w[i] * g, pad)
    return out


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


def cells_to_blocks(p: CellParams, block: int) -> CellParams:
    """Natural -> block layout for the cell parameters (once per forward pass, outside the scan)."""
    return CellParams(to_blocks(p.w, block), to_blocks(p.b, block), to_blocks(p.r, block))


# --------------------------------------------------------------------------------------------
# one outer step: synchronous, blocked (autodiff and hand VJP), naive gather
# --------------------------------------------------------------------------------------------


def sync_step(h: Array, p: CellParams, inner: int = 1, act: str = "silu") -> Array:
    """``inner`` synchronous updates of the whole grid, natural layout ``(..., G, G, G)``.

    The reference semantics of a grid without blocks: every cell reads its neighbours' current
    values (zero outside the grid).
    """
    phi = activation(act)

    def one(x, _):
        xp = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(1, 1)] * 3)
        return x + p.r * phi(stencil(xp, p.w, p.b)), None

    return jax.lax.scan(one, h, None, length=inner)[0]


def _block_inner(x0: Array, y: Array, p: CellParams, inner: int, act: str) -> Array:
    """``inner`` Jacobi updates of every block's interior ``y`` with the halo of ``x0`` frozen.

    ``x0``: windows ``(..., nb,nb,nb, S+2,S+2,S+2)`` at the start of the outer step; ``y``: the
    interiors ``(..., nb,nb,nb, S,S,S)``; ``p`` in block layout. Plain JAX (autodiff-able).
    """
    phi = activation(act)

    def one(y, _):
        x = _with_interior(x0, y)
        return y + p.r * phi(stencil(x, p.w, p.b)), None

    return jax.lax.scan(one, y, None, length=inner)[0]


def _with_interior(x0: Array, y: Array) -> Array:
    """The window ``x0`` with its interior replaced by ``y`` (halo untouched)."""
    idx = (0,) * (x0.ndim - 3) + (1, 1, 1)
    return jax.lax.dynamic_update_slice(x0, y, idx)


def block_step_autodiff(y: Array, p: CellParams, inner: int = 1, act: str = "silu") -> Array:
    """One outer step in block layout, differentiated by plain JAX autodiff (the reference)."""
    return _block_inner(windows(y), y, p, inner, act)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def block_step(y: Array, p: CellParams, inner: int = 1, act: str = "silu") -> Array:
    r"""One outer step in block layout ``(B, nb,nb,nb, S,S,S)``, with a hand-derived VJP.

    Forward: windows with frozen halo, then ``inner`` local updates of every block in parallel.
    Backward (:func:`_block_step_bwd`) keeps only ``y`` and ``p`` and recomputes the inner
    updates, so the memory cost of one outer step is one grid, whatever ``inner`` is.
    """
    return block_step_autodiff(y, p, inner, act)


def _block_step_fwd(y, p, inner, act):
    return block_step_autodiff(y, p, inner, act), (y, p)


def _block_step_bwd(inner, act, res, ybar):
    r"""VJP of one outer step (derivation in the gridnet chapter).

    With ``X^{t-1}`` the window before inner update ``t`` (interior ``Y^{t-1}``, frozen halo) and
    ``z^t = b + sum_delta W_delta * shift_delta X^{t-1}``, ``Y^t = Y^{t-1} + r * phi(z^t)``:

        rbar    += Ybar^t * phi(z^t)
        g        = Ybar^t * r * phi'(z^t)
        bbar    += g,      Wbar_delta += g * shift_delta X^{t-1}
        Xbar     = sum_delta pad_delta(W_delta * g)                  (stencil transpose)
        Ybar^{t-1} = Ybar^t + interior(Xbar),   halobar += halo(Xbar)

    for t = I..1; finally the window gradient (interior ``Ybar^0`` plus accumulated halo) goes
    back to the grid through the transpose of :func:`windows` (a linear map: its VJP is exact
    and cheap, slices and pads only). Parameter cotangents are summed over the batch axes.
    """
    y0, p = res
    phi, dphi = activation(act), activation_grad(act)
    x0, windows_vjp = jax.vjp(windows, y0)

    # recompute the forward, keeping the interior before every inner update (I grids, transient)
    def fwd(y, _):
        return y + p.r * phi(stencil(_with_interior(x0, y), p.w, p.b)), y

    _, ys = jax.lax.scan(fwd, y0, None, length=inner)  # ys[t] = Y^t, t = 0..I-1

    batch_axes = tuple(range(y0.ndim - p.b.ndim))
    s = y0.shape[-1]
    interior = (Ellipsis, slice(1, s + 1), slice(1, s + 1), slice(1, s + 1))

    def bwd(carry, y_prev):
        ybar, halobar, wbar, bbar, rbar = carry
        x = _with_interior(x0, y_prev)
        z = stencil(x, p.w, p.b)
        rbar = rbar + jnp.sum(ybar * phi(z), axis=batch_axes)
        g = ybar * p.r * dphi(z)
        bbar = bbar + jnp.sum(g, axis=batch_axes)
        wbar = wbar + jnp.stack([
            jnp.sum(g * x[..., a : a + s, bb : bb + s, c : c + s], axis=batch_axes)
            for (a, bb, c) in OFFSETS
        ])
        xbar = stencil_transpose(g, p.w)
        ybar = ybar + xbar[interior]
        halobar = halobar + xbar.at[interior].set(0.0)
        return (ybar, halobar, wbar, bbar, rbar), None

    zeros = jax.tree.map(jnp.zeros_like, p)
    init = (ybar, jnp.zeros_like(x0), zeros.w, zeros.b, zeros.r)
    (ybar0, halobar, wbar, bbar, rbar), _ = jax.lax.scan(bwd, init, ys, reverse=True)
    (ybar_halo,) = windows_vjp(halobar)
    return ybar0 + ybar_halo, CellParams(wbar, bbar, rbar)


block_step.defvjp(_block_step_fwd, _block_step_bwd)


def blocked_step(h: Array, p: CellParams, block: int, inner: int = 1, act: str = "silu",
                 custom_vjp: bool = True) -> Array:
    """One outer step in natural layout ``(..., G, G, G)`` (converts to and from block layout)."""
    check_blocking(h.shape[-1], block)
    step = block_step if custom_vjp else block_step_autodiff
    return from_blocks(step(to_blocks(h, block), cells_to_blocks(p, block), inner, act))


def neighbour_table(grid: int, block: int) -> np.ndarray:
    """Index table ``(G^3, 27)`` for :func:`naive_step` into ``concat([Xpad, Hpad])``.

    Entry ``(u, delta)`` points at cell ``u + delta`` of the zero-padded current grid ``Xpad`` if
    it lies in the same block as ``u``, and at the same cell of the padded *start-of-step* grid
    ``Hpad`` (offset by ``(G+2)^3``) otherwise: the frozen halo written as an explicit gather.
    Cells outside the grid point at the zero padding either way.
    """
    check_blocking(grid, block)
    gp = grid + 2
    u = np.stack(np.meshgrid(*(np.arange(grid),) * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    d = np.array(OFFSETS).reshape(1, 27, 3) - 1
    src = u + d  # (G^3, 27, 3) source coordinates, may be -1 or G (padding)
    flat = ((src[..., 0] + 1) * gp + src[..., 1] + 1) * gp + src[..., 2] + 1
    same = np.all((src // block) == (u // block), axis=-1) | np.any(
        (src < 0) | (src >= grid), axis=-1
    )
    return np.where(same, flat, flat + gp**3).astype(np.int32)


def naive_step(h: Array, p: CellParams, block: int, inner: int = 1, act: str = "silu") -> Array:
    """The same outer step as :func:`blocked_step`, written naively: an explicit gather of 27
    neighbours per cell (:func:`neighbour_table`) on the flat grid, no block decomposition.

    ``h``: ``(B, G, G, G)``. Used as the baseline of the benchmark and as a second reference.
    """
    g = h.shape[-1]
    idx = jnp.asarray(neighbour_table(g, block))
    phi = activation(act)
    wt = p.w.reshape(27, -1).T  # (G^3, 27)
    b, r = p.b.reshape(-1), p.r.reshape(-1)
    pad = [(0, 0)] * (h.ndim - 3) + [(1, 1)] * 3
    hp = jnp.pad(h, pad).reshape(*h.shape[:-3], -1)
    x = h.reshape(*h.shape[:-3], -1)
    for _ in range(inner):  # naive on purpose: unrolled, no scan
        xp = jnp.pad(x.reshape(h.shape), pad).reshape(hp.shape)
        nbr = jnp.concatenate([xp, hp], axis=-1)[..., idx]  # (B, G^3, 27)
        x = x + r * phi(b + jnp.sum(nbr * wt, axis=-1))
    return x.reshape(h.shape)
