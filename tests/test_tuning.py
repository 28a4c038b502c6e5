"""The tuning protocol of the filter grid (gridlib.filtergrid.tuning): a validation split that
touches neither training nor test images, a vmapped search whose every candidate is the run a
separate training would make, a choice blind to the test set, and early stopping that stops
where its patience says.

Small grids (4 x 3 cells, 3 time steps, BPTT: it compiles fastest) keep the searches to a few
seconds; the rule enters only through the shared training step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gridlib import data, experiment, results
from gridlib.filtergrid import tuning
from gridlib.filtergrid.experiments import _check_mnist, make_task, per_group_sgd

GRID = {"n_rows": 4, "n_cols": 3, "n_inputs": 28, "pixel_scale": 1.0}
RUN = {"rule": "bptt", "epochs": 2, "batch_size": 16, "seed": 1}


def _splits(test_labels_shift: int = 0) -> data.Splits:
    """32 training, 16 validation and 8 test sequences of 3 steps, 3 classes; the test set
    rolled by ``test_labels_shift`` labels and, when shifted, its images replaced by noise."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(56, 3 * 28)).astype(np.float32)
    y = (np.arange(56) % 3).astype(np.int32)
    x_test, y_test = x[48:], y[48:]
    if test_labels_shift:
        x_test = rng.normal(size=x_test.shape).astype(np.float32)
        y_test = (y_test + test_labels_shift) % 3
    return data.Splits(x[:32], y[:32], x[32:48], y[32:48], x_test, y_test)


@pytest.fixture(scope="module")
def adam_search():
    """A 3 x 2 grid whose largest step size (1e6) diverges at once."""
    cands = tuning.candidates("adam", (1e-3, 1e-2, 1e6), (5.0, 10.0))
    return tuning.search(_splits(), cands, optimizer="adam", **RUN, **GRID)


# ---------------------------------------------------------------------------- the split


def test_validation_split_is_disjoint_from_train_and_test_and_ignores_the_seed():
    """Rows tagged by their index: the held-out rows are the last 10000 of the 60000, never
    trained on, whatever the seed; n_val keeps the first of them; test rows stay test rows."""
    x = np.arange(60_000, dtype=np.float32)[:, None]
    y = np.zeros(60_000, np.int32)
    xt = -np.arange(1, 10_001, dtype=np.float32)[:, None]
    for seed in (None, 0, 7):
        s = data.make_splits(x, y, xt, y[:10_000], validation=data.MNIST_VALIDATION,
                             n_train=20_000 if seed is not None else None, seed=seed)
        train, val, test = (set(a[:, 0].tolist()) for a in (s.x_train, s.x_val, s.x_test))
        assert val == set(range(50_000, 60_000))
        assert not train & val and not train & test and not val & test
        assert max(train) < 50_000
    s = data.make_splits(x, y, xt, y[:10_000], validation=data.MNIST_VALIDATION, n_val=300)
    np.testing.assert_array_equal(s.x_val[:, 0], np.arange(50_000, 50_300))
    with pytest.raises(ValueError, match="n_val"):
        data.make_splits(x, y, xt, y[:10_000], validation=100, n_val=101)


# ---------------------------------------------------------------------------- the search


def test_every_candidate_is_the_run_a_separate_training_makes(adam_search):
    """A candidate that is neither the first step size nor the first gain, trained alone by
    filtergrid-mnist's task with the same seed: the same losses, accuracies and parameters;
    and the finite candidates differ from each other."""
    assert adam_search.candidates[:4] == [
        {"lr": 1e-3, "gain": 5.0}, {"lr": 1e-3, "gain": 10.0},
        {"lr": 1e-2, "gain": 5.0}, {"lr": 1e-2, "gain": 10.0}]
    assert len(set(adam_search.val_loss[:4])) == 4
    i, c = 3, adam_search.candidates[3]
    task = make_task(rule="bptt", optimizer="adam", lr=c["lr"], gain=c["gain"], **GRID)
    alone = experiment.fit(task, _splits(), eval_on=("val",), progress=False,
                           **{k: v for k, v in RUN.items() if k != "rule"})
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        together = [epoch[i] for epoch in adam_search.run.history[key]]
        np.testing.assert_allclose(together, alone.history[key], rtol=2e-5, err_msg=key)
    for a, b in zip(alone.state.params, adam_search.run.state.train.params, strict=True):
        np.testing.assert_allclose(b[i], a, rtol=1e-4, atol=1e-6)


