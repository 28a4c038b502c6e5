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
*outer step* (:func:`block_step_windows`) gives every block a private copy of its ``(S+2)^3`` window
(its cells plus a one-cell halo taken from its neighbours *at the start of the outer step*) and
applies ``I`` synchronous (Jacobi) local updates to the interior while the halo stays frozen. The
blocks never talk during those ``I`` updates; they exchange halos only between outer steps. With
``I = 1`` the blocking changes nothing; with ``S = G`` (one block) the outer step is ``I`` steps
of the synchronous grid (:func:`sync_step`).

**The full network** (:func:`forward`): a learned initial grid ``E``; the (normalised, possibly
pooled) image written into the face ``k = 0``; ``O`` outer steps, each followed by a global
LayerNorm over all ``G^3`` cells with per-cell gain and bias; a readout that takes the face
``k = G-1`` through its own LayerNorm and a linear layer.

**Two equal forms of the outer step.** :func:`block_step_windows` is the literal one: the grid
in *block layout* ``(B, nb, nb, nb, S, S, S)`` (``nb = G / S``, :func:`to_blocks`), every block's
window built by slices, the updates broadcast over the three block axes. :func:`step_cm`, used
by :func:`forward`, gets the same numbers without window copies: the grid stays whole, in
*cells-major* layout ``(G, G, G, B)`` (batch as the minor axis, so the 27 shifted slices
vectorise over it), and 27 static masks (:func:`same_block_masks`) choose for every cell and
offset between the current grid (same block) and the frozen start-of-step grid (halo). Neither
loops over blocks or cells in Python; :func:`naive_step` (a 27-neighbour gather) is the baseline.

**Memory.** The outer step (:func:`step_cm`) has a hand-derived VJP that stores only the input
grid of the outer step and recomputes the ``I`` inner updates during the backward pass, like the
seed's CUDA kernel. The outer loop is a ``lax.scan``; it stores the step input and the
LayerNorm input, two grids per outer step whatever ``I`` is. ``Config(remat=True)`` wraps each
outer step in ``jax.checkpoint`` to store one grid, at the price of a second forward pass.
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
import optax

from gridlib import results, scale
from gridlib.cli import experiment

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


