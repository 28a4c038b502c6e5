"""The one scale switch: ``GRIDLIB_SCALE`` picks the CI preset or the full reproduction.

``full`` (the default) is what the book shows: the published configurations on the full data sets.
``ci`` is a small preset on real data subsets that runs in minutes on two CPU cores; the test command
sets it. Every chapter reads its sizes through :func:`pick`, so one variable changes them all.
"""

from __future__ import annotations

import os
from typing import Literal, TypeVar

ENV_VAR = "GRIDLIB_SCALE"
SCALES = ("ci", "full")
T = TypeVar("T")

Scale = Literal["ci", "full"]


def current() -> Scale:
    """The scale in force: the value of ``GRIDLIB_SCALE`` (default ``"full"``).

    Raises:
        ValueError: if the variable holds anything but ``ci`` or ``full``.
    """
    value = os.environ.get(ENV_VAR, "full").strip().lower() or "full"
    if value not in SCALES:
        raise ValueError(
            f"{ENV_VAR}={os.environ.get(ENV_VAR)!r} is not a scale; use one of {SCALES} "
            f"(ci: small real subsets for tests, full: the published configuration)."
        )
    return value  # type: ignore[return-value]


def is_ci() -> bool:
    """True when the CI preset is in force."""
    return current() == "ci"


def pick(*, ci: T, full: T) -> T:
    """Return ``ci`` or ``full`` according to :func:`current`."""
    return ci if is_ci() else full
