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
