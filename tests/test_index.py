"""The results index and the landing page's headline table (gridlib.index)."""

import json

import pytest

from gridlib import index, results


def _write(root, name, config, metrics, seed=0, scale="full", dirty=False):
    path = root / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    prov = {"command": f"python -m gridlib x --seed {seed}", "git_commit": "a" * 40, "git_dirty": dirty,
            "dirty_files": [], "dirty_rule": "source", "date_utc": "2026-01-01T00:00:00+00:00",
            "cpu_count": 2, "jax_backend": "cpu", "seed": seed, "scale": scale}
    path.write_text(json.dumps({"name": name, "provenance": prov, "config": config, "metrics": metrics,
                                "history": None, "extra": None}))


def _headline(**kw):
    base = dict(system="Sys", what="net", chapter="notebooks/99-x", pattern="sys/net_seed*",
                expect={"epochs": 5, "provenance.scale": "full"}, values=index.seed_values("test_acc"),
                command="python -m gridlib sys --seed S")
    return index.Headline(**{**base, **kw})


def test_group_key_splits_the_seed_suffix():
    assert index.group_key("filtergrid/snap1_adam_b32_e10_n60000_seed2") == (
        "filtergrid/snap1_adam_b32_e10_n60000", "2")
    assert index.group_key("gle/mnist1d/e2e15k_seeds12-34-56") == ("gle/mnist1d/e2e15k", "12, 34, 56")
    assert index.group_key("bench/gridnet") == ("bench/gridnet", "")


def test_headline_row_reports_mean_sd_published_and_gap(tmp_results):
    for s, acc in enumerate((0.80, 0.82, 0.84)):
        _write(tmp_results, f"sys/net_seed{s}", {"epochs": 5, "seed": s}, {"test_acc": acc}, seed=s)
    row = index.headline_row(_headline(published=0.85, published_note="1 run"), link=False)
    assert row == {"result": "Sys: net",
                   "ours (test accuracy)": '<span class="gq" data-q="sys/net/test_acc">82.00\u00a0±\u00a02.00\u00a0%'
                                           "</span> (n=3)",
                   "published": "85.0\u00a0% (1 run)", "gap": "−3.00 points",
                   "notes": "one published run, above all 3 of our seeds, within the seeds' spread"}
    assert index.headline_row(_headline(), link=False)["published"] == "none"
    assert index.headline_row(_headline())["result"] == "{doc}`Sys: net </notebooks/99-x>`"


def test_the_gap_to_a_published_number_uses_the_books_one_criterion(tmp_results):
    """report.beyond_spread (a single published run as one more draw) or report.groups_differ
    (published seeds): no other rule decides "within" or "beyond" the seeds' spread."""
    from gridlib import report

    accs = [0.80, 0.82, 0.84]
    single = _headline(published=0.95, published_note="1 run")
    assert index.published_beyond(single, accs) is report.beyond_spread(accs, 0.95, single=True) is True
    near = _headline(published=0.85)
    assert index.published_beyond(near, accs) is False  # 1.5 sd away, but n = 3
    seeds = _headline(published=0.70, published_sd=0.01, published_values=(0.69, 0.70, 0.71))
    assert index.published_beyond(seeds, accs) is report.groups_differ(accs, (0.69, 0.70, 0.71))
    assert index.published_beyond(_headline(ep_range=True), accs) is None
    assert index.published_beyond(_headline(), accs) is None
    for s, acc in enumerate(accs):
        _write(tmp_results, f"sys/net_seed{s}", {"epochs": 5, "seed": s}, {"test_acc": acc}, seed=s)
    assert index.headline_row(seeds, link=False)["notes"].startswith("beyond the seeds' spread")
    assert "n not stated" in index.published_text(_headline(published=0.9, published_sd=0.01))


def test_check_runs_are_labelled_and_studies_get_worded_headlines(tmp_results):
    _write(tmp_results, "fg/x_e1_n320_seed0", {"n_train": 320, "epochs": 1, "batch_size": 32},
           {"test/acc": 0.1028})
    [e] = index.catalogue()
    assert index.check_run_steps(e.records) == 10
    assert index.headline(e.records).startswith("check run, 10 steps on 320 images: test accuracy")


