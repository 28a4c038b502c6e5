"""Backprop through the free relaxation (``"bptt"``): the gradient reference, and where it stalls.

:func:`bptt_gradient` differentiates :func:`~gridlib.ep.model.loss_after_relaxation` through the
unrolled ``n_free`` projected steps: the exact gradient of what the network computes, which EP
approximates for small ``beta``. Trained with it, the same network stalls: backprop through
``clip`` gives a unit held at the lower bound zero gradient (:func:`pinned_target_fraction`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from gridlib.ep.model import (
    DEFAULT,
    EPConfig,
    Params,
    forces,
    free_phase,
    input_drive,
    loss_after_relaxation,
)


@partial(jax.jit, static_argnames=("cfg", "n_steps"))
def bptt_gradient(params, x, target, cfg: EPConfig = DEFAULT, states=None, n_steps=None):
    """``dJ/dtheta`` by backprop through the unrolled free relaxation (the gradient reference)."""
    return jax.grad(loss_after_relaxation)(params, x, target, cfg, states, n_steps)


def pinned_target_fraction(params: Params, x, labels, cfg: EPConfig = DEFAULT) -> float:
    """Fraction of examples whose *target* output unit sits at the lower clip (0) after the free
    phase while its force still points down.

    Backprop through ``clip(s + eps * force, 0, 1)`` gives such a unit zero gradient, so no error
    reaches the network through it: the loss cannot pull the correct class up. EP is not
    blocked there: the nudge ``beta (d - y)`` pushes the unit off the bound and the contrast is
    non-zero.
    """
    x = jnp.asarray(x)
    free = free_phase(params, x, cfg)
    drive = input_drive(params, x, cfg)
    f = forces(params, drive, free, jnp.zeros_like(free[-1]), 0.0, cfg)[-1]
    rows = jnp.arange(x.shape[0])
    lab = jnp.asarray(labels)
    pinned = (free[-1][rows, lab] <= 0.0) & (f[rows, lab] <= 0.0)
    return float(jnp.mean(pinned))
