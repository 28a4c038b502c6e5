"""The valid values of every command-line flag, declared in one place.

Each flag of each experiment has a :class:`Domain`: its type, its bounds, whether it is a
comma-separated list, its choices, and the sentinel values that mean "the preset's or the
scale's default". The command line (:mod:`gridlib.cli`) parses every typed value through its
domain before any work starts and refuses a bad one in one line that names the flag, the value
and the domain. The test suite generates bad values from the same declarations (below and above
the bounds, 0, negatives, NaN, infinities, 1e30, text, unknown choices) for every flag of every
experiment, so a flag without a domain, or a domain that lets a bad value through, fails there.

:data:`COMMON` holds the flags whose meaning is the same in every experiment (``--seed``,
``--lr``, ``--epochs``, ...); an experiment adds or narrows domains with the ``flags=`` argument
of :func:`gridlib.cli.experiment` (its choices, its sentinels).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

#: The largest seed: JAX's PRNG keys take 32-bit seeds.
MAX_SEED = 2**31 - 1

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"


class FlagError(ValueError):
    """A flag's value is outside its declared domain (one line: flag, value, domain)."""


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclasses.dataclass(frozen=True)
class Domain:
    """The values a flag accepts.

    Attributes:
        kind: ``int``, ``float``, ``str`` or ``bool``.
        low: the inclusive lower bound of a number (``None``: unbounded below); every number
            must be finite.
        high: the inclusive upper bound (``None``: unbounded above).
        open_low: ``low`` itself is excluded (``0 < lr`` rather than ``0 <= lr``).
        choices: the allowed strings, or a function returning them (read from the library's
            own constants when the flag is parsed, so they never drift from the code).
        many: a comma-separated list of values, each in the domain (``"256,256"``).
        unique: a list's values must differ (seeds: a repeated seed would be averaged twice).
        special: sentinel values outside the bounds that mean "the default" (``0``: the
            preset's; ``-1``: the scale's); described in ``meaning``.
        pattern: a regular expression a string must match in full.
        max_len: the longest string accepted (names become file names).
        meaning: what the flag is, and what its sentinels mean, for the message.
    """

    kind: type = float
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    choices: tuple[str, ...] | Callable[[], Any] | None = None
    many: bool = False
    unique: bool = False
    special: tuple = ()
    pattern: str | None = None
    max_len: int = 200
    meaning: str = ""

    def allowed(self) -> tuple[str, ...] | None:
        """The choices, as a tuple (``None`` when the flag takes any value of its kind)."""
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def describe(self) -> str:
        """The domain in words, e.g. ``a number in (0, 10]``."""
        if self.kind is bool:
            text = "true or false"
        elif self.allowed() is not None:
            text = "one of " + ", ".join(self.allowed())
        elif self.kind is str:
            text = f"a name of letters, digits, '_', '-', '.' (at most {self.max_len})"
        else:
            noun = "an integer" if self.kind is int else "a finite number"
            if self.low is not None and self.high is not None:
                left = "(" if self.open_low else "["
                text = f"{noun} in {left}{_fmt(self.low)}, {_fmt(self.high)}]"
            elif self.low is not None:
                text = f"{noun} {'>' if self.open_low else '>='} {_fmt(self.low)}"
            elif self.high is not None:
                text = f"{noun} <= {_fmt(self.high)}"
            else:
                text = noun
        if self.many:
            text = ("comma-separated and distinct, each " if self.unique
                    else "comma-separated, each ") + text
        if self.special:
            text += ", or " + " / ".join(repr(s) for s in self.special)
        return text + (f" ({self.meaning})" if self.meaning else "")

    def _one(self, text: str) -> Any:
        """One value parsed and checked; raises ``ValueError`` with no flag name."""
        if self.kind is bool:
            word = text.strip().lower()
            if word in _TRUE or word in _FALSE:
                return word in _TRUE
            raise ValueError
        if self.kind is str:
            allowed = self.allowed()
            if allowed is not None and text not in allowed:
                raise ValueError
            if allowed is None:
                if len(text) > self.max_len or not re.fullmatch(self.pattern or _TAG, text):
                    raise ValueError
            return text
        if self.kind is int:
            value: Any = int(text.strip())  # "1.5", "1e3", "nan" are refused
        else:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
        below = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        above = self.high is not None and value > self.high
        if below or above:
            raise ValueError
        return value

    def parse(self, flag: str, text: str) -> Any:
        """The value of ``flag`` typed as ``text``, checked.

        Returns the value in the flag's kind; a list flag returns its text, spaces removed
        (the experiment splits it).

        Raises:
            FlagError: one line naming the flag, the value and the domain.
        """
        if not isinstance(text, str):
            text = str(text)
        for sentinel in self.special:
            if text.strip() == str(sentinel) or _same_number(text, sentinel):
                return sentinel
        try:
            if self.many:
                parts = text.replace(" ", "").split(",")
                if not all(parts) or len(parts) > 1000:
                    raise ValueError
                values = [self._one(p) for p in parts]
                if self.unique and len(set(values)) < len(values):
                    raise ValueError
                return ",".join(parts)
            return self._one(text)
        except (ValueError, OverflowError):
            raise FlagError(f"{flag} {text!r}: expected {self.describe()}") from None

    def bad_values(self) -> list[str]:
        """Values this domain must refuse, for the generated test: beyond each bound, 0 and
        negatives where excluded, NaN, infinities, 1e30, text, unknown choices, empty."""
        if self.kind is bool:
            return ["maybe", "2", "", "nan"]
        if self.kind is str:
            bad = ["", "x" * (self.max_len + 1), "a b"]
            if self.allowed() is not None:
                bad.append("no-such-choice")
            elif self.pattern in (None, _NAME):  # names: never outside their folder
                bad += ["../outside", "/absolute"]
            return [b for b in bad if b not in self.special]
        out = ["nan", "inf", "-inf", "1e30", "-1e30", "abc", ""]
        if self.unique:
            out.append(f"{_fmt(self.high if self.high is not None else 1)},"
                       f"{_fmt(self.high if self.high is not None else 1)}")
        if self.kind is int:
            out += ["1.5"]
        if self.low is not None:
            step = 1 if self.kind is int else max(abs(self.low) * 1e-3, 1e-12)
            out.append(_fmt(self.low) if self.open_low else _fmt(self.low - step))
            if self.low >= 0:
                out += ["0", "-1"] if self.open_low else ["-1"]
        if self.high is not None:
            step = 1 if self.kind is int else max(abs(self.high) * 1e-3, 1e-12)
            out.append(_fmt(self.high + step))
        return [v for v in dict.fromkeys(out) if not any(_same_number(v, s) or v == str(s)
                                                         for s in self.special)]


