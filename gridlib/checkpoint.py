"""Checkpoints that are safe to resume: plain arrays and JSON, checksummed, atomic, one writer.

A checkpoint is one ``.npz`` archive (:func:`numpy.savez`, read back with
``allow_pickle=False``) holding

- ``leaf_00000``, ``leaf_00001``, ...: the leaves of the state pytree, as plain arrays;
- ``meta``: a JSON object (UTF-8 bytes as a ``uint8`` array) with the run's ``fingerprint``,
  whatever the caller records (epoch, history, starts, inputs, ...), the format version and
  every leaf's shape and dtype;
- ``checksum``: the SHA-256 of ``meta`` and every leaf (dtype, shape and bytes).

Reading one is safe against a damaged file and against a foreign one:

- **Damage** (a flipped bit, a truncated file, an empty one) is caught by the archive's own
  structure and by the checksum, and is reported as damage -- never resumed silently, never
  mistaken for "another configuration".
- **A foreign file** is refused by the fingerprint (checked before any array is used) and by
  the structure check: the leaves are poured into the structure of a *template* -- the freshly
  initialised state -- only if their count, shapes and dtypes match it.
- **Nothing is ever executed from it**: no pickle, no object arrays (NumPy refuses them with
  ``allow_pickle=False``), no class or function named by the file; the pytree's structure comes
  from the running code, never from the file. A crafted file with a valid checksum can at worst
  hold wrong numbers of the right shape -- which the fingerprint makes a deliberate act.

Files are written through :func:`gridlib.storage.write_bytes`: atomically (an interrupt never
leaves half a file), with one-line :class:`~gridlib.storage.StorageError` messages for a full
or read-only disk, and with the temporaries of a killed writer removed at the next write (and
at the start of the next run, :func:`remove_stale`). :func:`lock` holds an exclusive lock on the
run folder for the duration of a run, so a second identical command refuses at once instead of
racing the first.

Every error names the file and the command-line flag that starts afresh (``--fresh``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from gridlib import storage

FORMAT = "gridlib-checkpoint"
VERSION = 2
FRESH_HINT = "pass --fresh to discard it and start afresh, or --name to run under another name"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: damaged, of another configuration, or locked by another run."""


class Checkpoint(NamedTuple):
    """A verified checkpoint: ``state`` in the template's structure, ``meta`` the JSON record."""

    state: Any
    meta: dict[str, Any]


def _leaf_name(i: int) -> str:
    return f"leaf_{i:05d}"


