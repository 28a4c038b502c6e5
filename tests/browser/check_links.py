#!/usr/bin/env python3
"""Check the launch and download links of a built book against the repository setting.

Usage::

    python tests/browser/check_links.py _build/ci/_build/html [--root .]

Every chapter page (a page whose source, under ``--root``, is a notebook: an ``.ipynb`` or a
``.md`` with a ``kernelspec`` in its front matter) must have, with ``<org>/<repo>``, ``<branch>``
and the launch providers taken from ``_config.yml`` (``repository``, ``launch_buttons``):

* ``binder``  the Binder button ``<binderhub_url>/v2/gh/<org>/<repo>/<branch>?urlpath=<ui>/<source>``
  (``<ui>``: ``tree`` for ``notebook_interface: classic``, ``lab/tree`` for ``jupyterlab``);
* ``colab``   the Colab button ``<colab_url>/github/<org>/<repo>/blob/gh-pages/<page>.ipynb``: the
  executed notebook as .github/workflows/book.yml publishes it (``gh-pages``, or
  ``sphinx.config.gridlib_pages_branch``);
* ``ipynb``   an ``.ipynb`` entry in the download menu whose link resolves to ``<page>.ipynb``
  beside the page, a file that is there and is an executed notebook (nbformat 4, code cells, at
  least one with an execution count).

A provider left empty in ``_config.yml`` must have no button. Every page, chapter or not, must
load MathJax (``mathjax_path``) at most once (``mathjax``), and exactly once where it has math.
One line per problem, ``page: kind: detail``; exit status 1 on problems (or when no chapter page
was found), 0 when all is right. Standard library and PyYAML/BeautifulSoup (both in the lock).
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "_panels_static", "browser-check"}
DEFAULT_PAGES_BRANCH = "gh-pages"
UI_PREFIX = {"classic": "tree", "jupyterlab": "lab/tree"}


@dataclass(frozen=True)
class Setting:
    """What _config.yml says the links must be."""

    org: str
    repo: str
    branch: str
    path_to_book: str
    binderhub_url: str
    colab_url: str
    ui_prefix: str
    pages_branch: str
    mathjax_path: str

    @classmethod
    def from_config(cls, config_path: Path) -> Setting:
        config = yaml.safe_load(config_path.read_text()) or {}
        repository = config.get("repository") or {}
        url = (repository.get("url") or "").strip().rstrip("/").removesuffix(".git")
        if not re.fullmatch(r"https://github\.com/[^/]+/[^/]+", url):
            raise SystemExit(f"{config_path}: repository.url must be https://github.com/<org>/<repo>, got {url!r}")
        org, repo = url.split("/")[-2:]
        launch = config.get("launch_buttons") or {}
        interface = launch.get("notebook_interface", "classic")
        sphinx_config = (config.get("sphinx") or {}).get("config") or {}
        path_to_book = (repository.get("path_to_book") or "").strip("/")
        return cls(
            org=org, repo=repo,
            branch=repository.get("branch") or "main",
            path_to_book=f"{path_to_book}/" if path_to_book else "",
            binderhub_url=(launch.get("binderhub_url") or "").strip().rstrip("/"),
            colab_url=(launch.get("colab_url") or "").strip().rstrip("/"),
            ui_prefix=UI_PREFIX[interface],
            pages_branch=sphinx_config.get("gridlib_pages_branch", DEFAULT_PAGES_BRANCH),
            mathjax_path=sphinx_config.get("mathjax_path", ""),
        )

    def binder(self, source: str) -> str:
        return (f"{self.binderhub_url}/v2/gh/{self.org}/{self.repo}/{self.branch}"
                f"?urlpath={self.ui_prefix}/{self.path_to_book}{source}")

    def colab(self, page: str) -> str:
        return f"{self.colab_url}/github/{self.org}/{self.repo}/blob/{self.pages_branch}/{page}.ipynb"


def notebook_source(root: Path, page: str) -> str | None:
    """The page's source path (relative to ``root``) when it is a notebook, else None."""
    if (root / f"{page}.ipynb").is_file():
        return f"{page}.ipynb"
    md = root / f"{page}.md"
    if md.is_file():
        text = md.read_text(errors="replace")
        match = re.match(r"---\s*\n(.*?)\n---\s*\n", text, re.S)
        if match and "kernelspec" in (yaml.safe_load(match.group(1)) or {}):
            return f"{page}.md"
    return None


