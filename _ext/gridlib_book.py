"""Sphinx extension of the gridlib book (registered in _config.yml under ``sphinx.local_extensions``).

1. **An .ipynb download on every chapter page.** myst-nb writes each chapter's *executed*
   notebook to ``<build>/jupyter_execute/<page>.ipynb``; this copies it into the HTML output next
   to the page (``notebooks/01-data-pipeline.html`` gets ``notebooks/01-data-pipeline.ipynb``) and
   puts an ``.ipynb`` entry, linking to that copy, first in the page's download menu
   (sphinx-book-theme offers one only when ``ipynb_source`` is in the context, which myst-nb does
   not set for text notebooks).

2. **Colab opens the executed notebook.** Colab cannot open a MyST ``.md`` file, so its launch
   button (built by sphinx-book-theme from ``repository.url`` and ``launch_buttons.colab_url``)
   would point at ``github/<org>/<repo>/blob/<branch>/<page>.md``. It is rewritten to
   ``<colab_url>/github/<org>/<repo>/blob/<gridlib_pages_branch>/<page>.ipynb``: the copy of (1)
   as the publish workflow (.github/workflows/book.yml) deploys the built site to that branch
   (``gh-pages``, the site's root at the branch's root). Binder keeps the theme's link (the
   ``.md`` at ``repository.branch``; jupytext opens it as a notebook there).

3. **MathJax loaded once.** Jupyter Book 1 adds every ``*.js`` under the book's ``_static``
   folder to ``html_js_files``, so the bundled ``_static/mathjax/tex-svg.js`` was loaded twice:
   once plain from there (before ``window.MathJax`` holds the configuration) and once, deferred,
   from ``mathjax_path`` by ``sphinx.ext.mathjax``. The plain entry is dropped; MathJax is loaded
   by ``sphinx.ext.mathjax`` alone, after its configuration, on the pages that have math.
   The live page's ES modules (``_static/live/``) are dropped too: only that page loads them.

4. **Author-year labels in the bibliography.** The text cites author-year
   (``bibtex_reference_style: author_year``: "Scellier and Bengio, 2017"), but pybtex's default
   formatting style labels the entries alpha-style ("[SB17]"), which the reader cannot match to
   the text. The formatting style ``gridlib_authoryear`` (``bibtex_default_style`` in
   _config.yml) is pybtex's ``unsrt`` sorted by author and year, with the label style
   ``gridlib_authoryear``: the same names as the citations (one author, "A and B", "A et al."),
   a comma and the year, and "a", "b", ... after the year where two entries would share a label.

5. **Every inline script once.** sphinx-thebe (``const THEBE_JS_URL = ...``) and
   sphinx-togglebutton (``var togglebuttonSelector = ...``) register inline scripts after the
   HTML builder was initialised. Sphinx 7.4 adds such a script to the builder's list twice: at
   registration as ``_JavaScript(None, body=...)`` and again before writing as
   ``_JavaScript('', body=...)``, which its duplicate test does not take for the same script (the
   file name ``None`` differs from ``''``). Every page then declared ``const THEBE_JS_URL`` twice
   (``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared``). Each page's
   ``script_files`` keep the first of the entries with the same file (``None`` and ``''`` both
   meaning inline), priority and attributes, the body included. tests/browser/check_pages.py
   fails on a page that declares a top-level ``const``/``let`` twice or loads a script twice.

Both header-button hooks run after sphinx-book-theme's (``html-page-context`` priority 501).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pybtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting.author_year_title import SortingStyle as AuthorYearTitleSorting
from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

PAGES_BRANCH = "gh-pages"  # where .github/workflows/book.yml deploys _build/html
AFTER_THEME = 502  # sphinx-book-theme adds its header buttons at priority 501


def repo_parts(repository_url: str) -> tuple[str, str]:
    """``https://github.com/org/repo`` -> ``("org", "repo")``."""
    org, repo = repository_url.strip().rstrip("/").removesuffix(".git").split("/")[-2:]
    return org, repo


def colab_url(colab: str, repository_url: str, pages_branch: str, pagename: str) -> str:
    """The Colab link of a chapter: its executed notebook on the published branch."""
    org, repo = repo_parts(repository_url)
    return f"{colab.rstrip('/')}/github/{org}/{repo}/blob/{pages_branch}/{pagename}.ipynb"


def _drop_static_mathjax(app: Sphinx, config: Any) -> None:
    mathjax = config.mathjax_path

    def filename(entry: Any) -> str:
        return entry[0] if isinstance(entry, tuple | list) else entry

    # the live page's ES modules (_static/live, gridlib.web) are loaded by that page alone
    config.html_js_files = [e for e in config.html_js_files
                            if filename(e) != mathjax and not filename(e).startswith("live/")]


def script_key(script: Any) -> tuple:
    """What makes two entries of a page's ``script_files`` the same script: the file (``""`` for
    an inline one, whether registered as ``None`` or ``""``), the priority and every attribute,
    an inline script's ``body`` included."""
    attrs = getattr(script, "attributes", {}) or {}
    return (getattr(script, "filename", script) or "", getattr(script, "priority", None),
            tuple(sorted((k, str(v)) for k, v in attrs.items())))


def unique_scripts(scripts: list) -> list:
    """``scripts`` without repeats (:func:`script_key`), in their order, the first kept."""
    seen: set[tuple] = set()
    out = []
    for script in scripts:
        key = script_key(script)
        if key not in seen:
            seen.add(key)
            out.append(script)
    return out


def _unique_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if context.get("script_files"):
        context["script_files"] = unique_scripts(list(context["script_files"]))


