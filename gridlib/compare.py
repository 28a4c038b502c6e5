"""Every system on one page: one row per system and learning rule of the book, side by side.

Each row is a reproduced configuration: its task, its learning rule and what an update of that
rule reads, its trained parameters and the learning state it carries in time per parameter
(:mod:`gridlib.footprint`, from the code's own shapes), its time per epoch (the median of the
records' ``history.epoch_time_s``), its test accuracy (mean ± sd over seeds) and the published
number. The records are read with :func:`gridlib.results.load_group` and the configuration the
row names, so records that differ in anything but the seed are refused, never averaged. The rows
of the landing page (:data:`gridlib.index.HEADLINES`) are reused with their expected
configurations and published numbers; the others are the analog-filter grid's rules with
published row-wise MNIST runs (found by name) and the 3-D NeuralGrid runs.

The one declared part is the classification of the rules (:data:`LOCALITY`, :data:`RULES`):
what an update reads, with a one-line reason for each rule -- a reading of the equations, not a
result.

The chapter shows one table per task (:func:`task_tables`, a column that is the same in every
row said once in the caption), the figure (:func:`figure`) and its findings (:func:`findings`,
:func:`class_sentences`); :func:`table_rows` is the whole table in one piece.

Why this module is long: the rows, the tables, the sentences of the chapter's discussion and the
figure all read the same measured rows, and the chapter imports only this module; the counting
itself lives in :mod:`gridlib.footprint`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from gridlib import footprint, index, report, results

#: One results file as loaded: its JSON object.
Record = Mapping[str, Any]
#: A group of results files: ``{name: record}``.
Group = Mapping[str, Record]

# --------------------------------------------------------------------------- what an update reads

#: The locality classes: what the update of one parameter reads, in words.
LOCALITY: dict[str, str] = {
    "neighbour": "its own cell's or neuron's state and traces, and messages passed to it by the "
                 "adjacent cells or layers",
    "two phases": "the activities of the two neurons a weight joins, at two or more equilibria of "
                  "the same dynamics; the error enters only as a nudge of the output units",
    "global": "a quantity that depends on the whole network: an error from a backward pass over "
              "the stored computation (every layer, every time step), or exact RTRL's full "
              "influence matrix",
}  # fmt: skip


class Rule(NamedTuple):
    """A learning rule: its name, its class in :data:`LOCALITY` and why it is in that class."""

    name: str
    reads: str
    why: str


#: Every rule of the book (the filter grid's by :data:`gridlib.filtergrid.TEMPORAL_RULES` name).
RULES: dict[str, Rule] = {
    "snap0": Rule("SnAP-0", "neighbour", "its cell's 3 self-traces and the within-step message "
                  "that its two children pass up"),
    "snap1": Rule("SnAP-1", "neighbour", "its cell's 3 self-traces, 8 cross-traces about its two "
                  "children, and the children's within-step messages"),
    "online_snap1": Rule("online SnAP-1", "neighbour", "as SnAP-1, with a loss at every step, "
                         "so the update is ready within the step"),
    "snap2": Rule("SnAP-2", "neighbour", "SnAP-1's traces plus those about the three cells two "
                  "hops downstream, and their messages"),
    "tbptt": Rule("truncated BPTT", "global", "each step's error back-propagated K steps "
                  "through the whole grid"),
    "bptt": Rule("BPTT", "global", "the error back-propagated through every cell and the stored "
                 "trajectory of all T steps"),
    "rtrl": Rule("exact RTRL", "global", "its column of the full influence matrix: how every "
                 "cell's state depends on it"),
    "ep": Rule("EP", "two phases", "ρ(s_i) ρ(s_j) of the two neurons it joins, at the free and "
               "at the nudged fixed point"),
    "centered_ep": Rule("centered EP", "two phases", "the same product at the fixed points "
                        "nudged by +β and by −β"),
    "gle": Rule("GLE", "neighbour", "the presynaptic rate and its neuron's error unit, which "
                "hears the layer above through Wᵀ while the network runs"),
    "le": Rule("LE", "neighbour", "as GLE, with instantaneous errors (no prospective error "
               "dynamics), one layer per time step"),
    "backprop": Rule("backprop", "global", "an error back-propagated through every layer in a "
                     "separate backward pass"),
}  # fmt: skip


# --------------------------------------------------------------------------- the rows


class Row(NamedTuple):
    """One row of the table.

    Attributes:
        headline: the records (pattern), their expected configuration and the published number
            (:class:`gridlib.index.Headline`).
        network: the network, in a few words (``"28×10"``, ``"784-500-10"``).
        task: the data set.
        rule: a key of :data:`RULES`.
        optimizer: how the updates are applied (``"Adam"``; the batch size is read from the records).
        params: a record's config -> its trained parameters.
        state: a record's config -> learning state carried in time per parameter (``None``: the
            input is static, nothing is carried in time).
        no_published: why there is no published number, where there is none.
        variant: what sets this row apart from others with the same rule (``"K = 4"``), or ``""``.
    """

    headline: index.Headline
    network: str
    task: str
    rule: str
    optimizer: str
    params: Callable[[Record], int]
    state: Callable[[Record], float] | None = None
    no_published: str = ""
    variant: str = ""

    @property
    def rule_name(self) -> str:
        """The rule's name, with the variant in parentheses where there is one."""
        return RULES[self.rule].name + (f" ({self.variant})" if self.variant else "")


