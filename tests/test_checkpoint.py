"""Checkpoints: damage is reported as damage, other configurations by field, one writer per run,
and nothing but arrays and JSON is ever read from one."""

import io
import json
import os

import jax
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


STATE = {"w": np.arange(3, dtype=np.float32), "b": (np.zeros((2, 2)), np.int32(7))}


def test_roundtrip_and_no_temporary_files_left(tmp_path):
    f = tmp_path / "c" / "checkpoint.npz"
    checkpoint.save(f, STATE, {"fingerprint": "x", "epoch": 3, "history": {"acc": [0.5, float("nan")]}})
    ckpt = checkpoint.load(f, "x", STATE)
    assert ckpt.state["w"].tolist() == [0, 1, 2] and ckpt.state["b"][1] == 7
    assert ckpt.meta["epoch"] == 3 and np.isnan(ckpt.meta["history"]["acc"][1])
    assert jax.tree.structure(ckpt.state) == jax.tree.structure(STATE)
    assert checkpoint.load(tmp_path / "none.npz", "x", STATE) is None
    assert [p.name for p in f.parent.iterdir()] == ["checkpoint.npz"]
    with np.load(f, allow_pickle=False) as z:  # a plain archive of arrays, readable by anyone
        assert json.loads(z["meta"].tobytes())["fingerprint"] == "x"


