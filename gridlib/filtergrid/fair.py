"""Every temporal rule at its own best setting: the price of locality measured fairly.

The first accuracy table of *One grid, every temporal rule* trains every rule at the original's
setting (Adam 3e-3, batch 32, 10 epochs), which was chosen for SnAP-1. Here each rule first searches its own step size on
validation data (``python -m gridlib filtergrid-tune``, :mod:`gridlib.filtergrid.tuning`: the
first 50,000 training images for training, the last 10,000 for validation, the test set never
evaluated), then trains at the chosen setting on all 60,000 training images for the original's
budget, on several seeds (``filtergrid-mnist --tuned-from``), and is scored on the full test set.

:func:`load` reads the searches and the runs (a run must name the search it used and carry the
setting that search chose), :func:`rows` tabulates them beside the untuned runs with paired
differences, :func:`search_rows` shows each search, and :func:`findings`,
:func:`verdict_finding` (which conclusions tuning changed) and :func:`neighbour_finding` state
the result. :func:`load_curves` reads the runs that train until validation accuracy stops
improving. The batch-1 SGD configurations (:data:`BATCH1_RUNS`) search their per-group step
the same way, with a third of their own budget (:func:`search_epochs`), and only train to
convergence (:func:`load_batch1`, :func:`batch1_finding`). Nothing here trains or times
anything.

Why this module is long: it is one protocol, from the search to the sentences that report it,
and every part names its records by the same rules (:func:`search_name`, :func:`tuned_name`,
:func:`converge_name`) and refuses a record by the same expectation (the step its search
chose); split, those rules would have to be imported back and forth between the parts.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from gridlib import report, results
from gridlib.filtergrid.comparison import (
    ONLINE_RUNS,
    in_words,
    paired_points,
    seeds_at_chance,
    spread_verdicts,
)
from gridlib.filtergrid.summary import (
    RULE_RUNS,
    MnistRun,
    final_accuracies,
    final_accuracy_by_seed,
    load_mnist_runs,
    mnist_expect,  # fmt: skip
    paired_differences,
)

#: The rules searched and trained at their best (truncated BPTT at the window the book studies).
TUNED_RUNS = {label: run for label, run in RULE_RUNS.items() if label != "truncated BPTT, K = 1"}
#: The batch-1 configurations (per-group SGD, one sequence per update, 3 epochs) searched and
#: trained until they stop improving: the hardware-realistic setting, with no optimiser state.
BATCH1_RUNS = ONLINE_RUNS
#: The seeds a rule needs at its chosen step before the findings compare it.
MIN_SEEDS = 3
#: The search's epochs at the original's Adam budget of 10 (``filtergrid-tune``'s default).
SEARCH_EPOCHS = 3
#: The search's training images (the first 50,000 of MNIST's training set).
SEARCH_TRAIN = 50000
#: The search's validation images (the last 10,000 of MNIST's training set).
SEARCH_VAL = 10000

Group = dict[str, dict]


def search_epochs(run: MnistRun) -> int:
    """The search's budget: a third of the run's own, rounded down (3 of Adam's 10 epochs, 1 of
    batch-1 SGD's 3), so that every candidate of every rule costs about one full run."""
    return max(1, run.epochs // 3)


def search_name(run: MnistRun) -> str:
    """``filtergrid/tune/<rule>_adam_b32_e3_n50000v10000_seed0``: the search of one rule."""
    from gridlib.filtergrid.experiments import run_name

    return run_name(run.rule, run.optimizer, run.batch_size, search_epochs(run), SEARCH_TRAIN, 0,
                    run.window, run.every_step, n_val=SEARCH_VAL, folder="tune")  # fmt: skip


def tuned_name(run: MnistRun, seed: int | str) -> str:
    """``filtergrid/tuned/<rule>_adam_b32_e10_n60000_seed<seed>``: a run at the chosen setting."""
    from gridlib.filtergrid.experiments import run_name

    return run_name(run.rule, run.optimizer, run.batch_size, run.epochs, 60000, seed,
                    run.window, run.every_step, folder="tuned")  # fmt: skip


def _command(run: MnistRun, seed: int | None) -> str:
    flags = f" --window {run.window}" if run.window is not None else ""
    flags += " --update-every-step true" if run.every_step else ""
    if run.optimizer != "adam":
        flags += f" --optimizer {run.optimizer} --batch-size {run.batch_size}"
    if seed is None:
        budget = f" --epochs {search_epochs(run)}" if search_epochs(run) != SEARCH_EPOCHS else ""
        return f"python -m gridlib filtergrid-tune --rule {run.rule}{flags}{budget} --publish"
    return (f"python -m gridlib filtergrid-mnist --rule {run.rule}{flags} "
            f"--tuned-from {search_name(run)} --seed {seed} --publish")


class Fair(NamedTuple):
    """The searches (``{label: record}``), the runs at the chosen settings and at the
    original's (``{label: {name: record}}``), and the commands that make what is missing."""

    searches: dict[str, dict]
    tuned: dict[str, dict[str, dict]]
    untuned: dict[str, dict[str, dict]]
    missing: list[str]

    def records(self) -> dict[str, dict]:
        """Every search and tuned run by its results name (for a provenance block)."""
        found = {rec["name"]: rec for rec in self.searches.values()}
        return {**found, **{n: r for g in self.tuned.values() for n, r in g.items()}}


def load(seeds: Sequence[int] = (0, 1, 2)) -> Fair:
    """Every published search and tuned run of :data:`TUNED_RUNS`, and the untuned runs.

    A tuned run is refused (:class:`gridlib.results.ResultsError`) unless it names its rule's
    search and trains at exactly the setting that search chose; seeds of one rule must differ
    in nothing else."""
    searches, missing = load_searches(TUNED_RUNS)
    tuned = {}
    for label, run in TUNED_RUNS.items():
        if label not in searches:
            tuned[label] = {}
            continue
        expect = {**{k: v for k, v in mnist_expect(run).items() if k not in _STEP_KEYS},
                  **_chosen_expect(run, searches[label])}  # fmt: skip
        group = results.load_group(tuned_name(run, "*"), expect=expect, allow_empty=True)
        tuned[label] = {tuned_name(run, s): group[tuned_name(run, s)] for s in seeds
                        if tuned_name(run, s) in group}  # fmt: skip
        missing += [_command(run, s) for s in seeds if tuned_name(run, s) not in group]
    untuned, _ = load_mnist_runs(seeds=tuple(seeds), runs=TUNED_RUNS)
    return Fair(searches, tuned, untuned, missing)


#: The config keys a search chooses: Adam's learning rate or SGD's per-group step, and the gain.
_STEP_KEYS = ("lr", "eta0", "gain")


def load_searches(runs: Mapping[str, MnistRun]) -> tuple[dict[str, dict], list[str]]:
    """The published search of each of ``runs`` (``{label: record}``) and the commands of the
    missing ones; a search of another rule, optimiser or scale is refused."""
    searches, missing = {}, []
    for label, run in runs.items():
        name = search_name(run)
        if not results.exists(name):
            missing.append(_command(run, None))
            continue
        searches[label] = results.load(name, expect={"rule": run.rule, "optimizer": run.optimizer,
                                                     "batch_size": run.batch_size,
                                                     "provenance.scale": "full"})  # fmt: skip
    return searches, missing


def _chosen_expect(run: MnistRun, search: Mapping[str, Any]) -> dict[str, Any]:
    """What a run at ``search``'s choice must declare: the chosen step and gain, and the search."""
    return {**search["metrics"]["chosen"], "tuning.record": search_name(run)}


def _points(values: Sequence[float]) -> str:
    return report.format_mean_sd([100 * v for v in values], 1, n=False)


def _paired(a: Group, b: Group) -> str:
    """Paired difference in points over the seeds both ran, and on how many it has the mean's
    sign (``"+3.1 ± 2.0 (3 of 3)"``); ``"–"`` with no common seed."""
    d = list(paired_differences(a, b).values())
    if not d:
        return "–"
    sign = np.sign(np.mean(d))
    return f"{'+' if sign > 0 else ''}{_points(d)} ({sum(np.sign(x) == sign for x in d)} of {len(d)})"


def _setting(search: Mapping[str, Any]) -> str:
    c = search["metrics"]["chosen"]
    edge = [k for k, v in search["metrics"].get("at_edge", {}).items() if v]
    step = c["lr"] if "lr" in c else c["eta0"]
    # the input gain only where the search tried more than one
    gain = f" (input gain {c['gain']:g})" if len(search["config"]["search"].get("gain", ())) > 1 else ""
    return f"{step:g}{gain}" + (f", at the grid's edge in {', '.join(edge)}" if edge else "")


def rows(fair: Fair) -> list[dict[str, str]]:
    """One row per rule with tuned runs: the setting chosen on validation, the test accuracy at
    it and at the original's setting (%, mean ± sd), how far the rule moved (points), and the
    paired differences to SnAP-1 and to BPTT at their own best settings, with the number of seeds
    on which each difference has its mean's sign."""
    out = []
    for label, group in fair.tuned.items():
        if not group:
            continue
        acc, before = final_accuracies(group), final_accuracies(fair.untuned.get(label) or {})
        out.append({
            "rule": label,
            "chosen step (validation)": _setting(fair.searches[label]),
            "test accuracy, tuned": report.format_mean_sd(acc, percent=True, n=True),
            "at the original's setting": report.format_mean_sd(before, percent=True, n=True) if before else "–",
            # the original's step kept: the same configuration, so no move is tuning's
            "moved (points)": "– (same step)" if _choice(fair, label) == "kept" else
                              report.signed(100 * (np.mean(acc) - np.mean(before)), 1) if before else "–",
            "minus SnAP-1 (paired)": _paired(group, fair.tuned["SnAP-1"]) if label != "SnAP-1" else "–",
            "minus BPTT (paired)": _paired(group, fair.tuned["BPTT"]) if label != "BPTT" else "–",
        })  # fmt: skip
    return out


def search_rows(fair: Fair) -> list[dict[str, str]]:
    """Each search: the rule, the step sizes tried with their validation accuracy (%) after the
    search's budget, the one chosen marked, and how many candidates diverged."""
    out = []
    for label, rec in fair.searches.items():
        m, grid = rec["metrics"], rec["config"]["search"]
        steps = grid["lr"] if "lr" in grid else grid["eta0"]
        cands = [(lr, g) for g in grid["gain"] for lr in steps]  # tuning.candidates' order
        tried = [f"{'**' if i == m['chosen_index'] else ''}{lr:g}: {100 * a:.1f}{'**' if i == m['chosen_index'] else ''}"
                 for i, ((lr, _g), a) in enumerate(zip(cands, m["val/acc"], strict=True))]  # fmt: skip
        out.append({"rule": label, "validation accuracy (%) by step size": ", ".join(tried),
                    "diverged": str(sum(m["diverged"]))})  # fmt: skip
    return out


#: The rules trained until validation accuracy stops improving.
CONVERGE = ("SnAP-1", "BPTT")
#: The most epochs those runs may train, and after how many epochs without a better validation
#: accuracy they stop, by optimiser: Adam at batch 32, and per-group SGD at batch 1, whose epoch
#: is 60,000 updates (32 times as many as Adam's).
CONVERGE_BUDGET = {"adam": (40, 5), "sgd": (15, 3)}
#: Adam's budget (:data:`CONVERGE_BUDGET`).
CONVERGE_EPOCHS, CONVERGE_PATIENCE = CONVERGE_BUDGET["adam"]


def converge_name(run: MnistRun, seed: int | str) -> str:
    """``filtergrid/tuned/<rule>_adam_b32_max40p5_n50000v10000_seed<seed>``: a run at the chosen
    setting on the 50,000 training images, until validation accuracy has not improved for 5
    epochs (at most 40; :data:`CONVERGE_BUDGET` for the optimiser)."""
    from gridlib.filtergrid.experiments import run_name

    epochs, patience = CONVERGE_BUDGET[run.optimizer]
    return run_name(run.rule, run.optimizer, run.batch_size, epochs, SEARCH_TRAIN, seed,
                    run.window, run.every_step, n_val=SEARCH_VAL, patience=patience,
                    folder="tuned")  # fmt: skip


def load_curves(fair: Fair, seeds: Sequence[int] = (0, 1, 2),
                runs: Mapping[str, MnistRun] | None = None) -> tuple[dict[str, Group], list[str]]:
    """The runs to convergence (``{label: {name: record}}``) of ``runs`` (default: the rules of
    :data:`CONVERGE`), each refused unless it trains at the step its rule's search chose, and
    the commands of the missing ones."""
    runs = runs if runs is not None else {label: TUNED_RUNS[label] for label in CONVERGE}
    curves, missing = {}, []
    for label, run in runs.items():
        if label not in fair.searches:
            continue
        epochs, patience = CONVERGE_BUDGET[run.optimizer]
        expect = {"rule": run.rule, "optimizer": run.optimizer, "batch_size": run.batch_size,
                  "n_train": SEARCH_TRAIN, "max_epochs": epochs, "patience": patience,
                  "provenance.scale": "full", **_chosen_expect(run, fair.searches[label])}  # fmt: skip
        group = results.load_group(converge_name(run, "*"), expect=expect, allow_empty=True)
        curves[label] = {converge_name(run, s): group[converge_name(run, s)] for s in seeds
                         if converge_name(run, s) in group}  # fmt: skip
        missing += [f"{_command(run, s)} --validation true --n-train {SEARCH_TRAIN} --patience "
                    f"{patience} --epochs {epochs}"
                    for s in seeds if converge_name(run, s) not in group]  # fmt: skip
    return curves, missing


def load_batch1(seeds: Sequence[int] = (0, 1, 2)) -> tuple[Fair, dict[str, Group], list[str]]:
    """The batch-1 configurations (:data:`BATCH1_RUNS`): their searches (as a :class:`Fair` with
    no tuned 60,000-image runs; the chapter loads their runs at the original's 3 epochs with the
    other online runs), their runs to convergence at the chosen steps, and the commands of
    whatever is missing."""
    searches, missing = load_searches(BATCH1_RUNS)
    fair = Fair(searches, {}, {}, missing)
    curves, more = load_curves(fair, seeds, runs=BATCH1_RUNS)
    return fair, curves, missing + more


def _by_epoch(group: Group, metric: str) -> np.ndarray:
    """``(epochs, seeds)`` of ``metric`` in %, NaN after a seed's run stopped."""
    hs = [np.asarray(r["history"][metric], float) for r in group.values()]
    out = np.full((max(map(len, hs)), len(hs)), np.nan)
    for j, h in enumerate(hs):
        out[: len(h), j] = 100 * h
    return out


def curve_rows(curves: Mapping[str, Group], budget: int = 10) -> list[dict[str, str]]:
    """Per rule: the epochs each seed ran, the epoch of best validation accuracy, and the
    validation and test accuracy there (%, mean ± sd), beside the test accuracy after the
    original's ``budget`` of epochs (10 for Adam, 3 for batch-1 SGD)."""
    out = []
    for label, group in curves.items():
        if not group:
            continue
        ms = [r["metrics"] for r in group.values()]
        at = [r["history"]["test/acc"][budget - 1] for r in group.values()
              if len(r["history"]["test/acc"]) >= budget]  # fmt: skip
        out.append({
            "rule": label,
            "epochs run": ", ".join(str(m["epochs_run"]) for m in ms),
            "best epoch": ", ".join(str(m["best_epoch"]) for m in ms),
            "validation accuracy, best epoch": report.format_mean_sd([m["best/val/acc"] for m in ms], percent=True, n=False),
            "test accuracy, best epoch": report.format_mean_sd([m["best/test/acc"] for m in ms], percent=True, n=False),
            f"test accuracy, epoch {budget}": report.format_mean_sd(at, percent=True, n=False) if at else "–",
        })  # fmt: skip
    return out


def curve_figure(curves: Mapping[str, Group]):
    """Validation accuracy against epochs for each rule: every seed as a thin line, the mean
    ± sd as a thick line and a band while every seed still runs (not beyond, where it would be
    the mean of fewer seeds), each seed's best epoch as a dot. Two rules share one panel, with
    the legend below; more get one panel each, on the same axes (overlaid, their bands hide
    each other)."""
    import matplotlib.pyplot as plt

    from gridlib.plotting import PALETTE

    shown = [(k, g) for k, g in curves.items() if g]
    one = len(shown) <= 2
    cols = 1 if one else min(3, len(shown))
    rows = 1 if one else -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4, 4.2 if one else 2.3 * rows + 0.4),
                             sharex=True, sharey=True, squeeze=False)
    for i, (label, group) in enumerate(shown):
        ax = axes.flat[0 if one else i]
        acc, color = _by_epoch(group, "val/acc"), PALETTE[i % len(PALETTE)]
        epochs = np.arange(1, len(acc) + 1)
        ax.plot(epochs, acc, color=color, lw=0.7, alpha=0.5)
        mean, sd = acc.mean(axis=1), acc.std(axis=1)  # NaN once a seed has stopped
        seeds = report.plural(acc.shape[1], "seed")
        ax.plot(epochs, mean, color=color, lw=2, label=f"{short_label(label)} ({seeds})")
        ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.15)
        best = [r["metrics"]["best_epoch"] for r in group.values()]
        ax.plot(best, [acc[b - 1, j] for j, b in enumerate(best)], "o", color=color, ms=5)
        if not one:
            ax.set_title(textwrap.fill(f"{short_label(label)} ({seeds})", 28), fontsize=9)
    for k in range(len(shown), rows * cols) if not one else ():  # the grid's empty panels
        axes.flat[k].set_visible(False)
        above = axes.flat[k - cols]  # the panel above an empty one keeps its epoch axis
        above.xaxis.set_tick_params(labelbottom=True)
        above.set_xlabel("epoch")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation accuracy (%)" if one else "validation (%)")
    if one:
        axes[0, 0].legend(fontsize=9, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.tight_layout()
    return fig


def curve_finding(curves: Mapping[str, Group]) -> str:
    """Whether SnAP-1's gap to BPTT on validation data closes, stays or grows from 10 epochs to
    each rule's best epoch, on the seeds both ran, by the book's spread rule
    (:func:`gridlib.report.beyond_spread` of the per-seed changes); empty without a common seed."""
    by_seed = {label: {r["provenance"]["seed"]: r for r in curves.get(label, {}).values()} for label in CONVERGE}
    seeds = sorted(set(by_seed["SnAP-1"]) & set(by_seed["BPTT"]))
    seeds = [s for s in seeds if all(len(by_seed[k][s]["history"]["val/acc"]) >= 10 for k in CONVERGE)]
    if not seeds:
        return ""

    def gap(s: int, best: bool) -> float:
        b, a = (by_seed[k][s] for k in ("BPTT", "SnAP-1"))
        pick = (lambda r: r["metrics"]["best/val/acc"]) if best else (lambda r: r["history"]["val/acc"][9])
        return 100 * (pick(b) - pick(a))

    at10, best = [gap(s, False) for s in seeds], [gap(s, True) for s in seeds]
    change = [y - x for x, y in zip(at10, best, strict=True)]
    if not report.beyond_spread(change):
        word = ("stays (it " + ("narrows" if np.mean(change) < 0 else "widens")
                + " by less than the seeds' spread)")
    else:
        word = "closes" if np.mean(change) < 0 else "grows"
    n = report.plural(len(seeds), "seed")
    return (f"Given as many epochs as help it, SnAP-1's gap to BPTT {word}: on validation data it is "
            f"{np.mean(at10):.1f} points after 10 epochs and {np.mean(best):.1f} points at each "
            f"rule's best epoch, over {n}.")


def short_label(label: str) -> str:
    """A configuration's label to its first two clauses, the second in parentheses
    (``"online SnAP-1 (per-step loss)"``), so that a list of them reads in a sentence and a
    legend."""
    parts = label.split(", ")
    return parts[0] if len(parts) == 1 else f"{parts[0]} ({parts[1]})"


def batch1_finding(curves: Mapping[str, Group], budget: int = 3) -> str:
    """Where batch-1 SGD really ends, leading with the answer: whether the runs to convergence
    gain beyond the seeds' spread (:func:`gridlib.report.beyond_spread` of each seed's gain)
    from the original's ``budget`` of epochs to their best epoch on validation, and each
    configuration's test accuracy there; empty without runs."""
    gains, best = {}, {}
    for label, group in ((k, g) for k, g in curves.items() if g):
        runs = [r for r in group.values() if len(r["history"]["test/acc"]) >= budget]
        gains[label] = [100 * (r["metrics"]["best/test/acc"] - r["history"]["test/acc"][budget - 1]) for r in runs]
        best[label] = [r["metrics"]["best/test/acc"] for r in group.values()]
    if not best:
        return ""
    seeds = min(len(v) for v in best.values())
    climbing = in_words([short_label(k) for k, v in gains.items() if report.beyond_spread(v)])
    if seeds < 2:
        lead = (f"Past the original's {budget} epochs, batch-1 SGD at each rule's own step "
                + ("gains on every configuration's first seed" if all(np.mean(v) > 0 for v in gains.values())
                   else "does not gain on every configuration's first seed")
                + " (one seed each so far, so no spread to judge it by)")  # fmt: skip
    elif climbing:
        lead = (f"Batch-1 SGD is still improving after the original's {budget} epochs: given more, "
                f"{climbing} {'gains' if ' and ' not in climbing else 'gain'} beyond the seeds' spread")
    else:
        lead = (f"Batch-1 SGD at each rule's own step ends near the original's {budget} epochs: "
                "no configuration gains beyond the seeds' spread from more epochs")
    top = max(best, key=lambda k: np.mean(best[k]))
    at_budget = np.mean(best[top]) - np.mean(gains[top]) / 100
    text = (f"{lead}. The best, {short_label(top)}, is at {100 * at_budget:.1f} % on epoch "
            f"{budget} at its chosen step and reaches "
            f"{report.format_mean_sd(best[top], percent=True, n=True)} at its best epoch on validation")
    capped = [short_label(k) for k, g in curves.items() if g and any(map(still_improving, g.values()))]
    if capped:
        text += (f"; a run of {in_words(capped)} reached the epoch cap before its patience ran out")
    return text + "."


def collapses(runs: Fair, curves: Mapping[str, Group], labels) -> str:
    """Which configurations of ``curves`` end runs no better than always answering the commonest
    test digit (``labels``: the test labels; :func:`~gridlib.filtergrid.comparison.seeds_at_chance`
    of their last epoch), after a better best epoch: how many runs each, and whether its search
    chose the largest or smallest step it tried; empty where none does."""
    parts = []
    for label, group in ((k, g) for k, g in curves.items() if g):
        n = seeds_at_chance(group, labels)
        if not n:
            continue
        search = runs.searches.get(label)
        grid = (search or {}).get("config", {}).get("search", {}).get("eta0") or []
        step = search["metrics"]["chosen"].get("eta0") if search else None
        end = "largest" if grid and step == max(grid) else "smallest" if grid and step == min(grid) else ""
        parts.append(f"{short_label(label)} on {n} of {len(group)} seeds"
                     + (f" (its search chose η₀ = {step:g}, the {end} step it tried)" if end else ""))
    if not parts:
        return ""
    return ("Some runs collapse after their best epoch, to always answering the commonest digit: "
            + "; ".join(parts) + ". A search one epoch long does not see a collapse that comes later.")


def still_improving(record: Mapping[str, Any]) -> bool:
    """Whether a run to convergence stopped at its epoch cap (``max_epochs``) with its best
    validation epoch among its last ``patience``: patience would not yet have stopped it."""
    m, c = record["metrics"], record.get("config") or {}
    cap, patience = c.get("max_epochs"), c.get("patience")
    return bool(cap and patience and m["epochs_run"] >= cap and m["best_epoch"] > m["epochs_run"] - patience)


def changed_verdicts(fair: Fair) -> dict[tuple[str, str], tuple[str, str]]:
    """``{(rule, reference): (before, after)}``: the comparisons with SnAP-1 and with BPTT whose
    verdict (``"better"``, ``"worse"`` or ``"within"`` the seeds' spread, paired on the same
    seeds; :func:`gridlib.filtergrid.comparison.spread_verdicts`) differs between the original's
    setting and each rule's own; only rules with :data:`MIN_SEEDS` tuned seeds are judged."""
    tuned = {k: g for k, g in fair.tuned.items() if len(g) >= MIN_SEEDS}
    out = {}
    for ref in ("SnAP-1", "BPTT"):
        if ref not in tuned:
            continue
        before = spread_verdicts(paired_points(fair.untuned, ref))
        after = spread_verdicts(paired_points(tuned, ref))
        out.update({(k, ref): (before[k], v) for k, v in after.items()
                    if k in before and before[k] != v and (ref, k) not in out})  # one pair, once
    return out


#: A lost verdict (now within the spread), and a new one (within it before), in words.
_LOST = {"better": "no longer leads", "worse": "no longer trails"}
_NEW = {"better": "now leads", "worse": "now trails"}


def verdict_finding(fair: Fair) -> str:
    """Which conclusions tuning changed, answer first: the comparisons with SnAP-1 and BPTT whose
    verdict moved between the original's setting and each rule's own (:func:`changed_verdicts`),
    the verdicts lost (now within the seeds' spread) apart from those gained; empty until SnAP-1
    or BPTT has its tuned seeds."""
    if not any(len(fair.tuned.get(ref) or {}) >= MIN_SEEDS for ref in ("SnAP-1", "BPTT")):
        return ""
    changed = changed_verdicts(fair)
    judged = in_words([k for k, g in fair.tuned.items() if len(g) >= MIN_SEEDS])
    if not changed:
        return (f"Tuning changes no verdict of the comparisons with SnAP-1 and BPTT ({judged} "
                "judged, each on the same seeds at both settings).")
    lost = [f"{rule} {_LOST[a]} {ref}" for (rule, ref), (a, b) in changed.items() if b == "within"]
    gained = [f"{rule} {_NEW[b]} {ref} beyond the seeds' spread" + (
              " (within it at the original's setting)" if a == "within" else
              f" (it {'led' if a == 'better' else 'trailed'} at the original's setting)")
              for (rule, ref), (a, b) in changed.items() if b != "within"]  # fmt: skip
    bptt = accuracy_by_seed(fair.tuned.get("BPTT") or {})
    widened = any("BPTT" in k and b == "within" for k, (a, b) in changed.items())
    why = (": one of BPTT's tuned seeds ends far below its others and widens every spread "
           "against it" if widened and low_seed(bptt) is not None else "")
    text = (f"Tuning each rule's step changes {report.plural(len(changed), 'verdict')} of the "
            "comparisons with SnAP-1 and BPTT, on the same seeds.")
    if lost:
        text += " " + report.listing(lost, ", and ") + (", " if len(lost) > 1 else " ") + "beyond the seeds' spread" + why + "."
    if gained:
        text += " " + report.listing(gained, ", and ") + "."
    return text


def _against(verdicts: Mapping[str, str], ref: str) -> str:
    """``{rule: verdict}`` against ``ref`` as one clause, rules of one verdict named together."""
    verbs = {"within": ("ends", "end", f"within the seeds' spread of {ref}"),
             "worse": ("trails", "trail", f"{ref} beyond the seeds' spread"),
             "better": ("leads", "lead", f"{ref} beyond the seeds' spread")}  # fmt: skip
    parts = []
    for verdict, (one, many, rest) in verbs.items():
        rules = [k for k, v in verdicts.items() if v == verdict]
        if rules:
            parts.append(f"{in_words(rules)} {one if len(rules) == 1 else many} {rest}")
    return " and ".join(parts)


def neighbour_finding(fair: Fair, rules: Sequence[str] = ("SnAP-0", "SnAP-2")) -> str:
    """How SnAP-1's neighbours in the locality class (``rules``) compare with it at the
    original's setting and at each rule's own step, on the same seeds, by the spread rule; the
    tuned half only for rules with :data:`MIN_SEEDS` tuned seeds; empty without the untuned runs."""
    pick = ("SnAP-1", *rules)
    before = spread_verdicts(paired_points({k: fair.untuned[k] for k in pick if fair.untuned.get(k)}, "SnAP-1"))
    if not before:
        return ""
    tuned = {k: fair.tuned[k] for k in pick if len(fair.tuned.get(k) or {}) >= MIN_SEEDS}
    after = spread_verdicts(paired_points(tuned, "SnAP-1")) if "SnAP-1" in tuned else {}
    # does the rule with more state (the last of ``rules``) train measurably better?
    more = [v.get(rules[-1]) for v in (before, after) if rules[-1] in v]
    answer = ("No: " if "better" not in more else "Yes: " if set(more) == {"better"} else
              "Not at every setting: ")
    text = f"{answer}at the original's setting {_against(before, 'SnAP-1')}"
    if after:
        text += f"; at each rule's own step {_against(after, 'SnAP-1')}"
    return text + "."


def moves(fair: Fair) -> dict[str, tuple[float, bool]]:
    """``{label: (points, beyond)}``: how far each rule's mean test accuracy moved from the
    original's setting to its own, and whether beyond the seeds' spread at both settings
    (:func:`gridlib.report.groups_differ`); only rules with runs at both."""
    out = {}
    for label, group in fair.tuned.items():
        a, b = final_accuracies(group), final_accuracies(fair.untuned.get(label) or {})
        if len(a) > 1 and len(b) > 1:
            out[label] = (float(100 * (np.mean(a) - np.mean(b))), report.groups_differ(a, b))
    return out


def _choice(fair: Fair, label: str) -> str | None:
    """Whether ``label``'s search ``"kept"`` the original's step or chose a ``"larger"`` or
    ``"smaller"`` one; ``None`` without its search."""
    search = fair.searches.get(label)
    if search is None:
        return None
    run = TUNED_RUNS[label]
    key = "lr" if run.optimizer == "adam" else "eta0"
    chosen, original = search["metrics"]["chosen"][key], mnist_expect(run)[key]
    return "kept" if np.isclose(chosen, original) else "larger" if chosen > original else "smaller"


def _choice_clauses(fair: Fair, moved: Mapping[str, float]) -> list[str]:
    """Clauses on where each search's choice left its rule: the rules whose search kept the
    original's step, and those for which it chose a larger or a smaller one, with how far each
    of these moved (points) and whether they all moved the same way; empty without searches."""
    by = {"kept": [], "larger": [], "smaller": []}
    for label in moved:
        side = _choice(fair, label)
        if side is None:
            return []
        by[side].append(label)
    out = [f"the search kept the original's step for {in_words(by['kept'])}"] if by["kept"] else []
    for side in ("larger", "smaller"):
        rules = by[side]
        if not rules:
            continue
        d = [moved[k] for k in rules]
        way = "lower" if all(x < 0 for x in d) else "higher" if all(x > 0 for x in d) else None
        ends = (f"{'which ends' if len(rules) == 1 else 'each of which ends'} {way} on average"
                if way else "which end some higher, some lower")  # fmt: skip
        out.append(f"it chose a {side} one for {in_words(rules)}, {ends} at the full budget "
                   f"({', '.join(report.signed(x, 1) for x in d)} points)")
    return out


def findings(fair: Fair) -> list[str]:
    """Sentences that lead with the answer: whether tuning moved any rule beyond the seeds'
    spread, and whether BPTT still leads every local rule at each rule's own best setting."""
    out = []
    moved = moves(fair)
    if moved:
        beyond = [k for k, (_, b) in moved.items() if b]
        lead = ("Tuning each rule's step size on validation data moves no rule beyond its seeds' "
                "spread" if not beyond else f"Tuning on validation data moves {', '.join(beyond)} "
                "beyond the seeds' spread")  # fmt: skip
        parts = _choice_clauses(fair, {k: d for k, (d, _) in moved.items()})
        out.append(f"{lead}: " + "; ".join(parts) + "." if parts else
                   f"{lead}: against the original's setting, "
                   + "; ".join(f"{k} {report.signed(d, 1)} points" for k, (d, _) in moved.items()) + ".")  # fmt: skip
    bptt = fair.tuned.get("BPTT") or {}
    diffs = {k: paired_differences(g, bptt) for k, g in fair.tuned.items() if g and k != "BPTT"}
    diffs = {k: v for k, v in diffs.items() if len(v) >= MIN_SEEDS}  # a finding needs every seed
    if diffs:
        out.append(_bptt_finding({k: {s: 100 * d for s, d in v.items()} for k, v in diffs.items()},
                                 accuracy_by_seed(bptt)))
    return out


def accuracy_by_seed(group: Group) -> dict[int, float]:
    """``{seed: final test accuracy in %}`` of a group's runs."""
    return {seed: 100 * acc for seed, acc in final_accuracy_by_seed(group).items()}


def below_median(values: Mapping[int, float], seed: int) -> float:
    """How far ``values[seed]`` lies below the median of ``values``."""
    return float(np.median(list(values.values()))) - values[seed]


def low_seed(values: Mapping[int, float]) -> int | None:
    """The seed (a key of ``values``) that ends far below the others: more than twice as far
    below the median as the highest seed is above it (three seeds at least); else ``None``."""
    if len(values) < 3:
        return None
    v = np.asarray(list(values.values()), float)
    low = min(values, key=values.get)
    return low if below_median(values, low) > 2 * (v.max() - np.median(v)) else None


def _bptt_finding(diffs: Mapping[str, Mapping[int, float]], bptt: Mapping[int, float]) -> str:
    """Whether BPTT still leads at each rule's own step, and on how many seeds (``diffs``: each
    rule minus BPTT, ``{seed: points}``; ``bptt``: its accuracy, ``{seed: %}``), and BPTT's own
    seeds where one of them ends far below the others (:func:`low_seed`)."""
    means = {k: float(np.mean(list(v.values()))) for k, v in diffs.items()}
    beats = {k: sum(x > 0 for x in v.values()) for k, v in diffs.items()}
    gaps = sorted(-m for m in means.values())
    if gaps[0] > 0:
        span = f"{gaps[0]:.0f}" if round(gaps[0]) == round(gaps[-1]) else f"{gaps[0]:.0f} to {gaps[-1]:.0f}"
        beyond = [k for k, v in diffs.items() if report.beyond_spread(list(v.values()))]
        where = ("beyond the seeds' spread against every one" if len(beyond) == len(diffs) else
                 "within the seeds' spread against every one" if not beyond else
                 f"beyond the seeds' spread only against {in_words(beyond)}")
        text = ("At each rule's own best setting BPTT still trains the better grid on average: it "
                f"leads {'every local rule' if len(means) > 1 else next(iter(means))} by {span} "
                f"points on the same seeds, {where}")
    else:
        level = [k for k, m in means.items() if m >= 0]
        text = (f"At each rule's own best setting {in_words(level)} "
                + ("matches or beats" if len(level) == 1 else "match or beat") + " BPTT on average")
    text += (", and on every seed" if not any(beats.values()) else "; " + "; ".join(
        f"{k} beats it on {c} of {len(diffs[k])} seeds" for k, c in beats.items() if c))
    low = low_seed(bptt)
    if low is not None:
        nearest = [k for k, v in diffs.items() if max(v, key=v.get) == low]
        text += (f". BPTT's own seeds end at {in_words([f'{bptt[s]:.1f}' for s in sorted(bptt)])} %; "
                 f"seed {low} lies {below_median(bptt, low):.0f} points "
                 "below the median seed, and on it BPTT's lead is smallest against "
                 + ("every rule" if len(nearest) == len(diffs) else
                    f"{len(nearest)} of the {len(diffs)} rules"))
    return text + "."


__all__ = ["BATCH1_RUNS", "CONVERGE", "CONVERGE_BUDGET", "CONVERGE_EPOCHS", "CONVERGE_PATIENCE", "MIN_SEEDS", "SEARCH_EPOCHS", "SEARCH_TRAIN", "SEARCH_VAL",
           "TUNED_RUNS", "Fair", "accuracy_by_seed", "batch1_finding", "below_median", "changed_verdicts", "collapses", "converge_name", "curve_figure", "curve_finding", "curve_rows", "findings",
           "load", "load_batch1", "load_curves", "load_searches", "moves", "neighbour_finding", "rows", "low_seed", "search_epochs", "search_name", "search_rows", "short_label", "still_improving", "tuned_name", "verdict_finding"]
