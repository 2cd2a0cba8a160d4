"""Feature networks for FID/KID: small per-data-set classifiers that kgen trains and ships.

The standard FID uses Inception-v3 features, whose weights cannot be
downloaded on every machine (and fit 8x8 digits poorly). kgen instead trains a
small CNN classifier per labelled data set and uses its penultimate layer
(`features`, a ReLU dense layer) as the feature map. FIDs computed with these
networks are *domain* metrics: they rank models on one data set, but they are
not comparable with Inception FIDs from papers, nor across data sets.

Shipped, each with its card (`features-<name>.toml`: the recipe, the exact
command and the measured accuracy):

- `features-digits.keras`: trained on the digits' train split;
  `python -m kgen.metrics.features digits --dest saved_models`.
- `features-fashion_mnist.keras`: trained on Fashion-MNIST's train split
  (54,000; early stopping on its valid split), accuracy on the 10,000 test images.
- `features-binarized_mnist.keras`: binarized MNIST's train and valid splits
  have no labels, so its classifier is trained on a seeded half of the
  labelled test split (4,500 to fit, 500 to stop early) and its accuracy is
  measured on the other 5,000. Because it has seen test images, FID/KID on
  binarized MNIST compare samples with the valid split (`reference_split` in
  the card), never with the test split.

A classifier that is not shipped is looked up in the kgen cache
(`$KGEN_CACHE_DIR`, default `~/.cache/kgen`), or taken from a path
(`evaluate.feature_classifier` in a recipe, or the `path` argument);
`python -m kgen.metrics.features <data set>` trains one for any labelled data set.
"""

import argparse
import importlib.resources
import pathlib

import keras
import numpy as np

from kgen.errors import DataError, UsageError

FEATURES_LAYER = "features"
PREFIX = "features-"

# Data sets whose only labelled split is their test split: the classifier is
# fitted on a seeded half of it (HALF_FIT of that half to fit, the rest to stop
# early), its accuracy measured on the other half, and FID/KID use
# `reference_split` as the real data (a split the classifier never saw).
TEST_LABELLED = {"binarized_mnist": {"reference_split": "valid"}}
HALF_FIT = 0.9

def _shipped_root():
    return pathlib.Path(str(importlib.resources.files("kgen.saved_models")))


def _cache_root():
    from kgen.data.loaders import cache_dir

    return cache_dir()


def dataset_key(dataset):
    """The name a data set's classifier is filed under: the built-in name, or a file's/folder's stem."""
    text = str(dataset)
    if "/" in text or text.endswith(".npz"):
        return pathlib.Path(text).expanduser().resolve().stem or "data"
    return text


def classifier_filename(dataset):
    return f"{PREFIX}{dataset_key(dataset)}.keras"


def list_feature_classifiers():
    """The shipped feature classifiers: `[{"dataset", "file", "test_accuracy"}]`."""
    import tomllib

    out = []
    for path in sorted(_shipped_root().glob(f"{PREFIX}*.keras")):
        card = path.with_suffix(".toml")
        info = tomllib.loads(card.read_text()) if card.is_file() else {}
        out.append({"dataset": path.stem[len(PREFIX):], "file": path.name,
                    "test_accuracy": info.get("test_accuracy")})
    return out


def classifier_path(dataset, path=None):
    """The feature classifier for `dataset`: `path`, else shipped, else cached.

    Raises:
        UsageError: none exists; the message says how to train one.
    """
    if path:
        path = pathlib.Path(path).expanduser()
        if not path.is_file():
            raise UsageError(f"feature classifier {path} does not exist.")
        return path
    name = classifier_filename(dataset)
    for root in (_shipped_root(), _cache_root()):
        if (root / name).is_file():
            return root / name
    shipped = ", ".join(c["dataset"] for c in list_feature_classifiers()) or "none"
    raise UsageError(
        f'no feature classifier for "{dataset}" (shipped: {shipped}), so FID/KID cannot be computed. '
        f"Train one on its labels with `python -m kgen.metrics.features {dataset}` "
        f"(it writes {_cache_root() / name}), or set evaluate.feature_classifier to a .keras classifier."
    )


# === The network ===


