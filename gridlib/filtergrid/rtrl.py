r"""Exact RTRL: carry the full influence matrix :math:`J(t) = ds(t)/d\theta` forward in time.

Each step is the map :math:`s(t) = F(s(t-1), \theta; x_t)`, so

.. math::
    J(t) &= \frac{\partial F}{\partial s} J(t-1) + \frac{\partial F}{\partial \theta},\\
    \frac{dr(t)}{d\theta} &= \frac{\partial r}{\partial s(t)} J(t)
        + \frac{\partial r}{\partial \theta},

computed as a batch of ``4 N M`` Jacobian-vector products (one per parameter) of the shared
hyperplane forward (:func:`~gridlib.filtergrid.model.hyperplane_readout`): the tangent carried
through the scan *is* the influence matrix, advanced in step with the state. For 28 x 10 that
is a ``1120 x 280`` matrix per sequence: cheap to hold, about ``4 N M`` times the cost of a
forward pass to run. The gradient is
:math:`\sum_t (dL/dr(t))^\top\, dr(t)/d\theta`, and with the ``"sum"`` loss only
:math:`\sum_t dr(t)/d\theta` (``M`` accumulators per parameter) needs to be kept, so the rule is
online.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from gridlib.filtergrid.cell import DT, GridParams
from gridlib.filtergrid.model import (
    check_inputs,
    check_loss_mode,
    hyperplane_readout,
    loss_from_readout,
)


def parameter_basis(n: int, m: int, dtype=jnp.float32) -> GridParams:
    """The ``4 N M`` unit tangents of the parameters, as a GridParams of ``(4NM, N, M)`` arrays.

    Parameter index ``q = type * N M + i M + j`` with types ordered as in :class:`GridParams`.
    """
    eye = jnp.eye(4 * n * m, dtype=dtype).reshape(4 * n * m, 4, n, m)
    return GridParams(*(eye[:, k] for k in range(4)))


def flatten(g: GridParams) -> Array:
    """GridParams of ``(..., N, M)`` -> ``(..., 4 N M)`` in the order of :func:`parameter_basis`."""
    return jnp.stack(list(g), axis=-3).reshape(*g.w_left.shape[:-2], -1)


def unflatten(v: Array, n: int, m: int) -> GridParams:
    """Inverse of :func:`flatten`."""
    v = v.reshape(*v.shape[:-1], 4, n, m)
    return GridParams(*(v[..., k, :, :] for k in range(4)))


def readout_jacobians(params: GridParams, xs: Array, dt: float = DT) -> tuple[Array, Array]:
    """Run the grid with forward-mode influence; returns ``r: (T, M)`` and ``dr/dtheta: (T, 4NM, M)``.

    ``4 N M`` Jacobian-vector products of the shared hyperplane forward, one per unit parameter
    tangent, batched with ``vmap`` (the primal pass is not batched, so it runs once). Inside the
    scan the tangent of each cell's state is its row of the influence matrix, carried forward
    stage by stage alongside the state: the RTRL recursion, on the same schedule as the forward.
    """
    _, n, m = check_inputs(params, xs)
    basis = parameter_basis(n, m, xs.dtype)
    run = lambda p: hyperplane_readout(p, xs, dt)
    r, dr = jax.vmap(lambda tangent: jax.jvp(run, (params,), (tangent,)), out_axes=(None, 0))(basis)
    return r, jnp.moveaxis(dr, 0, 1)


def rtrl_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT
) -> tuple[Array, Array, GridParams]:
    """``(loss, logits, exact gradient)`` for one sequence ``xs: (T, N)`` by RTRL."""
    check_loss_mode(mode)
    n, m = params.w_left.shape
    r, dr_dtheta = readout_jacobians(params, xs, dt)
    value, dl_dr = jax.value_and_grad(loss_from_readout)(r, label, mode)
    grad = jnp.einsum("tpm,tm->p", dr_dtheta, dl_dr)
    return value, r.sum(0), unflatten(grad, n, m)
