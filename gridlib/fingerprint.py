"""Fingerprints: a cheap signature of the start of every published run, so drift is never silent.

A record's **fingerprint** is what its recorded command computes in its first :data:`STEPS`
minibatches: each step's training metrics and two checksums of the state after them (the sum
and the sum of squares of every parameter and optimiser entry, in float64). The worker
(:mod:`gridlib.fingerprint_worker`) takes it from any source tree by replacing that tree's
``fit`` before the experiments import it, so the fingerprint of a record is taken *from the
commit that made it* and compared with the one this code gives:

- equal: this code still starts the run exactly as the record did;
- different: the code moved the record. The test command fails until the record is remade
  (``python -m gridlib reproduce --stale``), or the drift is declared in the record with its
  reason (:func:`declare_drift`), which then pins the new fingerprint.

Float32 rounding follows the CPU's vector instructions, so fingerprints are taken with XLA
pinned to :data:`ISA` (``--xla_cpu_max_isa``), and each carries a **canary**: a fixed computation
of the same kinds (a matrix product, transcendentals, a scan). A machine whose canary differs
from the record's rounds differently even when pinned; there fingerprints are compared within
:data:`OTHER_MACHINE_RTOL` (the sum of the state's entries, which can cancel to near zero,
against the state's norm), and the report says so.

Records that are not trained by ``fit`` (gradient comparisons, sweeps of closed-form
quantities, benchmarks, the original code's own loop) have a fingerprint of kind ``none``,
with the reason.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from gridlib import results, storage

#: Minibatches a fingerprint runs.
STEPS = 3
#: The vector instruction set XLA is pinned to while fingerprinting (every x86-64 CPU of the
#: last decade has it).
ISA = "AVX2"
#: Relative tolerance where this machine's canary differs from the record's.
OTHER_MACHINE_RTOL = 1e-3
#: Seconds a command may take to reach ``fit`` before it is called untrainable by ``fit``.
LIMIT_S = 120
#: The record field that holds the fingerprint, and the one that declares a drift.
FIELD, DRIFT = "fingerprint", "drift"
_WORKER = Path(__file__).with_name("fingerprint_worker.py")
_PREFIX = "python -m gridlib "
#: Published folders whose records are not runs (verdicts about other records).
NOT_RUNS = ("rechecks/",)


class Comparison(NamedTuple):
    """One record's stored fingerprint against the one this code gives.

    Attributes:
        name: the record.
        status: ``equal``, ``equal within tolerance (other machine)``, ``different`` or
            ``no fingerprint``.
        detail: the first difference, or why there is nothing to compare.
    """

    name: str
    status: str
    detail: str


def published_runs() -> list[str]:
    """Every published record that is a run (re-check verdicts aside), sorted."""
    return [n for n in results.load_all("") if not n.startswith(NOT_RUNS)]


def _copy_inputs(commands: Iterable[str], folder: Path) -> None:
    """Copy into the worker's (otherwise empty) results ``folder`` every published record that a
    command names as a flag's value (``--tuned-from filtergrid/tune/...``): the run reads it at
    start, and the commit that made the run may predate the record's commit."""
    for command in commands:
        for token in shlex.split(command):
            try:
                named = "/" in token and results.exists(token)
            except results.ResultsError:  # a flag value that is not a record's name
                named = False
            if named:
                storage.write_bytes(folder / f"{token}.json", results.path(token).read_bytes(), within=[folder])


def take(jobs: Sequence[tuple[str, str]], root: str | os.PathLike = results.REPO_ROOT,
         scale: str = "full", timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """Fingerprints of ``jobs`` (``(name, recorded command)``) taken with the source tree
    ``root`` (default: this code), in one process; keyed by name.

    Commands that are not ``python -m gridlib ...`` get kind ``none``.
    """
    out: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float | None] = {}
    lines = []
    for name, command in jobs:
        if not command.startswith(_PREFIX):
            out[name] = {"kind": "none", "why": f"made by {command!r}, not an experiment"}
        else:
            lines.append(json.dumps({"name": name, "command": command}))
    if not lines:
        return out
    with tempfile.TemporaryDirectory(prefix="gridlib-fingerprint-") as tmp:
        _copy_inputs([c for _, c in jobs], Path(tmp) / "results")
        flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_max_isa={ISA}".strip()
        env = {**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": str(root), "GRIDLIB_SCALE": scale,
               results.ENV_VAR: f"{tmp}/results", results.RUNS_ENV_VAR: f"{tmp}/runs",
               "GRIDLIB_FINGERPRINT_STEPS": str(STEPS), "GRIDLIB_FINGERPRINT_LIMIT_S": str(LIMIT_S),
               "GRIDLIB_FINGERPRINT_CACHE": f"{tmp}/xla", "JAX_PLATFORMS": "cpu"}  # fmt: skip
        proc = subprocess.run([sys.executable, "-c", _WORKER.read_text()], input="\n".join(lines) + "\n",
                              cwd=root, env=env, capture_output=True, text=True, timeout=timeout)  # fmt: skip
    for line in proc.stdout.splitlines():
        if line.startswith("GRIDLIB-FINGERPRINT "):
            found = json.loads(line.split(" ", 1)[1])
            seconds[found["name"]] = found.pop("seconds", None)
            out[found.pop("name")] = found
    missing = [n for n, _ in jobs if n not in out]
    if missing:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"fingerprinting stopped at {missing[0]} (exit {proc.returncode}): {last}")
    take.seconds = seconds  # type: ignore[attr-defined]  # per job, for whoever tunes the batches
    return out


