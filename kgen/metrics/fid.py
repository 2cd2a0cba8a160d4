"""Sample-quality metrics on feature vectors: FID and KID.

Both compare two sets of features (e.g. a feature network's penultimate
layer on real and on generated images). They are *distances between feature
distributions*: their values depend on the feature network, so numbers from
different networks (kgen's small per-data-set classifiers vs Inception-v3)
are not comparable.

FID (Heusel et al. 2017) fits a Gaussian to each set and reports the
squared Frechet (2-Wasserstein) distance between the two fits::

    FID = ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2)

The formula is exact for the two Gaussians; as an estimate of the distance
between the feature distributions it is biased upwards for finite sets (the
bias shrinks with the number of examples), so compare FIDs computed from the
same number of examples. The matrix square roots are taken in float64 by
eigen-decomposition of symmetric positive semi-definite matrices
(`S_a^1/2 S_b S_a^1/2` is symmetric, unlike the `S_a S_b` of the usual
`scipy.linalg.sqrtm` code), so no complex parts or SciPy are needed.

KID (Binkowski et al. 2018) is the squared maximum mean discrepancy with the
cubic polynomial kernel `k(x, y) = (x.y / d + 1)^3`, estimated without bias
(the diagonal terms are left out, so it can be negative when the two sets
come from one distribution) and averaged over random subsets; its standard
deviation over the subsets says how far to trust a difference.

#### References

Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium". Binkowski et al. 2018, "Demystifying MMD GANs".
"""

import numpy as np

from kgen.errors import DataError


def _features(x, what):
    x = np.asarray(x, "float64")
    if x.ndim != 2:
        raise DataError(f"{what}: expected features of shape (N, D), got {x.shape}.")
    if len(x) < 2:
        raise DataError(f"{what}: need at least 2 feature vectors, got {len(x)}.")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{what}: features hold NaN or Inf (did the generator diverge?).")
    return x


def gaussian_stats(features):
    """Mean and (unbiased, ddof=1) covariance of `(N, D)` features, in float64."""
    x = _features(features, "gaussian_stats")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def sqrtm_psd(matrix):
    """The symmetric square root of a symmetric positive semi-definite matrix (float64).

    Eigenvalues below zero (rounding) are clipped to zero.
    """
    m = np.asarray(matrix, "float64")
    m = (m + m.T) / 2.0
    values, vectors = np.linalg.eigh(m)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu_a, sigma_a, mu_b, sigma_b):
    """Squared Frechet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b) (exact).

    Uses tr((S_a S_b)^1/2) = tr((S_a^1/2 S_b S_a^1/2)^1/2), whose argument is
    symmetric positive semi-definite, so both roots are eigen-decompositions.
    """
    mu_a, mu_b = np.asarray(mu_a, "float64"), np.asarray(mu_b, "float64")
    sigma_a, sigma_b = np.asarray(sigma_a, "float64"), np.asarray(sigma_b, "float64")
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise DataError(f"frechet_distance: the two Gaussians differ in dimension ({mu_a.shape} vs {mu_b.shape}).")
    root_a = sqrtm_psd(sigma_a)
    middle = root_a @ sigma_b @ root_a
    values = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    trace_root = float(np.sqrt(np.clip(values, 0.0, None)).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_root)
    return max(value, 0.0)  # rounding can leave -1e-12 for identical inputs


def fid(features_a, features_b):
    """FID between two sets of features `(N, D)` and `(M, D)` (see the module docstring)."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def polynomial_kernel(x, y, degree=3, gamma=None, coef0=1.0):
    """`(gamma x.y + coef0)^degree` for all pairs; gamma defaults to 1 / D (Binkowski et al.)."""
    x, y = np.asarray(x, "float64"), np.asarray(y, "float64")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x, y, **kernel_args):
    """Unbiased estimate of MMD^2 between samples x `(m, D)` and y `(n, D)`.

    (1 / m(m-1)) sum_{i != j} k(x_i, x_j) + (1 / n(n-1)) sum_{i != j} k(y_i, y_j)
    - (2 / mn) sum_{i, j} k(x_i, y_j). Its expectation is the population
    MMD^2, so it is negative about half the time for two samples of one
    distribution.
    """
    x, y = _features(x, "mmd2_unbiased"), _features(y, "mmd2_unbiased")
    m, n = len(x), len(y)
    k_xx = polynomial_kernel(x, x, **kernel_args)
    k_yy = polynomial_kernel(y, y, **kernel_args)
    k_xy = polynomial_kernel(x, y, **kernel_args)
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def kid(features_a, features_b, num_subsets=100, subset_size=1000, seed=0):
    """KID: the unbiased cubic-kernel MMD^2, mean and std over random subsets.

    Each subset draws `subset_size` rows (without replacement) from each set;
    `subset_size` is capped at the smaller set's size.

    Returns:
        `(mean, std)` over the `num_subsets` estimates (std with ddof=1; 0.0
        for one subset).
    """
    a = _features(features_a, "kid")
    b = _features(features_b, "kid")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"kid: the two feature sets differ in dimension ({a.shape[1]} vs {b.shape[1]}).")
    size = min(int(subset_size), len(a), len(b))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(max(int(num_subsets), 1)):
        ia = rng.choice(len(a), size, replace=False)
        ib = rng.choice(len(b), size, replace=False)
        values.append(mmd2_unbiased(a[ia], b[ib]))
    values = np.asarray(values)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
