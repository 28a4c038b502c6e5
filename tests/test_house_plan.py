"""The one house plan: every system package has the same inner plan and the same boundaries."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "gridlib"
SYSTEMS = ("filtergrid", "ep", "gle", "neuralgrid", "gridnet")
#: Modules allowed to write results or register commands (besides experiments.py).
WRITERS = {"filtergrid/anchor.py"}
MAX_LINES = 450


def _modules(system: str) -> list[Path]:
    return sorted((LIB / system).glob("*.py"))


@pytest.mark.parametrize("system", SYSTEMS)
def test_every_system_has_the_plan(system):
    names = {p.name for p in _modules(system)}
    assert {"__init__.py", "model.py", "reference.py", "experiments.py"} <= names, sorted(names)
    doc = importlib.import_module(f"gridlib.{system}").__doc__ or ""
    for p in _modules(system):
        if p.name != "__init__.py":
            assert f"gridlib.{system}.{p.stem}" in doc, f"the package docstring does not list {p.stem}"


@pytest.mark.parametrize("system", SYSTEMS)
def test_only_experiments_touch_the_cli_and_write_results(system):
    for p in _modules(system):
        if p.name == "experiments.py" or f"{system}/{p.name}" in WRITERS:
            continue
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "gridlib.cli":
                pytest.fail(f"{p.relative_to(LIB)} imports gridlib.cli")
            if isinstance(node, ast.Import) and any(a.name == "gridlib.cli" for a in node.names):
                pytest.fail(f"{p.relative_to(LIB)} imports gridlib.cli")
            if isinstance(node, ast.Attribute) and node.attr == "save" and getattr(node.value, "id", "") == "results":
                pytest.fail(f"{p.relative_to(LIB)} writes results (results.save)")


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: str(p.relative_to(LIB)))
def test_no_module_is_long_without_a_reason(path):
    n = len(path.read_text().splitlines())
    if n > MAX_LINES:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "Why this module is long" in doc, f"{path.name} has {n} lines and no reason in its docstring"


@pytest.mark.parametrize("system", SYSTEMS)
def test_every_public_name_has_a_docstring(system):
    pkg = importlib.import_module(f"gridlib.{system}")
    for name in getattr(pkg, "__all__", []):
        obj = getattr(pkg, name)
        if callable(obj) or isinstance(obj, type):
            assert (getattr(obj, "__doc__", None) or "").strip(), f"gridlib.{system}.{name} has no docstring"


def test_a_failing_chapter_cell_fails_the_test_command():
    """make test runs the chapters once, in book-ci: that holds only while a raising cell is an
    error there (allow_errors false, -W) and book-ci is part of make test."""
    import yaml

    root = Path(__file__).resolve().parent.parent
    execute = yaml.safe_load((root / "_config.yml").read_text())["execute"]
    assert execute["allow_errors"] is False and execute["execute_notebooks"] == "force"
    make = (root / "Makefile").read_text()
    test_line = next(line for line in make.splitlines() if line.startswith("test:"))
    assert "book-ci" in test_line.split()
    recipe = make.split("\nbook-ci:")[1].split("\n\n")[0]
    assert "jupyter-book build" in recipe and " -W " in recipe and "GRIDLIB_SCALE=ci" in recipe
