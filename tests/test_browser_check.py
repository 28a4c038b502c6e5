"""The browser check (tests/browser/check_pages.py) on hand-written pages: one clean, one bad, and
one per width rule (code input wider than its box; tables that do not scroll at a phone's width;
display math wider than a phone's column, and the same sum broken into lines).

Needs a Chromium (Debian's ``chromium``; ``make browser-check`` installs it where it can); skips
without one. MathJax comes from the book's own ``_static/mathjax``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "browser" / "check_pages.py"


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_pages", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_pages = _load_checker()


def _png(width: int = 4, height: int = 3) -> bytes:
    """A small grey PNG, written by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body {{ margin: 0; font-family: sans-serif; }}
  article.bd-article {{ width: 500px; margin-left: 100px; padding: 0 10px; }}
  @media (max-width: 600px) {{ article.bd-article {{ width: auto; margin-left: 0; }} }}
  div.math {{ overflow: hidden; }}
  mjx-container[display="true"] {{ overflow-x: auto; }}
  pre {{ overflow-x: auto; }}
  img {{ max-width: 100%; height: auto; }}  /* as the book's theme */
</style>
<script>window.MathJax = {{tex: {{macros: {{R: "\\\\mathbb{{R}}"}}}},
  options: {{processHtmlClass: "math", ignoreHtmlClass: "document"}}}};</script>
<script defer src="_static/mathjax/tex-svg.js"></script>
</head><body><main><article class="bd-article document" role="main">
<section id="s">
<h1>{title}</h1>
{body}
</section>
</article></main></body></html>
"""

GOOD = """
<div class="cell_input"><pre>short = "code that fits its box"</pre></div>
<div class="pst-scrollable-table-container"><table><tr><th>a</th><th>b</th></tr>
<tr><td>1</td><td>2</td></tr></table></div>
<p>Inline <span class="math">\\(x^2 + \\R\\)</span>, and a price of $5 or $6 is not math.</p>
<div class="math" id="equation-short">\\[a + b = c\\]</div>
<img src="ok.png" alt="a picture" width="40">
<div class="cell_output">
  <div class="output stream"><div class="highlight"><pre>loss 0.25 after 3 epochs; x**2 is fine</pre></div></div>
</div>
"""

BAD = """
<p>Broken: <span class="math">\\(m_p = [\\text{$p$ in the bottom row}}]\\)</span>.</p>
<p>Left raw: $x_1 + y$ here.</p>
<div class="math" id="equation-long">\\[{long}\\]</div>
<img src="missing.png" alt="gone">
<div class="cell_output">
  <div class="output stream"><div class="highlight"><pre>`python -m gridlib run` at commit abc
