"""Training the analog-filter grid: gradient rules, optimisers, the task for ``fit``, the CLI run.

``python -m gridlib filtergrid-mnist --rule snap1 --optimizer adam`` reproduces the row-wise
MNIST runs: image row ``t`` is time step ``t`` (``T = 28``), grid row ``i`` receives pixel
column ``i`` scaled by ``gain``, one bottom-row cell per class, ``logits = sum_t r(t)``.

Why this module is long: it is the one place where every filter-grid experiment meets the
command line (row-wise MNIST by any rule, the robustness study, the gradient agreement, the
alignment study), beside the task and optimisers they share; each command is a few lines of
wiring, and splitting them from their task would spread one experiment over two files.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.sharding import Mesh

from gridlib import devices, flags
from gridlib.data import MNIST_VALIDATION
from gridlib.filtergrid.cell import DT, GridParams
from gridlib.filtergrid.model import (
    check_loss_mode,
    encode,
    forward,
    init_params,
    loss_from_readout,
    make_routing,
    readout,
)
from gridlib.filtergrid.online import online_snap1_batch_learn
from gridlib.filtergrid.temporal import TEMPORAL_RULES, rule_batch_grads

RULES = TEMPORAL_RULES
OPTIMIZERS = ("adam", "sgd")

# MNIST pixels come as k/256; the original scripts used k/255 (X / 255 * gain).
MNIST_PIXEL_SCALE = 256.0 / 255.0


def batch_grads(rule: str, params: GridParams, xs: Array, labels: Array, mode: str = "sum",
                dt: float = DT, window: int | None = None) -> tuple[Array, Array, GridParams]:
    """``(losses (B,), logits (B, M), batch-mean gradient)`` for ``xs: (B, T, N)`` by ``rule``
    (any of :data:`~gridlib.filtergrid.temporal.TEMPORAL_RULES`; ``window`` for ``"tbptt"``)."""
    return rule_batch_grads(rule, window)(params, xs, labels, mode, dt)


def loss_mode_for(rule: str) -> str:
    """The loss ``rule`` trains on: ``"per_t"`` for ``online_snap1`` (the one it can compute
    online), ``"sum"`` for every other rule."""
    return "per_t" if rule == "online_snap1" else "sum"


def per_group_sgd(eta0: float) -> optax.GradientTransformation:
    """Stateless SGD with one step size per parameter group.

    ``eta_w = eta0`` (``w_left``, ``w_top``), ``eta_b = eta0 / 20``, ``eta_logtau = 4 eta0``.
    """
    if not isinstance(eta0, jax.Array) and eta0 <= 0:  # an array: injected (tuning.py)
        raise ValueError(f"eta0 must be positive, got {eta0}")
    return optax.multi_transform(
        {"w": optax.sgd(eta0), "b": optax.sgd(eta0 / 20.0), "tau": optax.sgd(4.0 * eta0)},
        GridParams(log_tau="tau", w_left="w", w_top="w", bias="b"),
    )


def make_optimizer(name: str, lr: float = 3e-3, eta0: float = 1e-2) -> optax.GradientTransformation:
    """``"adam"``: ``optax.adam(lr)`` with default betas/eps; ``"sgd"``: :func:`per_group_sgd`."""
    if name == "adam":
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        return optax.adam(lr)
    if name == "sgd":
        return per_group_sgd(eta0)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


class TrainState(NamedTuple):
    """Parameters, optimiser state, and the fixed (never trained) input wiring ``(N, N_ext)``."""

    params: GridParams
    opt_state: Any
    routing: Array


def image_rows(x: Array, n_inputs: int, gain: float, pixel_scale: float = 1.0) -> Array:
    """Flattened images ``(B, T * n_inputs)`` -> sequences ``(B, T, n_inputs)``, times ``gain``."""
    if x.ndim != 2 or x.shape[1] % n_inputs:
        raise ValueError(f"cannot split images of shape {x.shape} into rows of {n_inputs} pixels")
    return x.reshape(x.shape[0], -1, n_inputs) * (gain * pixel_scale)


def sequences(routing: Array, x: Array, n_inputs: int, gain: float, pixel_scale: float) -> Array:
    """Flattened images ``(B, T * n_inputs)`` -> the grid's drives ``(B, T, N)`` (wiring applied)."""
    seq = image_rows(x, n_inputs, gain, pixel_scale)
    return jax.vmap(encode, in_axes=(None, 0))(routing, seq)


def eval_sums(params: GridParams, seqs: Array, y: Array, loss_mode: str, dt: float = DT) -> dict:
    """Summed loss and number correct over a batch ``seqs: (B, T, N)`` (the exact forward)."""

    def one(xs, label):
        r = readout(forward(params, xs, dt))
        return loss_from_readout(r, label, loss_mode), jnp.argmax(r.sum(0))

    losses, pred = jax.vmap(one)(seqs, y)
    return {"loss": losses.sum(), "acc": jnp.sum(pred == y)}