def test_the_choice_never_looks_at_the_test_set(adam_search):
    """The same search with other test labels and images: the same history, the same choice;
    and the search evaluates no test metric at all."""
    other = tuning.search(_splits(test_labels_shift=1), adam_search.candidates,
                          optimizer="adam", **RUN, **GRID)
    assert other.chosen == adam_search.chosen
    assert other.run.history.keys() == adam_search.run.history.keys()
    assert not [k for k in other.run.history if k.startswith("test/")]
    for key in ("val/acc", "val/loss", "train/loss"):
        np.testing.assert_array_equal(other.run.history[key], adam_search.run.history[key])
    assert other.chosen == int(np.argmax(adam_search.val_acc[:4]))


def test_a_diverged_candidate_is_frozen_and_never_chosen(adam_search):
    """Adam at a step of 1e6 diverges at once: both its candidates are marked, their
    parameters stay finite, the others train on, and the choice is one of the others."""
    assert adam_search.diverged == [False] * 4 + [True] * 2
    assert adam_search.chosen < 4
    assert all(np.isfinite(p).all() for p in adam_search.run.state.train.params)
    assert np.isfinite(adam_search.val_acc).all()
    assert [epoch[4] for epoch in adam_search.run.history["train/diverged"]][-1] == 1.0


def test_the_injected_sgd_steps_like_the_per_group_sgd():
    """The search's SGD (eta0 injected into the state) makes per_group_sgd's update."""
    params = make_task(**GRID).init(jax.random.PRNGKey(0)).params
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    want, _ = per_group_sgd(0.03).update(grads, per_group_sgd(0.03).init(params))
    opt = tuning.injected_optimizer("sgd")(0.03)
    got, _ = opt.update(grads, opt.init(params))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_choose_takes_the_best_finite_candidate_and_the_first_of_ties():
    assert tuning.choose([0.3, 0.5, 0.5, 0.9], [False, False, False, True]) == 1
    with pytest.raises(ValueError, match="every candidate"):
        tuning.choose([0.3, 0.5], [True, True])
    cands = tuning.candidates("adam", (1e-3, 1e-2, 1e-1), (10.0,))
    assert tuning.at_edge(cands, 0, "lr") and not tuning.at_edge(cands, 1, "lr")
    assert not tuning.at_edge(cands, 1, "gain")  # a grid of one gain has no edge


def test_preset_grids_are_log_grids_of_five_or_more_holding_the_original_settings():
    for (optimizer, loss), grid in tuning.STEP_GRIDS.items():
        assert len(grid) >= 5 and list(grid) == sorted(grid), (optimizer, loss)
        ratios = np.diff(np.log10(grid))
        np.testing.assert_allclose(ratios, 0.5, atol=0.03)
        assert (3e-3 if optimizer == "adam" else 1e-2) in grid


# ---------------------------------------------------------------------------- early stopping


def test_patience_stops_counting_from_the_first_best_epoch():
    h = {"val/acc": [0.1, 0.3, 0.2, 0.3], "test/acc": [0.9, 0.0, 0.0, 0.0]}
    assert tuning.best_epoch(h) == 2
    assert tuning.patience_reached(h, 2) and not tuning.patience_reached(h, 3)
    assert not tuning.patience_reached({"val/acc": [0.1, 0.2, 0.3]}, 1)
    assert not tuning.patience_reached({}, 1)


