"""The GLE learning rule run online: an optimiser step at every time step of the dynamics.

The rule itself -- the local, phase-corrected errors and the weight and time-constant gradients
they give -- is computed inside :func:`gridlib.gle.model.step` (it is part of the dynamics). This
module applies it the way the model runs: plasticity on at every ``dt``, then the optional clamp of
``tau_m`` (*GLE teacher–student: LagLine and LagNet*).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

from gridlib.gle.model import Config, Layer, LayerState, loss_value, step


def clamp_tau(net: Sequence[Layer], tau_min: float | None) -> tuple[Layer, ...]:
    """Clamp every ``tau_m`` to at least ``tau_min`` (after an optimiser step)."""
    if tau_min is None:
        return tuple(net)
    return tuple(lay._replace(tau_m=jnp.maximum(lay.tau_m, tau_min)) for lay in net)


class Learner(NamedTuple):
    """Online learning state: parameters, optimiser state, dynamic state."""

    net: tuple[Layer, ...]
    opt_state: Any
    state: tuple[LayerState, ...]


def learn(
    learner: Learner,
    xs: Array,
    targets: Array,
    cfg: Config,
    optimizer: optax.GradientTransformation,
    *,
    tau_min: float | None = None,
):
    """Online GLE learning over ``xs: (T, B, n_0)``, ``targets: (T, B, n_N)``.

    At every step: one :func:`step`, then one optimiser step on the local gradients (the
    plasticity runs continuously, as in the model), then the optional clamp of ``tau_m``.

    Returns ``(learner, (outs, losses))`` with ``outs: (T, B, n_N)`` and ``losses: (T,)`` the
    batch-mean loss of each step's output.
    """

    def body(lr_: Learner, inp):
        x, t = inp
        st, g, so = step(lr_.net, lr_.state, x, t, cfg)
        upd, opt_state = optimizer.update(g, lr_.opt_state, lr_.net)
        net = clamp_tau(optax.apply_updates(lr_.net, upd), tau_min)
        return Learner(net, opt_state, st), (so.out, jnp.mean(loss_value(so.out, t, cfg)))

    return jax.lax.scan(body, learner, (xs, targets))
