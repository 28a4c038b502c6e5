"""NeuralGrid model: the fast grid layer, the 2-D and 3-D networks, parameters and forward.

The 2-D network (Fischer 2021) maps an input linearly onto the first column of a grid of height
``H``, pushes it through ``W`` grid layers from left to right, and reads the last column out with
a second linear layer. Inside the grid every neuron ``j`` owns one weight ``w_j``; the product
``w_j x_j`` feeds the three neurons ``j-1, j, j+1`` of the next column:

    z_i = sum_{j in {i-1, i, i+1}, 0 <= j < H} w_j x_j + b_i,        a_i = sin(z_i).

The production form is shift-and-add (:func:`preact_fast`): ``u = w * x``, then
``z = u + shift_up(u) + shift_down(u) + b``, a fixed all-ones 3-tap convolution of ``w * x``,
with no unfold and no ``H x H`` matrix. The equivalent explicit, sparse-matrix and unfold forms
are in :mod:`gridlib.neuralgrid.layers`; :data:`PREACT_FORMS` names all four.

The 3-D variant treats an ``h x w`` image as the first grid slice; each slice has one weight and
one bias per pixel and a 3 x 3 neighbourhood, ``z_p = sum_{q in N(p)} w_q x_q + b_p``, again a
fixed 3 x 3 box sum of ``w * x``.

Speed: on a CPU, XLA evaluates ``jnp.sin`` and ``jnp.cos`` with scalar library calls (about 8 ns
per element), which dominates a grid layer. :func:`sincos` computes both with one shared range
reduction and short polynomials that XLA vectorises; :func:`fast_sin` and :func:`fast_cos` each
reduce modulo ``pi`` and evaluate one polynomial, about half the work (error below 2e-7 for
``|z| <= 1e5``). The layer's custom VJP stores ``cos z`` from the forward pass, so the backward
pass needs no transcendental at all. In float64 the library functions are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gridlib.neuralgrid.layers import preact_explicit, preact_sparse, preact_unfold

Array = jax.Array

# ----------------------------------------------------------------------------------------------
# sine and cosine, vectorised


# pi/2 split into three float32 parts with trailing zero bits (Cody-Waite), so q * PIO2_1 and
# q * PIO2_2 are exact for the integers q that occur and the reduction loses no precision.
_PIO2_1 = np.float32(1.5703125)
_PIO2_2 = np.float32(4.837512969970703125e-4)
_PIO2_3 = np.float32(7.54978995489188216e-8)
_TWO_OVER_PI = np.float32(2.0 / math.pi)
# minimax polynomials for sin and cos on [-pi/4, pi/4] (the Cephes single-precision ones)
_S1, _S2, _S3 = np.float32(-1.6666654611e-1), np.float32(8.3321608736e-3), np.float32(-1.9515295891e-4)
_C1, _C2, _C3 = (np.float32(4.166664568298827e-2), np.float32(-1.388731625493765e-3),
                 np.float32(2.443315711809948e-5))  # fmt: skip


def sincos(z: Array) -> tuple[Array, Array]:
    """``(sin z, cos z)`` elementwise, any shape.

    float32: ``z = q pi/2 + r`` with ``|r| <= pi/4``; degree-7 sine and degree-8 cosine
    polynomials in ``r``; the quadrant ``q mod 4`` picks and signs them. Absolute error below
    2e-7 for ``|z| <= 1e5`` (tested against float64 numpy). Other dtypes: ``jnp.sin``/``jnp.cos``.
    """
    if z.dtype != jnp.float32:
        return jnp.sin(z), jnp.cos(z)
    q = jnp.round(z * _TWO_OVER_PI)
    r = ((z - q * _PIO2_1) - q * _PIO2_2) - q * _PIO2_3
    r2 = r * r
    s = r + r * r2 * (_S1 + r2 * (_S2 + r2 * _S3))
    c = 1.0 - 0.5 * r2 + r2 * r2 * (_C1 + r2 * (_C2 + r2 * _C3))
    n = q.astype(jnp.int32) & 3  # quadrant; two's complement makes this q mod 4 for q < 0 too
    sin = jnp.where(n == 0, s, jnp.where(n == 1, c, jnp.where(n == 2, -s, -c)))
    cos = jnp.where(n == 0, c, jnp.where(n == 1, -s, jnp.where(n == 2, -c, s)))
    return sin, cos


# pi in three float32 parts (twice the pi/2 parts above, so the products are exact again), and
# the odd polynomial of sin on [-pi/2, pi/2]: degree 9, fitted here to an absolute error of 5e-9
# in exact arithmetic (below float32 rounding). One polynomial instead of two, and no quadrant
# select: about half the work of sincos per function.
_INV_PI = np.float32(1.0 / math.pi)
_PI_1, _PI_2, _PI_3 = 2 * _PIO2_1, 2 * _PIO2_2, 2 * _PIO2_3
_SIN9 = (np.float32(-1.6666656732559204e-1), np.float32(8.333017118275166e-3),
         np.float32(-1.980658998945728e-4), np.float32(2.6000070647569373e-6))  # fmt: skip
# 1.5 * 2^23: for an integer-valued float32 q with |q| < 2^22, q + _MAGIC is exact and its last
# mantissa bit is the parity of q (cheaper than a float-to-int conversion, which XLA clamps)
_MAGIC = np.float32(12582912.0)


def _odd_sin(r: Array, q: Array) -> Array:
    """``(-1)^q sin r`` for ``|r| <= pi/2`` and an integer-valued float32 ``q``.

    ``sin`` is odd, so the sign goes onto ``r``: the parity bit of ``q`` is shifted into the sign
    bit and xor-ed in (integer operations, which vectorise, instead of a select).
    """
    flip = jnp.left_shift(jax.lax.bitcast_convert_type(q + _MAGIC, jnp.int32), 31)
    r = jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(r, jnp.int32) ^ flip, r.dtype)
    s = r * r
    return r + r * s * (_SIN9[0] + s * (_SIN9[1] + s * (_SIN9[2] + s * _SIN9[3])))


def fast_sin(z: Array) -> Array:
    """``sin z`` elementwise; float32 with one vectorised polynomial, other dtypes ``jnp.sin``.

    float32: ``z = q pi + r`` with integer ``q`` and ``|r| <= pi/2`` (Cody-Waite, three parts of
    ``pi``), then ``sin z = (-1)^q sin r`` with a degree-9 odd polynomial. Absolute error below
    2e-7 for ``|z| <= 1e5`` (tested against float64 numpy).

    Args:
        z: any shape.

    Returns:
        ``sin z``, the shape and dtype of ``z``.
    """
    if z.dtype != jnp.float32:
        return jnp.sin(z)
    q = jnp.round(z * _INV_PI)
    return _odd_sin(((z - q * _PI_1) - q * _PI_2) - q * _PI_3, q)


def fast_cos(z: Array) -> Array:
    """``cos z`` elementwise; float32 with one vectorised polynomial, other dtypes ``jnp.cos``.

    float32: ``z = (q + 1/2) pi - r`` with integer ``q`` and ``|r| <= pi/2``, then
    ``cos z = (-1)^q sin r``, with the polynomial of :func:`fast_sin`. Absolute error below
    2e-7 for ``|z| <= 1e5``.

    Args:
        z: any shape.

    Returns:
        ``cos z``, the shape and dtype of ``z``.
    """
    if z.dtype != jnp.float32:
        return jnp.cos(z)
    q = jnp.round(z * _INV_PI - 0.5)
    m = q + 0.5  # a half-integer; m * _PI_1 and m * _PI_2 stay exact for |z| <= 1e5
    return _odd_sin(((m * _PI_1 - z) + m * _PI_2) + m * _PI_3, q)


# ----------------------------------------------------------------------------------------------
# the grid layer, fast (shift-and-add) form


def neighbour_sum(u: Array, axis: int = -1) -> Array:
    """``v_i = u_{i-1} + u_i + u_{i+1}`` along ``axis``, zeros beyond the ends (shift-and-add)."""
    axis = axis % u.ndim
    n = u.shape[axis]
    if n == 1:
        return u
    zero = jnp.zeros_like(jax.lax.slice_in_dim(u, 0, 1, axis=axis))
    up = jnp.concatenate([jax.lax.slice_in_dim(u, 1, n, axis=axis), zero], axis=axis)  # u_{i+1}
    down = jnp.concatenate([zero, jax.lax.slice_in_dim(u, 0, n - 1, axis=axis)], axis=axis)
    return u + up + down


def box_sum(u: Array) -> Array:
    """3 x 3 neighbourhood sum over the last two axes, zero-padded: two shift-and-adds."""
    return neighbour_sum(neighbour_sum(u, -1), -2)


def preact_fast(x: Array, w: Array, b: Array) -> Array:
    """Grid pre-activation, shift-and-add form. ``x: (..., H)``, ``w, b: (H,)`` -> ``(..., H)``."""
    return neighbour_sum(w * x) + b


def preact3d_fast(x: Array, w: Array, b: Array) -> Array:
    """3-D slice pre-activation ``z = box_sum(w * x) + b``; ``x: (..., h, w)``, ``w, b: (h, w)``."""
    return box_sum(w * x) + b


#: The four equivalent 2-D pre-activations ``(x: (..., H), w: (H,), b: (H,)) -> (..., H)`` by
#: name; ``"fast"`` is the production form, the others are in :mod:`gridlib.neuralgrid.layers`.
PREACT_FORMS: dict[str, Callable[[Array, Array, Array], Array]] = {
    "fast": preact_fast,
    "explicit": preact_explicit,
    "sparse": preact_sparse,
    "unfold": preact_unfold,
}


def _sine_layer(preact: Callable, local_sum: Callable, n_spatial: int, doc: str) -> Callable:
    """``sin(preact(x, w, b))`` with ``preact = local_sum(w * x) + b`` and a hand-written VJP.

    The chain rule of the formula (checked against autodiff in the tests): ``delta = g cos z``,
    ``s = local_sum(delta)``, then ``dx = w s``, ``dw = sum_B x s``, ``db = sum_B delta``. The
    local sum (a symmetric band or box of ones) is its own transpose. ``cos z`` is kept from the
    forward pass, so the backward pass evaluates no sine or cosine. ``n_spatial`` trailing axes
    belong to the grid; the rest are batch axes.

    The forward pass evaluates :func:`fast_sin` and :func:`fast_cos` (one polynomial each), not
    :func:`sincos`: XLA on a CPU fuses the sine and the stored cosine into two loops either way
    (it does not compute two outputs in one fused loop), and each loop of :func:`sincos`
    evaluates both polynomials and the range reduction again.
    """

    @jax.custom_vjp
    def layer_fn(x: Array, w: Array, b: Array) -> Array:
        return fast_sin(preact(x, w, b))

    def fwd(x, w, b):
        z = preact(x, w, b)
        return fast_sin(z), (x, w, fast_cos(z))

    def bwd(res, g):
        x, w, c = res
        delta = g * c
        s = local_sum(delta)
        batch_axes = tuple(range(x.ndim - n_spatial))
        return w * s, (x * s).sum(batch_axes), delta.sum(batch_axes)

    layer_fn.defvjp(fwd, bwd)
    layer_fn.__doc__ = doc
    return layer_fn


grid_layer = _sine_layer(
    preact_fast,
    neighbour_sum,
    1,
    """One grid layer, fast form: ``sin(neighbour_sum(w * x) + b)``; ``x: (B, H)``, ``w, b: (H,)``.""",
)

grid3d_layer = _sine_layer(
    preact3d_fast,
    box_sum,
    2,
    """``sin(box_sum(w * x) + b)``, ``x: (..., h, w)``, with the same hand-written VJP as ``grid_layer``.""",
)


def layer(x: Array, w: Array, b: Array, form: str = "fast") -> Array:
    """One grid layer ``sin(z)`` with the pre-activation ``z`` computed by ``form``.

    ``"fast"`` is :func:`grid_layer` (vectorised sin/cos, hand-written VJP); the other forms of
    :data:`PREACT_FORMS` use ``jnp.sin`` and autodiff, as a reference or a timing baseline.
    """
    if form == "fast":
        return grid_layer(x, w, b)
    if form not in PREACT_FORMS:
        raise ValueError(f"unknown grid form {form!r}; choose one of {sorted(PREACT_FORMS)}")
    return jnp.sin(PREACT_FORMS[form](x, w, b))


# ----------------------------------------------------------------------------------------------
# the grid and the whole 2-D network


class GridParams(NamedTuple):
    """A 2-D grid: ``weight, bias: (W, H)``; row ``l`` is grid layer (column) ``l``."""

    weight: Array
    bias: Array


class NetworkParams(NamedTuple):
    """Linear in -> grid -> linear out.

    ``w_in: (D, H)``, ``b_in: (H,)``, ``grid``, ``w_out: (H, C)``, ``b_out: (C,)``.
    """

    w_in: Array
    b_in: Array
    grid: GridParams
    w_out: Array
    b_out: Array


def check_positive(**kw: Any) -> None:
    """Raise ``ValueError`` unless every keyword value is a positive integer (bools refused)."""
    for k, v in kw.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")


def init_grid(key: Array, height: int, width: int, dtype=jnp.float32) -> GridParams:
    """Grid weights ``U(-1, 1)`` (Xavier-uniform with fan-in = fan-out = 3), biases zero."""
    check_positive(height=height, width=width)
    w = jax.random.uniform(key, (width, height), dtype, -1.0, 1.0)
    return GridParams(w, jnp.zeros((width, height), dtype))


def init_linear(key: Array, n_in: int, n_out: int, dtype=jnp.float32) -> tuple[Array, Array]:
    """PyTorch's default ``nn.Linear`` init: weight and bias ``U(-1/sqrt(n_in), 1/sqrt(n_in))``."""
    bound = 1.0 / math.sqrt(n_in)
    kw, kb = jax.random.split(key)
    return (jax.random.uniform(kw, (n_in, n_out), dtype, -bound, bound),
            jax.random.uniform(kb, (n_out,), dtype, -bound, bound))  # fmt: skip


