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
import contextlib
import importlib
import inspect
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from gridlib import checkpoint, report, results, scale, storage
from gridlib import flags as _flags
from gridlib.data import DataUnavailableError
from gridlib.storage import EXIT_STORAGE, StorageError, StoredFileError

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

#: Commands that are not experiments, each a module with ``main(argv) -> exit status``.
COMMANDS = {"recheck": "gridlib.recheck", "reproduce": "gridlib.reproduce", "export-web": "gridlib.web"}

#: Exceptions that are the user's to fix: shown as one line, exit code 2.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FloatingPointError, MemoryError,
               checkpoint.CheckpointError, DataUnavailableError, StoredFileError)  # fmt: skip

#: Exit statuses (documented in the book's page on failures): 0 done, 1 a re-check found a
#: difference, 2 refused (a bad flag, a foreign checkpoint, missing data, ...), 74 a file could
#: not be written or read (full disk, read-only folder), 128 + N stopped by signal N (130 for
#: Ctrl-C, 143 for SIGTERM), after the last completed epoch's checkpoint.
EXIT_REFUSED = 2
#: A bug of the library (``EX_SOFTWARE``): one line, and ``GRIDLIB_TRACEBACK=1`` for the trace.
EXIT_INTERNAL = 70

#: ``check(args)``: an experiment's own check of its arguments, raising ``ValueError``.
Check = Callable[[Mapping[str, Any]], None]


class Entry(NamedTuple):
    """A registered experiment: the function, its extra argument check, whether it takes
    ``--devices``, and the domain of every flag."""

    fn: Callable[..., Any]
    check: Check | None
    devices: bool = False
    domains: Mapping[str, _flags.Domain] = {}
    memory: Callable[[Mapping[str, Any]], float] | None = None


_REGISTRY: dict[str, Entry] = {}