_OPTIMIZERS = {"adam": "Adam", "sgd": "per-group SGD"}


def _headline(pattern: str) -> index.Headline | None:
    return next((h for h in index.HEADLINES if h.pattern == pattern), None)


def filtergrid_rows() -> list[Row]:
    """The filter grid's rules with published full-data row-wise MNIST runs, found by run name;
    each configuration one row (SnAP-1 first, then by rule, optimiser and budget)."""
    from gridlib.filtergrid.summary import MNIST_RUNS, mnist_command, mnist_expect, parse_run_name

    found = set()
    for name in results.names("filtergrid/*_n60000_seed*"):
        parsed = parse_run_name(name)
        if parsed and parsed[0].rule in RULES:
            found.add(parsed[0])
    order = list(RULES)
    rows = []
    for run in sorted(found, key=lambda r: (order.index(r.rule), r.optimizer, -r.epochs,
                                             r.window or 0, r.every_step)):
        pattern = run.name("*")
        variant = f"K = {run.window}" if run.window is not None else ""
        variant += "an update per time step" if run.every_step else ""
        rule = RULES[run.rule].name + (f" ({variant})" if variant else "")
        h = _headline(pattern) or index.Headline(
            "Analog-filter grid", f"{rule} + {_OPTIMIZERS[run.optimizer]}, row-wise MNIST",
            "notebooks/12-rowwise-mnist" if run in MNIST_RUNS.values() else "notebooks/60-temporal-rules",
            pattern, mnist_expect(run),
            index.seed_values("test/acc"), command=mnist_command(run, seed="S"))
        n, m = h.expect["grid"]
        rows.append(Row(h, f"{n}×{m}", "row-wise MNIST", run.rule, _OPTIMIZERS[run.optimizer],
                        footprint.filtergrid_params, footprint.filtergrid_state_per_parameter,
                        "" if h.published is not None else "the original ran SnAP-1 only",
                        variant))  # fmt: skip
    return rows


def _grid3d(dataset: str, what: str) -> index.Headline:
    return index.Headline(
        "NeuralGrid", f"3-D grid, 16 slices, {what}", "notebooks/40-neuralgrid",
        f"neuralgrid/grid3d_{dataset}_seed*",
        {"dataset": dataset, "n_layers": 16, "epochs": 10, "n_train": 60000, "n_test": 10000,
         "provenance.scale": "full"},
        index.seed_values("test_acc"), command=f"python -m gridlib neuralgrid3d --dataset {dataset} --seed S")  # fmt: skip