class _Scripted:
    """A task whose validation accuracy after epoch e is ``VAL[e - 1]`` and whose test
    accuracy is its opposite: the state counts steps, x's first pixel says the split."""

    VAL = jnp.asarray([0.1, 0.4, 0.2, 0.4, 0.3, 0.9, 0.9, 0.9])

    def __init__(self, steps_per_epoch: int):
        self.k = steps_per_epoch

    def task(self) -> experiment.Task:
        def eval_step(state, x, y):
            v = self.VAL[state // self.k - 1]
            acc = jnp.where(x[0, 0] == 0, v, 1 - v)
            return {"acc": acc * x.shape[0]}

        return experiment.Task(lambda key: jnp.zeros((), jnp.int32),
                               lambda s, x, y, key: (s + 1, {"loss": jnp.float32(0)}), eval_step)


def test_fit_until_stops_where_patience_says_and_a_resume_trains_no_further(tmp_results):
    x = np.zeros((8, 1), np.float32)
    y = np.zeros(8, np.int32)
    splits = data.Splits(x, y, x, y, x + 1, y)
    task = _Scripted(steps_per_epoch=2).task()
    kw = {"epochs": 8, "batch_size": 4, "eval_on": ("val", "test"), "progress": False,
          "run_dir": tmp_results / "runs" / "patience",
          "until": lambda h: tuning.patience_reached(h, 2)}
    run = experiment.fit(task, splits, **kw)
    assert run.history["epoch"] == [1, 2, 3, 4]  # best at 2 (0.4), not bettered at 3 or 4
    np.testing.assert_allclose(run.history["test/acc"], [0.9, 0.6, 0.8, 0.6], rtol=1e-6)
    again = experiment.fit(task, splits, **kw)
    assert again.history["epoch"] == [1, 2, 3, 4] and int(again.state) == 8
    longer = experiment.fit(task, splits, **{**kw, "until": lambda h: tuning.patience_reached(h, 4)})
    assert longer.history["epoch"] == [1, 2, 3, 4, 5, 6, 7, 8]  # resumed, on to 0.9, capped


# ---------------------------------------------------------------------------- --tuned-from


def test_tuned_from_reads_the_choice_and_refuses_another_configuration(tmp_results):
    config = {"rule": "snap1", "optimizer": "adam", "batch_size": 32, "tau_min": 1e-3,
              "tau_max": 20e-3, "window": None, "update_every_step": False, "epochs": 1,
              "n_train": 320, "n_val": 100, "split": tuning.SPLIT,
              "search": {"lr": [1e-3, 1e-2], "gain": [10.0]}, "selection": tuning.SELECTION}
    metrics = {"val/acc": [0.2, 0.3], "diverged": [False, False],
               "chosen": {"lr": 1e-2, "gain": 10.0}}
    results.save("filtergrid/tune/fake", config=config, metrics=metrics,
                 history={"epoch": [1]}, seed=0)
    args = {"rule": "snap1", "optimizer": "adam", "batch_size": 32, "tau_min": 1e-3,
            "tau_max": 20e-3, "window": 0, "update_every_step": False, "validation": True,
            "patience": 0, "n_train": 320, "tuned_from": "filtergrid/tune/fake"}
    chosen, protocol = tuning.tuned_settings("filtergrid/tune/fake", {"rule": "snap1"})
    assert chosen == {"lr": 1e-2, "gain": 10.0} and protocol["val_acc"] == [0.2, 0.3]
    assert protocol["published"] is False and protocol["search"] == config["search"]
    _check_mnist(args)
    with pytest.raises(ValueError, match="rule: 'snap1' there, 'bptt' here"):
        _check_mnist({**args, "rule": "bptt"})
    with pytest.raises(ValueError, match="batch_size"):
        _check_mnist({**args, "batch_size": 1})
    with pytest.raises(FileNotFoundError, match="no search"):
        _check_mnist({**args, "tuned_from": "filtergrid/tune/none"})
    with pytest.raises(ValueError, match="needs --validation true"):
        _check_mnist({**args, "validation": False, "patience": 3, "tuned_from": ""})
    with pytest.raises(ValueError, match="at most 50000"):
        _check_mnist({**args, "n_train": 60_000, "tuned_from": ""})


# --------------------------------------------------------------------------- the fair table


def _fake_fair(monkeypatch, tuned_lr=1e-2):
    """A search for SnAP-1 and BPTT and three tuned seeds of each, made up, published."""
    from gridlib.filtergrid import fair, summary

    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    accs = {"SnAP-1": (0.40, 0.45, 0.50), "BPTT": (0.50, 0.52, 0.49)}
    with results.session(publish=True):
        for label, chosen in (("SnAP-1", 3e-3), ("BPTT", 1e-2)):
            run = fair.TUNED_RUNS[label]
            name = fair.search_name(run)
            results.save(name, config={"rule": run.rule, "optimizer": "adam", "epochs": 3, "batch_size": 32,
                                       "search": {"lr": [3e-3, 1e-2], "gain": [10.0]}},
                         metrics={"chosen": {"lr": chosen, "gain": 10.0}, "chosen_index": 0,
                                  "val/acc": [0.4, 0.3], "diverged": [False, False], "chosen_val_acc": 0.4})
            lr = chosen if label == "SnAP-1" else tuned_lr
            for seed, acc in enumerate(accs[label]):
                config = {**summary.mnist_expect(run), "lr": lr, "tuning": {"record": name}}
                config.pop("provenance.scale")
                results.save(fair.tuned_name(run, seed), config=config, metrics={"test/acc": acc},
                             seed=seed)  # fmt: skip
    return fair


def test_the_fair_table_pairs_seeds_and_counts_where_the_sign_holds(tmp_results, monkeypatch):
    fair = _fake_fair(monkeypatch)
    runs = fair.load(seeds=(0, 1, 2))
    rows = {r["rule"]: r for r in fair.rows(runs)}
    # BPTT - SnAP-1 per seed: +10, +7, -1 points: mean +5.3, positive on 2 of 3 seeds
    assert rows["BPTT"]["minus SnAP-1 (paired)"].startswith("+5.3") and "(2 of 3)" in rows["BPTT"]["minus SnAP-1 (paired)"]
    assert rows["SnAP-1"]["minus BPTT (paired)"].startswith("\u22125.3") and "(2 of 3)" in rows["SnAP-1"]["minus BPTT (paired)"]
    assert "0.01" in rows["BPTT"]["chosen step (validation)"]
    assert any("filtergrid-tune --rule snap0" in c for c in runs.missing)


def test_a_tuned_run_at_another_setting_than_its_search_chose_is_refused(tmp_results, monkeypatch):
    fair = _fake_fair(monkeypatch, tuned_lr=3e-3)  # BPTT's search chose 1e-2
    with pytest.raises(results.ResultsError):
        fair.load(seeds=(0, 1, 2))


def _group(accs, seed0=0):
    return {f"r_seed{seed0 + i}": {"metrics": {"test/acc": a}, "provenance": {"seed": seed0 + i}}
            for i, a in enumerate(accs)}


@pytest.mark.parametrize(("tuned", "beyond"), [((0.50, 0.52, 0.48), False), ((0.70, 0.71, 0.69), True)])
def test_a_move_counts_only_beyond_the_seeds_spread(tuned, beyond):
    from gridlib.filtergrid import fair

    runs = fair.Fair({}, {"BPTT": _group(tuned), "SnAP-1": _group((0.4, 0.3, 0.35))},
                     {"BPTT": _group((0.49, 0.53, 0.50))}, [])  # fmt: skip
    (d, b), = fair.moves(runs).values()
    assert b is beyond and d == pytest.approx(100 * (np.mean(tuned) - 0.5066666), abs=1e-3)
    text = fair.findings(runs)
    assert text[0].startswith("Tuning each rule's step size" if not beyond else "Tuning on validation data moves BPTT")
    assert text[1].startswith("At each rule's own best setting BPTT still trains the better grid on "
                              "average: it leads SnAP-1 by") and text[1].endswith("and on every seed.")


def test_the_bptt_finding_counts_seeds_a_local_rule_wins_and_names_a_low_bptt_seed():
    from gridlib.filtergrid import fair

    assert fair.low_seed({0: 44.4, 1: 64.2, 2: 60.0}) == 0  # 15.6 below the median, 4.2 above
    assert fair.low_seed({0: 42.3, 1: 44.2, 2: 42.4}) is None and fair.low_seed({0: 1, 1: 9}) is None
    bptt = {0: 44.4, 1: 64.2, 2: 60.0}
    diffs = {"SnAP-1": {0: -2.1, 1: -20.0, 2: -17.6}, "SnAP-0": {0: 4.7, 1: -32.0, 2: -15.7}}
    text = fair._bptt_finding(diffs, bptt)
    assert text.startswith("At each rule's own best setting BPTT still trains the better grid on "
                           "average: it leads every local rule by 13 to 14 points")
    assert "SnAP-0 beats it on 1 of 3 seeds" in text and "SnAP-1 beats" not in text
    assert text.endswith("seed 0 lies 16 points below the median seed, and on it BPTT's lead is "
                         "smallest against every rule.")
    assert "points on the same seeds, within the seeds' spread against every one" in text
    even = fair._bptt_finding({"SnAP-1": {0: 1.0, 1: 2.0, 2: -0.5}}, {0: 60.0, 1: 61.0, 2: 59.0})
    assert even.startswith("At each rule's own best setting SnAP-1 matches or beats BPTT on average; "
                           "SnAP-1 beats it on 2 of 3 seeds")


def _curve(val, test, seed):
    best = int(np.argmax(val)) + 1
    return {"metrics": {"epochs_run": len(val), "best_epoch": best, "best/val/acc": val[best - 1],
                        "best/test/acc": test[best - 1]},
            "history": {"val/acc": list(val), "test/acc": list(test)}, "provenance": {"seed": seed}}  # fmt: skip


def test_the_curves_report_the_best_epoch_and_whether_the_gap_closes():
    import matplotlib

    matplotlib.use("Agg")
    from gridlib.filtergrid import fair

    rise = np.linspace(0.3, 0.6, 20)  # SnAP-1 keeps climbing past epoch 10
    flat = np.r_[np.linspace(0.5, 0.7, 10), np.full(6, 0.69)]  # BPTT peaks at epoch 10
    curves = {"SnAP-1": {f"s{i}": _curve(rise + 0.01 * i, rise, i) for i in range(2)},
              "BPTT": {f"b{i}": _curve(flat + 0.01 * i, flat, i) for i in range(2)}}
    rows = {r["rule"]: r for r in fair.curve_rows(curves)}
    assert rows["SnAP-1"]["best epoch"] == "20, 20" and rows["BPTT"]["epochs run"] == "16, 16"
    text = fair.curve_finding(curves)  # the gap shrinks by 10 points on both seeds alike
    assert text.startswith("Given as many epochs as help it, SnAP-1's gap to BPTT closes")
    curves["SnAP-1"]["s1"] = _curve(flat + 0.01, flat, 1)  # seed 1: SnAP-1 as BPTT: no change
    assert "gap to BPTT stays (it narrows by less than the seeds' spread)" in fair.curve_finding(curves)
    fair.curve_figure(curves)


# --------------------------------------------------------------------------- batch-1 SGD


def test_a_search_takes_a_third_of_its_runs_budget_and_its_command_names_every_flag(tmp_results):
    from gridlib.filtergrid import fair

    every = fair.BATCH1_RUNS["online SnAP-1, an update at every time step"]
    assert fair.search_epochs(fair.TUNED_RUNS["SnAP-1"]) == 3 and fair.search_epochs(every) == 1
    assert fair.search_name(every) == "filtergrid/tune/online_snap1_everystep_sgd_b1_e1_n50000v10000_seed0"
    _, curves, missing = fair.load_batch1(seeds=(0,))
    assert curves == {}
    assert ("python -m gridlib filtergrid-tune --rule online_snap1 --update-every-step true --optimizer sgd "
            "--batch-size 1 --epochs 1 --publish") in missing  # fmt: skip


def _fake_batch1(monkeypatch, eta0=0.3):
    """SnAP-0's batch-1 search (chose eta0 = 0.3) and one run to convergence at ``eta0``."""
    from gridlib.filtergrid import fair

    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    run = fair.BATCH1_RUNS["SnAP-0, sum loss, one update per sequence"]
    epochs, patience = fair.CONVERGE_BUDGET["sgd"]
    with results.session(publish=True):
        results.save(fair.search_name(run), config={"rule": "snap0", "optimizer": "sgd", "batch_size": 1,
                                                    "search": {"eta0": [0.1, 0.3], "gain": [10.0]}},
                     metrics={"chosen": {"eta0": 0.3, "gain": 10.0}, "chosen_index": 1,
                              "val/acc": [0.3, 0.4], "diverged": [False, False]})  # fmt: skip
        val = [0.3, 0.5, 0.6, 0.7, 0.69, 0.68, 0.67]
        results.save(fair.converge_name(run, 0), seed=0,
                     config={"rule": "snap0", "optimizer": "sgd", "batch_size": 1, "n_train": 50000,
                             "max_epochs": epochs, "patience": patience, "eta0": eta0, "gain": 10.0,
                             "tuning": {"record": fair.search_name(run)}},
                     metrics={"epochs_run": 7, "best_epoch": 4, "best/val/acc": 0.7, "best/test/acc": 0.71},
                     history={"val/acc": val, "test/acc": [v + 0.01 for v in val]})  # fmt: skip
    return fair


def test_batch1_runs_to_convergence_load_at_their_searchs_step_and_say_where_they_end(tmp_results, monkeypatch):
    fair = _fake_batch1(monkeypatch)
    b1, curves, missing = fair.load_batch1(seeds=(0,))
    (label, group), = ((k, g) for k, g in curves.items() if g)
    assert label.startswith("SnAP-0") and "**0.3: 40.0**" in fair.search_rows(b1)[0]["validation accuracy (%) by step size"]
    # one gain tried: the setting is the step alone; two: the chosen gain is named
    assert fair._setting(b1.searches[label]) == "0.3"
    two = {**b1.searches[label], "config": {"search": {"eta0": [0.1, 0.3], "gain": [5.0, 10.0]}}}
    assert fair._setting(two) == "0.3 (input gain 10)"
    row, = fair.curve_rows(curves, budget=3)
    assert row["best epoch"] == "4" and row["test accuracy, epoch 3"].startswith("61.00")
    text = fair.batch1_finding(curves)
    assert text.startswith("Past the original's 3 epochs, batch-1 SGD at each rule's own step gains")
    assert "one seed each" in text and "The best, SnAP-0 (sum loss), is at 61.0 % on epoch 3 at its chosen step and reaches 71.00\u00a0% (n=1)" in text


def test_a_batch1_run_at_another_step_than_its_search_chose_is_refused(tmp_results, monkeypatch):
    fair = _fake_batch1(monkeypatch, eta0=0.1)
    with pytest.raises(results.ResultsError):
        fair.load_batch1(seeds=(0,))


def test_batch1_finding_judges_the_gain_by_the_seeds_spread():
    from gridlib.filtergrid import fair

    def group(gain):
        return {f"s{i}": {"metrics": {"best/test/acc": 0.5 + g}, "history": {"test/acc": [0.3, 0.4, 0.5]}}
                for i, g in enumerate(gain)}  # fmt: skip

    climbing = {"SnAP-1, sum loss, one update per sequence": group((0.10, 0.11, 0.09))}
    assert fair.batch1_finding(climbing).startswith("Batch-1 SGD is still improving after the original's 3 epochs: "
                                                    "given more, SnAP-1 (sum loss) gains beyond")  # fmt: skip
    flat = {"SnAP-1, sum loss, one update per sequence": group((0.10, -0.11, 0.0))}
    assert "no configuration gains beyond the seeds' spread" in fair.batch1_finding(flat)
    assert fair.batch1_finding({}) == ""


def test_changed_verdicts_name_each_pair_once_and_only_where_the_verdict_moved():
    from gridlib.filtergrid import fair

    untuned = {"BPTT": _group((0.60, 0.61, 0.62)), "SnAP-1": _group((0.40, 0.41, 0.42)),
               "SnAP-0": _group((0.40, 0.42, 0.41))}  # fmt: skip
    tuned = {"BPTT": _group((0.70, 0.40, 0.55)), "SnAP-1": _group((0.41, 0.42, 0.43)),
             "SnAP-0": _group((0.41, 0.43, 0.42))}  # fmt: skip
    runs = fair.Fair({}, tuned, untuned, [])
    # BPTT's lead over SnAP-1 falls within the spread (its seeds scatter), and so against SnAP-0;
    # SnAP-0 against SnAP-1 stays within: no verdict moved there
    assert fair.changed_verdicts(runs) == {("BPTT", "SnAP-1"): ("better", "within"),
                                           ("SnAP-0", "BPTT"): ("worse", "within")}  # fmt: skip
    text = fair.verdict_finding(runs)
    assert text.startswith("Tuning each rule's step changes 2 verdicts")
    assert ("BPTT no longer leads SnAP-1, and SnAP-0 no longer trails BPTT, beyond the seeds' "
            "spread") in text, text
    gained = fair.verdict_finding(fair.Fair({}, untuned, tuned, []))  # the other way round
    assert "BPTT now leads SnAP-1 beyond the seeds' spread (within it at the original's setting)" in gained
    same = fair.Fair({}, untuned, untuned, [])
    assert fair.verdict_finding(same).startswith("Tuning changes no verdict")
    assert fair.verdict_finding(fair.Fair({}, {"SnAP-1": _group((0.4,))}, untuned, [])) == ""


def test_the_neighbour_finding_says_each_setting_and_names_rules_of_one_verdict_together():
    from gridlib.filtergrid import fair

    untuned = {"SnAP-1": _group((0.40, 0.41, 0.42)), "SnAP-0": _group((0.40, 0.42, 0.41)),
               "SnAP-2": _group((0.41, 0.40, 0.42))}  # fmt: skip
    tuned = {**untuned, "SnAP-2": _group((0.30, 0.31, 0.32))}
    text = fair.neighbour_finding(fair.Fair({}, tuned, untuned, []))
    assert text == ("No: at the original's setting SnAP-0 and SnAP-2 end within the seeds' spread of SnAP-1; "
                    "at each rule's own step SnAP-0 ends within the seeds' spread of SnAP-1 and SnAP-2 "
                    "trails SnAP-1 beyond the seeds' spread.")  # fmt: skip
    assert fair.neighbour_finding(fair.Fair({}, {}, untuned, [])).count(";") == 0
    better = {**untuned, "SnAP-2": _group((0.50, 0.52, 0.51))}  # more state, measurably better
    assert fair.neighbour_finding(fair.Fair({}, better, untuned, [])).startswith("Not at every setting: ")
    assert fair.neighbour_finding(fair.Fair({}, better, better, [])).startswith("Yes: ")


def test_the_first_finding_says_where_each_search_left_its_rule():
    from gridlib.filtergrid import fair

    def search(lr):
        return {"metrics": {"chosen": {"lr": lr, "gain": 10.0}}}

    untuned = {"BPTT": _group((0.60, 0.61, 0.62)), "SnAP-1": _group((0.40, 0.41, 0.42)),
               "SnAP-2": _group((0.40, 0.45, 0.50))}  # fmt: skip
    tuned = {"BPTT": _group((0.55, 0.60, 0.50)), "SnAP-1": _group((0.41, 0.42, 0.43)),
             "SnAP-2": _group((0.46, 0.47, 0.48))}  # fmt: skip
    runs = fair.Fair({"BPTT": search(1e-2), "SnAP-1": search(3e-3), "SnAP-2": search(1e-3)}, tuned, untuned, [])
    text = fair.findings(runs)[0]
    assert ("the search kept the original's step for SnAP-1; it chose a larger one for BPTT, which ends "
            "lower on average at the full budget (−6.0 points); it chose a smaller one for SnAP-2, which "
            "ends higher on average") in text, text  # fmt: skip


def test_a_run_stopped_by_its_cap_while_improving_is_named():
    from gridlib.filtergrid import fair

    def run(best, ran, cap=15):
        return {"metrics": {"epochs_run": ran, "best_epoch": best, "best/test/acc": 0.4},
                "history": {"test/acc": [0.2] * ran}, "config": {"max_epochs": cap, "patience": 3}}  # fmt: skip

    assert fair.still_improving(run(13, 15)) and not fair.still_improving(run(12, 15))
    assert not fair.still_improving(run(6, 9))  # patience stopped it
    text = fair.batch1_finding({"SnAP-1, sum loss, one update per sequence": {"a": run(14, 15)}})
    assert text.endswith("a run of SnAP-1 (sum loss) reached the epoch cap before its patience ran out."), text


def test_a_configuration_whose_runs_end_at_the_commonest_digit_is_named_with_its_edge_step():
    from gridlib.filtergrid import fair

    labels = np.array([0, 0, 1, 2])  # the commonest digit is half of them
    def run(last):
        return {"history": {"test/acc": [0.6, last]}, "metrics": {"test/acc": last}}
    curves = {"SnAP-2, sum loss": {"a": run(0.5), "b": run(0.9)}, "SnAP-1, sum loss": {"a": run(0.8)}}
    search = {"metrics": {"chosen": {"eta0": 0.1}}, "config": {"search": {"eta0": [0.01, 0.1]}}}
    text = fair.collapses(fair.Fair({"SnAP-2, sum loss": search}, {}, {}, []), curves, labels)
    assert "SnAP-2 (sum loss) on 1 of 2 seeds (its search chose η₀ = 0.1, the largest step it tried)" in text
    assert "SnAP-1" not in text
    assert fair.collapses(fair.Fair({}, {}, {}, []), {"SnAP-1, sum loss": {"a": run(0.8)}}, labels) == ""
