"""Checkpoints and the data cache under storage faults: a full disk, a read-only folder, and a
writer killed mid-write. Each leaves one line naming the file, the old file intact, and nothing
behind (a killed writer's temporary is removed by the next write).

The disk faults are real where the tests may mount a file system (a 64 KiB ``tmpfs``, remounted
read-only; as root on Linux); elsewhere they are injected (``ENOSPC`` from ``os.write``,
``EROFS`` from ``os.open``), and the test's ``fault`` property says which ran.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from gridlib import checkpoint, data, storage


class SmallDisk:
    """A 64 KiB folder that can be made read-only: a real tmpfs, or injected faults."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder, self.monkeypatch = folder, monkeypatch
        folder.mkdir()
        try:
            self.mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                                          capture_output=True).returncode == 0
        except OSError:  # no mount command
            self.mounted = False
        self.mode = "tmpfs" if self.mounted else "injected"
        if not self.mounted:  # inject ENOSPC past 64 KiB written through os.write
            real_write, budget = os.write, [64 * 1024]

            def write(fd, payload):
                if len(payload) > budget[0]:
                    raise OSError(errno.ENOSPC, "No space left on device")
                budget[0] -= len(payload)
                return real_write(fd, payload)

            monkeypatch.setattr(storage.os, "write", write)

    def read_only(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(self.folder)], check=True)
            return
        real_open = os.open

        def refuse(path, flags, *args, **kw):
            if flags & os.O_CREAT:
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return real_open(path, flags, *args, **kw)

        def no_temp(*_a, **_kw):
            raise OSError(errno.EROFS, "Read-only file system")

        self.monkeypatch.setattr(storage.os, "open", refuse)
        self.monkeypatch.setattr(data.tempfile, "TemporaryFile", no_temp)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.folder)], capture_output=True)


@pytest.fixture
def disk(tmp_path, monkeypatch, record_property):
    d = SmallDisk(tmp_path / "disk", monkeypatch)
    record_property("fault", d.mode)
    try:
        yield d
    finally:
        d.close()


def _one_line_naming(err: BaseException, path: Path, *words: str) -> None:
    msg = str(err)
    assert len(msg.splitlines()) == 1 and str(path) in msg, msg
    assert all(w in msg for w in words), msg


OLD = {"w": np.arange(100, dtype=np.float32)}


def _old_checkpoint(folder: Path) -> Path:
    f = folder / "checkpoint.npz"
    checkpoint.save(f, OLD, {"fingerprint": "old"})
    return f


def _intact(f: Path) -> None:
    ckpt = checkpoint.load(f, "old", OLD)
    np.testing.assert_array_equal(ckpt.state["w"], OLD["w"])


def test_a_full_disk_stops_a_checkpoint_in_one_line_and_keeps_the_old_one(disk):
    f = _old_checkpoint(disk.folder)
    with pytest.raises(storage.StorageError) as err:
        checkpoint.save(f, {"w": np.ones(100_000)}, {"fingerprint": "new"})  # 800 KB > 64 KiB
    _one_line_naming(err.value, f, "full")
    _intact(f)
    assert sorted(p.name for p in disk.folder.iterdir()) == ["checkpoint.npz"]


def test_a_read_only_folder_stops_a_checkpoint_in_one_line_and_keeps_the_old_one(disk):
    f = _old_checkpoint(disk.folder)
    disk.read_only()
    with pytest.raises(storage.StorageError) as err:
        checkpoint.save(f, OLD, {"fingerprint": "new"})
    _one_line_naming(err.value, f, "read-only")
    _intact(f)
    assert sorted(p.name for p in disk.folder.iterdir()) == ["checkpoint.npz"]


def test_a_full_data_cache_stops_in_one_line_and_keeps_what_it_holds(disk, monkeypatch):
    monkeypatch.setenv("GRIDLIB_DATA", str(disk.folder))
    small = data.load_mnist1d(num_samples=60)  # about 21 KB: fits
    held = sorted(p.name for p in disk.folder.iterdir())
    with pytest.raises(storage.StorageError) as err:
        data.load_mnist1d(num_samples=200)  # about 70 KB: does not
    _one_line_naming(err.value, disk.folder, "full")
    assert sorted(p.name for p in disk.folder.iterdir()) == held
    np.testing.assert_array_equal(data.load_mnist1d(num_samples=60).x_train, small.x_train)


def test_a_read_only_data_cache_still_serves_what_it_holds(disk, monkeypatch):
    monkeypatch.setenv("GRIDLIB_DATA", str(disk.folder))
    small = data.load_mnist1d(num_samples=60)
    held = sorted(p.name for p in disk.folder.iterdir())
    disk.read_only()
    np.testing.assert_array_equal(data.load_mnist1d(num_samples=60).x_train, small.x_train)
    with pytest.raises(data.DataUnavailableError) as err:
        data.load_mnist1d(num_samples=61)
    _one_line_naming(err.value, disk.folder, "not writable", "GRIDLIB_DATA")
    assert sorted(p.name for p in disk.folder.iterdir()) == held


# A writer that stops between writing its temporary and renaming it, until it is killed.
_KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from gridlib import checkpoint, data

    def stall(fd):
        print("writing", flush=True)
        time.sleep(60)

    os.fsync = stall
    if sys.argv[1] == "checkpoint":
        checkpoint.save(sys.argv[2], {"w": np.ones(2_000_000)}, {"fingerprint": "new"})
    else:
        data._write(data.cache_root() / "blob.bin", b"new" * 5_000_000)
""")


@pytest.mark.parametrize("what", ["checkpoint", "data"])
def test_a_killed_writer_leaves_the_old_file_and_its_temporary_goes_at_the_next_write(
        tmp_path, monkeypatch, what):
    monkeypatch.setenv("GRIDLIB_DATA", str(tmp_path / "cache"))
    if what == "checkpoint":
        target = _old_checkpoint(tmp_path / "run")
    else:
        target = data._write(data.cache_root() / "blob.bin", b"old")
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, what, str(target)],
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert child.stdout.readline().strip() == "writing"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    (tmp,) = target.parent.glob(f"{target.name}.*.tmp")  # what a SIGKILL leaves
    assert tmp.stat().st_size > 1_000_000
    if what == "checkpoint":
        _intact(target)
        checkpoint.save(target, OLD, {"fingerprint": "old", "n": uuid.uuid4().hex})
    else:
        assert target.read_bytes() == b"old"
        data._write(target, b"newer")
    assert not tmp.exists()
    assert sorted(p.name for p in target.parent.iterdir() if p.name != ".lock") == [target.name]