def experiment(name: str, check: Check | None = None, devices: bool = False,
               flags: Mapping[str, _flags.Domain] | None = None,
               memory: Callable[[Mapping[str, Any]], float] | None = None,
               ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as the experiment ``name``; returns ``fn`` unchanged.

    Args:
        name: the command's name.
        check: ``check(args)`` raising ``ValueError`` for inputs that one flag's domain cannot
            judge (e.g. a grid too large for memory, or two flags that must agree); runs before
            any work starts.
        devices: the experiment trains a ``vmap``-ed seed ensemble and reads ``--devices``
            from the session (:class:`gridlib.results.Session`'s ``devices``).
        flags: the domains of this experiment's flags (:class:`gridlib.flags.Domain`), over
            :data:`gridlib.flags.COMMON`. Every parameter must end up with one, and every
            default must lie in it (or be one of its sentinels).
        memory: ``memory(args)``: the run's peak memory in bytes, estimated from the shapes
            the flags imply, checked against this machine's before any work (default:
            :func:`data_memory`, the data set and a fixed runtime allowance).

    Raises:
        TypeError: a parameter without a default or without a domain, or a default outside
            its domain.
    """

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"experiment {name!r} is registered twice")
        params = list(inspect.signature(fn).parameters.values())
        for p in params:
            if p.default is inspect.Parameter.empty:
                raise TypeError(f"experiment {name!r}: parameter {p.name!r} needs a default")
        domains = _flags.domains_for(name, [p.name for p in params], flags)
        for p in params:
            try:
                domains[p.name].parse(_flag(p.name), _text(p.default))
            except _flags.FlagError as err:
                raise TypeError(f"experiment {name!r}: the default is refused: {err}") from None
        _REGISTRY[name] = Entry(fn, check, devices, domains, memory)
        return fn

    return register


def registry() -> dict[str, Callable[..., Any]]:
    """All experiments, after importing :data:`EXPERIMENT_MODULES`."""
    for module in EXPERIMENT_MODULES:
        importlib.import_module(module)
    return {name: entry.fn for name, entry in sorted(_REGISTRY.items())}


def entries() -> dict[str, Entry]:
    """Every registered experiment's :class:`Entry` (after :func:`registry`)."""
    registry()
    return dict(sorted(_REGISTRY.items()))


# --------------------------------------------------------------------------- argument checks


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _text(value: Any) -> str:
    """A default as the command line would type it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (a :class:`gridlib.flags.FlagError`)
    instead of a usage block and ``SystemExit``, which takes no abbreviated flags, and whose
    valued flags are checked by their declared domains (:meth:`add_flag`).

    Every command-line parser of the project is one of these (the library's commands, the
    data module's, the benchmarks'); a test refuses any other.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=False, exit_on_error=False, **kwargs)
        self.domains: dict[str, tuple[str, _flags.Domain]] = {}

    def error(self, message: str) -> NoReturn:
        """Raise argparse's complaint ``message`` as one line (a ``FlagError``).

        Raises:
            gridlib.flags.FlagError: always.
        """
        raise _flags.FlagError(f"{message}; `{self.prog} --help` lists the flags")

    def add_flag(self, flag: str, domain: _flags.Domain, default: Any, help: str = "") -> None:
        """A flag that takes a value in ``domain`` (the default must lie in it); a ``flag``
        without leading dashes is an optional positional argument."""
        dest = flag.lstrip("-").replace("-", "_")
        self.domains[dest] = (flag, domain)
        domain.parse(flag, _text(default))
        text = f"{help} [{domain.describe()}] (default: {default!r})".strip()
        if flag.startswith("-"):
            self.add_argument(flag, dest=dest, default=_text(default),
                              metavar=domain.kind.__name__.upper(), help=text)
        else:
            self.add_argument(flag, nargs="?", default=_text(default), help=text)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """Parse, then check every :meth:`add_flag` value against its domain.

        Raises:
            gridlib.flags.FlagError: one line naming the flag, the value and what is allowed.
        """
        try:
            ns = super().parse_args(args, namespace)
        except argparse.ArgumentError as err:
            raise _flags.FlagError(f"{err}; `{self.prog} --help` lists the flags") from None
        for dest, (flag, domain) in self.domains.items():
            setattr(ns, dest, domain.parse(flag, getattr(ns, dest)))
        return ns


def run_script(main: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> int:
    """Run a script's ``main(argv)`` with the command line's error handling: a refused flag
    or another user error is one line on stderr and exit status 2 (benchmarks use this)."""
    try:
        out = main(argv)
    except USER_ERRORS as err:
        print(f"error: {str(err).strip() or type(err).__name__}", file=sys.stderr)
        return EXIT_REFUSED
    return out if isinstance(out, int) else 0


def available_memory() -> int:
    """Physical memory of this machine in bytes (a generous upper bound for one run)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


#: What a run needs beyond its arrays: the Python process, JAX and XLA's compiled programs.
RUNTIME_BYTES = 1.5 * 2**30
#: The largest data set a run loads: 70,000 images of 784 float32 pixels, plus labels.
DATA_BYTES = 70_000 * (784 * 4 + 8)


def data_memory(args: Mapping[str, Any]) -> float:
    """The default peak-memory estimate: the data set (at most all of MNIST, float32) and
    :data:`RUNTIME_BYTES`; for runs whose arrays are small beside their data."""
    return DATA_BYTES + RUNTIME_BYTES


def dense_memory(sizes: list[int], batch: int, per_unit: float = 3.0, copies: int = 4) -> float:
    """Peak bytes of training a dense stack of layer ``sizes`` at ``batch`` in float32:
    ``copies`` of the weights (parameters, gradient, two Adam moments), ``per_unit`` stored
    activations per unit and example, the data and the runtime."""
    weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    return 4.0 * (copies * weights + per_unit * batch * sum(sizes)) + DATA_BYTES + RUNTIME_BYTES


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


def _parser_for(name: str, entry: Entry) -> argparse.ArgumentParser:
    fn, devices = entry.fn, entry.devices
    doc = inspect.getdoc(fn) or ""
    parser = OneLineParser(
        prog=f"python -m gridlib {name}",
        description=doc.split("Args:", 1)[0].rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,  # so that we know which flags the user typed
    )
    helps = report.docstring_section(doc, "Args")
    for p in inspect.signature(fn).parameters.values():
        domain = entry.domains[p.name]
        metavar = "BOOL" if domain.kind is bool else domain.kind.__name__.upper()
        text = f"{helps.get(p.name, '')} [{domain.describe()}]".strip()
        # Values stay text here: the flag's domain parses and checks them (parse()).
        parser.add_argument(_flag(p.name), dest=p.name, metavar=metavar,
                            help=f"{text} (default: {p.default!r})")
    run = parser.add_argument_group("run control (every experiment)")
    run.add_argument("--publish", action="store_true",
                     help="write a new result into results/ (the book's folder) instead of runs/results/")
    run.add_argument("--overwrite", action="store_true",
                     help="replace a published result made with another configuration")
    run.add_argument("--fresh", action="store_true",
                     help="discard this run's checkpoint and start afresh instead of resuming")
    run.add_argument("--stop-after-epochs", metavar="N",
                     help="stop after N epochs of this invocation (the run is not published)")
    if devices:
        run.add_argument("--devices", metavar="N",
                         help="split the seeds over N local devices (default: all, or the most "
                              "that divide the seeds); the numbers do not depend on it")
    return parser


RUN_FLAGS = ("publish", "overwrite", "fresh", "stop_after_epochs", "devices")


def parse(name: str, argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(experiment arguments, run options)`` for ``argv``, after every check.

    Every typed value is parsed by its flag's domain (:mod:`gridlib.flags`), then the
    experiment's own ``check`` runs; nothing else has happened yet.

    Raises:
        gridlib.flags.FlagError: a malformed or unknown flag, or a value outside its domain.
        ValueError: the experiment's own check refused the combination.
    """
    entry = _REGISTRY[name]
    ns = vars(_parser_for(name, entry).parse_args(argv))
    options = {k: ns.pop(k) for k in RUN_FLAGS if k in ns}
    for key, domain in _flags.RUN_CONTROL.items():
        if options.get(key) is not None:
            options[key] = domain.parse(_flag(key), options[key])
    if options.get("devices") is not None:
        from gridlib import devices

        devices.local_mesh(options["devices"])  # 1..local devices, or one line naming the range
    defaults = {p.name: p.default for p in inspect.signature(entry.fn).parameters.values()}
    typed = {k: entry.domains[k].parse(_flag(k), v) for k, v in ns.items()}
    args = {**defaults, **typed}
    if entry.check is not None:
        entry.check(args)
    require_memory((entry.memory or data_memory)(args), f"{name} with these flags")
    return args, options


# --------------------------------------------------------------------------- main


def _print_list(experiments: Mapping[str, Callable[..., Any]]) -> None:
    print("usage: python -m gridlib EXPERIMENT [--key value ...] [--publish] [--overwrite] [--fresh]\n"
          "       python -m gridlib recheck RESULT [RESULT ...] [--epochs N]\n\nexperiments:")  # fmt: skip
    for name, fn in experiments.items():
        summary = (inspect.getdoc(fn) or "").split("\n")[0]
        print(f"  {name:28s} {summary}")
    for name, module in COMMANDS.items():
        print(f"  {name:28s} {importlib.import_module(module).__doc__.split(': ', 1)[-1].splitlines()[0]}")


def _raise_stopped(signum: int, frame: Any) -> None:
    from gridlib.experiment import request_stop

    request_stop(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT raise :class:`gridlib.experiment.Stopped`.

    The exception unwinds like Ctrl-C: every file write is atomic (:mod:`gridlib.storage`), so
    wherever it lands the last completed epoch's checkpoint and every published file are whole;
    :func:`gridlib.experiment.fit` adds which epoch it stopped at. Only in the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gridlib`` and the ``gridlib`` script.

    Returns the exit status: 0 done, 1 a re-check differed, 2 refused (one line on stderr),
    74 a file could not be written or read, 128 + N stopped by signal N.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    from gridlib.experiment import Stopped

    try:
        with stop_on_signals():
            return _main(argv)
    except Stopped as stop:
        print(f"stopped by {signal.Signals(stop.signum).name}{stop.where()}: re-run the same "
              "command to resume from the last checkpoint", file=sys.stderr)
        return 128 + stop.signum
    except OSError as err:  # a StorageError, or any other refusal of the file system
        if os.environ.get("GRIDLIB_TRACEBACK"):
            raise
        print(f"error: {storage.describe(err)}", file=sys.stderr)
        return EXIT_STORAGE
    except Exception as err:  # a bug: one line and where to look, not a wall of traceback
        if os.environ.get("GRIDLIB_TRACEBACK"):
            raise
        where = traceback.extract_tb(err.__traceback__)[-1]
        print(f"error: internal error {type(err).__name__}: {str(err).strip()[:300]} (at "
              f"{Path(where.filename).name}:{where.lineno}); GRIDLIB_TRACEBACK=1 shows the "
              "trace", file=sys.stderr)
        return EXIT_INTERNAL


def _main(argv: list[str]) -> int:
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
        if name in COMMANDS:
            return importlib.import_module(COMMANDS[name]).main(rest)
        if name not in experiments:
            print(f"error: unknown experiment {name!r}; `python -m gridlib --list` shows them", file=sys.stderr)
            return 2
        args, options = parse(name, rest)
        with results.session(**options):
            experiments[name](**args)
        return 0
    except OSError as err:
        if not isinstance(err, FileNotFoundError) or isinstance(err, StorageError):
            raise  # main() reports a file-system failure with its own exit status
        print(f"error: {str(err).strip()}", file=sys.stderr)  # a missing input: the user's
        return EXIT_REFUSED
    except USER_ERRORS as err:
        if os.environ.get("GRIDLIB_TRACEBACK"):
            raise
        message = str(err).strip() or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a Ctrl-C outside stop_on_signals (e.g. from a thread)
        print("interrupted: re-run the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
