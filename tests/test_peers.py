"""benchmarks/peers.py without PyTorch or the references: its skips and its arithmetic.

Nothing is timed and nothing is fetched: the ratios are checked on fake timings, the skips with
a stand-in Python that has no PyTorch (or claims one) and an empty references folder.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


peers = _load("peers")


def _python(tmp_path: Path, body: str) -> str:
    """A stand-in interpreter: a shell script that ignores its arguments and runs ``body``."""
    exe = tmp_path / "python"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    return str(exe)


@pytest.fixture
def quiet_env(tmp_path, monkeypatch):
    """Results and runs redirected into ``tmp_path``, so that any write would show there."""
    monkeypatch.setenv("GRIDLIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GRIDLIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GRIDLIB_PEERS", str(tmp_path / "peers"))
    (tmp_path / "peers").mkdir()
    return tmp_path


def test_the_ratio_is_the_references_median_over_gridlibs():
    """Medians 2 s and 20 s per unit, 5 units per epoch: 10 s and 100 s per epoch, ratio 10;
    the rounds alone give 10, 15 and 20/3."""
    s = peers.summarize([1.0, 2.0, 3.0], [10.0, 30.0, 20.0], per_epoch=5.0)
    assert s["ours_epoch_s"] == pytest.approx(10.0)
    assert s["theirs_epoch_s"] == pytest.approx(100.0)
    assert s["ratio"] == pytest.approx(10.0)
    assert (s["ratio_min"], s["ratio_max"]) == pytest.approx((20 / 3, 15.0))
    assert s["ratio_round_median"] == pytest.approx(10.0)
    assert s["rounds"] == 3


def test_an_ensemble_unit_is_charged_per_seed():
    """gridlib trains 10 seeds in 4 s, the reference one seed in 8 s: 0.4 s against 8 s."""
    s = peers.summarize([4.0, 4.0], [8.0, 8.0], per_epoch=1.0, ours_share=0.1)
    assert s["ours_epoch_s"] == pytest.approx(0.4) and s["ratio"] == pytest.approx(20.0)


def test_an_even_number_of_rounds_takes_the_middle_mean():
    s = peers.summarize([1.0, 3.0], [10.0, 20.0], per_epoch=1.0)
    assert (s["ours_epoch_s"], s["theirs_epoch_s"], s["ratio"]) == pytest.approx((2.0, 15.0, 7.5))


@pytest.mark.parametrize("ours, theirs", [([], []), ([1.0], [1.0, 2.0]), ([0.0], [1.0])])
def test_unmatched_or_empty_timings_are_refused(ours, theirs):
    with pytest.raises(ValueError):
        peers.summarize(ours, theirs, per_epoch=1.0)


def test_the_sides_alternate_round_by_round():
    calls = []
    ours, theirs = peers.alternate(lambda: calls.append("ours") or 1.0,
                                   lambda: calls.append("theirs") or 2.0, rounds=3)
    assert calls == ["ours", "theirs"] * 3
    assert (ours, theirs) == ([1.0] * 3, [2.0] * 3)


def test_the_per_epoch_factors_match_the_data_sets():
    table = peers._pairs(quick=False)
    pair, sizes = table["neuralgrid-b256"]
    assert pair.per_epoch * sizes["k"] == 60000 // 256  # whole minibatches, as the loaders drop
    pair, sizes = table["ep"]
    assert pair.per_epoch * sizes["k"] * sizes["batch"] == 60000
    pair, sizes = table["gle-10seeds"]
    assert pair.per_epoch * sizes["k"] * sizes["batch"] == 4000 and pair.ours_share == 0.1


def test_without_pytorch_it_says_so_in_one_line_and_exits_0(quiet_env, monkeypatch, capsys):
    monkeypatch.setenv("GRIDLIB_PEER_PYTHON", _python(quiet_env, "exit 1"))
    assert peers.cli.run_script(peers.main, []) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("skip all:") and "no PyTorch" in out[0]
    assert not (quiet_env / "results").exists() and not (quiet_env / "runs").exists()


def test_a_python_that_does_not_start_is_the_same_skip(quiet_env, monkeypatch, capsys):
    monkeypatch.setenv("GRIDLIB_PEER_PYTHON", str(quiet_env / "no-such-python"))
    assert peers.cli.run_script(peers.main, []) == 0
    assert capsys.readouterr().out.startswith("skip all:")


def test_each_missing_reference_is_one_line_and_nothing_is_written(quiet_env, monkeypatch, capsys):
    monkeypatch.setenv("GRIDLIB_PEER_PYTHON", _python(quiet_env, "echo 9.9-stand-in"))
    assert peers.cli.run_script(peers.main, ["--publish"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    names = list(peers._pairs(quick=False))
    assert [line.split(":")[0] for line in out[:-1]] == [f"skip {n}" for n in names]
    assert all("git clone https://github.com/" in line for line in out[:-1])
    assert out[-1] == "nothing measured, nothing saved"
    assert not (quiet_env / "results").exists() and not (quiet_env / "runs").exists()


def test_the_wrong_version_of_a_reference_is_named(tmp_path):
    pair, _ = peers._pairs(quick=False)["neuralgrid-b256"]
    assert "no NeuralGrid" in peers.missing_reference(pair, tmp_path)
    marker = tmp_path / pair.repo / pair.marker
    marker.parent.mkdir(parents=True)
    marker.write_text("class GridNeuralNetwork2D:  # the 2023 rewrite\n    self.linear_in = 0\n")
    assert "not the version compared here" in peers.missing_reference(pair, tmp_path)
    assert "checkout 0ea8bec" in peers.missing_reference(pair, tmp_path)
    marker.write_text("self.dense_in = nn.Linear(n_inputs, grid_height)\n")
    assert peers.missing_reference(pair, tmp_path) is None


def test_an_unknown_pair_is_refused_with_exit_2(quiet_env, capsys):
    assert peers.cli.run_script(peers.main, ["--pairs", "nonesuch"]) == 2
    assert "unknown ['nonesuch']" in capsys.readouterr().err


def test_the_reference_worker_imports_without_pytorch_and_stands_in_for_absent_packages():
    worker = _load("peers_torch")
    assert set(worker.ADAPTERS) == {"neuralgrid", "gle", "ep"}
    name = "gridlib_peers_absent_package"
    worker._SUBMODULES[name] = ("sub",)
    try:
        worker._stand_in(name)
        worker._stand_in(name)  # a second call leaves the stand-in alone
        mod = importlib.import_module(f"{name}.sub")
        mod.anything("called like the real one")  # a plotting call does nothing
    finally:
        for key in (name, f"{name}.sub"):
            sys.modules.pop(key, None)
        del worker._SUBMODULES[name]


def test_a_reference_outside_git_has_an_unknown_commit(tmp_path):
    assert peers.reference_commit(tmp_path / "not-there") == "unknown"


def test_the_library_names_the_benchmark_calls_exist():
    """gridlib's side of every pair, checked without running it (a run compiles for minutes)."""
    from gridlib import data, ep
    from gridlib.ep import experiments as epx
    from gridlib.experiment import make_epoch_chunk
    from gridlib.gle import mnist1d as m1d
    from gridlib.gle import packed
    from gridlib.neuralgrid import experiments as ngx

    ngx.Config(height=128, width=128, batch_size=256).validate()
    cfg = ep.check_config(ep.EPConfig(sizes=(784, 512, 10), n_free=30, n_nudge=10, beta=0.1,
                                      alphas=(0.05, 0.05), sign="fixed"))
    assert (cfg.n_free, cfg.n_nudge) == (30, 10)
    setup = m1d.setup_for("e2e15k", schedule=False)
    assert (setup.batch, setup.seq_len) == (100, 360)
    for fn in (ngx.make_task, ngx.load_splits, m1d.train_batch, m1d.seed_init, m1d.make_task,
               m1d.net_config, epx.train_step, epx.init_state, make_epoch_chunk,
               data.load_mnist, data.load_mnist1d):
        assert callable(fn)
    assert hasattr(packed, "COMPILER_OPTIONS")
