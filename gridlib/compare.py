"""Every system on one page: one row per system and learning rule of the book, side by side.

Each row is a reproduced configuration: its task, its learning rule and what an update of that
rule reads, its trained parameters and the learning state it carries in time per parameter
(:mod:`gridlib.footprint`, from the code's own shapes), its test accuracy (mean ± sd over seeds)
and the published number. The training records' wall times are not shown: they were made at
different times on a shared machine. What a step costs comes from the benchmark that times
every rule of the filter grid in one run (:func:`gridlib.filtergrid.comparison.load_work`,
:func:`gridlib.filtergrid.comparison.work_rows`,
:func:`step_costs`, :func:`cost_text`). The records are read with
:func:`gridlib.results.load_group` and the configuration the row names, so records that differ
in anything but the seed are refused, never averaged. The rows of the landing page
(:data:`gridlib.index.HEADLINES`) are reused with their expected configurations and published
numbers; the others are the analog-filter grid's rules with
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
from gridlib.filtergrid import comparison

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
    """The 784-500-10 runs of *Equilibrium propagation on Fashion-MNIST*: EP, the backprop baseline with the same
    units (``"mlp"``) and its ReLU control (``"relu"``), with that chapter's expectations."""
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
        Row(h("gridnet/cpu_seed*"), "16³ grid", "MNIST", "backprop", "AdamW", fp.gridnet_params,
            no_published="the original publishes no accuracy"),
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
        cores: the ``cpu_count`` of the machines that ran the records.
    """

    row: Row
    records: dict[str, dict[str, Any]]
    accuracies: list[float] | None
    params: int | None
    state: float | None
    cores: tuple[int, ...]


def measure(row: Row) -> Measured:
    """Load a row's records and compute its numbers.

    Raises:
        gridlib.results.ResultsError: a record differs from the row's expected configuration, or
            the records differ in anything but the seed (they would be averaged).
    """
    group = results.load_group(row.headline.pattern, expect=row.headline.expect, allow_empty=True)
    if not group:
        return Measured(row, {}, None, None, None, ())
    config = next(iter(group.values()))["config"]
    return Measured(
        row, dict(group), row.headline.values(group), row.params(config),
        row.state(config) if row.state else None,
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


#: The columns of :func:`table_rows`, in order.
COLUMNS = ("#", "system", "task", "rule", "update reads", "training", "parameters", "epochs",
           "state / parameter", "test accuracy", "published")  # fmt: skip


def table_rows(measured: Sequence[Measured], link: bool = True) -> list[dict[str, str]]:
    """The table (:data:`COLUMNS`), one dict per row: its number, system
    and network (linked to its chapter), task, rule, what an update reads, optimiser and batch,
    parameters, epochs, state per parameter, test accuracy and the published number. A row not
    run yet shows its command instead of its numbers."""
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
            "test accuracy": accuracy_text(m.accuracies, accuracy_key(m)),
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


def _by_seed(m: Measured) -> dict[Any, float] | None:
    """A row's test accuracy seed by seed, where each record is one seed (not an ensemble)."""
    out = {}
    for name, rec in m.records.items():
        accs = index.group_accuracies({name: rec})
        if not accs or len(accs) != 1:
            return None
        out[rec["provenance"].get("seed")] = accs[0]
    return out


def seeds_differ(a: Measured, b: Measured) -> bool:
    """The book's one spread rule for two rows: on the seeds' paired differences where the two
    train the same network the same way on the same seeds (the same initialisation and
    minibatch order; two estimators of one network, as the chapters pair them), else on the
    two unpaired groups (:func:`gridlib.report.groups_differ`)."""
    sa, sb = _by_seed(a), _by_seed(b)
    if (sa and sb and set(sa) == set(sb) and len(sa) > 1 and a.row.network == b.row.network
            and training_text(a) == training_text(b)):
        return report.beyond_spread(list(report.paired_differences(sa, sb).values()))
    return report.groups_differ(a.accuracies, b.accuracies)  # type: ignore[arg-type]


