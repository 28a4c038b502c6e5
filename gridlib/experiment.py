"""The one training loop every chapter uses.

A model and its learning rule are packaged as a :class:`Task`: three pure functions. :func:`fit`
does the rest: seeded shuffling, minibatches grouped into one jitted ``lax.scan`` call (so a
batch-1 rule pays no Python overhead per step), a progress bar, evaluation after every epoch,
a NaN guard, and a checkpoint after every epoch from which an interrupted run resumes exactly.

The learning rule lives entirely in ``train_step``: backprop with optax, SnAP-1 traces,
equilibrium propagation or GLE dynamics all fit the same signature.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import checkpoint, results
from gridlib.results import to_jsonable

#: A training state: any pytree (parameters, optimiser state, traces).
State = Any
#: Metrics by name: arrays (scalars, or one value per seed of an ensemble).
Metrics = dict[str, Any]

CHECKPOINT_FILE = "checkpoint.npz"


class Stopped(BaseException):  # noqa: N818 - a stop, like KeyboardInterrupt, not an error
    """A run stopped by a signal (SIGTERM or SIGINT, see :func:`gridlib.cli.stop_on_signals`).

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` swallows
    it. :func:`fit` records the last completed epoch, whose checkpoint is on disk.

    Attributes:
        signum: the signal's number.
        epoch: the last completed epoch (``None`` when the stop came outside :func:`fit`).
        epochs: the epochs the run was asked for.
    """

    def __init__(self, signum: int, epoch: int | None = None, epochs: int | None = None):
        super().__init__(signum, epoch, epochs)
        self.signum, self.epoch, self.epochs = signum, epoch, epochs

    def where(self) -> str:
        """`` after epoch k of n`` when known, else ``''``."""
        return f" after epoch {self.epoch} of {self.epochs}" if self.epoch is not None else ""


# Signals are process-wide, so is this: the depth of "no stop here" sections, and a stop that
# arrived inside one (raised when the outermost section ends).
_UNSTOPPABLE = {"depth": 0, "pending": None}


def request_stop(signum: int) -> None:
    """Stop the run for signal ``signum``: raise :class:`Stopped` now, or, inside
    :func:`finish_before_stopping`, as soon as that section ends."""
    if _UNSTOPPABLE["depth"]:
        _UNSTOPPABLE["pending"] = signum
        return
    raise Stopped(signum)


@contextlib.contextmanager
def finish_before_stopping() -> Iterator[None]:
    """A section a signal does not interrupt (an epoch's checkpoint and its bookkeeping): a
    stop requested inside it is raised when it ends."""
    _UNSTOPPABLE["depth"] += 1
    try:
        yield
    finally:
        _UNSTOPPABLE["depth"] -= 1
    pending = _UNSTOPPABLE["pending"]
    if pending is not None and not _UNSTOPPABLE["depth"]:
        _UNSTOPPABLE["pending"] = None
        raise Stopped(pending)


class Task(NamedTuple):
    """A model plus its learning rule, as three pure functions.

    Attributes:
        init: ``key -> state``; the state is any pytree (parameters, optimiser state, traces).
        train_step: ``(state, x, y, key) -> (state, metrics)`` for one minibatch ``x: (B, ...)``,
            ``y: (B,)``; metrics are arrays (scalars, or e.g. shape ``(n_seeds,)`` for a vmapped
            ensemble). Must be jit-able.
        eval_step: ``(state, x, y) -> sums``: per-example metrics summed over the batch
            (e.g. ``{"loss": sum of losses, "acc": number correct}``). Must be jit-able.
        compiler_options: XLA options :func:`fit` compiles the two steps with (``jax.jit``'s
            ``compiler_options``), e.g. :data:`gridlib.gle.packed.COMPILER_OPTIONS`; they change
            how fast the steps run, never what they compute beyond float rounding.
    """

    init: Callable[[jax.Array], State]
    train_step: Callable[[State, jax.Array, jax.Array, jax.Array], tuple[State, Metrics]]
    eval_step: Callable[[State, jax.Array, jax.Array], Metrics]
    compiler_options: Mapping[str, Any] | None = None


class Run(NamedTuple):
    """The outcome of :func:`fit`.

    Attributes:
        state: the final state pytree.
        history: metric name -> list with one entry per epoch. Names are ``train/<metric>``
            (average over the epoch's steps), ``<split>/<metric>`` for evaluated splits,
            ``epoch`` and ``epoch_time_s`` (training time, evaluation excluded).
        config: the configuration the run was made with (as given to :func:`fit`).
    """

    state: State
    history: dict[str, list]
    config: dict[str, Any]

    @property
    def last(self) -> dict[str, Any]:
        """The last epoch's value of every metric."""
        return {k: v[-1] for k, v in self.history.items() if v}


def _split_arrays(splits: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    return getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")


def _fingerprint_inputs(config, seed, batch_size, n, name) -> dict[str, Any]:
    return to_jsonable({"config": dict(config), "seed": seed, "batch_size": batch_size,
                        "n_train": n, "name": name})


def _fingerprint(payload: Mapping[str, Any]) -> str:
    text = json.dumps(to_jsonable(dict(payload)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_finite(metrics: Mapping[str, np.ndarray], epoch: int, first_step: int) -> None:
    for k, v in metrics.items():
        v = np.asarray(v)
        if not np.all(np.isfinite(v)):
            per_step = v.reshape(v.shape[0], -1)
            bad = int(np.argwhere(~np.isfinite(per_step).any(axis=1))[0, 0])
            value = per_step[bad] if per_step.shape[1] > 1 else per_step[bad, 0]
            raise FloatingPointError(
                f"training metric {k!r} became {value} at epoch {epoch}, "
                f"step {first_step + bad}: the run diverged (try a smaller learning rate)"
            )


def make_epoch_chunk(train_step: Callable, compiler_options: Mapping[str, Any] | None = None) -> Callable:
    """``(state, xs, ys, steps, key) -> (state, stacked metrics)``: ``K`` minibatches in one scan.

    ``xs: (K, B, ...)``, ``ys: (K, B)``, ``steps: (K,)`` global step numbers; each step's key is
    ``fold_in(key, step)`` so that the randomness does not depend on how steps are chunked.
    ``compiler_options`` go to ``jax.jit`` (:attr:`Task.compiler_options`).
    """

    def chunk(state, xs, ys, steps, key):
        def body(s, inp):
            x, y, step = inp
            return train_step(s, x, y, jax.random.fold_in(key, step))

        return jax.lax.scan(body, state, (xs, ys, steps))

    return jax.jit(chunk, compiler_options=dict(compiler_options) if compiler_options else None)


def make_train_step(train_step: Callable, compiler_options: Mapping[str, Any] | None = None,
                    donate: bool = True) -> Callable:
    """``(state, x, y, key) -> (state, metrics)``: one jitted call is one optimiser step.

    The form for a caller who drives the loop in Python, one call per minibatch ``x: (B, ...)``,
    ``y: (B,)``; it computes what one step of :func:`make_epoch_chunk` computes (tests: bit for
    bit). The whole step is one executable, so a call costs one dispatch. With ``donate`` the
    state's buffers are handed to the new state (``donate_argnums``), so the state passed in
    must not be used again. Pass each minibatch as a ready array (NumPy or device): indexing a
    device-resident epoch with ``xs[i]`` per step is an eager dispatch of its own, which for a
    small step (SnAP-1 at batch 1) costs as much again as the step.

    Args:
        train_step: :attr:`Task.train_step`.
        compiler_options: :attr:`Task.compiler_options`.
        donate: hand the state's buffers to the new state.

    Returns:
        The jitted step, ``(state, x, y, key) -> (state, metrics)``.
    """
    return jax.jit(train_step, donate_argnums=(0,) if donate else (),
                   compiler_options=dict(compiler_options) if compiler_options else None)


def evaluate(
    eval_fn: Callable, state: State, x: np.ndarray, y: np.ndarray, batch_size: int = 1000
) -> dict[str, np.ndarray]:
    """Mean of per-example metrics over ``(x, y)``, computed in chunks with a jitted ``eval_fn``."""
    n = len(x)
    if n == 0:
        raise ValueError("cannot evaluate on an empty split")
    totals: dict[str, np.ndarray] = {}
    for i in range(0, n, batch_size):
        sums = jax.device_get(
            eval_fn(state, jnp.asarray(x[i : i + batch_size]), jnp.asarray(y[i : i + batch_size]))
        )
        for k, v in sums.items():
            totals[k] = totals.get(k, 0) + np.asarray(v, dtype=np.float64)
    return {k: v / n for k, v in totals.items()}


def _validate(splits: Any, epochs: int, batch_size: int, eval_on: Sequence[str]) -> None:
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    x, y = _split_arrays(splits, "train")
    if len(x) != len(y):
        raise ValueError(f"x_train has {len(x)} examples but y_train has {len(y)}")
    if batch_size > len(x):
        raise ValueError(f"batch_size {batch_size} exceeds the {len(x)} training examples")
    for split in eval_on:
        if split not in ("train", "val", "test"):
            raise ValueError(f"eval_on entries must be 'train', 'val' or 'test', got {split!r}")


def fit(
    task: Task,
    splits: Any,
    *,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    run_dir: str | os.PathLike | None = None,
    name: str = "run",
    steps_per_call: int | None = None,
    eval_batch_size: int = 1000,
    eval_on: Sequence[str] = ("val", "test"),
    progress: bool = True,
    config: Mapping[str, Any] | None = None,
    callback: Callable[[int, State, dict[str, list]], None] | None = None,
    fresh: bool | None = None,
    until: Callable[[dict[str, list]], bool] | None = None,
) -> Run:
    """Train ``task`` on ``splits`` for ``epochs`` epochs.

    Args:
        task: the model and learning rule.
        splits: a :class:`gridlib.data.Splits` (anything with ``x_train``, ``y_train``, ...).
        epochs: number of passes over the training set.
        batch_size: minibatch size ``B``; the last partial batch of an epoch is dropped.
        seed: seeds initialisation, shuffling and the per-step keys.
        run_dir: if given, a checkpoint is written there after every epoch, and a run started
            with the same arguments resumes from it. The folder is locked while the run goes,
            so the same run cannot be started twice at once.
        name: label for the progress bar.
        steps_per_call: minibatches per jitted call (default: about 2048 examples per call).
        eval_batch_size: chunk size for evaluation.
        eval_on: splits evaluated after every epoch (empty splits are skipped).
        progress: show a progress bar (on stderr).
        config: the hyper-parameters to record with the run; part of the checkpoint fingerprint.
        callback: ``callback(epoch, state, history)`` after every epoch (epochs count from 1).
        fresh: discard an existing checkpoint instead of resuming (default: the command
            line's ``--fresh``).
        until: ``until(history)``: end the run before ``epochs`` once it is true (checked
            after every epoch's checkpoint, and on resuming), e.g. early stopping on validation.

    Inside a command-line :func:`gridlib.results.session`, the run's earlier starts are read
    from its checkpoint (so the results file records where it started and every resume), and
    ``--stop-after-epochs`` ends it early.

    A state that ``task.init`` places on several devices (:mod:`gridlib.devices`) trains there:
    ``jit`` follows its placement. The checkpoint holds host arrays (``device_get``), and a
    resumed state is placed like a fresh ``init``, so a run may resume on another device count.

    Raises:
        ValueError: bad arguments. FloatingPointError: a training metric became NaN or inf.
        gridlib.checkpoint.CheckpointError: a damaged, foreign or locked checkpoint.
    """
    from tqdm import tqdm

    _validate(splits, epochs, batch_size, eval_on)
    x_train, y_train = _split_arrays(splits, "train")
    n = len(x_train)
    n_batches = n // batch_size
    k = steps_per_call or max(1, min(n_batches, math.ceil(2048 / batch_size)))
    if k < 1:
        raise ValueError(f"steps_per_call must be positive, got {steps_per_call!r}")
    config = dict(config or {})
    inputs = _fingerprint_inputs(config, seed, batch_size, n, name)
    fingerprint = _fingerprint(inputs)
    session = results.current_session()
    fresh = session.fresh if (fresh is None and session is not None) else bool(fresh)
    stop_after = session.stop_after_epochs if session is not None else None

    with checkpoint.lock(run_dir) if run_dir is not None else contextlib.nullcontext():
        key = jax.random.PRNGKey(seed)
        init_key, train_key = jax.random.split(key)
        state = task.init(init_key)
        history: dict[str, list] = {}
        start_epoch = 0
        starts: list[dict[str, Any]] = []
        ckpt_file = Path(run_dir) / CHECKPOINT_FILE if run_dir is not None else None
        if ckpt_file is not None and fresh:
            ckpt_file.unlink(missing_ok=True)
        if ckpt_file is not None:
            checkpoint.remove_stale(ckpt_file)  # temporaries of a writer that was killed
            ckpt = checkpoint.load(ckpt_file, fingerprint, state, lambda old: _explain(old, inputs))
            if ckpt is not None:
                state = _place_like(ckpt.state, state)
                history, start_epoch = ckpt.meta["history"], ckpt.meta["epoch"]
                starts = list(ckpt.meta.get("starts", []))
        if session is not None:
            # Provenance of the run as a whole: where it started, and every resume since.
            session.earlier_starts = starts
            starts = [*starts, {**session.start, "from_epoch": start_epoch}]
        last_epoch = epochs if stop_after is None else min(epochs, start_epoch + stop_after)

        options = dict(task.compiler_options) if task.compiler_options else None
        chunk_fn = make_epoch_chunk(task.train_step, options)
        eval_fn = jax.jit(task.eval_step, compiler_options=options)
        bar = tqdm(
            total=epochs * n_batches,
            initial=min(start_epoch, epochs) * n_batches,
            desc=name,
            unit="batch",
            disable=not progress,
            dynamic_ncols=True,
        )
        completed = start_epoch  # the last epoch whose checkpoint (if any) is on disk

        def done() -> bool:  # ``until`` holds for the epochs so far
            return until is not None and bool(history) and bool(until(history))

        try:
            for epoch in range(start_epoch + 1, last_epoch + 1):
                if done():
                    break
                state, row = _train_epoch(chunk_fn, state, x_train, y_train, seed, epoch, batch_size,
                                          k, train_key, bar)  # fmt: skip
                for split in eval_on:
                    xs, ys = _split_arrays(splits, split)
                    if len(xs):
                        for m, v in evaluate(eval_fn, state, xs, ys, eval_batch_size).items():
                            row[f"{split}/{m}"] = v
                for m, v in row.items():
                    history.setdefault(m, []).append(to_jsonable(v))
                if callback is not None:
                    callback(epoch, state, history)
                with finish_before_stopping():
                    if ckpt_file is not None:
                        meta = {"fingerprint": fingerprint, "inputs": inputs, "epoch": epoch,
                                "history": history, "starts": starts}
                        checkpoint.save(ckpt_file, jax.device_get(state), meta)
                    completed = epoch
        except Stopped as stop:
            raise Stopped(stop.signum, completed, epochs) from None
        finally:
            bar.close()
    if session is not None and last_epoch < epochs and not done():
        session.stopped_early = True
    return Run(state=state, history=history, config=config)


def _place_like(saved: State, fresh: State) -> State:
    """The checkpoint's host arrays placed where ``task.init`` put their fresh twins.

    A state split over several devices (:mod:`gridlib.devices`) resumes split the same way;
    the file holds plain host arrays (``device_get``), so any device count may resume it.
    A state on one device takes the old path, unchanged.
    """

    def n_devices(leaf) -> int:
        return len(leaf.sharding.device_set) if isinstance(leaf, jax.Array) else 1

    if max(map(n_devices, jax.tree.leaves(fresh)), default=1) == 1:
        return jax.tree.map(jnp.asarray, saved)

    def place(a, like):
        return jax.device_put(a, like.sharding) if isinstance(like, jax.Array) else jnp.asarray(a)

    return jax.tree.map(place, saved, fresh)


def _explain(old: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    diff = results.config_differences(old.get("inputs") or {}, inputs)
    return "differs in: " + ", ".join(diff) if diff else "saved by an older version of the library"


def _train_epoch(chunk_fn, state, x_train, y_train, seed, epoch, batch_size, k, train_key, bar):
    """One epoch of minibatches in chunks of ``k`` jitted steps; returns the state and its row."""
    n = len(x_train)
    n_batches = n // batch_size
    perm = np.random.default_rng([seed, epoch]).permutation(n)[: n_batches * batch_size]
    perm = perm.reshape(n_batches, batch_size)
    sums: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for c in range(0, n_batches, k):
        idx = perm[c : c + k]
        steps = (epoch - 1) * n_batches + c + np.arange(len(idx))
        state, metrics = chunk_fn(
            state,
            jnp.asarray(x_train[idx]),
            jnp.asarray(y_train[idx]),
            jnp.asarray(steps, dtype=jnp.uint32),
            train_key,
        )
        metrics = jax.device_get(metrics)
        _check_finite(metrics, epoch, c)
        for m, v in metrics.items():
            sums[m] = sums.get(m, 0) + np.asarray(v, dtype=np.float64).sum(axis=0)
        bar.update(len(idx))
        if "loss" in metrics:
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(metrics['loss']):.4f}")
    jax.block_until_ready(state)
    row: dict[str, Any] = {"epoch": epoch, "epoch_time_s": time.perf_counter() - t0}
    row.update({f"train/{m}": v / n_batches for m, v in sums.items()})
    return state, row


def run_dir_for(name: str) -> Path:
    """Checkpoint folder for a named run: ``runs/<name>`` (``GRIDLIB_RUNS`` overrides ``runs``).

    Command-line experiments pass this to :func:`fit`, so re-running an interrupted command
    resumes it. ``name`` is checked first (:func:`gridlib.results.check_name`), so nothing is
    ever written outside the runs folder.
    """
    return results.runs_dir() / results.check_name(name)
