"""Image-to-image translation data: domain A (sources) -> domain B (targets).

A translation `Dataset` holds the targets in `x` (domain B, what a model
produces) and the sources in `x_source` (domain A). `paired` says whether
`x_source[i]` is the source of `x[i]` (pix2pix needs that) or whether the two
domains are two unrelated sets of images (CycleGAN needs only that). Every
other part of kgen keeps seeing `x`, so an unconditional model trained on a
translation data set simply models domain B.

Built in, offline, from the bundled 8x8 `digits`:

- `digits_inpaint` (paired): A is the digit with its lower half erased, B the
  whole digit. Translating A -> B completes the digit.
- `digits_bold` (unpaired): A holds digits as drawn, B bold digits (grey
  dilation with a 3x3 plus-shaped element). The two domains are drawn from
  disjoint halves of each split, so no source's bold partner is ever seen.

A user's own folder `path/` with sub-folders `A/` and `B/` of PNG images of
one size (e.g. `kgen train --model cycle_gan --dataset path`): the data are
**paired** when `A/` and `B/` hold exactly the same file names (`A/x.png`
pairs with `B/x.png`), and **unpaired** otherwise. Both sides are split
train | valid | test with the same fixed-seed rule as other user data (pairs
together; unpaired domains each on their own).

For an unpaired set `len(x_source)` may differ from `len(x)`;
`aligned_sources` draws, per epoch, one source for each target.
"""

import dataclasses
import pathlib

import numpy as np

from kgen.data.dataset import Dataset, from_array
from kgen.data.loaders import DEFAULT_MAX_PIXELS, _check_split, decode_png, load_digits, split_indices
from kgen.errors import DataError

# Salt of the fixed permutation that halves a digits split into domains A and B.
_HALVES_SEED = 20171


# === Transforms of the bundled digits ===


def erase_lower_half(x):
    """Sets the lower half of every image's rows to 0 (background)."""
    x = np.array(x, "float32", copy=True)
    x[:, x.shape[1] // 2 :] = 0.0
    return x


def dilate(x):
    """Grey dilation with a 3x3 plus-shaped element (each pixel: max of itself and its 4 neighbours)."""
    x = np.asarray(x, "float32")
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    shifts = [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0)]
    return np.max([padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in shifts], axis=0)


def digits_halves(n, seed=_HALVES_SEED):
    """Disjoint index sets (A, B) that halve `n` examples by a fixed permutation."""
    perm = np.random.default_rng(seed).permutation(n)
    half = n // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def load_digits_inpaint(split="train", **options):
    """Paired: A = digit with the lower half erased, B = the whole digit."""
    digits = load_digits(split=split, **options)
    return dataclasses.replace(
        digits, name="digits_inpaint", x_source=erase_lower_half(digits.x), paired=True
    )


def load_digits_bold(split="train", **options):
    """Unpaired: A = digits as drawn, B = bold digits, from disjoint halves of the split."""
    digits = load_digits(split=split, **options)
    a_idx, b_idx = digits_halves(len(digits))
    # Dilation takes maxima, so bold digits keep the digits' 17 grey levels.
    return Dataset(
        "digits_bold", split, dilate(digits.x[b_idx]), digits.y[b_idx], kind="image",
        num_levels=digits.num_levels, num_classes=digits.num_classes,
        x_source=digits.x[a_idx], paired=False,
    )


# === A user's folders A/ and B/ ===


def is_translation_folder(path):
    """True for a folder with sub-folders `A/` and `B/`."""
    path = pathlib.Path(path)
    return (path / "A").is_dir() and (path / "B").is_dir()


def _read_pngs(folder, max_pixels=DEFAULT_MAX_PIXELS):
    files = sorted(folder.glob("*.png"))
    if not files:
        raise DataError(f"{folder} holds no .png files; put the domain's PNG images directly in it.")
    images = []
    for f in files:
        images.append(decode_png(f, max_pixels))
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        raise DataError(f"{folder}: images differ in size ({sorted(shapes)[:3]}...); resize them to one size.")
    return [f.name for f in files], np.stack(images)


def load_translation_folder(path, split="train", valid_fraction=0.1, test_fraction=0.1, split_seed=0,
                            max_pixels=DEFAULT_MAX_PIXELS, **_):
    """A folder with `A/` and `B/` of PNGs: paired when both hold the same file names."""
    _check_split(split)
    path = pathlib.Path(path)
    names_a, a = _read_pngs(path / "A", max_pixels)
    names_b, b = _read_pngs(path / "B", max_pixels)
    if a.shape[1:] != b.shape[1:]:
        raise DataError(
            f"{path}: A/ images have shape {a.shape[1:]} and B/ images {b.shape[1:]}; "
            "translation needs one size and channel count for both domains."
        )
    paired = names_a == names_b
    full_a = from_array(a, name=str(path / "A"), split=split)
    full_b = from_array(b, name=str(path), split=split)
    if paired:
        idx_a = idx_b = split_indices(len(a), split, valid_fraction, test_fraction, split_seed)
    else:
        idx_a = split_indices(len(a), split, valid_fraction, test_fraction, split_seed)
        idx_b = split_indices(len(b), split, valid_fraction, test_fraction, split_seed)
    if len(idx_a) == 0 or len(idx_b) == 0:
        raise DataError(
            f"{path}: the {split} split is empty ({len(a)} A and {len(b)} B images in all); "
            "supply more images or change data.valid_fraction / data.test_fraction."
        )
    levels = [lv for lv in (full_a.num_levels, full_b.num_levels) if lv is not None]
    return Dataset(
        str(path), split, full_b.x[idx_b], None, kind="image",
        num_levels=max(levels) if len(levels) == 2 else None,
        x_source=full_a.x[idx_a], paired=paired,
    )


# === Aligning sources with targets ===


def aligned_sources(ds, rng):
    """One source image per target of `ds`: the pair (paired) or a random draw (unpaired).

    Unpaired: a random permutation of the sources, repeated as often as needed
    to cover `len(ds.x)` targets (so every source is used about equally).
    """
    if ds.x_source is None:
        return None
    if ds.paired:
        return ds.x_source
    n, m = len(ds.x), len(ds.x_source)
    reps = -(-n // m)
    idx = np.concatenate([rng.permutation(m) for _ in range(reps)])[:n]
    return ds.x_source[idx]


TRANSLATION_DATASETS = {
    "digits_inpaint": (
        load_digits_inpaint, "paired translation: digits with the lower half erased -> whole digits (bundled)"
    ),
    "digits_bold": (
        load_digits_bold, "unpaired translation: digits as drawn <-> bold digits, disjoint halves (bundled)"
    ),
}
