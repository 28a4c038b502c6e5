"""``python -m gridlib reproduce``: every published result, its status, and the command that remakes it.

::

    python -m gridlib reproduce                  # every result: index, status, re-check, command
    python -m gridlib reproduce --stale          # only those to remake (a scheduler's job list)
    python -m gridlib reproduce --stale --run 3  # remake job 3 of that list (resumable)
    python -m gridlib reproduce --stale --run all
    python -m gridlib reproduce --fingerprint NAME [NAME ...]
    python -m gridlib reproduce --check          # every fingerprint against this code

A result is **stale** when it was made from a working tree that differed from its commit
(``git_dirty``), when its published re-check (``results/rechecks/``) found it ``different``, or
when this code moved it (a declared drift, :mod:`gridlib.fingerprint`). Each line of the list
is one job: ``INDEX<TAB>NAME<TAB>STATUS<TAB>RE-CHECK<TAB>COMMAND``, so that an array job can run
``reproduce --stale --run $SLURM_ARRAY_TASK_ID``. Indexes follow the sorted names of the stale
results, so they are stable while the list is.

``--run`` refuses to start from a modified tree (the remake would be stale again). Each job runs
the recorded command, which resumes from its checkpoint when interrupted, replaces the published
file (the same configuration), and then takes the new record's fingerprint from this commit.
``--fingerprint`` takes the fingerprint of records made from a clean tree *from the commit that
made them* and stores it in the record. ``--check`` takes every record's fingerprint with this
code and compares (exit 1 if any moved without a declared drift, or a record from a clean tree
carries none); the test command runs it.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from gridlib import fingerprint, flags, results


class Status(NamedTuple):
    """One published result's standing.

    Attributes:
        name: the result.
        stale: whether ``--stale`` remakes it.
        status: ``clean``, or why it is stale.
        recheck: its published re-check (verdict and commit), or ``-``.
        command: the command that remakes it.
    """

    name: str
    stale: bool
    status: str
    recheck: str
    command: str


def status(name: str, record: Mapping[str, Any], check: Mapping[str, Any] | None) -> Status:
    """The :class:`Status` of ``record`` (published as ``name``), given its re-check, if any."""
    prov = record["provenance"]
    why = []
    if prov.get("git_dirty") is not False:
        why.append("made from a modified tree" if prov.get("git_dirty") else "tree state unknown")
    verdict = "-"
    if check is not None:
        m = check["metrics"]
        verdict = f"{m.get('status')} at {str(check['provenance'].get('git_commit'))[:7]}"
        if m.get("status") == "different":
            why.append("its re-check differs")
    drift = record.get(fingerprint.DRIFT)
    if isinstance(drift, Mapping):
        why.append(f"moved by the code since ({drift.get('reason', '')})")
    return Status(name, bool(why), "; ".join(why) or "clean", verdict,
                  fingerprint.shell_command(str(prov.get("command", ""))))


def statuses() -> list[Status]:
    """Every published run's :class:`Status`, sorted by name."""
    records = results.load_all("")
    checks = {n.removeprefix("rechecks/"): r for n, r in records.items() if n.startswith("rechecks/")}
    return [status(n, records[n], checks[n] if n in checks and
                   results.checks_this_record(checks[n], records[n]) else None)
            for n in fingerprint.published_runs()]


def jobs(stale_only: bool) -> list[Status]:
    """The list ``reproduce`` prints (index = position + 1)."""
    return [s for s in statuses() if s.stale or not stale_only]


def remake(job: Status) -> int:
    """Run one job's command from this (clean) tree and fingerprint the new record; the
    command's exit status."""
    changes = results.source_changes()
    if changes:
        raise ValueError(f"the source differs from its commit ({', '.join(changes[:3])}): a remake "
                         "from a modified tree would be stale again; commit first")
    if not job.command.startswith("python -m gridlib "):
        raise ValueError(f"{job.name} is made by {job.command!r}: run it by hand")
    argv = [sys.executable, "-m", "gridlib", *shlex.split(job.command)[3:]]
    old = results.replaced(results.load(job.name))
    print(f"remaking {job.name}: {job.command}", flush=True)
    code = subprocess.run(argv).returncode
    if code == 0:
        record = results.load(job.name)
        if record["provenance"].get("date_utc") != old["date_utc"]:  # a new record landed
            results.annotate(job.name, "remade", old)
        if record["provenance"].get("git_dirty") is False:
            store_fingerprints([job.name])
    return code


