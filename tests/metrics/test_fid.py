"""FID and KID against hand-computed values and closed forms (NumPy only)."""

import numpy as np
import pytest

from kgen.errors import DataError
from kgen.metrics import fid as F


def random_cov(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# === Matrix square root ===


def test_sqrtm_psd_squares_back_and_handles_singular():
    rng = np.random.default_rng(0)
    m = random_cov(rng, 5)
    root = F.sqrtm_psd(m)
    np.testing.assert_allclose(root @ root, m, atol=1e-10)
    np.testing.assert_allclose(root, root.T, atol=1e-12)
    v = rng.standard_normal((5, 2))
    singular = v @ v.T  # rank 2: eigenvalues of -1e-16 must not become NaN
    root = F.sqrtm_psd(singular)
    assert np.all(np.isfinite(root))
    np.testing.assert_allclose(root @ root, singular, atol=1e-8)


# === FID ===


def test_fid_of_identical_sets_is_zero():
    x = np.random.default_rng(1).standard_normal((200, 6))
    assert F.fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_one_dimension_closed_form():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2.
    got = F.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert got == pytest.approx(9.0 + 1.0, abs=1e-12)


def test_fid_diagonal_closed_form():
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    va, vb = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    want = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2)  # 5 + 4 + 1 + 0
    assert F.frechet_distance(mu_a, np.diag(va), mu_b, np.diag(vb)) == pytest.approx(want, abs=1e-10)
    assert want == pytest.approx(10.0)


def test_fid_general_covariances_match_an_independent_formula():
    # tr((S_a S_b)^1/2) = sum of sqrt of the (real, positive) eigenvalues of S_a S_b.
    rng = np.random.default_rng(2)
    sa, sb = random_cov(rng, 4), random_cov(rng, 4)
    mu_a, mu_b = rng.standard_normal(4), rng.standard_normal(4)
    eig = np.linalg.eigvals(sa @ sb)
    assert np.all(np.abs(eig.imag) < 1e-10) and np.all(eig.real > 0)
    want = np.sum((mu_a - mu_b) ** 2) + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(eig.real).sum()
    got = F.frechet_distance(mu_a, sa, mu_b, sb)
    assert got == pytest.approx(want, rel=1e-10)
    assert F.frechet_distance(mu_b, sb, mu_a, sa) == pytest.approx(got, rel=1e-10)  # symmetric


def test_fid_of_samples_approaches_the_gaussians_closed_form():
    rng = np.random.default_rng(3)
    sa, sb = random_cov(rng, 3), random_cov(rng, 3)
    mu_a, mu_b = np.zeros(3), np.array([1.0, 0.0, -1.0])
    want = F.frechet_distance(mu_a, sa, mu_b, sb)
    a = rng.multivariate_normal(mu_a, sa, size=50_000)
    b = rng.multivariate_normal(mu_b, sb, size=50_000)
    assert F.fid(a, b) == pytest.approx(want, rel=0.02)


def test_fid_is_translation_invariant_and_sees_a_shift():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((300, 4)), rng.standard_normal((300, 4)) + 0.5
    assert F.fid(a + 7.0, b + 7.0) == pytest.approx(F.fid(a, b), rel=1e-8)
    assert F.fid(a, a + 2.0) == pytest.approx(4 * 4.0, rel=1e-8)  # pure mean shift: ||2 * 1||^2


def test_gaussian_stats_are_float64_and_unbiased():
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]], "float32")
    mu, sigma = F.gaussian_stats(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, [2.0, 4.0])
    np.testing.assert_allclose(sigma, np.cov(x.astype("float64"), rowvar=False))
    assert sigma[0, 0] == pytest.approx(4.0)  # ddof = 1: ((-2)^2 + 0 + 2^2) / 2


# === KID ===


def test_mmd2_unbiased_hand_computed():
    # d = 1: k(x, y) = (x y + 1)^3. xx off-diagonal: k(0,1) = 1; yy: k(2,3) = 343;
    # xy: k(0,2) = k(0,3) = 1, k(1,2) = 27, k(1,3) = 64 -> mean 23.25.
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    assert F.mmd2_unbiased(x, y) == pytest.approx(1.0 + 343.0 - 2 * 23.25)
    assert F.polynomial_kernel(x, y)[1, 1] == pytest.approx(64.0)


def test_mmd2_unbiased_sign_behaviour():
    rng = np.random.default_rng(5)
    same = [F.mmd2_unbiased(rng.standard_normal((50, 3)), rng.standard_normal((50, 3))) for _ in range(200)]
    # Unbiased: centred on 0 for one distribution, so negative about half the time
    # (a biased V-statistic would always be positive).
    assert 0.2 < np.mean(np.array(same) < 0) < 0.8
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
    different = [F.mmd2_unbiased(rng.standard_normal((50, 3)), rng.standard_normal((50, 3)) + 1.0)
                 for _ in range(20)]
    assert min(different) > 0


def test_kid_mean_std_and_subset_capping():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((120, 4)), rng.standard_normal((80, 4)) + 0.7
    mean, std = F.kid(a, b, num_subsets=30, subset_size=1000, seed=0)
    assert mean > 0 and std >= 0
    assert F.kid(a, b, num_subsets=30, subset_size=1000, seed=0) == (mean, std)  # seeded
    # subset_size capped at 80: every subset of b is all of b.
    one_mean, one_std = F.kid(a, b, num_subsets=1, subset_size=40, seed=1)
    assert one_std == 0.0 and np.isfinite(one_mean)
    # Sets no larger than the subset: every subset is a permutation of the whole set.
    got, spread = F.kid(a[:80], b, num_subsets=5, subset_size=10_000, seed=0)
    assert got == pytest.approx(F.mmd2_unbiased(a[:80], b), rel=1e-10) and spread < 1e-10


def test_bad_features_are_refused():
    x = np.ones((10, 3))
    with pytest.raises(DataError, match="NaN"):
        F.fid(x, np.full((10, 3), np.nan))
    with pytest.raises(DataError, match=r"\(N, D\)"):
        F.fid(np.ones(10), x)
    with pytest.raises(DataError, match="dimension"):
        F.kid(x, np.ones((10, 4)))
    with pytest.raises(DataError, match="at least 2"):
        F.fid(x[:1], x)
