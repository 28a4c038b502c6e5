"""Every system on one page (gridlib.compare) and what each costs to hold (gridlib.footprint):
rows, refusals, parameter counts by hand, state counts."""

import json
import re

import pytest

from gridlib import compare, footprint, index, report, results


def _write(root, name, config, metrics, seed=0, history=None, cores=2):
    path = root / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    prov = {"command": f"python -m gridlib x --seed {seed}", "git_commit": "a" * 40, "git_dirty": False,
            "date_utc": "2026-01-01T00:00:00+00:00", "cpu_count": cores, "jax_backend": "cpu",
            "seed": seed, "scale": "full"}
    path.write_text(json.dumps({"name": name, "provenance": prov, "config": config, "metrics": metrics,
                                "history": history, "extra": None}))


def _row(**kw):
    h = index.Headline("Sys", "net", "notebooks/99-x", "sys/net_seed*", {"epochs": 5, "provenance.scale": "full"},
                       index.seed_values("test_acc"), command="python -m gridlib sys --seed S")
    base = dict(headline=h, network="net", task="MNIST", rule="ep", optimizer="SGD",
                params=lambda config: 7 * config["width"], no_published="none exists")
    return compare.Row(**{**base, **kw})


def test_a_row_averages_seeds_and_reads_size_and_cores_but_no_time(tmp_results):
    for s, (acc, times) in enumerate(((0.80, [9.0, 2.0]), (0.82, [3.0, 1.0]), (0.84, [4.0, 5.0]))):
        _write(tmp_results, f"sys/net_seed{s}", {"epochs": 5, "width": 3, "batch_size": 20, "seed": s},
               {"test_acc": acc}, seed=s, history={"epoch_time_s": times})
    m = compare.measure(_row())
    assert m.accuracies == [0.80, 0.82, 0.84] and m.params == 21 and m.state is None
    assert m.cores == (2,) and not hasattr(m, "epoch_s")  # a record's wall time is no speed
    row = compare.table_rows([m], link=False)[0]
    assert report.quantities(row["test accuracy"]) == [("sys/net/test_acc", "82.00 ± 2.00 %")]
    assert row["test accuracy"].endswith("</span> (n=3)") and row["training"] == "SGD, batch 20"
    assert row["parameters"] == "21" and row["state / parameter"] == "–" and "s / epoch" not in row
    assert row["published"] == "none: none exists"


def test_a_row_refuses_to_average_records_that_differ_in_more_than_the_seed(tmp_results):
    _write(tmp_results, "sys/net_seed0", {"epochs": 5, "width": 3, "lr": 0.1, "seed": 0}, {"test_acc": 0.8})
    _write(tmp_results, "sys/net_seed1", {"epochs": 5, "width": 3, "lr": 0.2, "seed": 1}, {"test_acc": 0.9}, seed=1)
    with pytest.raises(results.ResultsError, match="lr"):
        compare.measure(_row())


def test_a_row_refuses_a_record_of_another_configuration(tmp_results):
    _write(tmp_results, "sys/net_seed0", {"epochs": 6, "width": 3}, {"test_acc": 0.8})
    with pytest.raises(results.ResultsError, match="epochs"):
        compare.measure(_row())


def test_a_row_not_run_yet_shows_its_command_in_every_column_layout(tmp_results):
    m = compare.measure(_row())
    assert m.accuracies is None and m.params is None
    row = compare.table_rows([m], link=False)[0]
    assert tuple(row) == compare.COLUMNS
    assert row["test accuracy"] == "not run yet: `python -m gridlib sys --seed S`"


