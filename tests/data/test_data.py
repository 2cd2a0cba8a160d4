"""Data sets, preprocessing and the errors on bad data."""

import gzip
import hashlib
import math

import numpy as np
import pytest

import kgen
from kgen.data import from_array, preprocess, toy2d
from kgen.data.dataset import Dataset
from kgen.errors import DataError, OfflineError, UsageError


def test_digits_splits_are_fixed_disjoint_and_complete():
    splits = {s: kgen.load_dataset("digits", split=s) for s in ("train", "valid", "test")}
    assert sum(len(d) for d in splits.values()) == 1797
    assert splits["train"].shape == (8, 8, 1) and splits["train"].num_levels == 17
    levels = splits["train"].x * 16
    assert np.allclose(levels, np.round(levels)) and levels.max() == 16
    again = kgen.load_dataset("digits", split="test")
    np.testing.assert_array_equal(again.x, splits["test"].x)
    keys = {s: {d.x[i].tobytes() + bytes([d.y[i]]) for i in range(len(d))} for s, d in splits.items()}
    assert len(keys["test"] & keys["train"]) < 5  # the UCI set has a few duplicate images


def test_unknown_dataset_has_did_you_mean():
    with pytest.raises(UsageError, match='Did you mean "digits"'):
        kgen.load_dataset("digts")


def test_toy_densities_are_seeded_and_shaped():
    for name in toy2d.GENERATORS:
        a = kgen.load_dataset(name, split="train", num_examples=500)
        b = kgen.load_dataset(name, split="train", num_examples=500)
        c = kgen.load_dataset(name, split="test", num_examples=500)
        assert a.x.shape == (500, 2) and a.kind == "points"
        np.testing.assert_array_equal(a.x, b.x)
        assert not np.array_equal(a.x, c.x)
    board = kgen.load_dataset("checkerboard", num_examples=20000).x
    assert np.abs(board).max() <= 4.0
    cell = (np.floor(board[:, 0] / 2) + np.floor(board[:, 1] / 2)) % 2
    assert len(np.unique(cell)) == 1  # only one colour of the board is occupied


def test_user_npz_and_png_folder(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (40, 6, 6), dtype=np.uint8)
    y = np.arange(40) % 3
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    ds = kgen.load_dataset(str(tmp_path / "mine.npz"), split="train")
    assert ds.shape == (6, 6, 1) and ds.num_levels == 256 and ds.num_classes == 3
    assert len(ds) + len(kgen.load_dataset(str(tmp_path / "mine.npz"), split="test")) + len(
        kgen.load_dataset(str(tmp_path / "mine.npz"), split="valid")) == 40

    from kgen.figures import encode_png

    for label in ("a", "b"):
        (tmp_path / "pngs" / label).mkdir(parents=True)
        for i in range(10):
            (tmp_path / "pngs" / label / f"{i}.png").write_bytes(encode_png(x[i]))
    ds = kgen.load_dataset(str(tmp_path / "pngs"), split="train", valid_fraction=0.0, test_fraction=0.0)
    assert len(ds) == 20 and ds.num_classes == 2 and ds.num_levels == 256
    decoded = {tuple(np.rint(img[..., 0] * 255).astype(np.uint8).ravel()) for img in ds.x}
    assert decoded == {tuple(img.ravel()) for img in x[:10]}  # PNG round trip, lossless


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((0, 4, 4)), "empty"),
        (np.array([["a", "b"]]), "numeric"),
        (np.full((3, 4, 4), np.nan), "NaN or Inf"),
        (np.zeros((3, 4, 4, 4, 4)), "expected shape"),
        (np.full((3, 4, 4), 2.5), r"\[0, 1\]"),
    ],
)
def test_bad_arrays_get_clear_errors(array, message):
    with pytest.raises(DataError, match=message):
        from_array(array)


def test_corrupted_npz_is_reported_as_corrupted(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="corrupted"):
        kgen.load_dataset(str(path))
    np.savez(tmp_path / "nox.npz", images=np.zeros((4, 2, 2)))
    with pytest.raises(DataError, match="no key 'x'"):
        kgen.load_dataset(str(tmp_path / "nox.npz"))


def test_binarized_mnist_offline_error_names_cache_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KGEN_DATA_DIR", raising=False)
    with pytest.raises(OfflineError, match=r"cache.*KGEN_DATA_DIR"):
        kgen.load_dataset("binarized_mnist", split="test")


