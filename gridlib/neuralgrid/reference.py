"""Naive references for NeuralGrid: the original's double loop and a cell-by-cell gradient.

Plain numpy and Python loops, written independently of the vectorised layer in
:mod:`gridlib.neuralgrid.model`: the tests use them as ground truth, the benchmark times
:func:`naive_loop_grads` as the "naive loop" row of the blog's table. Slow by design.
"""

from __future__ import annotations

import math

import numpy as np

from gridlib.neuralgrid.model import GridParams, NetworkParams


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
