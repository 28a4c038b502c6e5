"""``ep-mnist --dataset``: the data set reaches the loader, names and configs of the MNIST records
stay what they were, and chapter 62's loaders refuse what the page does not describe."""

from __future__ import annotations

import fnmatch
import json
import re

import numpy as np
import pytest

from gridlib import cli, data, results
from gridlib.ep import EPConfig, summary
from gridlib.ep import experiments as epx

TINY = dict(hidden="8", epochs=1, n_free=2, n_nudge=1, n_eval=2, progress=False)


def _plain(text: str) -> str:
    """A table cell's text without the key span around a number."""
    return re.sub(r"<[^>]+>", "", text)

def test_the_default_names_and_configs_are_those_of_the_published_mnist_records():
    # every published ep-mnist record (MNIST, before the flag existed): same name, same config,
    # so a re-run is "a re-run of the published configuration" and recheck compares like with like
    seen = 0
    for tag, run in summary.EP_RUNS.items():
        for name in results.names(f"ep/{tag}_seed*"):
            rec = results.load(name)
            c = rec["config"]
            assert epx.results_name(run.cfg, seed=rec["provenance"]["seed"]) == name
            cfg = EPConfig(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in c.items() if k in EPConfig._fields})  # fmt: skip
            mine = epx.record_config(cfg, dataset="mnist", epochs=c["epochs"], batch_size=c["batch_size"],
                                     n_train=c["n_train"], n_test=c["n_test"])  # fmt: skip
            assert results.config_differences(c, mine) == [], name
            argv = rec["provenance"]["command"].split()[4:]  # after "python -m gridlib ep-mnist"
            assert cli.parse("ep-mnist", argv)[0]["dataset"] == "mnist"
            seen += 1
    assert seen >= 9
    assert epx.results_name(EPConfig()) == "ep/mnist_784-500-10_ep_seed0"


def test_fashion_names_differ_and_match_no_mnist_pattern():
    fashion = epx.results_name(EPConfig(), dataset="fashion_mnist", seed=1)
    assert fashion == "ep/fashion_mnist_784-500-10_ep_seed1"
    assert fashion != epx.results_name(EPConfig(), seed=1)
    assert epx.results_name(EPConfig(), dataset="fashion_mnist", ci=True).startswith("ep/ci/fashion_mnist_")
    for tag in summary.EP_RUNS:  # chapter 22's and the landing page's globs
        assert not fnmatch.fnmatchcase(fashion, f"ep/{tag}_seed*")
    assert fnmatch.fnmatchcase(fashion, summary.cross_ep_pattern("fashion_mnist"))
    assert not fnmatch.fnmatchcase(fashion, summary.cross_ep_pattern("mnist"))
    assert summary.cross_ep_pattern("mnist") == "ep/mnist_784-500-10_ep_seed*"


def test_the_config_records_the_dataset_except_for_mnist():
    kw = dict(epochs=25, batch_size=20, n_train=60000, n_test=10000)
    assert "dataset" not in epx.record_config(EPConfig(), dataset="mnist", **kw)
    assert epx.record_config(EPConfig(), dataset="fashion_mnist", **kw)["dataset"] == "fashion_mnist"


@pytest.mark.parametrize("call", ["cli", "python"])
def test_unknown_dataset_is_one_line(call, capsys):
    if call == "cli":
        assert cli.main(["ep-mnist", "--dataset", "cifar10"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "--dataset 'cifar10'" in err and "fashion_mnist" in err
    else:
        with pytest.raises(ValueError, match="choose one of mnist, fashion_mnist"):
            epx.ep_mnist(dataset="cifar10", **TINY)


def test_help_names_the_dataset_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["ep-mnist", "--help"])
    out = capsys.readouterr().out
    assert "Fashion-MNIST" in out and "--dataset" in out and "fashion_mnist" in out


def test_the_dataset_reaches_the_data_loader(tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "ci")
    seen = {}
    real = epx.run

    def spy(cfg, splits, **kw):
        seen[kw["name"]] = splits
        return real(cfg, splits, **kw)

    monkeypatch.setattr(epx, "run", spy)
    for ds in epx.DATASETS:
        epx.ep_mnist(dataset=ds, **TINY)
    fm, mn = seen["ep/ci/fashion_mnist_784-8-10_ep_seed0"], seen["ep/ci/mnist_784-8-10_ep_seed0"]
    want = data.load_fashion_mnist(n_train=2000, n_test=1000)
    np.testing.assert_array_equal(fm.x_train, want.x_train)
    np.testing.assert_array_equal(fm.y_test, want.y_test)
    assert fm.x_train.shape == mn.x_train.shape == (2000, 784)
    assert not np.array_equal(fm.x_train, mn.x_train)
    rec = results.load_scratch("ep/ci/fashion_mnist_784-8-10_ep_seed0")
    assert rec["config"]["dataset"] == "fashion_mnist" and rec["config"]["n_train"] == 2000
    assert "dataset" not in results.load_scratch("ep/ci/mnist_784-8-10_ep_seed0")["config"]


# ---------------------------------------------------------------------------- chapter 62's loaders


def _write(root, name, config, metrics, seed, history=None):
    p = root / "results" / f"{name}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"name": name, "config": results.to_jsonable(config), "metrics": metrics,
                             "history": history, "provenance": {"command": "python -m gridlib x",
                                                                "seed": seed, "scale": "full"}}))


def _config(expect):
    return {k: v for k, v in expect.items() if not k.startswith("provenance.")}


