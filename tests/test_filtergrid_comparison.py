"""The rule-comparison tables: counts from the code's shapes, statistics over seeds, pairing."""

import numpy as np
import pytest

from gridlib import report
from gridlib.filtergrid import comparison, summary


def _record(seed, acc, epoch_s=(10.0, 12.0)):
    return {"provenance": {"seed": seed}, "metrics": {"test/acc": acc},
            "history": {"epoch_time_s": list(epoch_s)}}


def test_only_bptt_state_grows_with_sequence_length():
    rows = {r["rule"]: r for r in comparison.memory_rows(summary.RULE_RUNS, ts=(28, 56))}
    assert rows["BPTT"]["grows with T"] == "yes"
    assert rows["BPTT"]["floats per parameter, T = 56"] == "14"  # N M T floats over 4 N M
    assert all(r["grows with T"] == "no" for k, r in rows.items() if k != "BPTT")
    assert rows["SnAP-1"]["floats per parameter, T = 28"] == "2.75"


def test_accuracy_rows_pair_seeds_and_never_mix_groups():
    runs = {"A": summary.MnistRun("snap1"), "B": summary.MnistRun("snap0")}
    groups = {"A": {"a0": _record(0, 0.50), "a1": _record(1, 0.40), "a2": _record(2, 0.60)},
              "B": {"b0": _record(0, 0.45), "b2": _record(2, 0.50)}}
    rows = {r["rule"]: r for r in comparison.accuracy_rows(groups, runs, reference="A")}
    assert report.quantities(rows["A"]["test accuracy"]) == [
        ("filtergrid/snap1_adam_b32_e10_n60000/test_acc", "50.00 ± 10.00 %")]
    assert rows["A"]["minus A (points, paired)"] == "–"
    # only seeds 0 and 2 are paired: -5 and -10 points
    d = np.array([-5.0, -10.0])
    assert rows["B"]["minus A (points, paired)"] == f"\u2212{-d.mean():.2f}\u00a0±\u00a0{d.std(ddof=1):.2f}"
    assert rows["B"]["seeds"] == "2" and "s / epoch" not in rows["B"]
    assert rows["B"]["state floats per parameter"] == "0.75"


def test_empty_groups_are_left_out_and_work_rows_round():
    runs = {"A": summary.MnistRun("snap1")}
    assert comparison.accuracy_rows({"A": {}}, runs, reference="A") == []
    bench = {"metrics": {"rows": [{"rule": "SnAP-1", "CPU-ms per step": 7.04, "CPU time / SnAP-1": 1.0,
                                   "MFLOP per step": 20.21, "FLOPs / SnAP-1": 1.0,
                                   "state floats per parameter": 2.75}]}}
    (row,) = comparison.work_rows(bench)
    assert row["CPU-ms per step"] == "7.0" and row["MFLOP per step"] == "20.2"


def test_online_runs_name_distinct_results():
    names = {run.name(0) for run in comparison.ONLINE_RUNS.values()}
    assert len(names) == len(comparison.ONLINE_RUNS)
    with pytest.raises(KeyError):
        comparison.accuracy_rows({"A": {"a0": _record(0, 0.5)}}, {}, reference="A")


def test_seeds_at_chance_counts_runs_no_better_than_the_commonest_class():
    labels = np.array([1, 1, 1, 0, 2, 3, 4, 5, 6, 7])  # the commonest class is 30 %
    group = {f"r{i}": _record(i, acc) for i, acc in enumerate((0.30, 0.303, 0.31, 0.9))}
    assert comparison.seeds_at_chance(group, labels) == 2  # 0.31 is past the 0.005 margin
    assert comparison.seeds_at_chance(group, labels, margin=0.0) == 1