def _fashion(kind: str) -> index.Headline:
    """Chapter 62's 784-500-10 runs on Fashion-MNIST: EP, the backprop baseline with the same
    units (``"mlp"``) and its ReLU control (``"relu"``), with chapter 62's expectations."""
    from gridlib.ep import summary as ep

    ds, arch = "fashion_mnist", ep.CROSS_ARCH
    if kind == "ep":
        return index.Headline(
            "Equilibrium propagation", f"{arch}, Fashion-MNIST", "notebooks/62-ep-fashion-mnist",
            ep.cross_ep_pattern(ds), ep.cross_ep_expect(ds), index.seed_values("test_acc"),
            command=ep.cross_commands(ds, 0)[0].replace("--seed 0", "--seed S"))  # fmt: skip
    relu = kind == "relu"
    return index.Headline(
        "Backprop baseline", f"MLP {arch}{', ReLU' if relu else ''}, Fashion-MNIST",
        "notebooks/62-ep-fashion-mnist",
        ep.relu_pattern(ds) if relu else f"baselines/{ds}-mlp-{arch}_seed*",
        {**ep.cross_mlp_expect(ds), **({"activation": "relu"} if relu else {})},
        index.seed_values("test/acc"),
        command=(ep.relu_command(ds, 0) if relu else ep.cross_commands(ds, 0)[1]).replace(
            "--seed 0", "--seed S"))  # fmt: skip


def rows() -> list[Row]:
    """Every row of the table, grouped by system: the filter grid's rules
    (:func:`filtergrid_rows`), EP, GLE, NeuralGrid, gridnet and the backprop MLPs."""

    def h(pattern: str) -> index.Headline:
        found = _headline(pattern)
        if found is None:
            raise KeyError(f"no headline of gridlib.index.HEADLINES has the pattern {pattern!r}")
        return found

    fp, mlp, no_3d = footprint, "the book's own baseline", "the blog reports no 3-D accuracy"
    return [
        *filtergrid_rows(),
        Row(h("ep/mnist_784-500-10_ep_seed*"), "784-500-10", "MNIST", "ep", "SGD", fp.ep_params),
        Row(h("ep/mnist_784-500-10_symmetric_seed*"), "784-500-10", "MNIST", "centered_ep", "SGD", fp.ep_params),
        Row(h("ep/mnist_784-256-256-10_ep_seed*"), "784-256-256-10", "MNIST", "ep", "SGD", fp.ep_params),
        *(Row(h(f"gle/mnist1d/{arch}_seeds*"), what, "MNIST-1D", rule, "Adam", fp.gle_params,
              fp.gle_state_per_parameter)
          for arch, what, rule in (("e2e15k", "end-to-end, 15k", "gle"), ("e2e42k", "end-to-end, 42k", "gle"),
                                   ("static", "static lag-net + MLP", "le"))),
        Row(h("neuralgrid/fashion_mnist_blog_seed*"), "64×64 grid", "Fashion-MNIST", "backprop", "Adam",
            fp.neuralgrid_params),
        *(Row(_grid3d(ds, task), "3-D grid, 16×28×28", task, "backprop", "Adam", fp.neuralgrid_params,
              no_published=no_3d) for ds, task in (("mnist", "MNIST"), ("fashion_mnist", "Fashion-MNIST"))),
        Row(h("gridnet/cpu_seed*"), "16³ grid, CPU preset", "MNIST", "backprop", "AdamW", fp.gridnet_params,
            no_published="the seed publishes no accuracy"),
        *(Row(h(f"baselines/mnist-mlp-{arch}_seed*"), f"MLP {arch}", "MNIST", "backprop", "Adam",
              fp.mlp_params, no_published=mlp) for arch in ("784-500-10", "784-256-256-10")),
        Row(_fashion("ep"), "784-500-10", "Fashion-MNIST", "ep", "SGD", fp.ep_params,
            no_published="the EP paper ran no Fashion-MNIST"),
        Row(_fashion("mlp"), "MLP 784-500-10", "Fashion-MNIST", "backprop", "Adam", fp.mlp_params,
            no_published=mlp),
        Row(_fashion("relu"), "MLP 784-500-10, ReLU", "Fashion-MNIST", "backprop", "Adam",
            fp.mlp_params, no_published=mlp),
    ]  # fmt: skip