def test_ep_rows_say_whether_the_error_is_in_the_promised_range(tmp_results):
    _write(tmp_results, "sys/net_seed0", {"epochs": 5}, {"test_acc": 0.975})
    _write(tmp_results, "sys/net_seed1", {"epochs": 5}, {"test_acc": 0.965}, seed=1)
    row = index.headline_row(_headline(ep_range=True), link=False)
    assert "2–3\u00a0%" in row["published"] and row["gap"].endswith("inside that range")
    assert "3.00" in row["gap"]


def test_headline_refuses_mismatched_or_mixed_records(tmp_results):
    _write(tmp_results, "sys/net_seed0", {"epochs": 5}, {"test_acc": 0.9})
    _write(tmp_results, "sys/net_seed1", {"epochs": 6}, {"test_acc": 0.9}, seed=1)
    with pytest.raises(results.ResultsError, match="epochs"):
        index.headline_row(_headline())
    _write(tmp_results, "sys/net_seed1", {"epochs": 5}, {"test_acc": 0.9}, seed=1, scale="ci")
    with pytest.raises(results.ResultsError, match="scale"):
        index.headline_row(_headline())


def test_missing_headline_prints_the_command(tmp_results):
    row = index.headline_row(_headline(), link=False)
    assert row["ours (test accuracy)"] == "not run yet: `python -m gridlib sys --seed S`"


def test_per_seed_values_refuse_an_unfinished_run(tmp_results):
    _write(tmp_results, "g/a_seeds1-2", {"epochs": 5, "seeds": [1, 2]},
           {"test_acc_per_seed": [0.9, 0.8], "complete": True})
    _write(tmp_results, "g/a_seeds3-4", {"epochs": 5, "seeds": [3, 4]},
           {"test_acc_per_seed": [0.7, 0.6], "complete": False}, seed=3)
    h = _headline(pattern="g/a_seeds*", values=index.per_seed_values())
    with pytest.raises(results.ResultsError, match="not complete"):
        index.headline_values(h)


def test_catalogue_groups_seeds_places_chapters_and_attaches_rechecks(tmp_results):
    for s in range(3):
        _write(tmp_results, f"ep/mnist_net_seed{s}", {"epochs": 5, "seed": s}, {"test_acc": 0.9 + s / 100}, seed=s)
    _write(tmp_results, "gridnet/cpu_seed0", {"epochs": 2}, {"test_acc": 0.8})
    _write(tmp_results, "gridnet/cpu_seed1", {"epochs": 3}, {"test_acc": 0.8}, seed=1)  # other config
    _write(tmp_results, "misc/thing", {}, {"loss": 0.5})
    _write(tmp_results, "rechecks/ep/mnist_net_seed1", {"result": "ep/mnist_net_seed1"},
           {"status": "bit-identical", "epochs": 1})
    records = results.load_all("")
    entries = index.catalogue(records)
    keys = {e.key: e for e in entries}
    assert set(keys) == {"ep/mnist_net", "gridnet/cpu_seed0", "gridnet/cpu_seed1", "misc/thing"}
    assert keys["ep/mnist_net"].chapter == "notebooks/22-ep-mnist" and keys["misc/thing"].section == "other"
    checks = index.rechecks(records)
    assert set(checks) == {"ep/mnist_net_seed1"}
    [(chapter, rows, recs)] = index.chapter_views(entries, "ep", checks)
    assert rows == [{"headline": 'test accuracy <span class="gq" data-q="ep/mnist_net/test_acc">'
                                 "91.00\u00a0±\u00a01.00\u00a0%</span> (n=3)", "result": "mnist_net",
                     "seeds": "0, 1, 2", "re-checked": "1 of 3: bit-identical"}]
    assert len(recs) == 3
    assert index.chapter_views(entries, "other", checks)[0][1][0]["headline"] == "loss 0.5"
    text = index.summary(records, entries, checks)
    assert text.startswith("7 files: 6 results") and "1 re-check verdicts" in text


def test_special_headlines_fall_back_when_the_format_differs():
    rec = {"metrics": {"rows": [{"name": "other"}]}, "provenance": {}}
    assert index.headline({"bench/gridnet": rec}) == "no scalar metrics"


def test_the_books_own_results_give_every_headline():
    # the landing page's table, from the repository's results files
    rows = index.headline_rows(link=False)
    assert len(rows) == len(index.HEADLINES) >= 12
    assert all(r["ours (test accuracy)"] and "not run" not in r["ours (test accuracy)"] for r in rows)
    entries = index.catalogue()
    assert not [e.key for e in entries if e.section == "other"]
    for e in entries:
        # every published record gets a headline in words: never the generic list of raw
        # metric keys, nor "no scalar metrics"
        text = index.headline(e.records)
        assert text and text != index._generic(next(iter(e.records.values()))), e.key


