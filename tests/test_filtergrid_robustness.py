"""The robustness study's bookkeeping (gridlib.filtergrid.experiments / summary).

What each test would catch: a condition trained twice or attached to the wrong sweep value; a
break read at the wrong value or on the wrong side of the line; a verdict that ignores the seed
spread; a drop computed against the mean baseline instead of each seed's own.
"""

from __future__ import annotations

import numpy as np
import pytest

from gridlib.filtergrid import summary
from gridlib.filtergrid.experiments import SWEEPS, robustness_conditions


def test_conditions_are_distinct_and_indexed():
    conditions, index = robustness_conditions(list(SWEEPS))
    assert len(conditions) == len({repr(c) for c in conditions}) == 49
    assert all(index[s][0 if s != "1c_subtraction" else 3] == 0 for s in SWEEPS)  # the shared {}
    assert conditions[0] == {}
    assert conditions[index["1b_gain_asym_A"][2]] == {"gain_neg": 1.05, "gain_pos": 0.95}
    assert conditions[index["2c_combined_noise"][1]] == {"message_noise": 0.01, "trace_noise": 0.01}
    assert conditions[index["3_weight_bits"][-1]] == {"weight_step": 1.0}  # 2 bits over [-2, 2]
    with pytest.raises(ValueError, match="unknown sweep"):
        robustness_conditions(["1d_nothing"])


def _runs(acc):
    conditions, index = robustness_conditions({"1a_leak": (0.0, 0.1, 0.2)})
    config = {"conditions": conditions, "sweep_index": index, "sweep_values": {"1a_leak": [0.0, 0.1, 0.2]}}
    return summary.RobustnessRuns(config, list(range(len(acc))), np.asarray(acc, float), [], {})


def test_drops_are_paired_by_seed():
    # seed 0 is much better than seed 1, but each loses exactly 0.02 at 0.1 and 0.10 at 0.2
    rows = summary.robustness_rows(_runs([[0.60, 0.58, 0.50], [0.20, 0.18, 0.10]]))
    assert [round(r["drop"], 12) for r in rows] == [0.0, 0.02, 0.1]
    assert max(r["drop_sd"] for r in rows) < 1e-12  # unpaired, the spread would be 0.28
    (breaks,) = summary.clear_breaks(rows)
    assert breaks["ours: first mean drop ≥ 5"] == "0.2" and breaks["ours: first clear break"] == "0.2"


def test_claims_weigh_the_seed_spread():
    original = {"baseline": 0.3, "sweeps": {"1a_leak": {"values": [0.0, 0.1, 0.2], "val_acc": [0.3, 0.3, 0.29]}}}
    clear = summary.robustness_rows(_runs([[0.5, 0.5, 0.49], [0.4, 0.4, 0.39], [0.3, 0.3, 0.29]]), original)
    claim = _leak_claim(clear)
    assert claim["verdict"] == "survives" and claim["original"] == "1.00 (capacitor leak at 0.2)"
    # a mean drop of 4 points with a spread of 5: the 5-point line is within two errors
    noisy = summary.robustness_rows(_runs([[0.5, 0.5, 0.41], [0.4, 0.4, 0.40], [0.3, 0.3, 0.27]]), original)
    assert _leak_claim(noisy)["verdict"] == "not shown"
    # a clear break: the claim of tolerance is contradicted, and the table agrees
    broken = summary.robustness_rows(_runs([[0.5, 0.5, 0.30], [0.4, 0.4, 0.21], [0.3, 0.3, 0.1]]), original)
    assert _leak_claim(broken)["verdict"] == "contradicted"
    assert summary.clear_breaks(broken)[0]["ours: first clear break"] == "0.2"
    assert summary.clear_breaks(noisy)[0]["ours: first clear break"] == "none"


def _leak_claim(rows):
    (claim,) = [c for c in summary.judged_claims(rows) if c["topic"] == "a capacitor leak"]
    return claim


def test_a_clear_call_needs_the_t_interval_not_two_standard_errors():
    # drops at 0.2 of 6, 9 and 12 points: mean - 2 se = 5.5 would clear the 5-point line, but
    # with 3 seeds the 95 % t interval (t = 4.30) reaches down to 1.5: not shown, as
    # report.beyond_spread says
    from gridlib import report

    rows = summary.robustness_rows(_runs([[0.5, 0.5, 0.44], [0.4, 0.4, 0.31], [0.3, 0.3, 0.18]]))
    drops = [0.06, 0.09, 0.12]
    assert not report.beyond_spread(drops, reference=summary.BREAK)
    assert summary.clear_breaks(rows)[0]["ours: first clear break"] == "none"
    assert _leak_claim(rows)["verdict"] == "not shown"
