"""Loaders for the built-in data sets and for a user's own files."""

import gzip
import hashlib
import importlib.resources
import os
import pathlib
import urllib.error
import urllib.request
import zipfile

import numpy as np

from kgen.data import toy2d
from kgen.data.dataset import Dataset, from_array
from kgen.errors import DataError, OfflineError, UsageError

SPLITS = ("train", "valid", "test")


def cache_dir():
    """Where downloads are cached: $KGEN_CACHE_DIR or ~/.cache/kgen."""
    return pathlib.Path(os.environ.get("KGEN_CACHE_DIR", pathlib.Path.home() / ".cache" / "kgen"))


def _offline():
    return os.environ.get("KGEN_OFFLINE", "") not in ("", "0")


def _check_split(split):
    if split not in SPLITS:
        raise UsageError(f'unknown split "{split}"; choose one of {", ".join(SPLITS)}.')


def split_indices(n, split, valid_fraction=0.1, test_fraction=0.1, seed=0):
    """Indices of one split of a data set that ships without splits.

    A fixed-seed permutation, cut train | valid | test, so every run and every
    machine sees the same split.
    """
    _check_split(split)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    n_valid = int(round(n * valid_fraction))
    n_train = n - n_test - n_valid
    bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid), "test": (n_train + n_valid, n)}
    lo, hi = bounds[split]
    return np.sort(perm[lo:hi])


# === digits (bundled) ===

DIGITS_ATTRIBUTION = (
    "UCI Optical Recognition of Handwritten Digits, E. Alpaydin and C. Kaynak (1998), CC BY 4.0"
)


def load_digits(split="train", valid_fraction=0.1, test_fraction=0.1, split_seed=0, **_):
    """The UCI 8x8 digits bundled with kgen: 1797 images, 17 grey levels, labels."""
    raw = importlib.resources.files("kgen.data").joinpath("files/digits.csv.gz").read_bytes()
    table = np.loadtxt(gzip.decompress(raw).decode().splitlines(), delimiter=",", dtype="int32")
    idx = split_indices(len(table), split, valid_fraction, test_fraction, split_seed)
    x = table[idx, :64].reshape(-1, 8, 8, 1).astype("float32") / 16.0
    y = table[idx, 64].astype("int32")
    return Dataset("digits", split, x, y, kind="image", num_levels=17, num_classes=10)


# === binarized MNIST (Larochelle & Murray 2011) ===

BINARIZED_MNIST_URL = (
    "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{split}.amat"
)
BINARIZED_MNIST_SHA256 = {
    "train": "43490d4d6ac9002727af4426d8748609fdb7e4094fa65ad8d681ea60082a7a5a",
    "valid": "069b4f0beb389b776478c3e872b4df71c95ac4be64d7cbe6d32e24ebac8e6d5e",
    "test": "ca0294c3b8d984c7a1dc891015a8eea6f37bae59a34e35ea0fc8c47110a8dd86",
}
BINARIZED_MNIST_SIZES = {"train": 50000, "valid": 10000, "test": 10000}


def _verify_binarized(x, split, source):
    x = np.ascontiguousarray(np.asarray(x, dtype="uint8").reshape(len(x), 784))
    digest = hashlib.sha256(x.tobytes()).hexdigest()
    if digest != BINARIZED_MNIST_SHA256[split]:
        raise DataError(
            f"binarized_mnist {split} split from {source} is corrupted or not the canonical "
            f"static binarization (SHA-256 {digest[:12]}..., expected "
            f"{BINARIZED_MNIST_SHA256[split][:12]}...); delete it and supply the original files."
        )
    return x


def _read_amat(path):
    return np.loadtxt(path, dtype="uint8")


def _binarized_from_dir(directory, split):
    directory = pathlib.Path(directory)
    npz = directory / "binarized_mnist.npz"
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as f:
                if split not in f:
                    raise DataError(f"{npz} has no key '{split}'; expected keys train, valid, test.")
                return f[split], str(npz)
        except (OSError, ValueError) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"{npz} is corrupted ({e}); delete it or replace it.") from None
    amat = directory / f"binarized_mnist_{split}.amat"
    if amat.is_file():
        return _read_amat(amat), str(amat)
    return None, None


def load_binarized_mnist(split="train", data_dir=None, **_):
    """Statically binarized MNIST: 50k/10k/10k, values 0/1, hashes verified.

    Looks in `data_dir` (or $KGEN_DATA_DIR) for `binarized_mnist.npz` (keys
    train/valid/test) or the `.amat` files, then in the cache, then downloads
    the canonical `.amat` files and caches them.
    """
    _check_split(split)
    candidates = [d for d in (data_dir, os.environ.get("KGEN_DATA_DIR"), cache_dir()) if d]
    x = source = None
    for directory in candidates:
        x, source = _binarized_from_dir(directory, split)
        if x is not None:
            break
    if x is None:
        target = cache_dir() / f"binarized_mnist_{split}.amat"
        url = BINARIZED_MNIST_URL.format(split=split)
        hint = (
            f"binarized_mnist is not on this machine and could not be downloaded from {url}. "
            f"Put binarized_mnist.npz (keys train/valid/test) or binarized_mnist_{split}.amat "
            f"in {cache_dir()} or in a folder named by KGEN_DATA_DIR or --set data.dir=..."
        )
        if _offline():
            raise OfflineError(hint)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".part")
            with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
                out.write(response.read())
            os.replace(tmp, target)
        except (urllib.error.URLError, OSError, TimeoutError):
            raise OfflineError(hint) from None
        x, source = _read_amat(target), str(target)
    x = _verify_binarized(x, split, source)
    return Dataset(
        "binarized_mnist", split, x.reshape(-1, 28, 28, 1).astype("float32"), None,
        kind="image", num_levels=2,
    )


