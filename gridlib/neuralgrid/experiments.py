"""NeuralGrid training runs: configs, presets, tasks for ``fit`` and the command-line entries.

NeuralGrid is trained by plain backprop (Adam on mean cross-entropy), so the task is the shared
:func:`gridlib.baselines.supervised_task` around the model's forward, and the loop is the shared
:func:`gridlib.experiment.fit`; nothing here is specific to a learning rule.

* ``python -m gridlib neuralgrid-fashion --preset blog`` the blog's 64 x 64 grid on
  Fashion-MNIST (300 epochs) -> ``results/neuralgrid/<dataset>_<preset>[_variant]_seed<s>.json``
  with the mean activation pattern per class before and after training;
* ``python -m gridlib neuralgrid3d`` the 3-D variant (16 slices of 28 x 28)
  -> ``results/neuralgrid/grid3d_<dataset>[_subset]_seed<s>.json``.

Checkpoints go to ``runs/neuralgrid/...``, so an interrupted run resumes.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from gridlib import baselines as supervised
from gridlib import data, flags, results
from gridlib.cli import DATA_BYTES, RUNTIME_BYTES, experiment
from gridlib.experiment import Task, fit, run_dir_for
from gridlib.neuralgrid.model import (
    check_positive,
    class_mean_activations,
    grid3d_apply,
    init_grid3d,
    init_network,
    network_apply,
)

# ----------------------------------------------------------------------------------------------
# configuration and presets


class Config(NamedTuple):
    """A 2-D NeuralGrid training run (Adam, cross-entropy, step learning-rate schedule).

    ``height x width`` grid; Adam with ``lr``; the learning rate is multiplied by ``lr_decay``
    every ``lr_step_epochs`` epochs; ``epochs`` passes at ``batch_size`` (last partial batch
    dropped, as the original loader does).
    """

    height: int = 64
    width: int = 64
    lr: float = 1e-4
    batch_size: int = 256
    epochs: int = 300
    lr_step_epochs: int = 100
    lr_decay: float = 0.1
    dataset: str = "fashion_mnist"

    def validate(self) -> Config:
        """Return ``self``, or raise ``ValueError`` naming the first bad field."""
        check_positive(height=self.height, width=self.width, batch_size=self.batch_size,
                       epochs=self.epochs, lr_step_epochs=self.lr_step_epochs)  # fmt: skip
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if not (isinstance(self.lr_decay, (int, float)) and 0 < self.lr_decay <= 1):
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {self.dataset!r}")
        return self


class Config3D(NamedTuple):
    """A 3-D NeuralGrid run: ``n_layers`` slices of the image size, Adam, step schedule."""

    n_layers: int = 16
    lr: float = 1e-3
    batch_size: int = 256
    epochs: int = 10
    lr_step_epochs: int = 100
    lr_decay: float = 0.1
    dataset: str = "fashion_mnist"

    def validate(self) -> Config3D:
        """Return ``self``, or raise ``ValueError`` naming the first bad field."""
        Config(lr=self.lr, batch_size=self.batch_size, epochs=self.epochs,
               lr_step_epochs=self.lr_step_epochs, lr_decay=self.lr_decay,
               dataset=self.dataset).validate()  # fmt: skip
        check_positive(n_layers=self.n_layers)
        return self


#: The datasets a run may use (both through :mod:`gridlib.data`).
DATASETS = ("fashion_mnist", "mnist")

#: The blog's reported Fashion-MNIST test accuracy of the 64 x 64 grid (one run, no error bar).
BLOG_TEST_ACC = 0.869
#: The blog's timing table (hardware not stated): implementation, accelerator, batch, seconds per
#: epoch, standard deviation; 128 x 128 grid, Fashion-MNIST.
BLOG_TIMING = (
    ("double loop", "CPU", 1, 52427.0, 607.0),
    ("unfold", "CPU", 1, 1503.0, 288.0),
    ("unfold", "CPU", 16, 404.0, 59.0),
    ("unfold", "CPU", 32, 329.0, 33.0),
    ("unfold", "CPU", 64, 257.0, 4.0),
    ("unfold", "GPU", 64, 21.0, 1.0),
    ("unfold", "GPU", 256, 5.41, 0.17),
)

#: The blog's 86.9 % run: 64 x 64 grid, Adam 1e-4, batch 256, lr / 10 every 100 epochs, 300 epochs.
BLOG = Config()
#: A short schedule with the same model and optimiser: 30 epochs, lr / 10 every 10 epochs.
SHORT = Config(epochs=30, lr_step_epochs=10)
#: The presets of ``neuralgrid-fashion --preset``.
PRESETS = {"blog": BLOG, "short": SHORT}


# ----------------------------------------------------------------------------------------------
# tasks for gridlib.experiment.fit


def lr_schedule(cfg: Config | Config3D, steps_per_epoch: int) -> optax.Schedule:
    """``lr * lr_decay ** floor(epoch / lr_step_epochs)`` (PyTorch ``StepLR`` stepped per epoch)."""
    return optax.exponential_decay(cfg.lr, transition_steps=cfg.lr_step_epochs * steps_per_epoch,
                                   decay_rate=cfg.lr_decay, staircase=True)  # fmt: skip


# Backprop on mean cross-entropy is the shared baseline trainer; the grid is only the model.
cross_entropy = supervised.cross_entropy


def make_task(cfg: Config, steps_per_epoch: int, n_in: int = 784, n_classes: int = 10,
              form: str = "fast", microbatches: int = 1,
              mesh: jax.sharding.Mesh | None = None) -> Task:  # fmt: skip
    """The 2-D network as a :class:`gridlib.experiment.Task` (state = ``(params, adam state)``).

    ``form`` picks the grid layer's pre-activation (see :data:`gridlib.neuralgrid.PREACT_FORMS`);
    the benchmark trains the ``"unfold"`` baseline through the same task. ``microbatches`` and
    ``mesh`` compute the same gradient in parts or over several devices, up to float rounding
    (:func:`gridlib.baselines.supervised_task`): at batch 256 on a CPU, parts of 64 examples
    keep the grid's stored activations in cache, and one device per core uses every core.
    """
    cfg.validate()
    check_positive(steps_per_epoch=steps_per_epoch)
    opt = optax.adam(lr_schedule(cfg, steps_per_epoch))
    return supervised.supervised_task(
        lambda k: init_network(k, n_in, cfg.height, cfg.width, n_classes),
        lambda p, x: network_apply(p, x, form), opt, microbatches=microbatches,
        mesh=mesh)  # fmt: skip


def make_task_3d(cfg: Config3D, steps_per_epoch: int, image_shape: tuple[int, int] = (28, 28),
                 n_classes: int = 10) -> Task:  # fmt: skip
    """The 3-D network as a :class:`gridlib.experiment.Task`."""
    cfg.validate()
    check_positive(steps_per_epoch=steps_per_epoch)
    return supervised.supervised_task(
        lambda k: init_grid3d(k, image_shape, cfg.n_layers, n_classes), grid3d_apply,
        optax.adam(lr_schedule(cfg, steps_per_epoch)))  # fmt: skip


# ----------------------------------------------------------------------------------------------
# training on real data


def load_splits(dataset: str, n_train: int | None = None, n_test: int | None = None):
    """Real MNIST or Fashion-MNIST through :mod:`gridlib.data` (all of it by default)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    loader = data.load_fashion_mnist if dataset == "fashion_mnist" else data.load_mnist
    return loader(n_train=n_train or None, n_test=n_test or None)