def grid_step(opt: optax.GradientTransformation, state: TrainState, seqs: Array, y: Array, *,
              rule: str, loss_mode: str, dt: float = DT, window: int | None = None,
              update_every_step: bool = False, mesh: Mesh | None = None) -> tuple[TrainState, dict]:
    """One training step of ``rule`` on the drives ``seqs: (B, T, N)``, labels ``y: (B,)``.

    One step of ``opt`` on the batch-mean gradient, or, with ``update_every_step``, ``T`` steps
    inside the sequence (:func:`~gridlib.filtergrid.online.online_snap1_batch_learn`). Returns
    the new state and the batch-mean ``loss`` and ``acc``. :func:`make_task`'s ``train_step``
    and the tuning search (:mod:`~gridlib.filtergrid.tuning`, ``vmap``-ed over candidates) share it.
    With ``mesh``, the batch-mean gradient is computed with the batch split over its devices
    (:func:`gridlib.devices.split_batch`; ``B`` a multiple of the mesh's size), equal up to the
    order of the sum over examples.
    """
    if update_every_step:  # T optimiser steps inside the sequence
        out = online_snap1_batch_learn(opt, state.params, state.opt_state, seqs, y, dt)
        params, opt_state, losses, logits = out.params, out.opt_state, out.losses, out.logits
    else:  # one optimiser step on the batch-mean gradient
        if mesh is None:
            losses, logits, grads = batch_grads(rule, state.params, seqs, y, loss_mode, dt, window)
        else:  # the batch split over the mesh's devices

            def share(params, seqs, y):  # a device's mean gradient over the devices: they add up
                losses, logits, grads = batch_grads(rule, params, seqs, y, loss_mode, dt, window)
                return jax.tree.map(lambda g: g / mesh.size, grads), (losses, logits)

            grads, (losses, logits) = devices.split_batch(share, mesh)(state.params, seqs, y)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
    acc = jnp.mean(jnp.argmax(logits, -1) == y)
    return TrainState(params, opt_state, state.routing), {"loss": losses.mean(), "acc": acc}


def make_task(
    *, rule: str = "snap1", optimizer: str = "adam", lr: float = 3e-3, eta0: float = 1e-2,
    n_rows: int = 28, n_cols: int = 10, n_inputs: int = 28, gain: float = 10.0,
    pixel_scale: float = MNIST_PIXEL_SCALE, loss_mode: str = "sum", tau_min: float = 1e-3,
    tau_max: float = 20e-3, dt: float = DT, window: int | None = None,
    update_every_step: bool = False, mesh: Mesh | None = None,
):
    """The :class:`gridlib.experiment.Task` for sequence classification with the grid.

    ``init`` draws parameters (:func:`~gridlib.filtergrid.model.init_params`) and the wiring
    (:func:`~gridlib.filtergrid.model.make_routing`) from one key; ``train_step`` takes the batch
    mean of the chosen rule's per-example gradient and applies the optimiser once; metrics are
    the batch-mean loss and accuracy. ``window``: truncated BPTT's ``K`` (``rule="tbptt"`` only).
    ``update_every_step`` (``rule="online_snap1"``, ``loss_mode="per_t"`` only): the optimiser
    steps at every time step instead, inside the sequence
    (:func:`~gridlib.filtergrid.online.online_snap1_batch_learn`); the metrics are then those
    computed on the fly, with the parameters changing along the sequence. ``mesh``: split each
    minibatch over its devices (:func:`grid_step`), e.g. one CPU device per core
    (:func:`gridlib.devices.cpu_mesh`); not with ``update_every_step``.
    """
    from gridlib.experiment import Task

    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    check_loss_mode(loss_mode)
    if update_every_step and (rule, loss_mode) != ("online_snap1", "per_t"):
        raise ValueError(f"update_every_step needs rule='online_snap1' and loss_mode='per_t' "
                         f"(got rule={rule!r}, loss_mode={loss_mode!r})")
    if update_every_step and mesh is not None:
        raise ValueError("update_every_step updates inside each sequence: it cannot split a "
                         "minibatch over devices (leave mesh unset)")
    rule_batch_grads(rule, window)  # refuses a missing or stray window now, not inside jit
    opt = make_optimizer(optimizer, lr, eta0)

    def init(key):
        params = init_params(key, n_rows, n_cols, tau_min=tau_min, tau_max=tau_max)
        state = TrainState(params, opt.init(params), make_routing(key, n_inputs, n_rows))
        # on a mesh, start copied to each device, where every step leaves the state
        return devices.replicate(state, mesh)

    def train_step(state, x, y, key):
        del key  # the rule and the optimiser are deterministic
        seqs = sequences(state.routing, x, n_inputs, gain, pixel_scale)
        return grid_step(opt, state, seqs, y, rule=rule, loss_mode=loss_mode, dt=dt,
                         window=window, update_every_step=update_every_step, mesh=mesh)

    def eval_step(state, x, y):
        seqs = sequences(state.routing, x, n_inputs, gain, pixel_scale)
        return eval_sums(state.params, seqs, y, loss_mode, dt)

    return Task(init=init, train_step=train_step, eval_step=eval_step)