def _rivals(ms: Sequence[Measured]) -> list[Measured]:
    """The rows of ``ms`` (one locality class on one task) that the seeds cannot tell from the
    best of them (:func:`seeds_differ`), best first."""
    ranked = sorted((m for m in ms if m.accuracies), key=lambda m: -mean_accuracy(m))  # type: ignore[operator]
    best = ranked[0]
    return [m for m in ranked if m is best or training_text(m) == training_text(best)
            and not seeds_differ(best, m)]


def _words(m: Measured, several: bool) -> str:
    """A row in words: its rule, and its network where the task has several."""
    name, net = m.row.rule_name, m.row.network
    if net.endswith(", ReLU"):
        net = "ReLU " + net.removesuffix(", ReLU")
    return f"{name} on the {net}" if several else name


#: A locality class as an adjective (:data:`LOCALITY`).
CLASS_WORDS = {"neighbour": "neighbour-only", "two phases": "two-phase", "global": "global"}


def _names(ms: Sequence[Measured]) -> str:
    return _listing([m.row.rule_name for m in ms])


def class_gap(measured: Sequence[Measured], task: str) -> tuple[Measured, list[Measured], float, bool] | None:
    """On ``task``: the best row of the best locality class, the rows of the runner-up class
    that the seeds cannot tell from that class's best (``_rivals``), the gap of the two
    best means (a fraction) and whether it is beyond the seeds' spread
    (:func:`gridlib.report.groups_differ`); ``None`` where the task has one class only."""
    best = best_by_class(measured).get(task, {})
    if len(best) < 2:
        return None
    (_, top), (cls, second) = sorted(best.items(), key=lambda kv: -mean_accuracy(kv[1]))[:2]  # type: ignore[operator]
    rivals = _rivals([m for m in measured if m.row.task == task and RULES[m.row.rule].reads == cls])
    gap = mean_accuracy(top) - mean_accuracy(second)  # type: ignore[operator]
    return top, rivals, gap, report.groups_differ(top.accuracies, second.accuracies)  # type: ignore[arg-type]


def class_sentences(measured: Sequence[Measured]) -> list[str]:
    """Per task with more than one locality class: which rule leads and by how much, answer
    first, in words (Markdown, a few numbers, computed from the table); the runner-up class's
    rows that the seeds cannot tell apart are named together, not ranked."""
    out = []
    for task in dict.fromkeys(m.row.task for m in measured):
        found = class_gap(measured, task)
        if found is None:
            continue
        top, rivals, gap, beyond = found
        several = len({m.row.network for m in measured if m.row.task == task}) > 1
        cls = RULES[rivals[0].row.rule].reads
        ours = accuracy_text(top.accuracies, accuracy_key(top), n=False)  # type: ignore[arg-type]
        if len(rivals) == 1:
            theirs = (f"{accuracy_text(rivals[0].accuracies, accuracy_key(rivals[0]), n=False)} "  # type: ignore[arg-type]
                      f"for {_names(rivals)}")
        else:
            means = [100 * mean_accuracy(m) for m in rivals]  # type: ignore[operator]
            theirs = (f"{min(means):.2f}–{max(means):.2f} % for {_names(rivals)}, which the "
                      "seeds cannot tell apart")
        verb = "beats" if beyond else "is ahead of"
        best = "the" if len(rivals) == 1 else "the best of the"
        out.append(f"On {task}, {_words(top, several)} {verb} {best} {CLASS_WORDS[cls]} rules by "
                   f"{100 * gap:.2f} points, {index.spread_text(beyond)}: {ours} against {theirs}.")
    return out


def _task_clause(measured: Sequence[Measured], task: str) -> str | None:
    """One task's lead in a clause: ``"on MNIST, backprop leads EP by 0.36 points, within the
    seeds' spread"``."""
    found = class_gap(measured, task)
    if found is None:
        return None
    top, rivals, gap, beyond = found
    relu = " with ReLU units" if "ReLU" in top.row.network else ""
    return (f"on {task}, {top.row.rule_name}{relu} {'beats' if beyond else 'is ahead of'} "
            f"{_names(rivals)} by {100 * gap:.1f} points, {index.spread_text(beyond)}")


