"""Re-checking a published result by re-running its first epoch."""

import json

import pytest

from gridlib import cli, recheck, results


@pytest.fixture
def published_mlp(tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    argv = ["mlp", "--epochs", "2", "--n-train", "256", "--hidden", "8", "--name", "t/mlp", "--publish",
            "--progress", "false"] if "progress" in cli.registry()["mlp"].__code__.co_varnames else [
            "mlp", "--epochs", "2", "--n-train", "256", "--hidden", "8", "--name", "t/mlp", "--publish"]
    monkeypatch.setattr("sys.argv", ["/x/gridlib/__main__.py", *argv])
    assert cli.main(argv) == 0
    return results.path("t/mlp")


def test_a_faithful_record_rechecks_bit_identical(published_mlp):
    v = recheck.recheck("t/mlp", epochs=1)
    assert v.status == "bit-identical" and v.n_compared >= 4 and v.max_rel_diff == 0.0
    assert "bit-identical" in recheck.describe(v)


def test_a_tampered_record_is_different(published_mlp):
    rec = json.loads(published_mlp.read_text())
    rec["history"]["test/acc"][0] += 0.01
    published_mlp.write_text(json.dumps(rec))
    v = recheck.recheck("t/mlp", epochs=1)
    assert v.status == "different" and v.worst == "test/acc"
    assert cli.main(["recheck", "t/mlp"]) == 1


def test_notebook_records_are_not_recheckable(tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    monkeypatch.setattr("sys.argv", ["/x/ipykernel_launcher.py"])
    results.save("t/nb", config={}, metrics={"a": 1.0}, history={"epoch": [1]}, publish=True)
    assert recheck.recheck("t/nb").status == "not recheckable"


def test_compare_counts_and_skips_timings():
    n, rel, worst = recheck.compare({"epoch_time_s": [1.0], "loss": [[1.0, 2.0]]},
                                    {"epoch_time_s": [9.0], "loss": [[1.0, 2.0000001]]}, 1)  # fmt: skip
    assert n == 2 and 0 < rel < 1e-6 and worst == "loss"


def test_a_record_whose_config_was_edited_is_different(published_mlp):
    """The history still matches (only the config was edited: a changed value and an unknown
    field), so only the config comparison can catch it."""
    rec = json.loads(published_mlp.read_text())
    rec["config"].update({"lr": 0.5, "mystery_field": 1})
    published_mlp.write_text(json.dumps(rec))
    v = recheck.recheck("t/mlp", epochs=1)
    assert v.status == "different" and "lr" in v.detail and "mystery_field" in v.detail


@pytest.mark.parametrize(("isa", "at_commit", "status"), [
    ("another", 0.30, "other hardware"),  # another CPU, and the old commit agrees with this code
    (None, 0.30, "other hardware"),       # an old record that does not say: the same
    ("another", 0.31, "different"),       # the old commit disagrees with this code: the code moved
    ("this", 0.30, "different"),          # the same instruction set: the machine cannot explain it
])
def test_numbers_moved_by_the_machine_are_told_from_numbers_moved_by_the_code(
        tmp_results, monkeypatch, isa, at_commit, status):
    """The record says 0.20; this code gives 0.30 here. Re-run here from a commit known to give
    the record's numbers: 0.30 means the machine moved them; anything else, the code did."""
    from gridlib import provenance

    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    monkeypatch.setattr("sys.argv", ["/x/gridlib/__main__.py", "mlp", "--epochs", "1"])
    path = results.save("t/hw", config={"epochs": 1}, metrics={"a": 1.0}, publish=True,
                        history={"epoch": [1], "test/acc": [0.20]})
    rec = json.loads(path.read_text())
    rec["provenance"]["cpu_isa"] = {"another": "a-wider-one", "this": provenance.cpu_isa()}.get(isa)
    if isa is None:
        del rec["provenance"]["cpu_isa"]
    path.write_text(json.dumps(rec))

    def fake(acc):
        return {"config": {"epochs": 1}, "history": {"epoch": [1], "test/acc": [acc]}}, ""

    monkeypatch.setattr(recheck, "_rerun", lambda *a, **k: fake(0.30))
    monkeypatch.setattr(recheck, "_reference_commits", lambda name, prov: ["c" * 40])
    monkeypatch.setattr(recheck, "_rerun_at", lambda *a, **k: fake(at_commit))
    v = recheck.recheck("t/hw")
    assert v.status == status and v.max_rel_diff == pytest.approx(1 / 3)
    assert ("the machine moved them" in v.detail) == (status == "other hardware")
