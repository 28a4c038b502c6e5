"""The peer table (gridlib.peers) reads the benchmark's record faithfully."""

from gridlib import peers


def _rec(ratios):
    rows = [{"pair": p, "ours_epoch_s": 1.0, "theirs_epoch_s": r, "ratio": r, "ratio_min": r - 1,
             "ratio_max": r + 1, "cpu": {"ratio": r / 2}} for p, r in ratios.items()]
    return {"extra": {"rows": rows}}


def test_rows_and_finding_name_the_slowest_and_fastest_pair():
    rec = _rec({"ep": 14.6, "gle": 22.7, "neuralgrid-b256": 8.1})
    rows = peers.rows(rec)
    assert [r["gridlib faster by"] for r in rows] == ["14.6× (13.6–15.6)", "22.7× (21.7–23.7)", "8.1× (7.1–9.1)"]
    assert rows[0]["CPU time"] == "7.3×" and rows[2]["work (one epoch)"].startswith("NeuralGrid")
    text = peers.finding(rec)
    assert "from 8.1× for NeuralGrid 128 × 128, batch 256 to 22.7× for GLE 15k, one seed" in text
