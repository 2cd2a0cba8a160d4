"""Loaders for the built-in data sets and for a user's own files."""

import gzip
import hashlib
import importlib.resources
import io
import os
import pathlib
import struct
import urllib.error
import urllib.request
import zipfile
import zlib

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
    y = binarized_mnist_labels() if split in BINARIZED_MNIST_LABELLED_SPLITS else None
    return Dataset(
        "binarized_mnist", split, x.reshape(-1, 28, 28, 1).astype("float32"), y,
        kind="image", num_levels=2, num_classes=None if y is None else 10,
        labelled_splits=BINARIZED_MNIST_LABELLED_SPLITS,
    )


# The digit class of each test image, shipped with kgen (kgen/data/files/README.md says how
# they were obtained). The train and valid splits are shuffled and have no published labels.
BINARIZED_MNIST_LABELS = importlib.resources.files("kgen.data").joinpath("files/binarized_mnist_labels.npz")
BINARIZED_MNIST_LABELS_SHA256 = "f7cd9d3a7438833ddaff2865a3ef3497a9479b8a1fc1e2dc2db0faf6648419c2"
BINARIZED_MNIST_LABELLED_SPLITS = ("test",)


def binarized_mnist_labels():
    """The 10000 int32 labels of binarized MNIST's test split, SHA-256 verified."""
    source = BINARIZED_MNIST_LABELS
    try:
        raw = source.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{source} is missing from this kgen installation; reinstall kgen.") from None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as f:
            y = f["test"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{source} is corrupted ({type(e).__name__}: {e}); reinstall kgen.") from None
    digest = hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest()
    if y.dtype != np.uint8 or y.shape != (BINARIZED_MNIST_SIZES["test"],) or digest != BINARIZED_MNIST_LABELS_SHA256:
        raise DataError(
            f"{source} is corrupted: labels {y.dtype} {y.shape} with SHA-256 {digest[:12]}..., expected "
            f"uint8 ({BINARIZED_MNIST_SIZES['test']},) with {BINARIZED_MNIST_LABELS_SHA256[:12]}...; reinstall kgen."
        )
    return y.astype("int32")


# === MNIST and Fashion-MNIST: the canonical IDX files ===

# Debian's data set packages install here (`apt-get install dataset-fashion-mnist` puts the four
# `*-idx?-ubyte.gz` files in /usr/share/datasets/fashion-mnist/). A module constant so tests can move it.
DEBIAN_DATASETS = pathlib.Path("/usr/share/datasets")
# The folder each data set's files live in, as Debian and keras.datasets name it.
IDX_FOLDERS = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# SHA-256 of each file's IDX content (after gunzip). The content, not the .gz, is hashed: the .gz bytes
# differ between copies (Debian's are recompressed: their MD5s are not the published ones), the
# content does not. Checked against the files themselves and against published values; see
# kgen/data/files/README.md.
IDX_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}


def parse_idx(raw, source="IDX data"):
    """An IDX file's bytes (already gunzipped) -> a native-endian NumPy array.

    IDX (LeCun's MNIST format): two zero bytes, a type code (0x08 uint8, 0x09 int8,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions,
    each dimension as a big-endian uint32, then the values, big-endian, row-major.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{source} is corrupted or not an IDX file (starts {bytes(raw[:4]).hex()}, expected "
                        "00 00 <type> <ndim>); delete it and supply the original file.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source} is truncated: {len(raw)} bytes, shorter than its {header}-byte IDX header; "
                        "delete it and supply the original file.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + dtype.itemsize * int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "corrupted"
        raise DataError(f"{source} is {state}: {len(raw)} bytes, its header {dims} calls for {expected}; "
                        "delete it and supply the original file.")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _idx_bytes(path):
    """A file's IDX bytes, gunzipped when it is gzipped (by content, not by name)."""
    raw = pathlib.Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path} is corrupted or truncated (gzip: {e}); "
                            "delete it and supply the original file.") from None
    return raw


def read_idx(path):
    """An IDX file (`*-idx?-ubyte`, gzipped or not) -> a NumPy array."""
    return parse_idx(_idx_bytes(path), str(path))


