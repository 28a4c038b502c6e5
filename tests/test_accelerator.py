"""The GPU table and finding (gridlib.accelerator) read the device records faithfully."""

import copy

import pytest

from gridlib import accelerator


@pytest.fixture
def recs():
    dev = {"device": {"device_kind": "Some GPU"}}
    return {
        "neuralgrid": {"metrics": {"ours_epoch_s": 0.5, "ours_epoch_s_std": 0.1, "original_gpu_epoch_s": 5.0,
                                   "original_gpu_epoch_s_std": 0.2, "speedup_vs_original": 10.0,
                                   "unfold_epoch_s": 1.0, "unfold_epoch_s_std": 0.0}, "extra": dev},
        "gridnet": {"config": {"grid": 32, "batch": 256},
                    "metrics": {"seed_cuda_outer_step_ms": [0.4, 1.8], "outer_step_ms": 1.0,
                                "fwd_bwd_ms_per_example": 0.5}, "extra": dev},
    }  # fmt: skip


def test_rows_carry_each_number(recs):
    rows = accelerator.rows(recs)
    assert [r["on the GPU"] for r in rows] == ["0.50\u00a0±\u00a00.10 s", "1.00\u00a0±\u00a00.00 s", "1.00 ms", "0.50 ms per example"]
    assert "10.0× as long" in rows[0]["reference"] and "2.00× our form" in rows[1]["reference"]
    assert accelerator.gpu(recs) == "Some GPU"


@pytest.mark.parametrize(("ms", "word"), [(1.0, "within"), (0.1, "faster than"), (3.0, "slower than")])
def test_finding_places_gridnet_against_the_kernel(recs, ms, word):
    recs = copy.deepcopy(recs)
    recs["gridnet"]["metrics"]["outer_step_ms"] = ms
    text = accelerator.finding(recs)
    assert text.startswith("The same library code runs on a GPU") and f"{word} the 0.4–1.8 ms" in text


def test_no_records_no_finding():
    assert accelerator.finding({}) == "" and accelerator.rows({}) == []


def test_the_gle_row_names_its_network_in_words(recs):
    recs = {**recs, "gle": {"config": {"arch": "e2e15k", "n_seeds": 10, "batch": 100, "seq_len": 360},
                            "metrics": {"seed_examples_per_s": 8000.0, "published_run_hours": 0.5},
                            "extra": {"device": {"device_kind": "Some GPU"}}}}  # fmt: skip
    assert accelerator.rows(recs)[-1]["system"] == "end-to-end GLE, 15k"
