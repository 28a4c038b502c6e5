r"""The price of locality, part 1: how well each temporal rule's gradient points along the exact
one, on the real task.

Every rule of :mod:`~gridlib.filtergrid.temporal` returns a gradient ``g``; the exact gradient
``g*`` of the same loss is BPTT's in float64 (the ``"sum"`` loss, except for ``online_snap1``,
which is the SnAP-1 of the per-step loss ``"per_t"`` and is compared with BPTT of that loss).
Two numbers measure how far ``g`` is from ``g*``:

.. math:: \cos(g, g^*) &= \frac{\langle g, g^*\rangle}{\lVert g\rVert\,\lVert g^*\rVert},\\
          \mathrm{rel}(g, g^*) &= \frac{\lVert g - g^*\rVert}{\lVert g^*\rVert},

over the whole parameter vector (:class:`Alignment`), over each parameter group
(``log_tau``, ``w_left``, ``w_top``, ``bias``), and over the 4 parameters of each cell or the
``4 M`` of each grid row (:class:`CellAlignment`). Gradients are batch means over a fixed batch
of real test digits, on the 28 x 10 grid of row-wise MNIST, at parameters that are either the
initial ones or snapshots of a SnAP-1 training run (:func:`train_snapshots`).

**Sequence length.** On row-wise MNIST image row ``r`` drives the grid at time step ``r``
(``dt`` = 1 ms, ``T = 28``). :func:`sequences_of_length` makes other lengths from the same digit:

- ``T <= 28``: the first ``T`` image rows, one per step (the top of the digit only; the
  first few rows of an MNIST digit are blank, so there the grid runs on its biases alone);
- ``T = 28 h`` (56, 112, ...): the whole digit, each row held for ``h`` consecutive steps of
  the same ``dt`` (the digit is presented ``h`` times more slowly).

So ``T`` is always the number of grid steps, and the temporal carry a rule drops has ``T - 1``
steps to build up.

Everything here is a pure function of its arrays, except :func:`train_snapshots` (which trains)
and the jitted-function cache that lets the same rule and shape compile once per process.
Saving the tables is :mod:`~gridlib.filtergrid.experiments`' job (``filtergrid-alignment``).

Why this module is long: the three measurements (length, position, training) share one
sequence construction, one cache of compiled rules and one reduction to cosines and errors;
split apart, each would need the others' internals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from gridlib.filtergrid.cell import DT, GridParams
from gridlib.filtergrid.model import check_params
from gridlib.filtergrid.temporal import rule_batch_grads
from gridlib.report import minus

GROUPS: tuple[str, ...] = GridParams._fields
"""Parameter groups, in the order of :class:`~gridlib.filtergrid.cell.GridParams`."""

RULES: dict[str, tuple[str, int | None]] = {
    "snap0": ("snap0", None),
    "snap1": ("snap1", None),
    "snap2": ("snap2", None),
    "tbptt1": ("tbptt", 1),
    "tbptt4": ("tbptt", 4),
    "online_snap1": ("online_snap1", None),
    "rtrl": ("rtrl", None),
}
"""The rules compared, by label: ``(rule of TEMPORAL_RULES, window K or None)``. ``rtrl`` is
exact and serves as a sanity column: it must agree with BPTT to rounding."""

IMAGE_ROWS = 28
"""Rows of an MNIST image: the natural sequence length of row-wise MNIST."""

LENGTHS: tuple[int, ...] = (1, 2, 4, 7, 14, 28, 56, 112)
"""The sequence lengths of the study (module docstring: what ``T`` means)."""


def loss_mode(label: str) -> str:
    """The loss whose gradient rule ``label`` estimates: ``"per_t"`` for ``online_snap1``,
    ``"sum"`` for the others. Its exact reference is BPTT of that loss."""
    _check_rule_labels((label,))
    return "per_t" if RULES[label][0] == "online_snap1" else "sum"


def _check_rule_labels(labels: Sequence[str]) -> None:
    unknown = [r for r in labels if r not in RULES]
    if unknown or not labels:
        raise ValueError(f"rules must be a non-empty selection of {tuple(RULES)}, got {tuple(labels)}")


def _require_x64(what: str) -> None:
    if not jax.config.jax_enable_x64:
        raise ValueError(f"{what} measures float64 gradients: enable jax_enable_x64")


# --------------------------------------------------------------------------- sequence length


def sequences_of_length(rows: Array, t_len: int) -> Array:
    """The drives of a ``t_len``-step sequence from whole images, ``rows: (..., R, N)`` (``R``
    image rows) -> ``(..., t_len, N)``.

    ``t_len <= R``: the first ``t_len`` rows; ``t_len = h R`` for an integer ``h >= 2``: every
    row held for ``h`` consecutive steps (row ``r`` drives steps ``r h .. r h + h - 1``).

    >>> import numpy as np
    >>> sequences_of_length(np.arange(3.0)[:, None], 6)[:, 0].tolist()
    [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    """
    if np.ndim(rows) < 2 or np.shape(rows)[-2] < 1:
        raise ValueError(f"rows must be (..., R, N) with R >= 1, got shape {np.shape(rows)}")
    n_rows = np.shape(rows)[-2]
    if not isinstance(t_len, (int, np.integer)) or isinstance(t_len, bool) or t_len < 1:
        raise ValueError(f"T must be an integer >= 1, got {t_len!r}")
    if t_len <= n_rows:
        return rows[..., :t_len, :]
    if t_len % n_rows:
        raise ValueError(f"T = {t_len} is neither <= {n_rows} image rows nor a multiple of them")
    return jnp.repeat(jnp.asarray(rows), t_len // n_rows, axis=-2)


# --------------------------------------------------------------------------- alignment of two gradients


class Alignment(NamedTuple):
    """How a gradient ``g`` lines up with the exact ``g*``.

    Attributes:
        cosine: ``()`` cosine over the whole parameter vector (``4 N M`` entries).
        rel_error: ``()`` ``|g - g*| / |g*|`` over the whole vector.
        group_cosine: ``(4,)`` the cosine within each group of :data:`GROUPS`.
        group_rel_error: ``(4,)`` the relative error within each group.
    """

    cosine: np.ndarray
    rel_error: np.ndarray
    group_cosine: np.ndarray
    group_rel_error: np.ndarray


class CellAlignment(NamedTuple):
    """Alignment cell by cell and row by row (NaN where the exact vector is zero).

    Attributes:
        cosine: ``(N, M)`` cosine of each cell's 4-vector ``(log_tau, w_left, w_top, bias)``.
        rel_error: ``(N, M)`` relative error of each cell's 4-vector.
        row_cosine: ``(N,)`` cosine over each grid row's ``4 M`` parameters.
        row_rel_error: ``(N,)`` relative error over each grid row's ``4 M`` parameters.
        row_norm_ratio: ``(N,)`` ``|g| / |g*|`` over each grid row: a rule may point the right
            way (cosine near 1) with a length orders of magnitude off (relative error near 1).
    """

    cosine: np.ndarray
    rel_error: np.ndarray
    row_cosine: np.ndarray
    row_rel_error: np.ndarray
    row_norm_ratio: np.ndarray


def _cos_rel(g: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and relative error over the last axis (NaN where a norm is zero)."""
    norm_g, norm_ref = np.linalg.norm(g, axis=-1), np.linalg.norm(ref, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where((norm_g > 0) & (norm_ref > 0), (g * ref).sum(-1) / (norm_g * norm_ref), np.nan)
        rel = np.where(norm_ref > 0, np.linalg.norm(g - ref, axis=-1) / norm_ref, np.nan)
    return cos, rel


def _stacked(g: GridParams, ref: GridParams) -> tuple[np.ndarray, np.ndarray]:
    """Both gradients as float64 ``(N, M, 4)`` arrays, after checking their shapes."""
    shape = check_params(ref)
    if check_params(g) != shape:
        raise ValueError(f"the gradient is {check_params(g)} but the exact one is {shape}")
    return tuple(np.stack([np.asarray(z, np.float64) for z in x], axis=-1) for x in (g, ref))


def alignment(g: GridParams, ref: GridParams) -> Alignment:
    """Cosine and relative error of ``g`` against the exact ``ref``, each a :class:`GridParams`
    of ``(N, M)`` arrays: over everything and per group (:class:`Alignment`).

    >>> import numpy as np
    >>> ref = GridParams(*(np.ones((2, 2)),) * 4)
    >>> a = alignment(ref._replace(bias=np.zeros((2, 2))), ref)
    >>> float(a.rel_error), a.group_rel_error.tolist()
    (0.5, [0.0, 0.0, 0.0, 1.0])
    """
    a, b = _stacked(g, ref)
    if not np.any(b):
        raise ValueError("the exact gradient is zero: there is nothing to align with")
    cos, rel = _cos_rel(a.reshape(-1), b.reshape(-1))
    group_cos, group_rel = _cos_rel(a.reshape(-1, 4).T, b.reshape(-1, 4).T)
    return Alignment(cos, rel, group_cos, group_rel)


def cell_alignment(g: GridParams, ref: GridParams) -> CellAlignment:
    """Alignment of every cell's 4 parameters and of every grid row's ``4 M`` parameters
    (:class:`CellAlignment`); ``g``, ``ref``: :class:`GridParams` of ``(N, M)`` arrays."""
    a, b = _stacked(g, ref)  # (N, M, 4)
    cos, rel = _cos_rel(a, b)
    n = a.shape[0]
    rows_g, rows_ref = a.reshape(n, -1), b.reshape(n, -1)
    row_cos, row_rel = _cos_rel(rows_g, rows_ref)
    norm_ref = np.linalg.norm(rows_ref, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(norm_ref > 0, np.linalg.norm(rows_g, axis=-1) / norm_ref, np.nan)
    return CellAlignment(cos, rel, row_cos, row_rel, ratio)


# --------------------------------------------------------------------------- the rules' gradients


@functools.cache
def _batch_fn(rule: str, window: int | None, mode: str, dt: float):
    """The jitted batch function of one rule (compiled once per shape and process)."""
    fn = rule_batch_grads(rule, window)

    def run(params, xs, labels):
        losses, logits, grad = fn(params, xs, labels, mode, dt)
        return losses.mean(), jnp.mean(jnp.argmax(logits, -1) == labels), grad

    return jax.jit(run)


class Comparison(NamedTuple):
    """Every rule against the exact gradient on one batch at one set of parameters.

    Attributes:
        loss: ``()`` batch-mean ``"sum"`` loss (BPTT's forward pass).
        acc: ``()`` fraction of the batch classified correctly (``argmax`` of the logits).
        row_norm: ``(N,)`` norm of the exact (``"sum"``) gradient over each grid row's ``4 M``
            parameters: where the gradient lives.
        rules: ``{label: Alignment}`` for each rule compared.
        cells: ``{label: CellAlignment}``, or ``None`` when not asked for.
    """

    loss: np.ndarray
    acc: np.ndarray
    row_norm: np.ndarray
    rules: dict[str, Alignment]
    cells: dict[str, CellAlignment] | None


def batch_gradients(params: GridParams, xs: Array, labels: Array, rules: Sequence[str] = tuple(RULES),
                    chunk: int | None = None, dt: float = DT) -> tuple[float, float, dict[str, GridParams]]:
    """Batch-mean gradients of the exact references and of ``rules``, in float64.

    Args:
        params: :class:`GridParams` of ``(N, M)`` arrays (cast to float64).
        xs: ``(B, T, N)`` drives (cast to float64); ``labels``: ``(B,)``.
        rules: labels of :data:`RULES`.
        chunk: examples per call (``B`` must be a multiple); the batch mean is the mean of the
            chunks' means. Default: the whole batch at once.

    Returns:
        ``(loss, acc, {name: gradient})`` with ``name`` the rule labels and ``"bptt/sum"``,
        ``"bptt/per_t"`` (the latter only if ``online_snap1`` is among the rules); ``loss``
        and ``acc`` of the ``"sum"`` forward pass.
    """
    _require_x64("batch_gradients")
    _check_rule_labels(rules)
    params = jax.tree.map(lambda z: jnp.asarray(z, jnp.float64), params)
    n, _ = check_params(params)
    xs, labels = jnp.asarray(xs, jnp.float64), jnp.asarray(labels)
    if xs.ndim != 3 or xs.shape[2] != n or labels.shape != xs.shape[:1] or xs.shape[0] < 1:
        raise ValueError(f"need xs (B, T, {n}) and labels (B,), got {xs.shape}, {labels.shape}")
    b = xs.shape[0]
    chunk = chunk or b
    if chunk < 1 or b % chunk:
        raise ValueError(f"chunk must divide the batch of {b}, got {chunk}")
    jobs = {"bptt/sum": ("bptt", None, "sum")}
    if any(loss_mode(r) == "per_t" for r in rules):
        jobs["bptt/per_t"] = ("bptt", None, "per_t")
    jobs.update({r: (*RULES[r], loss_mode(r)) for r in rules})
    totals: dict[str, Any] = {}
    for start in range(0, b, chunk):
        x, y = xs[start:start + chunk], labels[start:start + chunk]
        for name, (rule, window, mode) in jobs.items():
            loss, acc, grad = _batch_fn(rule, window, mode, dt)(params, x, y)
            if name == "bptt/sum":
                totals["loss"] = totals.get("loss", 0.0) + float(loss) / (b // chunk)
                totals["acc"] = totals.get("acc", 0.0) + float(acc) / (b // chunk)
            grad = jax.tree.map(lambda z: np.asarray(z) / (b // chunk), grad)
            totals[name] = grad if name not in totals else jax.tree.map(np.add, totals[name], grad)
    loss, acc = totals.pop("loss"), totals.pop("acc")
    return loss, acc, totals


def compare(params: GridParams, xs: Array, labels: Array, rules: Sequence[str] = tuple(RULES), *,
            cells: bool = False, chunk: int | None = None, dt: float = DT) -> Comparison:
    """Every rule of ``rules`` against its exact reference (:func:`loss_mode`) on one batch
    ``xs: (B, T, N)``, ``labels: (B,)`` (arguments as :func:`batch_gradients`); with ``cells``,
    also cell by cell and row by row. Needs ``jax_enable_x64``."""
    loss, acc, grads = batch_gradients(params, xs, labels, rules, chunk, dt)
    ref = {r: grads[f"bptt/{loss_mode(r)}"] for r in rules}
    exact = np.stack([np.asarray(z) for z in grads["bptt/sum"]], axis=-1)  # (N, M, 4)
    return Comparison(
        loss=np.asarray(loss), acc=np.asarray(acc),
        row_norm=np.linalg.norm(exact.reshape(exact.shape[0], -1), axis=-1),
        rules={r: alignment(grads[r], ref[r]) for r in rules},
        cells={r: cell_alignment(grads[r], ref[r]) for r in rules} if cells else None,
    )


def over_lengths(params: GridParams, rows: Array, labels: Array, ts: Sequence[int] = LENGTHS,
                 rules: Sequence[str] = tuple(RULES), *, chunk: int | None = None,
                 dt: float = DT) -> dict[int, Comparison]:
    """:func:`compare` at every sequence length of ``ts``, the sequences made from whole images
    ``rows: (B, R, N)`` by :func:`sequences_of_length`. Returns ``{T: Comparison}``."""
    if not ts:
        raise ValueError("ts must hold at least one sequence length")
    seqs = {int(t): sequences_of_length(rows, t) for t in ts}  # refuses a bad T before any work
    return {t: compare(params, x, labels, rules, chunk=chunk, dt=dt) for t, x in seqs.items()}


# --------------------------------------------------------------------------- a training run's snapshots


def _steps_per_call(boundaries: Sequence[int], cap: int) -> int:
    """The largest number of steps per call, at most ``cap``, that divides every boundary (so
    one compiled chunk length serves every stretch between them)."""
    g = math.gcd(*boundaries)
    return max(d for d in range(1, min(g, cap) + 1) if g % d == 0)


def train_snapshots(task, splits, steps: Sequence[int], *, batch_size: int = 32, seed: int = 0,
                    max_steps_per_call: int = 64) -> dict[int, Any]:
    """The training state of ``task`` after each number of optimiser steps in ``steps``.

    The run is :func:`gridlib.experiment.fit`'s, step for step: the same initial and per-step
    keys from ``seed``, the same batch order (a seeded permutation per epoch, the last partial
    batch dropped), and ``task.train_step`` grouped into one jitted scan per call by
    :func:`gridlib.experiment.make_epoch_chunk`. ``fit`` calls back only between epochs; this
    stops where the snapshots are wanted. Returns ``{step: state}`` (step 0: the initial state).

    Raises:
        ValueError: a negative or non-integer step, or a batch larger than the training set.
        FloatingPointError: the training loss became NaN or infinite.
    """
    from gridlib.experiment import make_epoch_chunk

    wanted = sorted({int(s) for s in steps})
    if not wanted or any(not isinstance(s, (int, np.integer)) or s < 0 for s in steps):
        raise ValueError(f"steps must be integers >= 0, got {list(steps)}")
    x_train, y_train = splits.x_train, splits.y_train
    n = len(x_train)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must lie in [1, {n}] (the training examples), got {batch_size}")
    n_batches = n // batch_size
    last = wanted[-1]
    bounds = [s for s in wanted if s > 0] + ([n_batches] if last > n_batches else [])
    k = _steps_per_call(bounds, max_steps_per_call) if bounds else 1
    key = jax.random.PRNGKey(seed)
    init_key, train_key = jax.random.split(key)
    state = task.init(init_key)
    snaps = {0: state} if wanted[0] == 0 else {}
    chunk_fn = make_epoch_chunk(task.train_step)
    done, perm, epoch = 0, None, 0
    while done < last:
        if done // n_batches + 1 != epoch:
            epoch = done // n_batches + 1
            perm = np.random.default_rng([seed, epoch]).permutation(n)[: n_batches * batch_size]
            perm = perm.reshape(n_batches, batch_size)
        c = done - (epoch - 1) * n_batches
        idx = perm[c:c + k]
        state, metrics = chunk_fn(state, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]),
                                  jnp.asarray(done + np.arange(k), dtype=jnp.uint32), train_key)
        loss = np.asarray(metrics.get("loss", 0.0))
        if not np.all(np.isfinite(loss)):
            raise FloatingPointError(f"the training loss became {loss} by step {done + k}")
        done += k
        if done in wanted:
            snaps[done] = state
    return snaps


# --------------------------------------------------------------------------- the whole study


class Study(NamedTuple):
    """The three tables of the alignment study.

    Attributes:
        length: ``{step: {T: Comparison}}``: every rule at every sequence length, at the
            snapshots named in ``length_at``.
        training: ``{step: Comparison}`` at ``T = 28``, with cells, at every snapshot.
    """

    length: dict[int, dict[int, Comparison]]
    training: dict[int, Comparison]


def alignment_study(splits, *, n_digits: int, ts: Sequence[int] = LENGTHS,
                    steps: Sequence[int] = (0,), length_at: Sequence[int] | None = None,
                    rules: Sequence[str] = tuple(RULES), seed: int = 0, batch_size: int = 32,
                    lr: float = 3e-3, chunk: int | None = None) -> Study:
    """Train the 28 x 10 grid on row-wise MNIST with SnAP-1 and Adam (the published setting,
    :func:`~gridlib.filtergrid.experiments.make_task`), snapshot it after each of ``steps``,
    and compare every rule with the exact gradient on the first ``n_digits`` test digits.

    ``length_at``: the snapshots at which the sequence-length table is made (default: the
    first and the last of ``steps``). Needs ``jax_enable_x64`` (the training itself runs in
    float32, as ``filtergrid-mnist`` does; the snapshots are compared in float64).
    """
    from gridlib.filtergrid.experiments import MNIST_PIXEL_SCALE, make_task, sequences

    _require_x64("alignment_study")
    _check_rule_labels(rules)
    if not 1 <= n_digits <= len(splits.x_test):
        raise ValueError(f"n_digits must lie in [1, {len(splits.x_test)}] (the test digits), got {n_digits}")
    for t in ts:
        sequences_of_length(np.zeros((IMAGE_ROWS, 1)), t)  # refuse a bad T before training
    steps = sorted({int(s) for s in steps})
    length_at = sorted(set(length_at)) if length_at is not None else sorted({steps[0], steps[-1]})
    if not set(length_at) <= set(steps):
        raise ValueError(f"length_at {length_at} must be among the snapshot steps {steps}")
    gain = 10.0
    task = make_task(rule="snap1", optimizer="adam", lr=lr, gain=gain)
    snaps = train_snapshots(task, splits, steps, batch_size=batch_size, seed=seed)
    routing = jnp.asarray(snaps[steps[0]].routing, jnp.float64)
    rows = sequences(routing, jnp.asarray(splits.x_test[:n_digits], jnp.float64), IMAGE_ROWS, gain,
                     MNIST_PIXEL_SCALE)  # (B, 28, N)
    labels = jnp.asarray(splits.y_test[:n_digits])
    length = {s: over_lengths(snaps[s].params, rows, labels, ts, rules, chunk=chunk) for s in length_at}
    training = {s: compare(snaps[s].params, rows, labels, rules, cells=True, chunk=chunk)
                for s in steps}
    return Study(length, training)


#: The published study's results name.
STUDY = "filtergrid/alignment"

#: The configuration the published study's file must declare (:func:`load_study` refuses others).
STUDY_CONFIG: dict[str, Any] = {
    "n_digits": 64, "ts": list(LENGTHS), "steps": [0, 100, 300, 1000, 1875],
    "train_rule": "snap1", "optimizer": "adam", "lr": 3e-3, "batch_size": 32,
    "n_train": 60000, "grid": [28, 10], "provenance.scale": "full",
}  # fmt: skip

#: The small version computed in place of the study at CI scale, or where it is not published:
#: the three SnAP rules on 4 test digits, snapshots at 0 and 5 steps of a run on 320 images.
SMALL = {"rules": ("snap0", "snap1", "snap2"), "n_train": 320, "n_test": 4, "steps": (0, 5),
         "ts": (4,)}


class ChapterStudy(NamedTuple):
    """The alignment study as the chapter shows it, loaded or computed small, in the form a
    results file holds it (string keys).

    Attributes:
        records: ``{name: record}`` of the published study (empty when computed small).
        n_digits: the number of test digits the gradients average over.
        training: ``{step: Comparison}`` at ``T = 28``, with cells, at every snapshot.
        length: ``{T: Comparison}`` at the first snapshot (the initial parameters).
        trained_length: ``{T: Comparison}`` at the last snapshot.
    """

    records: dict[str, dict]
    n_digits: int
    training: dict[str, Any]
    length: dict[str, Any]
    trained_length: dict[str, Any]


def load_study() -> ChapterStudy:
    """The published study (:data:`STUDY`, refused unless it declares :data:`STUDY_CONFIG`);
    at CI scale, or where it is not published, the small version :data:`SMALL`, computed here
    (needs ``jax_enable_x64``)."""
    from gridlib import data, results, scale

    if not scale.is_ci() and results.exists(STUDY):
        record = results.load(STUDY, expect=STUDY_CONFIG)
        metrics = record["metrics"]
        steps = sorted(metrics["training"], key=int)
        return ChapterStudy({STUDY: record}, record["config"]["n_digits"], metrics["training"],
                            metrics["length"][steps[0]], metrics["length"].get(steps[-1], {}))
    from gridlib.filtergrid.experiments import MNIST_PIXEL_SCALE, make_task, sequences

    _require_x64("load_study")
    small = data.load_mnist(n_train=SMALL["n_train"], n_test=SMALL["n_test"])
    snaps = train_snapshots(make_task(), small, SMALL["steps"])
    first, last = (snaps[s] for s in (SMALL["steps"][0], SMALL["steps"][-1]))
    digits = sequences(jnp.asarray(first.routing, jnp.float64), jnp.asarray(small.x_test, jnp.float64),
                       IMAGE_ROWS, 10.0, MNIST_PIXEL_SCALE)
    labels = jnp.asarray(small.y_test)
    training = {s: compare(state.params, digits, labels, SMALL["rules"], cells=True)
                for s, state in snaps.items()}
    length = [{**over_lengths(state.params, digits, labels, SMALL["ts"], SMALL["rules"]),
               IMAGE_ROWS: training[s]} for s, state in ((SMALL["steps"][0], first), (SMALL["steps"][-1], last))]
    return ChapterStudy({}, len(labels), _as_json(training), _as_json(length[0]), _as_json(length[1]))


# --------------------------------------------------------------------------- tables for the chapter


def _as_json(table: Mapping) -> dict:
    """A study table in the form a results file holds it (string keys, lists)."""
    from gridlib.results import to_jsonable

    return to_jsonable(table)


def length_rows(length: Mapping, quantity: str = "cosine", digits: int = 3) -> list[dict]:
    """Rows of a sequence-length table ``{T: Comparison}`` (live or loaded): one per rule (by
    :func:`display_name`), one column per ``T``, the whole-vector ``quantity`` (``"cosine"`` or
    ``"rel_error"``), negative numbers with a true minus sign."""
    if quantity not in ("cosine", "rel_error"):
        raise ValueError(f"quantity must be 'cosine' or 'rel_error', got {quantity!r}")
    table = _as_json(length)
    ts = sorted(table, key=int)
    fmt = (lambda v: f"{v:.{digits}f}") if quantity == "cosine" else (lambda v: f"{v:.1e}")
    rules = list(table[ts[0]]["rules"])
    return [{"rule": display_name(r), **{f"T = {t}": minus(fmt(table[t]["rules"][r][quantity])) for t in ts}}
            for r in rules]  # fmt: skip


def training_rows(training: Mapping, digits: int = 3) -> list[dict]:
    """Rows of a training table ``{step: Comparison}``: one per snapshot, the batch accuracy (%)
    and loss, and every rule's cosine with the exact gradient (columns by :func:`display_name`)."""
    table = _as_json(training)
    return [{"step": s, "batch accuracy": f"{100 * row['acc']:.2f} %", "loss": f"{row['loss']:.3f}",
             **{display_name(r): minus(f"{a['cosine']:.{digits}f}") for r, a in row["rules"].items()}}
            for s, row in sorted(table.items(), key=lambda kv: int(kv[0]))]  # fmt: skip


#: One colour per rule, the same in every figure of the rules (:mod:`~gridlib.filtergrid.comparison`
#: too), all dark enough to read on white: keyed by :data:`RULES` label, plus ``"bptt"``.
COLOURS: dict[str, str] = {
    "bptt": "#000000",
    "snap0": "#D55E00",
    "snap1": "#0072B2",
    "snap2": "#009E73",
    "tbptt1": "#56B4E9",
    "tbptt4": "#E69F00",
    "online_snap1": "#882E72",
    "rtrl": "#666666",
}

#: Line styles that keep a rule visible where another lies exactly on it: truncated BPTT with
#: ``K = 1`` computes SnAP-0's gradient to rounding, so it is drawn thin and dashed over SnAP-0.
_LINES: dict[str, dict[str, Any]] = {"tbptt1": {"ls": "--", "lw": 1.0, "zorder": 3},
                                     "snap0": {"lw": 2.6, "zorder": 2}}

#: Text size of legends and panel titles in the figures of the rules (at least 9 pt, the book's
#: floor for text at the rendered width).
LEGEND_SIZE = 9

#: The widest figure that the page's column shows at full size (688 px at 110 dpi).
MAX_WIDTH = 6.2


def display_name(rule: str) -> str:
    """The name a reader sees for a rule label of :data:`RULES` or ``"bptt"`` (``"tbptt4"`` ->
    ``"truncated BPTT, K = 4"``): the label of the same rule and window in
    :data:`gridlib.filtergrid.summary.RULE_RUNS`, ``"RTRL (exact)"`` for ``rtrl``."""
    from gridlib.filtergrid.summary import RULE_RUNS

    if rule == "rtrl":
        return "RTRL (exact)"
    if rule != "bptt":
        _check_rule_labels((rule,))
    names = {(run.rule, run.window): label for label, run in RULE_RUNS.items()}
    return names[("bptt", None) if rule == "bptt" else RULES[rule]]


def rule_id(name: str) -> str | None:
    """The :data:`RULES` label (or ``"bptt"``) of a rule's display name (:func:`display_name`,
    or a label of :data:`~gridlib.filtergrid.summary.RULE_RUNS`); ``None`` if it names none."""
    from gridlib.filtergrid.summary import RULE_RUNS

    ids = {display_name(r): r for r in RULES}
    if name in ids:
        return ids[name]
    return "bptt" if name in RULE_RUNS and RULE_RUNS[name].rule == "bptt" else None


def _colour(rule: str) -> str:
    return COLOURS[rule]


def _line(rule: str) -> dict[str, Any]:
    """Colour, label and line style of ``rule`` in the line figures."""
    return {"color": _colour(rule), "label": display_name(rule), **_LINES.get(rule, {})}


def _legend_below(fig, axes, ncol: int = 3) -> None:
    """One legend for the whole figure, under its panels, from the first panel's lines."""
    handles, labels = axes[0].get_legend_handles_labels()
    rows = -(-len(labels) // ncol)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=LEGEND_SIZE)
    fig.tight_layout(rect=(0, (0.12 + 0.2 * rows) / fig.get_figheight(), 1, 1))


def length_figure(length: Mapping):
    """Two panels against the sequence length ``T`` (log axis): every rule's cosine with the
    exact gradient, and its relative error (log axis). ``length``: ``{T: Comparison}`` (live or
    loaded). RTRL, exact to rounding, is left out of the figure (the tables show it); truncated
    BPTT with ``K = 1``, which lies on SnAP-0, is drawn dashed over it."""
    import matplotlib.pyplot as plt

    table = _as_json(length)
    ts = sorted(table, key=int)
    rules = [r for r in table[ts[0]]["rules"] if r != "rtrl"]
    fig, (ax_c, ax_e) = plt.subplots(1, 2, figsize=(MAX_WIDTH, 2.6 + 0.3 * -(-len(rules) // 2)))
    x = [int(t) for t in ts]
    for r in rules:
        kw = {"marker": "o", "ms": 3, **_line(r)}
        ax_c.plot(x, [table[t]["rules"][r]["cosine"] for t in ts], **kw)
        ax_e.plot(x, [max(table[t]["rules"][r]["rel_error"], 1e-17) for t in ts], **kw)
    for ax, label in ((ax_c, "cosine with the exact gradient"), (ax_e, "relative error")):
        ax.set_xscale("log")
        ax.set_xticks(x, [str(t) for t in ts])
        ax.minorticks_off()
        ax.set_xlabel("sequence length T (steps)")
        ax.set_ylabel(label)
    ax_e.set_yscale("log")
    _legend_below(fig, [ax_c], ncol=2)
    return fig


def rows_figure(comparisons: Mapping[str, Mapping], rules: Sequence[str] | None = None):
    """Row by row, one line of panels per labelled comparison (e.g. ``{"step 0": ...,
    "step 1875": ...}``): each rule's cosine with the exact gradient over the row's ``4 M``
    parameters, its length relative to the exact one (log axis), and the norm of the exact
    gradient in the row (log axis). Row 27 is the readout row; RTRL is left out."""
    import matplotlib.pyplot as plt

    tables = {k: _as_json(v) for k, v in comparisons.items()}
    fig, axes = plt.subplots(len(tables), 3, figsize=(MAX_WIDTH, 2.3 * len(tables) + 0.8),
                             squeeze=False, sharex=True)
    for (label, table), (ax_c, ax_r, ax_n) in zip(tables.items(), axes, strict=True):
        for r in rules or [r for r in table["rules"] if r != "rtrl"]:
            cells = table["cells"][r]
            ax_c.plot(np.asarray(cells["row_cosine"], float), **_line(r))
            ax_r.semilogy(np.asarray(cells["row_norm_ratio"], float), **_line(r))
        ax_n.semilogy(np.asarray(table["row_norm"], float), color="0.2")
        for ax, what in ((ax_c, "cosine"), (ax_r, "|g| / |g*|"), (ax_n, "|g*|")):
            ax.set_title(f"{label}: {what}", fontsize=LEGEND_SIZE + 1)
            ax.set_ylabel(what)
    for ax in axes[-1]:
        ax.set_xlabel("grid row (27: readout)")
    _legend_below(fig, axes[0], ncol=3)
    return fig


def cells_figure(comparison: Mapping, rules: Sequence[str], floor: float = -4.0):
    """One heatmap per rule: ``log10`` of the relative error of every cell's 4 parameters on the
    28 x 10 grid (readout row at the bottom), one shared colour scale, clipped below at
    ``floor`` (cells that are exact to rounding would otherwise take up the whole scale). A
    value of 0 is an error as large as the exact gradient itself (100 %)."""
    import textwrap

    import matplotlib.pyplot as plt

    table = _as_json(comparison)
    logs = {r: np.log10(np.asarray(table["cells"][r]["rel_error"], float)) for r in rules}
    lo = max(min(float(np.nanmin(v)) for v in logs.values()), floor)  # exact cells sit at the floor
    hi = max(float(np.nanmax(v)) for v in logs.values())
    width = min(MAX_WIDTH, 1.05 * len(rules) + 1.2)
    fig, axes = plt.subplots(1, len(rules), figsize=(width, 4.0), squeeze=False)
    for ax, (r, v) in zip(axes[0], logs.items(), strict=True):
        im = ax.imshow(v, vmin=lo, vmax=hi, aspect="auto", interpolation="nearest")
        ax.set_title(textwrap.fill(display_name(r), 13), fontsize=LEGEND_SIZE)
        ax.set_xticks([0, v.shape[1] - 1])
        ax.set_yticks([0, v.shape[0] - 1] if ax is axes[0, 0] else [])
        ax.grid(False)
    axes[0, 0].set_ylabel("grid row")
    fig.supxlabel("grid column", x=0.4, fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9, extend="min",
                 label="log10 relative error per cell\n(0: an error of 100 %)")
    return fig


def training_figure(training: Mapping):
    """Every rule's cosine with the exact gradient at each snapshot of the training run
    (snapshots at equal spacing, labelled by their step). RTRL is left out."""
    import matplotlib.pyplot as plt

    table = _as_json(training)
    steps = sorted(table, key=int)
    rules = [r for r in table[steps[0]]["rules"] if r != "rtrl"]
    fig, ax = plt.subplots(figsize=(MAX_WIDTH, 2.8 + 0.3 * -(-len(rules) // 2)))
    for r in rules:
        ax.plot(range(len(steps)), [table[s]["rules"][r]["cosine"] for s in steps], marker="o",
                ms=3, **_line(r))
    ax.set_xticks(range(len(steps)), steps)
    ax.set_xlabel("optimiser steps of the SnAP-1 run (Adam, batch 32)")
    ax.set_ylabel("cosine with the exact gradient")
    _legend_below(fig, [ax], ncol=2)
    return fig


__all__ = [
    "COLOURS",
    "ChapterStudy",
    "LEGEND_SIZE",
    "MAX_WIDTH",
    "SMALL",
    "STUDY",
    "STUDY_CONFIG",
    "display_name",
    "load_study",
    "rule_id",
    "Alignment",
    "CellAlignment",
    "Comparison",
    "GROUPS",
    "IMAGE_ROWS",
    "LENGTHS",
    "RULES",
    "Study",
    "alignment",
    "alignment_study",
    "batch_gradients",
    "cell_alignment",
    "cells_figure",
    "compare",
    "length_figure",
    "length_rows",
    "loss_mode",
    "over_lengths",
    "rows_figure",
    "sequences_of_length",
    "train_snapshots",
    "training_figure",
    "training_rows",
]