def init_network(key: Array, n_in: int, height: int, width: int, n_classes: int,
                 dtype=jnp.float32) -> NetworkParams:  # fmt: skip
    """Parameters of the 2-D network ``n_in -> [height x width grid] -> n_classes``."""
    check_positive(n_in=n_in, height=height, width=width, n_classes=n_classes)
    k_in, k_grid, k_out = jax.random.split(key, 3)
    w_in, b_in = init_linear(k_in, n_in, height, dtype)
    w_out, b_out = init_linear(k_out, height, n_classes, dtype)
    return NetworkParams(w_in, b_in, init_grid(k_grid, height, width, dtype), w_out, b_out)


def grid_forward(grid: GridParams, x: Array, form: str = "fast", return_all: bool = False):
    """Push ``x: (B, H)`` through all ``W`` layers (a ``lax.scan`` over the columns).

    Returns the last column ``(B, H)``, or with ``return_all`` every column ``(W, B, H)``.
    """
    if x.shape[-1] != grid.weight.shape[-1]:
        raise ValueError(f"input has {x.shape[-1]} features but the grid is {grid.weight.shape[-1]} high")

    def step(h, p):
        h = layer(h, p[0], p[1], form)
        return h, (h if return_all else None)

    last, cols = jax.lax.scan(step, x, (grid.weight, grid.bias))
    return cols if return_all else last


