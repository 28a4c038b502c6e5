"""Recurrent backprop (Almeida-Pineda) at the free fixed point: the implicit gradient.

It needs only the fixed point, not the trajectory that reached it; at a converged fixed point it
equals backprop through the unrolled relaxation (:mod:`gridlib.ep.bptt`), and EP approaches it
as ``beta -> 0``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from gridlib.ep.model import DEFAULT, EPConfig, cost, input_drive, relax_step


@partial(jax.jit, static_argnames=("cfg", "n_iter"))
def rbp_gradient(params, x, target, fixed_point, cfg: EPConfig = DEFAULT, n_iter: int = 200):
    """Recurrent backprop (Almeida-Pineda) at the free fixed point ``s* = T(s*, theta)``.

    ``T(s, theta) = clip(s + eps force(s), 0, 1)``. The adjoint ``v = dJ/ds + v dT/ds`` is
    solved by ``n_iter`` fixed-point iterations, then ``dJ/dtheta = v dT/dtheta``. This is the
    implicit gradient of ``J = mean_b C(y*)`` with the saturated units held at their bounds.
    """
    zero_t = jnp.zeros_like(fixed_point[-1])

    def T(p, s):
        return relax_step(p, input_drive(p, x, cfg), s, zero_t, 0.0, cfg)

    dj_ds = jax.grad(lambda s: jnp.mean(cost(s[-1], target, cfg)))(tuple(fixed_point))
    _, vjp_s = jax.vjp(lambda s: T(params, s), tuple(fixed_point))

    def body(_, v):
        (vs,) = vjp_s(v)
        return jax.tree.map(jnp.add, dj_ds, vs)

    v = jax.lax.fori_loop(0, n_iter, body, dj_ds)
    _, vjp_p = jax.vjp(lambda p: T(p, tuple(fixed_point)), params)
    (g,) = vjp_p(v)
    return g
