"""Exact gradient by reverse-mode autodiff through the whole sequence (BPTT): the reference."""

from __future__ import annotations

import jax
from jax import Array

from gridlib.filtergrid.cell import DT, GridParams
from gridlib.filtergrid.model import check_loss_mode, forward, loss_from_readout, readout


def bptt_grads(
    params: GridParams, xs: Array, label: Array, mode: str = "sum", dt: float = DT
) -> tuple[Array, Array, GridParams]:
    """``(loss, logits, dL/dparams)`` for one sequence ``xs: (T, N)``, by ``jax.grad``.

    ``logits = sum_t r(t)`` (shape ``(M,)``) is returned for accuracy bookkeeping.
    """
    check_loss_mode(mode)

    def objective(p):
        r = readout(forward(p, xs, dt))
        return loss_from_readout(r, label, mode), r

    (value, r), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return value, r.sum(0), grads
