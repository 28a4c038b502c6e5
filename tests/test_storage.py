"""The one write path (gridlib.storage) and the publish guard, under injected faults.

Full disk and read-only folders are real where this machine lets the tests mount a small tmpfs
(root on Linux, as CI runs); elsewhere the same errors are injected into ``os.write`` /
``os.open``, and the test says which ran. Every fault must give one ``StorageError`` line that
names the path, leave the old file intact and leave no temporary file behind.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gridlib import cli, results, storage

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- real small disks


def _mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                        capture_output=True).returncode == 0
    return ok


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A 64 KiB folder: a real tmpfs when mountable, else one whose writes fail with ENOSPC
    after 64 KiB."""
    disk = tmp_path / "disk"
    if _mount(disk, "size=64k"):
        yield disk, "tmpfs"
        _umount(disk)
        return
    real_write, used = os.write, {"n": 0}

    def write(fd, data):
        if used["n"] + len(data) > 64 * 1024:
            raise OSError(errno.ENOSPC, "No space left on device")
        used["n"] += len(data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    yield disk, "injected"


@pytest.fixture
def read_only_folder(tmp_path, monkeypatch):
    """A folder holding ``old.json`` on a read-only file system (tmpfs remounted read-only, or
    an injected EROFS)."""
    folder = tmp_path / "ro"
    if _mount(folder, "size=64k"):
        (folder / "old.json").write_text('{"old": true}\n')
        if subprocess.run(["mount", "-o", "remount,ro", str(folder)],
                          capture_output=True).returncode == 0:
            yield folder, "tmpfs"
            _umount(folder)
            return
        _umount(folder)
    folder.mkdir(exist_ok=True)
    (folder / "old.json").write_text('{"old": true}\n')
    real_open = os.open

    def ro_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(folder)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", ro_open)
    yield folder, "injected"


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp")]


# --------------------------------------------------------------------------- the writer


def test_full_disk_is_one_line_and_keeps_the_old_file(small_disk):
    disk, how = small_disk
    target = disk / "r.json"
    storage.write_json(target, {"v": 1}, within=[disk])
    with pytest.raises(storage.StorageError) as caught:
        storage.write_bytes(target, b"x" * (1 << 20), within=[disk])
    message = str(caught.value.strerror)
    assert str(target) in message and "disk is full" in message and "\n" not in message, how
    assert json.loads(target.read_text()) == {"v": 1}
    assert not _leftovers(disk), how


def test_read_only_folder_is_one_line_and_keeps_the_old_file(read_only_folder):
    folder, how = read_only_folder
    with pytest.raises(storage.StorageError, match="read-only") as caught:
        storage.write_json(folder / "old.json", {"new": True}, within=[folder])
    assert str(folder / "old.json") in caught.value.strerror, how
    assert json.loads((folder / "old.json").read_text()) == {"old": True}


def test_folder_in_the_way_and_long_names(tmp_path):
    (tmp_path / "taken.json").mkdir()
    with pytest.raises(storage.StorageError, match="a folder is in the way"):
        storage.write_text(tmp_path / "taken.json", "x", within=[tmp_path])
    with pytest.raises(storage.StorageError, match="name is too long"):
        storage.write_text(tmp_path / ("n" * 300 + ".json"), "x", within=[tmp_path])
    (tmp_path / "file").write_text("x")
    with pytest.raises(storage.StorageError, match="in the way"):
        storage.write_text(tmp_path / "file" / "below.json", "x", within=[tmp_path])
    assert not _leftovers(tmp_path)


def test_writes_outside_the_configured_folders_are_refused(tmp_path, tmp_results):
    with pytest.raises(storage.StorageError, match="outside the configured folders"):
        storage.write_text(tmp_path / "elsewhere.txt", "x")
    assert not (tmp_path / "elsewhere.txt").exists()
    storage.write_text(tmp_results / "runs" / "inside.txt", "x")  # the runs folder is fine


def test_only_results_save_writes_into_the_published_folder(tmp_results):
    with pytest.raises(storage.StorageError, match="only gridlib.results.save"):
        storage.write_json(results.results_dir() / "sneaky.json", {"a": 1})
    assert not (results.results_dir() / "sneaky.json").exists()


_KILLED_WRITER = textwrap.dedent("""
    import os, sys
    from gridlib import storage
    real = os.write
    def slow(fd, data):  # the first block lands, then the writer is killed mid-file
        n = real(fd, bytes(data[:4096]))
        print("writing", flush=True)
        sys.stdin.readline()
        return n
    os.write = slow
    storage.write_bytes(sys.argv[1], b"y" * 100000, within=[os.path.dirname(sys.argv[1])])
""")


def test_sigkill_during_a_write_keeps_the_old_file_and_the_next_write_tidies(tmp_path):
    target = tmp_path / "checkpoint.npz"
    storage.write_bytes(target, b"old", within=[tmp_path])
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_bytes() == b"old"
    stale = _leftovers(tmp_path)
    assert len(stale) == 1 and stale[0].stat().st_size > 0
    storage.write_bytes(target, b"new", within=[tmp_path])
    assert target.read_bytes() == b"new" and not _leftovers(tmp_path)


def test_read_json_names_the_file_and_the_problem(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text('{\n "a": 1,\n "b": \n}\n')
    with pytest.raises(storage.StoredFileError, match=r"r.json is damaged \(invalid JSON at line 4"):
        storage.read_json(bad, "results file")
    bad.write_text("[1, 2]")
    with pytest.raises(storage.StoredFileError, match="not an object"):
        storage.read_json(bad)
    with pytest.raises(storage.StoredFileError, match="does not exist"):
        storage.read_json(tmp_path / "none.json")


def test_a_record_without_provenance_is_named(tmp_results):
    f = tmp_results / "results" / "x" / "r.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"name": "x/r", "config": {}, "metrics": {"a": 1}}))
    with pytest.raises(storage.StoredFileError, match=r"r.json is damaged \(no provenance\)"):
        results.load("x/r")


# --------------------------------------------------------------------------- the publish guard


def _publish(name, epochs_done, epochs, complete=None, **kw):
    metrics = {"acc": 0.5} if complete is None else {"acc": 0.5, "complete": complete}
    return results.save(name, config={"epochs": epochs, "lr": 0.1}, metrics=metrics,
                        history={"epoch": list(range(1, epochs_done + 1))}, seed=0, **kw)


def test_an_incomplete_run_never_replaces_a_complete_one(tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    done = _publish("g/run", 3, 3, publish=True)
    before = done.read_text()
    for options in ({}, {"publish": True}, {"overwrite": True}, {"publish": True, "overwrite": True}):
        out = _publish("g/run", 1, 3, complete=False, **options)
        assert out != done and done.read_text() == before, options
    # a complete re-run of the same configuration does replace it
    assert _publish("g/run", 3, 3) == done


def test_complete_must_agree_with_the_epochs_run(tmp_results, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    with pytest.raises(results.ResultsError, match="says complete = True with 1 of 150 epochs"):
        _publish("g/lie", 1, 150, complete=True, publish=True)
    assert not results.path("g/lie").exists()


def _writes_in(module_file: Path) -> list[str]:
    """Calls in a module that write files by themselves (not through gridlib.storage)."""
    tree = ast.parse(module_file.read_text())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        if name in ("write_text", "write_bytes") and owner != "storage":
            found.append(f"{name} (line {node.lineno})")
        elif name in ("replace", "rename", "mkstemp") and owner in ("os", "tempfile"):
            found.append(f"{owner}.{name} (line {node.lineno})")
        elif owner == "shutil" and name in ("copy", "copy2", "copyfile", "copytree", "move"):
            found.append(f"shutil.{name} (line {node.lineno})")
        elif name in ("dump", "savefig", "extractall") or (owner == "np" and name.startswith("save")
                                                          and not _to_buffer(node)):
            found.append(f"{name} (line {node.lineno})")
        elif name == "open" and owner in ("", "io", "gzip") and _write_mode(node):
            found.append(f"open for writing (line {node.lineno})")
    return found


def _to_buffer(call: ast.Call) -> bool:
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Name) and "buf" in first.id


def _write_mode(call: ast.Call) -> bool:
    modes = [a for a in call.args[1:2]] + [k.value for k in call.keywords if k.arg == "mode"]
    return any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes)


#: Writes that are not data: the lock of a run folder holds only the holder's pid.
ALLOWED = {("gridlib/checkpoint.py", "open for writing")}


def test_every_write_of_the_library_goes_through_storage():
    sources = [*sorted((ROOT / "gridlib").rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py"))]
    offences = []
    for f in sources:
        rel = str(f.relative_to(ROOT))
        if rel == "gridlib/storage.py":
            continue
        offences += [f"{rel}: {w}" for w in _writes_in(f)
                     if (rel, w.split(" (")[0]) not in ALLOWED]
    assert not offences, "files written outside gridlib.storage:\n" + "\n".join(offences)


def test_every_registered_command_writes_results_only_through_the_guard():
    """Each command's module writes nothing itself (the test above), storage refuses the
    published folder to anyone but results.save, and results.save applies the guard: so each
    command that publishes goes through ``results.destination``."""
    modules = {sys.modules[e.fn.__module__].__file__ for e in cli.entries().values()}
    modules |= {str(ROOT / "gridlib" / "recheck.py"), *map(str, (ROOT / "benchmarks").glob("*.py"))}
    assert len(modules) >= 8
    for m in modules:
        assert not _writes_in(Path(m)), m
    source = (ROOT / "gridlib" / "results.py").read_text()
    assert "with storage.publishing(out):" in source and "destination(name, config" in source


def test_a_full_disk_under_results_save_keeps_the_published_record(small_disk, monkeypatch,
                                                                     tmp_path):
    disk, how = small_disk
    monkeypatch.setenv("GRIDLIB_RESULTS", str(disk))
    monkeypatch.setenv("GRIDLIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GRIDLIB_SCALE", "full")
    published = _publish("g/run", 1, 1, publish=True)
    before = published.read_text()
    with pytest.raises(storage.StorageError, match="disk is full"):
        results.save("g/run", config={"epochs": 1, "lr": 0.1}, seed=0,
                     metrics={"acc": 0.5, "big": list(range(50_000))},
                     history={"epoch": [1]})
    assert published.read_text() == before, how
    assert not _leftovers(disk)
