"""The chapters' tables, summaries and provenance blocks."""

import numpy as np
import pytest

from gridlib import report, results


def test_mean_sd_and_formats():
    assert report.mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert report.mean_sd([4.0]) == (4.0, 0.0)
    assert report.format_mean_sd([0.9, 0.92], percent=True) == "91.00\u00a0±\u00a01.41\u00a0% (n=2)"
    text = report.versus([0.915, 0.905], 0.917, published_sd=0.008)
    assert text == "91.00\u00a0±\u00a00.71\u00a0% (n=2) against 91.70\u00a0±\u00a00.80\u00a0% published: −0.70 points"


@pytest.mark.parametrize(("values", "kw", "text"), [
    ([0.9747, 0.9750, 0.9744], {"percent": True}, "97.47\u00a0±\u00a00.03\u00a0%"),  # two decimals in %
    ([0.97472, 0.97468, 0.97476], {"percent": True}, "97.472\u00a0±\u00a00.004\u00a0%"),  # a spread never 0.00
    ([0.9, 0.92], {"percent": True, "digits": 1}, "91.00\u00a0±\u00a01.41\u00a0%"),  # % ignores digits
    ([0.3056], {"percent": True}, "30.56\u00a0%"),  # one value: no spread to show
    ([1.5, 1.5], {"digits": 1}, "1.5\u00a0±\u00a00.0"),  # a spread of exactly zero stays 0
    ([3.62, 3.95, 4.1], {"digits": 2}, "3.89\u00a0±\u00a00.25"),
])
def test_one_rounding_rule(values, kw, text):
    assert report.format_mean_sd(values, n=False, **kw) == text
    with pytest.raises(ValueError):
        report.mean_sd([])


def test_tables():
    table = report.markdown_table([{"a": 1, "b": 0.123456, "c": "x|y"}], floatfmt=".2f")
    assert table.splitlines() == ["| a | b | c |", "|---|---|---|", "| 1 | 0.12 | x\\|y |"]
    with pytest.raises(ValueError):
        report.markdown_table([])


@pytest.mark.parametrize(("key", "percent", "words"), [
    ("train/acc", False, "training accuracy"),
    ("test_acc", True, "test accuracy (%)"),
    ("val/loss", True, "validation loss"),  # a loss is no percentage
    ("test/err", True, "test error (%)"),
    ("best/test/acc", False, "test accuracy at the best epoch (validation)"),
    ("epoch_time_s", False, "training time per epoch (s)"),
])
def test_metric_keys_are_shown_in_words(key, percent, words):
    assert report.label(key, percent) == words
    with pytest.raises(KeyError, match="no words"):
        report.label("grad_norm")


def test_metric_rows_put_keys_in_words_and_accuracies_in_percent():
    rows = report.metric_rows({"epoch": 1, "epoch_time_s": 3.217, "train/acc": 0.1234,
                               "test/loss": -2.302585}, "after one epoch")
    assert rows == [{"metric": "epoch", "after one epoch": "1"},
                    {"metric": "training time per epoch (s)", "after one epoch": "3.22"},
                    {"metric": "training accuracy", "after one epoch": "12.34 %"},
                    {"metric": "test loss", "after one epoch": "−2.303"}]


