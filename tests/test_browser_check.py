"""The browser check (tests/browser/check_pages.py) on two hand-written pages: one clean, one bad.

Needs a Chromium (Debian's ``chromium``; ``make browser-check`` installs it where it can); skips
without one. MathJax comes from the book's own ``_static/mathjax``.
"""

from __future__ import annotations

import importlib.util
import json
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
<style>
  body {{ margin: 0; font-family: sans-serif; }}
  article.bd-article {{ width: 500px; margin-left: 100px; padding: 0 10px; }}
  div.math {{ overflow: hidden; }}
  mjx-container[display="true"] {{ overflow-x: auto; }}
  pre {{ overflow-x: auto; }}
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
    (site / "ok.png").write_bytes(_png())
    (site / "index.html").write_text(PAGE.format(title="good", body=GOOD))
    (site / "bad.html").write_text(PAGE.format(title="bad", body=BAD))
    return site


def _check(site: Path, page: str, out: Path, chromium: str, capsys) -> tuple[int, dict, list[str]]:
    rc = check_pages.main([str(site), page, "--out", str(out), "--chromium", chromium, "--jobs", "1"])
    captured = capsys.readouterr()
    if rc == 0 and "SKIPPED" in captured.out:  # installed but cannot start here (off CI only)
        pytest.skip(captured.out.strip())
    assert rc in (0, 1), captured.out + captured.err
    return rc, json.loads((out / "report.json").read_text()), captured.out.splitlines()


def test_clean_page_passes(site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "index.html", tmp_path / "out", chromium, capsys)
    (page,) = report["pages"]
    assert page["defects"] == [], lines
    assert rc == 0
    assert page["stats"]["mathjax"] and page["stats"]["math"] == 2
    assert (tmp_path / "out" / "index.png").stat().st_size > 1000


def test_bad_page_is_caught(site, tmp_path, chromium, capsys):
    rc, report, lines = _check(site, "bad.html", tmp_path / "out", chromium, capsys)
    assert rc == 1
    assert any(line.startswith("bad.html: math-error: Extra close brace") for line in lines), lines
    details = {}
    for d in report["pages"][0]["defects"]:
        details.setdefault(d["kind"], []).append(d["detail"])
    assert {"math-error", "math-untypeset", "math-too-wide", "broken-image", "output-error",
            "raw-markdown", "output-too-wide"} <= set(details), details
    assert any("missing.png" in d for d in details["broken-image"])
    assert any("#equation-long" in d for d in details["math-too-wide"])
    assert any("$...$" in d for d in details["math-untypeset"])
    assert any("traceback" in d for d in details["output-error"])
    assert any("`code`" in d for d in details["raw-markdown"])
    assert (tmp_path / "out" / "bad.png").is_file()