def build_classifier(input_shape, num_classes, features_dim=None, seed=0):
    """A small CNN: 3x3 convolutions (stride 2 until the map is at most 4x4), dense `features`, logits.

    Args:
        input_shape: `(H, W, C)` images in [0, 1].
        num_classes: number of labels.
        features_dim: width of the `features` layer (default 64 for images
            up to 16x16, else 128).
        seed: seed of the weight initialisers.
    """
    h, w, c = (int(d) for d in input_shape)
    features_dim = features_dim or (64 if max(h, w) <= 16 else 128)
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((h, w, c), name="x")
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init(seed))(inputs)
    filters, i = 64, 1
    while max(h, w) > 4:
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                                kernel_initializer=init(seed + i))(x)
        h, w, i = (h + 1) // 2, (w + 1) // 2, i + 1
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=init(seed + i))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3, seed=seed)(x)
    x = keras.layers.Dense(features_dim, activation="relu", name=FEATURES_LAYER,
                           kernel_initializer=init(seed + 100))(x)
    x = keras.layers.Dropout(0.3, seed=seed + 1)(x)
    outputs = keras.layers.Dense(num_classes, name="logits", kernel_initializer=init(seed + 101))(x)
    return keras.Model(inputs, outputs, name="feature_classifier")


# === Training ===


def _load(dataset, split, data_dir=None):
    from kgen.data import load_dataset

    options = {"data_dir": data_dir} if data_dir else {}
    ds = load_dataset(dataset, split=split, **options)
    if ds.y is None:
        raise DataError(ds.missing_labels("a feature classifier"))
    if ds.kind != "image":
        raise DataError(f"{ds.name}: feature classifiers are for images, not {ds.kind}.")
    return ds.x.astype("float32"), ds.y.astype("int32")


