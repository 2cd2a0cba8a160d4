"""Preprocessing with the bookkeeping likelihoods need.

Images in kgen are float32 NHWC arrays in [0, 1] together with `num_levels`,
the number of discrete values a pixel takes (2 binary, 17 for `digits`, 256
for 8-bit). Continuous-density models (flows) see dequantized, optionally
logit-transformed data; the log-det of every transform is returned so that
bits/dim stay honest (Dinh et al. 2017, section 4.1; Theis et al. 2016).
"""

import math

import numpy as np


def binarize(x, rng):
    """Samples each pixel as Bernoulli(x): static once, dynamic per epoch."""
    return (rng.uniform(size=x.shape) < x).astype("float32")


def to_levels(x, num_levels):
    """[0, 1] floats to integer levels 0..num_levels-1."""
    return np.rint(np.asarray(x) * (num_levels - 1)).astype("int32")


def dequantize(x, num_levels, rng):
    """Uniform dequantization: level i becomes (i + u) / L, u ~ U[0, 1).

    A continuous density p on [0, 1]^D then bounds the discrete model:
    log P(i) >= E_u[log p((i + u) / L)] - D log L.
    """
    levels = to_levels(x, num_levels).astype("float32")
    return ((levels + rng.uniform(size=x.shape)) / num_levels).astype("float32")


def logit_transform(x, alpha):
    """y = logit(alpha + (1 - 2 alpha) x), with the per-example log|dy/dx|."""
    s = alpha + (1.0 - 2.0 * alpha) * np.asarray(x, "float64")
    y = np.log(s) - np.log1p(-s)
    logdet = np.log(1.0 - 2.0 * alpha) - np.log(s) - np.log1p(-s)
    logdet = logdet.reshape(len(x), -1).sum(1)
    return y.astype("float32"), logdet.astype("float32")


def scale(x, mode):
    """"unit": [0, 1] as stored; "symmetric": [-1, 1] (tanh generators)."""
    if mode == "unit":
        return x
    if mode == "symmetric":
        return x * 2.0 - 1.0
    raise ValueError(f'unknown scale "{mode}"; use "unit" or "symmetric"')


def bits_per_dim(nll_nats, num_dims):
    """Nats per example to bits per dimension."""
    return np.asarray(nll_nats) / (num_dims * math.log(2.0))


def discrete_nll(continuous_nll, num_dims, num_levels, logdet=0.0):
    """NLL (nats) of the discrete data from a density on transformed data.

    `continuous_nll` is -log p(y) of the model on y = f(x) with
    x = (i + u) / L; `logdet` is log|det dy/dx| per example.
    """
    return np.asarray(continuous_nll) - np.asarray(logdet) + num_dims * math.log(num_levels)
