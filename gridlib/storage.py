"""The one write path and the one reader of stored JSON.

Every file the library writes -- results, checkpoints, re-checks, data caches, exports,
benchmark files -- goes through :func:`write_bytes` (or its wrappers :func:`write_text` and
:func:`write_json`):

- **Atomic.** The bytes go to a temporary file beside the target (``<name>.<pid>.<random>.tmp``),
  are flushed and ``fsync``-ed, and the file is renamed over the target. A reader sees the old
  file or the new one, never half of either; when the write fails, the old file stays intact.
- **Confined.** The target must lie inside one of the configured folders (:func:`roots`:
  ``GRIDLIB_RESULTS``, ``GRIDLIB_RUNS``, ``GRIDLIB_DATA`` and the book's static files), so no
  flag or name can make the library write elsewhere.
- **Explained.** A full disk, a read-only file system, a folder in the way, a name too long or a
  missing permission becomes one :class:`StorageError` line that names the path and what to
  do, instead of a traceback after the work is done.
- **Guarded.** Nothing is written into the published results folder (``GRIDLIB_RESULTS``)
  except by :func:`gridlib.results.save`, inside :func:`publishing`, after its publish guard
  (:func:`gridlib.results.destination`) chose the path: an incomplete run never replaces a
  complete one, and another configuration replaces a published one only when asked.
- **Tidy.** Temporary files left by a writer that was killed (``SIGKILL``, power loss) are removed
  the next time anything writes the same target (:func:`remove_stale_temporaries`).

Environment variables that name folders count as unset when empty (:func:`env_folder`): an
empty ``GRIDLIB_RUNS=`` never means "the current folder".

:func:`read_json` is the one reader of stored JSON. It names the file and the problem (missing,
damaged, not an object) and says what to do.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

#: Exit status of a command stopped by a storage failure (``EX_IOERR`` of ``sysexits.h``).
EXIT_STORAGE = 74

_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space, or point the folder's variable elsewhere",
    errno.EDQUOT: "the disk quota is exhausted: free some space, or point the folder elsewhere",
    errno.EROFS: "the file system is read-only: point the folder's variable at a writable folder",
    errno.EACCES: "permission denied: make the folder writable, or point its variable elsewhere",
    errno.EPERM: "operation not permitted: make the folder writable, or point it elsewhere",
    errno.ENAMETOOLONG: "the name is too long for the file system: choose a shorter name",
    errno.EISDIR: "a folder is in the way: move it, or choose another name",
    errno.ENOTDIR: "a file is in the way of a folder on the path: move it, or choose another name",
    errno.EEXIST: "a file is in the way of a folder on the path: move it, or choose another name",
}
_FOLDER_VARS = ("GRIDLIB_RESULTS", "GRIDLIB_RUNS", "GRIDLIB_DATA")


_PUBLISHING: contextvars.ContextVar[Path | None] = contextvars.ContextVar("publishing", default=None)


@contextlib.contextmanager
def publishing(target: Path) -> Iterator[None]:
    """Allow one write into the published results folder: ``target``, chosen by the publish
    guard. Only :func:`gridlib.results.save` enters this."""
    token = _PUBLISHING.set(Path(target).resolve())
    try:
        yield
    finally:
        _PUBLISHING.reset(token)


def _check_published(target: Path) -> None:
    from gridlib import results

    published = results.results_dir().resolve()
    if target.is_relative_to(published) and _PUBLISHING.get() != target:
        raise StorageError(errno.EACCES, f"refusing to write {target}: only gridlib.results.save "
                           "writes the published results, after its publish guard")


class StorageError(OSError):
    """A file could not be written or read; the message names it and says what to do."""


class StoredFileError(ValueError):
    """A stored file is missing, damaged or not what it should be; the message names it."""


def env_folder(var: str, default: Path) -> Path:
    """The folder named by the environment variable ``var``, or ``default`` when it is unset
    **or empty**.

    Raises:
        StoredFileError: ``var`` names something that exists and is not a folder.
    """
    value = os.environ.get(var, "").strip()
    folder = Path(value).expanduser() if value else Path(default)
    if folder.exists() and not folder.is_dir():
        raise StoredFileError(f"{var}={value or folder} names a file, not a folder")
    return folder


def roots() -> list[Path]:
    """The folders the library may write into: results, runs, the data cache, and the book's
    static files (``_static/``), resolved."""
    from gridlib import data, results

    folders = [results.results_dir(), results.runs_dir(), data.cache_root()]
    if results.provenance_module.IN_REPOSITORY:
        folders.append(results.REPO_ROOT / "_static")
    return [f.resolve() for f in folders]


def check_inside(path: str | os.PathLike, allowed: Iterable[Path] | None = None) -> Path:
    """``path``, resolved, if it lies inside one of ``allowed`` (default: :func:`roots`).

    Raises:
        StorageError: naming the path and the folders it may be in.
    """
    target = Path(path).resolve()
    allowed = list(roots() if allowed is None else allowed)
    if not any(target.is_relative_to(root) for root in allowed):
        raise StorageError(
            errno.EACCES,
            f"refusing to write {path}: outside the configured folders "
            f"({', '.join(map(str, allowed))}); set GRIDLIB_RESULTS, GRIDLIB_RUNS or GRIDLIB_DATA",
        )
    return target


def describe(err: OSError) -> str:
    """One line for any file-system error: the path, and what to do."""
    if isinstance(err, StorageError):
        return str(err.strerror or err)
    path = err.filename or "a file"
    return _explain(err, Path(path), "use").strerror or str(err)


def _explain(err: OSError, path: Path, doing: str) -> StorageError:
    advice = _ADVICE.get(err.errno or 0, err.strerror or str(err))
    return StorageError(err.errno or errno.EIO, f"cannot {doing} {path}: {advice}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of ``target`` whose writer is gone; returns what was removed.

    A temporary file is named ``<target name>.<pid>.<random>.tmp``; it is stale when no process
    with that pid is alive (a writer that was killed before its rename).
    """
    target = Path(target)
    removed = []
    if not target.parent.is_dir():
        return removed
    for tmp in target.parent.glob(f"{target.name}.*.tmp"):
        parts = tmp.name[len(target.name) + 1 :].split(".")
        if len(parts) == 3 and parts[0].isdigit() and not _pid_alive(int(parts[0])):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _discard(tmp: Path) -> None:
    """Remove a temporary file if it is there (never raising: the write's error matters)."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def write_bytes(path: str | os.PathLike, data: bytes, *, confine: bool = True,
                within: Iterable[Path] | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns the path.

    Args:
        path: the target; its folder is created if needed.
        data: the complete new content.
        confine: refuse a target outside the allowed folders. Off only where the caller
            chose the folder itself (``fit``'s ``run_dir`` given by library code).
        within: the allowed folders (default: :func:`roots`).

    Raises:
        StorageError: the target is outside the configured folders, or the file system refused
            (full, read-only, a folder in the way, name too long, no permission). The old file,
            if any, is unchanged.
    """
    path = Path(path)
    if confine:
        check_inside(path, within)
    _check_published(path.resolve())
    folder = path.parent
    tmp = folder / f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        _discard(tmp)
        if isinstance(err, StorageError):
            raise
        raise _explain(err, path, "write") from err
    except BaseException:
        _discard(tmp)
        raise
    try:  # the rename itself is durable once the folder's entry is on disk
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def write_text(path: str | os.PathLike, text: str, **kwargs: Any) -> Path:
    """:func:`write_bytes` of ``text`` encoded as UTF-8."""
    return write_bytes(path, text.encode("utf-8"), **kwargs)


