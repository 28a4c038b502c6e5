"""Checkpoints: damage is reported as damage, other configurations by field, one writer per run."""

import numpy as np
import optax
import pytest

from gridlib import baselines, checkpoint, data, experiment, results


@pytest.fixture(scope="module")
def small():
    return data.load_mnist(n_train=128, n_test=64, validation=0)


def _fit(small, run_dir, lr=0.1, epochs=1, **kw):
    task = baselines.mlp_task((784, 10), optax.sgd(lr))
    return experiment.fit(task, small, epochs=epochs, batch_size=32, run_dir=run_dir,
                          config={"lr": lr}, progress=False, **kw)  # fmt: skip


def test_roundtrip_and_no_temporary_files_left(tmp_path):
    f = tmp_path / "c" / "checkpoint.pkl"
    checkpoint.save(f, {"fingerprint": "x", "w": np.arange(3)})
    assert checkpoint.load(f, "x")["w"].tolist() == [0, 1, 2]
    assert checkpoint.load(tmp_path / "none.pkl", "x") is None
    assert [p.name for p in f.parent.iterdir()] == ["checkpoint.pkl"]


def test_a_flipped_payload_byte_is_damage_not_a_silent_resume(tmp_path):
    f = tmp_path / "checkpoint.pkl"
    checkpoint.save(f, {"fingerprint": "x", "w": np.zeros(100)})
    raw = bytearray(f.read_bytes())
    raw[-50] ^= 0x01  # one bit inside the weights
    f.write_bytes(bytes(raw))
    with pytest.raises(checkpoint.CheckpointError, match="damaged \\(checksum mismatch\\).*--fresh"):
        checkpoint.load(f, "x")


@pytest.mark.parametrize("mangle", [lambda r: b"X" + r[1:], lambda r: r[:10], lambda r: b""],
                         ids=["header", "truncated", "empty"])
def test_a_damaged_header_is_damage_not_another_configuration(tmp_path, mangle):
    f = tmp_path / "checkpoint.pkl"
    checkpoint.save(f, {"fingerprint": "x"})
    f.write_bytes(mangle(f.read_bytes()))
    with pytest.raises(checkpoint.CheckpointError, match="damaged") as err:
        checkpoint.load(f, "x")
    assert "different configuration" not in str(err.value) and str(f) in str(err.value)


def test_another_configuration_names_the_field_and_the_flag(small, tmp_path):
    _fit(small, tmp_path, lr=0.1)
    with pytest.raises(checkpoint.CheckpointError, match=r"differs in: config\.lr.*--fresh"):
        _fit(small, tmp_path, lr=0.2)
    run = _fit(small, tmp_path, lr=0.2, fresh=True)  # --fresh discards it
    assert run.history["epoch"] == [1]


def test_a_second_identical_run_refuses_clearly(tmp_path):
    with checkpoint.lock(tmp_path / "run"):
        with pytest.raises(checkpoint.CheckpointError, match="already going"):
            with checkpoint.lock(tmp_path / "run"):
                pass  # pragma: no cover
    with checkpoint.lock(tmp_path / "run"):  # released afterwards
        pass


def test_run_dirs_follow_GRIDLIB_RUNS_and_stay_inside(tmp_results):
    assert experiment.run_dir_for("ep/x") == tmp_results / "runs" / "ep" / "x"
    for bad in ("/abs", "../../x"):
        with pytest.raises(results.ResultsError):
            experiment.run_dir_for(bad)


def test_resume_records_where_the_run_started(small, tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    run_dir = tmp_results / "runs" / "r"
    with results.session(stop_after_epochs=1) as s:
        run = _fit(small, run_dir, epochs=3)
        assert run.history["epoch"] == [1] and s.stopped_early
        # a stopped run is never published, even when asked
        assert results.save("r", config={"lr": 0.1}, metrics=run.last, publish=True).is_relative_to(
            results.scratch_dir())
    commit = {"git_commit": "c" * 40}
    with results.session(publish=True) as s:
        s.start.update(commit)  # as if resumed at another commit
        run = _fit(small, run_dir, epochs=3)
        assert run.history["epoch"] == [1, 2, 3]
        rec = results.read(results.save("r", config={"lr": 0.1}, metrics=run.last))
    prov = rec["provenance"]
    assert prov["git_commit"] != "c" * 40 and prov["resumed"][-1]["git_commit"] == "c" * 40
