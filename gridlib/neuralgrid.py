"""NeuralGrid: a grid of sine neurons with one weight per *source* neuron.

The 2-D network (Fischer 2021) maps an input linearly onto the first column of a grid of height
``H``, pushes it through ``W`` grid layers from left to right, and reads the last column out with
a second linear layer. Inside the grid every neuron ``j`` owns one weight ``w_j``; the product
``w_j x_j`` feeds the three neurons ``j-1, j, j+1`` of the next column:

    z_i = sum_{j in {i-1, i, i+1}, 0 <= j < H} w_j x_j + b_i,        a_i = sin(z_i).

The same layer has three equivalent forms, all here and tested against each other:

* explicit:  the formula above, one output at a time (a reference, slow);
* sparse:    ``z = x A(w)^T + b`` with the tridiagonal ``A(w)[i, j] = w_j`` for ``|i - j| <= 1``;
* fast:      ``u = w * x``, then ``z = u + shift_up(u) + shift_down(u) + b`` (shift-and-add: a
  fixed all-ones 3-tap convolution of ``w * x``), no unfold and no ``H x H`` matrix.

An unfold-style form (gather the three-element windows of ``x`` and of ``w``, multiply, sum, as
the original PyTorch code does) is kept as the baseline the benchmark compares against.

The 3-D variant treats an ``h x w`` image as the first grid slice; each slice has one weight and
one bias per pixel and a 3 x 3 neighbourhood, ``z_p = sum_{q in N(p)} w_q x_q + b_p``, again a
fixed 3 x 3 box sum of ``w * x``.

Speed: on a CPU, XLA evaluates ``jnp.sin`` and ``jnp.cos`` with scalar library calls (about 8 ns
per element), which dominates a grid layer. :func:`sincos` computes both with one shared range
reduction and short polynomials that XLA vectorises (about 1 ns per element for the pair, error
below 2e-7 for ``|z| <= 1e5``); the layer's custom VJP stores ``cos z`` from the forward pass so
the backward pass needs no transcendental at all. In float64 the library functions are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gridlib import baselines as supervised
from gridlib.cli import experiment

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


# ----------------------------------------------------------------------------------------------
# the 2-D grid layer in four forms


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


def preact_fast(x: Array, w: Array, b: Array) -> Array:
    """Grid pre-activation, shift-and-add form. ``x: (..., H)``, ``w, b: (H,)`` -> ``(..., H)``."""
    return neighbour_sum(w * x) + b


def preact_explicit(x: Array, w: Array, b: Array) -> Array:
    """Reference: ``z_i = sum_{|j - i| <= 1} w_j x_j + b_i``, one output neuron at a time."""
    h = x.shape[-1]
    cols = []
    for i in range(h):
        z = b[i]
        for j in (i - 1, i, i + 1):
            if 0 <= j < h:
                z = z + w[j] * x[..., j]
        cols.append(z)
    return jnp.stack(cols, axis=-1)


def grid_matrix(w: Array) -> Array:
    """The sparse-matrix form's ``A(w)``: ``(H, H)``, ``A[i, j] = w_j`` if ``|i - j| <= 1``.

    Column ``j`` holds ``w_j`` three times (rows ``j-1, j, j+1``): one weight per source neuron.
    """
    h = w.shape[-1]
    i = np.arange(h)
    band = np.abs(i[:, None] - i[None, :]) <= 1
    return jnp.where(band, w[None, :], 0.0)


def preact_sparse(x: Array, w: Array, b: Array) -> Array:
    """Sparse-matrix form ``z = A(w) x + b`` for a batch of row vectors ``x: (..., H)``."""
    return x @ grid_matrix(w).T + b


def preact_unfold(x: Array, w: Array, b: Array) -> Array:
    """Unfold-style form: gather the windows ``(x_{i-1}, x_i, x_{i+1})`` and ``(w_{i-1}, ...)``.

    Zero-pad both vectors by one, build ``(..., H, 3)`` window tensors with an index gather,
    multiply and sum the last axis: the PyTorch ``unfold`` recipe, kept as the benchmark baseline.
    """
    h = x.shape[-1]
    idx = np.arange(h)[:, None] + np.arange(3)[None, :]  # (H, 3) into the padded vector
    pad = [(0, 0)] * (x.ndim - 1) + [(1, 1)]
    xw = jnp.pad(x, pad)[..., idx]
    ww = jnp.pad(w, (1, 1))[idx]
    return (ww * xw).sum(-1) + b


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
    """

    @jax.custom_vjp
    def layer_fn(x: Array, w: Array, b: Array) -> Array:
        return sincos(preact(x, w, b))[0]

    def fwd(x, w, b):
        a, c = sincos(preact(x, w, b))
        return a, (x, w, c)

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


