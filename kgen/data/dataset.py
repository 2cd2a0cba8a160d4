"""The `Dataset` every loader returns, and the checks on it."""

import dataclasses

import numpy as np

from kgen.errors import DataError


@dataclasses.dataclass
class Dataset:
    """One split of a data set, in kgen's conventions.

    Attributes:
        name: the data set's name (or the file it came from).
        split: "train", "valid" or "test".
        x: float32 array. Images are NHWC in [0, 1]; points are (N, D).
        y: int32 labels of shape (N,), or None.
        kind: "image", "points" or "sequence" (int32 token ids (N, T);
            `kgen.data.sequences`).
        num_levels: discrete values per pixel (2 binary, 17 `digits`, 256
            8-bit; a sequence's vocabulary size), or None for continuous data.
        num_classes: number of label classes, or None.
        x_source: translation data only: the source images (domain A);
            `x` then holds the targets (domain B). See `kgen.data.translation`.
        paired: translation data only: whether `x_source[i]` is the source of
            `x[i]` (else the domains are unrelated sets, maybe of other sizes).
        labelled_splits: for a data set whose splits differ in having labels,
            the splits that have them (binarized_mnist: `("test",)`); None when
            every split is alike. `missing_labels` uses it to say where labels are.
        vocabulary: text only: the `kgen.data.sequences.Vocabulary` of token ids.
        oracle: seqgan_oracle only: the `kgen.data.sequences.Oracle` that made the data.
    """

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray = None
    kind: str = "image"
    num_levels: int = None
    num_classes: int = None
    x_source: np.ndarray = None
    paired: bool = None
    labelled_splits: tuple = None
    vocabulary: object = None
    oracle: object = None

    def __len__(self):
        return len(self.x)

    @property
    def shape(self):
        """The shape of one example."""
        return tuple(self.x.shape[1:])

    @property
    def num_dims(self):
        return int(np.prod(self.shape))

    def missing_labels(self, what):
        """The one-line error when `what` (e.g. "a conditional model") needs labels and this split has none.

        Names the splits that do have labels when the data set has some.
        """
        if self.labelled_splits and self.split not in self.labelled_splits:
            only = ", ".join(self.labelled_splits)
            plural = "s have" if len(self.labelled_splits) > 1 else " has"
            return (
                f"{self.name}: {what} needs labels and its {self.split} split has none; only its {only} "
                f"split{plural} labels: use that split, a labelled data set, or a .npz with key 'y'."
            )
        return (
            f"{self.name}: {what} needs labels and this data set has none; "
            "supply a .npz with key 'y' or a labelled folder of PNGs."
        )

    def subset(self, n, seed=None):
        """`n` examples: the first `n`, or with `seed` a fixed random choice of `n` kept in split order
        (a split stored sorted, as binarized MNIST's test split is by class, then stays representative)."""
        if seed is None or n >= len(self.x):
            idx = slice(0, n)
        else:
            idx = np.sort(np.random.default_rng(seed).choice(len(self.x), n, replace=False))
        return dataclasses.replace(
            self, x=self.x[idx], y=None if self.y is None else self.y[idx],
            x_source=None if self.x_source is None else self.x_source[idx],
        )

    def concat(self, other):
        """This split followed by `other` (another split of the same data set)."""
        if other.shape != self.shape or other.num_levels != self.num_levels or other.kind != self.kind:
            raise DataError(f"{self.name}: cannot join the {other.split} split {other.shape} to {self.split} {self.shape}.")
        if (self.y is None) != (other.y is None) or (self.x_source is None) != (other.x_source is None):
            raise DataError(f"{self.name}: the {self.split} and {other.split} splits differ in labels or sources.")

        def join(a, b):
            return None if a is None else np.concatenate([a, b])

        return dataclasses.replace(self, x=join(self.x, other.x), y=join(self.y, other.y),
                                   x_source=join(self.x_source, other.x_source))


def validate_array(x, what):
    """Checks rank, dtype, emptiness and finiteness; returns float32 NHWC or (N, D)."""
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{what}: expected a numeric array, got dtype {x.dtype}.")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{what}: expected real numbers, got complex values (dtype {x.dtype}); store real "
                        "images or points (np.abs(x) or x.real, if that is what you mean).")
    if x.ndim == 0:
        raise DataError(f"{what}: expected an array of examples, (N, D) points or (N, H, W[, C]) images, "
                        f"got a single {x.dtype} value; store the examples themselves under 'x'.")
    if x.size == 0 or len(x) == 0:
        raise DataError(f"{what}: the array is empty; expected at least one example.")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim not in (2, 4):
        raise DataError(
            f"{what}: expected shape (N, D) points or (N, H, W[, C]) images, got {x.shape}."
        )
    if x.ndim == 4 and x.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{what}: images need 1, 3 or 4 channels last (N, H, W, C), got {x.shape}."
        )
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.isfinite(x).sum())
        raise DataError(f"{what}: {bad} values are NaN or Inf; clean the data first.")
    return x


def from_array(x, y=None, name="array", split="train"):
    """Builds a Dataset from a user's array, inferring kind and levels.

    Integer arrays are levels: uint8 means 256 levels, other integers
    max+1 levels. Floats must lie in [0, 1] (images) and are taken as binary
    when they hold only 0 and 1, else continuous. (N, D) arrays are points.
    """
    x = validate_array(x, name)
    num_levels = None
    if x.ndim == 2:
        kind = "points"
        x = x.astype("float32")
    else:
        kind = "image"
        if x.dtype == bool:
            x, num_levels = x.astype("float32"), 2
        elif np.issubdtype(x.dtype, np.integer):
            if x.min() < 0:
                raise DataError(f"{name}: integer pixel levels must be >= 0, found {x.min()}.")
            num_levels = 256 if x.dtype == np.uint8 else int(x.max()) + 1
            num_levels = max(num_levels, 2)
            x = x.astype("float32") / (num_levels - 1)
        else:
            lo, hi = float(x.min()), float(x.max())
            if lo < 0 or hi > 1:
                raise DataError(
                    f"{name}: float images must lie in [0, 1], found [{lo:.3g}, {hi:.3g}]; "
                    "divide 8-bit images by 255, or store them as uint8."
                )
            x = x.astype("float32")
            if np.all((x == 0) | (x == 1)):
                num_levels = 2
    if y is not None:
        y = np.asarray(y)
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{name}: labels must be integers, got dtype {y.dtype}.")
        if y.shape != (len(x),):
            raise DataError(f"{name}: expected {len(x)} labels of shape (N,), got {y.shape}.")
        y = y.astype("int32")
    return Dataset(
        name=name,
        split=split,
        x=x,
        y=y,
        kind=kind,
        num_levels=num_levels,
        num_classes=None if y is None else int(y.max()) + 1,
    )
