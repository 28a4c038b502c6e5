"""Naive references for the GLE dynamics: plain loops that the tests compare the library with.

- :func:`naive_step` one synchronous Euler step, neuron by neuron and example by example

The exact adjoint method (:func:`gridlib.gle.bptt.adjoint`) is the reference for the learning
rule's gradients; it lives with BPTT because it shares its backward pass.
"""

from __future__ import annotations

import numpy as np

from gridlib.gle.model import Layer, LayerState


def naive_step(net, state, x, target, acts, dt, gamma, beta, prospective):
    """One synchronous Euler step of GLE, one neuron and one example at a time, in float64.

    The independent reference for :func:`gridlib.gle.model.step` (spec section 1.5): plain Python
    loops over layers, examples and neurons, no vectorisation, no JAX. ``acts`` names each
    layer's activation (``tanh`` or ``linear``).

    Returns ``(new_state, weight_gradients, output)`` like ``step``'s state, ``grads[l].W`` and
    ``out``.
    """
    phis = {"tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2), "linear": (lambda z: z, lambda z: 1.0)}
    net = [Layer(*(np.asarray(a, np.float64) for a in lay)) for lay in net]
    state = [LayerState(*(np.asarray(a, np.float64) for a in st)) for st in state]
    x, target = np.asarray(x, np.float64), np.asarray(target, np.float64)
    n_l = len(net)
    B = x.shape[0]
    new, gW = [], []
    for l in range(n_l):
        W, b, tm, tr = net[l]
        st = state[l]
        n_out, n_in = W.shape
        u1, v1, r1, rp1 = (np.zeros((B, n_out)) for _ in range(4))
        eb1 = np.zeros((B, n_in))
        g = np.zeros((n_out, n_in))
        for k in range(B):
            r_pre = x[k] if l == 0 else state[l - 1].r[k]
            e_vec = np.zeros(n_out)
            for i in range(n_out):
                if l == n_l - 1:
                    ie = beta * (target[k, i] - st.r[k, i]) * st.rp[k, i]
                else:
                    ie = state[l + 1].e_bottom[k, i] * st.rp[k, i]
                s_ = sum(W[i, j] * r_pre[j] for j in range(n_in)) + b[i]
                if prospective:
                    vd = (ie - st.v[k, i]) / tr[i]
                    v1[k, i] = st.v[k, i] + dt * vd
                    e = st.v[k, i] + tm[i] * vd
                else:
                    v1[k, i] = e = ie
                ud = (s_ + gamma * e - st.u[k, i]) / tm[i]
                u1[k, i] = st.u[k, i] + dt * ud
                ub = st.u[k, i] + tr[i] * ud
                phi, dphi = phis[acts[l]]
                r1[k, i], rp1[k, i] = phi(ub), dphi(ub)
                e_vec[i] = e
                for j in range(n_in):
                    g[i, j] -= e * r_pre[j] / B
            eb1[k] = W.T @ e_vec if l > 0 else st.e_bottom[k]
        new.append(LayerState(u1, v1, r1, rp1, eb1))
        gW.append(g)
    return new, gW, state[-1].r