def layer(x: Array, w: Array, b: Array, form: str = "fast") -> Array:
    """One grid layer ``sin(z)`` with the pre-activation ``z`` computed by ``form``."""
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


def _check_positive(**kw: Any) -> None:
    for k, v in kw.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")


def init_grid(key: Array, height: int, width: int, dtype=jnp.float32) -> GridParams:
    """Grid weights ``U(-1, 1)`` (Xavier-uniform with fan-in = fan-out = 3), biases zero."""
    _check_positive(height=height, width=width)
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
    _check_positive(n_in=n_in, height=height, width=width, n_classes=n_classes)
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
# the seed's double loop, as it is written (for documentation only)


def seed_loop_preact(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """What the original naive double loop computes for one column, re-derived in numpy.

    The loop stores input ``x_k`` at ``a[k + 1]`` (one zero pad on each side) but then sums
    ``a[i - 1], a[i], a[i + 1]`` for output ``i`` (and reads weights with the same offset), so it
    computes ``z_i = w_{i-2} x_{i-2} + w_{i-1} x_{i-1} + w_i x_i + b_i``: the window is shifted by
    one position (and ``a[-1]`` wraps to the bottom pad). The library does NOT use this; the tests
    show it equals the fast form followed by a one-step shift, i.e. it is a different model.
    """
    h = x.shape[-1]
    a = np.zeros(x.shape[:-1] + (h + 2,))
    a[..., 1 : h + 1] = x
    wp = np.zeros(h + 2)
    wp[1 : h + 1] = w  # w[k + 1] belongs to neuron k in the padded storage
    z = np.zeros(x.shape)
    for i in range(h):
        z[..., i] = a[..., i - 1] * wp[i - 1] + a[..., i] * wp[i] + a[..., i + 1] * wp[i + 1] + b[i]
    return z


def naive_loop_grads(params: NetworkParams, x: np.ndarray, y: int) -> tuple[float, NetworkParams]:
    """Loss and gradient for ONE example with Python loops over every grid cell (numpy float64).

    The correct formula, not the shifted seed loop: forward cell by cell, backward cell by cell.
    It reproduces the cost of the naive batch-1 implementation for the timing table, and is a
    further independent reference for the gradient in the tests.
    """
    gw, gb = np.asarray(params.grid.weight, np.float64), np.asarray(params.grid.bias, np.float64)
    width, height = gw.shape
    w_in, b_in = np.asarray(params.w_in, np.float64), np.asarray(params.b_in, np.float64)
    w_out, b_out = np.asarray(params.w_out, np.float64), np.asarray(params.b_out, np.float64)
    x_in = 2.0 * np.asarray(x, np.float64) - 1.0
    acts = [list(x_in @ w_in + b_in)]
    coss = []
    for col in range(width):  # forward, one neuron at a time
        prev, new, cs = acts[-1], [], []
        for i in range(height):
            z = gb[col, i]
            for j in (i - 1, i, i + 1):
                if 0 <= j < height:
                    z += gw[col, j] * prev[j]
            new.append(math.sin(z))
            cs.append(math.cos(z))
        acts.append(new)
        coss.append(cs)
    last = np.asarray(acts[-1])
    logits = last @ w_out + b_out
    p = np.exp(logits - logits.max())
    p /= p.sum()
    loss = -math.log(p[y])
    dlogits = p - np.eye(len(p))[y]
    d_gw, d_gb = np.zeros_like(gw), np.zeros_like(gb)
    g = list(w_out @ dlogits)
    for col in range(width - 1, -1, -1):  # backward, one neuron at a time
        prev, cs = acts[col], coss[col]
        delta = [g[i] * cs[i] for i in range(height)]
        g_prev = [0.0] * height
        for j in range(height):
            s = 0.0
            for i in (j - 1, j, j + 1):
                if 0 <= i < height:
                    s += delta[i]
            d_gw[col, j] = s * prev[j]
            d_gb[col, j] = delta[j]
            g_prev[j] = s * gw[col, j]
        g = g_prev
    g0 = np.asarray(g)
    grads = NetworkParams(np.outer(x_in, g0), g0, GridParams(d_gw, d_gb),
                          np.outer(last, dlogits), dlogits)  # fmt: skip
    return loss, grads


# ----------------------------------------------------------------------------------------------
# the 3-D variant


class Grid3DParams(NamedTuple):
    """3-D grid on ``h x w`` images: ``weight, bias: (L, h, w)``; head ``w_out: (h*w, C)``."""

    weight: Array
    bias: Array
    w_out: Array
    b_out: Array


def box_sum(u: Array) -> Array:
    """3 x 3 neighbourhood sum over the last two axes, zero-padded: two shift-and-adds."""
    return neighbour_sum(neighbour_sum(u, -1), -2)


def preact3d_fast(x: Array, w: Array, b: Array) -> Array:
    """3-D slice pre-activation ``z = box_sum(w * x) + b``; ``x: (..., h, w)``, ``w, b: (h, w)``."""
    return box_sum(w * x) + b


def preact3d_explicit(x: Array, w: Array, b: Array) -> Array:
    """Reference: ``z_p = sum_{q in 3x3 nbhd(p)} w_q x_q + b_p``, one pixel at a time."""
    hh, ww = x.shape[-2:]
    rows = []
    for r in range(hh):
        row = []
        for c in range(ww):
            z = b[r, c]
            for rr in (r - 1, r, r + 1):
                for cc in (c - 1, c, c + 1):
                    if 0 <= rr < hh and 0 <= cc < ww:
                        z = z + w[rr, cc] * x[..., rr, cc]
            row.append(z)
        rows.append(jnp.stack(row, -1))
    return jnp.stack(rows, -2)


def grid3d_matrix(w: Array) -> Array:
    """Sparse-matrix form of a 3-D slice: ``(h*w, h*w)``, ``A[p, q] = w_q`` for neighbours."""
    hh, ww = w.shape
    r, c = np.divmod(np.arange(hh * ww), ww)
    near = (np.abs(r[:, None] - r[None, :]) <= 1) & (np.abs(c[:, None] - c[None, :]) <= 1)
    return jnp.where(near, w.reshape(-1)[None, :], 0.0)


def preact3d_sparse(x: Array, w: Array, b: Array) -> Array:
    """``z = A(w) vec(x) + b`` for ``x: (..., h, w)``."""
    flat = x.reshape(x.shape[:-2] + (-1,)) @ grid3d_matrix(w).T
    return flat.reshape(x.shape) + b


grid3d_layer = _sine_layer(
    preact3d_fast,
    box_sum,
    2,
    """``sin(box_sum(w * x) + b)``, ``x: (..., h, w)``, with the same hand-written VJP as ``grid_layer``.""",
)


def init_grid3d(key: Array, image_shape: tuple[int, int], n_layers: int, n_classes: int,
                dtype=jnp.float32) -> Grid3DParams:  # fmt: skip
    """Slices ``U(-sqrt(1/3), sqrt(1/3))`` (Xavier with fan-in = fan-out = 9), zero biases,
    PyTorch-default linear head."""
    if len(image_shape) != 2:
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}")
    hh, ww = image_shape
    _check_positive(image_height=hh, image_width=ww, n_layers=n_layers, n_classes=n_classes)
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
            raise ValueError(
                f"flattened input has {x.shape[-1]} pixels but the grid slices are {hh} x {ww}"
            )
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