def test_binarized_mnist_download_failure_is_an_offline_error(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KGEN_OFFLINE", "0")
    monkeypatch.delenv("KGEN_DATA_DIR", raising=False)

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(OfflineError, match="could not be downloaded"):
        kgen.load_dataset("binarized_mnist", split="valid")


def test_binarized_mnist_from_amat_file_and_hash_check(tmp_path, monkeypatch, shared_data):
    with np.load(shared_data / "binarized_mnist.npz") as f:
        test = f["test"]
    np.savetxt(tmp_path / "binarized_mnist_test.amat", test.reshape(-1, 784), fmt="%d")
    monkeypatch.setenv("KGEN_DATA_DIR", str(tmp_path))
    ds = kgen.load_dataset("binarized_mnist", split="test")
    assert ds.shape == (28, 28, 1) and ds.num_levels == 2 and len(ds) == 10000
    assert hashlib.sha256(test.reshape(-1, 784).tobytes()).hexdigest().startswith("ca0294")
    bad = test.copy()
    bad[0, 0, 0] ^= 1
    np.savez(tmp_path / "binarized_mnist.npz", test=bad)
    with pytest.raises(DataError, match="corrupted or not the canonical"):
        kgen.load_dataset("binarized_mnist", split="test")


def test_binarized_mnist_from_shared_npz(shared_data):
    ds = kgen.load_dataset("binarized_mnist", split="valid", data_dir=str(shared_data))
    assert len(ds) == 10000 and set(np.unique(ds.x)) == {0.0, 1.0}


def test_keras_dataset_offline_names_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(OfflineError, match=r"mnist\.npz"):
        kgen.load_dataset("mnist")


def test_dequantize_and_logit_bookkeeping():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, (50, 4, 4, 1)).astype("float32") / 16
    dq = preprocess.dequantize(x, 17, rng)
    assert np.all(np.floor(dq * 17) == np.rint(x * 16))  # same level, noise inside the bin
    alpha = 0.05
    y, logdet = preprocess.logit_transform(dq, alpha)
    # log-det against finite differences of the elementwise transform
    eps = 1e-4
    y2, _ = preprocess.logit_transform(dq + eps, alpha)
    fd = np.log(np.abs((y2.astype("float64") - y) / eps)).reshape(50, -1).sum(1)
    np.testing.assert_allclose(logdet, fd, rtol=1e-2, atol=0.2)
    nll = preprocess.discrete_nll(np.full(50, 10.0), 16, 17, logdet)
    np.testing.assert_allclose(nll, 10.0 - logdet + 16 * math.log(17), rtol=1e-6)


def test_binarize_static_and_dynamic():
    from kgen.data.pipeline import Pipeline
    from kgen import config as config_lib

    c = config_lib.resolve(overrides=["data.binarize=static"])["data"]
    a = Pipeline(c).load("train")
    b = Pipeline(c).load("train")
    assert a.num_levels == 2
    np.testing.assert_array_equal(a.x, b.x)
    c = config_lib.resolve(overrides=["data.binarize=dynamic"])["data"]
    p = Pipeline(c)
    d = p.load("train")
    e0, e1 = p.prepare(d, epoch=0).x, p.prepare(d, epoch=1).x
    assert set(np.unique(e0)) == {0.0, 1.0} and not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e0, p.prepare(d, epoch=0).x)


def test_train_with_valid_joins_the_valid_split_after_train():
    """`data.train_with_valid` (the final-model protocol): the train split is train then valid, each
    preprocessed as on its own (static binarization keeps each split's draw); `max_examples` still
    limits the joined set; valid and test are unchanged."""
    from kgen.data.pipeline import Pipeline
    from kgen import config as config_lib

    for binarize in ("none", "static"):
        plain = Pipeline(config_lib.resolve(overrides=[f"data.binarize={binarize}"])["data"])
        c = config_lib.resolve(overrides=[f"data.binarize={binarize}", "data.train_with_valid=true"])["data"]
        joined = Pipeline(c)
        train, valid = plain.load("train"), plain.load("valid")
        both = joined.load("train")
        assert len(both) == len(train) + len(valid) and both.split == "train"
        np.testing.assert_array_equal(both.x, np.concatenate([train.x, valid.x]))
        np.testing.assert_array_equal(both.y, np.concatenate([train.y, valid.y]))
        np.testing.assert_array_equal(joined.load("valid").x, valid.x)
        np.testing.assert_array_equal(joined.load("test").x, plain.load("test").x)
    n = len(train) + 5
    capped = Pipeline(dict(c, max_examples=n)).load("train")
    np.testing.assert_array_equal(capped.x, np.concatenate([train.x, valid.x[:5]]))
    # a checkpoint written before the key existed records a [data] table without it: the default applies
    old = {k: v for k, v in c.items() if k != "train_with_valid"}
    np.testing.assert_array_equal(Pipeline(old).load("train").x, train.x)
    with pytest.raises(DataError, match="cannot join"):
        train.concat(Dataset("digits", "valid", np.zeros((3, 4, 4, 1), "float32"), num_levels=17))


def test_digits_attribution_is_shipped():
    import importlib.resources

    raw = importlib.resources.files("kgen.data").joinpath("files/digits.csv.gz").read_bytes()
    assert len(gzip.decompress(raw).decode().splitlines()) == 1797
    readme = importlib.resources.files("kgen.data").joinpath("files/README.md").read_text()
    assert "CC BY 4.0" in readme


def test_a_seeded_subset_of_a_sorted_split_is_representative():
    """Binarized MNIST's test split is stored sorted by class: `kgen evaluate --max-examples` must not
    score only zeros. `subset(n)` keeps the first n; `subset(n, seed)` a fixed random choice in split order."""
    x = np.zeros((1000, 2, 2, 1), "float32")
    data = Dataset(name="sorted", split="test", x=x, y=np.repeat(np.arange(10), 100).astype("int32"),
                   kind="image", num_levels=2, num_classes=10)
    assert set(data.subset(50).y) == {0}
    picked = data.subset(50, seed=0)
    assert len(picked.y) == 50 and len(set(picked.y)) >= 8 and np.all(np.diff(picked.y) >= 0)
    np.testing.assert_array_equal(picked.y, data.subset(50, seed=0).y)
    assert len(data.subset(5000, seed=0).y) == 1000