def _idx_sha256(array):
    """SHA-256 of the IDX file that holds `array` (header then big-endian values)."""
    array = np.ascontiguousarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        return "not an IDX type: " + str(array.dtype)
    digest = hashlib.sha256(struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape))
    digest.update(array.astype(array.dtype.newbyteorder(">"), copy=False).tobytes())
    return digest.hexdigest()


def _verify_idx(name, base, array, source):
    digest = _idx_sha256(array)
    expected = IDX_SHA256[name][base]
    if digest != expected:
        raise DataError(
            f"{name}: {source} is corrupted or not the canonical {base} (SHA-256 of its IDX content "
            f"{digest[:12]}..., expected {expected[:12]}...); delete it and supply the original file."
        )
    return array


def _keras_cache():
    """Where keras.datasets caches its downloads: $KERAS_HOME/datasets or ~/.keras/datasets."""
    return pathlib.Path(os.environ.get("KERAS_HOME", pathlib.Path.home() / ".keras")) / "datasets"


def idx_places(name, data_dir=None):
    """The folders searched for `name`'s IDX files, in order: (folder, what it is)."""
    subfolders = list(dict.fromkeys([IDX_FOLDERS[name], name]))
    places = []
    for root, what in ((data_dir, "data.dir"), (os.environ.get("KGEN_DATA_DIR"), "$KGEN_DATA_DIR")):
        if root:
            root = pathlib.Path(root).expanduser()
            places += [(root, what)] + [(root / sub, what) for sub in subfolders]
    places.append((DEBIAN_DATASETS / IDX_FOLDERS[name], "Debian package"))
    if name != "mnist":  # keras.datasets caches MNIST as one mnist.npz, read below
        places.append((_keras_cache() / IDX_FOLDERS[name], "Keras cache"))
    return places


def _find(folder, base):
    for candidate in (folder / f"{base}.gz", folder / base):
        if candidate.is_file():
            return candidate
    return None


