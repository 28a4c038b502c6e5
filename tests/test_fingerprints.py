"""Fingerprints, ``reproduce``, saved arrays, annotations, and the folders of an installed gridlib.

Each test names the wrong implementation it catches. The comparison of every published
record's fingerprint with this code is not here: ``make fingerprints`` (part of ``make test``)
runs it over all of them.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from gridlib import cli, fingerprint, provenance, reproduce, results, storage

REPO = results.REPO_ROOT
TINY = "python -m gridlib mlp --hidden 8 --epochs 1 --batch-size 20 --seed 3"


def _fp(**over):
    base = {"kind": "start", "steps": 3, "batch_size": 20, "metrics": {"loss": [2.3, 2.2, 2.1]},
            "state_sum": 1.5, "state_sumsq": 9.0, "state_size": 100, "state_nonfinite": 0,
            "canary": [1.0, 2.0, 3.0]}  # fmt: skip
    return {**base, **over}


# --------------------------------------------------------------------------- comparing


def test_equal_fingerprints_are_equal_and_any_moved_number_is_different():
    assert fingerprint.compare("r", _fp(), _fp()).status == "equal"
    # a comparison that ignored the metrics, or one of the checksums, would pass these
    for moved in (_fp(metrics={"loss": [2.3, 2.2, 2.1000001]}), _fp(state_sum=1.5000000001),
                  _fp(state_sumsq=9.1), _fp(state_size=101), _fp(state_nonfinite=1),
                  _fp(metrics={"loss": [2.3, 2.2]}), _fp(metrics={"acc": [0.1, 0.1, 0.1]})):
        assert fingerprint.compare("r", _fp(), moved).status == "different", moved


def test_another_machine_is_compared_within_tolerance_only_when_its_canary_differs():
    near = _fp(state_sum=1.5 * (1 + 1e-5))
    assert fingerprint.compare("r", _fp(), near).status == "different"  # same canary: exact
    other = {**near, "canary": [1.0, 2.0, 3.0000001]}
    assert fingerprint.compare("r", _fp(), other).status.startswith("equal within tolerance")
    far = {**other, "state_sum": 1.6}
    assert fingerprint.compare("r", _fp(), far).status == "different"


def test_on_another_machine_a_sum_that_cancels_is_compared_against_the_states_norm():
    """EP's 784-256-256-10 record: its 269,322 entries sum to −0.0949 (norm 25.7), and another
    machine's rounding moves the sum by 5e-4, 0.5 % of it but 2e-5 of the norm."""
    record = _fp(state_sum=-0.09493383999671323, state_sumsq=659.8204296407682)
    other = {"canary": [1.0, 2.0, 3.0000001], "state_sumsq": 659.8204296407682 * (1 + 1e-6)}
    assert fingerprint.compare("r", record, _fp(**other, state_sum=-0.09541353900806371)).status \
        .startswith("equal within tolerance")
    assert fingerprint.compare("r", record, _fp(**other, state_sum=-0.2)).status == "different"
    # on the same machine nothing is tolerated
    assert fingerprint.compare("r", record, _fp(state_sum=-0.0954, state_sumsq=659.8204296407682)
                               ).status == "different"


def test_missing_and_none_fingerprints_are_reported_not_equal():
    assert fingerprint.compare("r", None, _fp()).status == "no fingerprint"
    none = {"kind": "none", "why": "no fit"}
    assert fingerprint.compare("r", none, none).status == "no fingerprint"
    assert fingerprint.compare("r", none, _fp()).status == "different"


def test_a_declared_drift_pins_its_own_fingerprint():
    record = {"fingerprint": _fp(), "drift": {"reason": "r", "fingerprint": _fp(state_sum=2.0)}}
    assert fingerprint.expected(record)["state_sum"] == 2.0
    assert fingerprint.expected({"fingerprint": _fp()})["state_sum"] == 1.5
    assert fingerprint.expected({}) is None


def test_batches_keep_the_seeds_of_one_configuration_together():
    jobs = [(f"x/a_seed{s}", "c") for s in range(3)] + [(f"x/b_seed{s}", "c") for s in range(2)]
    batches = fingerprint._batches(jobs, 2)
    assert sorted(len(b) for b in batches) == [2, 3]
    for b in batches:
        assert len({n.rsplit("_seed", 1)[0] for n, _ in b}) == 1


# --------------------------------------------------------------------------- taking