# --------------------------------------------------------------------------- measured


class Measured(NamedTuple):
    """A row with its records loaded and its numbers computed (``None`` where not run yet).

    Attributes:
        row: the :class:`Row`.
        records: the records of the row's configuration (the seeds).
        accuracies: the final test accuracy of each seed.
        params: trained parameters.
        state: learning state carried in time, floats per parameter (``None``: static input).
        epoch_s: median seconds per training epoch over every epoch of every record.
        seeds_per_process: how many seeds one process trained at once (several for GLE's ensembles).
        cores: the ``cpu_count`` of the machines that ran the records.
    """

    row: Row
    records: dict[str, dict[str, Any]]
    accuracies: list[float] | None
    params: int | None
    state: float | None
    epoch_s: float | None
    seeds_per_process: int
    cores: tuple[int, ...]


def measure(row: Row) -> Measured:
    """Load a row's records and compute its numbers.

    Raises:
        gridlib.results.ResultsError: a record differs from the row's expected configuration, or
            the records differ in anything but the seed (they would be averaged).
    """
    group = results.load_group(row.headline.pattern, expect=row.headline.expect, allow_empty=True)
    if not group:
        return Measured(row, {}, None, None, None, None, 1, ())
    config = next(iter(group.values()))["config"]
    times = [t for r in group.values() for t in (r.get("history") or {}).get("epoch_time_s") or []]
    return Measured(
        row, dict(group), row.headline.values(group), row.params(config),
        row.state(config) if row.state else None, float(np.median(times)) if times else None,
        len(config.get("seeds") or [0]),
        tuple(sorted({int(r["provenance"].get("cpu_count") or 0) for r in group.values()})))  # fmt: skip


def measure_all(which: Sequence[Row] | None = None) -> list[Measured]:
    """:func:`measure` of every row (default :func:`rows`)."""
    return [measure(r) for r in (rows() if which is None else which)]


def mean_accuracy(m: Measured) -> float | None:
    """The mean test accuracy over the row's seeds (``None`` when not run yet)."""
    return report.mean_sd(m.accuracies)[0] if m.accuracies else None


def published(m: Measured) -> str:
    """The published number, short, or why there is none."""
    text = index.published_text(m.row.headline, short=True)
    return f"none: {m.row.no_published}" if text == "none" and m.row.no_published else text


def accuracy_text(values: Sequence[float], key: str | None = None, n: bool = True) -> str:
    """``"44.49 ± 5.79 % (n=3)"``, or ``"30.60 % (n=1)"`` for one seed (no spread to show); with
    ``key`` (:func:`accuracy_key`) the number is keyed (:func:`gridlib.report.quantity`)."""
    return report.format_mean_sd(values, percent=True, n=n, key=key)


def accuracy_key(m: Measured) -> str:
    """The stable key of a row's test accuracy (:func:`gridlib.index.accuracy_key`)."""
    return index.accuracy_key(m.row.headline.pattern)


def _seconds(m: Measured) -> str:
    if m.epoch_s is None:
        return "–"
    text = f"{m.epoch_s:,.1f}" if m.epoch_s < 100 else f"{m.epoch_s:,.0f}"
    return text + (f" ({m.seeds_per_process} seeds)" if m.seeds_per_process > 1 else "")


#: The columns of :func:`table_rows`, in order.
COLUMNS = ("#", "system", "task", "rule", "update reads", "training", "parameters", "epochs",
           "state / parameter", "s / epoch", "test accuracy", "published")  # fmt: skip


