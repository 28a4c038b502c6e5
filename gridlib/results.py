"""Results files: a run's metrics as JSON, with the provenance needed to trust them.

Every number the book shows is computed in the notebook that shows it or loaded from a file
written here by the library's own run. A file records one run of one configuration: the
command, the git commit and whether the source differed from it (both taken when the run
*started*, plus every later resume), the UTC date, the machine, the seed and the scale, next to
the config and the metrics.

Where a run's file goes:

- ``results/<name>.json`` (``GRIDLIB_RESULTS`` overrides) holds the book's published runs. A run
  lands there only at full scale, and only if it is a re-run of the configuration already
  published under that name, or if the user asked for it (``--publish`` for a new name,
  ``--overwrite`` to replace a different configuration).
- Everything else -- CI-scale runs, short trials, other configurations -- goes to
  ``runs/results/`` (under ``GRIDLIB_RUNS``), which git ignores and the book never reads. A
  scratch file is never replaced by a different configuration either: the newcomer gets a
  suffix.

Why this module is long: it holds one record's whole life -- its name, the publish guard that
decides where it may go, the write, the checked read, and the one-line description -- and
splitting it would scatter one contract over several files.

Readers declare what they expect: :func:`load` and :func:`load_group` refuse a record whose
config differs from the chapter's expectation, or a group of seeds whose configs differ in
anything but the seed, with a message naming the file and the field.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gridlib import provenance as provenance_module
from gridlib import scale, storage

# Re-exported: a record's provenance is part of the result, and callers reach it from here.
from gridlib.provenance import SOURCE_PATHS as SOURCE_PATHS
from gridlib.provenance import Session as Session
from gridlib.provenance import _git as _git
from gridlib.provenance import _now
from gridlib.provenance import current_session as current_session
from gridlib.provenance import provenance as provenance
from gridlib.provenance import session as session
from gridlib.provenance import source_changes as source_changes
from gridlib.storage import env_folder

ENV_VAR = "GRIDLIB_RESULTS"
RUNS_ENV_VAR = "GRIDLIB_RUNS"
REPO_ROOT = provenance_module.REPO_ROOT

#: Config keys that name the seed(s); records of one group may differ only in these.
SEED_KEYS = ("seed", "seeds")

#: The longest part of a run name between slashes: file systems allow 255 bytes per name, and
#: the writer adds a suffix (``.json``, a temporary ``.<pid>.<random>.tmp``).
MAX_NAME_PART = 200

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")


class ResultsError(ValueError):
    """A results file is missing, mismatched, or may not be written where asked."""


# --------------------------------------------------------------------------- folders and names


def _home() -> Path:
    # The checkout for the book; a user folder for an installed package (never site-packages).
    return REPO_ROOT if provenance_module.IN_REPOSITORY else provenance_module.user_folder()


def results_dir() -> Path:
    """The folder of published results: ``GRIDLIB_RESULTS``, else the book's ``results/`` in
    the source checkout, else ``~/.local/share/gridlib/results`` for an installed package
    (:func:`gridlib.provenance.user_folder`)."""
    return env_folder(ENV_VAR, _home() / "results")


def runs_dir() -> Path:
    """The folder of checkpoints and scratch results: ``GRIDLIB_RUNS``, else ``runs/`` of the
    checkout, else ``~/.local/share/gridlib/runs`` for an installed package."""
    return env_folder(RUNS_ENV_VAR, _home() / "runs")


def scratch_dir() -> Path:
    """Where unpublished results go: ``runs/results/`` (git-ignored, never read by the book)."""
    return runs_dir() / "results"


def check_name(name: str) -> str:
    """Return ``name`` if it is a relative run name like ``"chapter/run_seed0"``.

    Raises:
        ResultsError: for an empty, absolute or ``..`` name, or one with unusual characters;
            names are confined to the results and runs folders.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name.split("/"):
        raise ResultsError(
            f"run name {name!r} must be a relative name like 'chapter/run_seed0' "
            "(letters, digits, '_', '-', '.', '/'; no leading '/' or '.', no '..')"
        )
    longest = max(len(part.encode()) for part in name.split("/"))
    if longest > MAX_NAME_PART or len(name) > 4 * MAX_NAME_PART:
        raise ResultsError(f"run name {name[:40]!r}... is too long: at most {MAX_NAME_PART} "
                           "characters between slashes (file names have a limit)")
    return name


