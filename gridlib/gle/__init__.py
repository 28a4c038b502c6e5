"""Generalized latent equilibrium (GLE): prospective neurons with phase-correct local errors.

Modules:

- :mod:`gridlib.gle.model`       layers, the synchronous Euler step (with the local GLE errors and
  gradients), transfer functions (re-exported here)
- :mod:`gridlib.gle.online`      the GLE rule run online: an optimiser step at every time step
- :mod:`gridlib.gle.packed`      the same online update with Adam in a layout built for CPU
  throughput (feature-major, layers stacked), as the MNIST-1D runs use it
- :mod:`gridlib.gle.reference`   naive loops the tests compare the library with
- :mod:`gridlib.gle.symbolic`    sympy forms of the operators, transfer functions and Euler step
- :mod:`gridlib.gle.bptt`        (truncated) BPTT through the same dynamics, and the exact adjoint
- :mod:`gridlib.gle.teachers`    LagLine and LagNet teacher--student problems
- :mod:`gridlib.gle.mnist1d`     MNIST-1D networks (15k, 42k end-to-end; static lag-net + LE) and
  seed ensembles as :class:`gridlib.experiment.Task`
- :mod:`gridlib.gle.experiments` the ``python -m gridlib gle-...`` commands
- :mod:`gridlib.gle.summary`     what the GLE chapters load and show: results checked against
  the configuration the prose describes, tables, figures

Example:
    A 2-8-1 network of prospective neurons learns online to follow a delayed sine from
    two phase-shifted inputs: one :func:`~gridlib.gle.online.learn` call runs the dynamics
    for ``T = 200`` steps of ``dt`` and applies the local GLE update at every step.

    >>> import jax, jax.numpy as jnp, optax
    >>> from gridlib import gle
    >>> k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    >>> net = (gle.make_layer(k1, 2, 8, tau_m=1.0, tau_r=1.0),
    ...        gle.make_layer(k2, 8, 1, tau_m=1.0, tau_r=1.0))
    >>> cfg = gle.Config(activations=("tanh", "linear"), dt=0.1)
    >>> opt = optax.sgd(0.05)
    >>> learner = gle.Learner(net, opt.init(net), gle.init_state(net, batch=4))
    >>> t = (jnp.arange(200) * cfg.dt)[:, None] + jnp.arange(4)  # 4 streams
    >>> xs = jnp.stack([jnp.sin(t), jnp.cos(t)], axis=-1)  # (T, B, 2)
    >>> targets = 0.5 * jnp.sin(t - 0.5)[..., None]  # (T, B, 1)
    >>> learner, (outs, losses) = gle.learn(learner, xs, targets, cfg, opt)
    >>> outs.shape, losses.shape
    ((200, 4, 1), (200,))
    >>> bool(losses[-50:].mean() < 0.1 * losses[:50].mean())  # it learned
    True
"""

from gridlib.gle.model import (
    ACTIVATIONS,
    Config,
    Layer,
    LayerState,
    StepOut,
    adjoint_transfer,
    error_transfer,
    euler_transfer,
    feedforward,
    forward_transfer,
    init_state,
    le_layer,
    loss_value,
    low_pass,
    make_layer,
    output_error,
    resize_state,
    simulate,
    step,
    transfer,
    validate,
)
from gridlib.gle.online import (
    Learner,
    clamp_tau,
    learn,
)

__all__ = [
    "ACTIVATIONS",
    "Config",
    "Layer",
    "LayerState",
    "Learner",
    "StepOut",
    "adjoint_transfer",
    "clamp_tau",
    "error_transfer",
    "euler_transfer",
    "feedforward",
    "forward_transfer",
    "init_state",
    "le_layer",
    "learn",
    "loss_value",
    "low_pass",
    "make_layer",
    "output_error",
    "resize_state",
    "simulate",
    "step",
    "transfer",
    "validate",
]
