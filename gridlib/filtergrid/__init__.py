"""The analog-filter grid: an N x M grid of first-order (ZOH) filter cells and its gradients.

- :mod:`~gridlib.filtergrid.cell`      one cell: ZOH coefficients, state update, self-traces
- :mod:`~gridlib.filtergrid.model`     parameters, wavefront forward over the whole grid, losses
- :mod:`~gridlib.filtergrid.bptt`      exact gradient by reverse-mode autodiff (the reference)
- :mod:`~gridlib.filtergrid.rtrl`      exact gradient by forward-mode influence (RTRL)
- :mod:`~gridlib.filtergrid.snap1`     the local SnAP-1 rule (3 self-traces + 8 cross-traces per cell)
- :mod:`~gridlib.filtergrid.snap0`     SnAP-0: self-traces only (``m_k f_k``, e-prop-like)
- :mod:`~gridlib.filtergrid.snap2`     SnAP-2: SnAP-1 plus the 12 traces of the descendants at distance 2
- :mod:`~gridlib.filtergrid.tbptt`     truncated BPTT: each step's error back-propagated ``K`` steps
- :mod:`~gridlib.filtergrid.online`    online SnAP-1 of the per-step loss, computed within each step (and an update per step)
- :mod:`~gridlib.filtergrid.stepwise`  what those rules share: the per-step messages, and the backward
  sweep on SnAP-1's hyperplanes that SnAP-0, SnAP-2 and truncated BPTT run on
- :mod:`~gridlib.filtergrid.temporal`  every temporal rule by name, one signature, state carried per parameter
- :mod:`~gridlib.filtergrid.perturb`   SnAP-1 with biased or noisy measurements, and quantised weights
- :mod:`~gridlib.filtergrid.alignment` each temporal rule's gradient against the exact one on real
  MNIST: against sequence length, across the grid, along a training run
- :mod:`~gridlib.filtergrid.comparison` every temporal rule from results files: memory, work, accuracy
- :mod:`~gridlib.filtergrid.reference` naive per-cell raster-order loops (tests and benchmarks)
- :mod:`~gridlib.filtergrid.summary`   what the chapters load and show: the gradient-agreement
  table, the row-wise MNIST runs checked against the configuration the prose describes
- :mod:`~gridlib.filtergrid.anchor`    the original grid code (``../shared/anchors``) driven side by side,
  when that folder is present
- :mod:`~gridlib.filtergrid.experiments` optimisers, the training task and the command-line
  experiments (``filtergrid-mnist``, ``filtergrid-tune``, ``filtergrid-robustness``, ``filtergrid-agreement``)
- :mod:`~gridlib.filtergrid.tuning`    each rule's settings chosen on validation data: every candidate
  of a grid trained at once (vmap), early stopping on validation
- :mod:`~gridlib.filtergrid.fair`      every rule at the setting its own search chose, beside the
  original's setting, with paired differences (what *One grid, every temporal rule* loads)

Example:
    Build a 4 x 3 grid, run one time step, then take the gradient of one sequence's loss
    three ways. BPTT and RTRL are both exact and agree to float32 rounding. SnAP-1 keeps
    only each cell's influence on itself and on its two neighbours: close to the exact
    gradient, not equal to it (it is exact where every descendant of a cell is a neighbour,
    a 1 x 2 grid, or at ``T = 1``).

    >>> import jax, jax.numpy as jnp
    >>> from jax.flatten_util import ravel_pytree
    >>> from gridlib import filtergrid as fg
    >>> params = fg.init_params(jax.random.PRNGKey(0), 4, 3)  # N = 4, M = 3
    >>> xs = jax.random.normal(jax.random.PRNGKey(1), (10, 4))  # (T, N)
    >>> s, y = fg.step(params, jnp.zeros((4, 3)), xs[0])  # one time step
    >>> y.shape
    (4, 3)
    >>> rules = fg.bptt_grads, fg.rtrl_grads, fg.snap1_grads
    >>> bptt, rtrl, snap1 = (ravel_pytree(jax.jit(r)(params, xs, 1)[2])[0]
    ...                      for r in rules)  # label 1; [2]: the gradient
    >>> bool(jnp.allclose(rtrl, bptt, rtol=1e-4, atol=1e-6))
    True
    >>> cos = snap1 @ bptt / (jnp.linalg.norm(snap1) * jnp.linalg.norm(bptt))
    >>> print(f"SnAP-1 against BPTT: cosine {cos:.3f}")
    SnAP-1 against BPTT: cosine 0.996
"""

from gridlib.filtergrid.bptt import bptt_grads
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
from gridlib.filtergrid.online import (
    OnlineCarry,
    OnlineLearning,
    online_snap1_batch_grads,
    online_snap1_batch_learn,
    online_snap1_grads,
    online_snap1_init,
    online_snap1_learn,
    online_snap1_step,
    online_snap1_step_grads,
)
from gridlib.filtergrid.rtrl import rtrl_grads
from gridlib.filtergrid.snap0 import snap0_batch_grads, snap0_grads
from gridlib.filtergrid.snap1 import snap1_batch_grads, snap1_grads
from gridlib.filtergrid.snap2 import Snap2Traces, snap2_batch_grads, snap2_grads, snap2_traces
from gridlib.filtergrid.tbptt import tbptt_batch_grads, tbptt_grads
from gridlib.filtergrid.temporal import (
    TEMPORAL_RULES,
    carried_state,
    rule_batch_grads,
    rule_grads,
    state_floats_per_parameter,
)

__all__ = [
    "DT",
    "GridParams",
    "OnlineCarry",
    "SelfTraces",
    "Snap2Traces",
    "TEMPORAL_RULES",
    "Trajectory",
    "bptt_grads",
    "carried_state",
    "cell_step",
    "encode",
    "forward",
    "init_params",
    "loss_from_readout",
    "make_routing",
    "OnlineLearning",
    "online_snap1_batch_grads",
    "online_snap1_batch_learn",
    "online_snap1_grads",
    "online_snap1_init",
    "online_snap1_learn",
    "online_snap1_step",
    "online_snap1_step_grads",
    "predict",
    "readout",
    "rtrl_grads",
    "rule_batch_grads",
    "rule_grads",
    "self_trace_step",
    "snap0_batch_grads",
    "snap0_grads",
    "snap1_batch_grads",
    "snap1_grads",
    "snap2_batch_grads",
    "snap2_grads",
    "snap2_traces",
    "state_floats_per_parameter",
    "step",
    "tbptt_batch_grads",
    "tbptt_grads",
    "zoh_coefficients",
]