def path(name: str) -> Path:
    """The published file for ``name`` (``"snap1/adam_seed0"`` -> ``results/snap1/adam_seed0.json``)."""
    return results_dir() / f"{check_name(name)}.json"


# --------------------------------------------------------------------------- writing


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


def _first_non_finite(obj: Any, where: str = "") -> str | None:
    """The dotted path of the first NaN/inf number in ``obj``, or ``None``."""
    if isinstance(obj, Mapping):
        items: Iterable = ((f"{where}.{k}" if where else str(k), v) for k, v in obj.items())
    elif hasattr(obj, "_asdict"):
        return _first_non_finite(obj._asdict(), where)
    elif isinstance(obj, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    elif hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            return where
        return None
    elif isinstance(obj, float):
        return None if math.isfinite(obj) else where
    else:
        return None
    for key, value in items:
        bad = _first_non_finite(value, key)
        if bad is not None:
            return bad
    return None


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """Dotted names of the fields in which two configs differ (after JSON conversion)."""
    a, b = to_jsonable(dict(a)), to_jsonable(dict(b))
    out = []
    for key in sorted(set(a) | set(b)):
        if key in ignore:
            continue
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += [f"{key}.{k}" for k in config_differences(va, vb)]
        elif va != vb:
            out.append(key)
    return out


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part, "<absent>") if isinstance(value, Mapping) else "<absent>"
    return value