def _resave_with(f, change):
    """Rewrite ``f``'s entries with ``change(entries)`` applied and the old checksum kept."""
    with np.load(f, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    change(entries)
    buf = io.BytesIO()
    np.savez(buf, **entries)
    f.write_bytes(buf.getvalue())


def test_a_changed_array_is_damage_not_a_silent_resume(tmp_path):
    f = tmp_path / "checkpoint.npz"
    checkpoint.save(f, {"w": np.zeros(100)}, {"fingerprint": "x"})
    _resave_with(f, lambda e: e["leaf_00000"].__setitem__(50, 1e-300))  # a valid archive, one bit off
    with pytest.raises(checkpoint.CheckpointError, match=r"damaged \(checksum mismatch\).*--fresh"):
        checkpoint.load(f, "x", {"w": np.zeros(100)})


def test_a_flipped_byte_is_damage(tmp_path):
    f = tmp_path / "checkpoint.npz"
    checkpoint.save(f, {"w": np.zeros(1000)}, {"fingerprint": "x"})
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 3] ^= 0x01  # inside the weights (the archive's CRC or the checksum catches it)
    f.write_bytes(bytes(raw))
    with pytest.raises(checkpoint.CheckpointError, match=r"damaged .*--fresh") as err:
        checkpoint.load(f, "x", {"w": np.zeros(1000)})
    assert "different configuration" not in str(err.value) and len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("mangle", [lambda r: b"X" + r[1:], lambda r: r[:10], lambda r: r[: len(r) // 2],
                                    lambda r: b""],
                         ids=["header", "truncated", "half", "empty"])
def test_a_damaged_file_is_damage_not_another_configuration(tmp_path, mangle):
    f = tmp_path / "checkpoint.npz"
    checkpoint.save(f, {"w": np.ones(10)}, {"fingerprint": "x"})
    f.write_bytes(mangle(f.read_bytes()))
    with pytest.raises(checkpoint.CheckpointError, match="damaged") as err:
        checkpoint.load(f, "x", {"w": np.ones(10)})
    assert "different configuration" not in str(err.value) and str(f) in str(err.value)


def test_a_foreign_fingerprint_is_refused_before_any_array_is_used(tmp_path):
    f = tmp_path / "checkpoint.npz"
    checkpoint.save(f, {"w": np.ones(3)}, {"fingerprint": "other"})
    used = []
    with pytest.raises(checkpoint.CheckpointError, match=r"different configuration \(lr\).*--fresh"):
        checkpoint.load(f, "mine", lambda meta: used.append(meta) or {"w": np.ones(3)},
                        explain=lambda meta: "lr")
    assert not used  # the template (and so the arrays) never came into play


@pytest.mark.parametrize("template", [{"w": np.ones(4)}, {"w": np.ones(3, np.float32)},
                                      {"w": np.ones(3), "v": np.ones(3)}],
                         ids=["shape", "dtype", "count"])
def test_another_structure_is_refused_in_one_line(tmp_path, template):
    f = tmp_path / "checkpoint.npz"
    checkpoint.save(f, {"w": np.ones(3)}, {"fingerprint": "x"})
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(f, "x", template)
    msg = str(err.value)
    assert str(f) in msg and "--fresh" in msg and len(msg.splitlines()) == 1


def test_another_configuration_names_the_field_and_the_flag(small, tmp_path):
    _fit(small, tmp_path, lr=0.1)
    with pytest.raises(checkpoint.CheckpointError, match=r"differs in: config\.lr.*--fresh"):
        _fit(small, tmp_path, lr=0.2)
    run = _fit(small, tmp_path, lr=0.2, fresh=True)  # --fresh discards it
    assert run.history["epoch"] == [1]


def test_a_resumed_run_removes_the_temporaries_of_a_killed_writer(small, tmp_path):
    _fit(small, tmp_path, epochs=1)
    stale = tmp_path / f"{experiment.CHECKPOINT_FILE}.999999999.dead.tmp"  # no such pid
    stale.write_bytes(b"half a checkpoint")
    run = _fit(small, tmp_path, epochs=2)
    assert run.history["epoch"] == [1, 2] and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", experiment.CHECKPOINT_FILE]


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


def _snapshot_checkpoint(seeds, arch="e2e15k"):
    """A gle-mnist1d checkpoint's metadata as fit writes it (no training needed)."""
    from gridlib.gle import experiments as gx
    from gridlib.gle import mnist1d as m1d

    setup = m1d.setup_for(arch)
    config = {"setup": setup._asdict(), "seeds": seeds, "epochs": 150, "n_train": 400, "n_test": 200}
    inputs = experiment._fingerprint_inputs(config, 0, setup.batch, 400, f"gle {arch} x{len(seeds)}")
    history = {"epoch": [1], "epoch_time_s": [0.5], "test/acc": [[0.5] * len(seeds)]}
    f = experiment.run_dir_for(gx.mnist1d_result_name(arch, seeds)) / experiment.CHECKPOINT_FILE
    meta = {"fingerprint": experiment._fingerprint(inputs), "inputs": inputs, "epoch": 1,
            "history": history, "starts": []}
    return f, meta


def test_the_snapshot_command_checks_the_checkpoint_belongs_to_its_run(tmp_results):
    from gridlib.gle import experiments as gx

    f, meta = _snapshot_checkpoint((1, 2))
    checkpoint.save(f, {}, meta)
    out = gx.mnist1d_snapshot(seeds="1,2")
    assert out["epochs_done"] == 1 and out["test_acc_mean"] == 0.5
    assert out["epochs"] == 150 and out["complete"] is False  # the run's plan, not a flag
    # the same file under the name of another run: refused, naming what differs
    _, other = _snapshot_checkpoint((1, 3))
    checkpoint.save(f, {}, other)
    with pytest.raises(checkpoint.CheckpointError, match=r"different configuration.*config\.seeds.*--fresh"):
        gx.mnist1d_snapshot(seeds="1,2")
    # recorded inputs that are not the fingerprinted ones: refused
    checkpoint.save(f, {}, {**meta, "fingerprint": "0" * 16})
    with pytest.raises(checkpoint.CheckpointError, match="fingerprint"):
        gx.mnist1d_snapshot(seeds="1,2")


def test_lagline_resumes_from_its_checkpoint(tmp_path):
    from gridlib.gle import teachers

    setup = teachers.LagLineSetup(t_train=20.0, lr=2e-3, batch=2, t_init=2.0)
    key = jax.random.PRNGKey(1)
    whole = teachers.run_lagline("gle", key, setup, trace_steps=5, n_chunks=3, run_dir=tmp_path)
    (ckpt,) = tmp_path.glob("lagline_gle_*.npz")
    again = teachers.run_lagline("gle", key, setup, trace_steps=5, n_chunks=3, run_dir=tmp_path)
    for k in whole:
        np.testing.assert_array_equal(whole[k], again[k])
    assert sorted(os.listdir(tmp_path)) == [ckpt.name]


def test_a_snapshot_never_replaces_the_complete_published_run(tmp_results, monkeypatch):
    """The hostile test's data loss: a finished 150-epoch result, then an interrupted re-run's
    snapshot of the same name. The published file must stay as it was."""
    from gridlib.gle import experiments as gx

    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    f, meta = _snapshot_checkpoint((1, 2))
    name = gx.mnist1d_result_name("e2e15k", (1, 2))
    done = {"epoch": list(range(1, 151)), "test/acc": [[0.9, 0.9]] * 150}
    published = results.save(name, config={**meta["inputs"]["config"]}, history=done,
                             metrics={"complete": True, "epochs": 150}, seed=1, publish=True)
    before = published.read_text()
    checkpoint.save(f, {}, meta)
    gx.mnist1d_snapshot(seeds="1,2")
    assert published.read_text() == before
