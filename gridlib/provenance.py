"""Provenance: where, when and how a run was made, read when the run *starts*.

- :func:`provenance`      the command, the git commit, whether the source differed from it (and
  which files), the date, the machine, JAX, the seed and the scale, read now
- :func:`source_changes`  the source files that differ from HEAD (``results/`` does not count)
- :class:`Session`, :func:`session`  what one command-line invocation asked for (``--publish``,
  ``--overwrite``, ``--fresh``, ``--stop-after-epochs``, ``--devices``) and the provenance read
  before any work;
  :func:`gridlib.experiment.fit` adds the earlier starts of a resumed run from its checkpoint
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gridlib import scale

REPO_ROOT = Path(__file__).resolve().parent.parent

#: True when the library runs from its source checkout (the book's repository), False when it
#: is installed (a wheel in site-packages): only a checkout has its book beside the package.
#: Outside the checkout there is no git provenance and no published folder of the book's.
IN_REPOSITORY = all((REPO_ROOT / f).is_file() for f in ("pyproject.toml", "_toc.yml", "gridlib/__init__.py"))


def user_folder() -> Path:
    """Where an installed gridlib keeps its results and runs: ``$XDG_DATA_HOME/gridlib``, or
    ``~/.local/share/gridlib`` (never inside the installed package)."""
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(base).expanduser() if base else Path.home() / ".local" / "share") / "gridlib"

#: Paths whose changes can change a number: a run is "dirty" if any of them differs from HEAD
#: (untracked files included). ``results/`` and prose are not among them.
SOURCE_PATHS = ("gridlib", "benchmarks", "notebooks", "pyproject.toml", "requirements-lock.txt")


def _git(*args: str) -> str | None:
    if not IN_REPOSITORY:
        # An installed package may sit inside somebody else's repository: its commit is not ours.
        return None
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@contextlib.contextmanager
def checkout(commit: str, prefix: str = "gridlib-tree-") -> Iterator[Path]:
    """A temporary worktree of ``commit`` (removed afterwards): the code that made a record.

    Raises:
        ValueError: when the commit is not in this repository (a shallow clone?) or cannot be
            checked out.
    """
    import tempfile

    if _git("cat-file", "-e", f"{commit}^{{commit}}") is None:
        raise ValueError(f"commit {commit[:7]} is not in this repository (a shallow clone?)")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        tree = Path(tmp) / "tree"
        if _git("worktree", "add", "--detach", str(tree), commit) is None:
            raise ValueError(f"cannot check out {commit[:7]}")
        try:
            yield tree
        finally:
            _git("worktree", "remove", "--force", str(tree))


def source_changes() -> list[str] | None:
    """Source files (:data:`SOURCE_PATHS`, untracked ones included) that differ from HEAD.

    ``None`` when git is unavailable.
    """
    # Plain path lists (``git status --porcelain`` would need its column layout parsed).
    changed = _git("diff", "--name-only", "HEAD", "--", *SOURCE_PATHS)
    untracked = _git("ls-files", "--others", "--exclude-standard", "--", *SOURCE_PATHS)
    if changed is None or untracked is None:
        return None
    return sorted({line for line in (changed + "\n" + untracked).splitlines() if line.strip()})


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_isa() -> str:
    """The widest vector instruction set of this CPU that XLA compiles for (``avx512f``,
    ``avx2``, ``avx``, ``sse4_2``, or the machine's name): float rounding can follow it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in have),
                            platform.machine())
    except OSError:
        pass
    return platform.machine() or "unknown"


def _command() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("gridlib/__main__.py", "gridlib/cli.py")):
        argv[0:1] = ["python", "-m", "gridlib"]
    elif argv and "ipykernel" in argv[0]:
        return "(executed in a notebook kernel)"
    elif argv and argv[0].endswith(".py"):
        script = Path(argv[0]).resolve()
        argv[0:1] = ["python", str(script.relative_to(REPO_ROOT)) if script.is_relative_to(REPO_ROOT) else argv[0]]
    return " ".join(shlex.quote(a) for a in argv)


def _version() -> str:
    from gridlib import __version__

    return __version__


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def provenance(seed: int | None = None) -> dict[str, Any]:
    """Where, when and how a run was made, read now.

    ``git_dirty`` is true when any source file (:data:`SOURCE_PATHS`) differs from the commit,
    and ``dirty_files`` names them; changes under ``results/`` do not count.
    """
    import jax

    changes = source_changes()
    return {
        "command": _command(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(changes) if changes is not None else None,
        "dirty_files": changes[:20] if changes else [],
        "dirty_rule": "source",  # marks the flag's meaning; older files counted any tracked change
        "date_utc": _now(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_isa": cpu_isa(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax_version": jax.__version__,
        "gridlib_version": _version(),
        "seed": seed,
        "scale": scale.current(),
    }


@dataclasses.dataclass
class Session:
    """What one command-line invocation asked for, and the provenance read when it started.

    Attributes:
        start: :func:`provenance` read before any work.
        publish: write a new name into ``results/`` (``--publish``).
        overwrite: replace a published file of another configuration (``--overwrite``).
        fresh: discard an existing checkpoint instead of resuming (``--fresh``).
        stop_after_epochs: end :func:`gridlib.experiment.fit` after this many epochs of this
            invocation (``--stop-after-epochs``; used by ``recheck``); such a run is never published.
        devices: how many local devices a seed ensemble is split over (``--devices``; ``None``:
            all, see :func:`gridlib.devices.ensemble_devices`). Not part of the configuration:
            the layout does not change the numbers beyond float rounding.
        earlier_starts: provenance of the earlier starts of a resumed run (from its checkpoint).
        stopped_early: set by ``fit`` when ``stop_after_epochs`` ended it.
    """

    start: dict[str, Any]
    publish: bool = False
    overwrite: bool = False
    fresh: bool = False
    stop_after_epochs: int | None = None
    devices: int | None = None
    earlier_starts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    stopped_early: bool = False


_SESSION: contextvars.ContextVar[Session | None] = contextvars.ContextVar("gridlib_session", default=None)


@contextlib.contextmanager
def session(**options: Any) -> Iterator[Session]:
    """Record provenance *now* and hold the run options until the block ends (see :class:`Session`)."""
    s = Session(start=provenance(), **options)
    token = _SESSION.set(s)
    try:
        yield s
    finally:
        _SESSION.reset(token)


def current_session() -> Session | None:
    """The active :class:`Session`, or ``None`` outside a command-line run."""
    return _SESSION.get()
