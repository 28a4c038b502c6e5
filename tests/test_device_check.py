"""benchmarks/device_check.py without an accelerator: its plans, arguments, folders and summary.

Nothing here runs a part (``bash benchmarks/device.sh --quick`` does, in about a minute).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gridlib import flags

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dc():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "benchmarks" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_plan_is_the_issue_s_check(dc):
    from gridlib.gridnet.experiments import PRESETS

    full = dc.plan(quick=False)
    assert set(full) == set(dc.PARTS)
    assert PRESETS[full["gridnet"]["preset"]].grid == 32 and full["gridnet"]["batch"] == 256
    ng = full["neuralgrid"]
    assert (ng["height"], ng["width"], ng["batch"]) == (128, 128, 256)
    assert ng["steps"] == 60000 // 256  # one whole epoch per timed call
    assert (full["gle"]["n_seeds"], full["gle"]["seq_len"], full["gle"]["batch"]) == (10, 360, 100)
    assert dc.BUDGET_S["full"] <= 8 * 60 - 30  # room for the start and the Python probe


def test_quick_plan_is_small(dc):
    quick, full = dc.plan(quick=True), dc.plan(quick=False)
    assert all(set(quick[p]) == set(full[p]) for p in dc.PARTS)  # same code paths, smaller sizes
    g = quick["gridnet"]
    assert g["preset"] not in ("seed", "cpu") and dc.TINY_GRIDNET_FIELDS["grid"] <= 8
    assert g["batch"] <= 8 and g["max_steps"] <= 4 and g["step_grid"] <= 8
    assert quick["neuralgrid"]["height"] * quick["neuralgrid"]["width"] <= 256
    assert quick["neuralgrid"]["steps"] <= 4
    assert quick["gle"]["n_seeds"] <= 2 and quick["gle"]["seq_len"] <= 40


def test_arguments(dc):
    assert dc.parse_args([], environ={}).quick is False
    assert dc.parse_args([], environ={"DEVICE_CHECK_QUICK": "1"}).quick is True
    assert dc.parse_args(["--parts", "gle, gridnet"], environ={}).parts == ["gridnet", "gle"]
    with pytest.raises(flags.FlagError, match="--parts 'gridnet,mlp'"):
        dc.parse_args(["--parts", "gridnet,mlp"], environ={})


def test_records_never_go_to_results(dc, tmp_path, monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    assert dc.out_dir(None) == ROOT / "runs" / "device-check"
    monkeypatch.setenv("OUT", str(tmp_path))
    assert dc.out_dir(None) == tmp_path and dc.out_dir("elsewhere") == Path("elsewhere")
    env = dc.child_env(tmp_path, quick=True)
    assert env["GRIDLIB_RUNS"] == str(tmp_path) and env["GRIDLIB_SCALE"] == "ci"
    assert not Path(env["GRIDLIB_RESULTS"]).exists()
    assert Path(env["GRIDLIB_RESULTS"]).resolve() != (ROOT / "results").resolve()


def test_summary_table(dc):
    rows = [
        {"part": "gridnet", "status": "ok", "result": "fwd+bwd 1 ms/example", "reference": "CPU 93.8",
         "wall_s": 12.3, "file": str(ROOT / "runs" / "x.json"), "data": "random images and labels"},
        {"part": "neuralgrid", "status": "error", "error": "timeout after 120 s; last line: x", "wall_s": 120.0},
        {"part": "gle", "status": "skipped", "error": "no accelerator"},
    ]  # fmt: skip
    lines = dc.format_summary(rows).splitlines()
    assert len(lines) == 2 + len(rows) and len({len(line) for line in lines}) == 1  # aligned
    assert "[random data]" in lines[2] and "runs/x.json" in lines[2] and "| 12 " in lines[2]
    assert "timeout after 120 s" in lines[3] and "no accelerator" in lines[4]