def test_alignment_accuracy_pairs_each_rule_with_its_own_cosine():
    runs = {"BPTT": summary.MnistRun("bptt"), "K4": summary.MnistRun("tbptt", window=4),
            "K1": summary.MnistRun("tbptt", window=1), "S0": summary.MnistRun("snap0"),
            "S2": summary.MnistRun("snap2")}
    groups = {"BPTT": {"b": _record(0, 0.6)}, "K4": {"k": _record(0, 0.4)},
              "K1": {"k1": _record(0, 0.3)}, "S0": {}, "S2": {"s": _record(0, 0.45)}}
    cos = {"tbptt1": 0.7, "tbptt4": 0.9, "snap0": 0.72}  # no SnAP-2 cosine
    points = {p["rule"]: p for p in comparison.alignment_accuracy(cos, groups, runs)}
    assert set(points) == {"BPTT", "K4", "K1"}  # SnAP-0 has no seeds, SnAP-2 no cosine
    assert points["BPTT"]["cosine"] == 1.0  # exact by definition
    assert (points["K4"]["cosine"], points["K1"]["cosine"]) == (0.9, 0.7)  # the window decides
    assert points["K4"]["accuracies"] == [0.4]


def test_rank_correlation_and_its_permutation_p_value():
    rho, p = comparison.rank_correlation([1, 2, 3, 4], [10, 20, 25, 40])
    assert rho == pytest.approx(1.0) and p == pytest.approx(1 / 24)  # only the identity ties it
    rho, p = comparison.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1])
    assert rho == pytest.approx(-1.0) and p == pytest.approx(1.0)
    rho, p = comparison.rank_correlation([1, 2, 3], [1, 3, 2])
    assert rho == pytest.approx(0.5) and p == pytest.approx(3 / 6)  # 1, 0.5, 0.5 of six orderings
    with pytest.raises(ValueError, match="length"):
        comparison.rank_correlation([1, 2], [1, 2])


def test_gradient_norms_are_the_norms_of_the_task_gradient():
    """Both norms equal the norm of the task's own SnAP-1 batch gradient under each loss."""
    import jax
    import jax.numpy as jnp

    from gridlib.filtergrid.experiments import MNIST_PIXEL_SCALE, batch_grads, make_task, sequences

    rng = np.random.default_rng(0)
    images = (rng.uniform(size=(4, 784)) < 0.2).astype(np.float32)
    labels = np.array([0, 3, 7, 9])
    norms = comparison.gradient_norms(images, labels, seed=1)
    state = make_task().init(jax.random.PRNGKey(1))
    xs = sequences(state.routing, jnp.asarray(images), 28, 10.0, MNIST_PIXEL_SCALE)
    for mode in ("sum", "per_t"):
        g = batch_grads("snap1", state.params, xs, jnp.asarray(labels), mode)[2]
        ref = float(np.sqrt(sum(float(jnp.sum(x ** 2)) for x in jax.tree.leaves(g))))
        assert abs(norms[mode] - ref) <= 1e-5 * ref, mode


# ------------------------------------------------------------------ what the reader sees of the rules

IDS = ("snap0", "snap1", "snap2", "tbptt1", "tbptt4", "online_snap1", "rtrl")


def _study(steps=("0", "5"), rows=4, cols=3):
    """A synthetic alignment study in the form a results file holds it: negative cosines
    included, so that the tables' minus signs are exercised."""
    rng = np.random.default_rng(0)

    def cells():
        return {"row_cosine": list(rng.uniform(-1, 1, rows)), "row_rel_error": list(rng.uniform(0, 2, rows)),
                "row_norm_ratio": list(rng.uniform(1e-9, 1, rows)),
                "rel_error": rng.uniform(1e-5, 2, (rows, cols)).tolist()}

    return {s: {"acc": 0.5, "loss": 1.0, "row_norm": list(np.logspace(-9, 0, rows)),
                "rules": {r: {"cosine": -0.25 if r == "snap0" else 0.5, "rel_error": 0.3} for r in IDS},
                "cells": {r: cells() for r in IDS}} for s in steps}


