"""What a trained network costs to hold: its trained parameters and the learning state its rule
carries in time, counted from the code's own shapes (nothing is typed in, nothing computed).

- :func:`count_params`, :func:`task_params`: floats of the pytree an initialiser returns
  (``jax.eval_shape``), and the ``params`` of a training task's state;
- one counter per system, each taking a results record's ``config``: :func:`filtergrid_params`,
  :func:`ep_params`, :func:`mlp_params`, :func:`neuralgrid_params`, :func:`gridnet_params`,
  :func:`gle_params`;
- learning state carried from one time step to the next, per trained parameter:
  :func:`filtergrid_state_per_parameter` (the rule's own
  :func:`gridlib.filtergrid.temporal.state_floats_per_parameter`) and
  :func:`gle_state_per_parameter` (the fields of :class:`gridlib.gle.model.LayerState` that only
  the error path reads).

The systems are imported inside the counters, so that importing this module stays cheap.
:mod:`gridlib.compare` shows the counts next to the results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

Record = Mapping[str, Any]


def _size(tree: Any) -> int:
    return int(sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree)))


def count_params(init: Callable[[jax.Array], Any]) -> int:
    """Floats in the pytree that ``init(key)`` returns, from its shapes (``jax.eval_shape``).

    >>> from gridlib.baselines import mlp_init
    >>> count_params(lambda k: mlp_init(k, (4, 3, 2)))  # 4*3 + 3 + 3*2 + 2
    23
    """
    return _size(jax.eval_shape(init, jax.random.PRNGKey(0)))


def task_params(task: Any) -> int:
    """Trained parameters of a :class:`gridlib.experiment.Task`: the ``params`` field of the state
    its ``init`` returns (every task of the book keeps them there, next to optimiser state and
    fixed wiring)."""
    return count_params(lambda k: task.init(k).params)


def _fields(cls: Any, config: Record) -> dict[str, Any]:
    return {f: config[f] for f in cls._fields if f in config}


def filtergrid_params(config: Record) -> int:
    """The grid's four parameters per cell (the fixed input wiring is not trained)."""
    from gridlib.filtergrid.experiments import make_task

    n, m = config["grid"]
    return task_params(make_task(rule=config["rule"], optimizer=config["optimizer"], n_rows=n, n_cols=m,
                                 window=config.get("window")))


def ep_params(config: Record) -> int:
    """Weights and biases of the EP network ``config["sizes"]``."""
    from gridlib.ep.experiments import make_task
    from gridlib.ep.model import EPConfig

    return task_params(make_task(EPConfig(**_fields(EPConfig, config))))


def mlp_params(config: Record) -> int:
    """Weights and biases of the backprop MLP ``config["sizes"]`` (its task's ``init`` is
    :func:`gridlib.baselines.mlp_init`; :func:`~gridlib.baselines.mlp_task` would also run it once,
    eagerly, to check the sizes)."""
    from gridlib.baselines import mlp_init

    return count_params(lambda k: mlp_init(k, config["sizes"]))


def neuralgrid_params(config: Record) -> int:
    """The 2-D NeuralGrid (input layer, grid, readout) or, with ``n_layers``, the 3-D one."""
    from gridlib.neuralgrid import experiments as ngx

    if "n_layers" in config:
        return task_params(ngx.make_task_3d(ngx.Config3D(**_fields(ngx.Config3D, config)), 1))
    return task_params(ngx.make_task(ngx.Config(**_fields(ngx.Config, config)), 1))


def gridnet_params(config: Record) -> int:
    """Cell weights, biases and residual scales, the learned initial grid, the norms, the readout."""
    from gridlib.gridnet.experiments import make_task
    from gridlib.gridnet.model import Config

    return task_params(make_task(Config(**_fields(Config, config))))


def _gle_net(config: Record):
    from gridlib.gle import mnist1d as m1d

    setup = m1d.Setup(**_fields(m1d.Setup, config["setup"]))
    net = jax.eval_shape(lambda k: m1d.make_net(k, setup)[0], jax.random.PRNGKey(0))
    return net, m1d.net_config(setup)


def gle_params(config: Record) -> int:
    """Weights and biases of the layers that learn (``Config.plastic``); time constants only where
    they learn (``learn_tau``). The static lag-net in front of the LE MLP is fixed."""
    net, cfg = _gle_net(config)
    plastic = cfg.plastic or (True,) * len(net)
    return sum(lay.W.size + lay.b.size * cfg.learn_bias + lay.tau_m.size * cfg.learn_tau
               for lay, p in zip(net, plastic, strict=True) if p)  # fmt: skip


def gle_state_per_parameter(config: Record) -> float:
    """Floats per trained parameter that GLE's error path carries from one time step to the next,
    for one stream: of :class:`gridlib.gle.model.LayerState`, the error unit ``v`` (with
    prospective errors), the slope ``r'`` and the error arriving from the layer above
    (``e_bottom`` of the next layer), for every layer that learns. The forward state ``u, r`` is
    not counted, as the filter grid's network state is not."""
    from gridlib.gle.model import init_state

    net, cfg = _gle_net(config)
    state = init_state(net, 1)
    plastic = cfg.plastic or (True,) * len(net)
    floats = 0
    for i, (st, learns) in enumerate(zip(state, plastic, strict=True)):
        if learns:
            floats += st.rp.size + (st.v.size if cfg.prospective_errors else 0)
            floats += state[i + 1].e_bottom.size if i + 1 < len(state) else 0
    return floats / gle_params(config)


#: Row-wise MNIST: one image row of 28 pixels per time step (the task's definition).
ROWWISE_STEPS = 28


def filtergrid_state_per_parameter(config: Record) -> float:
    """:func:`gridlib.filtergrid.temporal.state_floats_per_parameter` of the record's rule, grid
    and (for BPTT) the sequence length of row-wise MNIST."""
    from gridlib.filtergrid.temporal import state_floats_per_parameter

    n, m = config["grid"]
    return state_floats_per_parameter(config["rule"], n, m, window=config.get("window"), t_len=ROWWISE_STEPS)