# ----------------------------------------------------------------------------------------------
# training: configuration, presets, tasks


class Config(NamedTuple):
    """A 2-D NeuralGrid training run (Adam, cross-entropy, step learning-rate schedule).

    ``height x width`` grid; Adam with ``lr``; the learning rate is multiplied by ``lr_decay``
    every ``lr_step_epochs`` epochs; ``epochs`` passes at ``batch_size`` (last partial batch
    dropped, as the original loader does).
    """

    height: int = 64
    width: int = 64
    lr: float = 1e-4
    batch_size: int = 256
    epochs: int = 300
    lr_step_epochs: int = 100
    lr_decay: float = 0.1
    dataset: str = "fashion_mnist"

    def validate(self) -> Config:
        _check_positive(height=self.height, width=self.width, batch_size=self.batch_size,
                        epochs=self.epochs, lr_step_epochs=self.lr_step_epochs)  # fmt: skip
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if not (isinstance(self.lr_decay, (int, float)) and 0 < self.lr_decay <= 1):
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {self.dataset!r}")
        return self


DATASETS = ("fashion_mnist", "mnist")

#: The blog's reported Fashion-MNIST test accuracy of the 64 x 64 grid (one run, no error bar).
BLOG_TEST_ACC = 0.869
#: The blog's timing table (hardware not stated): implementation, accelerator, batch, seconds per
#: epoch, standard deviation; 128 x 128 grid, Fashion-MNIST.
BLOG_TIMING = (
    ("double loop", "CPU", 1, 52427.0, 607.0),
    ("unfold", "CPU", 1, 1503.0, 288.0),
    ("unfold", "CPU", 16, 404.0, 59.0),
    ("unfold", "CPU", 32, 329.0, 33.0),
    ("unfold", "CPU", 64, 257.0, 4.0),
    ("unfold", "GPU", 64, 21.0, 1.0),
    ("unfold", "GPU", 256, 5.41, 0.17),
)