def _splits_and_steps(cfg: Config | Config3D, n_train: int | None, n_test: int | None):
    """The run's data and its number of (full) minibatches per epoch."""
    splits = load_splits(cfg.dataset, n_train, n_test)
    steps = len(splits.x_train) // cfg.batch_size
    if steps < 1:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds {len(splits.x_train)} examples")
    return splits, steps


def _rounded(a: Any, digits: int = 4) -> list:
    return np.round(np.asarray(a, np.float64), digits).tolist()


def train(cfg: Config, *, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
          name: str | None = None, progress: bool = True, record_patterns: bool = True,
          eval_on: tuple[str, ...] = ("test",)):  # fmt: skip
    """Train the 2-D network on real data with :func:`gridlib.experiment.fit`.

    Returns ``(run, extra)``; ``extra`` holds the mean activation pattern per class (first 64
    test images of each class) at the start and end of training and the final parameter grids,
    if ``record_patterns``. With ``name``, checkpoints go to ``runs/<name>`` (and resume).
    """
    cfg.validate()
    splits, steps = _splits_and_steps(cfg, n_train, n_test)
    task = make_task(cfg, steps)
    extra: dict[str, Any] = {}
    if record_patterns:
        # fit() initialises with the first half of split(PRNGKey(seed)); recompute that state here
        init_key = jax.random.split(jax.random.PRNGKey(seed))[0]
        p0 = task.init(init_key)[0]
        extra["pattern_start"] = _rounded(class_mean_activations(p0, splits.x_test, splits.y_test))
    run = fit(task, splits, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed,
              run_dir=run_dir_for(name) if name else None, name=name or "neuralgrid",
              eval_on=eval_on, progress=progress, config=cfg._asdict())  # fmt: skip
    if record_patterns:
        p = run.state[0]
        extra["pattern_end"] = _rounded(class_mean_activations(p, splits.x_test, splits.y_test))
        extra["grid_weight"] = _rounded(p.grid.weight.T)  # (H, W): rows neurons, columns depth
        extra["grid_bias"] = _rounded(p.grid.bias.T)
    return run, extra


