"""Every temporal rule of the grid on common ground, from results files: memory, work, accuracy.

Chapter "One grid, every temporal rule" shows these tables; nothing in them is typed in:

- :func:`carry_rows`: what each rule carries forward in time and which paths it keeps
  (:data:`CARRY`);
- :func:`by_step_rows`, :func:`snapshot_rows`, :func:`rows_against` / :func:`against_rows`,
  :func:`region_summary` / :func:`region_rows`: the alignment study's tables, one row per rule
  and one column per snapshot, so that they stay narrow however many rules there are;
- :func:`memory_rows`: the learning state each rule carries forward in time, per parameter, read
  off the code's own shapes (:func:`~gridlib.filtergrid.temporal.state_floats_per_parameter`);
- :func:`load_work` / :func:`work_rows`: ``results/bench/filtergrid_rules.json``, every rule's
  training step timed on the same batches in one run (``benchmarks/filtergrid_rules.py``), with
  its operation count (:mod:`gridlib.flops`);
- :func:`accuracy_rows` / :func:`accuracy_figure`: the published seeds of each configuration of
  :data:`~gridlib.filtergrid.summary.RULE_RUNS` (Adam, batch 32, 10 epochs) or
  :data:`ONLINE_RUNS` (per-group SGD, batch 1, 3 epochs), loaded by
  :func:`~gridlib.filtergrid.summary.load_mnist_runs` (a file that declares another setting is
  refused, and seeds that differ in anything but the seed are never averaged), with
  :func:`seeds_at_chance` for the runs that never learned;
- :func:`alignment_accuracy` / :func:`alignment_accuracy_figure` / :func:`rank_correlation`:
  each rule's accuracy beside the alignment of its gradient, and whether the one orders the
  other beyond chance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gridlib import report, results
from gridlib.filtergrid.alignment import COLOURS, LEGEND_SIZE, MAX_WIDTH, display_name, rule_id
from gridlib.filtergrid.summary import MnistRun, final_accuracies, paired_differences
from gridlib.filtergrid.temporal import state_floats_per_parameter

N, M, T = 28, 10, 28
WORK = "bench/filtergrid_rules"

#: The batch-1 budget of the rules that learn forward in time: label -> run (per-group SGD,
#: 3 epochs). The first row is the reference of the paired differences.
ONLINE_RUNS = {
    "SnAP-1, sum loss, one update per sequence": MnistRun("snap1", "sgd", 1, 3),
    "SnAP-2, sum loss, one update per sequence": MnistRun("snap2", "sgd", 1, 3),
    "SnAP-0, sum loss, one update per sequence": MnistRun("snap0", "sgd", 1, 3),
    "online SnAP-1, per-step loss, one update per sequence": MnistRun("online_snap1", "sgd", 1, 3),
    "online SnAP-1, an update at every time step": MnistRun("online_snap1", "sgd", 1, 3, every_step=True),
}


def _sd_text(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> str:
    """Mean ± sd of ``scale * values`` (:func:`gridlib.report.format_mean_sd`, points by
    default), kept on one line, with a true minus sign; the value alone for one seed."""
    return report.format_mean_sd([scale * v for v in values], digits, n=False)


def accuracy_text(group: Mapping[str, dict], run: MnistRun) -> str:
    """A configuration's final test accuracies as the book shows them everywhere (mean ± sd in %,
    keyed by :func:`gridlib.index.accuracy_key` so that every page can be checked to agree)."""
    from gridlib.index import accuracy_key

    return report.format_mean_sd(final_accuracies(group), percent=True, n=False,
                                 key=accuracy_key(run.name("*")))


#: What each rule carries forward in time and which paths of the exact gradient it keeps:
#: label -> (rule, window K, carried forward, paths kept).
CARRY = {
    "bptt": ("bptt", None, "nothing; stores s(0), …, s(T−1) for a backward pass", "all (exact)"),
    "rtrl": ("rtrl", None, "the influence matrix J = ds/dθ", "all (exact)"),
    "snap2": ("snap2", None, "J of each cell and of its descendants ≤ 2 hops away",
              "carry of distance ≤ 2"),
    "snap1": ("snap1", None, "J of each cell and of its two children", "carry of distance ≤ 1"),
    "snap0": ("snap0", None, "J of each cell on its own state (self-traces)",
              "carry of the cell itself"),
    "tbptt4": ("tbptt", 4, "s(t−4) and the last 3 inputs; the window is rerun",
               "the last 4 steps of every path"),
    "tbptt1": ("tbptt", 1, "nothing", "the current step only"),
    "online_snap1": ("online_snap1", None, "as SnAP-1, for the per-step loss",
                     "as SnAP-1, computed within each step"),
}  # fmt: skip


def carry_rows(n: int = N, m: int = M, t_len: int = T) -> list[dict[str, str]]:
    """:data:`CARRY` as a table, with each rule's learning state in floats per parameter on the
    ``n x m`` grid (BPTT's at ``t_len`` steps)."""
    return [{"rule": display_name(label), "carries forward": what, "keeps": keeps,
             "state floats / parameter": f"{state_floats_per_parameter(r, n, m, window=k, t_len=t_len):g}"}
            for label, (r, k, what, keeps) in CARRY.items()]  # fmt: skip


def by_step_rows(training: Mapping[str, Mapping[str, Any]], value: str = "cosine",
                 digits: int = 3) -> list[dict[str, str]]:
    """One row per rule, one column per snapshot (``training``: ``{step: Comparison}``, as
    loaded): each rule's ``value`` (a key of its entry, e.g. ``"cosine"``) with the exact
    gradient after that many steps. Narrow enough for a page however many rules there are."""
    steps = sorted(training, key=int)
    rules = list(training[steps[0]]["rules"])
    return [{"rule": display_name(r),
             **{f"step {s}": report.minus(f"{training[s]['rules'][r][value]:.{digits}f}") for s in steps}}
            for r in rules]  # fmt: skip


def snapshot_rows(training: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """The grid's own batch accuracy (in percent, as every table gives it) and loss on the
    study's digits at each snapshot."""
    steps = sorted(training, key=int)
    return [{"": "batch accuracy", **{f"step {s}": f"{100 * training[s]['acc']:.2f} %" for s in steps}},
            {"": "loss", **{f"step {s}": f"{training[s]['loss']:.3f}" for s in steps}}]


def rows_against(training: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``{step: {rule: n}}``: in how many grid rows each rule's gradient points against the exact
    one (a row cosine below 0), at each snapshot."""
    return {s: {r: int(np.sum(np.asarray(c["row_cosine"]) < 0)) for r, c in training[s]["cells"].items()}
            for s in sorted(training, key=int)}  # fmt: skip


def against_rows(against: Mapping[str, Mapping[str, int]]) -> list[dict[str, str]]:
    """:func:`rows_against` as a table: one row per rule, one column per snapshot."""
    steps = list(against)
    return [{"rule": display_name(r), **{f"step {s}": str(against[s][r]) for s in steps}} for r in against[steps[0]]]


def region_summary(comparison: Mapping[str, Any], near_rows: int = 3, upper_rows: int = 14) -> dict[str, dict[str, float]]:
    """Per rule but RTRL: the mean relative error over the ``near_rows`` grid rows nearest the
    readout, and the medians of the row cosine and of ``|g| / |g*|`` over the ``upper_rows`` top
    rows, from one snapshot's cell-by-cell comparison."""
    out = {}
    for r, c in comparison["cells"].items():
        if r == "rtrl":
            continue
        out[r] = {"near_rel_error": float(np.mean(c["row_rel_error"][-near_rows:])),
                  "upper_cosine": float(np.median(c["row_cosine"][:upper_rows])),
                  "upper_norm_ratio": float(np.median(c["row_norm_ratio"][:upper_rows]))}
    return out


def top_row_cosines(training: Mapping[str, Mapping[str, Any]], rule: str = "snap1",
                    rows: int = 7) -> dict[str, float]:
    """``{step: median}``: the median of ``rule``'s row cosines over the ``rows`` grid rows
    farthest from the readout, at each snapshot: whether the top of the grid points with (near
    ``+1``) or against (near ``-1``) the exact gradient as training goes on."""
    return {s: float(np.median(np.asarray(training[s]["cells"][rule]["row_cosine"][:rows], float)))
            for s in sorted(training, key=int)}  # fmt: skip


def top_row_rows(tops: Mapping[str, Mapping[str, float]]) -> list[dict[str, str]]:
    """``{rule: {step: median}}`` (:func:`top_row_cosines` of each rule) as a table: one row
    per rule (by :func:`~gridlib.filtergrid.alignment.display_name`), one column per snapshot,
    signed."""
    return [{"rule": display_name(r), **{f"step {s}": report.signed(v) for s, v in c.items()}}
            for r, c in tops.items()]  # fmt: skip


def region_rows(regions: Mapping[str, Mapping[str, float]]) -> list[dict[str, str]]:
    """:func:`region_summary` as a table."""
    return [{"rule": display_name(r), "rel. error, 3 rows nearest the readout": f"{v['near_rel_error']:.2f}",
             "upper 14 rows: cosine": report.minus(f"{v['upper_cosine']:.2f}"),
             "upper 14 rows: |g| / |g*|": f"{v['upper_norm_ratio']:.0e}"} for r, v in regions.items()]


def memory_rows(runs: Mapping[str, MnistRun], ts: Sequence[int] = (28, 112)) -> list[dict[str, str]]:
    """Per rule, the floats of learning state per parameter it carries forward in time on the
    ``N x M`` grid, at each sequence length of ``ts`` (only BPTT's grows with it)."""
    rows = []
    for label, run in runs.items():
        per_t = [state_floats_per_parameter(run.rule, N, M, window=run.window, t_len=t) for t in ts]
        rows.append({"rule": label,
                     **{f"floats per parameter, T = {t}": f"{v:g}" for t, v in zip(ts, per_t, strict=True)},
                     "grows with T": "yes" if per_t[-1] > per_t[0] else "no"})
    return rows


def load_work() -> dict[str, Any] | None:
    """The published rule benchmark (28x10 grid, T = 28, Adam at batch 32), or ``None``."""
    if not results.exists(WORK):
        return None
    return results.load(WORK, expect={"grid": [N, M], "T": T, "batch": 32, "optimizer": "adam"})


def work_rows(bench: Mapping[str, Any]) -> list[dict[str, str]]:
    """The benchmark's rows, rounded for reading: CPU time and operations per training step,
    each also relative to SnAP-1's in the same run."""
    return [{"rule": r["rule"],
             "CPU-ms per step": f"{r['CPU-ms per step']:.1f}",
             "× SnAP-1 (time)": f"{r['CPU time / SnAP-1']:.2f}",
             "MFLOP per step": f"{r['MFLOP per step']:.1f}",
             "× SnAP-1 (FLOPs)": f"{r['FLOPs / SnAP-1']:.2f}",
             "state floats per parameter": f"{r['state floats per parameter']:g}"}
            for r in bench["metrics"]["rows"]]  # fmt: skip


def accuracy_rows(groups: Mapping[str, Mapping[str, dict]], runs: Mapping[str, MnistRun],
                  reference: str) -> list[dict[str, str]]:
    """One row per configuration with published seeds: final full-test accuracy (%, mean ± sd
    over seeds, keyed: :func:`accuracy_text`), the paired difference to ``reference`` (the label of another group: the mean ±
    sd over the seeds both ran) and the state the rule carries (what a step costs is the
    benchmark's: :func:`work_rows`)."""
    rows = []
    for label, group in groups.items():
        if not group:
            continue
        acc = final_accuracies(group)
        diff = list(paired_differences(group, groups[reference]).values()) if label != reference else []
        run = runs[label]
        rows.append({
            "rule": label,
            "seeds": str(len(acc)),
            "test accuracy": accuracy_text(group, run),
            f"minus {reference} (points, paired)": _sd_text(diff) if diff else "–",
            "state floats per parameter": f"{state_floats_per_parameter(run.rule, N, M, window=run.window, t_len=T):g}",
        })  # fmt: skip
    return rows


def paired_points(groups: Mapping[str, Mapping[str, dict]], reference: str) -> dict[str, list[float]]:
    """``{label: [points per seed]}``: each group's final test accuracy minus ``reference``'s on
    the seeds both ran, in percentage points (groups with fewer than two such seeds left out)."""
    out = {}
    for label, group in groups.items():
        if label != reference and group and groups.get(reference):
            diff = [100 * d for d in paired_differences(group, groups[reference]).values()]
            if len(diff) > 1:
                out[label] = diff
    return out


def spread_verdicts(points: Mapping[str, Sequence[float]]) -> dict[str, str]:
    """``{label: "better" | "worse" | "within"}``: whether each paired difference
    (:func:`paired_points`) lies beyond the seeds' spread by the book's one rule
    (:func:`gridlib.report.beyond_spread`), and on which side."""
    return {k: ("within" if not report.beyond_spread(v) else "better" if np.mean(v) > 0 else "worse")
            for k, v in points.items()}  # fmt: skip


def in_words(labels: Sequence[str]) -> str:
    """Rule labels as a list in a sentence: ``"SnAP-0, truncated BPTT with K = 4 and SnAP-2"``
    (a window's comma becomes "with", so that the list's commas separate rules only)."""
    names = [label.replace(", K = ", " with K = ") for label in labels]
    return report.listing(names)


def seeds_at_chance(group: Mapping[str, dict], labels, margin: float = 0.005) -> int:
    """How many runs of ``group`` ended no better than always answering the commonest class of
    ``labels`` (the test labels, ``(n,)``), to within ``margin``: runs that never learned."""
    share = np.bincount(np.asarray(labels)).max() / len(labels)
    return sum(acc <= share + margin for acc in final_accuracies(group))


def accuracy_figure(groups: Mapping[str, Mapping[str, dict]], runs: Mapping[str, MnistRun]):
    """Final test accuracy (mean ± sd over seeds, every seed as a dot) against the learning
    state each rule carries per parameter: what memory buys on the same grid and budget."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(MAX_WIDTH, 4.0))
    seen: dict[float, int] = {}  # rules with the same state sit side by side, not on top
    for label, group in ((k, g) for k, g in groups.items() if g):
        run = runs[label]
        x0 = state_floats_per_parameter(run.rule, N, M, window=run.window, t_len=T)
        x = x0 + 0.12 * seen.get(x0, 0)
        seen[x0] = seen.get(x0, 0) + 1
        _seed_dots(ax, x, final_accuracies(group), _color(label, runs), label)
    return _finish(fig, ax, "learning state carried in time (floats per parameter)")


def _color(label: str, runs: Mapping[str, MnistRun]):
    """One colour per rule, the same in every figure of the rules
    (:data:`~gridlib.filtergrid.alignment.COLOURS`); a label that names no rule of the alignment
    study takes a colour of the book's palette by its place in ``runs``."""
    from gridlib.plotting import PALETTE

    rule = rule_id(label)
    return COLOURS[rule] if rule else PALETTE[list(runs).index(label) % len(PALETTE)]


def _seed_dots(ax, x: float, accuracies: Sequence[float], color, label: str) -> None:
    """Every seed's accuracy (%) as a dot at ``x``, and their mean ± sd, labelled with ``n``."""
    acc = 100 * np.asarray(accuracies)
    ax.plot(np.full(acc.shape, x), acc, ".", color=color, alpha=0.5)
    ax.errorbar([x], [acc.mean()], yerr=[acc.std(ddof=1)] if acc.size > 1 else None, fmt="o",
                capsize=3, color=color, label=f"{label} ({acc.size})")


def _finish(fig, ax, xlabel: str):
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=LEGEND_SIZE, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, (0.12 + 0.2 * -(-len(labels) // 2)) / fig.get_figheight(), 1, 1))
    return fig


def alignment_accuracy(cosines: Mapping[str, float], groups: Mapping[str, Mapping[str, dict]],
                       runs: Mapping[str, MnistRun]) -> list[dict[str, Any]]:
    """Each rule's alignment beside its accuracy: ``{"rule", "cosine", "accuracies"}`` for every
    configuration of ``runs`` with published seeds and a cosine in ``cosines`` (keyed by the
    labels of :data:`gridlib.filtergrid.alignment.RULES`, e.g. the cosines at ``T = 28``). BPTT
    computes the exact gradient, so its cosine is 1 by definition."""
    from gridlib.filtergrid.alignment import RULES as ALIGNED

    by_rule = {rule_window: key for key, rule_window in ALIGNED.items()}
    points = []
    for label, run in runs.items():
        key = by_rule.get((run.rule, run.window))
        cosine = 1.0 if run.rule == "bptt" else cosines.get(key) if key else None
        if groups.get(label) and cosine is not None:
            points.append({"rule": label, "cosine": float(cosine),
                           "accuracies": final_accuracies(groups[label])})
    return points


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rank correlation of ``x`` and ``y`` (no ties expected), and how often a value at
    least as large arises by chance: the exact one-sided permutation p-value over every ordering
    of ``y`` (up to 8 points)."""
    if len(x) != len(y) or not 3 <= len(x) <= 8:
        raise ValueError(f"need two sequences of the same length, 3 to 8, got {len(x)} and {len(y)}")
    from itertools import permutations

    rx, ry = (np.argsort(np.argsort(np.asarray(v, float))) for v in (x, y))
    rho = float(np.corrcoef(rx, ry)[0, 1])
    null = np.array([np.corrcoef(rx, perm)[0, 1] for perm in permutations(ry)])
    return rho, float(np.mean(null >= rho - 1e-12))


def alignment_accuracy_figure(points: Sequence[Mapping[str, Any]], runs: Mapping[str, MnistRun],
                              xlabel: str = "cosine with the exact gradient at the initial "
                                            "parameters, T = 28"):
    """Test accuracy (mean ± sd over seeds, every seed as a dot) against the cosine of each
    rule's gradient with the exact one (:func:`alignment_accuracy` of ``runs``); ``xlabel``
    says where the cosines were measured."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(MAX_WIDTH, 4.0))
    for p in points:
        _seed_dots(ax, p["cosine"], p["accuracies"], _color(p["rule"], runs), p["rule"])
    return _finish(fig, ax, xlabel)


def gradient_norms(images, labels, seed: int = 0) -> dict[str, float]:
    """Norm of SnAP-1's batch-mean gradient at the task's initial parameters (``seed``), for the
    summed loss and for the per-step loss: how far one optimiser step of a given size moves the
    grid under each loss. ``images: (B, 784)`` real digits, ``labels: (B,)``."""
    import jax
    import jax.numpy as jnp

    from gridlib.filtergrid.experiments import MNIST_PIXEL_SCALE, make_task, sequences
    from gridlib.filtergrid.rtrl import flatten
    from gridlib.filtergrid.temporal import rule_batch_grads

    state = make_task().init(jax.random.PRNGKey(seed))  # the task's defaults: 28 pixels a row, gain 10
    xs = sequences(state.routing, jnp.asarray(images), 28, 10.0, MNIST_PIXEL_SCALE)
    grad = jax.jit(rule_batch_grads("snap1"), static_argnames="mode")
    out = {}
    for mode in ("sum", "per_t"):
        g = grad(state.params, xs, jnp.asarray(labels), mode=mode)[2]
        out[mode] = float(jnp.linalg.norm(flatten(g)))
    return out


__all__ = ["CARRY", "ONLINE_RUNS", "accuracy_figure", "accuracy_rows", "accuracy_text", "against_rows",
           "alignment_accuracy", "by_step_rows", "carry_rows", "region_rows", "region_summary",
           "rows_against", "snapshot_rows", "top_row_cosines", "top_row_rows", "paired_points", "spread_verdicts", "in_words",
           "alignment_accuracy_figure", "gradient_norms", "load_work", "memory_rows",
           "rank_correlation", "seeds_at_chance", "work_rows"]