def run_name(rule: str, optimizer: str, batch_size: int, epochs: int, n_train: int,
             seed: int, window: int | None = None, update_every_step: bool = False,
             n_val: int = 0, patience: int = 0, folder: str = "") -> str:
    """Results name, e.g. ``filtergrid/snap1_adam_b32_e10_n60000_seed0`` (``tbptt4_...`` for
    truncated BPTT with a window of 4, ``online_snap1_everystep_...`` for online SnAP-1 with
    an update at every time step; ``..._n50000v10000_...`` with ``n_val`` validation images,
    ``..._max40p5_...`` for at most 40 epochs with a patience of 5, and ``folder`` between,
    e.g. ``filtergrid/tuned/...``)."""
    label = f"{rule}{window}" if rule == "tbptt" else rule
    label += "_everystep" if update_every_step else ""
    budget = f"max{epochs}p{patience}" if patience else f"e{epochs}"
    data = f"n{n_train}" + (f"v{n_val}" if n_val else "")
    where = f"filtergrid/{folder}/" if folder else "filtergrid/"
    return f"{where}{label}_{optimizer}_b{batch_size}_{budget}_{data}_seed{seed}"


# ----------------------------------------------------------------------------------------------
# the robustness study: SnAP-1 with imperfect measurements, every condition trained at once


class Sweep(NamedTuple):
    """One robustness sweep: a knob, its values, and the imperfection each value stands for.

    ``knobs(value)`` returns keyword arguments of
    :func:`~gridlib.filtergrid.perturb.perturbation`, plus ``weight_step`` for
    :func:`~gridlib.filtergrid.perturb.quantise_weights` (0: exact weights).
    """

    label: str
    param: str
    values: tuple[float, ...]
    knobs: Any


