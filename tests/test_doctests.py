"""The examples in the library's docstrings run and print what they show (``doctest``).

Every module of ``gridlib`` is searched, except two that must never be imported:
``gridlib.__main__`` (it runs the command line on import) and ``gridlib.fingerprint_worker``
(the entry point of a subprocess, see :mod:`gridlib.fingerprint`). Each example is one test,
named after its docstring, and runs in float32 (the library's default), whatever another test
module of the same process set. A wrong output fails it, with doctest's report of the
difference. Each system's package must keep at least one example: build a model, run it,
compare a rule's gradient with the exact one.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import jax
import pytest

import gridlib

NEVER_IMPORTED = {"gridlib.__main__", "gridlib.fingerprint_worker"}
SYSTEMS = ["gridlib.filtergrid", "gridlib.ep", "gridlib.gle", "gridlib.neuralgrid", "gridlib.gridnet"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def module_names() -> list[str]:
    """Every module of the library that may be imported."""
    found = {m.name for m in pkgutil.walk_packages(gridlib.__path__, "gridlib.")}
    return sorted(({"gridlib"} | found) - NEVER_IMPORTED)


def examples() -> list[doctest.DocTest]:
    """Every docstring of the library that holds an example (``>>>``), by name."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = {}
    for name in module_names():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            # a re-exported object is found again under its package: keep its own module's test
            if test.examples and getattr(test, "filename", None):
                tests.setdefault((test.filename, test.lineno), test)
    return sorted(tests.values(), key=lambda t: t.name)


def run(test: doctest.DocTest) -> tuple[int, str]:
    """``(failures, doctest's report)`` of one docstring's examples."""
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, out=out.write)
    return result.failed, out.getvalue()


EXAMPLES = examples()


@pytest.fixture
def float32():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("test", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example(test, float32):
    failed, report = run(test)
    assert failed == 0, f"{test.name} ({test.filename}:{test.lineno}):\n{report}"


@pytest.mark.parametrize("package", SYSTEMS)
def test_every_system_has_an_example(package):
    names = [t.name for t in EXAMPLES]
    assert any(n == package or n.startswith(package + ".") for n in names), (
        f"{package}: no docstring example (>>>) in the package or its modules")


def test_a_wrong_output_fails():
    """The runner above reports a wrong output (so a broken example cannot pass silently)."""
    wrong = doctest.DocTestParser().get_doctest(">>> 1 + 1\n3\n", {}, "wrong", "wrong.py", 0)
    right = doctest.DocTestParser().get_doctest(">>> 1 + 1\n2\n", {}, "right", "right.py", 0)
    failed, report = run(wrong)
    assert failed == 1 and "Expected:\n    3\nGot:\n    2" in report
    assert run(right)[0] == 0