def _same_units(measured: Sequence[Measured]) -> list[tuple[str, Measured, Measured]]:
    """``(where, ep, backprop)`` for every EP row with a backprop MLP of the same network and
    units on the same task."""
    out = []
    for ep in (m for m in measured if m.row.rule == "ep" and m.accuracies):
        bp = next((m for m in measured if m.row.task == ep.row.task and m.accuracies
                   and m.row.network == f"MLP {ep.row.network}"), None)  # fmt: skip
        if bp is not None:
            out.append((f"{ep.row.task} ({ep.row.network})", ep, bp))
    return out


# --------------------------------------------------------------------------- what a step costs


def step_costs(work: Mapping[str, Any]) -> dict[str, float]:
    """``{rule: CPU time of a training step / SnAP-1's}`` from :func:`gridlib.filtergrid.comparison.load_work`'s record, by the
    benchmark's rule names (``"RTRL (exact)"``, ``"BPTT"``, ...)."""
    return {r["rule"]: float(r["CPU time / SnAP-1"]) for r in work["metrics"]["rows"]}


def cost_text(work: Mapping[str, Any] | None) -> str:
    """What the rule benchmark says in one sentence (Markdown): the costliest step and BPTT's,
    against SnAP-1's, all timed in one run; ``""`` without the record."""
    if work is None:
        return ""
    costs = step_costs(work)
    top = max(costs, key=costs.get)  # type: ignore[arg-type]
    name = "exact RTRL" if top == "RTRL (exact)" else top
    text = (f"Timed in one run on the same batches, {name}'s training step takes "
            f"{costs[top]:.0f}× SnAP-1's CPU time")
    if "BPTT" in costs and top != "BPTT":
        text += f", BPTT's {costs['BPTT']:.1f}×"
    return text + "."


def findings(measured: Sequence[Measured]) -> list[str]:
    """The chapter's closing bullets (at most four), each answer first, computed from the
    table: which rule leads on each task, EP against backprop with the same units, what
    exactness costs in memory and time, and which published numbers are reproduced."""
    out = []
    tasks = [t for t in dict.fromkeys(m.row.task for m in measured) if class_gap(measured, t)]
    if tasks:
        clauses = [_task_clause(measured, t) for t in tasks]
        tops = {RULES[class_gap(measured, t)[0].row.rule].reads for t in tasks}  # type: ignore[index]
        head = (f"At the book's shared settings a {tops.pop()} rule is ahead on average wherever "
                "two classes of rule compete" if len(tops) == 1 else
                "The class of rule that is ahead depends on the task")
        out.append(f"{head}: " + "; ".join(clauses) + ".")  # type: ignore[arg-type]
    same = _same_units(measured)
    if same:
        gaps = [100 * (mean_accuracy(bp) - mean_accuracy(ep)) for _, ep, bp in same]  # type: ignore[operator]
        words = {index.spread_text(report.groups_differ(bp.accuracies, ep.accuracies))  # type: ignore[arg-type]
                 for _, ep, bp in same}
        parts = [f"{'−' if g < 0 else '+'}{abs(g):.2f} points on {where}"
                 for (where, _, _), g in zip(same, gaps, strict=True)]
        listed = report.listing(parts)
        out.append("Against backprop on the same network with the same units, EP is "
                   + ("within half a point" if all(abs(g) <= 0.5 for g in gaps) else "behind")
                   + f": backprop minus EP is {listed}"
                   + (f", each {words.pop()}." if len(words) == 1 else
                      ", not all within the seeds' spread."))
    state = {m.row.rule: m.state for m in measured if m.state is not None and m.row.task == "row-wise MNIST"}
    if {"snap1", "bptt", "rtrl"} <= set(state):
        out.append(
            f"Exactness is what costs memory: SnAP-1 carries {state['snap1']:.3g} floats of "
            f"learning state per parameter at any sequence length, BPTT stores {state['bptt']:.3g} "
            f"at T = {footprint.ROWWISE_STEPS} and more for longer sequences, and exact RTRL "
            f"carries {state['rtrl']:.3g}. " + cost_text(comparison.load_work()))
    with_pub = [m for m in measured if m.accuracies
                and (m.row.headline.ep_range or m.row.headline.published is not None)]
    if with_pub:
        close = [m for m in with_pub if _matches_published(m)]
        short = [m for m in with_pub if _short_of_single_run(m)]
        text = ((f"All {len(with_pub)}" if len(close) == len(with_pub) else
                 f"{len(close)} of the {len(with_pub)}")
                + " rows with a published number end within the seeds' spread of it (or inside "
                "the EP paper's range)")
        far = [m for m in with_pub if m not in close]
        if far:
            text += ("; " + "; ".join(f"{_plain_name(m)} does not"
                                      + (f": {index.shortfall_reason(m.row.headline)}"
                                         if m in short else "") for m in far))  # fmt: skip
        near = [m for m in short if m in close]
        if near:
            text += (f". Within the spread, {_count(len(near))} still end below a single published "
                     "run on every seed: " + "; ".join(
                         f"{_plain_name(m)} ({index.shortfall_reason(m.row.headline)})" for m in near))
        out.append(text + ".")
    return out


