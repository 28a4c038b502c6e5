"""Shared fixtures: float64 on demand and isolated results/runs folders."""

from __future__ import annotations

import contextlib

import jax
import pytest


@contextlib.contextmanager
def _float64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def x64():
    """Run a test in float64 (the library's default dtype stays float32 elsewhere)."""
    with _float64():
        yield


@pytest.fixture(scope="module")
def float64_module():
    """Run a whole test module in float64 (``pytestmark = pytest.mark.usefixtures(...)``), and
    restore the setting for the other modules afterwards."""
    with _float64():
        yield


@pytest.fixture
def tmp_results(tmp_path, monkeypatch):
    """Point results and run folders at a temporary directory."""
    monkeypatch.setenv("GRIDLIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GRIDLIB_RUNS", str(tmp_path / "runs"))
    return tmp_path


@pytest.fixture(autouse=True)
def _fresh_quantities(monkeypatch):
    """Each test starts with no keyed quantity shown (``gridlib.report.SHOWN``), so that one
    test's made-up results never clash with another's real ones in the same process."""
    from gridlib import report

    monkeypatch.setattr(report, "SHOWN", {})
