"""A dot bouncing on a line, as videos: the synthetic data of the structured VAE (Johnson et al. 2016).

**bouncing_dot**: each example is a binary video of `FRAMES` frames of a `WIDTH`-pixel line, stored
as an image (T, W, 1): one frame a row, time running down. A dot (one lit pixel) starts at a uniform
position in [0, W - 1] with a speed drawn uniformly from [0.5, 1.2] pixels a frame in a random
direction, and bounces off both ends (its path folds back into [0, W - 1]); frame t lights the pixel
nearest the dot's position at t. The videos of a split come from a generator seeded with
`(data.split_seed, split)`: the same seed gives the same videos.

    >>> from kgen.data import bouncing
    >>> data = bouncing.load_bouncing_dot("test")
    >>> data.x.shape, data.num_levels, float(data.x.sum(axis=(1, 2, 3)).max())
    ((200, 20, 12, 1), 2, 20.0)
"""

import numpy as np

from kgen.data import loaders
from kgen.data.dataset import Dataset

FRAMES = 20
WIDTH = 12
SIZES = {"train": 2000, "valid": 200, "test": 200}
SPEEDS = (0.5, 1.2)  # pixels a frame


def bouncing_positions(start, velocity, frames, width):
    """Positions (n, frames) of dots from `start` moving at `velocity`, reflected into [0, width - 1]."""
    span = float(width - 1)
    raw = np.asarray(start, "float64")[:, None] + np.asarray(velocity, "float64")[:, None] * np.arange(frames)
    folded = np.mod(raw, 2.0 * span)
    return np.where(folded > span, 2.0 * span - folded, folded)


def make_videos(n, frames=FRAMES, width=WIDTH, seed=0):
    """`n` binary videos (n, frames, width, 1) of one bouncing dot each; deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.0, width - 1.0, n)
    velocity = rng.uniform(*SPEEDS, n) * rng.choice([-1.0, 1.0], n)
    pixel = np.clip(np.rint(bouncing_positions(start, velocity, frames, width)).astype(int), 0, width - 1)
    x = np.zeros((n, frames, width, 1), "float32")
    x[np.arange(n)[:, None], np.arange(frames)[None, :], pixel, 0] = 1.0
    return x


def load_bouncing_dot(split="train", split_seed=0, num_examples=None, **_):
    """One split of bouncing_dot as a `Dataset` (binary images (T, W, 1), no labels)."""
    loaders._check_split(split)
    n = int(num_examples or SIZES[split])
    x = make_videos(n, seed=[int(split_seed), loaders.SPLITS.index(split), 4242])
    return Dataset("bouncing_dot", split, x, None, kind="image", num_levels=2)


DATASETS = {
    "bouncing_dot": (load_bouncing_dot,
                     f"videos of a dot bouncing on a {WIDTH}-pixel line, {FRAMES} binary frames as a "
                     f"({FRAMES}, {WIDTH}, 1) image, one frame a row (generated from data.split_seed; for svae)"),
}
