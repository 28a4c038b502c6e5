"""Training the analog-filter grid: gradient rules, optimisers, the task for ``fit``, the CLI run.

``python -m gridlib filtergrid-mnist --rule snap1 --optimizer adam`` reproduces the row-wise
MNIST runs: image row ``t`` is time step ``t`` (``T = 28``), grid row ``i`` receives pixel
column ``i`` scaled by ``gain``, one bottom-row cell per class, ``logits = sum_t r(t)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from gridlib.filtergrid.bptt import bptt_grads
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
from gridlib.filtergrid.rtrl import rtrl_grads
from gridlib.filtergrid.snap1 import snap1_batch_grads

RULES = ("snap1", "bptt", "rtrl")
OPTIMIZERS = ("adam", "sgd")

# MNIST pixels come as k/256; the original scripts used k/255 (X / 255 * gain).
MNIST_PIXEL_SCALE = 256.0 / 255.0


def batch_grads(rule: str, params: GridParams, xs: Array, labels: Array, mode: str = "sum",
                dt: float = DT) -> tuple[Array, Array, GridParams]:
    """``(losses (B,), logits (B, M), batch-mean gradient)`` for ``xs: (B, T, N)`` by ``rule``."""
    if rule == "snap1":
        return snap1_batch_grads(params, xs, labels, mode, dt)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    fn = bptt_grads if rule == "bptt" else rtrl_grads
    losses, logits, grads = jax.vmap(fn, in_axes=(None, 0, 0, None, None))(
        params, xs, labels, mode, dt)
    return losses, logits, jax.tree.map(lambda g: g.mean(0), grads)


def per_group_sgd(eta0: float) -> optax.GradientTransformation:
    """Stateless SGD with one step size per parameter group.

    ``eta_w = eta0`` (``w_left``, ``w_top``), ``eta_b = eta0 / 20``, ``eta_logtau = 4 eta0``.
    """
    if eta0 <= 0:
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


def make_task(
    *, rule: str = "snap1", optimizer: str = "adam", lr: float = 3e-3, eta0: float = 1e-2,
    n_rows: int = 28, n_cols: int = 10, n_inputs: int = 28, gain: float = 10.0,
    pixel_scale: float = MNIST_PIXEL_SCALE, loss_mode: str = "sum", tau_min: float = 1e-3,
    tau_max: float = 20e-3, dt: float = DT,
):
    """The :class:`gridlib.experiment.Task` for sequence classification with the grid.

    ``init`` draws parameters (:func:`~gridlib.filtergrid.model.init_params`) and the wiring
    (:func:`~gridlib.filtergrid.model.make_routing`) from one key; ``train_step`` takes the batch
    mean of the chosen rule's per-example gradient and applies the optimiser once; metrics are
    the batch-mean loss and accuracy.
    """
    from gridlib.experiment import Task

    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    check_loss_mode(loss_mode)
    opt = make_optimizer(optimizer, lr, eta0)

    def init(key):
        params = init_params(key, n_rows, n_cols, tau_min=tau_min, tau_max=tau_max)
        return TrainState(params, opt.init(params), make_routing(key, n_inputs, n_rows))

    def sequences(state, x):
        seq = image_rows(x, n_inputs, gain, pixel_scale)
        return jax.vmap(encode, in_axes=(None, 0))(state.routing, seq)

    def train_step(state, x, y, key):
        del key  # the rule and the optimiser are deterministic
        losses, logits, grads = batch_grads(rule, state.params, sequences(state, x), y,
                                            loss_mode, dt)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return TrainState(params, opt_state, state.routing), {"loss": losses.mean(), "acc": acc}

    def eval_step(state, x, y):
        def one(xs, label):
            r = readout(forward(state.params, xs, dt))
            return loss_from_readout(r, label, loss_mode), jnp.argmax(r.sum(0))

        losses, pred = jax.vmap(one)(sequences(state, x), y)
        return {"loss": losses.sum(), "acc": jnp.sum(pred == y)}

    return Task(init=init, train_step=train_step, eval_step=eval_step)


def run_name(rule: str, optimizer: str, batch_size: int, epochs: int, n_train: int,
             seed: int) -> str:
    """Results name, e.g. ``filtergrid/snap1_adam_b32_e10_n60000_seed0``."""
    return f"filtergrid/{rule}_{optimizer}_b{batch_size}_e{epochs}_n{n_train}_seed{seed}"


def _register() -> None:
    from gridlib.cli import experiment

    @experiment("filtergrid-mnist")
    def filtergrid_mnist(
        rule: str = "snap1", optimizer: str = "adam", lr: float = 3e-3, eta0: float = 1e-2,
        epochs: int = 10, batch_size: int = 32, n_train: int = 60000, n_test: int = 10000,
        seed: int = 0, gain: float = 10.0, tau_min: float = 1e-3, tau_max: float = 20e-3,
        steps_per_call: int = 0, progress: bool = True, name: str = "",
    ) -> dict:
        """Row-wise MNIST on the 28x10 analog-filter grid (SnAP-1 / BPTT / RTRL; Adam / SGD).

        Evaluates on the first ``n_test`` test images (all 10k by default) after every epoch,
        checkpoints to runs/<name> (an interrupted run resumes), and writes
        results/<name>.json. Defaults are the original Adam run; the batch-1 run is
        ``--optimizer sgd --batch-size 1 --epochs 3``.
        """
        from gridlib import data, experiment, results

        splits = data.load_mnist(n_train=n_train, n_test=n_test)
        config = dict(rule=rule, optimizer=optimizer, lr=lr, eta0=eta0, epochs=epochs,
                      batch_size=batch_size, n_train=n_train, n_test=n_test, gain=gain,
                      tau_min=tau_min, tau_max=tau_max, grid=[28, 10], dt=DT, loss="sum",
                      pixel_scale=MNIST_PIXEL_SCALE)
        task = make_task(rule=rule, optimizer=optimizer, lr=lr, eta0=eta0, gain=gain,
                         tau_min=tau_min, tau_max=tau_max)
        name = name or run_name(rule, optimizer, batch_size, epochs, n_train, seed)
        run = experiment.fit(task, splits, epochs=epochs, batch_size=batch_size, seed=seed,
                             run_dir=experiment.run_dir_for(name), name=name,
                             steps_per_call=steps_per_call or None, eval_on=("test",),
                             progress=progress, config=config)
        final = {k: v for k, v in run.last.items() if k != "epoch"}
        final["total_train_time_s"] = float(np.sum(run.history["epoch_time_s"]))
        results.save(name, config=config, metrics=final, history=run.history, seed=seed,
                     extra={"final_params": run.state.params._asdict()})
        print(f"{name}: test acc {final.get('test/acc'):.4f}")
        return final


    @experiment("filtergrid-agreement")
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


_register()