_NOISE = (0.0, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
_GAIN = (0.0, 0.02, 0.05, 0.1, 0.2)
WEIGHT_RANGE = 2.0
"""Quantised weights span ``[-WEIGHT_RANGE, WEIGHT_RANGE]``: ``b`` bits is a step of ``2 R / 2**b``."""

#: The original robustness study's sweeps by name, each a perturbation and its values.
SWEEPS: dict[str, Sweep] = {
    # the original's eight sweeps, with its values (experiments/measurement_robustness/sweeps.py)
    "1a_leak": Sweep("capacitor leak", "delta_leak", (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2),
                     lambda d: {"leak": d}),
    "1b_gain_sym": Sweep("message gain, symmetric", "delta", _GAIN,
                         lambda d: {"gain_pos": 1 - d, "gain_neg": 1 - d}),
    "1b_gain_asym_A": Sweep("message gain, + shrinks, − grows", "delta", _GAIN,
                            lambda d: {"gain_pos": 1 - d, "gain_neg": 1 + d}),
    "1b_gain_asym_B": Sweep("message gain, + grows, − shrinks", "delta", _GAIN,
                            lambda d: {"gain_pos": 1 + d, "gain_neg": 1 - d}),
    "1c_subtraction": Sweep("subtraction mismatch", "delta_sub",
                            (-0.1, -0.05, -0.02, 0.0, 0.02, 0.05, 0.1),
                            lambda d: {"subtraction": d}),
    "2a_eps_noise": Sweep("noise on the cross-traces", "sigma_rel", _NOISE,
                          lambda v: {"trace_noise": v}),
    "2b_msg_noise": Sweep("noise on the messages", "sigma_rel", _NOISE,
                          lambda v: {"message_noise": v}),
    "2c_combined_noise": Sweep("both kinds of noise", "sigma_rel", _NOISE,
                               lambda v: {"trace_noise": v, "message_noise": v}),
    # the axis the original did not test: weights stored at b bits (0 bits: exact)
    "3_weight_bits": Sweep("weights stored at b bits", "bits", (0, 8, 6, 5, 4, 3, 2),
                           lambda b: {"weight_step": 2 * WEIGHT_RANGE / 2**b if b else 0.0}),
}


_IDENTITY = {"leak": 0.0, "gain_pos": 1.0, "gain_neg": 1.0, "subtraction": 0.0, "trace_noise": 0.0,
             "message_noise": 0.0, "weight_step": 0.0}


def robustness_conditions(sweeps) -> tuple[list[dict], dict[str, list[int]]]:
    """The distinct conditions of ``sweeps`` (names in :data:`SWEEPS`, or ``{name: values}``),
    and for each sweep the index of every value's condition. The unperturbed condition, shared
    by every sweep, is trained once."""
    if not isinstance(sweeps, dict):
        sweeps = {name: None for name in sweeps}
    conditions: list[dict] = []
    index: dict[str, list[int]] = {}
    for name, values in sweeps.items():
        if name not in SWEEPS:
            raise ValueError(f"unknown sweep {name!r}; the sweeps are {list(SWEEPS)}")
        sweep = SWEEPS[name]
        index[name] = []
        for v in values if values is not None else sweep.values:
            knobs = {"weight_step": 0.0, **sweep.knobs(v)}
            cond = {k: float(x) for k, x in sorted(knobs.items())}
            cond = {k: x for k, x in cond.items() if x != _IDENTITY.get(k)}  # canonical form
            if cond not in conditions:
                conditions.append(cond)
            index[name].append(conditions.index(cond))
    return conditions, index


def make_robustness_task(conditions: list[dict], *, lr: float = 3e-3, gain: float = 10.0,
                         pixel_scale: float = MNIST_PIXEL_SCALE, tau_min: float = 1e-3,
                         tau_max: float = 20e-3, dt: float = DT):
    """A :class:`gridlib.experiment.Task` that trains one 28x10 grid per condition, all at once.

    Every condition starts from the same parameters and sees the same batches (as in the
    original study, so that a sweep differs only in its imperfection). The state carries a
    leading condition axis ``C``; ``train_step`` is :func:`~gridlib.filtergrid.perturb.perturbed_snap1_batch_grads` at the
    stored (possibly quantised) weights, then Adam on the full-precision weights, ``vmap``-ed
    over the conditions, each with its own noise stream. Evaluation uses the exact forward pass
    at the stored weights. Metrics have shape ``(C,)``.
    """
    from gridlib.experiment import Task
    from gridlib.filtergrid.perturb import perturbation, perturbed_snap1_batch_grads, quantise_weights

    n_rows, n_inputs = 28, 28
    opt = make_optimizer("adam", lr)
    steps = jnp.asarray([c.get("weight_step", 0.0) for c in conditions], jnp.float32)
    # Conditions are stacked by noise sources: a source that is absent draws nothing (the
    # noise is most of the rule's cost), and absence is pytree structure, fixed per stack.
    noise_of = lambda c: tuple(k in c for k in ("trace_noise", "message_noise"))  # noqa: E731
    groups = []
    for sources in dict.fromkeys(noise_of(c) for c in conditions):
        idx = np.array([i for i, c in enumerate(conditions) if noise_of(c) == sources])
        perts = [perturbation(**{k: v for k, v in conditions[i].items() if k != "weight_step"})
                 for i in idx]
        groups.append((idx, jax.tree.map(lambda *z: jnp.stack(z), *perts)))
    back = np.argsort(np.concatenate([idx for idx, _ in groups]))  # stacks -> condition order

    def init(key):
        params = init_params(key, n_rows, 10, tau_min=tau_min, tau_max=tau_max)
        one = TrainState(params, opt.init(params), make_routing(key, n_inputs, n_rows))
        return jax.tree.map(lambda z: jnp.broadcast_to(z, (len(conditions), *jnp.shape(z))), one)

    def train_one(state, pert, step, cond, seqs, y, key):
        stored = quantise_weights(state.params, step)
        losses, logits, grads = perturbed_snap1_batch_grads(stored, seqs, y, pert,
                                                            jax.random.fold_in(key, cond), "sum", dt)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return TrainState(params, opt_state, state.routing), {"loss": losses.mean(), "acc": acc}

    def train_step(state, x, y, key):
        seqs = sequences(state.routing[0], x, n_inputs, gain, pixel_scale)
        outs = [jax.vmap(train_one, in_axes=(0, 0, 0, 0, None, None, None))(
                    jax.tree.map(lambda z, i=idx: z[i], state), perts, steps[idx], idx, seqs, y, key)
                for idx, perts in groups]
        return jax.tree.map(lambda *z: jnp.concatenate(z)[back], *outs)

    def eval_step(state, x, y):
        seqs = sequences(state.routing[0], x, n_inputs, gain, pixel_scale)
        return jax.vmap(lambda p, step: eval_sums(quantise_weights(p, step), seqs, y, "sum", dt))(
            state.params, steps)

    return Task(init=init, train_step=train_step, eval_step=eval_step)


def robustness_run_name(epochs: int, n_train: int, seed: int, sweeps: str = "all") -> str:
    """Results name, e.g. ``filtergrid/robustness/all_e5_n6000_seed0``."""
    return f"filtergrid/robustness/{sweeps}_e{epochs}_n{n_train}_seed{seed}"


#: Domains of the grid's physical settings, shared with the original code's runs (anchor.py):
#: the input gain multiplies pixels in [0, 1], and time constants are in seconds (DT = 1 ms).
GAIN = flags.real(0.0, 1000.0, open_low=True, meaning="the input gain")
TAU = flags.real(0.0, 1.0, open_low=True, meaning="a time constant in seconds")
#: Truncated BPTT's window ``K`` (0: not truncated BPTT).
WINDOW = flags.integer(1, 1000, special=(0,), meaning="0: none; tbptt's K")
#: Minibatches per jitted call (0: :func:`gridlib.experiment.fit` chooses).
STEPS_PER_CALL = flags.integer(1, 100_000, special=(0,), meaning="0: automatic")
#: What ``--validation true`` holds out, as a run's config records it.
VALIDATION_IMAGES = ("the first n_val of the last 10000 training images (data.MNIST_VALIDATION); "
                     "--patience decides on them, nothing decides on the test images")


def check_taus(args: dict[str, Any]) -> None:
    """Refuse ``--tau-min`` above ``--tau-max`` before any work."""
    if args["tau_min"] > args["tau_max"]:
        raise ValueError(f"--tau-min {args['tau_min']:g} exceeds --tau-max {args['tau_max']:g}")


def _check_rule(args: dict[str, Any]) -> None:
    """The flags that must agree in every filter-grid run: the taus, the window, per-step
    updates."""
    check_taus(args)
    rule, window = args["rule"], args["window"]
    if (rule == "tbptt") != (window > 0):
        raise ValueError(f"--window K >= 1 goes with --rule tbptt and only with it "
                         f"(got --rule {rule} --window {window})")
    if args["update_every_step"] and rule != "online_snap1":
        raise ValueError(f"--update-every-step true goes with --rule online_snap1 only "
                         f"(got --rule {rule})")


#: Training images left beside MNIST's validation split (:data:`gridlib.data.MNIST_VALIDATION`).
N_TRAIN_WITH_VALIDATION = 60_000 - MNIST_VALIDATION


def _check_mnist(args: dict[str, Any]) -> None:
    """filtergrid-mnist's flags that must agree: those of :func:`_check_rule`, validation with
    patience and the training images, and the settings a tuning search chose."""
    _check_rule(args)
    if args.get("patience") and not args.get("validation"):
        raise ValueError("--patience stops on validation accuracy: it needs --validation true")
    if args.get("validation") and args["n_train"] > N_TRAIN_WITH_VALIDATION:
        raise ValueError(f"--validation true holds out 10000 of the 60000 training images: "
                         f"--n-train must be at most {N_TRAIN_WITH_VALIDATION}")
    if args.get("tuned_from"):
        _tuned(args)


def _tuned(args: dict[str, Any]) -> tuple[dict[str, float], dict]:
    """The setting and protocol of ``--tuned-from``, checked against this run's flags."""
    from gridlib.filtergrid.tuning import tuned_settings

    expect = {"rule": args["rule"], "optimizer": args["optimizer"],
              "batch_size": args["batch_size"], "tau_min": args["tau_min"],
              "tau_max": args["tau_max"], "window": args["window"] or None,
              "update_every_step": bool(args["update_every_step"])}
    return tuned_settings(args["tuned_from"], expect)


def _floats(text: str) -> list[float]:
    """``"1e-3,3e-3"`` -> ``[0.001, 0.003]`` (``""`` -> ``[]``)."""
    return [float(v) for v in text.split(",") if v.strip()]


def _tune_memory(args: dict[str, Any]) -> float:
    """filtergrid-tune's peak bytes: per candidate and sequence of the batch, the state its
    rule carries forward (:func:`~gridlib.filtergrid.temporal.state_floats_per_parameter`) and
    the trajectory, each a few times over; then the data and the runtime."""
    from gridlib.cli import DATA_BYTES, RUNTIME_BYTES
    from gridlib.filtergrid.temporal import state_floats_per_parameter

    rule = args["rule"]  # an optimiser's state is a few copies of 1120 parameters: negligible
    n_steps = len(_floats(args["lrs"])) or 6  # the largest preset grid
    n_cands = n_steps * len(_floats(args["gains"]))
    per_param = state_floats_per_parameter(rule, 28, 10, window=args["window"] or None, t_len=28)
    per_sequence = 4 * 280 * per_param + 28 * 280 * 8  # traces, trajectory and its partners
    return 4.0 * 4 * n_cands * args["batch_size"] * per_sequence + DATA_BYTES + RUNTIME_BYTES


def _register() -> None:
    from gridlib.cli import experiment

    @experiment("filtergrid-mnist", check=_check_mnist, flags={
        "rule": flags.choice(RULES),
        "optimizer": flags.choice(OPTIMIZERS),
        "n_train": flags.integer(1, 60_000),
        "n_test": flags.integer(1, 10_000),
        "gain": GAIN, "tau_min": TAU, "tau_max": TAU,
        "window": WINDOW,
        "steps_per_call": STEPS_PER_CALL,
        "validation": flags.BOOL,
        "n_val": flags.integer(1, MNIST_VALIDATION),
        "patience": flags.integer(1, 1000, special=(0,), meaning="0: train all --epochs"),
        "tuned_from": flags.Domain(str, pattern=flags.RESULT_NAME.pattern, special=("",),
                                   meaning="'' for none; a filtergrid-tune result"),
    })
    def filtergrid_mnist(
        rule: str = "snap1", optimizer: str = "adam", lr: float = 3e-3, eta0: float = 1e-2,
        epochs: int = 10, batch_size: int = 32, n_train: int = 60000, n_test: int = 10000,
        seed: int = 0, gain: float = 10.0, tau_min: float = 1e-3, tau_max: float = 20e-3,
        window: int = 0, steps_per_call: int = 0, progress: bool = True, name: str = "",
        update_every_step: bool = False, validation: bool = False, n_val: int = 10000,
        patience: int = 0, tuned_from: str = "",
    ) -> dict:
        """Row-wise MNIST on the 28x10 analog-filter grid, by any temporal rule (Adam / SGD).

        Evaluates on the first ``n_test`` test images (all 10k by default) after every epoch,
        checkpoints to runs/<name> (an interrupted run resumes), and writes
        results/<name>.json. Defaults are the original Adam run; the batch-1 run is
        ``--optimizer sgd --batch-size 1 --epochs 3``. With ``--validation true`` the
        validation images are evaluated every epoch too; with ``--patience P`` the run ends
        once validation accuracy has not improved for P epochs (at most ``--epochs``), and
        its metrics add the best validation epoch and the test accuracy there.

        Args:
            rule: snap1, snap0, snap2, bptt, rtrl, tbptt (with --window) or online_snap1
                (trained on the per-step loss, the one it can compute online).
            window: truncated BPTT's window K (rule tbptt only).
            update_every_step: online_snap1 only: the optimiser steps at every time step,
                inside the sequence (its gradient scaled by 1/T), not once per sequence.
            validation: hold out MNIST's validation split (the last 10000 training images,
                ``data.MNIST_VALIDATION``; then --n-train is at most 50000) and evaluate the
                first ``n_val`` of them after every epoch.
            patience: with --validation true: stop once validation accuracy has not improved
                for this many epochs; --epochs is then the cap (0: train all --epochs).
            tuned_from: a filtergrid-tune result: train at the setting it chose on validation
                (it replaces --lr or --eta0, and --gain), and record its protocol.
        """
        from gridlib import data, experiment, results
        from gridlib.filtergrid import tuning

        args = dict(rule=rule, optimizer=optimizer, window=window, batch_size=batch_size,
                    update_every_step=update_every_step, tau_min=tau_min, tau_max=tau_max,
                    validation=validation, patience=patience, n_train=n_train,
                    tuned_from=tuned_from)
        _check_mnist(args)  # also when called from Python
        tuned = {}
        if tuned_from:
            chosen, protocol = _tuned(args)
            lr, eta0 = chosen.get("lr", lr), chosen.get("eta0", eta0)
            gain, tuned = chosen["gain"], {"tuning": protocol}
        loss = loss_mode_for(rule)
        held_out = MNIST_VALIDATION if validation else 0
        splits = data.load_mnist(n_train=n_train, n_test=n_test, validation=held_out,
                                 n_val=n_val if validation else None)
        budget = {"max_epochs": epochs, "patience": patience} if patience else {"epochs": epochs}
        config = dict(rule=rule, optimizer=optimizer, lr=lr, eta0=eta0, **budget,
                      batch_size=batch_size, n_train=n_train, n_test=n_test, gain=gain,
                      tau_min=tau_min, tau_max=tau_max, grid=[28, 10], dt=DT, loss=loss,
                      pixel_scale=MNIST_PIXEL_SCALE, **({"window": window} if window else {}),
                      **({"update_every_step": True} if update_every_step else {}),
                      **({"validation": {"images": VALIDATION_IMAGES, "n_val": n_val}}
                         if validation else {}),
                      **tuned)
        task = make_task(rule=rule, optimizer=optimizer, lr=lr, eta0=eta0, gain=gain,
                         tau_min=tau_min, tau_max=tau_max, loss_mode=loss, window=window or None,
                         update_every_step=update_every_step)
        name = name or run_name(rule, optimizer, batch_size, epochs, n_train, seed, window or None,
                                update_every_step, n_val if validation else 0, patience,
                                "tuned" if tuned_from else "")
        until = (lambda h: tuning.patience_reached(h, patience)) if patience else None
        run = experiment.fit(task, splits, epochs=epochs, batch_size=batch_size, seed=seed,
                             run_dir=experiment.run_dir_for(name), name=name,
                             steps_per_call=steps_per_call or None,
                             eval_on=("val", "test") if validation else ("test",),
                             progress=progress, config=config, until=until)
        final = {k: v for k, v in run.last.items() if k != "epoch"}
        final["total_train_time_s"] = float(np.sum(run.history["epoch_time_s"]))
        if patience:
            best = tuning.best_epoch(run.history)
            final.update({"epochs_run": len(run.history["epoch"]), "best_epoch": best,
                          "best/val/acc": run.history["val/acc"][best - 1],
                          "best/test/acc": run.history["test/acc"][best - 1]})
        results.save(name, config=config, metrics=final, history=run.history, seed=seed,
                     extra={"final_params": run.state.params._asdict()})
        print(f"{name}: test acc {final.get('test/acc'):.4f}")
        return final


    @experiment("filtergrid-tune", check=_check_rule, memory=_tune_memory, flags={
        "rule": flags.choice(RULES),
        "optimizer": flags.choice(OPTIMIZERS),
        "lrs": flags.real(0.0, 10.0, open_low=True, many=True, unique=True, special=("",),
                          meaning="'': the preset grid of the optimiser and loss"),
        "gains": flags.real(0.0, 1000.0, open_low=True, many=True, unique=True,
                            meaning="input gains"),
        "n_train": flags.integer(1, N_TRAIN_WITH_VALIDATION),
        "n_val": flags.integer(1, MNIST_VALIDATION),
        "tau_min": TAU, "tau_max": TAU, "window": WINDOW, "steps_per_call": STEPS_PER_CALL,
    })
    def filtergrid_tune(
        rule: str = "snap1", optimizer: str = "adam", lrs: str = "", gains: str = "10",
        epochs: int = 3, batch_size: int = 32, n_train: int = 50000, n_val: int = 10000,
        seed: int = 0, tau_min: float = 1e-3, tau_max: float = 20e-3, window: int = 0,
        update_every_step: bool = False, steps_per_call: int = 0, progress: bool = True,
        name: str = "",
    ) -> dict:
        """Choose one rule's step size (and input gain) on validation data: every candidate of
        the grid trained at once (vmap), the test set never evaluated.

        Trains on the first ``n_train`` of the 50000 training images beside MNIST's validation
        split (the last 10000, ``data.MNIST_VALIDATION``), evaluates the first ``n_val``
        validation images after every epoch, and picks the candidate with the best
        validation accuracy after the last epoch (``filtergrid.tuning``). Checkpoints to
        runs/<name>; writes results/filtergrid/tune/<...>.json, whose config is the protocol
        and whose metrics are every candidate's validation accuracy and the choice.
        ``filtergrid-mnist --tuned-from <name>`` then trains at the chosen setting.

        Args:
            rule: any temporal rule, as filtergrid-mnist's --rule.
            optimizer: adam (--lrs are learning rates) or sgd (--lrs are eta0, the per-group
                step size; batch 1 is --batch-size 1).
            lrs: the step sizes searched, comma-separated (default: ``STEP_GRIDS`` of the
                optimizer and the rule's loss).
            gains: the input gains searched, comma-separated (crossed with --lrs).
            epochs: the search's budget, in passes over the training images.
        """
        from gridlib import data, experiment, results
        from gridlib.filtergrid import tuning

        _check_rule({"rule": rule, "window": window, "update_every_step": update_every_step,
                     "tau_min": tau_min, "tau_max": tau_max})
        loss = loss_mode_for(rule)
        steps = _floats(lrs) or tuning.STEP_GRIDS[optimizer, loss]
        cands = tuning.candidates(optimizer, steps, _floats(gains))
        splits = data.load_mnist(n_train=n_train, n_test=1, validation=MNIST_VALIDATION,
                                 n_val=n_val)
        step_name = tuning.STEP_NAME[optimizer]
        config = dict(rule=rule, optimizer=optimizer, loss=loss, epochs=epochs,
                      batch_size=batch_size, n_train=n_train, n_val=n_val,
                      split=tuning.SPLIT, search={step_name: list(steps), "gain": _floats(gains)},
                      selection=tuning.SELECTION, tau_min=tau_min, tau_max=tau_max,
                      window=window or None, update_every_step=update_every_step,
                      grid=[28, 10], dt=DT, pixel_scale=MNIST_PIXEL_SCALE)
        name = name or run_name(rule, optimizer, batch_size, epochs, n_train, seed, window or None,
                                update_every_step, n_val, folder="tune")
        found = tuning.search(splits, cands, rule=rule, optimizer=optimizer, epochs=epochs,
                              batch_size=batch_size, seed=seed, window=window or None,
                              update_every_step=update_every_step,
                              run_dir=experiment.run_dir_for(name), name=name, progress=progress,
                              steps_per_call=steps_per_call or None, config=config,
                              tau_min=tau_min, tau_max=tau_max)
        best = found.candidates[found.chosen]
        metrics = {"val/acc": found.val_acc, "val/loss": found.val_loss,
                   "diverged": found.diverged, "chosen": best, "chosen_index": found.chosen,
                   "chosen_val_acc": found.val_acc[found.chosen],
                   "at_edge": {k: tuning.at_edge(found.candidates, found.chosen, k) for k in best},
                   "total_train_time_s": float(np.sum(found.run.history["epoch_time_s"]))}
        results.save(name, config=config, metrics=metrics, history=found.run.history, seed=seed)
        print(f"{name}: chose {best} at validation acc {found.val_acc[found.chosen]:.4f} "
              f"({len(cands)} candidates, {sum(found.diverged)} diverged)")
        return metrics

    @experiment("filtergrid-robustness", flags={
        "sweeps": flags.choice(lambda: ("all", *SWEEPS), many=True),
        "n_train": flags.integer(32, 60_000),
        "n_test": flags.integer(1, 10_000),
    })
    def filtergrid_robustness(
        sweeps: str = "all", epochs: int = 5, n_train: int = 6000, n_test: int = 10000,
        seed: int = 0, lr: float = 3e-3, batch_size: int = 32, progress: bool = True,
        name: str = "",
    ) -> dict:
        """SnAP-1 with imperfect measurements: the original's eight robustness sweeps and weight
        quantisation, every condition trained at once (vmap) on row-wise MNIST.

        Args:
            sweeps: ``all``, or sweep names separated by commas (see ``SWEEPS``).
            epochs: passes over the training images (the original study: 5).
            n_train: training images (the original study: 6000).
            n_test: test images evaluated after every epoch (all 10k by default).
            seed: seeds the initial parameters (shared by all conditions), the batch order and
                the noise.
        """
        from gridlib import data, experiment, results

        names = list(SWEEPS) if sweeps == "all" else [s.strip() for s in sweeps.split(",")]
        conditions, index = robustness_conditions(names)
        splits = data.load_mnist(n_train=n_train, n_test=n_test)
        config = dict(sweeps=names, conditions=conditions, sweep_index=index,
                      sweep_values={k: list(SWEEPS[k].values) for k in names}, rule="snap1",
                      optimizer="adam", lr=lr, epochs=epochs, batch_size=batch_size,
                      n_train=n_train, n_test=n_test, gain=10.0, tau_min=1e-3, tau_max=20e-3,
                      grid=[28, 10], dt=DT, loss="sum", pixel_scale=MNIST_PIXEL_SCALE,
                      weight_range=WEIGHT_RANGE)
        task = make_robustness_task(conditions, lr=lr)
        name = name or robustness_run_name(epochs, n_train, seed,
                                           "all" if sweeps == "all" else "-".join(names))
        run = experiment.fit(task, splits, epochs=epochs, batch_size=batch_size, seed=seed,
                             run_dir=experiment.run_dir_for(name), name=name, eval_on=("test",),
                             progress=progress, config=config)
        final = {k: v for k, v in run.last.items() if k != "epoch"}
        final["total_train_time_s"] = float(np.sum(run.history["epoch_time_s"]))
        results.save(name, config=config, metrics=final, history=run.history, seed=seed)
        acc = np.asarray(final["test/acc"])
        print(f"{name}: {len(conditions)} conditions, test acc {acc.min():.4f} .. {acc.max():.4f}")
        return final

    @experiment("filtergrid-agreement", flags={"n_draws": flags.integer(1, 10_000)})
    def filtergrid_agreement(n_draws: int = 10, seed: int = 0) -> dict:
        """SnAP-1 and exact RTRL vs BPTT on a 4x4 grid in float64 at T = 1, 5, 20, 100."""
        from gridlib import results
        from gridlib.filtergrid.summary import gradient_agreement

        jax.config.update("jax_enable_x64", True)
        table = gradient_agreement(n_draws=n_draws, seed=seed)
        results.save("filtergrid/gradient_agreement", config={"n_draws": n_draws, "grid": [4, 4],
                     "tau_ms": [5, 200], "input": "0.5 N(0,1)", "loss": "sum"},
                     metrics={str(k): v for k, v in table.items()}, seed=seed)
        return table

    @experiment("filtergrid-alignment", flags={
        "n_digits": flags.integer(1, 10_000, special=(-1,), meaning="-1: the scale's preset"),
        "n_train": flags.integer(32, 60_000, special=(-1,), meaning="-1: the scale's preset"),
        "chunk": flags.integer(1, 10_000, special=(0,), meaning="0: automatic"),
    })
    def filtergrid_alignment(n_digits: int = -1, n_train: int = -1, seed: int = 0,
                             chunk: int = 0) -> dict:
        """Every temporal rule's gradient against the exact one (float64 BPTT) on the 28x10
        row-wise MNIST grid: against sequence length, across the grid, along a training run.

        The grid is trained with SnAP-1 and Adam (lr 3e-3, batch 32) and snapshotted; at each
        snapshot every rule's batch-mean gradient on the first ``n_digits`` test digits is
        compared with BPTT's (cosine and relative error, overall, per group, per cell and row).
        Full scale: 64 digits, T in 1..112, snapshots at 0, 100, 300, 1000 steps and the end of
        one epoch; CI scale: 4 digits, T = 28, snapshots at 0 and 5 steps on 320 images.

        Args:
            n_digits: test digits in the fixed batch (default: the scale's preset).
            n_train: training images of the snapshot run (default: 60000; CI scale 320).
            seed: seeds the training run (initial parameters and batch order).
            chunk: digits per call (default: 16, or the largest divisor of n_digits below).
        """
        import math
        import time

        from gridlib import data, results, scale
        from gridlib.filtergrid.alignment import GROUPS, LENGTHS, RULES, alignment_study

        jax.config.update("jax_enable_x64", True)
        n_digits = n_digits if n_digits > 0 else scale.pick(ci=4, full=64)
        n_train = n_train if n_train > 0 else scale.pick(ci=320, full=60000)
        epoch = n_train // 32
        ts = scale.pick(ci=(28,), full=LENGTHS)
        steps = scale.pick(ci=sorted({0, min(5, epoch)}),  # full: up to the end of one epoch
                           full=sorted({s for s in (0, 100, 300, 1000) if s < epoch} | {epoch}))
        length_at = sorted({steps[0], steps[-1]})
        splits = data.load_mnist(n_train=n_train, n_test=n_digits)
        start = time.perf_counter()
        study = alignment_study(splits, n_digits=n_digits, ts=ts, steps=steps, length_at=length_at,
                                seed=seed, chunk=chunk or math.gcd(n_digits, 16))
        config = {"n_digits": n_digits, "digits": "first n_digits test images", "ts": list(ts),
                  "steps": steps, "length_at": length_at, "rules": {k: list(v) for k, v in RULES.items()},
                  "groups": list(GROUPS), "reference": "bptt float64 (per_t loss for online_snap1)",
                  "train_rule": "snap1", "optimizer": "adam", "lr": 3e-3, "batch_size": 32,
                  "n_train": n_train, "grid": [28, 10], "gain": 10.0, "tau_min": 1e-3,
                  "tau_max": 20e-3, "dt": DT, "loss": "sum", "pixel_scale": MNIST_PIXEL_SCALE}
        metrics = {**results.to_jsonable(study._asdict()), "time_s": time.perf_counter() - start}
        results.save("filtergrid/alignment", config=config, metrics=metrics, seed=seed)
        last = metrics["training"][str(steps[-1])]["rules"]
        print("cosine with the exact gradient at step " + str(steps[-1]) + ": "
              + ", ".join(f"{r} {a['cosine']:.3f}" for r, a in last.items()))
        return metrics


_register()