def _same_number(text: str, sentinel: Any) -> bool:
    if isinstance(sentinel, bool) or not isinstance(sentinel, (int, float)):
        return False
    try:
        return float(text) == float(sentinel)
    except ValueError:
        return False


def integer(low: int | None = None, high: int | None = None, **kw: Any) -> Domain:
    """An integer flag in ``[low, high]``."""
    return Domain(int, low, high, **kw)


def real(low: float | None = None, high: float | None = None, *, open_low: bool = False,
         **kw: Any) -> Domain:
    """A finite real flag in ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    return Domain(float, low, high, open_low=open_low, **kw)


def choice(choices: tuple[str, ...] | Callable[[], Any], **kw: Any) -> Domain:
    """A string flag that takes one of ``choices``."""
    return Domain(str, choices=choices, **kw)


BOOL = Domain(bool)
#: A learning rate or step size: finite, > 0, at most 10 (anything larger is a typo).
LEARNING_RATE = real(0.0, 10.0, open_low=True, meaning="a step size")
SEED = integer(0, MAX_SEED)
#: A results name like ``chapter/run_seed0``: confined to the results and runs folders.
RESULT_NAME = Domain(str, pattern=_NAME, special=("",), meaning="'' for the default name")

#: Flags that mean the same in every experiment that has them.
COMMON: dict[str, Domain] = {
    "seed": SEED,
    "seeds": integer(0, MAX_SEED, many=True, unique=True),
    "epochs": integer(1, 100_000),
    "batch_size": integer(1, 65_536),
    "lr": LEARNING_RATE,
    "eta0": LEARNING_RATE,
    "alphas": real(0.0, 10.0, open_low=True, many=True, meaning="per-layer step sizes"),
    "n_train": integer(1, 1_000_000),
    "n_test": integer(1, 1_000_000),
    "validation": integer(0, 1_000_000),
    "hidden": integer(1, 100_000, many=True, meaning="hidden layer sizes"),
    "progress": BOOL,
    "resume": BOOL,
    "save": BOOL,
    "schedule": BOOL,
    "persistent": BOOL,
    "update_every_step": BOOL,
    "name": RESULT_NAME,
}

#: The run-control flags every experiment takes (see :class:`gridlib.results.Session`).
RUN_CONTROL: dict[str, Domain] = {
    "stop_after_epochs": integer(1, 100_000),
    "devices": integer(1, 65_536),
}


def domains_for(name: str, params: list[str], declared: Mapping[str, Domain] | None
                ) -> dict[str, Domain]:
    """Every parameter's domain for experiment ``name``: its own declarations over
    :data:`COMMON`.

    Raises:
        TypeError: a parameter has no declared domain, or a declaration names no parameter.
    """
    declared = dict(declared or {})
    extra = sorted(set(declared) - set(params))
    if extra:
        raise TypeError(f"experiment {name!r} declares domains for unknown flags {extra}")
    out = {p: declared.get(p) or COMMON.get(p) for p in params}
    missing = [p for p, d in out.items() if d is None]
    if missing:
        raise TypeError(f"experiment {name!r}: flags {missing} have no declared domain "
                        "(add them to its flags= or to gridlib.flags.COMMON)")
    return out  # type: ignore[return-value]
