"""``python -m gridlib <experiment> --key value ...``: every chapter's runs from one command.

An experiment is a function registered with :func:`experiment`; its keyword arguments, with
annotated types and defaults, become the command-line flags::

    @experiment("mnist-mlp")
    def mnist_mlp(epochs: int = 10, lr: float = 1e-3, seed: int = 0) -> dict: ...

``python -m gridlib --list`` lists them; ``python -m gridlib NAME --help`` shows the flags.

Every input is checked before any work starts: the scale, the run name (confined to the
results and runs folders), learning rates (finite, > 0), epochs (>= 1), sizes, seeds, and
whatever the experiment's own ``check`` adds (e.g. a memory estimate for a grid). Known errors
reach the user as one line on stderr and exit code 2; ``GRIDLIB_TRACEBACK=1`` shows the trace.

Every experiment also takes the run-control flags ``--publish``, ``--overwrite``, ``--fresh``
and ``--stop-after-epochs`` (see :class:`gridlib.results.Session`); those that train a ``vmap``-ed
ensemble of seeds (registered with ``devices=True``) also take ``--devices N``: split the seeds
over N local devices (default: all; see :mod:`gridlib.devices`). Under a multi-process launch
(``srun`` or ``mpirun`` with several tasks, or ``GRIDLIB_DISTRIBUTED=1``), :func:`main` first
joins the processes (:func:`gridlib.devices.initialize_distributed`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, get_type_hints

from gridlib import checkpoint, results, scale
from gridlib.data import DataUnavailableError

#: Modules whose import registers experiments (imported lazily by :func:`main`).
EXPERIMENT_MODULES = [
    "gridlib.baselines",
    "gridlib.ep.experiments",
    "gridlib.filtergrid.experiments",
    "gridlib.filtergrid.anchor",
    "gridlib.gle.experiments",
    "gridlib.gridnet.experiments",
    "gridlib.neuralgrid.experiments",
]

#: Exceptions that are the user's to fix: shown as one line, exit code 2.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FloatingPointError, MemoryError,
               checkpoint.CheckpointError, DataUnavailableError)  # fmt: skip

#: The largest learning rate accepted; anything above is a typo, not an experiment.
MAX_LR = 10.0

Check = Callable[[Mapping[str, Any]], None]


class Entry(NamedTuple):
    """A registered experiment: the function, its extra argument check, and whether it takes
    ``--devices``."""

    fn: Callable[..., Any]
    check: Check | None
    devices: bool = False


_REGISTRY: dict[str, Entry] = {}


def experiment(name: str, check: Check | None = None,
               devices: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as the experiment ``name``; returns ``fn`` unchanged.

    Args:
        name: the command's name.
        check: ``check(args)`` raising ``ValueError`` for inputs the generic checks cannot
            judge (e.g. a grid too large for memory); runs before any work starts.
        devices: the experiment trains a ``vmap``-ed seed ensemble and reads ``--devices``
            from the session (:attr:`gridlib.results.Session.devices`).
    """

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"experiment {name!r} is registered twice")
        for p in inspect.signature(fn).parameters.values():
            if p.default is inspect.Parameter.empty:
                raise TypeError(f"experiment {name!r}: parameter {p.name!r} needs a default")
        _REGISTRY[name] = Entry(fn, check, devices)
        return fn

    return register


def registry() -> dict[str, Callable[..., Any]]:
    """All experiments, after importing :data:`EXPERIMENT_MODULES`."""
    for module in EXPERIMENT_MODULES:
        importlib.import_module(module)
    return {name: entry.fn for name, entry in sorted(_REGISTRY.items())}


# --------------------------------------------------------------------------- argument checks


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _numbers(value: Any, kind: type = float) -> list:
    """A number or a comma-separated list of numbers as a list (``"0.1,0.05"`` -> [0.1, 0.05])."""
    if isinstance(value, str):
        try:
            return [kind(v) for v in value.replace(" ", "").split(",") if v]
        except ValueError:
            return []
    return [value]