#: The blog's 86.9 % run: 64 x 64 grid, Adam 1e-4, batch 256, lr / 10 every 100 epochs, 300 epochs.
BLOG = Config()
#: A short schedule with the same model and optimiser: 30 epochs, lr / 10 every 10 epochs.
SHORT = Config(epochs=30, lr_step_epochs=10)
PRESETS = {"blog": BLOG, "short": SHORT}


def lr_schedule(cfg: Config, steps_per_epoch: int) -> optax.Schedule:
    """``lr * lr_decay ** floor(epoch / lr_step_epochs)`` (PyTorch ``StepLR`` stepped per epoch)."""
    return optax.exponential_decay(cfg.lr, transition_steps=cfg.lr_step_epochs * steps_per_epoch,
                                   decay_rate=cfg.lr_decay, staircase=True)  # fmt: skip


# Backprop on mean cross-entropy is the shared baseline trainer; the grid is only the model.
cross_entropy = supervised.cross_entropy
_classification_task = supervised.supervised_task


def make_task(cfg: Config, steps_per_epoch: int, n_in: int = 784, n_classes: int = 10,
              form: str = "fast"):  # fmt: skip
    """The 2-D network as a :class:`gridlib.experiment.Task` (state = ``(params, adam state)``)."""
    cfg.validate()
    _check_positive(steps_per_epoch=steps_per_epoch)
    opt = optax.adam(lr_schedule(cfg, steps_per_epoch))
    return _classification_task(
        lambda k: init_network(k, n_in, cfg.height, cfg.width, n_classes),
        lambda p, x: network_apply(p, x, form), opt)  # fmt: skip