def table_rows(measured: Sequence[Measured], link: bool = True) -> list[dict[str, str]]:
    """The table (:data:`COLUMNS`), one dict per row: its number, system
    and network (linked to its chapter), task, rule, what an update reads, optimiser and batch,
    parameters, epochs, state per parameter, seconds per epoch, test accuracy and the published
    number. A row not run yet shows its command instead of its numbers."""
    out = []
    for i, m in enumerate(measured, 1):
        h, rule = m.row.headline, RULES[m.row.rule]
        what = f"{h.system}: {m.row.network}"
        row = dict.fromkeys(COLUMNS, "")
        row.update({"#": str(i), "system": index.doc_link(h.chapter, what) if link else what,
                    "task": m.row.task, "rule": m.row.rule_name, "update reads": rule.reads})  # fmt: skip
        if m.accuracies is None:
            out.append({**row, "test accuracy": f"not run yet: `{h.command}`"})
            continue
        config = next(iter(m.records.values()))["config"]
        out.append({
            **row, "training": f"{m.row.optimizer}, batch {batch_size(config)}",
            "parameters": f"{m.params:,}", "epochs": str(config["epochs"]),
            "state / parameter": "–" if m.state is None else f"{m.state:.3g}",
            "s / epoch": _seconds(m), "test accuracy": accuracy_text(m.accuracies, accuracy_key(m)),
            "published": published(m),
        })  # fmt: skip
    return out


def rule_rows(measured: Sequence[Measured]) -> list[dict[str, str]]:
    """The rules of the table (each once): what an update reads, and why."""
    seen = dict.fromkeys(m.row.rule for m in measured)
    return [{"rule": RULES[r].name, "update reads": RULES[r].reads, "because it reads": RULES[r].why}
            for r in seen]  # fmt: skip


def best_by_class(measured: Sequence[Measured]) -> dict[str, dict[str, Measured]]:
    """``{task: {locality class: the row with the highest mean accuracy}}``, rows with results only."""
    out: dict[str, dict[str, Measured]] = {}
    for m in measured:
        acc = mean_accuracy(m)
        if acc is None:
            continue
        best = out.setdefault(m.row.task, {})
        cls = RULES[m.row.rule].reads
        if cls not in best or acc > mean_accuracy(best[cls]):  # type: ignore[operator]
            best[cls] = m
    return out


def batch_size(config: Record) -> int:
    """A record's minibatch size (GLE's runs keep it in ``setup.batch``)."""
    return int(config["batch_size"] if "batch_size" in config else config["setup"]["batch"])


def label(m: Measured) -> str:
    """A short name of a row: its rule, network and optimiser, ``"SnAP-1, 28×10 (Adam)"``."""
    return f"{m.row.rule_name}, {m.row.network} ({m.row.optimizer})"


def _spread_words(gap: float, sd: float) -> str:
    """Where a gap lies against a seed standard deviation, in words."""
    if gap <= sd:
        return "within the seeds' spread"
    return "well beyond the seeds' spread" if gap > 2 * sd else "beyond the seeds' spread"


def class_gap(measured: Sequence[Measured], task: str) -> tuple[Measured, Measured, float, float] | None:
    """On ``task``: the best row of the best locality class, the best row of the runner-up class,
    the gap of their means and the larger of their seed standard deviations (fractions), or
    ``None`` where the task has one class only."""
    best = best_by_class(measured).get(task, {})
    if len(best) < 2:
        return None
    (_, top), (_, second) = sorted(best.items(), key=lambda kv: -mean_accuracy(kv[1]))[:2]  # type: ignore[operator]
    gap = mean_accuracy(top) - mean_accuracy(second)  # type: ignore[operator]
    sd = max(report.mean_sd(top.accuracies)[1], report.mean_sd(second.accuracies)[1])  # type: ignore[arg-type]
    return top, second, gap, sd