def write_json(path: str | os.PathLike, obj: Any, **kwargs: Any) -> Path:
    """:func:`write_text` of ``obj`` as indented JSON (NaN and infinity refused)."""
    return write_text(path, json.dumps(obj, indent=1, allow_nan=False) + "\n", **kwargs)


def read_json(path: str | os.PathLike, what: str = "file", fix: str = "") -> dict[str, Any]:
    """The JSON object stored in ``path``.

    Args:
        path: the file.
        what: what the file is, for the message ("results file", "re-check record").
        fix: what the user can do, appended to the message.

    Raises:
        StoredFileError: one line naming the file and the problem (missing, unreadable, damaged
            with the line and column, or not a JSON object).
    """
    path = Path(path)
    hint = f"; {fix}" if fix else ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise StoredFileError(f"{what} {path} does not exist{hint}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise StoredFileError(f"{what} {path} cannot be read ({err}){hint}") from err
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise StoredFileError(
            f"{what} {path} is damaged (invalid JSON at line {err.lineno}, column {err.colno}: "
            f"{err.msg}){hint}"
        ) from err
    if not isinstance(obj, dict):
        raise StoredFileError(f"{what} {path} is damaged (a JSON {type(obj).__name__}, "
                              f"not an object){hint}")
    return obj
