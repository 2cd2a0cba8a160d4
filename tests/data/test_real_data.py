"""Real data sets: the shipped binarized-MNIST labels, the IDX reader, where MNIST and
Fashion-MNIST files are looked for, and checksums. Nothing here downloads (conftest sets
KGEN_OFFLINE=1 and every test that could reach a download sets it again)."""

import gzip
import hashlib
import pathlib
import struct

import numpy as np
import pytest

import kgen
from kgen.data import Dataset, loaders
from kgen.errors import DataError, OfflineError

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"
FASHION_DEBIAN = pathlib.Path("/usr/share/datasets/fashion-mnist")
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"reference data not present at {SHARED_DATA}")
needs_fashion = pytest.mark.skipif(
    not FASHION_DEBIAN.is_dir(),
    reason=f"{FASHION_DEBIAN} absent (apt-get install dataset-fashion-mnist)",
)


def idx_bytes(array):
    """The IDX file of a uint8 array."""
    array = np.ascontiguousarray(array, dtype="uint8")
    return struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape) + array.tobytes()


def write_idx_pair(folder, part, x, y, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for base, array in zip(loaders.IDX_FILES[part], (x, y)):
        data = idx_bytes(array)
        if gz:
            (folder / f"{base}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (folder / base).write_bytes(data)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No data directory, an empty Debian root and Keras cache, no downloads."""
    monkeypatch.delenv("KGEN_DATA_DIR", raising=False)
    monkeypatch.setenv("KGEN_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(loaders, "DEBIAN_DATASETS", tmp_path / "debian")
    return tmp_path


@pytest.fixture
def fake_fashion(monkeypatch):
    """Tiny synthetic 'fashion_mnist' test files pass the checksum: the expected hashes are theirs."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    y = (np.arange(12) % 10).astype("uint8")
    hashes = dict(loaders.IDX_SHA256["fashion_mnist"])
    for base, array in zip(loaders.IDX_FILES["test"], (x, y)):
        hashes[base] = hashlib.sha256(idx_bytes(array)).hexdigest()
    monkeypatch.setitem(loaders.IDX_SHA256, "fashion_mnist", hashes)
    return x, y


# === binarized MNIST: labels shipped with kgen ===


def test_binarized_mnist_labels_ship_with_the_package():
    y = loaders.binarized_mnist_labels()
    assert y.shape == (10000,) and y.dtype == np.int32
    assert np.bincount(y, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert np.all(np.diff(y) >= 0)  # the test split is ordered by class
    assert hashlib.sha256(y.astype("uint8").tobytes()).hexdigest() == loaders.BINARIZED_MNIST_LABELS_SHA256
    readme = loaders.BINARIZED_MNIST_LABELS.parent.joinpath("README.md").read_text()
    assert "binarized_mnist_labels.npz" in readme and loaders.BINARIZED_MNIST_LABELS_SHA256 in readme


def test_binarized_mnist_labels_corrupted_or_missing_name_the_file(tmp_path, monkeypatch):
    y = loaders.binarized_mnist_labels().astype("uint8")
    wrong = y.copy()
    wrong[0] = 9
    np.savez(tmp_path / "wrong.npz", test=wrong)
    monkeypatch.setattr(loaders, "BINARIZED_MNIST_LABELS", tmp_path / "wrong.npz")
    with pytest.raises(DataError, match=r"wrong\.npz is corrupted.*SHA-256"):
        loaders.binarized_mnist_labels()
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    monkeypatch.setattr(loaders, "BINARIZED_MNIST_LABELS", tmp_path / "broken.npz")
    with pytest.raises(DataError, match=r"broken\.npz is corrupted"):
        loaders.binarized_mnist_labels()
    monkeypatch.setattr(loaders, "BINARIZED_MNIST_LABELS", tmp_path / "absent.npz")
    with pytest.raises(DataError, match=r"absent\.npz is missing"):
        loaders.binarized_mnist_labels()


def test_unlabelled_split_error_names_the_labelled_splits():
    x = np.zeros((3, 28, 28, 1), "float32")
    train = Dataset("binarized_mnist", "train", x, labelled_splits=("test",))
    message = train.missing_labels("a conditional model")
    assert "\n" not in message
    assert "train split has none" in message and "only its test split has labels" in message
    mine = Dataset("mine.npz", "train", x)
    assert "this data set has none" in mine.missing_labels("a conditional model")


@needs_shared
def test_binarized_mnist_test_split_has_labels_and_train_valid_do_not():
    test = kgen.load_dataset("binarized_mnist", split="test", data_dir=str(SHARED_DATA))
    assert test.y is not None and len(test.y) == len(test) == 10000 and test.num_classes == 10
    assert test.labelled_splits == ("test",)
    valid = kgen.load_dataset("binarized_mnist", split="valid", data_dir=str(SHARED_DATA))
    assert valid.y is None and valid.labelled_splits == ("test",)
    assert "only its test split has labels" in valid.missing_labels("a conditional model")
    # The labels belong to the images: each class's mean binarized image is nearest the
    # mean grey MNIST test image of the same class.
    with np.load(SHARED_DATA / "mnist_test.npz") as f:
        grey, grey_y = f["x"].reshape(-1, 784) / 255.0, f["y"]
    binary = test.x.reshape(-1, 784)
    mean_bin = np.stack([binary[test.y == c].mean(0) for c in range(10)])
    mean_grey = np.stack([grey[grey_y == c].mean(0) for c in range(10)])
    distances = ((mean_bin[:, None] - mean_grey[None]) ** 2).sum(-1)
    assert distances.argmin(1).tolist() == list(range(10))


# === the IDX reader ===


def test_idx_parser_reads_gzipped_and_plain_files(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(x)))
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(x))
    for name in ("a-idx3-ubyte.gz", "a-idx3-ubyte"):
        got = loaders.read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
        np.testing.assert_array_equal(got, x)
    wide = np.array([[1, -2], [300, -40000]], dtype=">i4")  # big-endian int32
    raw = struct.pack(">BBBBII", 0, 0, 0x0C, 2, 2, 2) + wide.tobytes()
    np.testing.assert_array_equal(loaders.parse_idx(raw), wide.astype("int32"))


def test_idx_parser_rejects_truncated_and_foreign_files(tmp_path):
    x = np.ones((3, 5, 5), np.uint8)
    (tmp_path / "short-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(x)[:-7]))
    with pytest.raises(DataError, match=r"short-idx3-ubyte\.gz is truncated"):
        loaders.read_idx(tmp_path / "short-idx3-ubyte.gz")
    (tmp_path / "cut-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(x))[:-12])
    with pytest.raises(DataError, match=r"cut-idx3-ubyte\.gz is corrupted or truncated \(gzip"):
        loaders.read_idx(tmp_path / "cut-idx3-ubyte.gz")
    (tmp_path / "png-idx3-ubyte").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match="not an IDX file"):
        loaders.read_idx(tmp_path / "png-idx3-ubyte")


# === where the files are looked for ===


def test_lookup_order_data_dir_then_env_then_debian(isolated, fake_fashion, monkeypatch):
    x, y = fake_fashion
    write_idx_pair(isolated / "debian" / "fashion-mnist", "test", x, y)
    write_idx_pair(isolated / "env" / "fashion-mnist", "test", x, y, gz=False)
    write_idx_pair(isolated / "mine", "test", x, y)
    seen = []
    real_read_idx = loaders.read_idx
    monkeypatch.setattr(loaders, "read_idx", lambda path: seen.append(pathlib.Path(path)) or real_read_idx(path))
    monkeypatch.setenv("KGEN_DATA_DIR", str(isolated / "env"))

    def first_folder(**options):
        seen.clear()
        ds = kgen.load_dataset("fashion_mnist", split="test", **options)
        np.testing.assert_array_equal(ds.y, y)
        np.testing.assert_array_equal(ds.x[..., 0], x.astype("float32") / 255)
        assert ds.num_levels == 256 and ds.num_classes == 10
        return {p.parent for p in seen}

    assert first_folder(data_dir=str(isolated / "mine")) == {isolated / "mine"}
    assert first_folder() == {isolated / "env" / "fashion-mnist"}  # $KGEN_DATA_DIR/<name>/, gunzipped
    monkeypatch.delenv("KGEN_DATA_DIR")
    assert first_folder() == {isolated / "debian" / "fashion-mnist"}


def test_a_corrupted_file_is_named_with_where_it_was_found(isolated, fake_fashion):
    x, y = fake_fashion
    bad = x.copy()
    bad[0, 0, 0] ^= 1
    write_idx_pair(isolated / "debian" / "fashion-mnist", "test", bad, y)
    with pytest.raises(DataError, match=r"debian/fashion-mnist/t10k-images-idx3-ubyte\.gz \(from Debian package\) "
                                        r"is corrupted or not the canonical"):
        kgen.load_dataset("fashion_mnist", split="test")
    # corrupted is not missing: a good copy further down the list is not used instead
    write_idx_pair(isolated / "keras_home" / "datasets" / "fashion-mnist", "test", x, y)
    with pytest.raises(DataError, match="corrupted"):
        kgen.load_dataset("fashion_mnist", split="test")


def test_offline_error_names_every_place_looked(isolated, monkeypatch):
    monkeypatch.setenv("KGEN_DATA_DIR", str(isolated / "env"))
    with pytest.raises(OfflineError) as info:
        kgen.load_dataset("fashion_mnist", split="train", data_dir=str(isolated / "mine"))
    message = str(info.value)
    assert "\n" not in message and "train-images-idx3-ubyte.gz" in message and "KGEN_OFFLINE" in message
    for place in (isolated / "mine", isolated / "mine" / "fashion-mnist", isolated / "env" / "fashion_mnist",
                  isolated / "debian" / "fashion-mnist", isolated / "keras_home" / "datasets" / "fashion-mnist"):
        assert str(place) in message
    assert "apt-get install dataset-fashion-mnist" in message
    with pytest.raises(OfflineError, match=r"keras_home/datasets/mnist\.npz \(Keras cache\)"):
        kgen.load_dataset("mnist", split="test")


def test_keras_mnist_npz_cache_is_verified(isolated):
    cache = isolated / "keras_home" / "datasets"
    cache.mkdir(parents=True)
    zeros = np.zeros((2, 28, 28), np.uint8)
    np.savez(cache / "mnist.npz", x_train=zeros, y_train=zeros[:, 0, 0], x_test=zeros, y_test=zeros[:, 0, 0])
    with pytest.raises(DataError, match=r"mnist\.npz \(Keras cache\) is corrupted or not the canonical"):
        kgen.load_dataset("mnist", split="test")


# === the real files, when this machine has them ===


@needs_shared
def test_mnist_test_files_pass_their_published_checksums(isolated):
    """The canonical t10k files, rebuilt from the reference copy, load through data.dir."""
    readme = (SHARED_DATA / "README.md").read_text()
    with np.load(SHARED_DATA / "mnist_test.npz") as f:
        x, y = f["x"], f["y"]
    write_idx_pair(isolated / "mnist", "test", x, y)
    for base, array in zip(loaders.IDX_FILES["test"], (x, y)):
        assert hashlib.sha256(idx_bytes(array)).hexdigest() == loaders.IDX_SHA256["mnist"][base]
    assert "9fb629c4189551a2d022fa330f9573f3" in readme  # the .gz whose content this is
    ds = kgen.load_dataset("mnist", split="test", data_dir=str(isolated / "mnist"))
    assert ds.x.shape == (10000, 28, 28, 1) and ds.num_levels == 256
    assert np.bincount(ds.y).tolist() == MNIST_TEST_COUNTS


@needs_fashion
def test_fashion_mnist_from_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.delenv("KGEN_DATA_DIR", raising=False)
    monkeypatch.setenv("KGEN_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    splits = {s: kgen.load_dataset("fashion_mnist", split=s) for s in ("train", "valid", "test")}
    assert len(splits["train"]) + len(splits["valid"]) == 60000 and len(splits["valid"]) == 6000
    assert len(splits["test"]) == 10000
    assert np.bincount(splits["test"].y).tolist() == [1000] * 10
    full_train = splits["train"].concat(splits["valid"])
    assert np.bincount(full_train.y).tolist() == [6000] * 10
    for ds in splits.values():
        assert ds.shape == (28, 28, 1) and ds.x.dtype == np.float32 and ds.num_levels == 256
        assert ds.num_classes == 10 and ds.x.min() == 0.0 and ds.x.max() == 1.0
    # valid is carved from the official train set with the fixed seed, as before
    raw = loaders.read_idx(FASHION_DEBIAN / "train-labels-idx1-ubyte.gz")
    idx = loaders.split_indices(60000, "valid", 0.1, 0.0, 0)
    np.testing.assert_array_equal(splits["valid"].y, raw[idx])
