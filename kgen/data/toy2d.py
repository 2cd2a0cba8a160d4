"""Toy 2-D densities, generated on the fly from a seed.

The generators follow the ones popularised by FFJORD (Grathwohl et al. 2019)
and used throughout the normalizing-flow literature, so results can be read
against published figures. Every function is `f(n, rng) -> (n, 2) float32`.
"""

import numpy as np


def moons(n, rng):
    n1 = n // 2
    n2 = n - n1
    t1 = rng.uniform(0, np.pi, n1)
    t2 = rng.uniform(0, np.pi, n2)
    outer = np.stack([np.cos(t1), np.sin(t1)], 1)
    inner = np.stack([1 - np.cos(t2), 1 - np.sin(t2) - 0.5], 1)
    x = np.concatenate([outer, inner]) + rng.normal(0, 0.1, (n, 2))
    x = (x - [0.5, 0.25]) * 2.0
    return rng.permutation(x).astype("float32")


def circles(n, rng):
    n1 = n // 2
    t = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(np.arange(n) < n1, 3.0, 1.5)
    x = np.stack([np.cos(t), np.sin(t)], 1) * radius[:, None]
    x = x + rng.normal(0, 0.08, (n, 2))
    return rng.permutation(x).astype("float32")


def eight_gaussians_centers():
    s = 1.0 / np.sqrt(2)
    c = np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    return c * 4.0 / 1.414


EIGHT_GAUSSIANS_STD = 0.5 / 1.414


def eight_gaussians(n, rng):
    centers = eight_gaussians_centers()
    idx = rng.integers(0, 8, n)
    x = centers[idx] + rng.normal(0, EIGHT_GAUSSIANS_STD, (n, 2))
    return x.astype("float32")


def checkerboard(n, rng):
    """Uniform on 8 of the 16 2x2 squares of [-4, 4]^2 (entropy log 32)."""
    x1 = rng.uniform(0, 1, n) * 4 - 2
    x2 = rng.uniform(0, 1, n) - rng.integers(0, 2, n) * 2
    x2 = x2 + (np.floor(x1) % 2)
    return (np.stack([x1, x2], 1) * 2).astype("float32")


def pinwheel(n, rng):
    radial_std, tangential_std, num_classes, rate = 0.3, 0.1, 5, 0.25
    rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
    features = rng.normal(size=(n, 2)) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    labels = rng.integers(0, num_classes, n)
    angles = rads[labels] + rate * np.exp(features[:, 0])
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)], 1)
    rotations = rotations.reshape(-1, 2, 2)
    x = 2 * np.einsum("ti,tij->tj", features, rotations)
    return x.astype("float32")


def two_spirals(n, rng):
    m = np.sqrt(rng.uniform(0, 1, (n // 2, 1))) * 540 * (2 * np.pi) / 360
    d1x = -np.cos(m) * m + rng.uniform(0, 1, (n // 2, 1)) * 0.5
    d1y = np.sin(m) * m + rng.uniform(0, 1, (n // 2, 1)) * 0.5
    x = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y)))) / 3
    x = x + rng.normal(size=x.shape) * 0.1
    if len(x) < n:
        x = np.vstack([x, x[: n - len(x)]])
    return rng.permutation(x).astype("float32")


def rings(n, rng):
    per = [n // 4] * 3
    per.append(n - sum(per))
    parts = []
    for radius, count in zip((4.0, 3.0, 2.0, 1.0), per):
        t = rng.uniform(0, 2 * np.pi, count)
        parts.append(np.stack([np.cos(t), np.sin(t)], 1) * radius)
    x = np.concatenate(parts) * 0.9 + rng.normal(0, 0.08, (n, 2))
    return rng.permutation(x).astype("float32")


def grid25_centers():
    g = np.arange(-2, 3, dtype="float64") * 2.0
    return np.array([(a, b) for a in g for b in g])


GRID25_STD = 0.05


def grid25(n, rng):
    """The 25-Gaussian grid of the mode-collapse literature (std 0.05)."""
    centers = grid25_centers()
    idx = rng.integers(0, 25, n)
    return (centers[idx] + rng.normal(0, GRID25_STD, (n, 2))).astype("float32")


GENERATORS = {
    "moons": moons,
    "circles": circles,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
    "2spirals": two_spirals,
    "rings": rings,
    "25gaussians": grid25,
}
