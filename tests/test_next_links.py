"""Every chapter's closing "Next" link goes to the page that follows it in the table of contents.

The targets are read as the pages write them: a ``{ref}`label``` (resolved through the
``(label)=`` targets of the pages), a ``{doc}`path``` or a Markdown link to a ``.md`` file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _toc_order() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    order: list[str] = []

    def walk(entries):
        for e in entries:
            order.append(e["file"])
            walk(e.get("sections", []))

    for part in toc["parts"]:
        walk(part["chapters"])
    return order


def _labels() -> dict[str, str]:
    out = {}
    for f in [*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/*.md")]:
        for label in re.findall(r"(?m)^\(([\w-]+)\)=$", f.read_text()):
            out[label] = str(f.relative_to(ROOT).with_suffix(""))
    return out


def _next_target(page: str, labels: dict[str, str]) -> str | None:
    text = (ROOT / f"{page}.md").read_text()
    m = re.search(r"(?m)^\*\*Next[.:]\*\*\s*(.*)", text)
    if not m:
        return None
    line = m.group(1)
    if ref := re.search(r"\{ref\}`(?:[^`<]*<)?([\w-]+)>?`", line):
        return labels.get(ref.group(1), f"<unknown label {ref.group(1)}>")
    if doc := re.search(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", line):
        target = doc.group(1).lstrip("/")
        return target if "/" in target else str(Path(page).parent / target)
    if link := re.search(r"\]\(([^)]+)\.md\)", line):
        return os.path.normpath(Path(page).parent / link.group(1))
    return f"<no target in {line[:40]!r}>"


CHAPTERS = [p for p in _toc_order() if p.startswith(("notebooks/", "book/reading",
                                                    "book/running-at-scale", "book/failures"))]


@pytest.mark.parametrize("page", CHAPTERS[:-1])
def test_next_follows_the_table_of_contents(page):
    order = _toc_order()
    expected = order[order.index(page) + 1]
    assert _next_target(page, _labels()) == expected, f"{page}: Next should lead to {expected}"
