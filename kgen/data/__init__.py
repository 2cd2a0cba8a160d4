"""Data sets: built-in, downloadable, toy 2-D, and a user's own files.

    >>> import kgen
    >>> train = kgen.load_dataset("digits", split="train")
    >>> train.x.shape, train.num_levels
    ((1437, 8, 8, 1), 17)
"""

import functools
import pathlib

from kgen.data import loaders, multi_digits, sequences, toy2d, translation
from kgen.data import bouncing
from kgen.data.dataset import Dataset, from_array, validate_array
from kgen.errors import UsageError, did_you_mean

DATASETS = {
    "digits": (loaders.load_digits, "UCI 8x8 handwritten digits, 17 levels, labels (bundled, offline)"),
    "binarized_mnist": (loaders.load_binarized_mnist, "MNIST statically binarized (Larochelle & Murray 2011); "
                        "labels on the test split only (shipped), train and valid unlabelled"),
    "mnist": (functools.partial(loaders.load_idx_dataset, "mnist"),
              "MNIST 28x28, 256 levels, labels (IDX files from data.dir / KGEN_DATA_DIR, else keras.datasets)"),
    "fashion_mnist": (functools.partial(loaders.load_idx_dataset, "fashion_mnist"),
                      "Fashion-MNIST 28x28, 256 levels, labels (IDX files from data.dir / KGEN_DATA_DIR / "
                      "apt dataset-fashion-mnist, else keras.datasets)"),
    "cifar10": (functools.partial(loaders.load_keras_dataset, "cifar10"), "CIFAR-10 32x32 RGB (keras.datasets)"),
}
DATASETS.update(translation.TRANSLATION_DATASETS)
DATASETS["seqgan_oracle"] = (sequences.load_seqgan_oracle,
                             "SeqGAN synthetic data: 20-token sequences from an oracle LSTM, vocabulary 5000 "
                             "(data.oracle: the published .npz, else kgen's random oracle)")
DATASETS["text"] = (sequences.load_text, "character or word windows of a UTF-8 file or folder (data.path; "
                    "default: the bundled corpus), vocabulary from the train split")
DATASETS.update(multi_digits.DATASETS)
DATASETS.update(bouncing.DATASETS)
for _name in toy2d.GENERATORS:
    DATASETS[_name] = (functools.partial(loaders.load_toy, _name), f"toy 2-D density '{_name}' (generated)")


def list_datasets():
    """Names and one-line descriptions of the built-in data sets."""
    return {name: desc for name, (_, desc) in DATASETS.items()}


def load_dataset(name, split="train", **options):
    """Loads one split of a data set.

    Args:
        name: a built-in name (`kgen list` shows them), a `.npz` file with key
            `x` (optional `y`), a folder of PNG images, or a folder with
            sub-folders `A/` and `B/` of PNGs (translation data, see
            `kgen.data.translation`).
        split: "train", "valid" or "test".
        **options: loader options: `data_dir` (local files for
            `binarized_mnist`), `valid_fraction`, `test_fraction`,
            `split_seed`, `num_examples` and `seed` (toy 2-D).

    Returns:
        A `kgen.data.Dataset`.
    """
    key = str(name)
    if key in DATASETS:
        return DATASETS[key][0](split=split, **options)
    path = pathlib.Path(key).expanduser()
    options.pop("path", None)  # data.path names the `text` data set's file; a path-named data set is its own
    if path.suffix == ".npz":
        if not path.is_file():
            raise UsageError(f"data file {path} does not exist.")
        return loaders.load_npz(path, split=split, **options)
    if path.is_dir() and translation.is_translation_folder(path):  # A/ and B/: image-to-image pairs
        return translation.load_translation_folder(path, split=split, **options)
    if path.is_dir():
        return loaders.load_png_folder(path, split=split, **options)
    raise UsageError(
        f'unknown dataset "{name}".{did_you_mean(key, DATASETS)} Use a built-in name '
        f"({', '.join(DATASETS)}), a .npz file or a folder of PNG images."
    )


__all__ = ["Dataset", "from_array", "validate_array", "list_datasets", "load_dataset"]
