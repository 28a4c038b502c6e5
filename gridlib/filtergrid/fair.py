"""Every temporal rule at its own best setting: the price of locality measured fairly.

Chapter 16's first accuracy table trains every rule at the original's setting (Adam 3e-3, batch
32, 10 epochs), which was chosen for SnAP-1. Here each rule first searches its own step size on
validation data (``python -m gridlib filtergrid-tune``, :mod:`gridlib.filtergrid.tuning`: the
first 50,000 training images for training, the last 10,000 for validation, the test set never
evaluated), then trains at the chosen setting on all 60,000 training images for the original's
budget, on several seeds (``filtergrid-mnist --tuned-from``), and is scored on the full test set.

:func:`load` reads the searches and the runs (a run must name the search it used and carry the
setting that search chose), :func:`rows` tabulates them beside the untuned runs with paired
differences, :func:`search_rows` shows each search, and :func:`findings` states the result.
Nothing here trains or times anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from gridlib import report, results
from gridlib.filtergrid.summary import (
    RULE_RUNS,
    MnistRun,
    final_accuracies,
    load_mnist_runs,
    mnist_expect,  # fmt: skip
    paired_differences,
)

#: The rules searched and trained at their best (truncated BPTT at the window the book studies).
TUNED_RUNS = {label: run for label, run in RULE_RUNS.items() if label != "truncated BPTT, K = 1"}
#: The search's budget (``filtergrid-tune``'s defaults): 3 epochs on 50,000 images, 10,000 held out.
SEARCH_EPOCHS, SEARCH_TRAIN, SEARCH_VAL = 3, 50000, 10000

Group = dict[str, dict]


def search_name(run: MnistRun) -> str:
    """``filtergrid/tune/<rule>_adam_b32_e3_n50000v10000_seed0``: the search of one rule."""
    from gridlib.filtergrid.experiments import run_name

    return run_name(run.rule, run.optimizer, run.batch_size, SEARCH_EPOCHS, SEARCH_TRAIN, 0,
                    run.window, run.every_step, n_val=SEARCH_VAL, folder="tune")  # fmt: skip


def tuned_name(run: MnistRun, seed: int | str) -> str:
    """``filtergrid/tuned/<rule>_adam_b32_e10_n60000_seed<seed>``: a run at the chosen setting."""
    from gridlib.filtergrid.experiments import run_name

    return run_name(run.rule, run.optimizer, run.batch_size, run.epochs, 60000, seed,
                    run.window, run.every_step, folder="tuned")  # fmt: skip


def _command(run: MnistRun, seed: int | None) -> str:
    window = f" --window {run.window}" if run.window is not None else ""
    if seed is None:
        return f"python -m gridlib filtergrid-tune --rule {run.rule}{window} --publish"
    return (f"python -m gridlib filtergrid-mnist --rule {run.rule}{window} "
            f"--tuned-from {search_name(run)} --seed {seed} --publish")


class Fair(NamedTuple):
    """The searches (``{label: record}``), the runs at the chosen settings and at the
    original's (``{label: {name: record}}``), and the commands that make what is missing."""

    searches: dict[str, dict]
    tuned: dict[str, Group]
    untuned: dict[str, Group]
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
    searches, tuned, missing = {}, {}, []
    for label, run in TUNED_RUNS.items():
        name = search_name(run)
        if not results.exists(name):
            missing.append(_command(run, None))
            tuned[label] = {}
            continue
        search = results.load(name, expect={"rule": run.rule, "optimizer": run.optimizer,
                                            "provenance.scale": "full"})  # fmt: skip
        searches[label] = search
        chosen = search["metrics"]["chosen"]
        expect = {k: v for k, v in mnist_expect(run).items() if k not in ("lr", "gain")}
        expect.update({"lr": chosen["lr"], "gain": chosen["gain"], "tuning.record": name})
        group = results.load_group(tuned_name(run, "*"), expect=expect, allow_empty=True)
        tuned[label] = {tuned_name(run, s): group[tuned_name(run, s)] for s in seeds
                        if tuned_name(run, s) in group}  # fmt: skip
        missing += [_command(run, s) for s in seeds if tuned_name(run, s) not in group]
    untuned, _ = load_mnist_runs(seeds=tuple(seeds), runs=TUNED_RUNS)
    return Fair(searches, tuned, untuned, missing)


def _points(values: Sequence[float]) -> str:
    return report.format_mean_sd([100 * v for v in values], 1, n=False).replace(" ± ", "\u00a0±\u00a0")


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
    return f"{c['lr']:g} (gain {c['gain']:g})" + (f", at the grid's edge in {', '.join(edge)}" if edge else "")


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
            "moved (points)": f"{100 * (np.mean(acc) - np.mean(before)):+.1f}" if before else "–",
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
        cands = [(lr, g) for g in grid["gain"] for lr in grid["lr"]]  # tuning.candidates' order
        tried = [f"{'**' if i == m['chosen_index'] else ''}{lr:g}: {100 * a:.1f}{'**' if i == m['chosen_index'] else ''}"
                 for i, ((lr, _g), a) in enumerate(zip(cands, m["val/acc"], strict=True))]  # fmt: skip
        out.append({"rule": label, "validation accuracy (%) by step size": ", ".join(tried),
                    "diverged": str(sum(m["diverged"]))})  # fmt: skip
    return out


def moves(fair: Fair) -> dict[str, tuple[float, bool]]:
    """``{label: (points, beyond)}``: how far each rule's mean test accuracy moved from the
    original's setting to its own, and whether by more than two standard errors of that
    difference (the seeds' spread at both settings); only rules with runs at both."""
    out = {}
    for label, group in fair.tuned.items():
        a, b = final_accuracies(group), final_accuracies(fair.untuned.get(label) or {})
        if len(a) > 1 and len(b) > 1:
            d = 100 * (np.mean(a) - np.mean(b))
            se = 100 * np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
            out[label] = (float(d), bool(abs(d) > 2 * se))
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
        out.append(f"{lead}: against the original's setting, "
                   + "; ".join(f"{k} {d:+.1f} points" for k, (d, _) in moved.items()) + ".")
    bptt = fair.tuned.get("BPTT") or {}
    diffs = {k: list(paired_differences(g, bptt).values()) for k, g in fair.tuned.items() if g and k != "BPTT"}
    diffs = {k: v for k, v in diffs.items() if v}
    if diffs:
        behind = all(x < 0 for v in diffs.values() for x in v)
        lead = ("At each rule's own best setting the exact gradient still trains the better grid on "
                "every seed" if behind else "At each rule's own best setting a local rule matches or "
                "beats BPTT on some seed")  # fmt: skip
        out.append(f"{lead}: on the same seeds, "
                   + "; ".join(f"{k} {_paired(fair.tuned[k], bptt)}" for k in diffs)
                   + " points against BPTT.")
    return out


__all__ = ["SEARCH_EPOCHS", "SEARCH_TRAIN", "SEARCH_VAL", "TUNED_RUNS", "Fair", "findings", "load", "moves", "rows",
           "search_name", "search_rows", "tuned_name"]