def normalise(x: Array) -> Array:
    """``(x - 0.5) / 0.5``: the original ``Normalize((0.5,), (0.5,))`` of pixels in [0, 1]."""
    return 2.0 * x - 1.0


def network_apply(params: NetworkParams, x: Array, form: str = "fast") -> Array:
    """Logits ``(B, C)`` for flattened images ``x: (B, D)`` in [0, 1]."""
    h = normalise(x) @ params.w_in + params.b_in  # linear: no nonlinearity before the grid
    return grid_forward(params.grid, h, form) @ params.w_out + params.b_out


def grid_activations(params: NetworkParams, x: Array) -> Array:
    """Every grid neuron's activation, ``(B, H, W)``: rows = neuron index, columns = depth."""
    h = normalise(x) @ params.w_in + params.b_in
    return jnp.transpose(grid_forward(params.grid, h, return_all=True), (1, 2, 0))


_grid_activations_jit = jax.jit(grid_activations)


def class_mean_activations(params: NetworkParams, x: np.ndarray, y: np.ndarray,
                           n_classes: int = 10, per_class: int = 64) -> np.ndarray:  # fmt: skip
    """Mean activation pattern ``(n_classes, H, W)`` over the first ``per_class`` examples of each
    class in ``(x, y)`` (the original plots average 64 test images per class)."""
    y = np.asarray(y)
    groups = [np.flatnonzero(y == c)[:per_class] for c in range(n_classes)]
    for c, idx in enumerate(groups):
        if len(idx) == 0:
            raise ValueError(f"class {c} has no examples to average")
    acts = np.asarray(_grid_activations_jit(params, jnp.asarray(x[np.concatenate(groups)])))
    bounds = np.cumsum([0] + [len(g) for g in groups])
    return np.stack([acts[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


# ----------------------------------------------------------------------------------------------
# the 3-D network


class Grid3DParams(NamedTuple):
    """3-D grid on ``h x w`` images: ``weight, bias: (L, h, w)``; head ``w_out: (h*w, C)``."""

    weight: Array
    bias: Array
    w_out: Array
    b_out: Array


def init_grid3d(key: Array, image_shape: tuple[int, int], n_layers: int, n_classes: int,
                dtype=jnp.float32) -> Grid3DParams:  # fmt: skip
    """Slices ``U(-sqrt(1/3), sqrt(1/3))`` (Xavier with fan-in = fan-out = 9), zero biases,
    PyTorch-default linear head."""
    if len(image_shape) != 2:
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}")
    hh, ww = image_shape
    check_positive(image_height=hh, image_width=ww, n_layers=n_layers, n_classes=n_classes)
    kg, ko = jax.random.split(key)
    a = math.sqrt(6.0 / 18.0)
    w = jax.random.uniform(kg, (n_layers, hh, ww), dtype, -a, a)
    w_out, b_out = init_linear(ko, hh * ww, n_classes, dtype)
    return Grid3DParams(w, jnp.zeros((n_layers, hh, ww), dtype), w_out, b_out)


def grid3d_apply(params: Grid3DParams, x: Array, return_all: bool = False) -> Array:
    """Logits ``(B, C)`` for images ``x``: ``(B, h, w)`` or flattened ``(B, h*w)`` in [0, 1].

    The (normalised) image is the first slice; there is no input layer. Non-square images work.
    With ``return_all``, the activations of every slice ``(L, B, h, w)`` instead.
    """
    hh, ww = params.weight.shape[-2:]
    if x.ndim == 2:
        if x.shape[-1] != hh * ww:
            raise ValueError(f"flattened input has {x.shape[-1]} pixels but the grid slices are {hh} x {ww}")
        x = x.reshape(x.shape[0], hh, ww)
    elif x.ndim != 3 or x.shape[-2:] != (hh, ww):
        raise ValueError(f"input of shape {x.shape} does not match grid slices of {hh} x {ww}")

    def step(h, p):
        h = grid3d_layer(h, p[0], p[1])
        return h, (h if return_all else None)

    last, slices = jax.lax.scan(step, normalise(x), (params.weight, params.bias))
    if return_all:
        return slices
    return last.reshape(last.shape[0], -1) @ params.w_out + params.b_out
