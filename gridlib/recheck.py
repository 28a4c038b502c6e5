"""Re-check a published result: re-run its recorded command for its first epoch(s) and compare.

``python -m gridlib recheck baselines/mnist-mlp-784-500-10_seed0 [--epochs 1] [--publish]``

The recorded command runs again in a subprocess, with results and checkpoints redirected to a
temporary folder and ``--stop-after-epochs``, at the record's scale. Its history for those
epochs is compared number by number with the record's (timings excluded). The verdict is
``bit-identical``, ``within tolerance`` (relative difference <= ``rtol``), ``other hardware``
(the record's own commit, re-run here, gives this code's numbers: the machine moved them, not
the code) or ``different``,
together with the source files changed since the record's commit. ``--publish`` keeps the
verdict as ``results/rechecks/<name>.json``, which the book shows next to the record's
provenance (it is how an old "uncommitted changes" flag is shown to be harmless).
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from gridlib import flags, results
from gridlib import provenance as provenance_module

PREFIX = "python -m gridlib "


class Verdict(NamedTuple):
    """The outcome of :func:`recheck`.

    Attributes:
        name: the result re-checked.
        status: ``bit-identical``, ``within tolerance``, ``different`` or ``not recheckable``.
        epochs: epochs re-run.
        n_compared: numbers compared.
        max_rel_diff: the largest relative difference found (0.0 when identical).
        worst: the history entry with that difference.
        changed_files: source files changed since the record's commit (``None``: unknown commit).
        detail: why it is not recheckable, or the subprocess's last error line.
    """

    name: str
    status: str
    epochs: int
    n_compared: int
    max_rel_diff: float
    worst: str
    changed_files: list[str] | None
    detail: str


def _changed_since(commit: str | None) -> list[str] | None:
    if not commit or results._git("cat-file", "-e", f"{commit}^{{commit}}") is None:
        return None
    diff = results._git("diff", "--name-only", commit, "--", *results.SOURCE_PATHS)
    return [] if not diff else diff.splitlines()


def _flat(value: Any) -> list[float | None]:
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [None if value is None else float(value)]


def compare(recorded: dict[str, list], fresh: dict[str, list], epochs: int) -> tuple[int, float, str]:
    """``(numbers compared, max relative difference, worst key)`` over the first ``epochs``.

    Timing entries (names containing ``time`` or ``wall``) are skipped.

    Raises:
        ValueError: if the fresh history lacks an entry or an epoch the record has.
    """
    n, worst, worst_key = 0, 0.0, ""
    for key, values in recorded.items():
        if "time" in key or "wall" in key:
            continue
        if key not in fresh or len(fresh[key]) < epochs:
            raise ValueError(f"the re-run has no {key!r} for {epochs} epoch(s)")
        a, b = _flat(values[:epochs]), _flat(fresh[key][:epochs])
        if len(a) != len(b):
            raise ValueError(f"{key!r} has {len(b)} numbers in the re-run, {len(a)} in the record")
        for x, y in zip(a, b, strict=True):
            n += 1
            if x == y:
                continue
            if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
                rel = math.inf
            else:
                rel = abs(x - y) / max(abs(x), abs(y), 1e-30)
            if rel > worst:
                worst, worst_key = rel, key
    return n, worst, worst_key


def _rerun(command: str, prov: dict, epochs: int, root: Path,
           timeout: float | None) -> tuple[dict | None, str]:
    """``(record, "")`` of ``command``'s first ``epochs`` re-run from the source tree ``root``,
    with results and checkpoints in a temporary folder; ``(None, why)`` when it failed."""
    with tempfile.TemporaryDirectory(prefix="gridlib-recheck-") as tmp:
        env = {**os.environ, results.ENV_VAR: f"{tmp}/results", results.RUNS_ENV_VAR: f"{tmp}/runs",
               "GRIDLIB_SCALE": prov.get("scale") or "full", "PYTHONPATH": str(root)}  # fmt: skip
        argv = [*shlex.split(command)[3:], "--stop-after-epochs", str(epochs)]
        proc = subprocess.run([sys.executable, "-m", "gridlib", *argv], cwd=root, env=env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
        outputs = sorted(Path(tmp).rglob("*.json"))
        if proc.returncode != 0 or len(outputs) != 1:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"the re-run failed (exit {proc.returncode}): {last}"
        return results.read(outputs[0]), ""


def _reference_commits(name: str, prov: dict) -> list[str]:
    """Commits whose code is known to give the record's numbers, newest first: the commit of
    its published re-check (when that re-check matched), then the record's own."""
    out = []
    check = results.recheck_of(name, {"provenance": prov})
    if check is not None and check["metrics"].get("status") in ("bit-identical", "within tolerance"):
        out.append(check["provenance"].get("git_commit"))
    out.append(prov.get("git_commit"))
    return [c for c in dict.fromkeys(out) if c]


def _rerun_at(commit: str, command: str, prov: dict, epochs: int,
              timeout: float | None) -> tuple[dict | None, str]:
    """:func:`_rerun` from a temporary checkout of ``commit`` (``(None, why)`` when that commit
    is not in this repository or its command fails there)."""
    try:
        with provenance_module.checkout(commit, "gridlib-recheck-tree-") as tree:
            return _rerun(command, prov, epochs, tree, timeout)
    except ValueError as err:  # not in this repository, or cannot be checked out
        return None, str(err)


