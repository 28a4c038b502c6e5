"""Results files: a run's metrics as JSON, with the provenance needed to trust them.

Every number the book shows is computed in the notebook that shows it or loaded from a file
written here by the library's own run. A file records the command, the git commit (and whether
the tree was dirty), the UTC date, the machine, the seed and the scale, next to the config and
the metrics, so a reader can re-run it.

Files live in ``results/<name>.json`` at the repository root (``GRIDLIB_RESULTS`` overrides).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gridlib import scale

ENV_VAR = "GRIDLIB_RESULTS"
REPO_ROOT = Path(__file__).resolve().parent.parent


def results_dir() -> Path:
    """The folder results are written to and read from."""
    return Path(os.environ.get(ENV_VAR, REPO_ROOT / "results"))


def path(name: str) -> Path:
    """The file for result ``name`` (``"snap1/adam_seed0"`` -> ``results/snap1/adam_seed0.json``)."""
    if not name or name.startswith(("/", ".")) or ".." in Path(name).parts:
        raise ValueError(f"result name {name!r} must be a relative name like 'chapter/run'")
    return results_dir() / f"{name}.json"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _command() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("gridlib/__main__.py", "gridlib/cli.py")):
        argv[0:1] = ["python", "-m", "gridlib"]
    elif argv and "ipykernel" in argv[0]:
        return "(executed in a notebook kernel)"
    elif argv and argv[0].endswith(".py"):
        argv[0:1] = [
            "python",
            str(Path(argv[0]).resolve().relative_to(REPO_ROOT))
            if Path(argv[0]).resolve().is_relative_to(REPO_ROOT)
            else argv[0],
        ]
    return " ".join(shlex.quote(a) for a in argv)


def provenance(seed: int | None = None) -> dict[str, Any]:
    """Where, when and how a run was made."""
    import jax

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "command": _command(),
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
        "date_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax_version": jax.__version__,
        "seed": seed,
        "scale": scale.current(),
    }


def to_jsonable(obj: Any) -> Any:
    """Numpy/JAX arrays and scalars, tuples and NamedTuples to plain JSON types (NaN -> None)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "_asdict"):
        return to_jsonable(obj._asdict())
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
        return to_jsonable(arr.item() if arr.ndim == 0 else arr.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def save(
    name: str,
    *,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    history: Mapping[str, Any] | None = None,
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``results/<name>.json`` atomically and return its path."""
    record = {
        "name": name,
        "provenance": provenance(seed),
        "config": to_jsonable(dict(config)),
        "metrics": to_jsonable(dict(metrics)),
        "history": to_jsonable(dict(history)) if history is not None else None,
        "extra": to_jsonable(dict(extra)) if extra is not None else None,
    }
    out = path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, out)
    return out


def exists(name: str) -> bool:
    """True if a results file for ``name`` exists."""
    return path(name).is_file()


def load(name: str) -> dict[str, Any]:
    """Read ``results/<name>.json``.

    Raises:
        FileNotFoundError: naming the missing file and how results are produced.
    """
    p = path(name)
    if not p.is_file():
        raise FileNotFoundError(
            f"no results file {p}. Results are written by the library's own runs, e.g. "
            f"`python -m gridlib <experiment> ...` (see `python -m gridlib --list`)."
        )
    return json.loads(p.read_text())


def load_all(prefix: str) -> dict[str, dict[str, Any]]:
    """All results under ``results/<prefix>/``, keyed by name, sorted."""
    base = results_dir() / prefix
    return {
        str(p.relative_to(results_dir()).with_suffix("")): json.loads(p.read_text())
        for p in sorted(base.rglob("*.json"))
    }


def describe(record: Mapping[str, Any]) -> str:
    """A one-line provenance statement for a loaded record, for the book's pages."""
    p = record["provenance"]
    dirty = " (uncommitted changes)" if p.get("git_dirty") else ""
    commit = (p.get("git_commit") or "unknown")[:10]
    return (
        f"`{p['command']}` at commit {commit}{dirty}, {p['date_utc']}, "
        f"{p['cpu']} ({p['cpu_count']} cores, JAX {p['jax_backend']}), "
        f"seed {p['seed']}, scale {p['scale']}"
    )