class Config3D(NamedTuple):
    """A 3-D NeuralGrid run: ``n_layers`` slices of the image size, Adam, step schedule."""

    n_layers: int = 16
    lr: float = 1e-3
    batch_size: int = 256
    epochs: int = 10
    lr_step_epochs: int = 100
    lr_decay: float = 0.1
    dataset: str = "fashion_mnist"

    def validate(self) -> Config3D:
        Config(lr=self.lr, batch_size=self.batch_size, epochs=self.epochs,
               lr_step_epochs=self.lr_step_epochs, lr_decay=self.lr_decay,
               dataset=self.dataset).validate()  # fmt: skip
        _check_positive(n_layers=self.n_layers)
        return self


def make_task_3d(cfg: Config3D, steps_per_epoch: int, image_shape: tuple[int, int] = (28, 28),
                 n_classes: int = 10):  # fmt: skip
    """The 3-D network as a :class:`gridlib.experiment.Task`."""
    cfg.validate()
    _check_positive(steps_per_epoch=steps_per_epoch)
    sched = optax.exponential_decay(cfg.lr, cfg.lr_step_epochs * steps_per_epoch, cfg.lr_decay,
                                    staircase=True)  # fmt: skip
    return _classification_task(
        lambda k: init_grid3d(k, image_shape, cfg.n_layers, n_classes), grid3d_apply,
        optax.adam(sched))  # fmt: skip


def load_splits(dataset: str, n_train: int | None = None, n_test: int | None = None):
    """Real MNIST or Fashion-MNIST through :mod:`gridlib.data` (all of it by default)."""
    from gridlib import data

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    loader = data.load_fashion_mnist if dataset == "fashion_mnist" else data.load_mnist
    return loader(n_train=n_train or None, n_test=n_test or None)


def _rounded(a: Any, digits: int = 4) -> list:
    return np.round(np.asarray(a, np.float64), digits).tolist()


def train(cfg: Config, *, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
          name: str | None = None, progress: bool = True, record_patterns: bool = True,
          eval_on: tuple[str, ...] = ("test",)):  # fmt: skip
    """Train the 2-D network on real data with :func:`gridlib.experiment.fit`.

    Returns ``(run, extra)``; ``extra`` holds the mean activation pattern per class (first 64
    test images of each class) at the start and end of training and the final parameter grids,
    if ``record_patterns``. With ``name``, checkpoints go to ``runs/<name>`` (and resume).
    """
    from gridlib.experiment import fit, run_dir_for

    cfg.validate()
    splits = load_splits(cfg.dataset, n_train, n_test)
    steps = len(splits.x_train) // cfg.batch_size
    if steps < 1:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds {len(splits.x_train)} examples")
    task = make_task(cfg, steps)
    extra: dict[str, Any] = {}
    if record_patterns:
        # fit() initialises with the first half of split(PRNGKey(seed)); recompute that state here
        init_key = jax.random.split(jax.random.PRNGKey(seed))[0]
        p0 = task.init(init_key)[0]
        extra["pattern_start"] = _rounded(class_mean_activations(p0, splits.x_test, splits.y_test))
    run = fit(task, splits, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed,
              run_dir=run_dir_for(name) if name else None, name=name or "neuralgrid",
              eval_on=eval_on, progress=progress, config=cfg._asdict())  # fmt: skip
    if record_patterns:
        p = run.state[0]
        extra["pattern_end"] = _rounded(class_mean_activations(p, splits.x_test, splits.y_test))
        extra["grid_weight"] = _rounded(p.grid.weight.T)  # (H, W): rows neurons, columns depth
        extra["grid_bias"] = _rounded(p.grid.bias.T)
    return run, extra


def _override(cfg: NamedTuple, **kw: Any) -> Any:
    """Replace the fields given with a non-default value (0 / empty means: keep the preset's)."""
    return cfg._replace(**{k: v for k, v in kw.items() if v not in (0, 0.0, "", None)})


