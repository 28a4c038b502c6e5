r"""MNIST-1D streamed through GLE networks, one sample value per time step.

Each 360-step sequence is presented at ``dt = 0.2`` (72 time units); the label is the target at
every step (cross-entropy on linear logits, ``beta = 1``); the prediction is the argmax of the
output summed over the sequence. Learning is online: one Adam step per time step. The dynamic
state is never reset: it flows on from sample to sample, batch to batch and epoch to epoch; for
evaluation it is tiled to the evaluation batch, and after the between-epoch evaluation that
drives the learning-rate schedule, training continues from the first rows of that state.

Networks:

* **End-to-end GLE** (``e2e15k``, ``e2e42k``): input ``1 -> H`` (linear: a learned filter bank),
  five ``H -> H`` tanh layers, ``H -> 10`` linear. Hidden units are *fast*
  (``tau_m = tau_r = 1.2``) or *slow* (``tau_r = 0.2``; ``tau_m = 0.6`` for half of them,
  ``1.2`` for the rest). ``H = 17 + 36`` (14,956 parameters) or ``30 + 60`` (42,040).
* **Static lag-net + LE MLP** (``static``): a fixed bank of 10 channels, each a cascade of four
  low-pass filters with ``tau_m`` from 0.2 to 1.8, feeding a ``10 -> 60 -> 60 -> 10`` Latent
  Equilibrium MLP (``tau_m = tau_r = 2``) with instantaneous errors; the lag-net state restarts
  from zero for every batch.

The ensemble of seeds is trained in one call (one ``(S, ...)`` state, metrics of shape ``(S,)``):
seed after seed with ``lax.map`` on one device (each seed's state stays in cache), or with
``vmap`` when the seed axis is split over several devices; the seeds share the minibatch order
and differ in initialisation.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gridlib.gle import packed
from gridlib.gle.model import (
    Config,
    Layer,
    LayerState,
    init_state,
    loss_value,
    make_layer,
    resize_state,
    simulate,
    step,
    validate,
)

ARCHS = ("e2e15k", "e2e42k", "static")
PAPER_SEEDS = (12, 34, 56, 78, 98, 76, 54, 32, 42, 69)
STATIC_SEEDS = tuple(range(10))

#: Published test accuracy (mean, std over 10 seeds at epoch 150), the per-seed finals and the
#: 10-seed mean learning curve at a few epochs.
PUBLISHED = {
    "e2e15k": {"mean": 0.917, "std": 0.008,
               "per_seed": (0.912, 0.927, 0.901, 0.926, 0.913, 0.923, 0.912, 0.924, 0.912, 0.922),
               "curve": {25: 0.514, 50: 0.877, 75: 0.915, 100: 0.917, 150: 0.917}},
    "e2e42k": {"mean": 0.935, "std": 0.009,
               "per_seed": (0.934, 0.932, 0.920, 0.942, 0.955, 0.930, 0.940, 0.936, 0.936, 0.923),
               "curve": {25: 0.619, 50: 0.904, 75: 0.934, 100: 0.934, 150: 0.935}},
    "static": {"mean": 0.909, "std": 0.006, "per_seed": (),
               "curve": {25: 0.672, 50: 0.894, 100: 0.908, 150: 0.909}},
}


class Setup(NamedTuple):
    """Hyper-parameters of one MNIST-1D GLE run (defaults: the published 15k network)."""

    arch: str = "e2e15k"
    n_fast: int = 17
    n_slow: int = 36
    n_hidden: int = 5
    tau: float = 1.2
    tau_slow_short: float = 0.6
    tau_r_slow: float = 0.2
    dt: float = 0.2
    lr: float = 1e-3
    batch: int = 100
    seq_len: int = 360
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    plateau_threshold: float = 1e-4
    plateau_eps: float = 1e-8
    schedule: bool = True


def setup_for(arch: str, **overrides: Any) -> Setup:
    """The published setup of ``arch`` (``e2e15k``, ``e2e42k`` or ``static``)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown MNIST-1D GLE architecture {arch!r}; use one of {ARCHS}")
    base = {
        "e2e15k": Setup(),
        "e2e42k": Setup(arch="e2e42k", n_fast=30, n_slow=60, lr=5e-4),
        "static": Setup(arch="static", tau=2.0, lr=1e-3),
    }[arch]
    return base._replace(**overrides)


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


