"""The library reference (book/api) covers the public API, and every public name has a docstring.

Fast: the pages' directives are read as text and the library is imported; the book is not
built (``make book-ci`` builds it, warnings as errors). A package's public names are its
``__all__``; each must appear in its page's summary under the module that defines it, and
that module must be documented with ``automodule ... :members:`` (which renders the docstring).
The core modules, which have no ``__all__``, must each be documented likewise, and each of
their public functions and classes needs a docstring (autodoc skips an undocumented member
silently, so it would vanish from the reference). A constant has its docstring in a ``#:``
comment, the form autodoc reads.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
from sphinx.pycode import ModuleAnalyzer

import gridlib

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "book" / "api"
PACKAGES = ["gridlib", "gridlib.filtergrid", "gridlib.ep", "gridlib.gle", "gridlib.neuralgrid", "gridlib.gridnet"]
CORE = ["experiment", "data", "results", "storage", "flags", "cli", "checkpoint", "report", "plotting",
        "index", "flops", "footprint", "devices", "recheck", "compare", "scale", "provenance"]
RST = re.compile(r"^```\{eval-rst\}\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    """``(page name, text)`` of every ``{eval-rst}`` block of the reference pages."""
    return [(p.name, b) for p in sorted(API.glob("*.md")) for b in RST.findall(p.read_text())]


def documented_modules(members: bool = True) -> set[str]:
    """Modules rendered with ``.. automodule:: name`` (and ``:members:``, unless ``members=False``)."""
    found = set()
    for _, block in _blocks():
        for m in re.finditer(r"^\.\. automodule:: (\S+)\n((?:   .*\n?)*)", block, re.M):
            if ":members:" in m.group(2) or not members:
                found.add(m.group(1))
    return found


def summarised_names() -> set[str]:
    """``module.name`` for each entry of an autosummary, under the ``currentmodule`` before it."""
    found = set()
    for _, block in _blocks():
        current = None
        for line in block.splitlines():
            if m := re.match(r"\.\. (?:py:)?currentmodule:: (\S+)", line):
                current = m.group(1)
            elif m := re.match(r"   ~?([\w.]+)\s*$", line):
                found.add(m.group(1) if "." in m.group(1) or current is None else f"{current}.{m.group(1)}")
    return found


def defining_module(package: str, name: str) -> str:
    """The module that defines ``package.name`` (the one its ``__init__`` imports it from)."""
    obj = getattr(importlib.import_module(package), name)
    if (inspect.isclass(obj) or callable(obj)) and getattr(obj, "__module__", "").startswith("gridlib"):
        return obj.__module__
    init = Path(importlib.import_module(package).__file__)
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            return node.module
    return package


def own_doc(obj: object) -> str:
    """``obj``'s own docstring: not a base class's, nor a NamedTuple's generated ``Name(a, b)``."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    doc = (doc or "").strip()
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""
    return doc


def has_doc(module: str, name: str) -> bool:
    """``module.name`` has a docstring, or (a constant) a ``#:`` comment autodoc reads."""
    obj = getattr(importlib.import_module(module), name)
    if inspect.isclass(obj) or inspect.isroutine(obj) or hasattr(obj, "__wrapped__"):
        return bool(own_doc(obj))
    analyzer = ModuleAnalyzer.for_module(module)
    return bool(analyzer.find_attr_docs().get(("", name)))


def public_names(package: str) -> list[tuple[str, str]]:
    """``(package, name)`` for each name of the package's ``__all__``."""
    return [(package, n) for n in importlib.import_module(package).__all__]


def core_members(module: str) -> list[str]:
    """The public functions and classes defined in ``module`` (not imported into it)."""
    mod = importlib.import_module(module)
    return [n for n, obj in vars(mod).items()
            if not n.startswith("_") and (inspect.isclass(obj) or callable(obj))
            and getattr(obj, "__module__", None) == module]


ALL = [pn for p in PACKAGES for pn in public_names(p)]
# a module's own __all__ (snap1, temporal, flops, ...): what automodule renders of it
MODULE_ALL = [(m.name, n) for m in pkgutil.walk_packages(gridlib.__path__, "gridlib.")
              if not m.ispkg and m.name != "gridlib.__main__"
              for n in getattr(importlib.import_module(m.name), "__all__", ())]


@pytest.mark.parametrize("package,name", ALL, ids=[f"{p}.{n}" for p, n in ALL])
def test_every_public_name_has_a_docstring(package, name):
    assert has_doc(defining_module(package, name), name), f"{package}.{name} has no docstring"


@pytest.mark.parametrize("module,name", MODULE_ALL, ids=[f"{m}.{n}" for m, n in MODULE_ALL])
def test_every_name_of_a_modules_all_has_a_docstring(module, name):
    assert has_doc(module, name), f"{module}.{name} is in its __all__ but has no docstring"


def test_the_reference_covers_every_public_name():
    summarised, modules = summarised_names(), documented_modules()
    missing = [f"{p}.{n} (defined in {defining_module(p, n)})" for p, n in ALL if p != "gridlib"
               and f"{defining_module(p, n)}.{n}" not in summarised]
    assert not missing, f"names of an __all__ missing from the reference pages' summaries: {missing}"
    undocumented = sorted({defining_module(p, n) for p, n in ALL} - modules)
    assert not undocumented, f"modules defining public names but not rendered with automodule: {undocumented}"


def test_the_reference_renders_every_module():
    """Every module is rendered, so a docstring's reference to any gridlib name resolves."""
    names = {"gridlib"} | {m.name for m in pkgutil.walk_packages(gridlib.__path__, "gridlib.")}
    # a package's own page renders its docstring and summarises its __all__ (above)
    packages = {p for p in PACKAGES if p != "gridlib"}
    missing = sorted(names - documented_modules() - (packages & documented_modules(members=False))
                     - {"gridlib.__main__"})
    assert not missing, f"modules without an automodule ... :members: in book/api: {missing}"


@pytest.mark.parametrize("module", CORE)
def test_core_module_public_functions_have_docstrings(module):
    name = f"gridlib.{module}"
    assert name in documented_modules(), f"{name} is not rendered in book/api"
    assert own_doc(importlib.import_module(name)), f"{name} has no module docstring"
    missing = [m for m in core_members(name) if not has_doc(name, m)]
    assert not missing, f"public names of {name} without a docstring: {missing}"


def test_the_reference_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    missing = [p.stem for p in API.glob("*.md") if f"book/api/{p.stem}\n" not in toc]
    assert not missing, f"reference pages missing from _toc.yml: {missing}"