Traceback (most recent call last):
ValueError: nope</pre></div></div>
</div>
<div class="cell_output"><div class="output text_html"><div style="width: 1500px">a very wide output</div></div></div>
<figure><canvas width="20" height="20"></canvas><figcaption style="font-weight: 300">light caption</figcaption></figure>
<p style="color: #bbb">pale prose</p>
""".replace("{long}", " + ".join(f"a_{{{i}}} b_{{{i}}}" for i in range(60)))


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = check_pages.find_chromium()
    if exe is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium; `make browser-check` does it)")
    return exe


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    (site / "_static").mkdir()
    shutil.copytree(ROOT / "_static" / "mathjax", site / "_static" / "mathjax")
    for name in ("figures.js", "phone.css"):
        shutil.copy(ROOT / "_static" / name, site / "_static" / name)
    (site / "ok.png").write_bytes(_png())
    (site / "wide.png").write_bytes(_png(640, 320))
    (site / "index.html").write_text(PAGE.format(title="good", body=GOOD))
    (site / "bad.html").write_text(PAGE.format(title="bad", body=BAD))
    for name, body in WIDTH_PAGES.items():
        (site / f"{name}.html").write_text(PAGE.format(title=name, body=body))
    return site


def _check(site: Path, page: str, out: Path, chromium: str, capsys, *extra: str) -> tuple[int, dict, list[str]]:
    rc = check_pages.main([str(site), page, "--out", str(out), "--chromium", chromium, "--jobs", "1", *extra])
    captured = capsys.readouterr()
    if rc == 0 and "SKIPPED" in captured.out:  # installed but cannot start here (off CI only)
        pytest.skip(captured.out.strip())
    assert rc in (0, 1), captured.out + captured.err
    return rc, json.loads((out / "report.json").read_text()), captured.out.splitlines()


def test_clean_page_passes(site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "index.html", tmp_path / "out", chromium, capsys)
    wide, phone = report["pages"]  # the main width, then the phone's
    assert (wide["width"], phone["width"]) == (1280, 390)
    assert wide["defects"] == [] and phone["defects"] == [], lines
    assert rc == 0
    assert wide["stats"]["mathjax"] and wide["stats"]["math"] == 2
    assert wide["stats"]["column"] == 500 and phone["stats"]["column"] < 390
    assert (tmp_path / "out" / "index.png").stat().st_size > 1000
    assert (tmp_path / "out" / "index-390px.png").stat().st_size > 1000


def test_bad_page_is_caught(site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "bad.html", tmp_path / "out", chromium, capsys)
    assert rc == 1
    assert any(line.startswith("bad.html: math-error: Extra close brace") for line in lines), lines
    details = {}
    assert report["pages"][0]["width"] == 1280
    for d in report["pages"][0]["defects"]:
        details.setdefault(d["kind"], []).append(d["detail"])
    assert {"math-error", "math-untypeset", "math-too-wide", "broken-image", "output-error",
            "raw-markdown", "output-too-wide", "faint-text"} <= set(details), details
    faint = details["faint-text"]
    assert any('"light caption": font weight 300' in d for d in faint), faint
    assert any('"pale prose"' in d and "contrast 1.9:1" in d for d in faint), faint
    assert not any("code" in d or "fits its box" in d for d in faint), faint  # code is exempt
    assert any("missing.png" in d for d in details["broken-image"])
    assert any("#equation-long" in d for d in details["math-too-wide"])
    assert any("$...$" in d for d in details["math-untypeset"])
    assert any("traceback" in d for d in details["output-error"])
    assert any("`code`" in d for d in details["raw-markdown"])
    assert (tmp_path / "out" / "bad.png").is_file()


# ---- the width rules --------------------------------------------------------------------------

# 100 characters of code: wider than the 500 px column at 1280 px, and than a phone
LONG_CODE = "x = " + " + ".join(f"a{i:02d}" for i in range(19))
WIDE_TABLE = ("<table><tr>" + "".join(f"<th>column {i}</th>" for i in range(14)) + "</tr><tr>"
              + "".join(f"<td>{i}.123456</td>" for i in range(14)) + "</tr></table>")

WIDTH_PAGES = {
    # code that scrolls inside its own box: a defect at the main width only
    "code-scrolls": f'<div class="cell_input"><pre>{LONG_CODE}</pre></div>',
    # code cut off by its box: a defect at both widths
    "code-cut": f'<div class="cell_input"><pre style="overflow: hidden">{LONG_CODE}</pre></div>',
    # a table 1000+ px wide in a box that scrolls: accepted at both widths
    "table-scrolls": f'<div style="overflow-x: auto">{WIDE_TABLE}</div>',
    # a printed line wider than the column, scrolling in its own box: its end (the verdict) is
    # out of sight, a defect at the main width; on a phone, accepted
    "print-scrolls": '<div class="cell_output"><div class="output stream"><div class="highlight">'
                     f'<pre>{"a verdict at the end of a long line " * 4}within the spread</pre>'
                     '</div></div></div>',
    # a table that fits the 500 px column at 1280 px, in a box that hides what does not fit:
    # cut at 390 px, where the column is the window's width
    "table-cut": '<div style="overflow: hidden"><table style="width: 450px"><tr>'
                 + "".join(f"<th>col {i}</th>" for i in range(6)) + "</tr><tr>"
                 + "".join(f"<td>{i}.1234</td>" for i in range(6)) + "</tr></table></div>",
    # display math that fits the 500 px column at 1280 px and scrolls in its own box at 390 px,
    # far wider than the phone's column: it must be broken into lines, not scrolled
    "math-long-phone": '<div class="math" id="equation-phone">\\['
                       + " + ".join(f"a_{{{i}}} b_{{{i}}}" for i in range(8)) + '\\]</div>',
    # a few px wider than the phone's column (once only noted): a defect there as well ...
    "math-wide-phone": '<div class="math" id="equation-wide">\\['
                       + " + ".join(f"a_{{{i}}} b_{{{i}}}" for i in range(7)) + '\\]</div>',
    # ... and the same sum broken at a top-level +, aligned: fits at both widths
    "math-split-phone": '<div class="math" id="equation-split">\\[\\begin{aligned} x &amp;= '
                        + " + ".join(f"a_{{{i}}} b_{{{i}}}" for i in range(4)) + "\\\\ &amp;\\quad + "
                        + " + ".join(f"a_{{{i}}} b_{{{i}}}" for i in range(4, 7))
                        + '\\end{aligned}\\]</div>',
    # an output figure 640 px wide: 78 % of it in the 500 px column at 1280 px, but 57 % on a
    # phone, where its 9-pt labels (13.75 px at 110 dpi) would be 8 px ...
    "figure-phone": '<div class="cell_output"><img src="wide.png" alt="a figure"></div>',
    # ... and the same with the book's figures.js, which keeps it at 75 % inside its own box,
    # also where the figure comes inside an HTML output (an animation)
    "figure-phone-fitted": '<link rel="stylesheet" href="_static/phone.css">'
                           '<script src="_static/figures.js"></script>'
                           '<div class="cell_output"><img src="wide.png" alt="a figure"></div>'
                           '<div class="cell_output"><div class="output text_html">'
                           '<img src="wide.png" alt="an animation"></div></div>',
}


def _defects(report: dict) -> dict[int, dict[str, list[str]]]:
    """{width: {kind: [detail, ...]}} of a report."""
    out: dict[int, dict[str, list[str]]] = {}
    for page in report["pages"]:
        for d in page["defects"]:
            out.setdefault(page["width"], {}).setdefault(d["kind"], []).append(d["detail"])
    return out


def test_code_wider_than_its_box_fails_at_the_main_width(site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "code-scrolls.html", tmp_path / "out", chromium, capsys)
    found = _defects(report)
    assert rc == 1
    assert set(found) == {1280}, lines  # on the phone, scrolling in its own box is fine
    (detail,) = found[1280]["code-too-wide"]
    assert "scrolls sideways" in detail and f"longest line {len(LONG_CODE)} columns" in detail
    assert any(line.startswith("code-scrolls.html: code-too-wide: ") for line in lines), lines


def test_code_cut_off_fails_at_both_widths(site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "code-cut.html", tmp_path / "out", chromium, capsys)
    found = _defects(report)
    assert rc == 1
    assert all("cut off" in d for w in (1280, 390) for d in found[w]["code-too-wide"]), found
    assert any(line.startswith("code-cut.html at 390px: code-too-wide: ") for line in lines), lines


def test_a_printed_line_that_scrolls_fails_at_the_main_width_only(site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "print-scrolls.html", tmp_path / "out", chromium, capsys)
    found = _defects(report)
    assert rc == 1 and set(found) == {1280}, lines
    (detail,) = found[1280]["output-too-wide"]
    assert "text output" in detail and "scrolls inside <pre>" in detail, detail


def test_a_table_that_scrolls_in_its_own_box_passes(site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "table-scrolls.html", tmp_path / "out", chromium, capsys)
    assert rc == 0 and _defects(report) == {}, lines


@pytest.mark.parametrize(("page", "kind", "words"), [
    ("table-cut", "table-too-wide", ("cut off", "col 0 | col 1")),
    ("math-long-phone", "math-too-wide", ("scrolls sideways", "#equation-phone")),
])  # fmt: skip
def test_an_element_too_wide_for_a_phone_fails_there_only(site, tmp_path, chromium, capsys, page, kind, words):
    rc, report, lines = _check(site, f"{page}.html", tmp_path / "out", chromium, capsys)
    found = _defects(report)
    assert rc == 1
    assert set(found) == {390}, lines  # it fits the 500 px column
    (detail,) = found[390][kind]
    assert all(w in detail for w in words), detail
    assert (tmp_path / "out" / f"{page}-390px.png").is_file()


def test_display_math_wider_than_a_phone_fails_until_it_is_broken_into_lines(site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "math-wide-phone.html", tmp_path / "wide", chromium, capsys)
    found = _defects(report)
    assert rc == 1 and set(found) == {390} and set(found[390]) == {"math-too-wide"}, lines
    (detail,) = found[390]["math-too-wide"]
    assert "scrolls sideways" in detail and "#equation-wide" in detail, detail
    needed, column = (int(w) for w in re.findall(r"(\d+)px (?:wide|column)", detail))
    assert column < needed < 1.15 * column, detail  # scrolling it sideways is no longer accepted
    rc, report, lines = _check(site, "math-split-phone.html", tmp_path / "split", chromium, capsys)
    assert rc == 0 and _defects(report) == {}, lines
    assert [n for p in report["pages"] for n in p["notes"]] == [], lines


def test_narrow_pages_limits_the_phone_width_to_those_pages(site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "table-cut.html", tmp_path / "out", chromium, capsys,
                               "--narrow-pages", "index.html")
    assert rc == 0 and [p["width"] for p in report["pages"]] == [1280], lines


def test_a_name_declared_twice_or_a_script_loaded_twice_fails():
    # read from the HTML (no browser): sphinx-thebe's inline configuration reached every page
    # twice (SyntaxError: Identifier 'THEBE_JS_URL' has already been declared)
    thebe = '<script>const THEBE_JS_URL = "u"; const thebe_selector = ".cell"</script>'
    twice = f'<script src="_static/a.js?v=1"></script>{thebe}<script src="_static/a.js?v=2"></script>{thebe}'
    kinds = [(d["kind"], d["detail"].split(" declared")[0]) for d in check_pages.script_defects(twice)]
    assert kinds[0] == ("script-twice", "<script src=_static/a.js> loaded twice (scripts 1 and 3)")
    assert [k for _, k in kinds[1:]] == ["top-level 'THEBE_JS_URL'", "top-level 'thebe_selector'"]
    once = ('<script>var t = 1; function f() { const x = 1 }</script><script>var t = 2; '
            'function g() { const x = 2; let s = "{" }</script><script type="module">const m = 1</script>'
            '<script type="module">const m = 2</script><script type="text/x-thebe-config">{}</script>')
    assert check_pages.script_defects(once) == []


def test_one_wait_for_a_reply_serves_both_drivers():
    # tests/browser/replies.py: check_pages.Chromium and live_firefox.Firefox wait through it
    import threading

    r = check_pages.replies.Replies()
    sent = []

    def send(msg_id):
        sent.append(msg_id)
        threading.Timer(0.01, r.deliver, (msg_id, {"id": msg_id, "result": {"ok": 1}})).start()

    assert r.request("A.b", send, timeout=5) == {"id": 1, "result": {"ok": 1}}
    with pytest.raises(TimeoutError, match="C.d: no answer within 0 s"):
        r.request("C.d", sent.append, timeout=0.05)
    assert sent == [1, 2] and r.waiting == {}


def test_a_chromium_flag_that_names_no_browser_is_not_replaced_by_another(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMIUM", "sh")  # a browser would be found without the flag
    assert check_pages.find_chromium() is not None
    assert check_pages.find_chromium(str(tmp_path / "no-such-chromium")) is None


def test_a_figure_scaled_below_legible_on_a_phone_fails_until_figures_js_keeps_its_size(
        site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "figure-phone.html", tmp_path / "bare", chromium, capsys)
    found = _defects(report)
    assert rc == 1 and set(found) == {390} and set(found[390]) == {"small-figure"}, lines
    (detail,) = found[390]["small-figure"]
    assert "wide.png" in detail and "of its 640px" in detail, detail
    rc, report, lines = _check(site, "figure-phone-fitted.html", tmp_path / "fitted", chromium, capsys)
    assert rc == 0 and _defects(report) == {}, lines
    notes = [n for p in report["pages"] for n in p["notes"]]
    wide = [n for n in notes if n["kind"] == "wide-output" and "image output 480px wide" in n["detail"]]
    assert len(wide) == 2, notes

