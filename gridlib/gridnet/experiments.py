"""Training gridnet on MNIST: presets, the backprop task, and ``python -m gridlib gridnet-mnist``.

The training step is the library's shared backprop task
(:func:`gridlib.baselines.supervised_task`) with the seed's AdamW: gridnet needs no step of its
own, because its gradient is plain ``jax.grad`` of the logits, which goes through the outer step's
hand-written VJP (:mod:`gridlib.gridnet.hand_vjp`) by itself.
"""

from __future__ import annotations

import optax

from gridlib import flags, results, scale
from gridlib.baselines import supervised_task
from gridlib.cli import DATA_BYTES, RUNTIME_BYTES, experiment
from gridlib.data import load_mnist
from gridlib.experiment import fit, run_dir_for
from gridlib.gridnet.cell import ACTIVATIONS
from gridlib.gridnet.model import Config, forward, init

#: The seed's MNIST script: 32^3 grid, S = 8, I = 1, O = 64, SiLU (AdamW 1e-3/1e-3, batch 256).
SEED = Config(grid=32, block=8, inner=1, outer=64, activation="silu")
#: A CPU-sized preset: 16^3 grid (image 2x2-pooled to 14x14), blocks of 4^3 with 2 inner steps,
#: so the stale halo is exercised; 10 outer steps carry the input across the 16 layers.
CPU = Config(grid=16, block=4, inner=2, outer=10, activation="silu")
#: The presets by name, as chosen by ``gridnet-mnist --preset``.
PRESETS = {"seed": SEED, "cpu": CPU}


def make_task(cfg: Config, lr: float = 1e-3, weight_decay: float = 1e-3):
    """A :class:`gridlib.experiment.Task` (the shared backprop task of :mod:`gridlib.baselines`):
    AdamW, the seed's optimiser with decay on every parameter, on the mean cross-entropy; state
    ``(params, opt_state)``; eval returns summed loss and hits."""
    cfg.validate()
    opt = optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay)
    return supervised_task(lambda key: init(key, cfg), lambda p, x: forward(p, x, cfg), opt)


def train(cfg: Config, splits, *, epochs: int, batch_size: int = 256, lr: float = 1e-3,
          weight_decay: float = 1e-3, seed: int = 0, run_dir=None, progress: bool = True,
          name: str = "gridnet", eval_on=("test",)):
    """Train a gridnet on ``splits`` with :func:`gridlib.experiment.fit`; returns the ``Run``."""
    config = {**cfg._asdict(), "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "optimizer": "adamw"}
    return fit(make_task(cfg, lr, weight_decay), splits, epochs=epochs, batch_size=batch_size,
               seed=seed, run_dir=run_dir, name=name, eval_on=eval_on, progress=progress,
               config=config, eval_batch_size=500)


#: epochs per preset at full scale. The seed trains 2000 steps of 256 (8.5 epochs): 9 epochs here.
FULL_EPOCHS = {"seed": 9, "cpu": 2}


def _memory(args) -> float:
    """The grid's float32 states kept for the backward pass: one per cell, example and outer
    step, and four copies of 27 weights per cell."""
    cfg = PRESETS[args["preset"]]
    cells = cfg.grid**3
    return 4.0 * cells * (4 * 27 + args["batch_size"] * cfg.outer) + DATA_BYTES + RUNTIME_BYTES


@experiment("gridnet-mnist", memory=_memory, flags={
    "preset": flags.choice(lambda: tuple(PRESETS)),
    "epochs": flags.integer(1, 100_000, special=(0,), meaning="0: the preset's"),
    "weight_decay": flags.real(0.0, 1.0),
    "activation": flags.choice(lambda: ACTIVATIONS, special=("",), meaning="'': the preset's"),
})
def gridnet_mnist(preset: str = "cpu", epochs: int = 0, batch_size: int = 256, lr: float = 1e-3,
                  weight_decay: float = 1e-3, seed: int = 0, activation: str = "",
                  progress: bool = True) -> dict:
    """Train gridnet on MNIST (60k train, full 10k test) and save results/gridnet/<preset>_seed<s>.

    Presets: ``seed`` (32^3, S=8, I=1, O=64: the seed's MNIST script) and ``cpu`` (16^3, S=4,
    I=2, O=10). ``epochs=0`` takes the preset's default; ``activation`` overrides the preset's.
    At GRIDLIB_SCALE=ci: 512 training and 500 test examples, one epoch.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[preset]
    if activation:
        cfg = cfg._replace(activation=activation)
    cfg.validate()
    sizes = scale.pick(ci={"n_train": 512, "n_test": 500, "epochs": 1},
                       full={"n_train": None, "n_test": None, "epochs": FULL_EPOCHS[preset]})
    epochs = epochs or sizes["epochs"]
    splits = load_mnist(n_train=sizes["n_train"], n_test=sizes["n_test"])
    name = f"gridnet/{preset}_seed{seed}" + ("" if activation == "" else f"_{activation}")
    if scale.is_ci():
        name += "_ci"
    run = train(cfg, splits, epochs=epochs, batch_size=batch_size, lr=lr,
                weight_decay=weight_decay, seed=seed, run_dir=run_dir_for(name),
                progress=progress, name=name)
    n_batches = len(splits.x_train) // batch_size
    metrics = {"test_acc": run.history["test/acc"][-1], "test_loss": run.history["test/loss"][-1],
               "train_loss_last_epoch": run.history["train/loss"][-1],
               "steps": epochs * n_batches, "n_train": len(splits.x_train),
               "n_test": len(splits.x_test),
               "train_time_s": float(sum(run.history["epoch_time_s"]))}
    results.save(name, config={**run.config, "preset": preset}, metrics=metrics,
                 history=run.history, seed=seed, arrays=results.tree_arrays(run.state.params))
    return metrics
