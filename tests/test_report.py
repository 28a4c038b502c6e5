"""The chapters' tables, summaries and provenance blocks."""

import pytest

from gridlib import report, results


def test_mean_sd_and_formats():
    assert report.mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert report.mean_sd([4.0]) == (4.0, 0.0)
    assert report.format_mean_sd([0.9, 0.92], digits=1, percent=True) == "91.0 ± 1.4 % (n=2)"
    text = report.versus([0.915, 0.905], 0.917, published_sd=0.008)
    assert text == "91.0 ± 0.7 % (n=2) against 91.7 ± 0.8 % published: −0.7 points"
    with pytest.raises(ValueError):
        report.mean_sd([])


def test_tables():
    table = report.markdown_table([{"a": 1, "b": 0.123456, "c": "x|y"}], floatfmt=".2f")
    assert table.splitlines() == ["| a | b | c |", "|---|---|---|", "| 1 | 0.12 | x\\|y |"]
    with pytest.raises(ValueError):
        report.markdown_table([])


def test_provenance_block_is_collapsed_and_escaped(tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    results.save("chap/r_seed0", config={}, metrics={"a": 1.0}, seed=0, publish=True)
    html = report.provenance({"chap/r_seed0": results.load("chap/r_seed0")})._repr_html_()
    assert html.startswith('<details class="gridlib-provenance">') and "(1 result)" in html
    assert "<code>chap/r_seed0</code>" in html and "`" not in html


def test_findings_need_content():
    assert report.findings(["one", "two"]).data == "- one\n- two"
    with pytest.raises(ValueError):
        report.findings([])
