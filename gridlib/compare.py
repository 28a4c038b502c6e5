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

Why this module is long: the rows, the table, the sentences of the chapter's discussion and the
figure all read the same measured rows, and the chapter imports only this module; the counting
itself lives in :mod:`gridlib.footprint`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from gridlib import footprint, index, report, results

Record = Mapping[str, Any]
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


def accuracy_text(values: Sequence[float]) -> str:
    """``"44.5 ± 5.8 % (n=3)"``, or ``"30.6 % (n=1)"`` for one seed (no spread to show)."""
    if len(values) == 1:
        return f"{100 * values[0]:.1f} % (n=1)"
    return report.format_mean_sd(values, 1, percent=True)


def _seconds(m: Measured) -> str:
    if m.epoch_s is None:
        return "–"
    text = f"{m.epoch_s:,.1f}" if m.epoch_s < 100 else f"{m.epoch_s:,.0f}"
    return text + (f" ({m.seeds_per_process} seeds)" if m.seeds_per_process > 1 else "")


#: The columns of :func:`table_rows`, in order.
COLUMNS = ("#", "system", "task", "rule", "update reads", "training", "parameters", "epochs",
           "state / parameter", "s / epoch", "test accuracy", "published")  # fmt: skip
#: The table is shown in two halves, so that each fits the page: what each row trains, ...
SETUP_COLUMNS = ("#", "system", "task", "rule", "update reads", "training", "parameters",
                 "state / parameter")  # fmt: skip
#: ... and what it costs and reaches.
RESULT_COLUMNS = ("#", "system", "epochs", "s / epoch", "test accuracy", "published")


def table_rows(measured: Sequence[Measured], link: bool = True) -> list[dict[str, str]]:
    """The table (:data:`COLUMNS`), one dict per row: its number (as in :func:`figure`), system
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
            "s / epoch": _seconds(m), "test accuracy": accuracy_text(m.accuracies),
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


def class_sentences(measured: Sequence[Measured]) -> list[str]:
    """Per task with more than one locality class: the best row of each class, best first, and the
    gap between the best and the runner-up class (Markdown, computed from the table)."""
    out = []
    for task, best in best_by_class(measured).items():
        if len(best) < 2:
            continue
        ranked = sorted(best.items(), key=lambda kv: -mean_accuracy(kv[1]))  # type: ignore[operator]
        parts = [f"{cls}: {label(m)}, {accuracy_text(m.accuracies)}"  # type: ignore[arg-type]
                 for cls, m in ranked]  # fmt: skip
        gap = 100 * (mean_accuracy(ranked[0][1]) - mean_accuracy(ranked[1][1]))  # type: ignore[operator]
        out.append(f"On {task}, the best of each class is {'; '.join(parts)}. The best “{ranked[0][0]}” row "
                   f"leads the best “{ranked[1][0]}” row by {gap:.1f} points.")  # fmt: skip
    return out


def state_sentence(measured: Sequence[Measured]) -> str:
    """The rules that carry learning state in time, fewest floats per parameter first (one entry
    per rule and network), with their seconds per epoch."""
    seen: dict[tuple[str, str], Measured] = {}
    for m in sorted((m for m in measured if m.state is not None and m.accuracies), key=lambda m: m.state):
        seen.setdefault((m.row.rule_name, m.row.network), m)
    if not seen:
        return "No row carries learning state in time."
    parts = []
    for m in seen.values():
        grows = f" for T = {footprint.ROWWISE_STEPS} steps, growing with T" if m.row.rule == "bptt" else ""
        parts.append(f"{m.row.rule_name}, {m.row.network}: {m.state:.3g}{grows}")
    return "Learning state carried in time, in floats per trained parameter: " + "; ".join(parts) + "."


def time_sentences(measured: Sequence[Measured]) -> list[str]:
    """Per task and parameter count with several rules (the same network, or one as large): their
    seconds per epoch, fastest first."""
    groups: dict[tuple[str, int], list[Measured]] = {}
    for m in measured:
        if m.epoch_s is not None and m.params is not None:
            groups.setdefault((m.row.task, m.params), []).append(m)
    out = []
    for (task, params), ms in groups.items():
        if len({m.row.rule for m in ms}) < 2:
            continue
        parts = [f"{label(m)} {_seconds(m)} s" for m in sorted(ms, key=lambda m: m.epoch_s)]  # type: ignore[arg-type, return-value]
        out.append(f"{task}, {params:,} parameters: " + ", ".join(parts) + ".")
    return out


def published_sentence(measured: Sequence[Measured]) -> str:
    """Ours against the published number, for every row that has one (gap in points, or where
    the test error lies in the EP range)."""
    parts = []
    for m in measured:
        h = m.row.headline
        if m.accuracies and (h.ep_range or h.published is not None):
            parts.append(f"{label(m)}: {index.published_gap(h, report.mean_sd(m.accuracies)[0])}")
    if not parts:
        return "No row has a published number yet."
    return f"Against the published numbers ({len(parts)} rows): " + "; ".join(parts) + "."


def findings(measured: Sequence[Measured]) -> list[str]:
    """The chapter's closing bullets, computed from the table."""
    done = [m for m in measured if m.accuracies]
    several = sum(len(m.accuracies) > 1 for m in done)  # type: ignore[arg-type]
    missing = len(measured) - len(done)
    out = [f"{len(measured)} rows: {len({m.row.headline.system for m in measured})} systems, "
           f"{len({m.row.rule for m in measured})} rules, {len({m.row.task for m in measured})} tasks; "
           f"{several} rows average several seeds, {len(done) - several} rest on one"
           + (f", and {missing} are not run yet." if missing else ".")]  # fmt: skip
    out.append(" ".join(class_sentences(measured)) or "No task has rows of more than one locality class.")
    out.append(state_sentence(measured))
    out.append("Seconds per epoch, where one task has several rules at the same size: "
               + " ".join(time_sentences(measured)))
    out.append(published_sentence(measured))
    return out


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