def hidden_taus(setup: Setup, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """``(tau_m, tau_r)`` of one hidden layer, ``(H,)`` each: slow units first, then fast."""
    half = setup.n_slow // 2
    tm = [setup.tau_slow_short] * half + [setup.tau] * (setup.n_slow - half) + [setup.tau] * setup.n_fast
    tr = [setup.tau_r_slow] * setup.n_slow + [setup.tau] * setup.n_fast
    return jnp.asarray(tm, dtype), jnp.asarray(tr, dtype)


STATIC_TAUS = tuple(float(v) for v in np.round(np.linspace(0.2, 1.8, 10), 2))


def make_net(key: jax.Array, setup: Setup, dtype=jnp.float32) -> tuple[tuple[Layer, ...], Config]:
    """The network and its settings for ``setup.arch``."""
    if setup.arch not in ARCHS:
        raise ValueError(f"unknown MNIST-1D GLE architecture {setup.arch!r}; use one of {ARCHS}")
    net, cfg = _init_net(key, setup, dtype), net_config(setup)
    validate(net, cfg)
    return net, cfg


def net_config(setup: Setup) -> Config:
    """The (static) settings of ``setup.arch``'s network."""
    if setup.arch == "static":
        return Config(
            activations=("linear",) * 4 + ("tanh", "tanh", "linear"),
            dt=setup.dt,
            gamma=0.0,
            beta=1.0,
            prospective_errors=False,
            loss="ce",
            plastic=(False,) * 4 + (True,) * 3,
        )
    return Config(
        activations=("linear",) + ("tanh",) * setup.n_hidden + ("linear",),
        dt=setup.dt,
        gamma=0.0,
        beta=1.0,
        prospective_errors=True,
        loss="ce",
    )


@partial(jax.jit, static_argnums=(1, 2))  # one compiled initialiser instead of many eager ops
def _init_net(key: jax.Array, setup: Setup, dtype) -> tuple[Layer, ...]:
    if setup.arch in ("e2e15k", "e2e42k"):
        H = setup.n_fast + setup.n_slow
        tm, tr = hidden_taus(setup, dtype)
        sizes = [1] + [H] * (setup.n_hidden + 1) + [10]
        keys = jax.random.split(key, len(sizes) - 1)
        net = [make_layer(keys[0], 1, H, tm, tr, dtype=dtype)]
        net += [make_layer(k, H, H, tm, tr, dtype=dtype) for k in keys[1:-1]]
        net += [make_layer(keys[-1], H, 10, setup.tau, setup.tau, dtype=dtype)]
    else:
        tm = jnp.asarray(STATIC_TAUS, dtype)
        tr = jnp.full(10, setup.dt, dtype)
        z = jnp.zeros(10, dtype)
        net = [Layer(jnp.ones((10, 1), dtype), z, tm, tr)]
        net += [Layer(jnp.eye(10, dtype=dtype), z, tm, tr) for _ in range(3)]
        k1, k2, k3 = jax.random.split(key, 3)
        t = setup.tau
        net += [
            make_layer(k1, 10, 60, t, t, dtype=dtype),
            make_layer(k2, 60, 60, t, t, dtype=dtype),
            make_layer(k3, 60, 10, t, t, dtype=dtype),
        ]
    return tuple(net)


def n_params(net) -> int:
    """Trainable weights and biases (time constants excluded)."""
    return int(sum(lay.W.size + lay.b.size for lay in net))


# --------------------------------------------------------------------------------------------
# Learning-rate schedule: reduce on plateau (mode "min", relative threshold)
# --------------------------------------------------------------------------------------------


class Plateau(NamedTuple):
    """Schedule state: current ``lr``, ``best`` monitored loss, ``bad`` epochs since the best."""

    lr: jax.Array
    best: jax.Array
    bad: jax.Array


def plateau_init(lr: float, dtype=jnp.float32) -> Plateau:
    return Plateau(jnp.asarray(lr, dtype), jnp.asarray(jnp.inf, dtype), jnp.asarray(0, jnp.int32))


def plateau_update(p: Plateau, metric: jax.Array, setup: Setup) -> Plateau:
    """One epoch of ReduceLROnPlateau: an improvement is ``metric < best (1 - threshold)``; after
    more than ``patience`` epochs without one, ``lr *= factor`` (unless the change < eps)."""
    better = metric < p.best * (1 - setup.plateau_threshold)
    best = jnp.where(better, metric, p.best)
    bad = jnp.where(better, 0, p.bad + 1)
    reduce = bad > setup.plateau_patience
    new_lr = p.lr * setup.plateau_factor
    reduce = reduce & (p.lr - new_lr > setup.plateau_eps)
    return Plateau(jnp.where(reduce, new_lr, p.lr), best, jnp.where(reduce, 0, bad))


# --------------------------------------------------------------------------------------------
# One seed: a minibatch of sequences, and an evaluation pass
# --------------------------------------------------------------------------------------------


class SeedState(NamedTuple):
    """Everything one seed carries: parameters, Adam moments, dynamic state, schedule."""

    net: tuple[Layer, ...]
    opt: Any
    dyn: tuple[LayerState, ...]
    sched: Plateau


ADAM = optax.scale_by_adam()  # torch defaults: b1 0.9, b2 0.999, eps 1e-8 outside the sqrt


def seed_init(key: jax.Array, setup: Setup, dtype=jnp.float32) -> SeedState:
    net, _ = make_net(key, setup, dtype)
    return SeedState(net, ADAM.init(net), init_state(net, setup.batch, dtype),
                     plateau_init(setup.lr, dtype))


def _time_major(x: jax.Array, seq_len: int) -> jax.Array:
    """``(B, T)`` sequences to ``(T, B, 1)`` per-step inputs."""
    if x.shape[-1] != seq_len:
        raise ValueError(f"sequences have length {x.shape[-1]}, expected {seq_len}")
    return jnp.swapaxes(x, 0, 1)[..., None]


def train_batch(s: SeedState, x: jax.Array, y: jax.Array, cfg: Config, setup: Setup):
    """Stream one minibatch ``x: (B, T)``, ``y: (B,)`` through the network, learning online.

    One :func:`gridlib.gle.model.step` and one Adam step per time step, run in the packed layout
    of :func:`gridlib.gle.packed.online_adam` (same numbers as :func:`train_batch_stepwise` up
    to float rounding, faster on a CPU: ``benchmarks/gle.py``); networks it does not cover take the
    per-layer form. Returns ``(state, metrics)`` with the mean per-step loss and the accuracy of
    the summed output over the batch.
    """
    if not packed.supports(cfg):
        return train_batch_stepwise(s, x, y, cfg, setup)
    if setup.arch == "static":  # the lag-net restarts from rest for every batch
        s = s._replace(dyn=init_state(s.net, x.shape[0], x.dtype))
    target = jax.nn.one_hot(y, 10, dtype=x.dtype)
    net, opt, dyn, out_sum, loss_sum = packed.online_adam(
        s.net, s.opt, s.dyn, _time_major(x, setup.seq_len), target, cfg, s.sched.lr, ADAM
    )
    return s._replace(net=net, opt=opt, dyn=dyn), _batch_metrics(out_sum, loss_sum, y, setup)


def _batch_metrics(out_sum, loss_sum, y, setup: Setup) -> dict[str, jax.Array]:
    return {"loss": jnp.mean(loss_sum) / setup.seq_len, "acc": jnp.mean(jnp.argmax(out_sum, -1) == y)}


def train_batch_stepwise(s: SeedState, x: jax.Array, y: jax.Array, cfg: Config, setup: Setup):
    """:func:`train_batch` in the per-layer form: a ``lax.scan`` of :func:`gridlib.gle.model.step`
    and ``ADAM``, batch-major (the reference the packed form is tested and timed against)."""
    if setup.arch == "static":  # the lag-net restarts from rest for every batch
        s = s._replace(dyn=init_state(s.net, x.shape[0], x.dtype))
    xs = _time_major(x, setup.seq_len)
    target = jax.nn.one_hot(y, 10, dtype=x.dtype)

    def body(carry, x_t):
        net, opt, dyn, acc_out, acc_loss = carry
        dyn, g, so = step(net, dyn, x_t, target, cfg)
        upd, opt = ADAM.update(g, opt)
        net = jax.tree.map(lambda p, u: p - s.sched.lr * u, net, upd)
        return (net, opt, dyn, acc_out + so.out, acc_loss + loss_value(so.out, target, cfg)), None

    zeros_out = jnp.zeros((x.shape[0], 10), x.dtype)
    zeros_l = jnp.zeros((x.shape[0],), x.dtype)
    (net, opt, dyn, out_sum, loss_sum), _ = jax.lax.scan(
        body, (s.net, s.opt, s.dyn, zeros_out, zeros_l), xs
    )
    return s._replace(net=net, opt=opt, dyn=dyn), _batch_metrics(out_sum, loss_sum, y, setup)


def eval_batch(s: SeedState, x: jax.Array, y: jax.Array, cfg: Config, setup: Setup):
    """Evaluate on ``x: (N, T)`` from the tiled training state (no learning).

    Returns ``(sums, dyn)``: the summed per-example loss (mean over steps) and number correct,
    and the final dynamic state narrowed back to the training batch.
    """
    n = x.shape[0]
    dyn = init_state(s.net, n, x.dtype) if setup.arch == "static" else resize_state(s.dyn, n)
    xs = _time_major(x, setup.seq_len)
    target = jnp.broadcast_to(jax.nn.one_hot(y, 10, dtype=x.dtype), (setup.seq_len, n, 10))
    dyn, outs = simulate(s.net, dyn, xs, None, cfg)
    loss = jnp.sum(jnp.mean(loss_value(outs, target, cfg), axis=0))
    correct = jnp.sum(jnp.argmax(outs.sum(0), -1) == y)
    return {"loss": loss, "acc": correct}, resize_state(dyn, setup.batch)


# --------------------------------------------------------------------------------------------
# The seed ensemble as a gridlib.experiment.Task
# --------------------------------------------------------------------------------------------


class EnsembleState(NamedTuple):
    """``seeds``: a :class:`SeedState` with a leading seed axis; ``count``: minibatches done."""

    seeds: SeedState
    count: jax.Array


#: How an ensemble steps through its seeds: one after another (``map``: fastest on one CPU
#: device) or all at once (``vmap``: what a seed axis split over several devices needs).
SeedLoop = Literal["map", "vmap"]


def make_task(setup: Setup, seeds, n_train: int, x_sched=None, y_sched=None, dtype=jnp.float32,
              seed_loop: SeedLoop = "map"):  # fmt: skip
    """A :class:`gridlib.experiment.Task` training ``len(seeds)`` networks in one call.

    ``seeds`` seed the initialisations (``PRNGKey(seed)`` each, independent of ``fit``'s key).
    With ``setup.schedule``, the learning rate of every seed follows ReduceLROnPlateau on the
    loss over ``(x_sched, y_sched)`` (the published runs use the test set), evaluated at the
    start of every epoch but the first, exactly as an evaluation between epochs would be; the
    evaluation also advances the dynamic state, as in the original protocol. ``seed_loop``
    (:data:`SeedLoop`) picks how a training step runs through the seeds; the numbers are the same.
    """
    from gridlib.experiment import Task

    if seed_loop not in get_args(SeedLoop):
        raise ValueError(f"unknown seed_loop {seed_loop!r}; use one of {get_args(SeedLoop)}")

    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("give at least one seed")
    if n_train < setup.batch:
        raise ValueError(f"{n_train} training examples cannot fill a batch of {setup.batch}")
    if setup.schedule and x_sched is None:
        raise ValueError("the plateau schedule needs evaluation data (x_sched, y_sched)")
    _, cfg = make_net(jax.random.PRNGKey(0), setup, dtype)
    n_batches = n_train // setup.batch
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    xs_sched = None if x_sched is None else jnp.asarray(x_sched, dtype)
    ys_sched = None if y_sched is None else jnp.asarray(y_sched)

    def init(_key):
        return EnsembleState(jax.vmap(lambda k: seed_init(k, setup, dtype))(keys),
                             jnp.asarray(0, jnp.int32))

    def schedule(seeds_state: SeedState) -> SeedState:
        def one(s: SeedState) -> SeedState:
            sums, dyn = eval_batch(s, xs_sched, ys_sched, cfg, setup)
            sched = plateau_update(s.sched, sums["loss"] / xs_sched.shape[0], setup)
            return s._replace(dyn=dyn, sched=sched)

        return jax.vmap(one)(seeds_state)

    def train_step(state: EnsembleState, x, y, key):
        del key  # the dynamics are deterministic
        s = state.seeds
        if setup.schedule:
            new_epoch = (state.count > 0) & (state.count % n_batches == 0)
            s = jax.lax.cond(new_epoch, schedule, lambda a: a, s)
        one = partial(train_batch, x=x.astype(dtype), y=y, cfg=cfg, setup=setup)
        s, metrics = jax.lax.map(one, s) if seed_loop == "map" else jax.vmap(one)(s)
        metrics["lr"] = s.sched.lr
        return EnsembleState(s, state.count + 1), metrics

    def eval_step(state: EnsembleState, x, y):
        return jax.vmap(lambda si: eval_batch(si, x.astype(dtype), y, cfg, setup)[0])(state.seeds)

    return Task(init, train_step, eval_step, compiler_options=packed.COMPILER_OPTIONS)