def train3d(cfg: Config3D, *, seed: int = 0, n_train: int | None = None,
            n_test: int | None = None, name: str | None = None, progress: bool = True):  # fmt: skip
    """Train the 3-D network on real data with :func:`gridlib.experiment.fit`; returns the run."""
    cfg.validate()
    splits, steps = _splits_and_steps(cfg, n_train, n_test)
    task = make_task_3d(cfg, steps)
    return fit(task, splits, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed,
               run_dir=run_dir_for(name) if name else None, name=name or "neuralgrid3d",
               eval_on=("test",), progress=progress, config=cfg._asdict())  # fmt: skip


# ----------------------------------------------------------------------------------------------
# command-line experiments


def _override(cfg: NamedTuple, **kw: Any) -> Any:
    """Replace the fields given with a non-default value (0 / empty means: keep the preset's)."""
    return cfg._replace(**{k: v for k, v in kw.items() if v not in (0, 0.0, "", None)})


def _fashion_memory(args: dict[str, Any]) -> float:
    """Peak bytes of a 2-D run: float32 weights, gradient and Adam moments (4 x 3 per cell)
    and the activations kept for the backward pass (about two per cell and example)."""
    base = PRESETS[args["preset"]]
    h, w = args["height"] or base.height, args["width"] or base.width
    b = args["batch_size"] or base.batch_size
    return 4.0 * h * w * (12 + 2 * b) + DATA_BYTES + RUNTIME_BYTES


def _memory_3d(args: dict[str, Any]) -> float:
    """Peak bytes of a 3-D run: 3 x 3 weights per cell of 28 x 28 x ``n_layers`` (four
    copies, as above) and three stored activations per cell and example."""
    cells = 28 * 28 * args["n_layers"]
    return 4.0 * cells * (36 + 3 * args["batch_size"]) + DATA_BYTES + RUNTIME_BYTES


_PRESET = "0: the preset's"