def _count(n: int) -> str:
    """A small count in words (``"two rows"``), digits from ten on."""
    words = ("no row", "one row", "two rows", "three rows", "four rows", "five rows", "six rows",
             "seven rows", "eight rows", "nine rows")
    return words[n] if n < len(words) else f"{n} rows"


def _plain_name(m: Measured) -> str:
    """``"SnAP-1 with Adam on row-wise MNIST"``, ``"NeuralGrid on Fashion-MNIST"``."""
    h = m.row.headline
    if h.system in ("Analog-filter grid", "Equilibrium propagation", "GLE"):
        return f"{m.row.rule_name} with {m.row.optimizer} on {m.row.task}"
    return f"{h.system} on {m.row.task}"


def _short_of_single_run(m: Measured) -> bool:
    """Whether a single published run lies above every seed of the row."""
    h = m.row.headline
    return (not h.ep_range and h.published is not None and len(h.published_values) <= 1
            and h.published_sd is None and h.published > max(m.accuracies))  # type: ignore[arg-type]


def _matches_published(m: Measured) -> bool:
    """Whether a row reproduces its published number: inside the EP paper's range, or within
    the seeds' spread by the book's one criterion (:func:`gridlib.index.published_beyond`)."""
    h = m.row.headline
    if h.ep_range:
        lo, hi = index.EP_PUBLISHED_TEST_ERR
        mean = mean_accuracy(m)
        return lo - 1e-9 <= 1 - mean <= hi + 1e-9  # type: ignore[operator]
    return not index.published_beyond(h, m.accuracies)  # type: ignore[arg-type]


#: The results outside the task tables that are not runs of a configuration, in words:
#: ``fnmatch`` pattern of the result's name -> words.
RESULT_WORDS = {
    "device/gle": "GLE on a GPU: ten seeds at once",
    "device/gridnet": "gridnet on a GPU: one outer step",
    "device/neuralgrid": "NeuralGrid on a GPU: one epoch",
    "ep/bptt_sweep": "EP against backprop through the relaxation, over step sizes",
    "ep/seed_failures": "EP: the seed code's suspected faults, one variant each",
    "filtergrid/alignment": "the temporal rules' gradients against the exact one",
    "filtergrid/gradient_agreement": "SnAP-1's gradient against the exact one",
    "filtergrid/original_robustness": "the original's code under hardware imperfections",
    "filtergrid/protocols": "the evaluation protocols of the row-wise MNIST runs",
    "filtergrid/robustness/*": "SnAP-1 under hardware imperfections",
    "gle/lagnet": "teacher–student lag network: GLE and the adjoint method",
}