def _menu_links(soup: BeautifulSoup, group: str) -> dict[str, str]:
    """``{button text: href}`` of a header dropdown (``launch-buttons``, ``download-buttons``)."""
    menu = soup.select_one(f"div.dropdown-{group}")
    if menu is None:
        return {}
    return {a.get_text(" ", strip=True): a.get("href", "") for a in menu.select("a[href]")}


def _mathjax_loads(soup: BeautifulSoup, mathjax_path: str) -> int:
    if not mathjax_path:
        return 0
    count = 0
    for script in soup.find_all("script", src=True):
        path = urlsplit(script["src"]).path
        if mathjax_path.startswith(("http://", "https://")):
            count += script["src"].split("?")[0] == mathjax_path.split("?")[0]
        else:
            count += path.endswith("/" + mathjax_path.lstrip("/")) or path == mathjax_path
    return count


def _check_ipynb(html_dir: Path, page: str, href: str | None) -> list[str]:
    if href is None:
        return ["ipynb: no .ipynb entry in the download menu"]
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), urlsplit(href).path))
    if resolved != f"{page}.ipynb":
        return [f"ipynb: the download links to {href!r} (resolves to {resolved}), expected {page}.ipynb"]
    path = html_dir / resolved
    if not path.is_file():
        return [f"ipynb: {resolved} is not in the built site"]
    try:
        notebook = json.loads(path.read_text())
    except ValueError as err:
        return [f"ipynb: {resolved} is not JSON ({err})"]
    code = [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]
    if notebook.get("nbformat") != 4 or not code:
        return [f"ipynb: {resolved} is not a notebook with code cells"]
    if not any(c.get("execution_count") for c in code):
        return [f"ipynb: {resolved} was not executed (no execution counts)"]
    return []


def check_page(html_dir: Path, page: str, setting: Setting, root: Path) -> tuple[bool, list[str]]:
    """(is a chapter page, problems) of the page ``<page>.html``."""
    soup = BeautifulSoup((html_dir / f"{page}.html").read_text(errors="replace"), "html.parser")
    problems = []
    loads = _mathjax_loads(soup, setting.mathjax_path)
    has_math = soup.select_one(".math") is not None
    if loads > 1 or (has_math and loads != 1):
        problems.append(f"mathjax: {setting.mathjax_path} is loaded {loads} times"
                        + (" on a page with math" if has_math else ""))
    source = notebook_source(root, page)
    if source is None:
        return False, problems
    launch = _menu_links(soup, "launch-buttons")
    for name, base, expected in (("binder", setting.binderhub_url, setting.binder(source)),
                                 ("colab", setting.colab_url, setting.colab(page))):
        title = name.capitalize()
        if not base:
            if title in launch:
                problems.append(f"{name}: a {title} button, though launch_buttons has no {name} URL")
        elif title not in launch:
            problems.append(f"{name}: no {title} button in the launch menu")
        elif launch[title] != expected:
            problems.append(f"{name}: {launch[title]!r}, expected {expected!r}")
    problems += _check_ipynb(html_dir, page, _menu_links(soup, "download-buttons").get(".ipynb"))
    return True, problems


def pages(html_dir: Path) -> list[str]:
    found = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.parts[0] in SKIP_DIRS or rel.name in ("genindex.html", "search.html"):
            continue
        found.append(rel.with_suffix("").as_posix())
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html_dir", type=Path, help="the built HTML folder, e.g. _build/ci/_build/html")
    ap.add_argument("--root", type=Path, default=ROOT, help="the book's source folder (with _config.yml)")
    args = ap.parse_args(argv)
    if not args.html_dir.is_dir():
        print(f"links-check: {args.html_dir} is not a folder (build the book first)")
        return 1
    setting = Setting.from_config(args.root / "_config.yml")
    problems, chapters, checked = [], 0, 0
    for page in pages(args.html_dir):
        is_chapter, found = check_page(args.html_dir, page, setting, args.root)
        chapters += is_chapter
        checked += 1
        problems += [f"{page}: {p}" for p in found]
    for line in problems:
        print(line)
    if not chapters:
        print(f"links-check: no chapter page in {args.html_dir}")
        return 1
    print(f"links-check: {checked} pages, {chapters} chapters ({setting.org}/{setting.repo} @ {setting.branch}; "
          f"Colab from {setting.pages_branch}): {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