def test_halves(n, seed):
    """`(fit, stop, held_out)` index arrays: a seeded half of `n` examples (cut HALF_FIT : rest) and the other half."""
    order = np.random.default_rng([seed, 23]).permutation(n)
    half, cut = order[: n // 2], int(round(HALF_FIT * (n // 2)))
    return np.sort(half[:cut]), np.sort(half[cut:]), np.sort(order[n // 2 :])


def labelled_splits(dataset, seed=0, data_dir=None):
    """`{"train", "valid", "test"}` -> `(x, y)` the classifier is fitted, stopped and scored on, and a note."""
    if str(dataset) in TEST_LABELLED:
        x, y = _load(dataset, "test", data_dir)
        fit, stop, held = test_halves(len(x), seed)
        note = (f"{dataset} has labels for its test split only: fitted on {len(fit)} and stopped early on "
                f"{len(stop)} of a seeded half of it, scored on the other {len(held)}")
        return {"train": (x[fit], y[fit]), "valid": (x[stop], y[stop]), "test": (x[held], y[held])}, note
    splits = {split: _load(dataset, split, data_dir) for split in ("train", "valid", "test")}
    return splits, "fitted on the train split, stopped early on the valid split, scored on the test split"


def train_classifier(dataset, dest=None, epochs=40, batch_size=64, seed=0, data_dir=None, verbose=0):
    """Trains the feature classifier for `dataset` and writes it with its card.

    Trains on the train split, keeps the weights of the epoch with the best
    validation accuracy, and measures the test accuracy. Writes
    `features-<dataset>.keras` and `features-<dataset>.toml` (recipe and
    accuracies) into `dest` (default: the kgen cache; the shipped files were
    written with `dest` = `saved_models/`).

    Returns:
        The card: a dict with `dataset`, `source`, `test_accuracy`, ...
    """
    keras.utils.set_random_seed(seed)
    splits, note = labelled_splits(dataset, seed, data_dir)
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = splits["train"], splits["valid"], splits["test"]
    num_classes = int(max(y_train.max(), y_valid.max(), y_test.max())) + 1
    model = build_classifier(x_train.shape[1:], num_classes, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    best = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=epochs, restore_best_weights=True,
                                         mode="max")
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_data=(x_valid, y_valid),
                        callbacks=[best], verbose=verbose, shuffle=True)
    valid_acc = float(np.mean(np.argmax(model.predict(x_valid, verbose=0), -1) == y_valid))
    test_acc = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
    card = {
        "dataset": str(dataset),
        "source": str(dataset),
        "splits": note,
        "description": (
            f"Feature network for kgen's domain FID/KID on {dataset}: the penultimate layer "
            f"`{FEATURES_LAYER}` of a small CNN classifier. Not comparable with Inception FID."
        ),
        "command": f"python -m kgen.metrics.features {dataset} --epochs {epochs} --seed {seed}"
                   + (f" --batch-size {batch_size}" if batch_size != 64 else ""),
        "epochs": int(epochs),
        "best_epoch": int(np.argmax(history.history["val_accuracy"])) + 1,
        "batch_size": int(batch_size),
        "seed": int(seed),
        "backend": keras.config.backend(),
        "keras_version": keras.__version__,
        "num_classes": num_classes,
        "features_dim": int(model.get_layer(FEATURES_LAYER).units),
        "params": int(model.count_params()),
        "train_examples": int(len(x_train)),
        "valid_accuracy": round(valid_acc, 4),
        "test_examples": int(len(x_test)),
        "test_accuracy": round(test_acc, 4),
    }
    if str(dataset) in TEST_LABELLED:
        card["reference_split"] = TEST_LABELLED[str(dataset)]["reference_split"]
    dest = pathlib.Path(dest) if dest else _cache_root()
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / classifier_filename(dataset)
    shipped = build_classifier(x_train.shape[1:], num_classes, seed=seed)  # uncompiled: no optimizer state
    shipped.set_weights(model.get_weights())
    shipped.save(out)
    from kgen.config import _toml_value

    lines = [f"{k} = {_toml_value(v)}" for k, v in card.items()]
    out.with_suffix(".toml").write_text("\n".join(lines) + "\n")
    card["file"] = str(out)
    return card


# === Feature extraction ===


class FeatureExtractor:
    """Maps images in [0, 1] to the `features` layer of a trained classifier.

    Args:
        dataset: the data set whose classifier to use (see `classifier_path`).
        path: a `.keras` classifier to use instead.

    Example:

    >>> fx = FeatureExtractor("digits")                      # doctest: +SKIP
    >>> fx(kgen.load_dataset("digits", split="test").x).shape  # doctest: +SKIP
    (180, 64)
    """

    def __init__(self, dataset, path=None):
        self.path = classifier_path(dataset, path)
        try:
            self.classifier = keras.saving.load_model(self.path, compile=False, safe_mode=True)
            layer = self.classifier.get_layer(FEATURES_LAYER)
        except Exception as e:  # noqa: BLE001 (Keras raises many types on bad files)
            raise UsageError(
                f"feature classifier {self.path} is not a kgen feature classifier or is corrupted "
                f"({type(e).__name__}: {e})."
            ) from None
        self.dataset = str(dataset)
        self.input_shape = tuple(int(d) for d in self.classifier.input_shape[1:])
        self.extractor = keras.Model(self.classifier.inputs, layer.output)
        self.dim = int(layer.output.shape[-1])

    def _check(self, x):
        x = np.asarray(x, "float32")
        if x.shape[1:] != self.input_shape:
            raise DataError(
                f"the feature classifier {self.path.name} takes images of shape {self.input_shape}, "
                f"got {x.shape[1:]}; use a classifier trained on this data set."
            )
        return np.clip(x, 0.0, 1.0)

    def __call__(self, x, batch_size=256):
        """Features `(N, dim)` (float64) of images `x` in [0, 1] (clipped to it)."""
        out = self.extractor.predict(self._check(x), batch_size=batch_size, verbose=0)
        return np.asarray(out, "float64")

    def predict_labels(self, x, batch_size=256):
        """The classifier's predicted class of each image."""
        logits = self.classifier.predict(self._check(x), batch_size=batch_size, verbose=0)
        return np.argmax(np.asarray(logits), axis=-1).astype("int32")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train kgen's feature classifier for FID/KID on a data set.")
    parser.add_argument("dataset")
    parser.add_argument("--dest", default=None, help="output folder (default: the kgen cache)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    card = train_classifier(args.dataset, dest=args.dest, epochs=args.epochs, batch_size=args.batch_size,
                            seed=args.seed, data_dir=args.data_dir, verbose=2)
    print(card)


if __name__ == "__main__":
    main()
