"""``python -m gridlib <experiment> --key value ...``: every chapter's runs from one command.

An experiment is a function registered with :func:`experiment`; its keyword arguments, with
annotated types and defaults, become the command-line flags::

    @experiment("mnist-mlp")
    def mnist_mlp(epochs: int = 10, lr: float = 1e-3, seed: int = 0) -> dict: ...

``python -m gridlib --list`` lists them; ``python -m gridlib NAME --help`` shows the flags.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any, get_type_hints

#: Modules whose import registers experiments (imported lazily by :func:`main`).
EXPERIMENT_MODULES = [
    "gridlib.baselines",
    "gridlib.ep",
    "gridlib.filtergrid.train",
    "gridlib.gle.experiments",
    "gridlib.gridnet",
    "gridlib.neuralgrid",
]

_REGISTRY: dict[str, Callable[..., Any]] = {}


def experiment(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as the experiment ``name``; returns ``fn`` unchanged."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"experiment {name!r} is registered twice")
        for p in inspect.signature(fn).parameters.values():
            if p.default is inspect.Parameter.empty:
                raise TypeError(f"experiment {name!r}: parameter {p.name!r} needs a default")
        _REGISTRY[name] = fn
        return fn

    return register


def registry() -> dict[str, Callable[..., Any]]:
    """All experiments, after importing :data:`EXPERIMENT_MODULES`."""
    for module in EXPERIMENT_MODULES:
        importlib.import_module(module)
    return dict(sorted(_REGISTRY.items()))


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _parser_for(name: str, fn: Callable[..., Any]) -> argparse.ArgumentParser:
    doc = inspect.getdoc(fn) or ""
    parser = argparse.ArgumentParser(
        prog=f"python -m gridlib {name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hints = get_type_hints(fn)
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
        flag = "--" + p.name.replace("_", "-")
        parser.add_argument(flag, dest=p.name, type=conv, default=p.default,
                            help=f"(default: {p.default!r})")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gridlib`` and the ``gridlib`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    experiments = registry()
    if not argv or argv[0] in ("-h", "--help", "--list"):
        print("usage: python -m gridlib EXPERIMENT [--key value ...]\n\nexperiments:")
        for name, fn in experiments.items():
            summary = (inspect.getdoc(fn) or "").split("\n")[0]
            print(f"  {name:28s} {summary}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in experiments:
        print(f"unknown experiment {name!r}; `python -m gridlib --list` shows them", file=sys.stderr)
        return 2
    args = _parser_for(name, experiments[name]).parse_args(rest)
    experiments[name](**vars(args))
    return 0