def _digest(meta_bytes: bytes, leaves: list[np.ndarray]) -> str:
    h = hashlib.sha256(meta_bytes)
    for a in leaves:
        h.update(f"|{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _as_array(leaf: Any) -> np.ndarray:
    a = np.asarray(jax.device_get(leaf))
    if a.dtype.hasobject:
        raise TypeError(f"a checkpoint holds plain arrays only, not {type(leaf).__name__}")
    return a


def save(file: str | os.PathLike, state: Any, meta: Mapping[str, Any]) -> Path:
    """Write ``state`` (a pytree of arrays) and ``meta`` to ``file`` atomically.

    Args:
        file: the checkpoint file (``.npz``).
        state: the pytree; its leaves are copied to the host (``device_get``).
        meta: JSON-able record; must hold the run's ``fingerprint``.

    Raises:
        gridlib.storage.StorageError: the file system refused (one line naming the file).
    """
    if "fingerprint" not in meta:
        raise ValueError("a checkpoint's meta must hold the run's fingerprint")
    leaves = [_as_array(x) for x in jax.tree.leaves(state)]
    record = {**meta, "format": FORMAT, "version": VERSION,
              "leaves": [{"shape": list(a.shape), "dtype": str(a.dtype)} for a in leaves]}
    meta_bytes = json.dumps(record, default=_jsonable).encode()  # key order kept, as callers rely on it
    arrays = {_leaf_name(i): a for i, a in enumerate(leaves)}
    arrays["meta"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    arrays["checksum"] = np.frombuffer(_digest(meta_bytes, leaves).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    # A run folder is the caller's choice (the command line always passes
    # experiment.run_dir_for(name), inside GRIDLIB_RUNS), so it is not confined here.
    return storage.write_bytes(file, buf.getvalue(), confine=False)


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.generic, np.ndarray)) or hasattr(x, "__array__"):
        return np.asarray(x).tolist()
    if isinstance(x, tuple):
        return list(x)
    return str(x)


def _damaged(file: Path, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {file} is damaged ({why}); {FRESH_HINT}")


def remove_stale(file: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``file`` left by a writer that was killed (see :mod:`gridlib.storage`)."""
    return storage.remove_stale_temporaries(file)


def _read(file: Path) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The verified metadata and leaves of ``file`` (checksum checked, nothing executed)."""
    try:
        z = np.load(file, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an archive")
        with z:
            entries = {name: z[name] for name in z.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        said = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise _damaged(file, f"not a readable checkpoint archive: {said}") from err
    meta_arr, checksum = entries.pop("meta", None), entries.pop("checksum", None)
    if meta_arr is None or checksum is None or meta_arr.dtype != np.uint8 or checksum.dtype != np.uint8:
        raise _damaged(file, "no metadata or checksum in the archive")
    meta_bytes = meta_arr.tobytes()
    names = [_leaf_name(i) for i in range(len(entries))]
    if sorted(entries) != names:
        raise _damaged(file, "unexpected entries in the archive")
    leaves = [entries[n] for n in names]
    if _digest(meta_bytes, leaves) != checksum.tobytes().decode("ascii", errors="replace"):
        raise _damaged(file, "checksum mismatch")
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _damaged(file, f"unreadable metadata: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _damaged(file, "not a gridlib checkpoint")
    if meta.get("version") != VERSION:
        raise _damaged(file, f"unknown format version {meta.get('version')!r}")
    if not isinstance(meta.get("fingerprint"), str):
        raise _damaged(file, "no fingerprint in the metadata")
    return meta, leaves


def _foreign(file: Path, detail: str) -> CheckpointError:
    detail = f" ({detail})" if detail else ""
    return CheckpointError(
        f"checkpoint {file} belongs to a different configuration{detail}; {FRESH_HINT}")


def read_meta(file: str | os.PathLike, differences: Callable[[dict[str, Any]], list[str]]) -> dict[str, Any]:
    """The metadata of ``file`` after verifying its checksum and that it belongs to the caller.

    Args:
        file: the checkpoint file.
        differences: ``meta -> [...]``, the settings in which the checkpoint differs from the
            configuration the caller names (its fingerprint included); empty to accept.

    Raises:
        CheckpointError: missing, damaged, or of a different configuration.
    """
    file = Path(file)
    try:
        meta, _ = _read(file)
    except FileNotFoundError as err:
        raise CheckpointError(f"no checkpoint {file}; start the run first") from err
    diff = differences(meta)
    if diff:
        raise _foreign(file, "differs in: " + ", ".join(diff))
    return meta


def load(file: str | os.PathLike, fingerprint: str, template: Any,
         explain: Callable[[dict[str, Any]], str] | None = None) -> Checkpoint | None:
    """The checkpoint in ``file`` if it exists and belongs to ``fingerprint``; ``None`` if absent.

    Args:
        file: the checkpoint file.
        fingerprint: the configuration's fingerprint, compared with the one in the metadata
            before any array is used.
        template: the pytree whose structure, leaf shapes and dtypes the state must have (the
            freshly initialised state; leaves may be arrays or ``jax.ShapeDtypeStruct``), or a
            function ``meta -> template`` of the verified metadata.
        explain: ``meta -> "differs in: ..."``, to say which setting differs.

    Raises:
        CheckpointError: damaged, of a different configuration, or of another structure.
    """
    file = Path(file)
    if not file.is_file():
        return None
    try:
        meta, leaves = _read(file)
    except FileNotFoundError:
        return None
    if meta["fingerprint"] != fingerprint:
        raise _foreign(file, explain(meta) if explain is not None else "")
    if callable(template):
        template = template(meta)
    like, treedef = jax.tree.flatten(template)
    if len(like) != len(leaves):
        raise _foreign(file, f"{len(leaves)} arrays where this run's state has {len(like)}")
    for i, (a, t) in enumerate(zip(leaves, like, strict=True)):
        dtype = np.dtype(t.dtype if hasattr(t, "dtype") else np.asarray(t).dtype)
        shape = tuple(np.shape(t))
        if a.dtype != dtype and a.dtype.kind == "V" and a.dtype.itemsize == dtype.itemsize:
            a = leaves[i] = a.view(dtype)  # e.g. bfloat16, which .npy stores as raw bytes
        if a.shape != shape or a.dtype != dtype:
            raise _foreign(file, f"array {i} is {a.dtype}{list(a.shape)}, this run's state "
                                 f"has {dtype}{list(shape)}")
    return Checkpoint(jax.tree.unflatten(treedef, leaves), meta)


@contextlib.contextmanager
def lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``run_dir`` (created if needed) while the block runs.

    Raises:
        CheckpointError: if another process holds it (the same run is already going).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_file = run_dir / ".lock"
    with open(lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise CheckpointError(
                f"{run_dir} is in use by {holder}: the same run is already going. Wait for it "
                "to finish (re-running then resumes or finds it done), or pass --name to run "
                "under another name"
            ) from err
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        try:
            yield run_dir
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)