def _config_tag(config: Mapping[str, Any], seed: int | None) -> str:
    text = json.dumps({"config": to_jsonable(dict(config)), "seed": seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def progress(record: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(epochs done, epochs asked for)`` of a record, when it says: from its history's
    ``epoch`` entries and its config's ``epochs``; ``None`` for records without epochs."""
    planned = (record.get("config") or {}).get("epochs")
    history = record.get("history")
    done = history.get("epoch") if isinstance(history, Mapping) else None
    if not isinstance(planned, int) or isinstance(planned, bool) or not isinstance(done, list):
        return None
    return len(done), planned


def is_complete(record: Mapping[str, Any]) -> bool:
    """Whether a record is of a finished run: its ``metrics.complete`` when it has one, else
    all its asked-for epochs are in its history (records without epochs are complete)."""
    stated = (record.get("metrics") or {}).get("complete")
    if isinstance(stated, bool):
        return stated
    p = progress(record)
    return p is None or p[0] >= p[1]


def _check_complete_flag(name: str, record: Mapping[str, Any]) -> None:
    """Refuse a record whose ``complete`` flag contradicts its epochs."""
    stated, p = (record.get("metrics") or {}).get("complete"), progress(record)
    if isinstance(stated, bool) and p is not None and stated != (p[0] >= p[1]):
        raise ResultsError(f"{name}: says complete = {stated} with {p[0]} of {p[1]} epochs done; "
                           "nothing was saved")


def _scratch_path(name: str, config: Mapping[str, Any], seed: int | None) -> Path:
    out = scratch_dir() / f"{name}.json"
    if out.is_file():
        old = read(out)
        if config_differences(old.get("config") or {}, config) or old["provenance"].get("seed") != seed:
            out = scratch_dir() / f"{name}.{_config_tag(config, seed)}.json"
    return out


def destination(name: str, config: Mapping[str, Any], seed: int | None = None, *,
                publish: bool | None = None, overwrite: bool | None = None,
                complete: bool = True) -> tuple[Path, str]:
    """Where :func:`save` would write ``name`` with this config, and why: the publish guard
    every command's results pass through.

    ``publish``/``overwrite`` default to the active :class:`Session`'s options. A record that
    is not ``complete`` never replaces a complete published one, whatever the options.
    """
    s = current_session()
    publish = publish if publish is not None else bool(s and s.publish)
    overwrite = overwrite if overwrite is not None else bool(s and s.overwrite)
    target = path(name)
    if s is not None and s.stopped_early:
        return _scratch_path(name, config, seed), "the run was stopped early (--stop-after-epochs)"
    if scale.is_ci():
        return _scratch_path(name, config, seed), "CI-scale runs are never published"
    if target.is_file():
        old = read(target)
        if not complete and is_complete(old):
            return _scratch_path(name, config, seed), (
                f"{target} holds a complete run, and this one is not complete: an incomplete "
                "run never replaces a complete one"
            )
        diff = config_differences(old.get("config") or {}, config)
        if old["provenance"].get("seed") != seed:
            diff.append("seed")
        if not diff:
            return target, "a re-run of the published configuration"
        if overwrite:
            return target, f"--overwrite replaces the published file (it differed in {', '.join(diff)})"
        detail = ", ".join(f"{k}: {_lookup(old.get('config') or {}, k)!r} -> {_lookup(to_jsonable(dict(config)), k)!r}"
                           for k in diff[:4] if k != "seed")  # fmt: skip
        return _scratch_path(name, config, seed), (
            f"{target} holds another configuration ({detail or 'seed'}); "
            "pass --overwrite to replace it"
        )
    if publish:
        return target, "--publish adds it to the book's results"
    return _scratch_path(name, config, seed), (
        f"{target} does not exist; pass --publish to add this run to the book's results"
    )


def save(
    name: str,
    *,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    history: Mapping[str, Any] | None = None,
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
    publish: bool | None = None,
    overwrite: bool | None = None,
    arrays: Mapping[str, Any] | None = None,
) -> Path:
    """Write the record of one run and return its path (see the module docstring for where).

    ``arrays`` (name -> array, e.g. a model's final parameters) go to an ``.npz`` file beside
    the record, written first; the record names it with its SHA-256, and
    :func:`load_arrays` reads it back (never with pickle).

    Raises:
        FloatingPointError: if a metric is NaN or infinite (nothing is written).
        ResultsError: if ``metrics`` is empty or ``name`` is not a valid run name.
    """
    check_name(name)
    if not metrics:
        raise ResultsError(f"{name}: no metrics to save (did the run train for zero epochs?)")
    bad = _first_non_finite(metrics)
    if bad is not None:
        raise FloatingPointError(f"{name}: metric {bad!r} is not finite; the run diverged, nothing was saved")
    s = current_session()
    prov = dict(s.start) if s is not None else provenance()
    prov["seed"] = seed
    prov["saved_utc"] = _now()
    if s is not None and s.earlier_starts:
        # The record's commit is the one the run started at; later resumes are listed.
        first, *later = s.earlier_starts
        prov = {**prov, **{k: first[k] for k in ("git_commit", "git_dirty", "dirty_files", "date_utc") if k in first}}
        prov["resumed"] = [*later, {k: s.start.get(k) for k in ("git_commit", "git_dirty", "dirty_files", "date_utc")}]
    record = {
        "name": name,
        "provenance": prov,
        "config": to_jsonable(dict(config)),
        "metrics": to_jsonable(dict(metrics)),
        "history": to_jsonable(dict(history)) if history is not None else None,
        "extra": to_jsonable(dict(extra)) if extra is not None else None,
    }
    if not trained_by_fit(record):
        record["fingerprint"] = dict(NO_FINGERPRINT)
    _check_complete_flag(name, record)
    complete = is_complete(record) and not (s is not None and s.stopped_early)
    out, why = destination(name, config, seed, publish=publish, overwrite=overwrite,
                           complete=complete)
    if arrays:
        blob = _npz_bytes(arrays)
        record["arrays"] = {"file": out.with_suffix(".npz").name, "sha256": hashlib.sha256(blob).hexdigest(),
                            "shapes": {k: list(np.shape(v)) for k, v in arrays.items()}}
        with storage.publishing(out.with_suffix(".npz")):
            storage.write_bytes(out.with_suffix(".npz"), blob)
    with storage.publishing(out):
        storage.write_json(out, record)
    if not out.is_relative_to(results_dir()):
        print(f"note: {name} written to {out} ({why})", file=sys.stderr)
    return out


#: The fingerprint (:mod:`gridlib.fingerprint`) of a record not trained epoch by epoch through
#: ``fit`` (a benchmark, a sweep of closed-form quantities, a gradient comparison): it has no
#: start to fingerprint, so :func:`save` writes this one with it.
NO_FINGERPRINT = {"kind": "none", "why": "not trained epoch by epoch through fit, so it has no "
                  "start to fingerprint: its command remakes it whole"}


def trained_by_fit(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` was trained epoch by epoch through ``fit`` (its history has epochs)."""
    history = record.get("history") or {}
    return isinstance(history, Mapping) and bool(history.get("epoch"))


def tree_arrays(tree: Any) -> dict[str, np.ndarray]:
    """A pytree's leaves as ``{path: array}`` (e.g. ``".grid.weight"``), for ``save(arrays=)``:
    the names say where each array lives in the model's parameters."""
    import jax

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p) or "value": np.asarray(v) for p, v in leaves}


#: Fields added to a published record after its run, by :func:`annotate`: its fingerprint, a
#: declared drift (:mod:`gridlib.fingerprint`), and what a remake replaced
#: (:func:`gridlib.reproduce.remake`, shown by :func:`remake_note`). Nothing else may change.
ANNOTATIONS = ("fingerprint", "drift", "remade")


def annotate(name: str, field: str, value: Any) -> Path:
    """Set one annotation field (:data:`ANNOTATIONS`) of the published record ``name``, keeping
    every other field as it is; ``value=None`` removes it.

    Raises:
        ResultsError: for another field, or a record that is not published.
    """
    if field not in ANNOTATIONS:
        raise ResultsError(f"{field!r} is not an annotation of a record (only {', '.join(ANNOTATIONS)})")
    target = path(name)
    record = read(target)
    if value is None:
        record.pop(field, None)
    else:
        record[field] = to_jsonable(value)
    with storage.publishing(target):
        storage.write_json(target, record)
    return target


def _npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


# --------------------------------------------------------------------------- reading


def exists(name: str) -> bool:
    """True if a published results file for ``name`` exists."""
    return path(name).is_file()


#: The fields every results record has.
RECORD_FIELDS = ("name", "provenance", "config", "metrics")
_FIX = "re-make it with the command in its provenance, or restore it with git"


def read(file: str | os.PathLike) -> dict[str, Any]:
    """Read any results file by its path (published or scratch), through the one JSON reader.

    Raises:
        gridlib.storage.StoredFileError: naming the file, when it is missing, damaged, or
            lacks a record's fields (``provenance``, ``config``, ``metrics``).
    """
    record = storage.read_json(file, "results file", _FIX)
    missing = [k for k in RECORD_FIELDS if k not in record]
    if missing:
        raise storage.StoredFileError(f"results file {file} is damaged (no {', '.join(missing)}); {_FIX}")
    for key in ("provenance", "config", "metrics"):
        if not isinstance(record[key], Mapping):
            raise storage.StoredFileError(f"results file {file} is damaged ({key} is not an object); {_FIX}")
    return record


def load_arrays(name: str) -> dict[str, np.ndarray]:
    """The arrays saved with the published record ``name`` (``save(..., arrays=)``), checked
    against the SHA-256 the record holds.

    Raises:
        gridlib.storage.StoredFileError: when the record has no arrays, or its ``.npz`` is
            missing, damaged or not the one the record names.
    """
    import io

    record = load(name)
    entry = record.get("arrays")
    if not isinstance(entry, Mapping) or "sha256" not in entry:
        raise storage.StoredFileError(f"results/{name}.json has no saved arrays; {_FIX}")
    file = path(name).with_suffix(".npz")
    try:
        blob = file.read_bytes()
    except OSError as err:
        raise storage.StoredFileError(f"{file} cannot be read ({err.strerror}); {_FIX}") from None
    if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
        raise storage.StoredFileError(f"{file} is not the file its record names (checksum differs); {_FIX}")
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_scratch(name: str) -> dict[str, Any]:
    """Read an unpublished run from ``runs/results/<name>.json`` (for trials and tests; the book
    never does)."""
    return read(scratch_dir() / f"{check_name(name)}.json")


def check_expected(record: Mapping[str, Any], expect: Mapping[str, Any], source: str) -> None:
    """Refuse ``record`` unless every ``expect`` field (dotted for nested) equals its config's.

    ``"provenance.scale"``-style keys check the provenance instead of the config.

    Raises:
        ResultsError: naming ``source`` (the file), the field, the found and the expected value.
    """
    for key, want in expect.items():
        if key.startswith("provenance."):
            got = _lookup(record.get("provenance") or {}, key.removeprefix("provenance."))
        else:
            got = _lookup(record.get("config") or {}, key)
        if to_jsonable(got) != to_jsonable(want):
            raise ResultsError(f"{source}: {key} is {got!r}, but this chapter expects {want!r}")


def load(name: str, expect: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read the published ``results/<name>.json``, checking ``expect`` (see :func:`check_expected`).

    Raises:
        FileNotFoundError: naming the missing file and how results are produced.
        ResultsError: when the record's config does not match ``expect``.
    """
    p = path(name)
    if not p.is_file():
        raise FileNotFoundError(
            f"no results file {p}. Results are written by the library's own runs, e.g. "
            f"`python -m gridlib <experiment> ... --publish` (see `python -m gridlib --list`)."
        )
    record = read(p)
    if expect:
        check_expected(record, expect, str(p.relative_to(results_dir().parent) if p.is_relative_to(results_dir().parent) else p))
    return record


def names(pattern: str) -> list[str]:
    """Published result names matching a glob ``pattern`` (``"ep/mnist_784-500-10_ep_seed*"``), sorted."""
    root = results_dir()
    return sorted(
        n for n in (str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.json"))
        if fnmatch.fnmatchcase(n, pattern)
    )


def load_all(prefix: str) -> dict[str, dict[str, Any]]:
    """All published results under ``results/<prefix>/``, keyed by name, sorted."""
    base = results_dir() / prefix
    return {
        str(p.relative_to(results_dir()).with_suffix("")): read(p)
        for p in sorted(base.rglob("*.json"))
    }


def load_group(pattern: str, expect: Mapping[str, Any] | None = None,
               allow_empty: bool = False) -> dict[str, dict[str, Any]]:
    """The seeds of one configuration: every published record matching ``pattern``.

    Every record must match ``expect``, and all must have the same config except the seed
    (:data:`SEED_KEYS`), so that averaging them is honest.

    Raises:
        FileNotFoundError: if nothing matches (unless ``allow_empty``).
        ResultsError: naming the file and the field that differs.
    """
    group = {n: load(n, expect) for n in names(pattern)}
    if not group and not allow_empty:
        raise FileNotFoundError(f"no published results match {results_dir() / pattern}.json")
    items = list(group.items())
    for n, rec in items[1:]:
        diff = config_differences(items[0][1].get("config") or {}, rec.get("config") or {}, ignore=SEED_KEYS)
        if diff:
            raise ResultsError(
                f"{path(n)} differs from {path(items[0][0])} in {', '.join(diff)}: "
                "only records that differ in the seed may be averaged"
            )
    return group


def short_command(record: Mapping[str, Any]) -> str:
    """The recorded command without the interpreter prefix, e.g. ``gridlib mlp --epochs 25``,
    and without a flag repeated with the same value right after itself (``--progress false
    --progress false``, as a job runner that appended the flag once more recorded it)."""
    command = str(record["provenance"].get("command", "?")).replace("python -m gridlib", "gridlib", 1)
    return re.sub(r"(--[\w-]+ [^\s-]\S*)(?: \1)+(?=\s|$)", r"\1", command)


def _mended_paths(files: Iterable[str]) -> list[str]:
    """``dirty_files`` as recorded, with the first path mended where a record made before
    2026-11-29 17:00 UTC lost its first letter (``git status --porcelain`` output stripped,
    then cut at column 3: ``"enchmarks/x.py"`` for ``"benchmarks/x.py"``)."""
    files = [str(f) for f in files]
    if files:
        head = files[0].split("/", 1)[0]
        lost = [p for p in SOURCE_PATHS if p[1:] == head]
        if lost and head not in SOURCE_PATHS:
            files[0] = lost[0][0] + files[0]
    return files


def dirty_note(record: Mapping[str, Any]) -> str:
    """What the record's dirty flag means, in a few plain words ('' for a clean run): e.g.
    ``"source differed from its commit in gridlib/a.py and 2 other files"``."""
    p = record["provenance"]
    if not p.get("git_dirty"):
        return ""
    if p.get("dirty_rule") == "source":
        files = _mended_paths(p.get("dirty_files") or [])
        if not files:
            return "source differed from its commit"
        more = len(files) - 1
        least = "at least " if len(files) >= 20 else ""  # provenance keeps the first 20
        rest = f" and {least}{more} other file{'s' if more > 1 else ''}" if more else ""
        return f"source differed from its commit in {files[0]}{rest}"
    # Files written before 2026-11-29 flagged any tracked change (results/ included) and did
    # not record which files differed.
    return "some files differed from its commit"


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and "time" not in k and "wall" not in k and not k.endswith("_per_s")}  # fmt: skip


def replaced(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a remake keeps of the record it replaces (for the ``remade`` annotation): its
    commit, tree state, date and scalar metrics (timings and speeds aside: they measure the
    machine)."""
    p = record["provenance"]
    return {"git_commit": p.get("git_commit"), "git_dirty": p.get("git_dirty"),
            "date_utc": p.get("date_utc"), "metrics": _scalars(record["metrics"])}


def _differing(a: float, b: float) -> str:
    """``"a -> b"`` with the fewest significant digits (at least 4) that tell them apart."""
    digits = next((d for d in range(4, 18) if f"{a:.{d}g}" != f"{b:.{d}g}"), 17)
    return f"{a:.{digits}g} -> {b:.{digits}g}"


def remake_note(record: Mapping[str, Any]) -> str:
    """'' unless the record remade an older one; then which numbers moved, old -> new."""
    old = record.get("remade")
    if not isinstance(old, Mapping):
        return ""
    was = "a modified tree" if old.get("git_dirty") else f"commit {str(old.get('git_commit'))[:7]}"
    now, then = _scalars(record["metrics"]), old.get("metrics") or {}
    moved = [f"{k} {_differing(then[k], now[k])}" for k in sorted(now) if k in then and then[k] != now[k]]
    if not moved:
        return f"remade; the record it replaced (from {was}) had the same numbers"
    return f"remade; the record it replaced (from {was}) had " + ", ".join(moved[:3]) + (
        f" and {len(moved) - 3} more changes" if len(moved) > 3 else "")


def checks_this_record(check: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether a re-check (``results/rechecks/<name>``) re-ran this very record, not the one a
    remake replaced: a re-check made before the record's run started checked its predecessor,
    and says nothing of it."""
    made, started = check["provenance"].get("date_utc"), record["provenance"].get("date_utc")
    return not (made and started and str(made) < str(started))


def recheck_of(name: str, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The published re-check of ``record`` (published as ``name``), or ``None`` where there is
    none or it re-ran an earlier record of that name (:func:`checks_this_record`)."""
    check = f"rechecks/{name}"
    if not exists(check):
        return None
    found = load(check)
    return found if checks_this_record(found, record) else None


def remake_move(record: Mapping[str, Any]) -> float | None:
    """``None`` unless the record remade an older one; then the largest change of a test
    accuracy between the two (a fraction; 0.0 when none moved)."""
    old = record.get("remade")
    if not isinstance(old, Mapping):
        return None
    now, then = _scalars(record["metrics"]), old.get("metrics") or {}
    moves = [abs(now[k] - then[k]) for k in now
             if k in then and "test" in k and "acc" in k and not k.endswith(("_std", "_sd"))]
    return max(moves, default=0.0)


def describe(record: Mapping[str, Any], remade: bool = True) -> str:
    """A compact one-line provenance statement (plain text, no Markdown); with ``remade``, what a
    remade record replaced (:func:`remake_note`), where it says."""
    p = record["provenance"]
    commit = (p.get("git_commit") or "unknown")[:7]
    dirty = dirty_note(record)
    seed = f", seed {p['seed']}" if p.get("seed") is not None else ""
    resumed = f", resumed {len(p['resumed'])}x" if p.get("resumed") else ""
    remade = remake_note(record) if remade else ""
    return (
        f"{short_command(record)} · commit {commit}{f' · {dirty}' if dirty else ''} · "
        f"{str(p.get('date_utc', '?'))[:10]}{resumed} · "
        f"{p['cpu'] + ', ' if p.get('cpu') else ''}{p.get('cpu_count', '?')} cores, "
        f"JAX {p.get('jax_backend', '?')}{seed}, scale {p.get('scale', '?')}"
        + (f" · {remade}" if remade else "")
    )
