import json

import numpy as np
import pytest

from gridlib import results


def test_roundtrip_with_provenance(tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "ci")
    p = results.save(
        "chap/run_seed3",
        config={"lr": np.float32(0.5), "sizes": (784, 10)},
        metrics={"acc": np.array(0.9), "curve": np.arange(3), "bad": float("nan")},
        seed=3,
    )
    assert p == tmp_results / "results" / "chap" / "run_seed3.json"
    rec = results.load("chap/run_seed3")
    assert rec["config"] == {"lr": 0.5, "sizes": [784, 10]}
    assert rec["metrics"] == {"acc": pytest.approx(0.9), "curve": [0, 1, 2], "bad": None}
    prov = rec["provenance"]
    assert prov["seed"] == 3 and prov["scale"] == "ci"
    assert set(prov) >= {"command", "git_commit", "date_utc", "platform", "cpu", "jax_version"}
    assert results.exists("chap/run_seed3") and not results.exists("chap/other")
    assert list(results.load_all("chap")) == ["chap/run_seed3"]
    assert "seed 3, scale ci" in results.describe(rec)
    json.loads(p.read_text())  # strict JSON: NaN was written as null


def test_missing_file_says_how_to_make_it(tmp_results):
    with pytest.raises(FileNotFoundError, match="python -m gridlib"):
        results.load("nope/nothing")


@pytest.mark.parametrize("bad", ["", "/abs", "../up", "a/../../b"])
def test_bad_names_are_refused(tmp_results, bad):
    with pytest.raises(ValueError):
        results.path(bad)