def test_cross_loaders_rows_gaps_and_missing_commands(tmp_results):
    from gridlib.neuralgrid.summary import BLOG_EXPECT

    hist = {"epoch": [1, 2], "epoch_time_s": [5.0, 5.0], "test/acc": [0.8, 0.84]}
    for seed, acc in ((0, 0.84), (1, 0.86)):
        _write(tmp_results, f"ep/fashion_mnist_784-500-10_ep_seed{seed}", _config(summary.cross_ep_expect("fashion_mnist")),
               {"test_acc": acc, "train_err_running": 0.1 - acc + 0.84}, seed, hist)  # fmt: skip
        _write(tmp_results, f"baselines/fashion_mnist-mlp-784-500-10_seed{seed}",
               _config(summary.cross_mlp_expect("fashion_mnist")), {"test/acc": acc + 0.04, "train/acc": 0.95},
               seed, {**hist, "epoch_time_s": [1.0, 1.0]})  # fmt: skip
        _write(tmp_results, f"neuralgrid/fashion_mnist_blog_seed{seed}", _config(BLOG_EXPECT),
               {"test_acc": 0.86}, seed, {"epoch_time_s": [1.0]})  # fmt: skip
    with pytest.raises(summary.MissingResults, match="--dataset fashion_mnist --seed 2"):
        summary.load_cross_runs()
    runs = summary.load_cross_runs(allow_missing=True)
    assert len(runs.ep["fashion_mnist"]) == 2 and runs.ep["mnist"] == {} and runs.mlp["mnist"] == {}
    assert runs.relu == {"mnist": {}, "fashion_mnist": {}}
    rows = summary.cross_rows(runs)
    assert [r["system"] for r in rows] == ["784-500-10 network", "784-500-10 MLP", "NeuralGrid 64×64 (ours)",
                                           "NeuralGrid 64×64 (blog)"]  # fmt: skip
    assert _plain(rows[0]["test accuracy"]) == "85.00\u00a0±\u00a01.41\u00a0%"
    assert not any("epoch" in k and k != "epochs" for r in rows for k in r)  # no seconds per epoch
    assert rows[0]["training accuracy"] == "91.00\u00a0±\u00a01.41\u00a0%" and rows[1]["training accuracy"] == "95.00\u00a0±\u00a00.00\u00a0%"
    assert rows[2]["training accuracy"] == "–"
    assert rows[3]["test accuracy"] == f"{100 * runs.neuralgrid_published:.1f} %"
    assert summary.locality_gaps(runs) == {"fashion_mnist": pytest.approx(4.0)}
    assert summary.gap_rows(runs)[0]["backprop − EP"] == "+4.00 points"
    assert summary.gap_rows(runs)[0]["ReLU − EP"] == "–"
    assert summary.cross_curves(runs, "fashion_mnist")["EP"]["test/acc"].shape == (2, 2)
    missing = summary.cross_missing(runs)
    assert "python -m gridlib ep-mnist --dataset fashion_mnist --seed 2 --publish" in missing
    assert ("python -m gridlib mlp --dataset fashion_mnist --hidden 500 --activation hard_sigmoid01 "
            "--epochs 25 --batch-size 20 --seed 2 --publish") in missing
    assert "python -m gridlib ep-mnist --seed 0 --publish" in missing
    assert ("python -m gridlib mlp --dataset fashion_mnist --hidden 500 --activation relu --epochs 25 "
            "--batch-size 20 --seed 0 --name baselines/fashion_mnist-mlp-relu-784-500-10_seed0 --publish") in missing
    assert len(missing) == 14
    relu = {**_config(summary.cross_mlp_expect("fashion_mnist")), "activation": "relu"}
    _write(tmp_results, "baselines/fashion_mnist-mlp-relu-784-500-10_seed0", relu,
           {"test/acc": 0.89, "train/acc": 0.97}, 0, {"epoch_time_s": [1.0]})  # fmt: skip
    runs = summary.load_cross_runs(allow_missing=True)
    assert len(runs.relu["fashion_mnist"]) == 1
    assert summary.cross_rows(runs)[2]["system"] == "784-500-10 MLP, ReLU (control)"
    assert summary.locality_gaps(runs, control=True) == {"fashion_mnist": pytest.approx(4.0)}
    assert summary.gap_rows(runs)[0]["ReLU − EP"] == "+4.00 points"
    _write(tmp_results, "baselines/fashion_mnist-mlp-relu-784-500-10_seed1",
           {**relu, "activation": "hard_sigmoid01"}, {"test/acc": 0.89}, 1)  # fmt: skip
    with pytest.raises(results.ResultsError, match="activation"):
        summary.load_cross_runs(allow_missing=True)
    (tmp_results / "results/baselines/fashion_mnist-mlp-relu-784-500-10_seed1.json").unlink()
    # an MNIST-configured record under the Fashion-MNIST name (no dataset field) is refused
    _write(tmp_results, "ep/fashion_mnist_784-500-10_ep_seed2", _config(summary.cross_ep_expect("mnist")),
           {"test_acc": 0.9}, 2)  # fmt: skip
    with pytest.raises(results.ResultsError, match="dataset"):
        summary.load_cross_runs(allow_missing=True)


def test_cross_loaders_accept_the_repository_mnist_records():
    from gridlib.neuralgrid.experiments import BLOG_TEST_ACC

    runs = summary.load_cross_runs()
    assert len(runs.ep["mnist"]) >= 3 and len(runs.mlp["mnist"]) >= 3 and len(runs.neuralgrid) >= 1
    assert runs.neuralgrid_published == BLOG_TEST_ACC
