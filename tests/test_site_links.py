"""The launch/download links of the built pages (tests/browser/check_links.py, _ext/gridlib_book.py).

The checker runs on hand-written pages here (one right, one wrong in every way it knows); on the
real CI-scale build it runs as ``make links-check``. Also: the Colab link the extension writes is
the one the checker expects, it points at the branch the publish workflow deploys to, and the
duplicate MathJax entry is dropped.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check_links = _load("check_links", ROOT / "tests" / "browser" / "check_links.py")
gridlib_book = _load("gridlib_book", ROOT / "_ext" / "gridlib_book.py")

CONFIG = """
repository: {url: https://github.com/someone/somebook, branch: trunk}
launch_buttons:
  notebook_interface: classic
  binderhub_url: https://mybinder.org/
  colab_url: https://colab.research.google.com
sphinx:
  config: {mathjax_path: mathjax/tex-svg.js}
"""
CHAPTER = """---
kernelspec: {display_name: Python 3, language: python, name: python3}
---
# A chapter
"""
PAGE = """<html><head>{head}</head><body>
<div class="dropdown dropdown-launch-buttons"><ul>
{launch}
</ul></div>
<div class="dropdown dropdown-download-buttons"><ul>
{download}
<li><a href="../_sources/notebooks/ch.md"><span>.md</span></a></li>
</ul></div>
<span class="math">\\(x\\)</span>
</body></html>
"""
GOOD = PAGE.format(
    head='<script>window.MathJax = {}</script><script defer src="../_static/mathjax/tex-svg.js?v=1"></script>',
    launch=('<li><a href="https://mybinder.org/v2/gh/someone/somebook/trunk?urlpath=tree/notebooks/ch.md">'
            '<span>Binder</span></a></li>'
            '<li><a href="https://colab.research.google.com/github/someone/somebook/blob/gh-pages/notebooks/ch.ipynb">'
            '<span>Colab</span></a></li>'),
    download='<li><a href="ch.ipynb"><span>.ipynb</span></a></li>',
)
BAD = PAGE.format(
    head=('<script defer src="../_static/mathjax/tex-svg.js?v=1"></script>'
          '<script src="../_static/mathjax/tex-svg.js?v=1"></script>'),
    launch=('<li><a href="https://mybinder.org/v2/gh/someone/somebook/master?urlpath=tree/notebooks/ch.md">'
            '<span>Binder</span></a></li>'
            '<li><a href="https://colab.research.google.com/github/someone/somebook/blob/trunk/notebooks/ch.md">'
            '<span>Colab</span></a></li>'),
    download='<li><a href="../_sources/notebooks/ch.ipynb"><span>.ipynb</span></a></li>',
)
NOTEBOOK = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [], "source": "1"}]}


@pytest.fixture
def book(tmp_path):
    root, html = tmp_path / "src", tmp_path / "html"
    (root / "notebooks").mkdir(parents=True)
    (html / "notebooks").mkdir(parents=True)
    (root / "_config.yml").write_text(CONFIG)
    (root / "notebooks" / "ch.md").write_text(CHAPTER)
    (root / "notebooks" / "prose.md").write_text("# Prose\n")
    (html / "notebooks" / "prose.html").write_text("<html><head></head><body><p>text</p></body></html>")
    return root, html


def test_right_links_pass(book, capsys):
    root, html = book
    (html / "notebooks" / "ch.html").write_text(GOOD)
    (html / "notebooks" / "ch.ipynb").write_text(json.dumps(NOTEBOOK))
    assert check_links.main([str(html), "--root", str(root)]) == 0
    assert "2 pages, 1 chapters" in capsys.readouterr().out


def test_wrong_links_fail(book, capsys):
    root, html = book
    (html / "notebooks" / "ch.html").write_text(BAD)
    assert check_links.main([str(html), "--root", str(root)]) == 1
    out = capsys.readouterr().out
    for expected in ("notebooks/ch: mathjax: mathjax/tex-svg.js is loaded 2 times",
                     "notebooks/ch: binder: 'https://mybinder.org/v2/gh/someone/somebook/master?",
                     "expected 'https://mybinder.org/v2/gh/someone/somebook/trunk?urlpath=tree/notebooks/ch.md'",
                     "notebooks/ch: colab: ",
                     "expected 'https://colab.research.google.com/github/someone/somebook/blob/gh-pages/notebooks/ch.ipynb'",
                     "notebooks/ch: ipynb: the download links to '../_sources/notebooks/ch.ipynb'"):
        assert expected in out, out
    assert "prose" not in out


def test_unexecuted_or_missing_notebook_fails(book, capsys):
    root, html = book
    (html / "notebooks" / "ch.html").write_text(GOOD)
    assert check_links.main([str(html), "--root", str(root)]) == 1
    assert "ipynb: notebooks/ch.ipynb is not in the built site" in capsys.readouterr().out
    unexecuted = dict(NOTEBOOK, cells=[dict(NOTEBOOK["cells"][0], execution_count=None)])
    (html / "notebooks" / "ch.ipynb").write_text(json.dumps(unexecuted))
    assert check_links.main([str(html), "--root", str(root)]) == 1
    assert "was not executed" in capsys.readouterr().out


def test_no_chapter_pages_fails(book, capsys):
    root, html = book
    assert check_links.main([str(html), "--root", str(root)]) == 1
    assert "no chapter page" in capsys.readouterr().out


def test_extension_colab_link_is_the_expected_one():
    """For the book's own _config.yml: the extension's Colab URL is the checker's."""
    setting = check_links.Setting.from_config(ROOT / "_config.yml")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    page = "notebooks/01-data-pipeline"
    url = gridlib_book.colab_url(config["launch_buttons"]["colab_url"], config["repository"]["url"],
                                 gridlib_book.PAGES_BRANCH, page)
    assert url == setting.colab(page)
    assert url.startswith("https://colab.research.google.com/github/")
    assert url.endswith(f"/blob/{gridlib_book.PAGES_BRANCH}/{page}.ipynb")
    assert setting.binder(f"{page}.md").startswith(
        f"{setting.binderhub_url}/v2/gh/{setting.org}/{setting.repo}/{setting.branch}?urlpath=")


def test_workflow_publishes_where_colab_looks():
    """.github/workflows/book.yml deploys _build/html to the branch the Colab links name."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    deploy = [s for s in steps if "actions-gh-pages" in s.get("uses", "")]
    assert len(deploy) == 1
    assert deploy[0]["with"]["publish_branch"] == gridlib_book.PAGES_BRANCH
    assert deploy[0]["with"]["publish_dir"].strip("./") == "_build/html"
    runs = " ".join(s.get("run", "") for s in steps)
    assert ".ci/run" in runs and "make book" in runs


def test_static_mathjax_entry_is_dropped():
    config = SimpleNamespace(mathjax_path="mathjax/tex-svg.js",
                             html_js_files=[("mathjax/tex-svg.js", {}), ("other.js", {"defer": "defer"})])
    gridlib_book._drop_static_mathjax(None, config)
    assert config.html_js_files == [("other.js", {"defer": "defer"})]


def test_each_inline_script_is_on_a_page_once():
    """THEBE_JS_URL was declared twice on every page: Sphinx 7.4 lists an inline script
    registered after the builder's start as ``_JavaScript(None, ...)`` and again as
    ``_JavaScript('', ...)``, which its own duplicate test takes for two scripts."""
    from sphinx.builders.html._assets import _JavaScript

    thebe = _JavaScript(None, body='const THEBE_JS_URL = "x"')
    scripts = [thebe, _JavaScript("a.js"), _JavaScript("", body='const THEBE_JS_URL = "x"'),
               _JavaScript("a.js", defer="defer"), _JavaScript("", body="var other = 1")]
    assert gridlib_book.unique_scripts(scripts) == [thebe, scripts[1], scripts[3], scripts[4]]