#: Flag name patterns and what their values must satisfy. ``given`` is True when the user
#: typed the flag; defaults that are sentinels (e.g. ``epochs=-1``: "the scale's default") pass.
_LR = re.compile(r"lr|lrs|eta0?|alphas?|learning_rate|.*_lrs?")
_SIZE = re.compile(r"height|width|depth|hidden|n_rows|n_cols|n_hidden|n_layers|sizes?|channels")
_COUNT = re.compile(r"n_.*|validation|t_train|steps_per_call|.*_epochs|weight_decay")
_POSITIVE = re.compile(r"tau_.*|dt|beta|gain")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_args(args: Mapping[str, Any], defaults: Mapping[str, Any], given: set[str]) -> None:
    """The generic input checks, by flag name (see the module docstring).

    Raises:
        ValueError: one line naming the flag, the value and what is allowed.
    """
    for name, value in args.items():
        flag, explicit = _flag(name), name in given
        if value == defaults.get(name) and not explicit:
            continue
        if name == "name" and value:
            results.check_name(value)
        elif name == "epochs" and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{flag} {value!r}: must be an integer >= 1")
        elif name == "batch_size" and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{flag} {value!r}: must be an integer >= 1")
        elif name in ("seed", "seeds"):
            seeds = _numbers(value, int)
            if not seeds or any(s < 0 or s >= 2**31 for s in seeds):
                raise ValueError(f"{flag} {value!r}: seeds must be integers in [0, 2^31)")
        elif _LR.fullmatch(name):
            lrs = _numbers(value)
            if not lrs or any(not (isinstance(v, (int, float)) and math.isfinite(v) and 0 < v <= MAX_LR) for v in lrs):
                raise ValueError(f"{flag} {value!r}: a learning rate must be finite, > 0 and <= {MAX_LR}")
        elif _SIZE.fullmatch(name) and isinstance(value, (int, str)) and not isinstance(value, bool):
            sizes = _numbers(value, int)
            if explicit and (not sizes or any(s < 1 for s in sizes)):
                raise ValueError(f"{flag} {value!r}: sizes must be integers >= 1 (omit the flag for the preset)")
        elif _COUNT.fullmatch(name) and isinstance(value, (int, float)) and not isinstance(value, bool):
            if explicit and (not math.isfinite(value) or value < 0):
                raise ValueError(f"{flag} {value!r}: must be >= 0 (omit the flag for the default)")
        elif _POSITIVE.fullmatch(name) and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{flag} {value!r}: must be finite and > 0")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{flag} {value!r}: must be a finite number")