# --------------------------------------------------------------------------- the figure

_MARKERS = {"neighbour": "o", "two phases": "s", "global": "^"}


def _clusters(points: Sequence[tuple[int, float, float]], near: float = 0.06) -> list[list[int]]:
    """Group ``(number, x, y)`` points (x, y scaled to about [0, 1]) that lie within ``near`` of a
    member of the group, so that a figure labels them once."""
    groups: list[list[tuple[int, float, float]]] = []
    for p in points:
        hit = [g for g in groups if any(abs(p[1] - q[1]) < near and abs(p[2] - q[2]) < near for q in g)]
        merged = [p] + [q for g in hit for q in g]
        groups = [g for g in groups if g not in hit] + [merged]
    return [sorted(q[0] for q in g) for g in groups]


def _draw(ax, points, colours) -> None:
    """Points ``(number, params, mean %, sd % or None, class)`` with error bars, numbered; points
    that nearly coincide share one label (to the left where another point lies just right)."""
    for _, x, y, sd, cls in points:
        ax.errorbar(x, y, yerr=sd, marker=_MARKERS[cls], color=colours[cls], ms=6, capsize=2, ls="none")
    lx = {i: float(np.log10(x)) for i, x, *_ in points}
    ys = {i: y for i, _, y, *_ in points}
    xspan = (max(lx.values()) - min(lx.values())) or 1.0
    yspan = (max(ys.values()) - min(ys.values())) or 1.0
    scaled = [(i, lx[i] / xspan, ys[i] / yspan) for i in lx]
    for group in _clusters(scaled):
        top = max(group, key=lambda i: ys[i])
        crowded = any(0 < lx[j] - lx[top] < 0.25 * xspan for j in lx if j not in group)
        ax.annotate(", ".join(map(str, group)), (10 ** lx[top], ys[top]), xytext=(-5 if crowded else 5, 3),
                    textcoords="offset points", ha="right" if crowded else "left", va="bottom", fontsize=7)


def figure(measured: Sequence[Measured]):
    """Test accuracy against trained parameters (log x), one panel per task, one point per row
    (mean, with ± 1 sd where there are several seeds), colour and marker by locality class, each
    point numbered as its row of :func:`table_rows`; points that nearly coincide share a label."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from gridlib import plotting

    have = [(i, m) for i, m in enumerate(measured, 1) if m.accuracies]
    tasks = list(dict.fromkeys(m.row.task for _, m in have))
    colours = {c: plotting.PALETTE[i] for i, c in enumerate(LOCALITY)}
    ncol = 2
    nrow = -(-len(tasks) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(8, 2.9 * nrow), sharex=True, squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        points = []
        for i, m in have:
            if m.row.task == task:
                mean, sd = report.mean_sd(m.accuracies)  # type: ignore[arg-type]
                points.append((i, m.params, 100 * mean, 100 * sd if len(m.accuracies) > 1 else None,  # type: ignore[arg-type]
                               RULES[m.row.rule].reads))  # fmt: skip
        _draw(ax, points, colours)
        ax.set_title(task)
        ax.set_xscale("log")
        ax.margins(x=0.12, y=0.18)
        ax.set_ylabel("test accuracy (%)")
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("trained parameters")
    handles = [Line2D([], [], marker=_MARKERS[c], color=colours[c], ls="none", label=c)
               for c in LOCALITY if any(RULES[m.row.rule].reads == c for _, m in have)]  # fmt: skip
    fig.legend(handles=handles, title="update reads", loc="lower center", ncol=len(handles),
               bbox_to_anchor=(0.5, -0.02))  # fmt: skip
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
