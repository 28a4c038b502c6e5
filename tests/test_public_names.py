"""Every library name a chapter uses exists: a move inside the library cannot silently break a page.

The chapters' code cells are parsed (not run): each ``import gridlib...`` / ``from gridlib...
import ...`` is imported, and each attribute read from an imported library module
(``ep.free_phase``) must exist. This takes seconds, where executing the chapters takes minutes.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*ROOT.glob("notebooks/*.md"), *ROOT.glob("book/*.md")])
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)


def _code(page: Path) -> str:
    """The page's code cells, without cell options and IPython magics."""
    cells = []
    for cell in CELL.findall(page.read_text()):
        lines = [ln for ln in cell.splitlines() if not ln.lstrip().startswith(("%", "!", ":"))]
        cells.append("\n".join(lines))
    return "\n".join(cells)


def _resolve(module: str, name: str) -> object:
    """``module.name``, importing it as a submodule when it is one."""
    mod = importlib.import_module(module)
    if hasattr(mod, name):
        return getattr(mod, name)
    return importlib.import_module(f"{module}.{name}")


def library_names(page: Path) -> tuple[list[str], list[str]]:
    """``(names used, names missing)`` for the ``gridlib`` names a page's code uses."""
    tree = ast.parse(_code(page))
    aliases: dict[str, ModuleType] = {}
    used, missing = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "gridlib":
                    used.append(a.name)
                    mod = importlib.import_module(a.name)
                    if a.asname:
                        aliases[a.asname] = mod
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "gridlib":
            for a in node.names:
                used.append(f"{node.module}.{a.name}")
                try:
                    obj = _resolve(node.module, a.name)
                except (ImportError, AttributeError):
                    missing.append(f"{node.module}.{a.name}")
                    continue
                if isinstance(obj, ModuleType):
                    aliases[a.asname or a.name] = obj
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            mod = aliases[node.value.id]
            used.append(f"{mod.__name__}.{node.attr}")
            if not hasattr(mod, node.attr):
                try:
                    importlib.import_module(f"{mod.__name__}.{node.attr}")
                except ImportError:
                    missing.append(f"{mod.__name__}.{node.attr}")
    return used, sorted(set(missing))


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_every_library_name_a_page_uses_exists(page):
    used, missing = library_names(page)
    assert not missing, f"{page.name} uses names the library no longer has: {missing}"


def test_the_check_can_fail(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("```{code-cell} ipython3\nfrom gridlib import results\nresults.no_such_name\n```\n")
    used, missing = library_names(page)
    assert "gridlib.results.no_such_name" in missing