def recheck(name: str, epochs: int = 1, rtol: float = 1e-5, timeout: float | None = None) -> Verdict:
    """Re-run the first ``epochs`` of the published result ``name`` and compare (see module doc).

    When the numbers differ from the record's, and the record was made on a CPU with another
    vector instruction set (or says nothing of it), the same command is also re-run on this machine
    from a commit known to give the record's numbers (its published re-check's, else its own).
    If that gives this code's numbers, the code did not move them -- the machine did (XLA
    compiles for the CPU it runs on, and float rounding follows its vector instructions) -- and
    the verdict is ``other hardware``, not ``different``.
    """
    record = results.load(name)
    prov = record["provenance"]
    changed = _changed_since(prov.get("git_commit"))
    command = str(prov.get("command", ""))
    history = record.get("history") or {}

    def verdict(status: str, n=0, rel=0.0, worst="", detail="") -> Verdict:
        return Verdict(name, status, epochs, n, rel, worst, changed, detail)

    if not command.startswith(PREFIX):
        return verdict("not recheckable", detail=f"made by {command!r}, not a gridlib command")
    if len(history.get("epoch") or []) < epochs:
        return verdict("not recheckable", detail=f"the record has no per-epoch history for {epochs} epoch(s)")
    fresh_record, why = _rerun(command, prov, epochs, results.REPO_ROOT, timeout)
    if fresh_record is None:
        return verdict("different", detail=why)
    fresh = fresh_record.get("history") or {}
    differs = results.config_differences(record.get("config") or {}, fresh_record.get("config") or {})
    if differs:
        return verdict("different", detail="the recorded config differs from the one its command "
                       f"runs now, in: {', '.join(differs[:6])}")
    try:
        n, rel, worst = compare(history, fresh, epochs)
    except ValueError as err:
        return verdict("different", detail=str(err))
    if rel <= rtol:
        return verdict("bit-identical" if rel == 0.0 else "within tolerance", n, rel, worst)
    if prov.get("cpu_isa") == provenance_module.cpu_isa():
        return verdict("different", n, rel, worst, detail=(
            f"the record was made with this CPU's instruction set ({prov['cpu_isa']}), so the "
            "machine cannot explain it"))
    why = "no commit known to give the record's numbers"
    for commit in _reference_commits(name, prov):
        then, why = _rerun_at(commit, command, prov, epochs, timeout)
        if then is None:
            continue
        try:
            _, rel_here, _ = compare(then.get("history") or {}, fresh, epochs)
        except ValueError as err:
            return verdict("different", n, rel, worst, detail=str(err))
        if rel_here <= rtol:
            return verdict("other hardware", n, rel, worst, detail=(
                f"commit {commit[:7]}, which gave the record's numbers, gives this code's numbers "
                f"on this machine (max rel diff {rel_here:.2g}): the machine moved them, not the "
                f"code (the record was made on: {prov.get('cpu', '?')})"))
        return verdict("different", n, rel, worst, detail=(
            f"on this machine commit {commit[:7]} and this code differ too (max rel diff "
            f"{rel_here:.2g})"))
    return verdict("different", n, rel, worst, detail=why)


def describe(v: Verdict) -> str:
    """One line for a verdict."""
    if v.status == "not recheckable":
        return f"{v.name}: not recheckable ({v.detail})"
    where = f" (worst: {v.worst})" if v.worst else ""
    text = f"{v.name}: {v.status} over {v.n_compared} numbers of {v.epochs} epoch(s), max rel diff {v.max_rel_diff:.2g}{where}"
    if v.detail:
        text += f"; {v.detail}"
    if v.changed_files is None:
        text += "; recorded commit unknown here"
    elif v.changed_files:
        text += f"; source changed since the record's commit: {', '.join(v.changed_files[:6])}" + (
            f" and {len(v.changed_files) - 6} more" if len(v.changed_files) > 6 else "")
    else:
        text += "; no source changed since the record's commit"
    return text


#: The domains of ``recheck``'s flags (:mod:`gridlib.flags`).
FLAGS = {
    "epochs": flags.integer(1, 1000),
    "rtol": flags.real(0.0, 1.0, meaning="the largest relative difference called equal"),
    "names": flags.RESULT_NAME,
}


def main(argv: list[str]) -> int:
    """``python -m gridlib recheck NAME [NAME ...]``: exit 1 if any result differs."""
    from gridlib.cli import OneLineParser

    parser = OneLineParser(prog="python -m gridlib recheck", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="+", help="published result names, e.g. ep/mnist_784-500-10_ep_seed0")
    parser.add_flag("--epochs", FLAGS["epochs"], 1, help="epochs to re-run")
    parser.add_flag("--rtol", FLAGS["rtol"], 1e-5, help="relative tolerance")
    parser.add_argument("--publish", action="store_true", help="keep each verdict in results/rechecks/")
    args = parser.parse_args(argv)
    names = [n.removeprefix("results/").removesuffix(".json") for n in args.names]
    for name in names:
        if not name:
            raise flags.FlagError("recheck: an empty result name")
        results.check_name(name)
        results.load(name)  # a missing or damaged record is refused before any re-run
    failed = False
    for name in names:
        v = recheck(name, args.epochs, args.rtol)
        print(describe(v))
        failed |= v.status == "different"
        if args.publish and v.status != "not recheckable":
            with results.session(publish=True, overwrite=True):
                results.save(f"rechecks/{name}", config={"result": name, "epochs": v.epochs, "rtol": args.rtol},
                             metrics={**v._asdict(), "changed_files": v.changed_files or [],
                                      "max_rel_diff": v.max_rel_diff if math.isfinite(v.max_rel_diff) else "inf"})
    return 1 if failed else 0