def store_fingerprints(names: Sequence[str]) -> None:
    """Take each record's fingerprint from the commit that made it and store it in the record;
    records made from a modified tree are refused (their code is in no commit)."""
    by_commit: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        record = results.load(name)
        prov = record["provenance"]
        if prov.get("git_dirty") is not False or not prov.get("git_commit"):
            raise ValueError(f"{name} was not made from a clean commit; remake it first")
        if not results.trained_by_fit(record):
            results.annotate(name, fingerprint.FIELD, results.NO_FINGERPRINT)
            continue
        by_commit.setdefault(prov["git_commit"], []).append((name, str(prov.get("command", ""))))
    head = results._git("rev-parse", "HEAD")
    for commit, batch in by_commit.items():
        taken = fingerprint.take(batch) if commit == head and not results.source_changes() \
            else fingerprint.at_commit(batch, commit)
        for name, fp in taken.items():
            results.annotate(name, fingerprint.FIELD, {**fp, "commit": commit, "isa": fingerprint.ISA})
            print(f"{name}: fingerprint {fp.get('kind')} from {commit[:7]}", flush=True)


def check(workers: int) -> int:
    """Compare every published run's fingerprint with this code's; print what differs or is
    missing, and return the exit status (1 if any)."""
    names = fingerprint.published_runs()
    comparisons = fingerprint.check(names, workers=workers)
    by_status: dict[str, int] = {}
    failed = False
    for c in comparisons:
        by_status[c.status] = by_status.get(c.status, 0) + 1
        record = results.load(c.name)
        clean = record["provenance"].get("git_dirty") is False
        if c.status == "different" or (c.status == "no fingerprint" and clean and
                                       fingerprint.expected(record) is None):
            failed = True
            print(f"{c.name}: {c.status}: {c.detail}")
        elif c.status == "no fingerprint" and not clean:
            print(f"{c.name}: stale (made from a modified tree), no fingerprint until it is remade")
        elif c.status.startswith("equal within"):
            print(f"{c.name}: {c.status}: {c.detail}")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
    print(f"fingerprints of {len(comparisons)} published runs: {summary}")
    if failed:
        print("a published record moved: remake it (python -m gridlib reproduce --stale --run ...) "
              "or declare the drift with its reason (gridlib.fingerprint.declare_drift)")
    return 1 if failed else 0


FLAGS = {
    "workers": flags.integer(1, 64, meaning="processes that take fingerprints"),
    "run": flags.Domain(str, pattern=r"all|[1-9][0-9]{0,5}", max_len=6, special=("",),
                        meaning="a job's index in the list, or 'all'; '': list them"),
    "names": flags.RESULT_NAME,
}


def main(argv: list[str]) -> int:
    """``python -m gridlib reproduce [--stale] [--run I|all] [--fingerprint NAME ...]``."""
    from gridlib.cli import OneLineParser

    parser = OneLineParser(prog="python -m gridlib reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--stale", action="store_true", help="only the results to remake")
    parser.add_flag("--run", FLAGS["run"], "", help="remake job I of the list, or all of them")
    parser.add_argument("--fingerprint", nargs="+", metavar="NAME", help="store these records' fingerprints")
    parser.add_argument("--check", action="store_true", help="compare every fingerprint with this code")
    parser.add_flag("--workers", FLAGS["workers"], 2, help="processes for --check")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.workers)
    if args.fingerprint:
        names = [n.removeprefix("results/").removesuffix(".json") for n in args.fingerprint]
        for n in names:
            if not n:
                raise flags.FlagError("reproduce: an empty result name")
            flags.RESULT_NAME.parse("--fingerprint", n)
            results.load(n)
        store_fingerprints(names)
        return 0
    listed = jobs(args.stale)
    if not args.run:
        for i, s in enumerate(listed, 1):
            print(f"{i}\t{s.name}\t{s.status}\t{s.recheck}\t{s.command}")
        n_stale = sum(s.stale for s in listed)
        print(f"# {len(listed)} results, {n_stale} stale", file=sys.stderr)
        return 0
    if not args.stale:
        raise flags.FlagError("reproduce: --run takes a job of the --stale list; add --stale")
    chosen = listed if args.run == "all" else listed[int(args.run) - 1:int(args.run)]
    if not chosen:
        raise flags.FlagError(f"reproduce: --run {args.run}: the stale list has {len(listed)} jobs")
    failed = [job.name for job in chosen if remake(job) != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
