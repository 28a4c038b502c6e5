r"""The fast outer step in cells-major layout and its hand-written VJP (the gradient of gridnet).

:func:`step_cm` gets the numbers of the literal blocked step
(:func:`gridlib.gridnet.blocking.block_step_windows`) without window copies: the grid stays whole,
in *cells-major* layout ``(G, G, G, B)`` (batch as the minor axis, so the 27 shifted slices
vectorise over it), and 27 static masks (:func:`gridlib.gridnet.blocking.same_block_masks`) choose
for every cell and offset between the current grid (same block) and the frozen start-of-step grid
(halo). Nothing loops over blocks or cells in Python.

**Memory.** :func:`step_cm` has a hand-derived VJP that stores only the input grid of the outer
step and recomputes the ``I`` inner updates during the backward pass, like the seed's CUDA kernel.
:func:`step` is the natural-layout entry point; ``custom_vjp=False`` differentiates the same
forward with plain autodiff instead (for tests).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gridlib.gridnet.blocking import check_blocking, same_block_masks
from gridlib.gridnet.cell import OFFSETS, CellParams, activation, activation_grad, check_activation

Array = jax.Array

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

    With them the transpose of :func:`~gridlib.gridnet.cell.stencil` is again a stencil,
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

    Blocked semantics through masks (:func:`~gridlib.gridnet.blocking.same_block_masks`): inside an outer step the source of
    cell ``u`` at offset ``delta`` is ``X_current(u + delta)`` if that cell is in ``u``'s block and
    the frozen ``H(u + delta)`` otherwise. Equal to :func:`~gridlib.gridnet.blocking.block_step_windows` (tested), with no
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
    check_activation(act)
    f = step_cm if custom_vjp else _step_cm_plain
    return jnp.moveaxis(f(jnp.moveaxis(h, 0, -1), p, block, inner, act), -1, 0)