@experiment("neuralgrid-fashion", memory=_fashion_memory, flags={
    "preset": flags.choice(lambda: tuple(PRESETS)),
    "epochs": flags.integer(1, 100_000, special=(0,), meaning=_PRESET),
    "height": flags.integer(1, 65_536, special=(0,), meaning=_PRESET),
    "width": flags.integer(1, 65_536, special=(0,), meaning=_PRESET),
    "lr": flags.real(0.0, 10.0, open_low=True, special=(0.0,), meaning=_PRESET),
    "batch_size": flags.integer(1, 65_536, special=(0,), meaning=_PRESET),
    "lr_step_epochs": flags.integer(1, 100_000, special=(0,), meaning=_PRESET),
    "dataset": flags.choice(DATASETS, special=("",), meaning="'': the preset's"),
    "n_train": flags.integer(1, 60_000, special=(0,), meaning="0: all"),
    "n_test": flags.integer(1, 10_000, special=(0,), meaning="0: all"),
})
def neuralgrid_fashion(preset: str = "blog", seed: int = 0, epochs: int = 0, height: int = 0,
                       width: int = 0, lr: float = 0.0, batch_size: int = 0,
                       lr_step_epochs: int = 0, dataset: str = "", n_train: int = 0,
                       n_test: int = 0, progress: bool = True) -> dict:  # fmt: skip
    """2-D NeuralGrid on Fashion-MNIST (preset 'blog': the blog's 300-epoch 64x64 run; 'short').

    Flags left at 0 / empty keep the preset's value; any other value makes the run a variant,
    recorded as such (results/neuralgrid/<dataset>_<preset>[_variant]_seed<seed>.json).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    base = PRESETS[preset]
    cfg = _override(base, epochs=epochs, height=height, width=width, lr=lr, batch_size=batch_size,
                    lr_step_epochs=lr_step_epochs, dataset=dataset).validate()  # fmt: skip
    variant = cfg != base or n_train or n_test
    name = f"neuralgrid/{cfg.dataset}_{preset}{'_variant' if variant else ''}_seed{seed}"
    run, extra = train(cfg, seed=seed, n_train=n_train or None, n_test=n_test or None, name=name,
                       progress=progress)  # fmt: skip
    metrics = {"test_acc": run.history["test/acc"][-1], "test_loss": run.history["test/loss"][-1],
               "train_loss": run.history["train/loss"][-1],
               "mean_epoch_time_s": float(np.mean(run.history["epoch_time_s"]))}  # fmt: skip
    config = {**cfg._asdict(), "preset": preset, "is_preset": not variant,
              "n_train": n_train or 60000, "n_test": n_test or 10000}  # fmt: skip
    path = results.save(name, config=config, metrics=metrics, history=run.history, seed=seed,
                        extra=extra, arrays=results.tree_arrays(run.state.params))  # fmt: skip
    print(f"{name}: test acc {metrics['test_acc']:.4f} -> {path}")
    return metrics


@experiment("neuralgrid3d", memory=_memory_3d, flags={
    "dataset": flags.choice(DATASETS),
    "n_layers": flags.integer(1, 4096),
    "n_train": flags.integer(1, 60_000, special=(0,), meaning="0: all"),
    "n_test": flags.integer(1, 10_000, special=(0,), meaning="0: all"),
})
def neuralgrid3d(dataset: str = "fashion_mnist", seed: int = 0, epochs: int = 10,
                 n_layers: int = 16, lr: float = 1e-3, batch_size: int = 256, n_train: int = 0,
                 n_test: int = 0, progress: bool = True) -> dict:  # fmt: skip
    """3-D NeuralGrid (16 slices of 28x28, 3x3 neighbourhoods) on MNIST or Fashion-MNIST."""
    cfg = Config3D(n_layers=n_layers, lr=lr, batch_size=batch_size, epochs=epochs,
                   dataset=dataset).validate()  # fmt: skip
    name = f"neuralgrid/grid3d_{dataset}{'_subset' if n_train or n_test else ''}_seed{seed}"
    run = train3d(cfg, seed=seed, n_train=n_train or None, n_test=n_test or None, name=name,
                  progress=progress)  # fmt: skip
    metrics = {"test_acc": run.history["test/acc"][-1], "test_loss": run.history["test/loss"][-1],
               "mean_epoch_time_s": float(np.mean(run.history["epoch_time_s"]))}  # fmt: skip
    config = {**cfg._asdict(), "n_train": n_train or 60000, "n_test": n_test or 10000}
    results.save(name, config=config, metrics=metrics, history=run.history, seed=seed,
                 arrays=results.tree_arrays(run.state.params))
    print(f"{name}: test acc {metrics['test_acc']:.4f}")
    return metrics
