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

Both header-button hooks run after sphinx-book-theme's (``html-page-context`` priority 501).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

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

    config.html_js_files = [e for e in config.html_js_files if filename(e) != mathjax]


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


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("gridlib_pages_branch", PAGES_BRANCH, "html")
    # after sphinx.builders.html's convert_html_js_files (800), before the builder reads the list
    app.connect("config-inited", _drop_static_mathjax, priority=900)
    app.connect("html-page-context", _notebook_buttons, priority=AFTER_THEME)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
