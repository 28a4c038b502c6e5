"""The tests a chapter runs in its own page, reported in one line.

A chapter states its claims as test functions in a ``%%ipytest`` cell. pytest's terminal
report (dots streamed one by one, a ``[100%]`` padded to 80 columns) renders badly in a book
page, so :func:`setup` replaces it with this module's report: one line such as
``✓ 7 tests passed``, or the failing tests with their error, and a failure still fails
the page (``raise_on_error``).

Usage, once per chapter::

    from gridlib import chapter_tests
    chapter_tests.setup()

then ``%%ipytest`` cells as usual.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from _pytest.config import create_terminal_writer

PLUGIN = "gridlib.chapter_tests"


class _Summary:
    """Counts outcomes and keeps the failures' short reports."""

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.failures: list[str] = []

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when != "call" and report.passed:
            return  # a passing setup or teardown is not a test's outcome
        self.outcomes[report.outcome] = self.outcomes.get(report.outcome, 0) + 1
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message.splitlines()[0] if crash is not None else "failed"
            self.failures.append(f"✗ {report.nodeid.split('::')[-1]}: {message}")

    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        passed = self.outcomes.get("passed", 0)
        other = ", ".join(f"{n} {k}" for k, n in self.outcomes.items() if k != "passed")
        mark = "✓" if not self.failures else "✗"
        noun = "test" if passed == 1 else "tests"
        print(f"{mark} {passed} {noun} passed{', ' + other if other else ''}")
        for line in self.failures:
            print(line)


@pytest.hookimpl(trylast=True)  # after the terminal plugin has made its reporter
def pytest_configure(config: Any) -> None:
    """pytest hook: silence the terminal report and register the one-line summary instead."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter._tw = create_terminal_writer(config, io.StringIO())  # swallowed, never shown
    config.pluginmanager.register(_Summary(), "gridlib-chapter-summary")


def setup() -> None:
    """Configure ipytest for a chapter: one-line report, and a failing test fails the page."""
    import ipytest

    ipytest.autoconfig(raise_on_error=True,
                       addopts=["-q", "-p", "no:cacheprovider", "-p", PLUGIN,
                                "-W", "ignore::pytest.PytestAssertRewriteWarning"])  # fmt: skip