def available_memory() -> int:
    """Physical memory of this machine in bytes (a generous upper bound for one run)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def require_memory(n_bytes: float, what: str) -> None:
    """Refuse a configuration whose estimated memory exceeds this machine's.

    Raises:
        MemoryError: naming ``what`` and both sizes.
    """
    have = available_memory()
    if n_bytes > have:
        raise MemoryError(
            f"{what} needs about {n_bytes / 2**30:,.1f} GiB, more than this machine's "
            f"{have / 2**30:,.1f} GiB; choose a smaller size"
        )


# --------------------------------------------------------------------------- parsing


def _arg_help(doc: str) -> dict[str, str]:
    """Per-argument help from a Google-style ``Args:`` section of a docstring."""
    out: dict[str, str] = {}
    lines = doc.split("Args:", 1)[1].splitlines() if "Args:" in doc else []
    current = None
    for line in lines:
        if line.strip() and not line.startswith((" ", "\t")):
            break  # the next section
        m = re.match(r"\s{2,8}(\w+)(?: \(.*?\))?:\s*(.*)", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def _parser_for(name: str, fn: Callable[..., Any], devices: bool = False) -> argparse.ArgumentParser:
    doc = inspect.getdoc(fn) or ""
    parser = argparse.ArgumentParser(
        prog=f"python -m gridlib {name}",
        description=doc.split("Args:", 1)[0].rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,  # so that we know which flags the user typed
    )
    hints = get_type_hints(fn)
    helps = _arg_help(doc)
    for p in inspect.signature(fn).parameters.values():
        kind = hints.get(p.name, type(p.default))
        if kind is bool:
            conv: Callable[[str], Any] = _bool
        elif kind in (int, float, str):
            conv = kind
        elif p.default is None:
            conv = str
        else:
            conv = type(p.default)
        metavar = "BOOL" if kind is bool else getattr(conv, "__name__", "VALUE").upper()
        text = helps.get(p.name, "")
        parser.add_argument(_flag(p.name), dest=p.name, type=conv, metavar=metavar,
                            help=f"{text} (default: {p.default!r})".strip())  # fmt: skip
    run = parser.add_argument_group("run control (every experiment)")
    run.add_argument("--publish", action="store_true",
                     help="write a new result into results/ (the book's folder) instead of runs/results/")
    run.add_argument("--overwrite", action="store_true",
                     help="replace a published result made with another configuration")
    run.add_argument("--fresh", action="store_true",
                     help="discard this run's checkpoint and start afresh instead of resuming")
    run.add_argument("--stop-after-epochs", type=int, metavar="N",
                     help="stop after N epochs of this invocation (the run is not published)")
    if devices:
        run.add_argument("--devices", type=int, metavar="N",
                         help="split the seeds over N local devices (default: all, or the most "
                              "that divide the seeds); the numbers do not depend on it")
    return parser


RUN_FLAGS = ("publish", "overwrite", "fresh", "stop_after_epochs", "devices")


def parse(name: str, argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(experiment arguments, run options)`` for ``argv``, after every check.

    Raises:
        ValueError: a bad value (argparse itself exits with code 2 on a malformed flag).
    """
    entry = _REGISTRY[name]
    ns = vars(_parser_for(name, entry.fn, entry.devices).parse_args(argv))
    options = {k: ns.pop(k) for k in RUN_FLAGS if k in ns}
    if options.get("stop_after_epochs") is not None and options["stop_after_epochs"] < 1:
        raise ValueError(f"--stop-after-epochs {options['stop_after_epochs']}: must be >= 1")
    if options.get("devices") is not None:
        from gridlib import devices

        devices.local_mesh(options["devices"])  # 1..local devices, or one line naming the range
    defaults = {p.name: p.default for p in inspect.signature(entry.fn).parameters.values()}
    args = {**defaults, **ns}
    check_args(args, defaults, set(ns))
    if entry.check is not None:
        entry.check(args)
    return args, options


# --------------------------------------------------------------------------- main


def _print_list(experiments: Mapping[str, Callable[..., Any]]) -> None:
    print("usage: python -m gridlib EXPERIMENT [--key value ...] [--publish] [--overwrite] [--fresh]\n"
          "       python -m gridlib recheck RESULT [RESULT ...] [--epochs N]\n\nexperiments:")  # fmt: skip
    for name, fn in experiments.items():
        summary = (inspect.getdoc(fn) or "").split("\n")[0]
        print(f"  {name:28s} {summary}")
    print(f"  {'recheck':28s} re-run the first epoch(s) of published results and compare")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gridlib`` and the ``gridlib`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from gridlib import devices

        # Before anything touches a device: jax.distributed must come first, or not at all.
        devices.initialize_distributed()
        scale.current()  # a bad GRIDLIB_SCALE is refused before anything else
        experiments = registry()
        if not argv or argv[0] in ("-h", "--help", "--list"):
            _print_list(experiments)
            return 0
        name, rest = argv[0], argv[1:]
        if name == "recheck":
            from gridlib import recheck

            return recheck.main(rest)
        if name not in experiments:
            print(f"error: unknown experiment {name!r}; `python -m gridlib --list` shows them", file=sys.stderr)
            return 2
        args, options = parse(name, rest)
        with results.session(**options):
            experiments[name](**args)
        return 0
    except USER_ERRORS as err:
        if os.environ.get("GRIDLIB_TRACEBACK"):
            raise
        message = str(err).strip() or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