def _executed_notebook(app: Sphinx, pagename: str) -> Path | None:
    if "kernelspec" not in app.env.metadata.get(pagename, {}):
        return None
    nb_config = getattr(app.env, "mystnb_config", None)
    folder = Path(nb_config.output_folder) if nb_config else Path(app.outdir).parent / "jupyter_execute"
    path = folder / f"{pagename}.ipynb"
    if not path.is_file():
        LOGGER.warning("no executed notebook for %s at %s: no .ipynb download", pagename, path,
                       type="gridlib", subtype="ipynb")
        return None
    return path


def _notebook_buttons(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if app.builder.format != "html" or doctree is None:
        return
    executed = _executed_notebook(app, pagename)
    if executed is None:
        return
    target = Path(app.outdir) / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(executed, target)
    href = context["pathto"](f"{pagename}.ipynb", 1)

    theme = app.config.html_theme_options
    launch = theme.get("launch_buttons", {})
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            buttons = group["buttons"]
            # the theme's own entry (present when launch buttons are on) points into _sources/
            buttons[:] = [b for b in buttons if b.get("label") != "download-notebook-button"]
            buttons.insert(0, {
                "type": "link",
                "url": href,
                "text": ".ipynb",
                "icon": "fas fa-code",
                "tooltip": "Download notebook file (executed)",
                "label": "download-notebook-button",
            })
        elif group.get("label") == "launch-buttons" and launch.get("colab_url"):
            for button in group["buttons"]:
                if button.get("text") == "Colab":
                    button["url"] = colab_url(launch["colab_url"], theme["repository_url"],
                                              app.config.gridlib_pages_branch, pagename)


def _last_name(person: Any) -> str:
    """A person's last name as plain text (``{\\'e}`` and braces resolved): "LeCun"."""
    return " ".join(str(Text.from_latex(part)) for part in person.last_names) or str(person)


def author_year_label(entry: Any) -> str:
    """The label of a bibliography entry as the text cites it: "Fischer, 2021",
    "Scellier and Bengio, 2017", "Menick et al., 2021" (editors where no author; the key
    where neither)."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_name(p) for p in persons]
    if not names:
        who = entry.key
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    year = entry.fields.get("year", "")
    return f"{who}, {year}" if year else who


class AuthorYearLabelStyle(BaseLabelStyle):
    """pybtex label style: :func:`author_year_label`, with "a", "b", ... appended to the year
    of entries whose labels would otherwise be the same."""

    def format_labels(self, sorted_entries: Any) -> Any:
        labels = [author_year_label(entry) for entry in sorted_entries]
        total = {label: labels.count(label) for label in labels}
        seen: dict[str, int] = {}
        for label in labels:
            if total[label] == 1:
                yield label
            else:
                seen[label] = seen.get(label, 0) + 1
                yield label + chr(ord("a") + seen[label] - 1)


class AuthorYearStyle(UnsrtStyle):
    """pybtex formatting style: ``unsrt`` entries, sorted by author, year and title, labelled
    by :class:`AuthorYearLabelStyle`."""

    default_label_style = "gridlib_authoryear"
    default_sorting_style = "gridlib_author_year_title"


pybtex.plugin.register_plugin("pybtex.style.labels", "gridlib_authoryear", AuthorYearLabelStyle)
pybtex.plugin.register_plugin("pybtex.style.sorting", "gridlib_author_year_title",
                              AuthorYearTitleSorting)
pybtex.plugin.register_plugin("pybtex.style.formatting", "gridlib_authoryear", AuthorYearStyle)


#: A number and its per-cent sign, across the ordinary space between them.
_NUMBER_PERCENT = re.compile(r"(?<=\d) (?=%)")


def keep_percent_with_number(text: str) -> str:
    """``text`` with the space between a number and its ``%`` made non-breaking, so that a
    line never ends with the number and starts with the sign."""
    return _NUMBER_PERCENT.sub("\u00a0", text)


def _percent_signs(app: Sphinx, doctree: Any, docname: str) -> None:
    """Every text of the page outside code, math and raw HTML: ``36.07 %`` keeps its two parts
    on one line (prose, findings and tables alike; the chapters need not spell the space)."""
    from docutils import nodes

    skip = (nodes.literal, nodes.literal_block, nodes.math, nodes.math_block, nodes.raw)
    for text in list(doctree.findall(nodes.Text)):
        if _NUMBER_PERCENT.search(text) and not any(isinstance(a, skip) for a in _ancestors(text)):
            text.parent.replace(text, nodes.Text(keep_percent_with_number(str(text))))


def _ancestors(node: Any):
    while node.parent is not None:
        node = node.parent
        yield node


#: The banner of a CI-scale build (``GRIDLIB_SCALE=ci``, ``make book-ci``) on every page.
CI_BANNER = ("The CI-scale build: the runs these pages make are small checks, and only numbers "
             "loaded from results files are the full-scale ones. The book is built with "
             "<code>make book</code>.")


def _ci_banner(app: Sphinx, config: Any) -> None:
    """A CI-scale build says so on every page, so that nobody reads its small in-page runs as
    the book's results."""
    if os.environ.get("GRIDLIB_SCALE") == "ci":
        config.html_theme_options = {**(config.html_theme_options or {}), "announcement": CI_BANNER}


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("gridlib_pages_branch", PAGES_BRANCH, "html")
    app.connect("config-inited", _ci_banner)
    app.connect("doctree-resolved", _percent_signs)
    # after sphinx.builders.html's convert_html_js_files (800), before the builder reads the list
    app.connect("config-inited", _drop_static_mathjax, priority=900)
    app.connect("html-page-context", _notebook_buttons, priority=AFTER_THEME)
    app.connect("html-page-context", _unique_scripts, priority=AFTER_THEME)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
