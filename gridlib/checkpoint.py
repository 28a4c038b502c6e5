"""Checkpoints that are safe to resume: checksummed, atomic, and one writer per run folder.

A checkpoint file is one header line followed by a pickled payload::

    GRIDLIB-CHECKPOINT 1 <sha256 of the payload> <payload length>\\n<payload>

- The payload's checksum is verified before it is unpickled, so a damaged file is reported as
  damaged -- never resumed silently, never mistaken for "another configuration".
- Files are written to a per-process temporary name and renamed into place, so an interrupt
  never leaves half a file and two processes never share a temporary file.
- :func:`lock` holds an exclusive lock on the run folder for the duration of a run, so a second
  identical command refuses at once instead of racing the first.

Every error names the file and the command-line flag that starts afresh (``--fresh``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MAGIC = b"GRIDLIB-CHECKPOINT"
VERSION = 1
FRESH_HINT = "pass --fresh to discard it and start afresh, or --name to run under another name"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: damaged, of another configuration, or locked by another run."""


def save(file: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` to ``file`` atomically, with a checksum header."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    header = b"%s %d %s %d\n" % (MAGIC, VERSION, hashlib.sha256(body).hexdigest().encode(), len(body))
    fd, tmp = tempfile.mkstemp(prefix=file.name + ".", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header + body)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _damaged(file: Path, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {file} is damaged ({why}); {FRESH_HINT}")


def read(file: str | os.PathLike) -> Any:
    """The payload of ``file``, after verifying its checksum.

    Raises:
        CheckpointError: if the header is unreadable, the checksum or length does not match,
            or the payload cannot be unpickled.
    """
    file = Path(file)
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint {file} cannot be read ({err}); {FRESH_HINT}") from err
    head, sep, body = raw.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) != 4 or parts[0] != MAGIC:
        raise _damaged(file, "no valid header")
    if parts[1] != str(VERSION).encode():
        raise _damaged(file, f"unknown format version {parts[1]!r}")
    if not parts[3].isdigit() or int(parts[3]) != len(body):
        raise _damaged(file, f"payload has {len(body)} bytes, header says {parts[3].decode(errors='replace')}")
    if hashlib.sha256(body).hexdigest().encode() != parts[2]:
        raise _damaged(file, "checksum mismatch")
    try:
        return pickle.loads(body)
    except Exception as err:  # noqa: BLE001 - a verified payload that still fails is damaged
        raise _damaged(file, f"{type(err).__name__}: {err}") from err


def load(file: str | os.PathLike, fingerprint: str,
         explain: Callable[[dict[str, Any]], str] | None = None) -> dict[str, Any] | None:
    """The payload of ``file`` if it exists and belongs to ``fingerprint``; ``None`` if absent.

    Args:
        file: the checkpoint file.
        fingerprint: the configuration's fingerprint, stored as ``payload["fingerprint"]``.
        explain: ``payload -> "differs in: ..."``, to say which setting differs.

    Raises:
        CheckpointError: damaged, or of a different configuration.
    """
    file = Path(file)
    if not file.is_file():
        return None
    payload = read(file)
    if not isinstance(payload, dict) or "fingerprint" not in payload:
        raise _damaged(file, "no fingerprint in the payload")
    if payload["fingerprint"] != fingerprint:
        detail = f" ({explain(payload)})" if explain is not None else ""
        raise CheckpointError(
            f"checkpoint {file} belongs to a different configuration{detail}; {FRESH_HINT}"
        )
    return payload


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
