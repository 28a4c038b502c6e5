"""benchmarks/filtergrid.py's side by side with XLA's small-loop option, without timing anything.

The child process is started for real and asked only for its greeting (its ``XLA_FLAGS`` and
whether a probe loop compiled into one kernel there); the ratios are checked on fake timings.
"""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _load("filtergrid")
SETTING = f"--xla_backend_extra_options={bench.XLA_OPTION}={bench.XLA_BYTES}"


def test_the_child_process_runs_with_the_option_and_xla_reads_it():
    child = bench.XlaChild()
    try:
        assert SETTING in child.hello["XLA_FLAGS"].split()
        assert child.hello["small_loop_hoisted"] is True  # the probe loop became one kernel
    finally:
        assert child.close() == 0


@pytest.mark.skipif("xla_backend_extra_options" in os.environ.get("XLA_FLAGS", ""),
                    reason="this process sets XLA backend options itself")
def test_this_process_keeps_xlas_default():
    assert bench.small_loop_hoisted() is False


def test_child_environment_adds_the_option_to_existing_flags_and_refuses_a_second():
    env = bench.xla_child_env({"XLA_FLAGS": "--xla_cpu_max_isa=AVX2", "PATH": "/bin"})
    assert env["XLA_FLAGS"].split() == ["--xla_cpu_max_isa=AVX2", SETTING]
    assert env["PATH"] == "/bin" and env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    assert bench.xla_child_env({})["XLA_FLAGS"] == SETTING
    with pytest.raises(ValueError, match="already sets"):
        bench.xla_child_env({"XLA_FLAGS": "--xla_backend_extra_options=xla_cpu_fold_all_constants"})


def test_the_records_config_states_xlas_default_and_the_value_set():
    config = bench.xla_config()
    assert config["option"] == "xla_cpu_small_while_loop_byte_threshold"
    assert config["xla_default_bytes"] == 1024 < config["bytes"]
    assert config["XLA_FLAGS"] == SETTING


def test_xla_fields_are_the_ratios_of_the_best_rounds():
    default = {"original": [0.1, 0.09], "library": [0.002, 0.001]}
    flagged = {"original": [0.02, 0.01], "library": [0.001, 0.0012], "library_fit": [0.0005, 0.0004]}
    first = {"original": 0.5, "library": 0.5, "library_fit": 0.5}
    x = bench.xla_fields(default, flagged, flagged, first, hoisted=True)
    assert x["ratio"] == pytest.approx(10.0) and x["ratio_fit"] == pytest.approx(25.0)
    assert x["original_speedup"] == pytest.approx(9.0) and x["library_speedup"] == pytest.approx(1.0)
    assert x["original_ms_per_step"] == pytest.approx(10.0) and x["small_loop_hoisted"] is True
    assert set(x["first_step_loss"]) == {"original", "library"}


def test_without_the_original_the_side_by_side_is_skipped_before_any_child(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRIDLIB_ANCHOR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(bench, "XlaChild", lambda: pytest.fail("a child was started"))
    assert bench.side_by_side() == []
    assert "side by side: skipped" in capsys.readouterr().out


def test_the_side_by_side_table_gives_the_median_rounds_ratio_beside_the_best_rounds():
    from gridlib.filtergrid import summary

    row = {"original_ms_per_step": 186.1, "library_ms_per_step": 5.4, "ratio": 34.43,
           "ratio_median_rounds": 31.29, "ratio_fit": 36.55, "ratio_split": 51.38,
           "ratio_split_median_rounds": 41.96}
    old = {k: v for k, v in row.items() if "median" not in k and "split" not in k}
    rows = summary.side_by_side_rows({"metrics": {"side by side: SnAP-1, batch 32": row,
                                                  "side by side: SnAP-1, batch 1": old}})
    assert rows[0]["× one call per step"] == "34.4 (31.3)"
    assert rows[0]["× split over the cores"] == "51.4 (42.0)"
    assert rows[0]["× as fit runs it"] == "36.5"  # no median recorded: none shown
    assert rows[1]["× one call per step"] == "34.4" and rows[1]["× split over the cores"] == "–"
