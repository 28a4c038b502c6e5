"""The grid pre-activation in its alternative, equivalent forms (references and baselines).

The production form, shift-and-add (:func:`gridlib.neuralgrid.model.preact_fast` and
:func:`~gridlib.neuralgrid.model.preact3d_fast`), lives in :mod:`gridlib.neuralgrid.model`.
The forms here compute the same numbers another way; the tests check them against each other
and ``form=`` in :func:`~gridlib.neuralgrid.model.network_apply` swaps them in:

* explicit:  the formula, one output at a time (a reference, slow);
* sparse:    ``z = x A(w)^T + b`` with the tridiagonal ``A(w)[i, j] = w_j`` for ``|i - j| <= 1``;
* unfold:    gather the three-element windows of ``x`` and of ``w``, multiply, sum, as the
  original PyTorch code does (the baseline the benchmark compares against).

2-D: ``x: (..., H)``, ``w, b: (H,)``. 3-D slices: ``x: (..., h, w)``, ``w, b: (h, w)``, with a
3 x 3 neighbourhood in place of the three neighbours.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# ----------------------------------------------------------------------------------------------
# 2-D


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


# ----------------------------------------------------------------------------------------------
# 3-D slices


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
