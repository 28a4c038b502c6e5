"""Naive references of the gridnet update, for the tests and the benchmark. Slow by design.

- :func:`sync_step`: the synchronous grid without blocks (every cell reads its neighbours'
  current values); equal to the blocked step when ``I = 1`` or ``S = G``.
- :func:`naive_step`: the blocked outer step as an explicit gather of 27 neighbours per cell
  (:func:`neighbour_table`), unrolled over the inner updates, no block decomposition.
- :func:`forward_naive`: the whole network built on :func:`naive_step`, the benchmark's baseline.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gridlib.gridnet.blocking import check_blocking
from gridlib.gridnet.cell import OFFSETS, CellParams, activation, stencil
from gridlib.gridnet.model import Config, Params, initial_grid, layer_norm, readout

Array = jax.Array


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
    """The same outer step as :func:`~gridlib.gridnet.blocking.blocked_step`, written naively: an explicit gather of 27
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


def forward_naive(params: Params, x: Array, cfg: Config) -> Array:
    """:func:`~gridlib.gridnet.model.forward` built on :func:`naive_step` (27-neighbour gather, no blocking, no
    checkpointing): the baseline of the benchmark; equal to :func:`~gridlib.gridnet.model.forward` up to rounding."""
    h = initial_grid(params, x, cfg)

    def outer(h, _):
        h = naive_step(h, params.cells, cfg.block, cfg.inner, cfg.activation)
        if cfg.global_norm:
            h = layer_norm(h, params.ln_g, params.ln_b, (1, 2, 3))
        return h, None

    h = jax.lax.scan(outer, h, None, length=cfg.outer)[0]
    return readout(params, h[..., -1])

