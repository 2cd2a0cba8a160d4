"""Adversarial variational Bayes: the KL estimate with the optimal adversary, training on every backend."""

import math

import keras
import numpy as np
import pytest

import kgen
from kgen.errors import UsageError


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), "float64")


def _gaussian_avb(adaptive_contrast, ac_samples=10):
    """A linear encoder z = x W_x + eps W_e + b: q(z|x) = N(x W_x + b, W_e^T W_e), correlated."""
    model = kgen.build_model("avb", input_shape=(3,), latent_dim=2, noise_dim=2, hidden_units=(),
                             adversary_units=(8,), adaptive_contrast=adaptive_contrast, ac_samples=ac_samples)
    kernel = np.array([[0.5, -0.3], [0.2, 0.4], [-0.6, 0.1],  # W_x
                       [0.9, 0.6], [0.0, 0.5]], "float32")  # W_e: Sigma = [[0.81, 0.54], [0.54, 0.61]]
    model.encoder_out.set_weights([kernel, np.array([0.3, -0.2], "float32")])
    w_x, w_e, b = kernel[:3].astype("float64"), kernel[3:].astype("float64"), np.array([0.3, -0.2])
    return model, w_x, b, w_e.T @ w_e


def _log_normal(z, mean, cov):
    """log N(z; mean, cov) with keras ops (the closed-form adversaries run inside the model's graph)."""
    inv = keras.ops.convert_to_tensor(np.linalg.inv(cov).astype("float32"))
    d = z - mean
    quad = keras.ops.sum(keras.ops.matmul(d, inv) * d, axis=-1)
    return -0.5 * (quad + float(np.log(np.linalg.det(cov))) + cov.shape[0] * math.log(2 * math.pi))


def _analytic_kl(mu, cov):
    """KL(N(mu, cov) || N(0, I)) per row of mu."""
    return 0.5 * (np.trace(cov) + (mu ** 2).sum(-1) - len(cov) - np.log(np.linalg.det(cov)))


X = np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0], [-1.5, 0.3, 0.7]], "float32")
REPEATS = 3000


def test_kl_estimate_with_the_optimal_adversary_matches_the_analytic_kl():
    """T*(x, z) = log q(z|x) - log p(z) (Mescheder et al., Prop. 1): E_q[T*] is KL(q(z|x) || p(z))."""
    model, w_x, b, cov = _gaussian_avb(adaptive_contrast=False)
    mu = X.astype("float64") @ w_x + b
    analytic = _analytic_kl(mu, cov)
    w_x_t, b_t = keras.ops.convert_to_tensor(w_x.astype("float32")), keras.ops.convert_to_tensor(b.astype("float32"))

    def optimal(x, z):
        mean = keras.ops.matmul(x, w_x_t) + b_t
        return _log_normal(z, mean, cov) - _log_normal(z, keras.ops.zeros_like(z), np.eye(2))

    x = np.repeat(X, REPEATS, axis=0)
    eps = np.random.default_rng(0).standard_normal((1, len(x), 2)).astype("float32")
    kl, z, _ = model.kl_estimate(x, eps, adversary=optimal)
    estimate = _np(kl).reshape(len(X), REPEATS).mean(1)
    np.testing.assert_allclose(estimate, analytic, atol=0.06)
    assert analytic.min() > 0.5 and np.ptp(analytic) > 0.3
    # the draws are q's: their covariance is W_e^T W_e
    np.testing.assert_allclose(np.cov(_np(z)[:REPEATS].T), cov, atol=0.06)


def test_adaptive_contrast_recovers_the_kl_through_the_auxiliary_gaussian():
    """With adaptive contrast T sees z~ = (z - mu) / sigma, whose optimal T* is log q~(z~) - log N(z~; 0, I);
    T* + log r(z|x) - log p(z) averages to KL(q || p), and without T's part it would not (q is correlated)."""
    model, w_x, b, cov = _gaussian_avb(adaptive_contrast=True, ac_samples=400)
    mu = X.astype("float64") @ w_x + b
    analytic = _analytic_kl(mu, cov)
    sd = np.sqrt(np.diag(cov))
    cov_t = cov / np.outer(sd, sd)  # the normalised posterior: N(0, correlation matrix)

    def optimal(x, zt):
        return _log_normal(zt, keras.ops.zeros_like(zt), cov_t) - _log_normal(zt, keras.ops.zeros_like(zt), np.eye(2))

    def no_adversary(x, zt):
        return keras.ops.zeros_like(zt[:, 0])

    repeats = 600
    x = np.repeat(X, repeats, axis=0)
    eps = np.random.default_rng(1).standard_normal((400, len(x), 2)).astype("float32")
    estimate = _np(model.kl_estimate(x, eps, adversary=optimal)[0]).reshape(len(X), repeats).mean(1)
    np.testing.assert_allclose(estimate, analytic, atol=0.1)
    without = _np(model.kl_estimate(x, eps, adversary=no_adversary)[0]).reshape(len(X), repeats).mean(1)
    assert np.all(analytic - without > 0.2)  # KL(q || r) > 0: the adversary's term carries it


@pytest.mark.parametrize("adaptive_contrast", [False, True])
def test_trains_both_players_and_the_loss_falls(adaptive_contrast):
    data = kgen.load_dataset("digits")
    model = kgen.build_model("avb", input_shape=data.shape, num_levels=17, latent_dim=4, hidden_units=(64,),
                             adversary_units=(32,), adaptive_contrast=adaptive_contrast, ac_samples=4)
    model.compile(discriminator_optimizer=keras.optimizers.Adam(1e-3), generator_optimizer=keras.optimizers.Adam(1e-3))
    adversary_before = [_np(w).copy() for w in model.discriminator.weights]
    x = data.x[:640]
    history = model.fit(x, batch_size=64, epochs=3, verbose=0).history
    assert history["g_loss"][-1] < history["g_loss"][0] - 5.0
    steps = 3 * math.ceil(len(x) / 64)
    opt = model.optimizer
    assert int(_np(opt.discriminator_optimizer.iterations)) == steps
    assert int(_np(opt.generator_optimizer.iterations)) == steps
    assert all(np.abs(_np(w) - b).max() > 1e-5 for w, b in zip(model.discriminator.weights, adversary_before))
    terms = model.elbo_estimate(data.x[:50], seed=0)
    np.testing.assert_allclose(terms["elbo"], -terms["recon"] - terms["kl"], rtol=1e-5)
    assert np.all(np.isfinite(terms["elbo"]))
    codes = model.latent_codes(data.x[:5])
    assert codes.shape == (5, 4) and model.decode_latents(codes).shape == (5,) + data.shape


def test_bad_arguments():
    with pytest.raises(UsageError, match="conditional"):
        kgen.build_model("avb", input_shape=(3,), num_classes=2)
    with pytest.raises(UsageError, match="ac_samples"):
        kgen.build_model("avb", input_shape=(3,), adaptive_contrast=True, ac_samples=1)