def test_provenance_block_is_collapsed_and_escaped(tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    results.save("chap/r_seed0", config={}, metrics={"a": 1.0}, seed=0, publish=True)
    html = report.provenance({"chap/r_seed0": results.load("chap/r_seed0")})._repr_html_()
    assert html.startswith('<details class="gridlib-provenance">') and "(1 result)" in html
    assert "<code>chap/r_seed0</code>" in html and "`" not in html


def test_a_folded_provenance_block_says_which_results_were_remade_and_how_far_they_moved():
    def record(acc, old=None):
        rec = {"provenance": {"command": "x"}, "metrics": {"test/acc": acc, "epoch_time_s": 9.0}}
        return rec if old is None else {**rec, "remade": {"metrics": {"test/acc": old, "epoch_time_s": 1.0}}}

    assert report.provenance_count({"a": record(0.5), "b": record(0.6)}) == "2 results"
    assert report.provenance_count({"a": record(0.5, 0.5)}) == ("1 result, remade from committed "
                                                                "code: no test accuracy moved")
    text = report.provenance_count({"a": record(0.5, 0.48), "b": record(0.6), "c": record(0.7, 0.71)})
    assert text == "3 results, 2 remade from committed code: test accuracy moved by up to 2.00 points"
    # the ensemble's mean counts, its spread does not; timings never do
    ens = {"metrics": {"test_acc_mean": 0.91, "test_acc_std": 0.01},
           "remade": {"metrics": {"test_acc_mean": 0.90, "test_acc_std": 0.05}}}
    assert results.remake_move(ens) == pytest.approx(0.01) and results.remake_move(record(0.5)) is None
    assert "all remade" in report.provenance_count({"a": ens, "b": ens})


def test_findings_need_content():
    assert report.findings(["one", "two"]).data == "- one\n- two"
    with pytest.raises(ValueError):
        report.findings([])


def test_one_spread_rule_a_t_interval_over_the_seeds():
    from gridlib import report

    assert report.t95(2) == 4.303 and report.t95(100) == 1.96
    # n = 3, sd = 1: the mean's half-width is 4.303 / sqrt(3) = 2.48
    assert report.beyond_spread([2.0, 3.0, 4.0]) is True  # mean 3 > 2.48
    assert report.beyond_spread([1.5, 2.5, 3.5]) is True  # 2.5 > 2.484, just
    assert report.beyond_spread([1.4, 2.4, 3.4]) is False  # 2.4 < 2.484
    # a single published run against three seeds: half-width 4.303 * sqrt(4/3) = 4.97
    assert report.beyond_spread([10.0, 11.0, 12.0], 6.0, single=True) is True
    assert report.beyond_spread([10.0, 11.0, 12.0], 7.0, single=True) is False
    assert report.spread_words([5.0]) == "within the seeds' spread"
    # unpaired: |10 - 5| = 5 against 4.303 * sqrt(1/3 + 1/3) = 3.51 (sd 1 each)
    assert report.groups_differ([9.0, 10.0, 11.0], [4.0, 5.0, 6.0]) is True
    assert report.groups_differ([9.0, 10.0, 11.0], [6.0, 7.0, 8.0]) is False


def test_math_rows_puts_a_list_of_terms_one_per_line():
    import sympy as sp

    a, b = sp.symbols("a b")
    tex = report.math_rows([(r"\eta", [a, -b, r"\frac{1}{2}"]), ("y", a + b)]).data
    assert tex == (r"\begin{aligned}\eta &= a \\ &\phantom{=} - b \\ &\phantom{=} + \frac{1}{2} \\ "
                   r"y &= a + b\end{aligned}")


def test_a_speed_sentence_names_the_machine_from_the_records_provenance():
    assert report.machine({"provenance": {"cpu": "AMD EPYC", "cpu_count": 2}}) == "a 2-core AMD EPYC"
    assert report.machine({"provenance": {}}) == "one CPU"


def test_one_run_against_the_seeds_says_its_side_and_whether_beyond_their_spread():
    seeds = [0.4232, 0.4424, 0.4238]
    assert report.seeds_range_words(seeds, 0.43) == "inside our seeds' range"
    assert report.seeds_range_words(seeds, 0.4588) == "above all our seeds but within their spread"
    assert report.seeds_range_words(seeds, 0.60) == "above all our seeds, beyond their spread"
    assert report.seeds_range_words(seeds, 0.30).startswith("below all our seeds")


def test_every_plus_minus_of_the_library_goes_through_one_formatter():
    """A "±" written by hand skips the rule that a spread rounding to zero gets more decimals;
    only ``report.plus_minus`` may put a value after one (words such as "mean ± sd" may)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    by_hand = re.compile(r"±\s*\{")  # a "±" followed by an f-string's replacement field
    found = [f"{p.relative_to(root)}:{n}: {line.strip()}"
             for p in [*root.glob("gridlib/**/*.py"), *root.glob("notebooks/*.md")]
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if by_hand.search(line) and "{sd:{sep}" not in line]  # plus_minus's own line
    assert not found, "a ± formatted by hand:\n" + "\n".join(found)


@pytest.mark.parametrize(("args", "text"), [
    ((3.6214, 0.1101), "3.62\u00a0±\u00a00.11"), ((17.94, 0.004), "17.940\u00a0±\u00a00.004"),
    ((-0.5, 0.25, 1, " %"), "−0.5\u00a0±\u00a00.2\u00a0%"), ((2513.6, 300.0, 0, "", True), "2,514\u00a0±\u00a0300"),
    ((1.0, None), "1.00"), ((1.0, 0.0), "1.00\u00a0±\u00a00.00")])
def test_plus_minus_shows_a_spread_that_is_not_zero(args, text):
    assert report.plus_minus(*args) == text


def test_a_table_writes_large_integers_with_thousands_separators():
    text = report.markdown_table([{"parameters": 14956, "seed": 3, "steps": -60000, "flag": True,
                                  "n": np.int64(1060874)}])
    assert text.endswith("| 14,956 | 3 | −60,000 | True | 1,060,874 |"), text


def test_a_configuration_table_gives_each_setting_its_meaning_from_the_docstring():
    from typing import NamedTuple

    class Config(NamedTuple):
        """Settings.

        Attributes:
            lr: step size of ``sgd``; see :func:`gridlib.report.table`.
            sign: ``"batch"`` one sign per minibatch,
                ``"fixed"`` always plus.
        """

        lr: float = 0.1
        sign: str = "batch"
        other: int = 3

    rows = report.config_rows(Config())
    assert rows[0] == {"setting": "`lr`", "value": 0.1,
                       "meaning": "step size of `sgd`; see {py:func}`gridlib.report.table`."}
    assert rows[1]["meaning"] == '`"batch"` one sign per minibatch, `"fixed"` always plus.'
    assert rows[2]["meaning"] == ""  # undocumented: an empty cell, not an error


def test_a_list_in_a_sentence():
    assert report.listing(["SnAP-0", "SnAP-1", "SnAP-2"]) == "SnAP-0, SnAP-1 and SnAP-2"
    assert report.listing(["a", "b"]) == "a and b" and report.listing(["a"]) == "a"
    assert report.listing([]) == ""
    assert report.listing(["x leads, by far", "y trails"], ", and ") == "x leads, by far, and y trails"
