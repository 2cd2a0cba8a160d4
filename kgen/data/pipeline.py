"""Applies a recipe's `[data]` preprocessing to a `Dataset`.

Randomised steps (dynamic binarization, dequantization) draw fresh noise
each training epoch from `(seed, epoch)`, so a resumed run sees exactly the
data an uninterrupted run would; valid and test splits use a fixed draw so
their scores compare across epochs.
"""

import dataclasses

import numpy as np

from kgen.data import load_dataset, preprocess, translation
from kgen.errors import DataError

# The recipe's [data] table and its defaults (kgen.config checks recipes against it).
DATA_DEFAULTS = {
    "name": "digits",
    "dir": "",  # local files (binarized_mnist); also $KGEN_DATA_DIR
    "binarize": "none",  # none | static | dynamic
    "dequantize": False,  # uniform dequantization (continuous densities)
    "logit_alpha": 0.0,  # > 0: logit transform with this alpha
    "scale": "unit",  # unit [0, 1] | symmetric [-1, 1]
    "valid_fraction": 0.1,
    "test_fraction": 0.1,
    "split_seed": 0,
    "max_examples": 0,  # > 0: keep only the first N training examples
    "train_with_valid": False,  # true: train on train + valid (final-model protocol; val_* then score seen data)
    "max_pixels": 4096 * 4096,  # PNG folders: larger images are refused before decoding
    # Sequence data (kgen.data.sequences):
    "oracle": "",  # seqgan_oracle: a .npz oracle, "random[:SEED]"; "": seqgan_oracle.npz in dir / $KGEN_DATA_DIR, else random
    "path": "",  # text: a UTF-8 file or folder ("": the bundled corpus)
    "tokens": "char",  # text: char | word
    "seq_len": 64,  # text: tokens per window
}

_SPLIT_SALT = {"train": 0, "valid": 1, "test": 2}


@dataclasses.dataclass
class Prepared:
    """Model-ready arrays of one split, with the log-det of their transforms."""

    x: np.ndarray
    y: np.ndarray
    logdet: np.ndarray  # per example; zeros when no transform changes volume
    source: object  # the Dataset after static steps
    x_source: np.ndarray = None  # translation data: one source image per row of x


class Pipeline:
    """Loads and preprocesses the data a config names."""

    def __init__(self, data_config):
        # Checkpoints written before a `[data]` key existed lack it: its default applies.
        self.config = {**DATA_DEFAULTS, **data_config}

    def load(self, split):
        """One split, preprocessed; with `data.train_with_valid` the train split includes valid."""
        ds = self._load(split)
        if split == "train" and self.config["train_with_valid"]:
            ds = ds.concat(self._load("valid"))
        if split == "train" and self.config["max_examples"] > 0:
            ds = ds.subset(self.config["max_examples"])
        return ds

    def _load(self, split):
        c = self.config
        options = {"valid_fraction": c["valid_fraction"], "test_fraction": c["test_fraction"],
                   "split_seed": c["split_seed"], "max_pixels": c["max_pixels"],
                   "oracle": c["oracle"], "path": c["path"], "tokens": c["tokens"], "seq_len": c["seq_len"]}
        if c["dir"]:
            options["data_dir"] = c["dir"]
        ds = load_dataset(c["name"], split=split, **options)
        if len(ds) == 0:
            raise DataError(f"{ds.name}: the {split} split is empty.")
        if ds.x_source is not None and (c["binarize"] != "none" or c["dequantize"] or c["logit_alpha"] > 0):
            raise DataError(f"{ds.name}: translation data supports data.scale only, not binarize/dequantize/logit.")
        if c["binarize"] != "none":
            if ds.kind != "image":
                raise DataError(f"{ds.name}: data.binarize applies to images, not {ds.kind}.")
            if c["binarize"] == "static":
                rng = np.random.default_rng([c["split_seed"], _SPLIT_SALT[split], 1])
                ds.x = preprocess.binarize(ds.x, rng)
            ds.num_levels = 2
        if (c["dequantize"] or c["logit_alpha"] > 0) and ds.num_levels is None:
            raise DataError(f"{ds.name}: data.dequantize / data.logit_alpha need discrete images.")
        return ds

    @property
    def continuous(self):
        """True when the model sees dequantized (continuous) data."""
        return bool(self.config["dequantize"] or self.config["logit_alpha"] > 0)

    def prepare(self, ds, epoch=None, seed=0):
        """Model-ready arrays; `epoch` None means the fixed evaluation draw."""
        c = self.config
        salt = [seed, _SPLIT_SALT[ds.split], 2] if epoch is None else [seed, 1000 + int(epoch), 3]
        rng = np.random.default_rng(salt)
        x = ds.x
        if c["binarize"] == "dynamic":
            x = preprocess.binarize(x, rng)
        logdet = np.zeros(len(x), "float32")
        if self.continuous:
            x = preprocess.dequantize(x, ds.num_levels, rng)
            if c["logit_alpha"] > 0:
                x, logdet = preprocess.logit_transform(x, c["logit_alpha"])
        x_source = translation.aligned_sources(ds, np.random.default_rng(salt + [4]))
        if c["scale"] != "unit":
            x = preprocess.scale(x, c["scale"])
            x_source = None if x_source is None else preprocess.scale(x_source, c["scale"])
        return Prepared(x=x, y=ds.y, logdet=logdet, source=ds, x_source=x_source)