def test_chapter_summaries_load_the_repository_results():
    from gridlib.gridnet import summary as gns
    from gridlib.neuralgrid import summary as ngs

    runs = ngs.fashion_runs()
    assert len(runs[ngs.BLOG_LABEL]) >= 1
    bench = results.load("bench/neuralgrid", expect=ngs.BENCH_EXPECT)
    by_batch = {r["batch"]: r for r in ngs.bench_rows(bench)}
    assert by_batch[256]["unfold ÷ ours"] == f"{bench['metrics']['unfold_over_ours_b256']:.1f}×"
    assert ngs.seconds(3.6209, 0.1123) == "3.62\u00a0±\u00a00.11" and ngs.seconds(1462.5, 86.8) == "1,462\u00a0±\u00a087"
    cpu = gns.preset_runs("cpu")
    assert len(cpu) >= 1 and all(r["config"]["preset"] == "cpu" for r in cpu.values())
    assert len(gns.epoch_accuracy(cpu, 1)) == len(cpu)


def test_gridnet_runs_of_another_configuration_are_refused(tmp_results):
    from gridlib.gridnet import summary as gns

    cfg = {k: v for k, v in gns.preset_expect("cpu").items() if not k.startswith("provenance.")}
    _write(tmp_results, "gridnet/cpu_seed0", {**cfg, "epochs": 1}, {"test_acc": 0.5, "n_train": 60000,
                                                                    "n_test": 10000})
    with pytest.raises(results.ResultsError, match="epochs"):
        gns.preset_runs("cpu")
    _write(tmp_results, "gridnet/cpu_seed0", cfg, {"test_acc": 0.5, "n_train": 512, "n_test": 500})
    with pytest.raises(results.ResultsError, match="trained on 512"):
        gns.preset_runs("cpu")


def test_the_results_index_page_shows_every_section():
    """Every part of :data:`gridlib.index.SECTIONS` has its table on the results index page."""
    from pathlib import Path

    page = (Path(__file__).parents[1] / "notebooks" / "90-results-index.md").read_text()
    for section in index.SECTIONS:
        assert f'show("{section.key}")' in page, f"notebooks/90-results-index.md does not show {section.key!r}"


def test_the_generic_headline_never_shows_a_runs_wall_time():
    rec = {"metrics": {"total_train_time_s": 812.0, "mean_epoch_time_s": 4.8, "loss": 0.25}}
    assert index._generic(rec) == "loss 0.25"


def test_a_recheck_made_before_a_remake_speaks_for_no_record_in_the_index_provenance_or_list(
        tmp_results, monkeypatch):
    """A re-check re-ran the record its name had then: after a remake it checked the record the
    remake replaced, so the results index, the provenance block and ``reproduce`` drop it."""
    from gridlib import report, reproduce

    _write(tmp_results, "ep/mnist_net_seed0", {"epochs": 5, "seed": 0}, {"test_acc": 0.9})
    _write(tmp_results, "rechecks/ep/mnist_net_seed0", {"result": "ep/mnist_net_seed0"},
           {"status": "different", "epochs": 1})
    path = tmp_results / "results" / "rechecks" / "ep" / "mnist_net_seed0.json"

    def dated(when):  # the re-check made on that date
        rec = json.loads(path.read_text())
        rec["provenance"]["date_utc"] = when
        path.write_text(json.dumps(rec))

    monkeypatch.setattr(reproduce.fingerprint, "published_runs", lambda: ["ep/mnist_net_seed0"])
    for when, applies in (("2026-02-01T00:00:00+00:00", True), ("2025-12-01T00:00:00+00:00", False)):
        dated(when)
        records = results.load_all("")
        record = records["ep/mnist_net_seed0"]
        entry = index.catalogue(records)[0]
        assert (index.recheck_summary(entry, index.rechecks(records)) == "different") is applies
        assert (results.recheck_of("ep/mnist_net_seed0", record) is not None) is applies
        assert ("re-run at" in report.provenance_lines({"ep/mnist_net_seed0": record})[0]) is applies
        [job] = reproduce.statuses()
        assert job.stale is applies and (job.recheck == "-") is not applies
