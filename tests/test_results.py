"""Results files: where a run may write, what a chapter may read, and what provenance means."""

import json
import subprocess

import numpy as np
import pytest

from gridlib import provenance, results


@pytest.fixture
def full_scale(tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    return tmp_results


def _save(name="chap/run_seed0", seed=0, publish=None, overwrite=None, **config):
    return results.save(name, config={"epochs": 25, "lr": 0.1, **config}, metrics={"acc": 0.9},
                        seed=seed, publish=publish, overwrite=overwrite)  # fmt: skip


def test_roundtrip_with_provenance(full_scale):
    p = results.save(
        "chap/run_seed3",
        config={"lr": np.float32(0.5), "sizes": (784, 10)},
        metrics={"acc": np.array(0.9), "curve": np.arange(3)},
        history={"loss": [1.0, float("nan")]},
        seed=3,
        publish=True,
    )
    assert p == full_scale / "results" / "chap" / "run_seed3.json"
    rec = results.load("chap/run_seed3")
    assert rec["config"] == {"lr": 0.5, "sizes": [784, 10]}
    assert rec["metrics"] == {"acc": pytest.approx(0.9), "curve": [0, 1, 2]}
    assert rec["history"]["loss"] == [1.0, None]  # strict JSON
    prov = rec["provenance"]
    assert prov["seed"] == 3 and prov["scale"] == "full" and prov["dirty_rule"] == "source"
    assert set(prov) >= {"command", "git_commit", "git_dirty", "dirty_files", "date_utc", "saved_utc"}
    assert results.exists("chap/run_seed3") and not results.exists("chap/other")
    assert list(results.load_all("chap")) == ["chap/run_seed3"]
    assert "seed 3, scale full" in results.describe(rec) and "`" not in results.describe(rec)
    json.loads(p.read_text())


def test_a_new_name_is_not_published_without_asking(full_scale, capsys):
    p = _save()
    assert p == full_scale / "runs" / "results" / "chap" / "run_seed0.json"
    assert not results.exists("chap/run_seed0")
    assert "--publish" in capsys.readouterr().err


def test_ci_scale_runs_are_never_published(tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "ci")
    assert results.save("chap/x", config={}, metrics={"a": 1}, publish=True, overwrite=True).is_relative_to(
        results.scratch_dir())
    assert not results.exists("chap/x")


def test_another_configuration_never_replaces_a_published_file(full_scale, capsys):
    published = _save(publish=True)
    before = published.read_text()
    diverted = _save(epochs=1)  # the short run of the issue: same name, one epoch
    assert diverted.is_relative_to(results.scratch_dir())
    assert published.read_text() == before
    err = capsys.readouterr().err
    assert "epochs: 25 -> 1" in err and "--overwrite" in err
    # a second different configuration does not replace the first diverted one either
    other = _save(epochs=2)
    assert other != diverted and diverted.is_file() and other.is_file()
    # another seed is another configuration too
    assert _save(seed=1).is_relative_to(results.scratch_dir())


def test_same_configuration_replaces_and_overwrite_is_explicit(full_scale):
    published = _save(publish=True)
    assert _save() == published  # a re-run of the published configuration
    assert _save(epochs=1, overwrite=True) == published
    assert results.load("chap/run_seed0")["config"]["epochs"] == 1


def test_session_options_and_start_provenance(full_scale, monkeypatch):
    commits = iter(["a" * 40, "b" * 40])
    real_git = provenance._git
    monkeypatch.setattr(provenance, "_git", lambda *a: next(commits) if a[0] == "rev-parse" else real_git(*a))
    with results.session(publish=True):  # provenance is read here, at the start ...
        p = _save()
    # ... not when the file is written (HEAD moved to b... in between)
    assert results.read(p)["provenance"]["git_commit"] == "a" * 40
    assert p.is_relative_to(results.results_dir())


def test_non_finite_or_empty_metrics_are_refused(full_scale):
    with pytest.raises(FloatingPointError, match="'w'"):
        results.save("chap/nan", config={}, metrics={"w": np.array([1.0, np.nan])}, publish=True)
    with pytest.raises(FloatingPointError, match="loss"):
        results.save("chap/inf", config={}, metrics={"loss": float("inf")}, publish=True)
    with pytest.raises(results.ResultsError, match="no metrics"):
        results.save("chap/empty", config={}, metrics={}, publish=True)
    assert not list(full_scale.rglob("*.json"))


def test_missing_file_says_how_to_make_it(tmp_results):
    with pytest.raises(FileNotFoundError, match="python -m gridlib"):
        results.load("nope/nothing")


@pytest.mark.parametrize("bad", ["", "/abs", "../up", "a/../../b", ".hidden", "a b", "a//b"])
def test_bad_names_are_refused(tmp_results, bad):
    with pytest.raises(results.ResultsError):
        results.path(bad)


def test_a_chapter_refuses_a_record_it_does_not_expect(full_scale):
    _save(publish=True, setup={"tau": 2.0})
    assert results.load("chap/run_seed0", expect={"epochs": 25, "setup.tau": 2.0})
    with pytest.raises(results.ResultsError, match=r"run_seed0\.json: epochs is 25, but this chapter expects 150"):
        results.load("chap/run_seed0", expect={"epochs": 150})
    with pytest.raises(results.ResultsError, match="setup.tau"):
        results.load("chap/run_seed0", expect={"setup.tau": 1.0})
    with pytest.raises(results.ResultsError, match="provenance.scale"):
        results.load("chap/run_seed0", expect={"provenance.scale": "ci"})


def test_seeds_are_averaged_only_when_they_differ_in_the_seed_alone(full_scale):
    for seed in range(3):
        _save(f"chap/run_seed{seed}", seed=seed, publish=True)
    group = results.load_group("chap/run_seed*", expect={"epochs": 25})
    assert list(group) == ["chap/run_seed0", "chap/run_seed1", "chap/run_seed2"]
    _save("chap/run_seed3", seed=3, publish=True, epochs=1)  # a stray short run, published by force
    with pytest.raises(results.ResultsError, match=r"run_seed3\.json differs .* in epochs"):
        results.load_group("chap/run_seed*")
    with pytest.raises(FileNotFoundError):
        results.load_group("chap/none*")


def test_dirty_means_source_changes_only(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "gridlib").mkdir(parents=True)
    (repo / "results").mkdir()
    (repo / "gridlib" / "a.py").write_text("x = 1\n")
    (repo / "results" / "r.json").write_text("{}\n")

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(provenance, "REPO_ROOT", repo)
    assert results.source_changes() == []
    (repo / "results" / "r.json").write_text('{"changed": 1}\n')  # results do not count
    assert results.source_changes() == []
    (repo / "gridlib" / "new.py").write_text("y = 2\n")  # an untracked source file does
    assert results.source_changes() == ["gridlib/new.py"]
    (repo / "gridlib" / "a.py").write_text("x = 3\n")  # and a modified one, path intact
    assert results.source_changes() == ["gridlib/a.py", "gridlib/new.py"]
    prov = results.provenance()
    assert prov["git_dirty"] is True and prov["dirty_files"] == ["gridlib/a.py", "gridlib/new.py"]
    assert results.dirty_note({"provenance": prov}).endswith("gridlib/a.py and 1 other file")


def test_old_dirty_flags_are_described_as_old():
    rec = {"provenance": {"command": "python -m gridlib mlp", "git_commit": "abc", "git_dirty": True,
                          "date_utc": "2026-11-01T00:00:00", "seed": 0, "scale": "full"}}  # fmt: skip
    assert "some files differed from its commit" in results.describe(rec)
    assert "(" not in results.dirty_note(rec)  # plain words, no parenthetical


@pytest.mark.parametrize("recorded, shown", [
    ("enchmarks/filtergrid.py", "benchmarks/filtergrid.py"),  # the porcelain bug's cut
    ("ridlib/cli.py", "gridlib/cli.py"),
    ("yproject.toml", "pyproject.toml"),
    ("gridlib/cli.py", "gridlib/cli.py"),  # an intact path stays as it is
])
def test_a_first_path_cut_by_the_old_porcelain_parse_is_mended(recorded, shown):
    prov = {"git_dirty": True, "dirty_rule": "source",
            "dirty_files": [recorded, "notebooks/x.md", "gridlib/y.py"]}
    note = results.dirty_note({"provenance": prov})
    assert note == f"source differed from its commit in {shown} and 2 other files"


def test_the_short_command_drops_a_flag_repeated_with_its_value():
    rec = {"provenance": {"command": "python -m gridlib neuralgrid3d --epochs 10 --progress false "
                                     "--progress false"}}
    assert results.short_command(rec) == "gridlib neuralgrid3d --epochs 10 --progress false"
    rec = {"provenance": {"command": "python -m gridlib x --a 1 --b 1 --seeds 1,2"}}
    assert results.short_command(rec) == "gridlib x --a 1 --b 1 --seeds 1,2"