_WORDS = {"relu": "ReLU", "sigmoid": "sigmoid", "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def result_words(key: str, records: Mapping[str, Mapping[str, Any]]) -> str:
    """What a published result is, in words (never its file name): a row-wise MNIST run by its
    rule, optimiser, batch and schedule (:func:`gridlib.filtergrid.summary.run_words`), a
    step-size search or a tuned run said so, a backprop baseline by its network, the rest by
    :data:`RESULT_WORDS`; a result with no words here shows its name as code.

    Args:
        key: the result's name, seeds aside (:attr:`gridlib.index.Entry.key`).
        records: its records (the seeds), name -> record.
    """
    import fnmatch

    from gridlib.filtergrid.summary import run_words
    from gridlib.gle.summary import LAGLINE_LABELS

    for pattern, words in RESULT_WORDS.items():
        if fnmatch.fnmatchcase(key, pattern):
            return words
    config = next(iter(records.values())).get("config", {})
    folder, _, rest = key.partition("/")
    if folder == "filtergrid" and "rule" in config and "batch_size" in config:
        words = run_words(config)
        if config.get("code") == "original":
            return f"the original's code: {words}"
        if rest.startswith("tune/"):
            return f"{words}: search of the step size on validation"
        return f"{words}, at the tuned step" if rest.startswith("tuned/") else words
    if folder == "baselines" and "sizes" in config:
        sizes = "-".join(str(n) for n in config["sizes"])
        activation = _WORDS.get(config["activation"], config["activation"])
        return f"backprop, MLP {sizes} with {activation}, {_WORDS.get(config['dataset'], config['dataset'])}"
    if rest.startswith("lagline/") and rest[8:] in LAGLINE_LABELS:
        return f"teacher–student lag line: {LAGLINE_LABELS[rest[8:]]}"
    return f"`{key}`"


def left_out(measured: Sequence[Measured]) -> list[dict[str, str]]:
    """The published results that no row shows (benchmarks, re-checks and check runs of a few
    steps aside), in words (:func:`result_words`) linked to the chapter that shows them, with
    their headline as the results index words it: trials, checks and experiments without a test
    accuracy of a trained classifier."""
    shown = {n for m in measured for n in m.records}

    def accuracies(records) -> tuple | None:
        accs = index.group_accuracies(records)
        return tuple(sorted(accs)) if accs else None

    # a run that repeats a row's runs bit for bit (a search that kept the original's step)
    repeats = {accuracies(m.records) for m in measured if m.records} - {None}
    out = []
    for e in index.catalogue():
        if e.key.startswith("bench/") or set(e.records) <= shown or index.check_run_steps(e.records):
            continue
        words = result_words(e.key, e.records)
        name = index.doc_link(e.chapter, words) if e.chapter else words
        headline = index.headline(e.records)
        if accuracies(e.records) in repeats:
            headline += "; the same numbers, seed for seed, as a row of the tables above"
        out.append({"result (linked to its chapter)": name, "headline": headline})
    return out


# --------------------------------------------------------------------------- one table per task


class TaskTable(NamedTuple):
    """The rows of one task (or of one training budget of a task): ``caption`` says, in a few
    sentences, what every row shares (the network, the training, the published number where
    only one is published, why the others have none) and which rule's update reads what."""

    task: str
    caption: str
    rows: list[dict[str, str]]


STATE = "learning state (floats / parameter)"
#: The columns of a task's table (a column that is the same in every row moves to the caption).
TASK_COLUMNS = ("rule", "network", "parameters", "training", STATE, "test accuracy",
                "published")  # fmt: skip
_ORDER = tuple(LOCALITY)
#: The systems whose network is named by its size alone (the rule says which system it is).
_PLAIN_NETWORKS = ("Backprop baseline", "Equilibrium propagation", "GLE")


def training_text(m: Measured) -> str:
    """``"Adam, batch 32, 10 epochs"``: how a row's updates are applied, and for how long."""
    config = next(iter(m.records.values()))["config"]
    epochs = config["epochs"]
    return f"{m.row.optimizer}, batch {batch_size(config)}, {report.plural(epochs, 'epoch')}"


def _network_text(m: Measured) -> str:
    h = m.row.headline
    return m.row.network if h.system in _PLAIN_NETWORKS else f"{h.system}: {m.row.network}"


def _task_row(m: Measured, link: bool) -> dict[str, str]:
    h = m.row.headline
    row = {"rule": index.doc_link(h.chapter, m.row.rule_name) if link else m.row.rule_name,
           "network": _network_text(m)}  # fmt: skip
    if m.accuracies is None:
        return {**row, "test accuracy": f"not run yet: `{h.command}`"}
    text = published(m)
    return {**row, "parameters": f"{m.params:,}", "training": training_text(m),
            STATE: "–" if m.state is None else f"{m.state:.3g}",
            "test accuracy": accuracy_text(m.accuracies, accuracy_key(m)),
            "published": "–" if text.startswith("none") else text}  # fmt: skip


def _listing(words: Sequence[str]) -> str:
    """Words as a list in a sentence, each once (:func:`gridlib.report.listing`)."""
    return report.listing(list(dict.fromkeys(words)))


def _classes_sentence(ms: Sequence[Measured]) -> str:
    """Which rule's update reads what (:data:`LOCALITY`), by class, in one sentence."""
    by_class: dict[str, list[str]] = {}
    for m in ms:
        by_class.setdefault(RULES[m.row.rule].reads, []).append(RULES[m.row.rule].name)
    if len(by_class) == 1:
        [(cls, _)] = by_class.items()
        return f"Every rule here is {CLASS_WORDS[cls]}."
    parts = [f"{_listing(names)} {'is' if len(set(names)) == 1 else 'are'} {CLASS_WORDS[c]}"
             for c, names in sorted(by_class.items(), key=lambda kv: _ORDER.index(kv[0]))]
    return "Of the rules, " + "; ".join(parts) + "."


def _one_table(task: str, ms: Sequence[Measured], link: bool, budget: bool) -> TaskTable:
    """One table of ``ms``: the columns every row shares said once in the caption. With
    ``budget`` (rows of one grid and optimiser), the most common training is said once and a row
    that differs says how in its rule cell."""
    rows = [_task_row(m, link) for m in ms]
    run = [(m, r) for m, r in zip(ms, rows, strict=True) if m.accuracies]
    shared = [c for c in ("network", "parameters", "rule")
              if len(rows) > 1 and len({r.get(c) for r in rows}) == 1]
    phrases = {"network": "trains the same network ({})", "parameters": "has {} parameters",
               "rule": "learns by {}"}
    said = [phrases[c].format(rows[0][c]) for c in shared]
    trainings = [r["training"] for _, r in run]
    if budget and trainings:
        common = max(set(trainings), key=trainings.count)
        said.append(f"trains with {common}"
                    + (" unless its rule says otherwise" if len(set(trainings)) > 1 else ""))
        for _, r in run:
            if r["training"] != common:
                r["rule"] += " (" + ", ".join(p for p in r["training"].split(", ")
                                              if p not in common.split(", ")) + ")"
        shared.append("training")
    elif len(rows) > 1 and len(set(trainings)) == 1 and len(trainings) == len(rows):
        said.append(f"trains with {trainings[0]}")
        shared.append("training")
    caption = ("Every row " + ", ".join(said[:-1]) + (" and " if len(said) > 1 else "")
               + said[-1] + ". ") if said else ""
    if "rule" not in shared:
        caption += _classes_sentence(ms) + " "
    if all(r.get(STATE) == "–" for r in rows):
        shared.append(STATE)
        caption += "Nothing is carried in time: the input is a static image. "
    texts = {r["published"] for _, r in run} - {"–"}
    if len(texts) <= 1:
        shared.append("published")
        some = bool(texts)
        if texts:
            pub = [m for m, r in run if r["published"] != "–"]
            alike = {m.row.rule_name for m, r in run if r["published"] == "–"}
            names = _listing([f"the {_network_text(m).replace(': ', ' ')}" if m.row.rule_name in alike
                              else m.row.rule_name for m in pub])
            caption += f"Published, for {names}: {index.published_text(pub[0].row.headline)}. "
        reasons = list(dict.fromkeys(m.row.no_published for m, r in run if r["published"] == "–"))
        if reasons and some:
            caption += "The other rows have no published number: " + "; ".join(reasons) + "."
        elif reasons:
            caption += "No published number: " + "; ".join(reasons) + "."
    else:
        reasons = list(dict.fromkeys(m.row.no_published for m, r in run if r["published"] == "–"))
        if reasons:
            caption += "No published number (a dash): " + "; ".join(reasons) + "."
    n = {len(m.accuracies) for m, _ in run}  # type: ignore[arg-type]
    acc = "test accuracy"
    if len(n) == 1 and len(run) == len(rows):
        acc = f"test accuracy (n={n.pop()})"
        for r in rows:
            r[acc] = r.pop("test accuracy").rsplit(" (n=", 1)[0]
    columns = [acc if c == "test accuracy" else c for c in TASK_COLUMNS if c not in shared]
    return TaskTable(task, caption.strip(), [{c: r.get(c, "") for c in columns} for r in rows])


def task_tables(measured: Sequence[Measured], link: bool = True) -> list[TaskTable]:
    """One table per task, in the order the tasks first appear, or, where every row of a task
    trains the same network (row-wise MNIST), one per optimiser; rows by training budget, then
    by locality class (:data:`LOCALITY`'s order), then best first; each rule linked to the
    chapter that shows it. A column whose every row says the same is dropped and said once in
    the caption, so that the tables fit the page's column."""
    out = []
    for task in dict.fromkeys(m.row.task for m in measured):
        ms = [m for m in measured if m.row.task == task]
        ms.sort(key=lambda m: (training_text(m).split(",")[0] if m.records else "~",
                               _ORDER.index(RULES[m.row.rule].reads),
                               -(mean_accuracy(m) or 0.0)))  # fmt: skip
        same_grid = len(ms) > 1 and len({m.row.network for m in ms}) == 1
        if not same_grid:
            out.append(_one_table(task, ms, link, budget=False))
            continue
        for opt in dict.fromkeys(m.row.optimizer for m in ms):
            out.append(_one_table(task, [m for m in ms if m.row.optimizer == opt], link, budget=True))
    return out


def task_markdown(tables: TaskTable | Sequence[TaskTable], task: str | None = None):
    """Tables as displayed Markdown, each its caption, then the table: one :class:`TaskTable`,
    or those of ``task`` among ``tables``."""
    from IPython.display import Markdown

    if isinstance(tables, TaskTable):
        tables = [tables]
    if task is not None:
        tables = [t for t in tables if t.task == task]
    return Markdown("\n\n".join((t.caption + "\n\n" if t.caption else "") + report.markdown_table(t.rows)
                                for t in tables))


# --------------------------------------------------------------------------- the figure

_MARKERS = {"neighbour": "o", "two phases": "s", "global": "^"}


def _epochs(m: Measured) -> int:
    return int(next(iter(m.records.values()))["config"]["epochs"])


def _point_label(m: Measured, several_networks: bool, epochs_vary: bool = False) -> str:
    """A figure's label of a row: the rule, its optimiser, the network where a task has
    several, and the epochs where its rows train for different budgets."""
    what = m.row.rule_name.replace(" (an update per time step)", ", every step")
    short = {"per-group SGD": "SGD", "AdamW": "AdamW"}.get(m.row.optimizer, m.row.optimizer)
    system = m.row.headline.system  # the grids trained by backprop are named: NeuralGrid, gridnet
    network = m.row.network if system in _PLAIN_NETWORKS else f"{system} {m.row.network}"
    notes = [short] + ([network] if several_networks else [])
    if epochs_vary:
        notes.append(report.plural(_epochs(m), "epoch"))
    return f"{what} ({', '.join(notes)})"


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
    for task in dict.fromkeys(t.task for t in task_tables(measured, link=False)):
        ms = [m for m in measured if m.row.task == task and m.accuracies]
        ms.sort(key=lambda m: (training_text(m).split(",")[0], _ORDER.index(RULES[m.row.rule].reads),
                               -(mean_accuracy(m) or 0.0), order[id(m)]))  # fmt: skip
        if ms:
            tables.append((task, ms))
    heights = [len(ms) + 1.2 for _, ms in tables]
    fig, axes = plt.subplots(len(tables), 1, figsize=(6.2, 0.3 * sum(heights) + 0.9),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)  # fmt: skip
    for ax, (task, ms) in zip(axes[:, 0], tables, strict=True):
        several = len({m.row.network for m in ms}) > 1
        epochs_vary = len({_epochs(m) for m in ms}) > 1
        for y, m in enumerate(ms):
            cls = RULES[m.row.rule].reads
            acc = 100 * np.asarray(m.accuracies)
            ax.plot(acc, np.full(acc.shape, y), ".", color=colours[cls], alpha=0.35)
            ax.errorbar(acc.mean(), y, xerr=acc.std(ddof=1) if acc.size > 1 else None,
                        marker=_MARKERS[cls], color=colours[cls], ms=6, capsize=2, ls="none")  # fmt: skip
        ax.set_yticks(range(len(ms)), [_point_label(m, several, epochs_vary) for m in ms], fontsize=9)
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
