"""The analog-filter grid: an N x M grid of first-order (ZOH) filter cells and its gradients.

- :mod:`~gridlib.filtergrid.cell`      one cell: ZOH coefficients, state update, self-traces
- :mod:`~gridlib.filtergrid.model`     parameters, wavefront forward over the whole grid, losses
- :mod:`~gridlib.filtergrid.bptt`      exact gradient by reverse-mode autodiff (the reference)
- :mod:`~gridlib.filtergrid.rtrl`      exact gradient by forward-mode influence (RTRL)
- :mod:`~gridlib.filtergrid.snap1`     the local SnAP-1 rule (3 self-traces + 8 cross-traces per cell)
- :mod:`~gridlib.filtergrid.perturb`   SnAP-1 with biased or noisy measurements, and quantised weights
- :mod:`~gridlib.filtergrid.reference` naive per-cell raster-order loops (tests and benchmarks)
- :mod:`~gridlib.filtergrid.summary`   what the chapters load and show: the gradient-agreement
  table, the row-wise MNIST runs checked against the configuration the prose describes
- :mod:`~gridlib.filtergrid.anchor`    the original grid code (``../shared/anchors``) driven side by side,
  when that folder is present
- :mod:`~gridlib.filtergrid.experiments` optimisers, the training task and the command-line
  experiments (``filtergrid-mnist``, ``filtergrid-robustness``, ``filtergrid-agreement``)
"""

from gridlib.filtergrid.cell import DT, SelfTraces, cell_step, self_trace_step, zoh_coefficients
from gridlib.filtergrid.model import (
    GridParams,
    Trajectory,
    encode,
    forward,
    init_params,
    loss_from_readout,
    make_routing,
    predict,
    readout,
    step,
)

__all__ = [
    "DT",
    "GridParams",
    "SelfTraces",
    "Trajectory",
    "cell_step",
    "encode",
    "forward",
    "init_params",
    "loss_from_readout",
    "make_routing",
    "predict",
    "readout",
    "self_trace_step",
    "step",
    "zoh_coefficients",
]
