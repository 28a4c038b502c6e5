"""Blocks and the frozen halo: block layout, halo windows, and the literal blocked outer step.

The grid is cut into ``(G/S)^3`` blocks of ``S^3`` cells. One *outer step*
(:func:`block_step_windows`) gives every block a private copy of its ``(S+2)^3`` window (its cells
plus a one-cell halo taken from its neighbours *at the start of the outer step*) and applies ``I``
synchronous (Jacobi) local updates to the interior while the halo stays frozen. The blocks never
talk during those ``I`` updates; they exchange halos only between outer steps. With ``I = 1`` the
blocking changes nothing; with ``S = G`` (one block) the outer step is ``I`` steps of the
synchronous grid (:func:`gridlib.gridnet.reference.sync_step`).

:func:`block_step_windows` is the literal form: the grid in *block layout*
``(B, nb, nb, nb, S, S, S)`` (``nb = G / S``, :func:`to_blocks`), every block's window built by
slices, the updates broadcast over the three block axes. The fast form used by the network
(:func:`gridlib.gridnet.hand_vjp.step_cm`) keeps the grid whole and picks, through the masks of
:func:`same_block_masks`, between the current grid (same block) and the frozen start-of-step grid
(halo) for every cell and offset.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gridlib.gridnet.cell import OFFSETS, CellParams, activation, stencil

Array = jax.Array


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
# block layout and the halo windows
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


def cells_to_blocks(p: CellParams, block: int) -> CellParams:
    """Natural -> block layout for the cell parameters (once per forward pass, outside the scan)."""
    return CellParams(to_blocks(p.w, block), to_blocks(p.b, block), to_blocks(p.r, block))


# --------------------------------------------------------------------------------------------
# the literal blocked outer step, and the masks that let the fast step skip the windows
# --------------------------------------------------------------------------------------------


def block_step_windows(y: Array, p: CellParams, inner: int = 1, act: str = "silu") -> Array:
    """One outer step, literally: ``y`` in block layout ``(..., nb,nb,nb, S,S,S)``, ``p`` in block
    layout. Every block gets its ``(S+2)^3`` window (:func:`windows`); the ``inner`` updates run on
    all windows at once (a broadcast over the block axes) while the halo stays frozen.

    The readable reference of the blocked semantics (plain autodiff);
    :func:`gridlib.gridnet.hand_vjp.step` computes the same function faster.
    """
    phi = activation(act)
    x0 = windows(y)
    idx = (0,) * (x0.ndim - 3) + (1, 1, 1)

    def one(y, _):
        x = jax.lax.dynamic_update_slice(x0, y, idx)  # window = frozen halo + current interior
        return y + p.r * phi(stencil(x, p.w, p.b)), None

    return jax.lax.scan(one, y, None, length=inner)[0]


def same_block_masks(grid: int, block: int) -> np.ndarray:
    """``M: (27, G, G, G)`` bool, ``M[delta, u] = [block(u) == block(u + delta)]``.

    Where ``M`` is false, cell ``u`` reads its neighbour from the frozen start-of-step grid.
    (Sources outside the grid are zero either way; they are marked true.)
    """
    check_blocking(grid, block)
    u = np.arange(grid)
    out = np.ones((27, grid, grid, grid), bool)
    for i, off in enumerate(OFFSETS):
        m = [(u // block) == (np.clip(u + o - 1, 0, grid - 1) // block) for o in off]
        out[i] = m[0][:, None, None] & m[1][None, :, None] & m[2][None, None, :]
    return out


def blocked_step(h: Array, p: CellParams, block: int, inner: int = 1, act: str = "silu") -> Array:
    """:func:`block_step_windows` in natural layout ``(..., G, G, G)`` (converts to block layout)."""
    check_blocking(h.shape[-1], block)
    return from_blocks(block_step_windows(to_blocks(h, block), cells_to_blocks(p, block), inner, act))