@pytest.mark.parametrize(("count", "config", "by_hand"), [
    (footprint.mlp_params, {"sizes": [4, 3, 2]}, 4 * 3 + 3 + 3 * 2 + 2),
    (footprint.ep_params, {"sizes": [3, 2, 1]}, 3 * 2 + 2 + 2 * 1 + 1),
    (footprint.filtergrid_params, {"grid": [2, 3], "rule": "snap1", "optimizer": "adam"}, 4 * 2 * 3),
    # a rule with a setting of its own (truncated BPTT's window) is counted from its config too
    (footprint.filtergrid_params, {"grid": [2, 3], "rule": "tbptt", "window": 4, "optimizer": "adam"}, 4 * 2 * 3),
    # w_in 784 x H, b_in H, grid weights and biases W x H each, w_out H x 10, b_out 10
    (footprint.neuralgrid_params, {"height": 2, "width": 3}, 784 * 2 + 2 + 2 * 3 * 2 + 2 * 10 + 10),
    # weights and biases per slice pixel, then the 784 -> 10 head
    (footprint.neuralgrid_params, {"n_layers": 2}, 2 * 2 * 28 * 28 + 784 * 10 + 10),
    # cells: 27 weights + bias + residual scale per cell; embed, LN gain and bias per cell;
    # readout LN gain and bias per face cell, face -> 10 linear
    (footprint.gridnet_params, {"grid": 4, "block": 2, "inner": 1, "outer": 1}, 29 * 64 + 3 * 64 + 2 * 16 + 16 * 10 + 10),
    # 1 -> 53, five 53 -> 53, 53 -> 10 (17 fast + 36 slow units)
    (footprint.gle_params, {"setup": {"arch": "e2e15k"}}, (53 + 53) + 5 * (53 * 53 + 53) + (53 * 10 + 10)),
    # the lag-net is fixed: 10 -> 60 -> 60 -> 10 learns
    (footprint.gle_params, {"setup": {"arch": "static", "tau": 2.0}}, (10 * 60 + 60) + (60 * 60 + 60) + (60 * 10 + 10)),
], ids=["mlp", "ep", "filtergrid", "filtergrid-tbptt", "neuralgrid", "neuralgrid3d", "gridnet", "gle", "gle-static"])  # fmt: skip
def test_parameter_counts_match_a_count_by_hand(count, config, by_hand):
    assert count(config) == by_hand


def test_gle_state_counts_the_error_path_of_the_layers_that_learn():
    # e2e15k: per hidden layer v and r' (53 each) and the error from the layer above (53);
    # the output layer v and r' (10 each), nothing above it
    e2e = {"setup": {"arch": "e2e15k"}}
    assert footprint.gle_state_per_parameter(e2e) == (6 * 3 * 53 + 2 * 10) / footprint.gle_params(e2e)
    # static: instantaneous errors (no v); r' of the three learning layers, errors from above
    static = {"setup": {"arch": "static", "tau": 2.0}}
    assert footprint.gle_state_per_parameter(static) == (60 + 60 + 60 + 60 + 10) / footprint.gle_params(static)


def test_the_filter_grid_state_is_the_rules_own():
    from gridlib.filtergrid import state_floats_per_parameter

    config = {"grid": [28, 10], "rule": "snap1"}
    assert footprint.filtergrid_state_per_parameter(config) == state_floats_per_parameter("snap1", 28, 10) == 2.75
    bptt = footprint.filtergrid_state_per_parameter({**config, "rule": "bptt"})
    assert bptt == footprint.ROWWISE_STEPS * 28 * 10 / (4 * 28 * 10)


def test_every_rule_is_classified_and_every_grid_rule_named():
    from gridlib.filtergrid import TEMPORAL_RULES

    assert all(r.reads in compare.LOCALITY and r.why for r in compare.RULES.values())
    assert set(TEMPORAL_RULES) <= set(compare.RULES)


def test_every_row_has_published_results_and_a_published_number_or_a_reason():
    rows = compare.rows()
    for r in rows:
        assert results.names(r.headline.pattern), f"no published results for {r.headline.pattern}"
        h = r.headline
        assert h.ep_range or (h.published is not None and 0 < h.published <= 1) or r.no_published, h.pattern
        assert r.rule in compare.RULES
    assert {h.pattern for h in index.HEADLINES} <= {r.headline.pattern for r in rows}, \
        "a headline of the landing page has no row"


def test_task_tables_say_shared_columns_once_and_key_accuracies(tmp_results):
    for s in range(2):
        _write(tmp_results, f"sys/net_seed{s}", {"epochs": 5, "width": 3, "batch_size": 20, "seed": s},
               {"test_acc": 0.8 + s / 100}, seed=s, history={"epoch_time_s": [2.0]})
    [t] = compare.task_tables([compare.measure(_row()), compare.measure(_row(rule="centered_ep"))],
                              link=False)
    assert t.task == "MNIST" and "Every row trains the same network (Sys: net), has 21 parameters" in t.caption
    assert "network" not in t.rows[0] and compare.STATE not in t.rows[0]
    # no row has a published number: the column goes, the reason stays in the caption
    assert "No published number: none exists" in t.caption and "published" not in t.rows[0]
    # one training for every row, one n for every row: both said once
    assert "trains with SGD, batch 20, 5 epochs" in t.caption and "training" not in t.rows[0]
    assert report.quantities(t.rows[0]["test accuracy (n=2)"]) == [("sys/net/test_acc", "80.50 ± 0.71 %")]
    assert t.rows[0]["test accuracy (n=2)"].endswith("</span>")
    assert "Every rule here is two-phase." in t.caption