def expected(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fingerprint this code must give for ``record``: the declared drift's, else the
    record's own (``None`` when it has none)."""
    drift = record.get(DRIFT)
    if isinstance(drift, Mapping) and isinstance(drift.get(FIELD), Mapping):
        return dict(drift[FIELD])
    found = record.get(FIELD)
    return dict(found) if isinstance(found, Mapping) else None


def _numbers(fp: Mapping[str, Any]) -> dict[str, float]:
    out = {f"metrics.{k}[{i}]": float(v) for k, vs in sorted(fp.get("metrics", {}).items())
           for i, v in enumerate(vs)}  # fmt: skip
    out.update({k: float(fp[k]) for k in ("state_sum", "state_sumsq", "state_size", "state_nonfinite")
                if k in fp})
    return out


def compare(name: str, want: Mapping[str, Any] | None, got: Mapping[str, Any]) -> Comparison:
    """Compare a stored fingerprint ``want`` with a fresh one ``got`` (see the module doc)."""
    if want is None:
        return Comparison(name, "no fingerprint", "the record carries none: take it with "
                          "`python -m gridlib reproduce --fingerprint`")
    if want.get("kind") != "start" or got.get("kind") != "start":
        if want.get("kind") == got.get("kind") == "none":
            return Comparison(name, "no fingerprint", str(want.get("why", "")))
        return Comparison(name, "different", f"kind {want.get('kind')!r} then, {got.get('kind')!r} now "
                          f"({got.get('why', '')})")
    same_machine = want.get("canary") == got.get("canary")
    rtol = 0.0 if same_machine else OTHER_MACHINE_RTOL
    a, b = _numbers(want), _numbers(got)
    if a.keys() != b.keys():
        return Comparison(name, "different", f"it reports {sorted(b)} now, {sorted(a)} then")
    for key in a:
        x, y = a[key], b[key]
        if x == y:
            continue
        # a sum of signed entries can cancel to near zero, where rounding is large against the
        # sum: it is compared against the state's norm, the scale of its rounding error
        scale = max(abs(x), abs(y), math.sqrt(max(a.get("state_sumsq", 0.0), 0.0))) \
            if key == "state_sum" else max(abs(x), abs(y))
        if not (math.isfinite(x) and math.isfinite(y)) or abs(x - y) > rtol * scale:
            return Comparison(name, "different", f"{key}: {x!r} in the record, {y!r} now")
    if same_machine:
        return Comparison(name, "equal", "")
    return Comparison(name, "equal within tolerance (other machine)",
                      f"this machine's canary differs from the record's; compared within {rtol:g}")


def _batches(jobs: Sequence[tuple[str, str]], workers: int) -> list[list[tuple[str, str]]]:
    """``jobs`` split over ``workers`` processes, the seeds of one configuration together (they
    share one compilation), the largest configurations first."""
    from gridlib import index

    groups: dict[str, list[tuple[str, str]]] = {}
    for job in jobs:
        groups.setdefault(index.group_key(job[0])[0], []).append(job)
    batches: list[list[tuple[str, str]]] = [[] for _ in range(max(1, workers))]
    for group in sorted(groups.values(), key=len, reverse=True):
        min(batches, key=len).extend(group)
    return [b for b in batches if b]


def take_current(names: Iterable[str], timeout: float | None = None, workers: int = 1,
                 records: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """This code's fingerprints of the records ``names`` that carry a start fingerprint (in
    ``workers`` processes), keyed by name (``records``: those records, already loaded)."""
    from concurrent.futures import ThreadPoolExecutor

    records = {n: results.load(n) for n in names} if records is None else records
    todo = [(n, str(r["provenance"].get("command", ""))) for n, r in records.items()
            if (expected(r) or {}).get("kind") == "start"]  # fmt: skip
    scale = _scale(records)
    fresh: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for part in pool.map(lambda batch: take(batch, scale=scale, timeout=timeout),
                             _batches(todo, workers)):
            fresh.update(part)
    return fresh


def check(names: Iterable[str], timeout: float | None = None, workers: int = 1) -> list[Comparison]:
    """Take each record's fingerprint with this code (in ``workers`` processes) and compare it
    with the one it carries."""
    records = {n: results.load(n) for n in names}
    fresh = take_current(records, timeout, workers, records)
    out = []
    for n in records:
        want = expected(records[n])
        out.append(compare(n, want, fresh[n]) if n in fresh else compare(n, want, want or {}))
    return out


def _scale(records: Mapping[str, Mapping[str, Any]]) -> str:
    scales = {r["provenance"].get("scale") or "full" for r in records.values()}
    if len(scales) > 1:
        raise ValueError(f"one fingerprint batch takes one scale, got {sorted(scales)}")
    return scales.pop() if scales else "full"


def at_commit(jobs: Sequence[tuple[str, str]], commit: str, timeout: float | None = None
              ) -> dict[str, dict[str, Any]]:
    """:func:`take` from a temporary checkout of ``commit`` (the code that made the records).

    Raises:
        ValueError: when the commit is not in this repository or cannot be checked out.
    """
    with results.provenance_module.checkout(commit, "gridlib-fingerprint-tree-") as tree:
        return take(jobs, tree, timeout=timeout)


def declare_drift(name: str, reason: str, fingerprint: Mapping[str, Any]) -> None:
    """Declare in record ``name`` that this code moved it, why, and the fingerprint it gives
    now (which the test command then holds it to)."""
    if not reason.strip():
        raise ValueError("a declared drift needs its reason")
    results.annotate(name, DRIFT, {"reason": reason.strip(), "declared_at": results._git("rev-parse", "HEAD"),
                                   FIELD: dict(fingerprint)})


def shell_command(command: str) -> str:
    """The recorded command as one copy-pasteable line."""
    return " ".join(shlex.quote(a) for a in shlex.split(command))