def test_tables_name_rules_as_the_prose_does_with_true_minus_signs():
    from gridlib.filtergrid import alignment

    study = _study()
    tables = [comparison.carry_rows(), comparison.by_step_rows(study),
              comparison.against_rows(comparison.rows_against(study)),
              comparison.region_rows(comparison.region_summary(study["0"])),
              alignment.length_rows({"1": study["0"], "28": study["5"]})]
    names = set(summary.RULE_RUNS) | {"RTRL (exact)"}
    for rows in tables:
        assert {r["rule"] for r in rows} <= names, rows
        for row in rows:
            assert not any(str(v).lstrip().startswith("-") for v in row.values()), row
    assert comparison.by_step_rows(study)[0]["step 0"] == "\u22120.250"
    assert comparison.in_words(["SnAP-0", "truncated BPTT, K = 4", "SnAP-2"]) == (
        "SnAP-0, truncated BPTT with K = 4 and SnAP-2")


def _luminance(colour):
    from matplotlib.colors import to_rgb

    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_rule_colours_are_distinct_and_readable_on_white():
    from gridlib.filtergrid import alignment

    assert len(set(alignment.COLOURS.values())) == len(alignment.COLOURS)
    for rule, colour in alignment.COLOURS.items():
        assert 1.05 / (_luminance(colour) + 0.05) >= 2.0, (rule, colour)  # contrast with white (yellow: 1.3)
    groups = {k: {} for k in summary.RULE_RUNS}
    assert {comparison._color(k, summary.RULE_RUNS) for k in groups} <= set(alignment.COLOURS.values())


def test_figures_of_the_rules_fit_the_column_with_legible_legends():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gridlib.filtergrid import alignment

    study = _study()
    runs = {"SnAP-1": summary.MnistRun("snap1"), "BPTT": summary.MnistRun("bptt")}
    groups = {k: {f"{k}{s}": _record(s, 0.4 + 0.01 * s) for s in range(2)} for k in runs}
    figures = [alignment.length_figure({"1": study["0"], "28": study["5"]}),
               alignment.rows_figure({"step 0": study["0"], "step 5": study["5"]}),
               alignment.cells_figure(study["5"], ["snap0", "snap1", "snap2", "tbptt4", "online_snap1"]),
               alignment.training_figure(study),
               comparison.accuracy_figure(groups, runs)]
    for fig in figures:
        assert fig.get_figwidth() <= alignment.MAX_WIDTH + 1e-9
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        texts = [t for leg in legends for t in leg.get_texts()]
        texts += [ax.title for ax in fig.axes if ax.get_title()]
        assert all(t.get_fontsize() >= 9 for t in texts), [(t.get_text(), t.get_fontsize()) for t in texts]
        assert not any(t.get_text() in IDS for t in texts), [t.get_text() for t in texts]
        plt.close(fig)
    # truncated BPTT with K = 1 lies on SnAP-0: drawn dashed over it, so that both show
    fig = alignment.length_figure({"1": study["0"], "28": study["5"]})
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert lines["truncated BPTT, K = 1"].get_linestyle() == "--"
    assert lines["SnAP-0"].get_linewidth() > lines["truncated BPTT, K = 1"].get_linewidth()
    plt.close(fig)


def test_a_protocols_record_made_before_a_run_was_remade_is_refused(monkeypatch):
    from gridlib import results
    from gridlib.filtergrid import summary

    now = {"r/seed0": {"metrics": {"test/acc": 0.4232}}}
    monkeypatch.setattr(results, "exists", lambda name: name in now)
    monkeypatch.setattr(results, "load", lambda name, **_: now[name])
    current = {"metrics": {"r/seed0": {"published_test_acc": 0.4232}, "gone": {"published_test_acc": 1}}}
    summary.check_protocols_current(current)  # a run no longer published is passed over
    stale = {"metrics": {"r/seed0": {"published_test_acc": 0.5059}}}
    with pytest.raises(results.ResultsError, match="remake it with `python -m gridlib filtergrid-protocols"):
        summary.check_protocols_current(stale)
