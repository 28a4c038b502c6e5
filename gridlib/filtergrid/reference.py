"""Naive per-cell reference: one scalar cell at a time in raster order, as the original code runs.

Written straight from the equations, independently of the vectorised schedules: a ``lax.scan``
over the ``N M`` cells inside a ``lax.scan`` over time, scalar arithmetic only, explicit
neighbour indices with ``-1`` sentinels. It is the ground truth for the wavefront forward and
for SnAP-1 in the tests, and the "naive loop" the benchmark compares against. Slow by design.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from gridlib.filtergrid.cell import DT, GridParams
from gridlib.filtergrid.model import check_inputs, check_loss_mode, loss_from_readout


def neighbours(n: int, m: int) -> dict[str, Array]:
    """Flat index ``k = i M + j`` of each cell's left, top, below and right neighbour (``-1``: none)."""
    k = np.arange(n * m)
    i, j = k // m, k % m
    return {
        "row": jnp.asarray(i),
        "left": jnp.asarray(np.where(j > 0, k - 1, -1)),
        "top": jnp.asarray(np.where(i > 0, k - m, -1)),
        "below": jnp.asarray(np.where(i < n - 1, k + m, -1)),
        "right": jnp.asarray(np.where(j < m - 1, k + 1, -1)),
    }


def _flat(params: GridParams, dt: float):
    tau = jnp.exp(params.log_tau.reshape(-1))
    a = jnp.exp(-dt / tau)
    return tau, a, 1.0 - a, params.w_left.reshape(-1), params.w_top.reshape(-1), params.bias.reshape(-1)


def _forward_flat(params: GridParams, xs: Array, dt: float):
    """Per-step flat arrays ``(s_prev, s, y, u, v)``, each ``(T, N M)``, in raster order."""
    t_len, n, m = check_inputs(params, xs)
    nb = neighbours(n, m)
    _, a, c, wl, wt, b = _flat(params, dt)
    order = np.arange(n * m)

    def time_step(s_prev, x_t):
        def cell(carry, k):
            s, y, u, v = carry
            left, top = nb["left"][k], nb["top"][k]
            uk = jnp.where(left >= 0, y[jnp.maximum(left, 0)], x_t[nb["row"][k]])
            vk = jnp.where(top >= 0, y[jnp.maximum(top, 0)], 0.0)
            sk = a[k] * s_prev[k] + c[k] * (wl[k] * uk + wt[k] * vk)
            yk = jnp.tanh(sk + b[k])
            return (s.at[k].set(sk), y.at[k].set(yk), u.at[k].set(uk), v.at[k].set(vk)), None

        z = jnp.zeros(n * m, xs.dtype)
        (s, y, u, v), _ = jax.lax.scan(cell, (z, z, z, z), order)
        return s, (s_prev, s, y, u, v)

    _, out = jax.lax.scan(time_step, jnp.zeros(n * m, xs.dtype), xs)
    return out


def forward(params: GridParams, xs: Array, dt: float = DT) -> tuple[Array, Array]:
    """``(s, y)`` as ``(T, N, M)`` arrays, computed one cell at a time in raster order."""
    _, n, m = check_inputs(params, xs)
    _, s, y, _, _ = _forward_flat(params, xs, dt)
    return s.reshape(-1, n, m), y.reshape(-1, n, m)


def snap1_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT
) -> tuple[Array, Array, GridParams]:
    """SnAP-1 ``(loss, logits, gradient)`` with every trace and message handled cell by cell.

    Per cell and step: self-traces ``eL, eT, eta``; ``f = (1-y^2) [eta tau, eL, eT, 1]``;
    cross-traces ``eps_d = a_d eps_d + c_d kappa_d f`` for d = below (kappa = wT_d) and
    right (kappa = wL_d). Backward per step in reverse raster order: ``G_k += m_k f_k +
    sum_d m_d (1-y_d^2) (eps_d - c_d kappa_d f_k)``, then ``m_left += m_k (1-y_k^2) c_k wL_k``
    and ``m_top += m_k (1-y_k^2) c_k wT_k``.
    """
    check_loss_mode(mode)
    t_len, n, m = check_inputs(params, xs)
    nb = neighbours(n, m)
    tau, a, c, wl, wt, _ = _flat(params, dt)
    s_prev, s, y, u, v = _forward_flat(params, xs, dt)
    r = y.reshape(t_len, n, m)[:, -1, :]
    value, dr = jax.value_and_grad(loss_from_readout)(r, label, mode)
    desc = [(nb["below"], wt), (nb["right"], wl)]  # (descendant index, coupling weight array)

    def trace_step(carry, inp):
        self_tr, eps = carry  # self_tr: (3, NM) ; eps: (2, 4, NM)
        sp, uu, vv, yy = inp
        drive = wl * uu + wt * vv
        e_l = a * self_tr[0] + c * uu
        e_t = a * self_tr[1] + c * vv
        eta = a * self_tr[2] + a * dt / tau**2 * (sp - drive)
        g = 1.0 - yy**2
        f = jnp.stack([g * eta * tau, g * e_l, g * e_t, g])  # (4, NM), GridParams order

        def cross(eps_d, k):  # one cell at a time
            new = []
            for slot, (d_idx, kappa) in enumerate(desc):
                d = d_idx[k]
                dd = jnp.maximum(d, 0)
                upd = a[dd] * eps_d[slot, :, k] + c[dd] * kappa[dd] * f[:, k]
                new.append(jnp.where(d >= 0, upd, eps_d[slot, :, k]))
            return eps_d.at[:, :, k].set(jnp.stack(new)), None

        eps, _ = jax.lax.scan(cross, eps, np.arange(n * m))
        return (jnp.stack([e_l, e_t, eta]), eps), (f, eps)

    z = jnp.zeros(n * m, xs.dtype)
    init = (jnp.stack([z, z, z]), jnp.zeros((2, 4, n * m), xs.dtype))
    _, (f_all, eps_all) = jax.lax.scan(trace_step, init, (s_prev, u, v, y))

    def back_step(grad, inp):
        yy, ff, eps, dr_t = inp
        msg = jnp.zeros(n * m, xs.dtype).at[(n - 1) * m:].set(dr_t)

        def cell(carry, k):
            msg, grad = carry
            gk = 1.0 - yy[k] ** 2
            gk_grad = msg[k] * ff[:, k]
            for slot, (d_idx, kappa) in enumerate(desc):
                d = d_idx[k]
                dd = jnp.maximum(d, 0)
                past = eps[slot, :, k] - c[dd] * kappa[dd] * ff[:, k]
                gk_grad = gk_grad + jnp.where(d >= 0, msg[dd] * (1.0 - yy[dd] ** 2) * past, 0.0)
            left, top = nb["left"][k], nb["top"][k]
            msg = msg.at[jnp.maximum(left, 0)].add(jnp.where(left >= 0, msg[k] * gk * c[k] * wl[k], 0.0))
            msg = msg.at[jnp.maximum(top, 0)].add(jnp.where(top >= 0, msg[k] * gk * c[k] * wt[k], 0.0))
            return (msg, grad.at[:, k].add(gk_grad)), None

        (_, grad), _ = jax.lax.scan(cell, (msg, grad), np.arange(n * m)[::-1])
        return grad, None

    grad, _ = jax.lax.scan(back_step, jnp.zeros((4, n * m), xs.dtype), (y, f_all, eps_all, dr))
    return value, r.sum(0), GridParams(*(grad[q].reshape(n, m) for q in range(4)))