@experiment("neuralgrid-fashion")
def neuralgrid_fashion(preset: str = "blog", seed: int = 0, epochs: int = 0, height: int = 0,
                       width: int = 0, lr: float = 0.0, batch_size: int = 0,
                       lr_step_epochs: int = 0, dataset: str = "", n_train: int = 0,
                       n_test: int = 0, progress: bool = True) -> dict:  # fmt: skip
    """2-D NeuralGrid on Fashion-MNIST (preset 'blog': the blog's 300-epoch 64x64 run; 'short').

    Flags left at 0 / empty keep the preset's value; any other value makes the run a variant,
    recorded as such (results/neuralgrid/<dataset>_<preset>[_variant]_seed<seed>.json).
    """
    from gridlib import results

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    base = PRESETS[preset]
    cfg = _override(base, epochs=epochs, height=height, width=width, lr=lr, batch_size=batch_size,
                    lr_step_epochs=lr_step_epochs, dataset=dataset).validate()  # fmt: skip
    variant = cfg != base or n_train or n_test
    name = f"neuralgrid/{cfg.dataset}_{preset}{'_variant' if variant else ''}_seed{seed}"
    run, extra = train(cfg, seed=seed, n_train=n_train or None, n_test=n_test or None, name=name,
                       progress=progress)  # fmt: skip
    metrics = {"test_acc": run.history["test/acc"][-1], "test_loss": run.history["test/loss"][-1],
               "train_loss": run.history["train/loss"][-1],
               "mean_epoch_time_s": float(np.mean(run.history["epoch_time_s"]))}  # fmt: skip
    config = {**cfg._asdict(), "preset": preset, "is_preset": not variant,
              "n_train": n_train or 60000, "n_test": n_test or 10000}  # fmt: skip
    path = results.save(name, config=config, metrics=metrics, history=run.history, seed=seed,
                        extra=extra)  # fmt: skip
    print(f"{name}: test acc {metrics['test_acc']:.4f} -> {path}")
    return metrics


def train3d(cfg: Config3D, *, seed: int = 0, n_train: int | None = None,
            n_test: int | None = None, name: str | None = None, progress: bool = True):  # fmt: skip
    """Train the 3-D network on real data with :func:`gridlib.experiment.fit`; returns the run."""
    from gridlib.experiment import fit, run_dir_for

    cfg.validate()
    splits = load_splits(cfg.dataset, n_train, n_test)
    steps = len(splits.x_train) // cfg.batch_size
    if steps < 1:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds {len(splits.x_train)} examples")
    task = make_task_3d(cfg, steps)
    return fit(task, splits, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed,
               run_dir=run_dir_for(name) if name else None, name=name or "neuralgrid3d",
               eval_on=("test",), progress=progress, config=cfg._asdict())  # fmt: skip


@experiment("neuralgrid3d")
def neuralgrid3d(dataset: str = "fashion_mnist", seed: int = 0, epochs: int = 10,
                 n_layers: int = 16, lr: float = 1e-3, batch_size: int = 256, n_train: int = 0,
                 n_test: int = 0, progress: bool = True) -> dict:  # fmt: skip
    """3-D NeuralGrid (16 slices of 28x28, 3x3 neighbourhoods) on MNIST or Fashion-MNIST."""
    from gridlib import results

    cfg = Config3D(n_layers=n_layers, lr=lr, batch_size=batch_size, epochs=epochs,
                   dataset=dataset).validate()  # fmt: skip
    name = f"neuralgrid/grid3d_{dataset}{'_subset' if n_train or n_test else ''}_seed{seed}"
    run = train3d(cfg, seed=seed, n_train=n_train or None, n_test=n_test or None, name=name,
                  progress=progress)  # fmt: skip
    metrics = {"test_acc": run.history["test/acc"][-1], "test_loss": run.history["test/loss"][-1],
               "mean_epoch_time_s": float(np.mean(run.history["epoch_time_s"]))}  # fmt: skip
    config = {**cfg._asdict(), "n_train": n_train or 60000, "n_test": n_test or 10000}
    results.save(name, config=config, metrics=metrics, history=run.history, seed=seed)
    print(f"{name}: test acc {metrics['test_acc']:.4f}")
    return metrics
