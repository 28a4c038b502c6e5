"""Each rule's settings chosen on validation data, every candidate of a grid trained at once.

A learning rule trails another fairly only if both train at settings that suit them. This
module chooses those settings without ever looking at the test set:

- **the split**: MNIST's fixed validation split (:data:`gridlib.data.MNIST_VALIDATION`, the last
  10,000 of the 60,000 training images, the same for every seed); the search trains on the
  first 50,000 (or fewer) and evaluates the validation images only, never the test images;
- **the search** (:func:`search`): a log grid of step sizes (Adam's ``lr``, or per-group SGD's
  ``eta0``), crossed with input gains, all trained in one process. The state carries a leading
  candidate axis ``C``; each candidate's step size lives in its optimiser state
  (:func:`optax.inject_hyperparams`), its gain beside it, and one ``jax.vmap`` of the grid's own
  training step (:func:`~gridlib.filtergrid.experiments.grid_step`) advances them all on the same
  batches from the same initial parameters. Each candidate is therefore the run that
  ``filtergrid-mnist`` makes at its setting with the same seed (up to float rounding), at one
  run's overhead. A candidate whose loss or parameters stop being finite is frozen at its last
  finite state and marked diverged;
- **the choice** (:func:`choose`): the highest validation accuracy after the search's last
  epoch among the candidates that never diverged; a tie goes to the first in grid order;
- **the final runs** (``filtergrid-mnist --tuned-from NAME``): train at the chosen setting,
  with ``--patience P`` until validation accuracy has not improved for ``P`` epochs
  (:func:`patience_reached`); the test set is evaluated every epoch and never consulted.

``python -m gridlib filtergrid-tune --rule snap1`` runs a search (results
``filtergrid/tune/...``); ``python -m gridlib filtergrid-mnist --rule snap1 --tuned-from
filtergrid/tune/snap1_adam_b32_e3_n50000v10000_seed0 --validation true --n-train 50000
--patience 5 --epochs 40`` trains at its choice and records the protocol in its config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from gridlib.filtergrid.cell import DT
from gridlib.filtergrid.experiments import (
    MNIST_PIXEL_SCALE,
    TrainState,
    eval_sums,
    grid_step,
    loss_mode_for,
    make_task,
    per_group_sgd,
    sequences,
)

#: Each optimiser's searched hyper-parameter: Adam's learning rate, per-group SGD's ``eta0``.
HYPER = {"adam": "learning_rate", "sgd": "eta0"}
#: The name each searched step size has in configs and command lines.
STEP_NAME = {"adam": "lr", "sgd": "eta0"}

#: Default step-size grids by ``(optimizer, loss)``: half-decade log grids holding the
#: original's setting (Adam ``lr`` 3e-3, SGD ``eta0`` 1e-2). The per-step loss's gradient is
#: about 89x smaller than the summed loss's, so its SGD grid reaches two decades higher;
#: Adam is invariant to the gradient's scale. A short search favours large steps, so Adam's
#: grid reaches 1e-1; a choice at either end is flagged (``at_edge`` in the record).
STEP_GRIDS: dict[tuple[str, str], tuple[float, ...]] = {
    ("adam", "sum"): (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    ("adam", "per_t"): (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    ("sgd", "sum"): (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    ("sgd", "per_t"): (1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0),
}

#: How the search's split is described in every results file it informs.
SPLIT = {
    "data": "mnist",
    "train": "the first n_train of the first 50000 training images",
    "validation": "the first n_val of the last 10000 training images (data.MNIST_VALIDATION)",
    "test": "never evaluated by the search",
}
#: The rule of choice, as recorded.
SELECTION = ("highest validation accuracy after the last epoch, among candidates that never "
             "diverged; a tie goes to the first in grid order")


class SearchState(NamedTuple):
    """Every candidate's training state, with a leading candidate axis ``C``.

    Attributes:
        train: a :class:`~gridlib.filtergrid.experiments.TrainState` of ``(C, ...)`` leaves;
            each optimiser state holds its candidate's step size (``inject_hyperparams``).
        gain: ``(C,)`` each candidate's input gain.
        diverged: ``(C,)`` bool, set once a candidate's loss or parameters stopped being finite.
    """

    train: TrainState
    gain: Array
    diverged: Array


class Search(NamedTuple):
    """The outcome of :func:`search`.

    Attributes:
        candidates: ``[{step name: value, "gain": value}, ...]`` in grid order (step sizes
            outer, gains inner).
        val_acc: each candidate's validation accuracy after the last epoch.
        val_loss: each candidate's validation loss after the last epoch.
        diverged: whether each candidate diverged (never chosen).
        chosen: the index of the chosen candidate (:func:`choose`).
        run: the :class:`gridlib.experiment.Run` of the search (history of ``(C,)`` metrics).
    """

    candidates: list[dict[str, float]]
    val_acc: list[float]
    val_loss: list[float]
    diverged: list[bool]
    chosen: int
    run: Any


def candidates(optimizer: str, steps: Sequence[float], gains: Sequence[float]) -> list[dict]:
    """The grid ``steps x gains`` as settings, step sizes outer: ``[{"lr": 1e-3, "gain": 10.0},
    ...]`` (``"eta0"`` for ``optimizer="sgd"``)."""
    if optimizer not in HYPER:
        raise ValueError(f"optimizer must be one of {tuple(HYPER)}, got {optimizer!r}")
    if not steps or not gains:
        raise ValueError("the grid needs at least one step size and one gain")
    if min(steps) <= 0 or min(gains) <= 0:
        raise ValueError(f"step sizes and gains must be positive, got {steps} and {gains}")
    return [{STEP_NAME[optimizer]: float(s), "gain": float(g)} for s in steps for g in gains]


def injected_optimizer(optimizer: str) -> Any:
    """``factory(step) -> GradientTransformation`` whose state holds ``step`` as an array
    (:func:`optax.inject_hyperparams` of ``optax.adam`` or of
    :func:`~gridlib.filtergrid.experiments.per_group_sgd`), so ``vmap`` can vary it."""
    if optimizer not in HYPER:
        raise ValueError(f"optimizer must be one of {tuple(HYPER)}, got {optimizer!r}")
    inner = optax.inject_hyperparams(optax.adam if optimizer == "adam" else per_group_sgd)
    return lambda step: inner(**{HYPER[optimizer]: step})


def _finite(tree: Any) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def make_search_task(
    cands: Sequence[Mapping[str, float]], *, rule: str = "snap1", optimizer: str = "adam",
    n_rows: int = 28, n_cols: int = 10, n_inputs: int = 28,
    pixel_scale: float = MNIST_PIXEL_SCALE, tau_min: float = 1e-3, tau_max: float = 20e-3,
    dt: float = DT, window: int | None = None, update_every_step: bool = False,
):
    """A :class:`gridlib.experiment.Task` that trains every candidate of ``cands`` at once.

    ``init`` is :func:`~gridlib.filtergrid.experiments.make_task`'s (the same parameters and
    wiring for every candidate), with each candidate's optimiser state initialised at its
    step size; ``train_step`` is ``vmap`` over candidates of the sequences at the candidate's
    gain and :func:`~gridlib.filtergrid.experiments.grid_step` with the injected optimiser;
    ``eval_step`` is the exact forward at each candidate's parameters and gain. Metrics have
    shape ``(C,)``: ``loss`` and ``acc`` (0 once diverged) and ``diverged`` (0 or 1).
    """
    from gridlib.experiment import Task

    if not cands:
        raise ValueError("no candidates to search")
    step_name = STEP_NAME.get(optimizer)
    if step_name is None or any(set(c) != {step_name, "gain"} for c in cands):
        raise ValueError(f"candidates must be {{{step_name!r}, 'gain'}} dicts for optimizer "
                         f"{optimizer!r}, got {list(cands)[:2]}")
    loss_mode = loss_mode_for(rule)
    base = make_task(rule=rule, optimizer=optimizer, n_rows=n_rows, n_cols=n_cols,
                     n_inputs=n_inputs, pixel_scale=pixel_scale, loss_mode=loss_mode,
                     tau_min=tau_min, tau_max=tau_max, dt=dt, window=window,
                     update_every_step=update_every_step)  # checks rule, window, loss
    factory = injected_optimizer(optimizer)
    steps = jnp.asarray([c[step_name] for c in cands], jnp.float32)
    gains = jnp.asarray([c["gain"] for c in cands], jnp.float32)
    opt = factory(float(steps[0]))  # its update reads each candidate's step from the state

    def spread(z):
        return jnp.broadcast_to(z, (len(cands), *jnp.shape(z)))

    def init(key):
        one = base.init(key)
        opt_states = jax.vmap(lambda s: factory(s).init(one.params))(steps)
        train = TrainState(jax.tree.map(spread, one.params), opt_states, spread(one.routing))
        return SearchState(train, gains, jnp.zeros(len(cands), bool))

    def train_one(train, gain, diverged, x, y):
        seqs = sequences(train.routing, x, n_inputs, gain, pixel_scale)
        new, m = grid_step(opt, train, seqs, y, rule=rule, loss_mode=loss_mode, dt=dt,
                           window=window, update_every_step=update_every_step)
        ok = ~diverged & jnp.isfinite(m["loss"]) & _finite(new.params)
        new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, train)
        metrics = {k: jnp.where(ok, v, 0.0) for k, v in m.items()}
        return new, ~ok, {**metrics, "diverged": (~ok).astype(jnp.float32)}

    def train_step(state, x, y, key):
        del key  # the rules and optimisers are deterministic
        train, diverged, metrics = jax.vmap(train_one, in_axes=(0, 0, 0, None, None))(
            state.train, state.gain, state.diverged, x, y)
        return SearchState(train, state.gain, diverged), metrics

    def eval_step(state, x, y):
        def one(train, gain):
            seqs = sequences(train.routing, x, n_inputs, gain, pixel_scale)
            return eval_sums(train.params, seqs, y, loss_mode, dt)

        return jax.vmap(one)(state.train, state.gain)

    return Task(init=init, train_step=train_step, eval_step=eval_step)


def choose(val_acc: Sequence[float], diverged: Sequence[bool]) -> int:
    """The index of the best candidate by validation accuracy alone: the highest among those
    that never diverged, a tie going to the first in grid order.

    Raises:
        ValueError: every candidate diverged.
    """
    acc = np.where(np.asarray(diverged, bool), -np.inf, np.asarray(val_acc, np.float64))
    if not np.isfinite(acc).any():
        raise ValueError("every candidate of the search diverged: search smaller step sizes")
    return int(np.argmax(acc))


def search(
    splits: Any, cands: Sequence[Mapping[str, float]], *, rule: str = "snap1",
    optimizer: str = "adam", epochs: int = 3, batch_size: int = 32, seed: int = 0,
    window: int | None = None, update_every_step: bool = False, run_dir: Any = None,
    name: str = "search", progress: bool = False, steps_per_call: int | None = None,
    config: Mapping[str, Any] | None = None, **grid: Any,
) -> Search:
    """Train every candidate on ``splits``'s training set, evaluate on its validation set
    after every epoch (never on its test set), and choose (:func:`choose`).

    ``cands`` from :func:`candidates`; ``grid`` goes to :func:`make_search_task` (``n_rows``,
    ``tau_min``, ...). ``run_dir``, ``config``, ``progress`` and ``steps_per_call`` go to
    :func:`gridlib.experiment.fit` (checkpointed and resumable with a ``run_dir``).

    Raises:
        ValueError: ``splits`` has no validation examples, or every candidate diverged.
    """
    from gridlib import experiment

    if not len(splits.x_val):
        raise ValueError("the search chooses on validation data, and the splits have none "
                         "(load them with validation=data.MNIST_VALIDATION)")
    task = make_search_task(cands, rule=rule, optimizer=optimizer, window=window,
                            update_every_step=update_every_step, **grid)
    run = experiment.fit(task, splits, epochs=epochs, batch_size=batch_size, seed=seed,
                         run_dir=run_dir, name=name, steps_per_call=steps_per_call,
                         eval_on=("val",), progress=progress, config=config)
    val_acc = [float(v) for v in run.history["val/acc"][-1]]
    val_loss = [float(v) for v in run.history["val/loss"][-1]]
    diverged = [bool(d) for d in np.asarray(run.state.diverged)]
    return Search([dict(c) for c in cands], val_acc, val_loss, diverged,
                  choose(val_acc, diverged), run)


def at_edge(cands: Sequence[Mapping[str, float]], chosen: int, key: str) -> bool:
    """Whether the chosen ``key`` (a step size or the gain) is the smallest or largest of a
    grid of several values: the best may then lie outside the grid."""
    values = sorted({c[key] for c in cands})
    return len(values) > 1 and cands[chosen][key] in (values[0], values[-1])


# ---------------------------------------------------------------------------- early stopping


def best_epoch(history: Mapping[str, Sequence[float]], metric: str = "val/acc") -> int:
    """The epoch (from 1) of the best ``metric`` so far; the first of equal bests."""
    values = history.get(metric) or []
    if not values:
        raise ValueError(f"the history has no {metric!r} yet")
    return int(np.argmax(np.asarray(values, np.float64))) + 1


def patience_reached(history: Mapping[str, Sequence[float]], patience: int,
                     metric: str = "val/acc") -> bool:
    """Whether ``metric`` has not improved for ``patience`` epochs: the epochs since the best
    one (:func:`best_epoch`) number at least ``patience``. Reads validation only."""
    if patience < 1:
        raise ValueError(f"patience must be >= 1 epoch, got {patience}")
    values = history.get(metric) or []
    return bool(values) and len(values) - best_epoch(history, metric) >= patience


# ---------------------------------------------------------------------------- the record


def load_search(name: str) -> tuple[dict[str, Any], bool]:
    """``(record, published)``: the search ``name`` from ``results/`` if published, else from
    the runs folder's scratch results (CI-scale and unpublished searches).

    Raises:
        FileNotFoundError: no such search. ValueError: the record is not a finished search.
    """
    from gridlib import results

    published = results.path(name).is_file()
    if published:
        record = results.load(name)
    else:
        scratch = results.scratch_dir() / f"{results.check_name(name)}.json"
        if not scratch.is_file():
            raise FileNotFoundError(f"--tuned-from {name}: no search of that name in "
                                    f"{results.results_dir()} or {results.scratch_dir()}")
        record = results.read(scratch)
    if "search" not in (record.get("config") or {}) or "chosen" not in record["metrics"]:
        raise ValueError(f"--tuned-from {name}: not a filtergrid-tune search")
    if not results.is_complete(record):
        raise ValueError(f"--tuned-from {name}: the search did not finish")
    return record, published


def tuned_settings(name: str, expect: Mapping[str, Any]) -> tuple[dict[str, float], dict]:
    """``(chosen setting, protocol)`` of the search ``name``, for a run whose ``expect``
    (``rule``, ``optimizer``, ``batch_size``, ...) must equal the search's.

    The protocol is what the run records in its config: the search's name, whether it is
    published, its split, grid, budget, the chosen setting, and every candidate's
    validation accuracy.

    Raises:
        ValueError: the search was made for another configuration.
    """
    record, published = load_search(name)
    cfg, met = record["config"], record["metrics"]
    diff = [f"{k}: {cfg.get(k)!r} there, {v!r} here" for k, v in expect.items()
            if cfg.get(k) != v]
    if diff:
        raise ValueError(f"--tuned-from {name} searched another configuration ({'; '.join(diff)})")
    protocol = {"record": name, "published": published, "split": cfg["split"],
                "search": cfg["search"], "selection": cfg["selection"],
                "budget": {k: cfg[k] for k in ("epochs", "n_train", "n_val", "batch_size")},
                "chosen": met["chosen"], "val_acc": met["val/acc"], "diverged": met["diverged"]}
    return dict(met["chosen"]), protocol


__all__ = [
    "Search",
    "SearchState",
    "at_edge",
    "best_epoch",
    "candidates",
    "choose",
    "injected_optimizer",
    "load_search",
    "make_search_task",
    "patience_reached",
    "search",
    "tuned_settings",
]