def block_step_windows(y: Array, p: CellParams, inner: int = 1, act: str = "silu") -> Array:
    """One outer step, literally: ``y`` in block layout ``(..., nb,nb,nb, S,S,S)``, ``p`` in block
    layout. Every block gets its ``(S+2)^3`` window (:func:`windows`); the ``inner`` updates run on
    all windows at once (a broadcast over the block axes) while the halo stays frozen.

    The readable reference of the blocked semantics (plain autodiff); :func:`step` computes the
    same function faster.
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


# The fast outer step works in *cells-major* layout ``(G, G, G, B)``: the batch is the minor axis,
# so each of the 27 shifted slices is a contiguous run of B values and XLA vectorises over the
# batch (on CPU this is several times faster than ``(B, G, G, G)`` for the stencil).


def _pad3(x: Array, p: int = 1) -> Array:
    """Zero-pad the three grid axes of a cells-major array ``(G, G, G, B)``."""
    return jnp.pad(x, [(p, p)] * 3 + [(0, 0)] * (x.ndim - 3))


def _stencil_cm(xp: Array, w: Array, n: int) -> Array:
    """``sum_i w[i] * xp[shift_i]``: ``xp (n+2, n+2, n+2, B)``, ``w (27, n, n, n)`` -> ``(n, n, n, B)``."""
    z = 0.0
    for i, (a, b, c) in enumerate(OFFSETS):
        z = z + w[i][..., None] * xp[a : a + n, b : b + n, c : c + n]
    return z


def _split_weights(w: Array, mask: np.ndarray | None) -> tuple[Array, Array | None]:
    """``(M * W, (1 - M) * W)``: weights on sources inside the block and on the frozen halo."""
    if mask is None:
        return w, None
    m = jnp.asarray(mask, w.dtype)
    return w * m, w * (1 - m)


def _halo_preact(hp: Array, p: CellParams, w_out: Array | None, n: int) -> Array:
    """``b + sum_delta (1 - M_delta) W_delta shift_delta H``: the part of ``z`` that reads the
    frozen halo, the same for every inner update of an outer step (computed once)."""
    z = p.b[..., None]
    return z if w_out is None else z + _stencil_cm(hp, w_out, n)


def transpose_weights(w: Array) -> Array:
    r"""Weights of the adjoint stencil: ``WT[i, v] = W[26 - i, v + delta_i]`` (0 off the grid).

    With them the transpose of :func:`stencil` is again a stencil,
    ``xbar_v = sum_i WT[i, v] gpad[v + offset_i]``: cell ``v`` collects ``W[delta, u] g_u`` from every
    ``u = v - delta`` that read it. ``w: (27, G, G, G)``; returns the same shape.
    """
    n = w.shape[-1]
    wp = jnp.pad(w, [(0, 0)] + [(1, 1)] * 3)
    return jnp.stack([wp[26 - i, a : a + n, b : b + n, c : c + n] for i, (a, b, c) in enumerate(OFFSETS)])


def _batch_chunk(batch: int) -> int:
    # 8 balances run time against compile time of the unrolled sum (16: ~2x the compile time)
    return next(c for c in (8, 4, 2, 1) if batch % c == 0)


def _weight_grad_cm(g: Array, xp: Array, acc: Array) -> Array:
    r"""``acc + Wbar`` with ``Wbar[delta, u] = sum_b g[u, b] * xp[u + delta, b]``, ``(27, G, G, G)``.

    XLA's CPU reductions over a batch axis are slow, so the batch sum is written as an unrolled
    sum over chunks of up to 8 examples (one fused elementwise loop per chunk) inside a scan
    over chunks, in batch-major layout.
    """
    n, bsz = g.shape[0], g.shape[-1]
    cb = _batch_chunk(bsz)

    def chunks(x):  # (..., B) -> (B / cb, cb, ...)
        x = jnp.moveaxis(x, -1, 0)
        return x.reshape(bsz // cb, cb, *x.shape[1:])

    def body(acc, inp):
        gc, xc = inp
        rows = [sum(gc[j] * xc[j, a : a + n, b : b + n, c : c + n] for j in range(cb))
                for (a, b, c) in OFFSETS]  # fmt: skip
        return acc + jnp.stack(rows), None

    inputs = (chunks(g), chunks(xp))
    if bsz == cb:  # one chunk: no scan (its carry copies would dominate at small batch)
        return body(acc, jax.tree.map(lambda a: a[0], inputs))[0]
    return jax.lax.scan(body, acc, inputs)[0]


def _masks_or_none(grid: int, block: int, inner: int) -> np.ndarray | None:
    """The block masks, or None when blocking changes nothing (``inner == 1`` or one block)."""
    if inner == 1 or block == grid:
        return None
    return same_block_masks(grid, block)


def _step_cm_plain(h: Array, p: CellParams, block: int, inner: int, act: str) -> Array:
    """Forward of :func:`step_cm` (plain JAX, also differentiable by autodiff)."""
    n = h.shape[0]
    w_in, w_out = _split_weights(p.w, _masks_or_none(n, block, inner))
    phi = activation(act)
    hp = _pad3(h)
    z_halo = _halo_preact(hp, p, w_out, n)

    def one(x, _):
        xp = hp if inner == 1 else _pad3(x)
        return x + p.r[..., None] * phi(z_halo + _stencil_cm(xp, w_in, n)), None

    return jax.lax.scan(one, h, None, length=inner)[0]


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def step_cm(h: Array, p: CellParams, block: int, inner: int = 1, act: str = "silu") -> Array:
    r"""One outer step in cells-major layout ``h: (G, G, G, B)``, ``p`` natural; hand-written VJP.

    Blocked semantics through masks (:func:`same_block_masks`): inside an outer step the source of
    cell ``u`` at offset ``delta`` is ``X_current(u + delta)`` if that cell is in ``u``'s block and
    the frozen ``H(u + delta)`` otherwise. Equal to :func:`block_step_windows` (tested), with no
    window copies. The VJP stores only ``h`` and recomputes the ``inner`` updates.
    """
    return _step_cm_plain(h, p, block, inner, act)


def _step_cm_fwd(h, p, block, inner, act):
    return _step_cm_plain(h, p, block, inner, act), (h, p)


def _step_cm_bwd(block, inner, act, res, xbar):
    r"""VJP of one outer step (derivation in the gridnet chapter).

    With ``X^0 = H``, ``z^t = b + sum_delta W_delta s^t_delta``, ``X^t = X^{t-1} + r phi(z^t)``,
    where the source ``s^t_delta`` is ``shift_delta X^{t-1}`` inside the block (mask ``M_delta``)
    and ``shift_delta H`` across a block boundary, for ``t = I, ..., 1``:

        rbar += sum_b Xbar^t phi(z^t)            g^t = Xbar^t r phi'(z^t)
        bbar += sum_b g^t                        Wbar_delta += sum_b g^t s^t_delta
        Xbar^{t-1} = Xbar^t + stencil^T(M W, g^t)
        Hbar       = Xbar^0 + stencil^T((1 - M) W, sum_t g^t)

    and ``stencil^T(A, g) = stencil(pad(g), transpose_weights(A))`` (:func:`transpose_weights`).
    """
    h, p = res
    n = h.shape[0]
    mask = _masks_or_none(n, block, inner)
    w_in, w_out = _split_weights(p.w, mask)
    phi, dphi = activation(act), activation_grad(act)
    hp = _pad3(h)
    z_halo = _halo_preact(hp, p, w_out, n)
    wt_in = transpose_weights(w_in)

    def preact(x):
        return z_halo + _stencil_cm(hp if inner == 1 else _pad3(x), w_in, n)

    def fwd(x, _):
        return x + p.r[..., None] * phi(preact(x)), x

    if inner == 1:
        xs = h[None]
    else:  # xs[t] = X^t, t = 0..I-1 (the last update's output is not needed)
        last, xs = jax.lax.scan(fwd, h, None, length=inner - 1)
        xs = jnp.concatenate([xs, last[None]])

    def bwd(carry, x_prev):
        xbar, gsum, wbar, bbar, rbar = carry
        z = preact(x_prev)
        rbar = rbar + jnp.sum(xbar * phi(z), axis=-1)
        g = xbar * p.r[..., None] * dphi(z)
        bbar = bbar + jnp.sum(g, axis=-1)
        wbar = _weight_grad_cm(g, hp if inner == 1 else _pad3(x_prev), wbar)  # masked below
        xbar = xbar + _stencil_cm(_pad3(g), wt_in, n)
        return (xbar, gsum + g, wbar, bbar, rbar), None

    zeros = jax.tree.map(jnp.zeros_like, p)
    init = (xbar, jnp.zeros_like(h), zeros.w, zeros.b, zeros.r)
    (hbar, gsum, wbar, bbar, rbar), _ = jax.lax.scan(bwd, init, xs, reverse=True)
    if mask is not None:  # the frozen sources across block boundaries
        m = jnp.asarray(mask, wbar.dtype)
        wbar = m * wbar + (1 - m) * _weight_grad_cm(gsum, hp, zeros.w)
        hbar = hbar + _stencil_cm(_pad3(gsum), transpose_weights(w_out), n)
    return hbar, CellParams(wbar, bbar, rbar)


step_cm.defvjp(_step_cm_fwd, _step_cm_bwd)


def step(h: Array, p: CellParams, block: int, inner: int = 1, act: str = "silu",
         custom_vjp: bool = True) -> Array:
    """One outer step (blocked update, frozen halo) in natural layout ``h: (B, G, G, G)``.

    ``custom_vjp=False`` differentiates the same forward with plain autodiff (for tests).
    """
    g = h.shape[-1]
    if h.ndim != 4 or h.shape[1:] != (g, g, g):
        raise ValueError(f"expected a batch of cubic grids (B, G, G, G), got shape {h.shape}")
    check_blocking(g, block)
    _check_activation(act)
    f = step_cm if custom_vjp else _step_cm_plain
    return jnp.moveaxis(f(jnp.moveaxis(h, 0, -1), p, block, inner, act), -1, 0)


def blocked_step(h: Array, p: CellParams, block: int, inner: int = 1, act: str = "silu") -> Array:
    """:func:`block_step_windows` in natural layout ``(..., G, G, G)`` (converts to block layout)."""
    check_blocking(h.shape[-1], block)
    return from_blocks(block_step_windows(to_blocks(h, block), cells_to_blocks(p, block), inner, act))


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


def iterate(h: Array, p: CellParams, block: int, inner: int, outer: int, act: str = "silu") -> Array:
    """``outer`` outer steps of ``inner`` blocked updates each, no normalisation; ``h: (B, G, G, G)``.

    With ``block = G`` or ``inner = 1`` this equals ``sync_step(h, p, inner * outer)``.
    """
    check_blocking(h.shape[-1], block)
    y = jax.lax.scan(lambda y, _: (step_cm(y, p, block, inner, act), None),
                     jnp.moveaxis(h, 0, -1), None, length=outer)[0]
    return jnp.moveaxis(y, -1, 0)


# --------------------------------------------------------------------------------------------
# the network: learned initial grid, image face, outer loop with global LayerNorm, readout
# --------------------------------------------------------------------------------------------


class Config(NamedTuple):
    """Static hyper-parameters of a gridnet (hashable: safe as a jit static argument).

    grid ``G`` (cube side), block ``S`` (divides ``G``), inner ``I``, outer ``O``, activation
    ``phi``; ``global_norm`` switches the LayerNorm after every outer step; ``n_out`` readout size;
    ``remat`` checkpoints every outer step (half the memory, one more forward pass).
    """

    grid: int = 32
    block: int = 8
    inner: int = 1
    outer: int = 64
    activation: str = "silu"
    global_norm: bool = True
    n_out: int = 10
    init_scale: float = 1.0
    residual_scale: float = 1.0
    remat: bool = False

    def validate(self) -> Config:
        check_blocking(self.grid, self.block)
        _check_activation(self.activation)
        for field in ("inner", "outer", "n_out"):
            v = getattr(self, field)
            if not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{field} must be a positive integer, got {v!r}")
        return self


#: The seed's MNIST script: 32^3 grid, S = 8, I = 1, O = 64, SiLU (AdamW 1e-3/1e-3, batch 256).
SEED = Config(grid=32, block=8, inner=1, outer=64, activation="silu")
#: A CPU-sized preset: 16^3 grid (image 2x2-pooled to 14x14), blocks of 4^3 with 2 inner steps,
#: so the stale halo is exercised; 10 outer steps carry the input across the 16 layers.
CPU = Config(grid=16, block=4, inner=2, outer=10, activation="silu")
PRESETS = {"seed": SEED, "cpu": CPU}


class Params(NamedTuple):
    """All trainable parameters (natural layout).

    cells: :class:`CellParams`; embed ``E``: ``(G, G, G)`` learned initial grid;
    ln_g, ln_b: ``(G, G, G)`` per-cell gain/bias of the global LayerNorm;
    ro_g, ro_b: ``(G^2,)`` readout LayerNorm; ro_w: ``(G^2, n_out)``, ro_c: ``(n_out,)`` linear.
    """

    cells: CellParams
    embed: Array
    ln_g: Array
    ln_b: Array
    ro_g: Array
    ro_b: Array
    ro_w: Array
    ro_c: Array


def init(key: Array, cfg: Config, dtype=jnp.float32) -> Params:
    """Seed initialisation (``E ~ N(0,1)``, LN gains 1, linear layer ``U(+-1/sqrt(fan_in))``)."""
    cfg.validate()
    g = cfg.grid
    kc, ke, kw, kb = jax.random.split(key, 4)
    bound = 1 / math.sqrt(g * g)
    return Params(
        cells=init_cells(kc, g, cfg.init_scale, cfg.residual_scale, dtype),
        embed=jax.random.normal(ke, (g, g, g), dtype),
        ln_g=jnp.ones((g, g, g), dtype),
        ln_b=jnp.zeros((g, g, g), dtype),
        ro_g=jnp.ones((g * g,), dtype),
        ro_b=jnp.zeros((g * g,), dtype),
        ro_w=jax.random.uniform(kw, (g * g, cfg.n_out), dtype, -bound, bound),
        ro_c=jax.random.uniform(kb, (cfg.n_out,), dtype, -bound, bound),
    )


def image_layout(grid: int, side: int = 28) -> tuple[int, int]:
    """``(pool, offset)``: the image is average-pooled by the smallest divisor ``pool`` of ``side``
    that makes it fit, and centred at ``offset`` (32^3 grid: no pooling, rows/cols 2..29)."""
    pool = next(p for p in range(1, side + 1) if side % p == 0 and side // p <= grid)
    return pool, (grid - side // pool) // 2


def initial_grid(params: Params, x: Array, cfg: Config) -> Array:
    """``(B, 784)`` images in [0, 1] -> ``(B, G, G, G)``: learned grid ``E`` with the normalised
    image ``(x - 0.1307) / 0.3081`` written into the input face ``k = 0``."""
    g = cfg.grid
    pool, off = image_layout(g)
    img = (x.reshape(-1, 28, 28) - MNIST_MEAN) / MNIST_STD
    s = 28 // pool
    img = img.reshape(-1, s, pool, s, pool).mean(axis=(2, 4))
    h = jnp.broadcast_to(params.embed, (img.shape[0], g, g, g))
    return h.at[:, off : off + s, off : off + s, 0].set(img.astype(h.dtype))


def layer_norm(x: Array, gain: Array, bias: Array, axes: tuple[int, ...]) -> Array:
    """``(x - mean) / sqrt(var + 1e-5) * gain + bias`` over ``axes`` (biased variance)."""
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=axes, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + LN_EPS) * gain + bias


def readout(params: Params, face: Array) -> Array:
    """Output face ``(B, G, G)`` -> logits ``(B, n_out)``: flatten (row-major), LayerNorm, linear."""
    h = face.reshape(face.shape[0], -1)
    return layer_norm(h, params.ro_g, params.ro_b, (-1,)) @ params.ro_w + params.ro_c


def run_grid(params: Params, h: Array, cfg: Config, trajectory: bool = False):
    """The ``O`` outer steps (each followed by the global LayerNorm if ``cfg.global_norm``).

    ``h``: ``(B, G, G, G)``. Returns the final grid, and with ``trajectory=True`` also the grids
    after every outer step ``(O, B, G, G, G)``. Inside, the grid is cells-major ``(G, G, G, B)``
    (see :func:`step_cm`). The backward pass stores two grids per outer step, or one with
    ``cfg.remat`` (each outer step ``jax.checkpoint``-ed and recomputed).
    """
    lg, lb = params.ln_g[..., None], params.ln_b[..., None]

    def outer(x, _):
        x = step_cm(x, params.cells, cfg.block, cfg.inner, cfg.activation)
        if cfg.global_norm:
            x = layer_norm(x, lg, lb, (0, 1, 2))
        return x, (x if trajectory else None)

    body = jax.checkpoint(outer, prevent_cse=False) if cfg.remat else outer
    x, xs = jax.lax.scan(body, jnp.moveaxis(h, 0, -1), None, length=cfg.outer)
    if trajectory:
        return jnp.moveaxis(x, -1, 0), jnp.moveaxis(xs, -1, 1)
    return jnp.moveaxis(x, -1, 0)


def forward(params: Params, x: Array, cfg: Config) -> Array:
    """Images ``(B, 784)`` -> logits ``(B, n_out)``."""
    h = run_grid(params, initial_grid(params, x, cfg), cfg)
    return readout(params, h[..., -1])


def trajectory(params: Params, x: Array, cfg: Config) -> Array:
    """Grids ``(O + 1, B, G, G, G)``: the initial grid and the grid after every outer step."""
    h0 = initial_grid(params, x, cfg)
    _, hs = run_grid(params, h0, cfg, trajectory=True)
    return jnp.concatenate([h0[None], hs])


def influence(params: Params, x: Array, x_ref: Array, cfg: Config) -> Array:
    """``|H(x) - H(x_ref)|`` after every outer step, ``(O + 1, B, G, G, G)``, with the global
    LayerNorm of *both* runs using the statistics (mean, variance) of the ``x`` run.

    The global LayerNorm couples every cell to every other, so a plain difference of two runs is
    nonzero everywhere after one outer step. Freezing the statistics removes that coupling and
    leaves the local spread of the input's effect: zero outside the light cone of the input face.
    """
    h0, r0 = initial_grid(params, x, cfg), initial_grid(params, x_ref, cfg)
    lg, lb = params.ln_g[..., None], params.ln_b[..., None]

    def outer(carry, _):
        a, b = (step_cm(c, params.cells, cfg.block, cfg.inner, cfg.activation) for c in carry)
        if cfg.global_norm:
            mu = jnp.mean(a, axis=(0, 1, 2), keepdims=True)
            inv = jax.lax.rsqrt(jnp.mean(jnp.square(a - mu), axis=(0, 1, 2), keepdims=True) + LN_EPS)
            a, b = ((c - mu) * inv * lg + lb for c in (a, b))
        return (a, b), jnp.abs(a - b)

    start = (jnp.moveaxis(h0, 0, -1), jnp.moveaxis(r0, 0, -1))
    _, ds = jax.lax.scan(outer, start, None, length=cfg.outer)
    return jnp.concatenate([jnp.abs(h0 - r0)[None], jnp.moveaxis(ds, -1, 1)])


def loss_fn(params: Params, x: Array, y: Array, cfg: Config) -> tuple[Array, Array]:
    """Mean cross-entropy and accuracy of a batch."""
    logits = forward(params, x, cfg)
    logp = jax.nn.log_softmax(logits)
    ce = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
    return ce, jnp.mean(jnp.argmax(logits, -1) == y)


def depth_grad_norms(params: Params, x: Array, y: Array, cfg: Config) -> dict[str, Array]:
    """L2 norm of the loss gradient of ``W``, ``b`` and ``r`` in every depth slice ``k``.

    Returns ``{"w": (G,), "b": (G,), "r": (G,)}`` indexed by ``k`` (0 = input face, G-1 = output
    face): the seed's diagnostic of how the gradient decays with distance from the readout.
    """
    grads = jax.grad(lambda p: loss_fn(p, x, y, cfg)[0])(params).cells

    def per_k(a):
        return jnp.sqrt(jnp.sum(jnp.square(a), axis=tuple(range(a.ndim - 1))))

    return {"w": per_k(grads.w), "b": per_k(grads.b), "r": per_k(grads.r)}


def forward_naive(params: Params, x: Array, cfg: Config) -> Array:
    """:func:`forward` built on :func:`naive_step` (27-neighbour gather, no blocking, no
    checkpointing): the baseline of the benchmark; equal to :func:`forward` up to rounding."""
    h = initial_grid(params, x, cfg)

    def outer(h, _):
        h = naive_step(h, params.cells, cfg.block, cfg.inner, cfg.activation)
        if cfg.global_norm:
            h = layer_norm(h, params.ln_g, params.ln_b, (1, 2, 3))
        return h, None

    h = jax.lax.scan(outer, h, None, length=cfg.outer)[0]
    return readout(params, h[..., -1])


# --------------------------------------------------------------------------------------------
# training: the Task for gridlib.experiment.fit, and the command-line experiment
# --------------------------------------------------------------------------------------------


def make_task(cfg: Config, lr: float = 1e-3, weight_decay: float = 1e-3):
    """A :class:`gridlib.experiment.Task` (the shared backprop task of :mod:`gridlib.baselines`):
    AdamW, the seed's optimiser with decay on every parameter, on the mean cross-entropy; state
    ``(params, opt_state)``; eval returns summed loss and hits."""
    from gridlib.baselines import supervised_task

    cfg.validate()
    opt = optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay)
    return supervised_task(lambda key: init(key, cfg), lambda p, x: forward(p, x, cfg), opt)


def train(cfg: Config, splits, *, epochs: int, batch_size: int = 256, lr: float = 1e-3,
          weight_decay: float = 1e-3, seed: int = 0, run_dir=None, progress: bool = True,
          name: str = "gridnet", eval_on=("test",)):
    """Train a gridnet on ``splits`` with :func:`gridlib.experiment.fit`; returns the ``Run``."""
    from gridlib.experiment import fit

    config = {**cfg._asdict(), "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "optimizer": "adamw"}
    return fit(make_task(cfg, lr, weight_decay), splits, epochs=epochs, batch_size=batch_size,
               seed=seed, run_dir=run_dir, name=name, eval_on=eval_on, progress=progress,
               config=config, eval_batch_size=500)


#: epochs per preset at full scale. The seed trains 2000 steps of 256 (8.5 epochs): 9 epochs here.
FULL_EPOCHS = {"seed": 9, "cpu": 2}


@experiment("gridnet-mnist")
def gridnet_mnist(preset: str = "cpu", epochs: int = 0, batch_size: int = 256, lr: float = 1e-3,
                  weight_decay: float = 1e-3, seed: int = 0, activation: str = "",
                  progress: bool = True) -> dict:
    """Train gridnet on MNIST (60k train, full 10k test) and save results/gridnet/<preset>_seed<s>.

    Presets: ``seed`` (32^3, S=8, I=1, O=64: the seed's MNIST script) and ``cpu`` (16^3, S=4,
    I=2, O=10). ``epochs=0`` takes the preset's default; ``activation`` overrides the preset's.
    At GRIDLIB_SCALE=ci: 512 training and 500 test examples, one epoch.
    """
    from gridlib.data import load_mnist
    from gridlib.experiment import run_dir_for

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[preset]
    if activation:
        cfg = cfg._replace(activation=activation)
    cfg.validate()
    sizes = scale.pick(ci={"n_train": 512, "n_test": 500, "epochs": 1},
                       full={"n_train": None, "n_test": None, "epochs": FULL_EPOCHS[preset]})
    epochs = epochs or sizes["epochs"]
    splits = load_mnist(n_train=sizes["n_train"], n_test=sizes["n_test"])
    name = f"gridnet/{preset}_seed{seed}" + ("" if activation == "" else f"_{activation}")
    if scale.is_ci():
        name += "_ci"
    run = train(cfg, splits, epochs=epochs, batch_size=batch_size, lr=lr,
                weight_decay=weight_decay, seed=seed, run_dir=run_dir_for(name),
                progress=progress, name=name)
    n_batches = len(splits.x_train) // batch_size
    metrics = {"test_acc": run.history["test/acc"][-1], "test_loss": run.history["test/loss"][-1],
               "train_loss_last_epoch": run.history["train/loss"][-1],
               "steps": epochs * n_batches, "n_train": len(splits.x_train),
               "n_test": len(splits.x_test),
               "train_time_s": float(sum(run.history["epoch_time_s"]))}
    results.save(name, config={**run.config, "preset": preset}, metrics=metrics,
                 history=run.history, seed=seed)
    return metrics
