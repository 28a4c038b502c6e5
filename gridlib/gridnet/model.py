"""The gridnet network: configuration, parameters, the outer loop, forward pass and diagnostics.

**The full network** (:func:`forward`): a learned initial grid ``E``; the (normalised, possibly
pooled) image written into the face ``k = 0``; ``O`` outer steps
(:func:`gridlib.gridnet.hand_vjp.step_cm`), each followed by a global LayerNorm over all ``G^3``
cells with per-cell gain and bias; a readout that takes the face ``k = G-1`` through its own
LayerNorm and a linear layer.

**Memory.** The outer loop is a ``lax.scan``; it stores the step input and the LayerNorm input,
two grids per outer step whatever ``I`` is (the outer step's hand VJP recomputes its inner
updates). ``Config(remat=True)`` wraps each outer step in ``jax.checkpoint`` to store one grid,
at the price of a second forward pass.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gridlib.gridnet.blocking import check_blocking
from gridlib.gridnet.cell import CellParams, check_activation, init_cells
from gridlib.gridnet.hand_vjp import step_cm

Array = jax.Array

#: Added to the variance in every LayerNorm (global and readout).
LN_EPS = 1e-5
#: Mean and standard deviation of the MNIST pixels in [0, 1]; the image is normalised with them.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


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
        """``self`` if every field is valid, else ValueError (checked outside jit)."""
        check_blocking(self.grid, self.block)
        check_activation(self.activation)
        for field in ("inner", "outer", "n_out"):
            v = getattr(self, field)
            if not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{field} must be a positive integer, got {v!r}")
        return self


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
    (see :func:`gridlib.gridnet.hand_vjp.step_cm`). The backward pass stores two grids per outer step, or one with
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


def iterate(h: Array, p: CellParams, block: int, inner: int, outer: int, act: str = "silu") -> Array:
    """``outer`` outer steps of ``inner`` blocked updates each, no normalisation; ``h: (B, G, G, G)``.

    With ``block = G`` or ``inner = 1`` this equals
    :func:`gridlib.gridnet.reference.sync_step` ``(h, p, inner * outer)``.
    """
    check_blocking(h.shape[-1], block)
    y = jax.lax.scan(lambda y, _: (step_cm(y, p, block, inner, act), None),
                     jnp.moveaxis(h, 0, -1), None, length=outer)[0]
    return jnp.moveaxis(y, -1, 0)


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