def test_the_published_tables_fit_the_column():
    """The chapter's tables stay narrow: no more than six columns, and a column that is the
    same in every row (the update's class, the training of one grid) is said in the caption."""
    for t in compare.task_tables(compare.measure_all(), link=False):
        assert len(t.rows[0]) <= 7, (t.task, list(t.rows[0]))
        assert "update reads" not in t.rows[0]


def test_spread_words_come_from_the_books_one_criterion(tmp_results):
    """Which rule is ahead, and whether beyond the seeds' spread, by report.groups_differ."""
    for s, (a, b) in enumerate(((0.80, 0.90), (0.82, 0.91), (0.84, 0.92))):
        _write(tmp_results, f"sys/net_seed{s}", {"epochs": 5, "width": 3, "batch_size": 20, "seed": s},
               {"test_acc": a}, seed=s, history={"epoch_time_s": [1.0]})
        _write(tmp_results, f"bp/net_seed{s}", {"epochs": 5, "width": 3, "batch_size": 20, "seed": s},
               {"test_acc": b}, seed=s, history={"epoch_time_s": [1.0]})
    h = index.Headline("Sys", "net", "notebooks/99-x", "bp/net_seed*", {"epochs": 5, "provenance.scale": "full"},
                       index.seed_values("test_acc"))
    ms = [compare.measure(_row()), compare.measure(_row(headline=h, rule="backprop", network="MLP net"))]
    [sentence] = compare.class_sentences(ms)
    beyond = report.groups_differ(ms[1].accuracies, ms[0].accuracies)
    assert sentence.startswith("On MNIST, backprop ") and report.spread_words([1.0, 1.0]) != ""
    assert ("beyond the seeds' spread" in sentence) is beyond


def test_short_published_text_drops_the_ep_explanation():
    h = index.HEADLINES[2]
    assert h.ep_range
    assert index.published_text(h, short=True) == "2–3\u00a0% test error"
    assert index.published_text(h).startswith(index.published_text(h, short=True) + ", ")


def test_filtergrid_run_names_parse_back_to_their_configuration():
    """The compare table finds runs by name: every configuration must survive the round trip
    (a rule name ending in a digit, like snap1, must not be read as a window)."""
    from gridlib.filtergrid.summary import MNIST_RUNS, RULE_RUNS, MnistRun, mnist_expect, parse_run_name

    runs = [*MNIST_RUNS.values(), *RULE_RUNS.values(), MnistRun("online_snap1", "sgd", 1, 3, None, True)]
    for run in runs:
        assert parse_run_name(run.name(2)) == (run, 60000, "2")
        assert parse_run_name(run.name("*", 320)) == (run, 320, "*")
    assert parse_run_name("filtergrid/robustness/all_e5_n6000_seed0") is None
    assert parse_run_name("filtergrid/hebb_adam_b32_e10_n60000_seed0") is None
    assert mnist_expect(MnistRun("tbptt", window=4))["window"] == 4
    assert mnist_expect(MnistRun("online_snap1"))["loss"] == "per_t"
    assert "window" not in mnist_expect("snap1", "adam", 32, 10)


def test_what_a_step_costs_comes_from_the_rule_benchmark():
    work = {"metrics": {"rows": [{"rule": "SnAP-1", "CPU time / SnAP-1": 1.0},
                                 {"rule": "BPTT", "CPU time / SnAP-1": 3.08},
                                 {"rule": "RTRL (exact)", "CPU time / SnAP-1": 208.0}]}}
    assert compare.step_costs(work)["BPTT"] == 3.08
    text = compare.cost_text(work)
    assert "exact RTRL's training step takes 208× SnAP-1's CPU time, BPTT's 3.1×" in text
    assert compare.cost_text(None) == ""