# === keras.datasets (download and cache) ===

_KERAS_FILES = {"mnist": "mnist.npz", "fashion_mnist": "fashion-mnist", "cifar10": "cifar-10-batches-py"}


def load_keras_dataset(name, split="train", valid_fraction=0.1, split_seed=0, **_):
    """mnist, fashion_mnist and cifar10 through `keras.datasets`.

    The valid split is a fixed-seed 10% of the official training set.
    """
    _check_split(split)
    import keras

    keras_cache = pathlib.Path(os.environ.get("KERAS_HOME", pathlib.Path.home() / ".keras")) / "datasets"
    hint = (
        f"{name} is not cached at {keras_cache / _KERAS_FILES[name]} and could not be downloaded. "
        f"Run once with internet access, or copy the keras.datasets file(s) there."
    )
    cached = (keras_cache / _KERAS_FILES[name]).exists()
    if _offline() and not cached:
        raise OfflineError(hint)
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as e:  # keras raises a bare Exception on failed downloads
        if isinstance(e, (OSError, urllib.error.URLError)) or "URL fetch failure" in str(e):
            raise OfflineError(hint) from None
        raise
    if split == "test":
        x, y = x_test, y_test
    else:
        idx = split_indices(len(x_train), "train" if split == "train" else "valid",
                            valid_fraction, 0.0, split_seed)
        x, y = x_train[idx], y_train[idx]
    ds = from_array(x, np.asarray(y).reshape(-1).astype("int32"), name=name, split=split)
    ds.num_classes = 10
    return ds


# === toy 2-D densities ===


def load_toy(name, split="train", num_examples=None, seed=0, **_):
    """Points from a toy 2-D density; each split has its own seed."""
    _check_split(split)
    sizes = {"train": 20000, "valid": 5000, "test": 5000}
    n = int(num_examples or sizes[split])
    rng = np.random.default_rng([seed, SPLITS.index(split), 7919])
    x = toy2d.GENERATORS[name](n, rng)
    return Dataset(name, split, x, None, kind="points", num_levels=None)


# === a user's own files ===


def load_npz(path, split="train", valid_fraction=0.1, test_fraction=0.1, split_seed=0, **_):
    """A `.npz` with key `x` (and optional `y`), split with a fixed seed."""
    path = pathlib.Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f:
                raise DataError(f"{path} has no key 'x' (found {', '.join(f.files) or 'none'}); "
                                "save images as np.savez(path, x=images, y=labels).")
            x = f["x"]
            y = f["y"] if "y" in f else None
    except DataError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise DataError(f"{path}: object arrays are refused (no pickles); store numeric arrays.") from None
        raise DataError(f"{path} is corrupted or not a .npz file ({e}).") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is corrupted or not a .npz file ({e}).") from None
    return _split_user(x, y, str(path), split, valid_fraction, test_fraction, split_seed)


def load_png_folder(path, split="train", valid_fraction=0.1, test_fraction=0.1, split_seed=0, **_):
    """A folder of PNG images of one size; sub-folders named by class give labels."""
    import tensorflow as tf  # PNG decoding; TensorFlow is always installed with kgen

    path = pathlib.Path(path)
    files = sorted(path.rglob("*.png"))
    if not files:
        raise DataError(f"{path} holds no .png files; expected a folder of PNG images.")
    subdirs = sorted({f.parent for f in files})
    labelled = len(subdirs) > 1 or subdirs[0] != path
    images, labels = [], []
    for f in files:
        try:
            img = tf.io.decode_png(f.read_bytes()).numpy()
        except Exception:  # noqa: BLE001 (TF raises its own error types)
            raise DataError(f"{f} is corrupted or not a PNG image.") from None
        images.append(img)
        labels.append(subdirs.index(f.parent))
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        raise DataError(f"{path}: images differ in size ({sorted(shapes)[:3]}...); resize them to one size.")
    x = np.stack(images)
    y = np.asarray(labels, "int32") if labelled else None
    return _split_user(x, y, str(path), split, valid_fraction, test_fraction, split_seed)


def _split_user(x, y, name, split, valid_fraction, test_fraction, split_seed):
    full = from_array(x, y, name=name, split=split)
    idx = split_indices(len(full), split, valid_fraction, test_fraction, split_seed)
    if len(idx) == 0:
        raise DataError(f"{name}: the {split} split is empty ({len(full)} examples in all); "
                        "supply more examples or change data.valid_fraction / data.test_fraction.")
    full.x = full.x[idx]
    full.y = None if full.y is None else full.y[idx]
    return full