@pytest.fixture(scope="module")
def planted_tree(tmp_path_factory):
    """A copy of the library whose MLP's Adam has b1 moved by one float32 rounding step."""
    root = tmp_path_factory.mktemp("planted")
    shutil.copytree(REPO / "gridlib", root / "gridlib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "_toc.yml"):
        shutil.copy(REPO / name, root / name)
    source = root / "gridlib" / "baselines.py"
    text = source.read_text()
    assert "optax.adam(lr)" in text
    source.write_text(text.replace("optax.adam(lr)", "optax.adam(lr, b1=0.90000004)"))
    return root


def test_a_fingerprint_is_reproducible_and_sees_a_change_at_float32_rounding(planted_tree):
    jobs = [("baselines/tiny_seed3", TINY)]
    here = fingerprint.take(jobs, scale="ci")["baselines/tiny_seed3"]
    again = fingerprint.take(jobs, scale="ci")["baselines/tiny_seed3"]
    planted = fingerprint.take(jobs, root=planted_tree, scale="ci")["baselines/tiny_seed3"]
    assert here["kind"] == "start" and len(here["metrics"]["loss"]) == fingerprint.STEPS
    assert fingerprint.compare("tiny", here, again).status == "equal"
    # the first step is the same (b1 acts from the second update on); the rest is not
    assert fingerprint.compare("tiny", here, planted).status == "different"


def test_a_command_that_is_not_an_experiment_has_no_fingerprint():
    out = fingerprint.take([("bench/x", "python benchmarks/x.py")])
    assert out["bench/x"]["kind"] == "none"


def test_a_record_that_a_command_reads_travels_to_the_worker(published, tmp_path):
    """A run made with ``--tuned-from NAME`` reads that record at start; the worker's results
    folder is empty otherwise, so without the copy such a run has no fingerprint."""
    folder = tmp_path / "worker"
    fingerprint._copy_inputs(["python -m gridlib x --tuned-from t/run --name t/other --seed 0",
                              "python -m gridlib y --hidden 8,8 --path a/../b"], folder)  # fmt: skip
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.json")) == ["t/run.json"]
    assert (folder / "t/run.json").read_bytes() == results.path("t/run").read_bytes()


# --------------------------------------------------------------------------- the published records


def test_every_published_run_from_a_clean_tree_carries_a_fingerprint_and_none_is_ci_scale():
    missing, ci = [], []
    for name in fingerprint.published_runs():
        record = results.load(name)
        if record["provenance"].get("scale") == "ci":
            ci.append(name)
        if record["provenance"].get("git_dirty") is False and fingerprint.expected(record) is None:
            missing.append(name)
    assert not ci, f"CI-scale records are never published: {ci}"
    assert not missing, f"records without a fingerprint (reproduce --fingerprint): {missing[:5]}"


# --------------------------------------------------------------------------- reproduce


def _record(dirty=False, **extra):
    return {"provenance": {"git_dirty": dirty, "command": "python -m gridlib mlp --seed 0"},
            "config": {}, "metrics": {"a": 1}, **extra}


def test_stale_means_a_modified_tree_a_differing_recheck_or_a_declared_drift():
    clean = reproduce.status("x", _record(), None)
    assert not clean.stale and clean.status == "clean"
    assert reproduce.status("x", _record(dirty=True), None).stale
    assert reproduce.status("x", _record(dirty=None), None).stale  # unknown is not clean
    check = {"metrics": {"status": "different"}, "provenance": {"git_commit": "abcdef0"}}
    assert reproduce.status("x", _record(), check).stale
    ok = {"metrics": {"status": "bit-identical"}, "provenance": {"git_commit": "abcdef0"}}
    assert not reproduce.status("x", _record(), ok).stale
    assert reproduce.status("x", _record(drift={"reason": "why"}), None).stale


def test_the_list_is_one_job_per_line_with_five_fields(capsys):
    assert reproduce.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(fingerprint.published_runs())
    for i, line in enumerate(lines, 1):
        fields = line.split("\t")
        assert len(fields) == 5 and fields[0] == str(i), line


def test_a_remake_from_a_modified_tree_is_refused(monkeypatch):
    monkeypatch.setattr(results, "source_changes", lambda: ["gridlib/x.py"])
    job = reproduce.Status("x", True, "made from a modified tree", "-", TINY)
    with pytest.raises(ValueError, match="modified tree"):
        reproduce.remake(job)


@pytest.mark.parametrize("argv", [["--run", "0"], ["--run", "x"], ["--run", "1"],
                                  ["--stale", "--run", "999999"], ["--workers", "0"],
                                  ["--fingerprint", "../x"], ["--bogus"]])
def test_reproduce_refuses_bad_flags_in_one_line(capsys, argv):
    assert cli.main(["reproduce", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err


# --------------------------------------------------------------------------- arrays, annotations


@pytest.fixture
def published(tmp_path, monkeypatch):
    monkeypatch.setenv(results.ENV_VAR, str(tmp_path / "results"))
    monkeypatch.setenv(results.RUNS_ENV_VAR, str(tmp_path / "runs"))
    monkeypatch.setenv("GRIDLIB_SCALE", "full")  # only full-scale records are published
    with results.session(publish=True):
        results.save("t/run", config={"a": 1}, metrics={"m": 1.0}, seed=0,
                     arrays={".w": np.arange(6.0).reshape(2, 3), ".b": np.ones(2, np.float32)})
    return tmp_path / "results" / "t"


def test_saved_arrays_come_back_exactly_and_a_swapped_file_is_refused(published):
    got = results.load_arrays("t/run")
    assert np.array_equal(got[".w"], np.arange(6.0).reshape(2, 3)) and got[".b"].dtype == np.float32
    assert results.load("t/run")["arrays"]["shapes"] == {".w": [2, 3], ".b": [2]}
    np.savez(published / "other.npz", w=np.zeros(1))
    (published / "run.npz").write_bytes((published / "other.npz").read_bytes())
    with pytest.raises(storage.StoredFileError, match="checksum"):
        results.load_arrays("t/run")


def test_a_record_not_trained_by_fit_is_saved_with_its_none_fingerprint(published):
    # a benchmark saved without one would fail the published-fingerprint test until someone
    # ran reproduce --fingerprint by hand
    assert results.load("t/run")[fingerprint.FIELD] == results.NO_FINGERPRINT
    with results.session(publish=True):
        results.save("t/fit", config={"a": 2}, metrics={"m": 1.0}, seed=0,
                     history={"epoch": [1], "loss": [0.5]})
    assert fingerprint.FIELD not in results.load("t/fit")  # taken from its commit later


def test_tree_arrays_name_each_leaf_by_its_path():
    tree = {"grid": {"weight": np.ones(2)}, "bias": np.zeros(1)}
    assert set(results.tree_arrays(tree)) == {"['grid']['weight']", "['bias']"}


def test_annotations_touch_only_their_field(published):
    before = {k: v for k, v in results.load("t/run").items() if k != "fingerprint"}
    results.annotate("t/run", "fingerprint", {"kind": "none", "why": "test"})
    after = results.load("t/run")
    assert after["fingerprint"]["why"] == "test"
    assert {k: v for k, v in after.items() if k != "fingerprint"} == before
    with pytest.raises(results.ResultsError, match="not an annotation"):
        results.annotate("t/run", "metrics", {"m": 2.0})
    results.annotate("t/run", "fingerprint", None)
    assert results.load("t/run") == before


# --------------------------------------------------------------------------- installed, not a checkout


def test_an_installed_gridlib_keeps_results_in_the_user_folder_and_reads_no_git(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "IN_REPOSITORY", False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for var in (results.ENV_VAR, results.RUNS_ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    assert results.results_dir() == tmp_path / "xdg" / "gridlib" / "results"
    assert results.runs_dir() == tmp_path / "xdg" / "gridlib" / "runs"
    assert not any(r.is_relative_to(REPO) for r in storage.roots())  # not even _static
    assert provenance._git("rev-parse", "HEAD") is None  # the repository around it is not ours
    monkeypatch.setenv(results.ENV_VAR, str(tmp_path / "mine"))
    assert results.results_dir() == tmp_path / "mine"


def test_this_checkout_is_recognised_as_one():
    assert provenance.IN_REPOSITORY
    assert results.results_dir() == REPO / "results" or "GRIDLIB_RESULTS" in __import__("os").environ
    assert subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode == 0


def test_a_remade_record_says_which_numbers_moved_and_from_what():
    old = {"provenance": {"git_commit": "abcdef012", "git_dirty": True, "date_utc": "d"},
           "metrics": {"test_acc": 0.5, "epoch_time_s": 3.0, "steps_per_s": 9.0, "n": 2}}
    kept = results.replaced(old)
    assert kept["metrics"] == {"test_acc": 0.5, "n": 2.0}  # timings and speeds are not results
    new = {"provenance": {}, "metrics": {"test_acc": 0.52, "n": 2}, "remade": kept}
    note = results.remake_note(new)
    assert "modified tree" in note and "test_acc 0.5 -> 0.52" in note and "n " not in note
    same = {**new, "metrics": {"test_acc": 0.5, "n": 2}}
    assert "same numbers" in results.remake_note(same)
    assert results.remake_note({"metrics": {}}) == ""