def test_a_figure_label_gives_the_epochs_where_a_panels_rows_train_for_different_budgets():
    def measured(epochs):
        rec = {"config": {"epochs": epochs}}
        return compare.Measured(_row(rule="rtrl"), {"r": rec}, [0.5], 7, None, (2,))

    assert compare._point_label(measured(1), False) == "exact RTRL (SGD)"
    assert compare._point_label(measured(1), False, epochs_vary=True) == "exact RTRL (SGD, 1 epoch)"
    assert compare._point_label(measured(10), True, epochs_vary=True) == "exact RTRL (SGD, Sys net, 10 epochs)"


def test_results_outside_the_tables_are_named_in_words_never_by_their_file_name():
    """The rows of "Not in the tables" name a run by its rule, optimiser, batch and schedule
    (as chapter 60's tables do), and every other published result by words."""
    from gridlib.filtergrid.summary import RULE_WORDS, run_words
    from gridlib.filtergrid.temporal import TEMPORAL_RULES

    assert set(TEMPORAL_RULES) | {"rtrl"} <= set(RULE_WORDS)  # every rule has its words
    tuned = {"rule": "snap1", "optimizer": "adam", "batch_size": 32, "max_epochs": 40, "patience": 5}
    assert run_words(tuned) == ("SnAP-1, Adam, batch 32, up to 40 epochs, stopped on validation "
                                "(patience 5)")
    assert run_words({"rule": "tbptt", "window": 4, "optimizer": "sgd", "batch_size": 1,
                      "epochs": 1}) == "truncated BPTT (K = 4), per-group SGD, batch 1, 1 epoch"
    words = compare.result_words("filtergrid/tuned/snap1_adam_b32_max40p5_n50000v10000",
                                 {"x_seed0": {"config": tuned}})
    assert words == run_words(tuned) + ", at the tuned step"
    assert compare.result_words("ep/bptt_sweep", {"ep/bptt_sweep": {"config": {}}}).startswith("EP against")
    assert compare.result_words("new/thing", {"new/thing": {}}) == "`new/thing`"  # shown as code
    rows = compare.left_out(compare.measure_all())  # the published results
    assert rows
    for row in rows:
        name = row["result (linked to its chapter)"]
        words = re.sub(r"^\{doc\}`(.*) </[^>]+>`$", r"\1", name)
        assert "`" not in words and not re.search(r"\w+/\w+_\w+|_seed\d", words), name


def test_every_marker_of_the_summary_figure_lies_whole_inside_its_panel():
    """The published rows' markers sit inside their panel by at least their radius: a mean at
    the end of a panel's range was drawn half-clipped by the spine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = compare.figure(compare.measure_all())
    fig.canvas.draw()
    for ax in fig.axes:
        box = ax.get_window_extent()
        for line in ax.get_lines():
            if not line.get_marker() or line.get_marker() == "None":
                continue
            radius = line.get_markersize() / 2 * fig.dpi / 72
            for x, _ in ax.transData.transform(line.get_xydata()):
                assert box.x0 + radius <= x + 1e-6 and x - 1e-6 <= box.x1 - radius, (ax.get_title(), line)
    plt.close(fig)


def test_two_estimators_of_one_network_on_the_same_seeds_are_compared_seed_by_seed():
    """EP and centered EP share each seed's initialisation and minibatch order: their paired
    differences (+0.05, +0.06, +0.09 points) are beyond the seeds' spread, as the EP chapter
    finds, though the two groups' spreads overlap; another network is compared unpaired."""
    def measured(rule, accs, network="net"):
        recs = {f"sys/{rule}_seed{s}": {"provenance": {"seed": s},
                                        "config": {"epochs": 5, "batch_size": 20},
                                        "metrics": {"test_acc": a}} for s, a in enumerate(accs)}
        return compare.Measured(_row(rule=rule, network=network), recs, list(accs), 7, None, (2,))

    ep = measured("ep", [0.9758, 0.9746, 0.9773])
    centered = measured("centered_ep", [0.9753, 0.9740, 0.9764])
    assert not report.groups_differ(ep.accuracies, centered.accuracies)
    assert compare.seeds_differ(ep, centered) and compare.seeds_differ(centered, ep)
    assert not compare.seeds_differ(ep, measured("centered_ep", centered.accuracies, "other net"))
    assert compare._rivals([ep, centered]) == [ep]  # told apart: not named together
