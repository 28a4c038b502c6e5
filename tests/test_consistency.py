"""One number per result: every page that shows a published quantity shows the same text.

A headline number is shown through :func:`gridlib.report.format_mean_sd` with a ``key`` (or
:func:`gridlib.report.quantity`), which wraps it as ``<span class="gq" data-q="KEY">TEXT</span>``
in the page's Markdown and so in its HTML. These tests

- plant an inconsistency and check that both checks catch it: the in-process registry
  (:data:`gridlib.report.SHOWN`, which makes a notebook fail when one kernel shows a key twice
  with two texts) and :func:`gridlib.report.inconsistencies` over several pages;
- run the functions that the landing page, chapters 60, 61 and the results index call, on the
  published results (``results/`` holds full-scale files at either scale), and check that every
  key shows one text across all of them;
- with ``GRIDLIB_BUILT_HTML`` set to a built book's ``_build/html``, read every page and check
  the same across the whole book (``make test`` builds the book after the unit tests; point the
  variable at that build to run it there).
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gridlib import compare, index, report


def _pages() -> dict[str, str]:
    """What the pages that key their numbers show, computed as they compute it."""
    from gridlib.filtergrid import comparison, summary

    measured = compare.measure_all()
    entries, checks = index.catalogue(), index.rechecks()
    pages = {
        "landing: establishes": "\n".join(index.establishes()),
        "landing: at a glance": report.markdown_table(index.headline_rows()),
        "61: task tables": "\n".join(report.markdown_table(t.rows) for t in compare.task_tables(measured)),
        "61: findings": "\n".join(compare.findings(measured)),
        "90: results index": "\n".join(
            report.markdown_table(rows) for section in index.SECTIONS
            for _, rows, _ in index.chapter_views(entries, section.key, checks)),
    }
    for name, runs in (("60: original budget", summary.RULE_RUNS),
                       ("60: batch-1 budget", comparison.ONLINE_RUNS)):
        groups, _ = summary.load_mnist_runs(seeds=(0, 1, 2), runs=runs)
        rows = comparison.accuracy_rows(groups, runs, reference=next(iter(runs)))
        pages[name] = report.markdown_table(rows) if rows else ""
    return pages


def test_the_registry_refuses_a_second_text_for_a_key():
    assert report.quantity("t/x", "97.47 ± 0.03 %") == '<span class="gq" data-q="t/x">97.47 ± 0.03 %</span>'
    report.quantity("t/x", "97.47\u00a0±\u00a00.03\u00a0%")  # the same text, other spaces
    with pytest.raises(report.InconsistentQuantity, match="t/x"):
        report.quantity("t/x", "97.5 ± 0.0 %")
    with pytest.raises(ValueError):
        report.quantity('bad"key', "1")


def test_a_planted_inconsistency_between_two_pages_is_found():
    text = report.format_mean_sd([3.62, 3.95, 4.28], 2, n=False, key="ng/epoch_s")
    page_a = f"| epoch time | {text} |"
    page_b = 'NeuralGrid takes <span class="gq" data-q="ng/epoch_s">3.62</span> s per epoch.'
    found = report.inconsistencies({"table": page_a, "text": page_b})
    assert found == {"ng/epoch_s": {"3.95 ± 0.33": ["table"], "3.62": ["text"]}}
    assert report.inconsistencies({"table": page_a, "again": page_a}) == {}


@pytest.fixture(scope="module")
def pages():
    return _pages()


def test_every_keyed_quantity_shows_one_text_on_every_page(pages):
    assert report.inconsistencies(pages) == {}
    shown = {k for page in pages.values() for k, _ in report.quantities(page)}
    # not vacuous: the headlines are keyed, and shown on several pages
    assert {index.accuracy_key(h.pattern) for h in index.HEADLINES} <= shown
    on = {name for name, page in pages.items()
          if any(k == "ep/mnist_784-500-10_ep/test_acc" for k, _ in report.quantities(page))}
    assert len(on) >= 3, on


def test_a_planted_inconsistency_in_real_pages_is_found(pages):
    key = index.accuracy_key(index.HEADLINES[2].pattern)
    [text] = {t for k, t in report.quantities(pages["landing: at a glance"]) if k == key}
    planted = dict(pages, **{"planted": f'<span class="gq" data-q="{key}">{text[:-3]}9 %</span>'})
    found = report.inconsistencies(planted)
    assert set(found) == {key} and found[key][text[:-3] + "9 %"] == ["planted"]


def _built_pages() -> dict[str, str]:
    root = Path(os.environ.get("GRIDLIB_BUILT_HTML", ""))
    if not os.environ.get("GRIDLIB_BUILT_HTML") or not root.is_dir():
        pytest.skip("set GRIDLIB_BUILT_HTML to a built book's _build/html to check its pages")
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in root.rglob("*.html")
            if "_static" not in p.parts}


def test_every_page_of_the_built_book_shows_one_text_per_quantity():
    built = _built_pages()
    found = report.inconsistencies(built)
    assert not found, "\n".join(f"{k}: " + "; ".join(f"{t!r} on {', '.join(p)}" for t, p in v.items())
                                for k, v in found.items())
    assert any(report.quantities(page) for page in built.values()), "no keyed quantity on any page"


#: A Python object's default repr, as a built page would show it (HTML-escaped).
_OBJECT_REPR = re.compile(r"&lt;[A-Za-z_][\w.]* object( at 0x[0-9a-f]+)?&gt;")


def test_no_page_of_the_built_book_shows_a_python_object_repr():
    """A cell whose last value has no rich display (an empty ``Markdown("")``, a figure object
    returned instead of shown) prints ``<IPython.core.display.Markdown object>`` on the page."""
    assert _OBJECT_REPR.search("<pre>&lt;IPython.core.display.Markdown object&gt;</pre>")
    found = {name: m.group(0) for name, page in _built_pages().items()
             if name.endswith(".html") and (m := _OBJECT_REPR.search(page))}  # fmt: skip
    assert not found, found


#: Elements whose text is code, a signature or TeX, where an ASCII hyphen is the right character.
_CODE_LIKE = {"code", "pre", "kbd", "samp", "script", "style", "dt"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


def _skips_text(tag: str, attrs) -> bool:
    """Does this element start a region whose text is not prose: code, a signature, math?"""
    classes = (dict(attrs).get("class") or "").split()
    return tag in _CODE_LIKE or "math" in classes or tag.startswith("mjx")


class _ProseText(HTMLParser):
    """The text of a page outside code, signatures and math (``.math`` elements, MathJax's)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []  # per open element: does it start a skipped region
        self.skipping = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            return
        skip = _skips_text(tag, attrs)
        self.stack.append(skip)
        self.skipping += skip

    def handle_endtag(self, tag):
        if tag not in _VOID and self.stack:
            self.skipping -= self.stack.pop()

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def ascii_minus_signs(page: str) -> list[str]:
    """Each place where a page's prose or table signs a number with an ASCII hyphen-minus
    (``-0.17``) instead of a true minus sign (``−0.17``, :func:`gridlib.report.minus`)."""
    parser = _ProseText()
    parser.feed(page)
    text = " ".join(parser.parts)
    return [text[max(0, m.start() - 30): m.end() + 10].replace("\n", " ")
            for m in re.finditer(r"(?<![\w.\-–])-\.?\d", text)]


def test_a_hyphen_for_a_minus_sign_is_found_outside_code_and_math_only():
    page = ("<p>gap -0.4 points, <code>--seed -1</code>, 784-500-10, SnAP-1, 1e-3,"
            "<span class='math'>\\(x = -1\\)</span><br>(−2)</p><table><td>-3</td></table>")
    hits = ascii_minus_signs(page)
    assert len(hits) == 2 and "gap -0.4" in hits[0] and hits[1].endswith("-3"), hits
    assert report.minus("gap -0.4, (-3), [-.5, 2] 784-500-10 SnAP-1 1e-3 --n -2") == \
        "gap −0.4, (−3), [−.5, 2] 784-500-10 SnAP-1 1e-3 --n −2"
    assert report.markdown_table([{"d": -0.5, "t": "-1.2 ± 0.3"}]).endswith("| −0.5 | −1.2 ± 0.3 |")


def test_no_page_of_the_built_book_signs_a_number_with_a_hyphen():
    """Chapters format signed numbers with :func:`gridlib.report.signed`; tables and findings
    pass through :func:`gridlib.report.minus`. A page that prints ``f"{x:+.1f}"`` elsewhere
    shows a hyphen beside the true minus signs of its tables."""
    found = {name: hits[:3] for name, page in _built_pages().items()
             if (hits := ascii_minus_signs(page))}  # fmt: skip
    assert not found, found


def percent_breaks(page: str) -> list[str]:
    """Each place where a page's prose or table puts an ordinary space between a number and its
    ``%``: a line may end with ``36.07`` and the next start with ``%``."""
    parser = _ProseText()
    parser.feed(page)
    return [part[max(0, m.start() - 30): m.end() + 5].replace("\n", " ")
            for part in parser.parts for m in re.finditer(r"\d %", part)]


def test_the_books_sphinx_extension_keeps_a_number_and_its_percent_sign_together():
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("gridlib_book", root / "_ext" / "gridlib_book.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    assert ext.keep_percent_with_number("36.07 % and 2 %, 3%, a % b, 4  %") == \
        "36.07\u00a0% and 2\u00a0%, 3%, a % b, 4  %"
    page = "<p>up to 39 % held out</p><code>x = 5 % 3</code><p>39\u00a0% kept</p>"
    assert percent_breaks(page) == ["up to 39 % held"]


def test_no_page_of_the_built_book_breaks_a_number_from_its_percent_sign():
    """The book's Sphinx extension (``_ext/gridlib_book.py``) joins them in prose, findings and
    tables; raw HTML outputs spell the no-break space themselves."""
    found = {name: hits[:3] for name, page in _built_pages().items() if (hits := percent_breaks(page))}
    assert not found, found


#: What a table's header or first column must not show outside code: a metric key of the library
#: (``train/acc``, ``test_acc``, ``epoch_time_s``) or a run's name (``filtergrid/tuned/snap1_adam_b32``,
#: ``..._seed0``). Words come from :func:`gridlib.report.label` and the systems' summary modules.
_RAW_NAME = re.compile(r"\w+/\w+_\w+|\b(?:train|test|val)/(?:acc|loss)\b|_(?:s|acc|loss)\b|_seed\d")


class _TableLabels(HTMLParser):
    """The text of every header cell and first-column cell of a page's tables, outside code and
    math (Sphinx's own index tables, ``.indextable``, which list API names, are left out)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # per open element: its tag, does it skip text
        self.skipping = 0
        self.columns: list[int] = []  # per open table: cells seen in its current row
        self.index: list[bool] = []  # per open table: is it one of Sphinx's index tables
        self.cell: list[str] | None = None
        self.cells: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            return
        skip = _skips_text(tag, attrs)
        self.stack.append((tag, skip))
        self.skipping += skip
        if tag == "table":
            self.columns.append(0)
            self.index.append("indextable" in (dict(attrs).get("class") or "").split())
        elif tag == "tr" and self.columns:
            self.columns[-1] = 0
        elif tag in ("th", "td") and self.columns:
            self.columns[-1] += 1
            if not any(self.index) and (tag == "th" or self.columns[-1] == 1):
                self.cell = []

    def handle_endtag(self, tag):
        if tag in _VOID or not self.stack:
            return
        open_tag, skip = self.stack.pop()
        self.skipping -= skip
        if open_tag in ("th", "td") and self.cell is not None:
            self.cells.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif open_tag == "table" and self.columns:
            self.columns.pop()
            self.index.pop()

    def handle_data(self, data):
        if self.cell is not None and not self.skipping:
            self.cell.append(data)


def raw_table_labels(page: str) -> list[str]:
    """Each header cell or first-column cell of a page's tables whose text (outside code and
    math) shows a metric key or a run's name instead of words."""
    parser = _TableLabels()
    parser.feed(page)
    return [cell for cell in parser.cells if _RAW_NAME.search(cell)]


def test_a_raw_key_or_run_name_labelling_a_table_is_found_outside_code_only():
    page = ("<table><thead><tr><th>metric</th><th>test_acc</th></tr></thead><tbody>"
            "<tr><td>train/acc</td><td>0.1</td></tr>"
            "<tr><td><a href='x.html'>tuned/snap1_adam_b32_max40p5</a></td><td>epoch_time_s</td></tr>"
            "<tr><td>run_seed0</td><td>2</td></tr>"
            "<tr><td><code>filtergrid/snap1_adam_b32</code></td><td>3</td></tr>"
            "<tr><td>training accuracy</td><td>train/acc</td></tr></tbody></table>"
            "<p>test/acc in prose</p>"
            "<table class='indextable genindextable'><tr><td>val_acc (attribute)</td></tr></table>")
    assert raw_table_labels(page) == ["test_acc", "train/acc", "tuned/snap1_adam_b32_max40p5", "run_seed0"]
    words = ("<table><tr><th>metric</th><th>after one epoch</th></tr>"
             "<tr><td>training time per epoch (s)</td><td>3.2</td></tr>"
             "<tr><td>∂L/∂w_L of cell (0, 0)</td><td>1</td></tr>"
             "<tr><td>SnAP-1, Adam, batch 32, 10 epochs</td><td>43 %</td></tr></table>")
    assert raw_table_labels(words) == []
    # the library's words for its keys pass the check
    rows = report.metric_rows({"epoch": 1, "epoch_time_s": 3.2, "train/acc": 0.5, "test/loss": 2.0})
    assert not _RAW_NAME.search(report.markdown_table(rows))


def test_no_table_of_the_built_book_labels_a_row_or_column_with_a_raw_key():
    """Tables say what a column or a row is in words: a cell that shows ``epoch_time_s``,
    ``train/acc`` or a run's name (``filtergrid/tuned/snap1_adam_b32_...``) as a header or a row's
    label shows the library's internals instead (:func:`gridlib.report.label`,
    :func:`gridlib.compare.result_words`)."""
    found = {name: hits[:3] for name, page in _built_pages().items()
             if (hits := raw_table_labels(page))}  # fmt: skip
    assert not found, found