def _idx_part(name, part, data_dir):
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of the official train or test part."""
    looked = []
    for folder, what in idx_places(name, data_dir):
        paths = [_find(folder, base) for base in IDX_FILES[part]]
        if all(paths):
            return tuple(_verify_idx(name, base, read_idx(path), f"{path} (from {what})")
                         for base, path in zip(IDX_FILES[part], paths))
        looked.append(f"{folder} ({what})")
    if name == "mnist":
        npz = _keras_cache() / "mnist.npz"
        if npz.is_file():
            return _keras_mnist_npz(npz, part)
        looked.append(f"{npz} (Keras cache)")
    files = " and ".join(f"{base}.gz" for base in IDX_FILES[part])
    fix = ("install them with `apt-get install dataset-fashion-mnist`, copy them into" if name == "fashion_mnist"
           else "copy them into")
    fix += " a folder named by --set data.dir=... or $KGEN_DATA_DIR, or run once with internet access"
    if _offline():
        raise OfflineError(f"{name}: {files} not found in {'; '.join(looked)}; KGEN_OFFLINE is set, so "
                           f"nothing was downloaded: {fix}.")
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as e:  # keras raises a bare Exception on failed downloads
        if isinstance(e, (OSError, urllib.error.URLError)) or "URL fetch failure" in str(e):
            raise OfflineError(f"{name}: {files} not found in {'; '.join(looked)}, and could not be "
                               f"downloaded by keras.datasets.{name}: {fix}.") from None
        raise
    x, y = (x_test, y_test) if part == "test" else (x_train, y_train)
    source = f"keras.datasets.{name}'s download (cached in {_keras_cache()})"
    return (_verify_idx(name, IDX_FILES[part][0], x, source), _verify_idx(name, IDX_FILES[part][1], y, source))


def _keras_mnist_npz(npz, part):
    keys = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}[part]
    try:
        with np.load(npz, allow_pickle=False) as f:
            arrays = [f[k] for k in keys]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"mnist: {npz} (Keras cache) is corrupted ({type(e).__name__}: {e}); "
                        "delete it and load again.") from None
    return tuple(_verify_idx("mnist", base, a, f"{npz} (Keras cache)") for base, a in zip(IDX_FILES[part], arrays))


def load_idx_dataset(name, split="train", data_dir=None, valid_fraction=0.1, split_seed=0, **_):
    """mnist and fashion_mnist from their canonical IDX files, SHA-256 verified.

    Looks for the `*-idx?-ubyte.gz` files (or gunzipped) in `data_dir`, then
    $KGEN_DATA_DIR (each also in a sub-folder named after the data set), then the
    Debian package's folder (/usr/share/datasets/fashion-mnist), then the Keras
    cache, and only then downloads through `keras.datasets`. The valid split is a
    fixed-seed 10% of the official training set; test is the official test set.
    Images are 28x28x1 float32 in [0, 1] (uint8 / 255, 256 levels); 10 classes.
    """
    _check_split(split)
    x, y = _idx_part(name, "test" if split == "test" else "train", data_dir)
    if split != "test":
        idx = split_indices(len(x), split, valid_fraction, 0.0, split_seed)
        x, y = x[idx], y[idx]
    ds = from_array(x, np.asarray(y).reshape(-1).astype("int32"), name=name, split=split)
    ds.num_classes = 10
    return ds


# === keras.datasets (download and cache) ===

_KERAS_FILES = {"cifar10": "cifar-10-batches-py"}


def load_keras_dataset(name, split="train", valid_fraction=0.1, split_seed=0, **options):
    """cifar10 through `keras.datasets` (mnist and fashion_mnist: `load_idx_dataset`).

    The valid split is a fixed-seed 10% of the official training set.
    """
    if name in IDX_FOLDERS:
        return load_idx_dataset(name, split, valid_fraction=valid_fraction, split_seed=split_seed, **options)
    _check_split(split)
    import keras

    keras_cache = _keras_cache()
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
    _check_npz_magic(path)
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


# Pixels one PNG may have before it is decoded (`data.max_pixels`): a 20000 x 20000 PNG compresses to
# ~0.4 MB and decodes to 1.2 GB, so the size is read from the header first.
DEFAULT_MAX_PIXELS = 4096 * 4096


def decode_png(path, max_pixels=DEFAULT_MAX_PIXELS):
    """A PNG file as a uint8 array (H, W, C), refused before decoding when larger than `max_pixels`."""
    import tensorflow as tf  # PNG decoding; TensorFlow is always installed with kgen

    path = pathlib.Path(path)
    raw = path.read_bytes()
    if len(raw) < 24 or raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR":
        raise DataError(f"{path} is corrupted or not a PNG image.")
    width, height = struct.unpack(">II", raw[16:24])
    if width * height > int(max_pixels):
        raise DataError(f"{path} is {width} x {height} pixels, more than data.max_pixels = {int(max_pixels)}; "
                        "resize the images, or raise the limit with --set data.max_pixels=N.")
    try:
        return tf.io.decode_png(raw).numpy()
    except Exception:  # noqa: BLE001 (TF raises its own error types)
        raise DataError(f"{path} is corrupted or not a PNG image.") from None


def _check_npz_magic(path):
    """Raises `DataError` unless `path` starts like a .npz (a zip archive); names a .npy or another file."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}).") from None
    hint = "save images with np.savez(path, x=images, y=labels)."
    if head.startswith(b"\x93NUMPY"):
        raise DataError(f"{path} is a .npy file (one array), not a .npz archive; {hint}")
    if not head.startswith(b"PK"):
        what = "it is empty" if not head else "not a zip archive: a text or other file named .npz"
        raise DataError(f"{path} is not a .npz file ({what}); {hint}")


def load_png_folder(path, split="train", valid_fraction=0.1, test_fraction=0.1, split_seed=0,
                    max_pixels=DEFAULT_MAX_PIXELS, **_):
    """A folder of PNG images of one size; sub-folders named by class give labels."""
    path = pathlib.Path(path)
    files = sorted(path.rglob("*.png"))
    if not files:
        raise DataError(f"{path} holds no .png files; expected a folder of PNG images.")
    subdirs = sorted({f.parent for f in files})
    labelled = len(subdirs) > 1 or subdirs[0] != path
    images, labels = [], []
    for f in files:
        images.append(decode_png(f, max_pixels))
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
