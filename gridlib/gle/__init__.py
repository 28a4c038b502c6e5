"""Generalized latent equilibrium (GLE): prospective neurons with phase-correct local errors.

Modules:

- :mod:`gridlib.gle.core`        layers, the synchronous Euler step, online learning, transfer
  functions (re-exported here)
- :mod:`gridlib.gle.symbolic`    sympy forms of the operators, transfer functions and Euler step
- :mod:`gridlib.gle.bptt`        (truncated) BPTT through the same dynamics, and the exact adjoint
- :mod:`gridlib.gle.teachers`    LagLine and LagNet teacher--student problems
- :mod:`gridlib.gle.mnist1d`     MNIST-1D networks (15k, 42k end-to-end; static lag-net + LE) and
  seed ensembles as :class:`gridlib.experiment.Task`
- :mod:`gridlib.gle.experiments` the ``python -m gridlib gle-...`` commands
"""

from gridlib.gle.core import (
    ACTIVATIONS,
    Config,
    Layer,
    LayerState,
    Learner,
    StepOut,
    adjoint_transfer,
    clamp_tau,
    error_transfer,
    euler_transfer,
    feedforward,
    forward_transfer,
    init_state,
    le_layer,
    learn,
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
