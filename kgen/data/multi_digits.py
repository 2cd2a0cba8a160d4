"""Multi-object canvases for Attend-Infer-Repeat: 0, 1 or 2 digits at random, non-overlapping places.

**multi_digits**: 24x24 canvases built from the bundled UCI 8x8 digits (17 grey levels), offline.
**multi_mnist**: 50x50 canvases built from statically binarized MNIST (binary), the data set of
Eslami et al. (2016, section 3.1; they let digits overlap, here they do not).

Each canvas holds `count` digits, `count` drawn uniformly from {0, 1, 2}. A digit is its source
image cropped to its ink (the bounding box of its non-zero pixels), pasted at a uniformly drawn
place where its box neither overlaps nor touches another digit's box (`GAP` background pixels
at least between them); elsewhere the canvas is 0. The canvases of a split are made from that
split of the source data (the bundled digits' fixed-seed split; binarized MNIST's own splits), by
a generator seeded with `(data.split_seed, split)`: the same seed gives the same canvases.

The label `y` of a canvas is its digit count (`num_classes = 3`), so `kgen evaluate` can score a
model's inferred counts (AIR's `evaluate_extra`). The digits' boxes and source indices, for
evaluating positions, come from `layout(name, split, ...)`:

    >>> from kgen.data import multi_digits
    >>> lay = multi_digits.layout("multi_digits", "test")
    >>> lay.x.shape, lay.count[:4].tolist(), lay.boxes.shape
    ((500, 24, 24, 1), [1, 2, 2, 0], (500, 2, 4))
"""

import collections
import functools

import numpy as np

from kgen.data import loaders
from kgen.data.dataset import Dataset
from kgen.errors import DataError

MAX_COUNT = 2  # digits per canvas: 0..MAX_COUNT
GAP = 1  # background pixels at least between two digits' boxes
SPECS = {
    "multi_digits": {"canvas": 24, "source": "digits", "num_levels": 17,
                     "sizes": {"train": 3000, "valid": 500, "test": 500}},
    "multi_mnist": {"canvas": 50, "source": "binarized_mnist", "num_levels": 2,
                    "sizes": {"train": 10000, "valid": 1000, "test": 1000}},
}
COUNT_DATASETS = tuple(SPECS)  # data sets whose label is the number of objects on the canvas

Layout = collections.namedtuple("Layout", ["x", "count", "boxes", "sources"])
Layout.__doc__ = """Canvases and where their digits are.

`x` (n, H, W, 1) float32; `count` (n,) int32; `boxes` (n, MAX_COUNT, 4) int32 rows
(top, left, height, width) of each digit's box in drawing order, -1 rows for absent digits;
`sources` (n, MAX_COUNT) int32: the index of each digit in its source split, -1 when absent."""


def ink_box(image):
    """(top, left, height, width) of the non-zero pixels of a 2-D image (the whole image when blank)."""
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    if not len(rows):
        return 0, 0, image.shape[0], image.shape[1]
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def boxes_apart(a, b, gap=GAP):
    """True when boxes (top, left, height, width) `a` and `b` are separated by at least `gap` pixels."""
    return (a[0] + a[2] + gap <= b[0] or b[0] + b[2] + gap <= a[0]
            or a[1] + a[3] + gap <= b[1] or b[1] + b[3] + gap <= a[1])


def make_canvases(digits, n, canvas_size, seed=0, max_count=MAX_COUNT, gap=GAP):
    """`n` canvases of `canvas_size` squared with 0..max_count digits of `digits` (N, h, w[, 1]).

    Returns a `Layout`. Deterministic in `seed` (an int or a sequence of ints).
    """
    digits = np.asarray(digits, "float32")
    if digits.ndim == 4:
        digits = digits[..., 0]
    rng = np.random.default_rng(seed)
    x = np.zeros((n, canvas_size, canvas_size, 1), "float32")
    count = rng.integers(0, max_count + 1, size=n).astype("int32")
    boxes = np.full((n, max_count, 4), -1, "int32")
    sources = np.full((n, max_count), -1, "int32")
    crops = {}
    for i in range(n):
        patches = []
        for k in range(count[i]):
            j = int(rng.integers(len(digits)))
            if j not in crops:
                t, l, h, w = ink_box(digits[j])
                crops[j] = digits[j, t:t + h, l:l + w]
            h, w = crops[j].shape
            if h > canvas_size or w > canvas_size:
                raise DataError(f"a {h}x{w} digit does not fit a {canvas_size}x{canvas_size} canvas.")
            patches.append((j, crops[j]))
        for _ in range(10000):  # places for all the canvas's digits at once, until they lie apart
            placed = [(int(rng.integers(canvas_size - p.shape[0] + 1)), int(rng.integers(canvas_size - p.shape[1] + 1)))
                      + p.shape for _, p in patches]
            if all(boxes_apart(a, b, gap) for m, a in enumerate(placed) for b in placed[:m]):
                break
        else:
            raise DataError(f"no room for {count[i]} digits apart on a {canvas_size}x{canvas_size} canvas.")
        for k, ((j, patch), box) in enumerate(zip(patches, placed)):
            x[i, box[0]:box[0] + box[2], box[1]:box[1] + box[3], 0] = patch
            boxes[i, k] = box
            sources[i, k] = j
    return Layout(x, count, boxes, sources)


def _source_digits(spec, split, valid_fraction, test_fraction, split_seed, data_dir):
    if spec["source"] == "digits":
        return loaders.load_digits(split, valid_fraction, test_fraction, split_seed).x
    return loaders.load_binarized_mnist(split, data_dir=data_dir).x


def layout(name="multi_digits", split="train", valid_fraction=0.1, test_fraction=0.1, split_seed=0,
           data_dir=None, **_):
    """The canvases of one split of `name` ("multi_digits" or "multi_mnist") with their digits' boxes."""
    loaders._check_split(split)
    spec = SPECS[name]
    digits = _source_digits(spec, split, valid_fraction, test_fraction, split_seed, data_dir)
    seed = [int(split_seed), loaders.SPLITS.index(split), 24601]
    return make_canvases(digits, spec["sizes"][split], spec["canvas"], seed)


def load_multi_digits(name, split="train", valid_fraction=0.1, test_fraction=0.1, split_seed=0, data_dir=None,
                      **_):
    """One split of `name` as a `Dataset`: canvases with their digit counts as labels."""
    lay = layout(name, split, valid_fraction, test_fraction, split_seed, data_dir)
    spec = SPECS[name]
    return Dataset(name, split, lay.x, lay.count, kind="image", num_levels=spec["num_levels"],
                   num_classes=MAX_COUNT + 1)


DATASETS = {
    "multi_digits": (functools.partial(load_multi_digits, "multi_digits"),
                     "24x24 canvases of 0-2 bundled 8x8 digits at random non-overlapping places, label = count "
                     "(generated from data.split_seed; for AIR)"),
    "multi_mnist": (functools.partial(load_multi_digits, "multi_mnist"),
                    "50x50 canvases of 0-2 binarized MNIST digits at random non-overlapping places, label = "
                    "count (generated; binarized_mnist from data.dir / KGEN_DATA_DIR; for AIR)"),
}
