"""The lower bound of ``gridlib.ceiling`` against arithmetic done by hand, and its tables.

Nothing is timed here: the rates are given, the operation counts come from small functions
whose products and sines are counted by hand (``benchmarks/ceiling.py`` measures the rates).
"""

import jax.numpy as jnp
import pytest

from gridlib import ceiling
from gridlib.flops import OpCounts, count_ops

RATES = ceiling.Rates(matmul=1e10, elementwise=1e9,
                      transcendental={"sin": 1e8, "exp": 2e8, "tanh": 4e8}, scan_step=1e-6)


def test_the_bound_of_a_function_with_known_products_and_sines():
    """sin(a @ b) + 1 on (40, 30) @ (30, 50): 2*40*50*30 FLOPs of product, 2000 sines, 2000
    adds; at the rates above that is 12e-6 + 20e-6 + 2e-6 seconds, above 10 stages * 1e-6."""
    ops = count_ops(lambda a, b: jnp.sin(a @ b) + 1.0, jnp.ones((40, 30)), jnp.ones((30, 50)))
    assert (ops.matmul, ops.transcendental, ops.other) == (120_000, {"sin": 2000}, 2000)
    b = ceiling.lower_bound(ops, 10, RATES)
    assert b["terms_s"] == pytest.approx({"matmul": 12e-6, "transcendental": 20e-6,
                                          "elementwise": 2e-6, "sequential stages": 10e-6})
    assert b["compute_s"] == pytest.approx(34e-6) and b["bound_s"] == pytest.approx(34e-6)
    assert b["limit"] == "transcendental"


def test_the_sequential_stages_set_the_bound_when_they_take_longer():
    b = ceiling.lower_bound(OpCounts(matmul=10**4, other=10**3), 1000, RATES)
    assert b["bound_s"] == pytest.approx(1e-3) and b["limit"] == "sequential stages"
    assert ceiling.lower_bound(OpCounts(matmul=10**10), 0, RATES)["limit"] == "matmul"
    assert ceiling.lower_bound(OpCounts(other=10**6), 1, RATES)["limit"] == "elementwise"


def test_each_transcendental_is_charged_at_its_familys_rate():
    ops = OpCounts(transcendental={"sin": 10**8, "cos": 10**8, "tanh": 4 * 10**8,
                                   "exp": 2 * 10**8, "logistic": 2 * 10**8})
    assert ceiling.lower_bound(ops, 0, RATES)["terms_s"]["transcendental"] == pytest.approx(5.0)
    assert [ceiling.transcendental_rate(RATES, p) for p in ("cos", "tanh", "log")] == [1e8, 4e8, 2e8]


def _metrics(fractions, limits):
    systems = [{"name": f"system {i}", "bound_s": f * 1e-3, "measured_s": 1e-3, "fraction": f,
                "limit": lim, "stages": 64.0,
                "terms_s": {t: f * 1e-3 / 4 for t in ceiling.TERMS}}
               for i, (f, lim) in enumerate(zip(fractions, limits, strict=True))]
    return {"rates": {"matmul": 7e10, "elementwise": 2e10, "scan_step": 1e-6,
                      "transcendental": {"sin": 3e8, "exp": 5e8, "tanh": 6e8}},
            "systems": systems, "rounds": 3}


def test_tables_have_one_row_per_system_and_the_finding_names_the_extremes():
    m = _metrics([0.06, 0.61, 0.2], ["transcendental", "matmul", "elementwise"])
    rows = ceiling.rows(m)
    assert [r["fraction"] for r in rows] == ["6.0\u00a0%", "61\u00a0%", "20\u00a0%"]
    assert [r["limited by"] for r in rows] == ["transcendental", "matmul", "elementwise"]
    assert len(ceiling.term_rows(m)) == 3 and len(ceiling.rate_rows(m)) == 6
    text = ceiling.finding(m)
    assert text.startswith("Most training steps run far")
    assert "closest is system 1 at 61\u00a0%" in text and "farthest system 0 at 6.0\u00a0%" in text
    assert "median step reaches 20\u00a0%" in text and "arithmetic sets every bound" in text
    assert "sequential stages bound system 2" in ceiling.finding(
        _metrics([0.06, 0.61, 0.2], ["transcendental", "matmul", "sequential stages"]))


def test_the_machine_label_reads_the_records_provenance():
    rec = {"provenance": {"cpu": "AMD EPYC", "cpu_count": 2, "jax_backend": "cpu",
                          "date_utc": "2026-12-06T08:00:00+00:00"}}
    from gridlib import report

    assert report.machine(rec, date=True) == "a 2-core AMD EPYC on 2026-12-06"