def class_sentences(measured: Sequence[Measured]) -> list[str]:
    """Per task with more than one locality class: what the best class gains over the runner-up
    class, answer first (Markdown, at most three numbers, computed from the table)."""
    out = []
    for task in dict.fromkeys(m.row.task for m in measured):
        found = class_gap(measured, task)
        if found is None:
            continue
        top, second, gap, sd = found
        cls_top, cls_second = RULES[top.row.rule].reads, RULES[second.row.rule].reads
        out.append(
            f"On {task}, the best “{cls_top}” rule leads the best “{cls_second}” rule by "
            f"{100 * gap:.2f} points, {_spread_words(gap, sd)}: {label(top)} reaches "
            f"{accuracy_text(top.accuracies, accuracy_key(top), n=False)}, {label(second)} "  # type: ignore[arg-type]
            f"{accuracy_text(second.accuracies, accuracy_key(second), n=False)}.")  # type: ignore[arg-type]
    return out


def findings(measured: Sequence[Measured]) -> list[str]:
    """The chapter's closing bullets, each answer first, with at most three numbers, computed
    from the table."""
    out = list(class_sentences(measured))
    same = []
    for ep in (m for m in measured if m.row.rule == "ep" and m.accuracies):
        bp = next((m for m in measured if m.row.task == ep.row.task and m.accuracies
                   and m.row.network == f"MLP {ep.row.network}"), None)  # fmt: skip
        if bp is not None:
            same.append((f"{ep.row.task} ({ep.row.network})",
                         100 * (mean_accuracy(bp) - mean_accuracy(ep))))  # type: ignore[operator]
    relu = any("ReLU" in m.row.network and m.accuracies for m in measured)
    if same:
        out.append("Against backprop on the same network with the same units, EP is "
                   + ("at most half a point behind" if all(g <= 0.5 for _, g in same) else "behind")
                   + ": backprop minus EP is "
                   + ", ".join(f"{'−' if g < 0 else '+'}{abs(g):.2f} points on {t}" for t, g in same)
                   + ("; the ReLU control's lead on Fashion-MNIST comes with its units." if relu else "."))
    state = {m.row.rule: m.state for m in measured if m.state is not None and m.row.task == "row-wise MNIST"}
    if {"snap1", "bptt", "rtrl"} <= set(state):
        out.append(
            f"Exactness is what costs memory: SnAP-1 carries {state['snap1']:.3g} floats of "
            f"learning state per parameter at any sequence length, BPTT stores {state['bptt']:.3g} "
            f"at T = {footprint.ROWWISE_STEPS} and more for longer sequences, and exact RTRL "
            f"carries {state['rtrl']:.3g}.")
    timed = [m for m in measured if m.epoch_s and m.row.task == "row-wise MNIST" and m.accuracies]
    if timed:
        fast, slow = min(timed, key=lambda m: m.epoch_s), max(timed, key=lambda m: m.epoch_s)  # type: ignore[arg-type, return-value]
        bptt = next((m for m in timed if m.row.rule == "bptt"), None)

        def name(m: Measured) -> str:
            return f"{m.row.rule_name} with {m.row.optimizer}"

        text = (f"Only {name(slow)} is slow beyond doubt: its epoch takes {_seconds(slow)} s, "
                f"{slow.epoch_s / fast.epoch_s:.0f}× the fastest ({name(fast)})")  # type: ignore[operator]
        if bptt is not None and bptt is not fast:
            ratio = bptt.epoch_s / fast.epoch_s  # type: ignore[operator]
            text += (". BPTT's epochs are within the factor of two that a shared machine blurs"
                     if ratio < 2 else f". BPTT's epochs take {ratio:.1f}× as long")
        out.append(text + ".")
    with_pub = [m for m in measured if m.accuracies and (m.row.headline.ep_range or m.row.headline.published is not None)]
    close = [m for m in with_pub if _matches_published(m)]
    if with_pub:
        off = [f"{m.row.headline.system}: {m.row.rule_name} with {m.row.optimizer} on {m.row.task}"
               for m in with_pub if m not in close]  # fmt: skip
        out.append(f"{len(close)} of the {len(with_pub)} rows with a published number match it, "
                   "inside the EP paper's range or within one seed standard deviation"
                   + (f"; the others are {'; '.join(off)}, and the landing page's notes say why."
                      if off else "."))
    return out


def _matches_published(m: Measured) -> bool:
    h = m.row.headline
    mean, sd = report.mean_sd(m.accuracies)  # type: ignore[arg-type]
    if h.ep_range:
        lo, hi = index.EP_PUBLISHED_TEST_ERR
        return lo - 1e-9 <= 1 - mean <= hi + 1e-9
    return abs(mean - h.published) <= max(sd, h.published_sd or 0.0)  # type: ignore[operator]


def left_out(measured: Sequence[Measured]) -> list[dict[str, str]]:
    """The published results that no row shows (benchmarks and re-checks aside), with their
    headline as the results index words it: trials, checks and experiments without a test
    accuracy of a trained classifier."""
    shown = {n for m in measured for n in m.records}
    out = []
    for e in index.catalogue():
        if e.key.startswith("bench/") or set(e.records) <= shown:
            continue
        where = index.doc_link(e.chapter) if e.chapter else "no chapter"
        out.append({"result": e.key, "shown in": where, "headline": index.headline(e.records)})
    return out


# --------------------------------------------------------------------------- one table per task


class TaskTable(NamedTuple):
    """The rows of one task: ``caption`` says, in a sentence, what every row shares (the
    network where there is one, and why a dash stands under "published")."""

    task: str
    caption: str
    rows: list[dict[str, str]]


#: The columns of a task's table (a column that is the same in every row moves to the caption).
TASK_COLUMNS = ("rule", "update reads", "network", "parameters", "training",
                "learning state (floats / parameter)", "seconds / epoch", "test accuracy",
                "published")  # fmt: skip
_ORDER = tuple(LOCALITY)


def training_text(m: Measured) -> str:
    """``"Adam, batch 32, 10 epochs"``: how a row's updates are applied, and for how long."""
    config = next(iter(m.records.values()))["config"]
    epochs = config["epochs"]
    return f"{m.row.optimizer}, batch {batch_size(config)}, {epochs} epoch{'s' if epochs != 1 else ''}"


def _task_row(m: Measured, link: bool) -> dict[str, str]:
    h = m.row.headline
    row = {"rule": index.doc_link(h.chapter, m.row.rule_name) if link else m.row.rule_name,
           "update reads": RULES[m.row.rule].reads, "network": f"{h.system}: {m.row.network}"}  # fmt: skip
    if m.accuracies is None:
        return {**row, "test accuracy": f"not run yet: `{h.command}`"}
    text = published(m)
    return {**row, "parameters": f"{m.params:,}", "training": training_text(m),
            "learning state (floats / parameter)": "–" if m.state is None else f"{m.state:.3g}",
            "seconds / epoch": _seconds(m), "test accuracy": accuracy_text(m.accuracies, accuracy_key(m)),
            "published": "–" if text.startswith("none") else text}  # fmt: skip


def task_tables(measured: Sequence[Measured], link: bool = True) -> list[TaskTable]:
    """One table per task, in the order the tasks first appear: rows by training budget, then
    by locality class (:data:`LOCALITY`'s order), then best first; each rule linked to the
    chapter that shows it. A column whose every row says the same (the network of row-wise
    MNIST) is dropped and said once in the caption."""
    out = []
    for task in dict.fromkeys(m.row.task for m in measured):
        ms = [m for m in measured if m.row.task == task]
        ms.sort(key=lambda m: (training_text(m).split(",")[0] if m.records else "~",
                               _ORDER.index(RULES[m.row.rule].reads),
                               -(mean_accuracy(m) or 0.0)))  # fmt: skip
        rows = [_task_row(m, link) for m in ms]
        shared = [c for c in ("network", "parameters", "rule", "update reads")
                  if len(rows) > 1 and len({r.get(c) for r in rows}) == 1]
        phrases = {"network": "trains the same network ({})", "parameters": "has {} parameters",
                   "rule": "learns by {}", "update reads": "has an update that reads “{}”"}
        said = [phrases[c].format(rows[0][c]) for c in shared]
        caption = ("Every row " + ", ".join(said[:-1]) + (" and " if len(said) > 1 else "")
                   + said[-1] + ".") if said else ""
        state = "learning state (floats / parameter)"
        if all(r.get(state) == "–" for r in rows):
            shared.append(state)
            caption += " Nothing is carried in time: the input is a static image."
        reasons = list(dict.fromkeys(m.row.no_published for m in ms
                                     if m.accuracies and published(m).startswith("none")))  # fmt: skip
        if reasons:
            caption += " No published number (a dash): " + "; ".join(reasons) + "."
        columns = [c for c in TASK_COLUMNS if c not in shared]
        out.append(TaskTable(task, caption.strip(), [{c: r.get(c, "") for c in columns} for r in rows]))
    return out


def task_markdown(table: TaskTable):
    """A task's table as displayed Markdown: its caption, then the table."""
    from IPython.display import Markdown

    return Markdown((table.caption + "\n\n" if table.caption else "") + report.markdown_table(table.rows))


# --------------------------------------------------------------------------- the figure

_MARKERS = {"neighbour": "o", "two phases": "s", "global": "^"}


def _point_label(m: Measured, several_networks: bool) -> str:
    """A figure's label of a row: the rule, its optimiser, and the network where a task has
    several."""
    what = m.row.rule_name.replace(" (an update per time step)", ", every step")
    short = {"per-group SGD": "SGD", "AdamW": "AdamW"}.get(m.row.optimizer, m.row.optimizer)
    what += f" ({short}, {m.row.network})" if several_networks else f" ({short})"
    return what


def figure(measured: Sequence[Measured]):
    """Test accuracy (%) of every row with results, one panel per task, one line per row (mean,
    ± 1 sd where there are several seeds; every seed a faint dot), labelled with its rule and
    optimiser (and network where a task has several), colour and marker by locality class
    (:data:`LOCALITY`). Rows in the order of :func:`task_tables`."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from gridlib import plotting

    colours = {c: plotting.PALETTE[i] for i, c in enumerate(LOCALITY)}
    order = {id(m): i for i, m in enumerate(measured)}
    tables = []
    for t in task_tables(measured, link=False):
        ms = [m for m in measured if m.row.task == t.task and m.accuracies]
        ms.sort(key=lambda m: (training_text(m).split(",")[0], _ORDER.index(RULES[m.row.rule].reads),
                               -(mean_accuracy(m) or 0.0), order[id(m)]))  # fmt: skip
        if ms:
            tables.append((t.task, ms))
    heights = [len(ms) + 1.2 for _, ms in tables]
    fig, axes = plt.subplots(len(tables), 1, figsize=(7.5, 0.3 * sum(heights) + 0.9),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)  # fmt: skip
    for ax, (task, ms) in zip(axes[:, 0], tables, strict=True):
        several = len({m.row.network for m in ms}) > 1
        for y, m in enumerate(ms):
            cls = RULES[m.row.rule].reads
            acc = 100 * np.asarray(m.accuracies)
            ax.plot(acc, np.full(acc.shape, y), ".", color=colours[cls], alpha=0.35)
            ax.errorbar(acc.mean(), y, xerr=acc.std(ddof=1) if acc.size > 1 else None,
                        marker=_MARKERS[cls], color=colours[cls], ms=6, capsize=2, ls="none")  # fmt: skip
        ax.set_yticks(range(len(ms)), [_point_label(m, several) for m in ms], fontsize=9)
        ax.set_ylim(len(ms) - 0.5, -0.5)
        ax.set_title(task, fontsize=10, loc="left")
        ax.set_xlabel("test accuracy (%)", fontsize=9)
        ax.tick_params(axis="x", labelsize=9)
        ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], marker=_MARKERS[c], color=colours[c], ls="none", label=c)
               for c in LOCALITY if any(RULES[m.row.rule].reads == c for _, ms in tables for m in ms)]  # fmt: skip
    fig.legend(handles=handles, title="the update reads", loc="lower center", ncol=len(handles),
               fontsize=9, title_fontsize=9, frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0.6 / (0.3 * sum(heights) + 0.9), 1, 1))
    return fig
