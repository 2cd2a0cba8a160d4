"""The Concrete / Gumbel-softmax VAE: the relaxation, its estimators, the schedule, the discrete bounds."""

import itertools
import math

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen.errors import UsageError
from kgen.models.latent.concrete_vae import (categorical_kl_to_uniform, concrete_log_density,
                                             gumbel_softmax)


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), "float64")


def _softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_relaxed_samples_tend_to_softmax_frequencies_as_tau_falls():
    """Mean of y = softmax((a + g) / tau) -> softmax(a) as tau -> 0 (y becomes the Gumbel-max one-hot)."""
    logits = np.array([1.0, -0.5, 0.3, -2.0], "float32")
    u = np.random.default_rng(0).uniform(size=(40000, 4)).astype("float32")
    target = _softmax(logits.astype("float64"))
    cold, _ = gumbel_softmax(np.broadcast_to(logits, u.shape), u, 0.005)
    cold = _np(cold)
    assert np.mean(cold.max(-1) > 0.99) > 0.97  # nearly one-hot
    np.testing.assert_allclose(np.bincount(cold.argmax(-1), minlength=4) / len(u), target, atol=0.01)
    np.testing.assert_allclose(cold.mean(0), target, atol=0.01)
    hot, _ = gumbel_softmax(np.broadcast_to(logits, u.shape), u, 5.0)
    assert np.abs(_np(hot).mean(0) - target).max() > 0.1  # the limit is tau -> 0, not any tau


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.5])
def test_concrete_density_integrates_to_one_on_the_simplex(tau):
    """K = 2: integrate p(y1, 1 - y1) dy1 over (0, 1), in the logit s of y1 (dy1 = y1 (1 - y1) ds)."""
    s = np.linspace(-150.0, 150.0, 60001)
    log_y = np.stack([-np.logaddexp(0, -s), -np.logaddexp(0, s)], -1).astype("float32")
    logits = np.broadcast_to(np.array([0.7, -0.3], "float32"), log_y.shape)
    log_p = _np(concrete_log_density(log_y, logits, tau))
    integrand = np.exp(log_p + log_y[:, 0] + log_y[:, 1])
    assert abs(np.trapezoid(integrand, s) - 1.0) < 2e-3
    # and the relaxed samples follow it: P(y1 > 1/2) = softmax(a)_1 for every tau
    mass = np.trapezoid(np.where(s > 0, integrand, 0.0), s)
    assert abs(mass - _softmax(np.array([0.7, -0.3]))[0]) < 2e-3


def test_straight_through_gradient_is_the_relaxed_gradient():
    """z_ST = y + stop_gradient(one_hot - y): one-hot forward, the gradient of y backward."""
    from kgen.backend.adversarial import value_and_grad

    rng = np.random.default_rng(1)
    logits = keras.Variable(rng.normal(size=(6, 3, 5)).astype("float32"))
    u = rng.uniform(size=(6, 3, 5)).astype("float32")
    w = rng.normal(size=(6, 3, 5)).astype("float32")
    grads, forward = {}, {}
    for st in (False, True):
        def loss_fn(st=st):
            z, _ = gumbel_softmax(logits, u, 0.7, straight_through=st)
            return keras.ops.sum(keras.ops.multiply(w, z)), z

        (_, forward[st]), (grad,) = value_and_grad(loss_fn, [logits], has_aux=True)
        grads[st] = _np(grad)
    assert np.abs(grads[False]).max() > 1e-2
    np.testing.assert_allclose(grads[True], grads[False], rtol=1e-5, atol=1e-6)
    hard = _np(forward[True])
    np.testing.assert_allclose(hard, np.eye(5)[hard.argmax(-1)], atol=1e-6)  # one-hot forward
    assert np.array_equal(hard.argmax(-1), _np(forward[False]).argmax(-1))
    assert not np.allclose(hard, _np(forward[False]))


def test_discrete_kl_matches_monte_carlo():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=1.5, size=(3, 5)).astype("float32")
    analytic = _np(categorical_kl_to_uniform(logits))
    log_q = np.log(_softmax(logits.astype("float64")))
    n = 200000
    z = (logits + rng.gumbel(size=(n, 3, 5))).argmax(-1)  # Gumbel-max draws from q
    mc = (np.take_along_axis(log_q[None], z[..., None], -1)[..., 0] + math.log(5)).mean(0)
    np.testing.assert_allclose(analytic, mc, atol=0.02)
    assert np.all(analytic > 0.05)


def test_temperature_schedule_and_resume(tmp_path, digits):
    model = kgen.build_model("concrete_vae", input_shape=digits.shape, num_levels=17, latent_vars=3,
                             latent_classes=4, hidden_units=(16,), anneal_rate=0.02, anneal_every=3, tau_min=0.8)
    for t in (0, 2, 3, 7, 100):
        want = max(0.8, math.exp(-0.02 * (t // 3 * 3)))
        np.testing.assert_allclose(_np(model.temperature_at(t)), want, rtol=1e-6)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(digits.x, batch_size=64, epochs=2, verbose=0).history  # 4 steps an epoch
    assert int(_np(model.anneal_step)) == 8
    np.testing.assert_allclose(model.current_temperature(), math.exp(-0.02 * 6), rtol=1e-6)
    assert history["temperature"][0] > history["temperature"][1]
    path = tmp_path / "cvae.keras"
    checkpoint.save_checkpoint(model, path)
    loaded = kgen.load_model(path)
    assert int(_np(loaded.anneal_step)) == 8 and loaded.anneal_rate == 0.02 and loaded.tau_min == 0.8
    np.testing.assert_array_equal(checkpoint.seed_states(loaded), checkpoint.seed_states(model))
    loaded.fit(digits.x, batch_size=64, epochs=8, verbose=0)  # the schedule continues to its floor
    assert int(_np(loaded.anneal_step)) == 40 and loaded.current_temperature() == pytest.approx(0.8)


@pytest.mark.parametrize("options", [dict(), dict(latent="bernoulli", latent_vars=12, kl="relaxed",
                                                  straight_through=True, prior_temperature=0.5)])
def test_loss_falls_on_digits(options):
    data = kgen.load_dataset("digits")
    hparams = dict(latent_vars=6, latent_classes=6, hidden_units=(64,), anneal_rate=1e-3, anneal_every=10)
    model = kgen.build_model("concrete_vae", input_shape=data.shape, num_levels=17, **{**hparams, **options})
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(data.x, batch_size=64, epochs=4, verbose=0).history
    assert set(history) >= {"loss", "recon", "kl", "temperature"}
    assert history["loss"][-1] < history["loss"][0] - 20.0
    elbo = model.log_prob(data.x[:200], seed=0)  # the discrete model scores the data too
    assert np.all(np.isfinite(elbo)) and -elbo.mean() < history["loss"][0]


def _all_images():
    return np.array(list(itertools.product((0.0, 1.0), repeat=4)), "float32").reshape(16, 2, 2, 1)


def test_iw_bound_with_discrete_samples_against_exact_enumeration():
    """2 variables of 3 classes: log p(x) = logsumexp_z log p(x|z) - 2 log 3 exactly, over 9 one-hot z."""
    images = _all_images()
    model = kgen.build_model("concrete_vae", input_shape=(2, 2, 1), num_levels=2, latent_vars=2,
                             latent_classes=3, hidden_units=(8,))
    rng = np.random.default_rng(3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(images[rng.choice(16, 400, p=np.r_[0.4, np.full(15, 0.6 / 15)])], batch_size=50, epochs=5, verbose=0)
    zs = np.array([np.eye(3)[[a, b]] for a in range(3) for b in range(3)], "float32")  # (9, 2, 3)
    params = model.decode_params(model._decoder_input(np.repeat(zs, 16, 0)))
    ll = _np(model.log_likelihood(np.tile(images, (9, 1, 1, 1)), params)).reshape(9, 16)
    exact = np.logaddexp.reduce(ll, axis=0) - 2 * math.log(3)
    assert abs(np.exp(exact).sum() - 1.0) < 1e-4  # the discrete model is normalized
    elbo = np.mean([model.log_prob(images, seed=s) for s in range(200)], axis=0)
    iw = model.iw_log_prob(images, k=2000, seed=0)
    assert np.all(elbo <= exact + 0.05)
    np.testing.assert_allclose(iw, exact, atol=0.02)  # 9 latent states: the IW bound is nearly tight
    iw1 = np.mean([model.iw_log_prob(images, k=1, seed=s) for s in range(200)], axis=0)
    np.testing.assert_allclose(iw1, elbo, atol=0.1)  # k = 1 is the ELBO in expectation (log q, log p(z) right)


def test_iw_bound_is_at_least_the_elbo_on_average(digits):
    model = kgen.build_model("concrete_vae", input_shape=digits.shape, num_levels=17, latent_vars=4,
                             latent_classes=4, hidden_units=(32,))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(digits.x, batch_size=64, epochs=2, verbose=0)
    terms = model.score(digits.x[:64], seed=1, iw_samples=50)
    np.testing.assert_allclose(terms["elbo"], -(terms["recon"] + terms["kl"]), rtol=1e-5)
    assert np.all(terms["kl"] >= 0) and np.all(terms["kl"] <= 4 * math.log(4) + 1e-4)
    assert terms["iw_bound"].mean() > terms["elbo"].mean()
    np.testing.assert_allclose(model.log_prob(digits.x[:64], seed=1), terms["elbo"], rtol=1e-6)


def test_sampling_is_gumbel_max_on_the_uniform_prior_and_deterministic(digits):
    model = kgen.build_model("concrete_vae", input_shape=digits.shape, num_levels=17, latent_vars=3,
                             latent_classes=4, hidden_units=(16,))
    uz, ux = model.draw_noise(5, seed=0)
    a = _np(model.sample_from_noise(uz, ux))
    np.testing.assert_array_equal(a, _np(model.sample_from_noise(uz, ux)))
    assert a.shape == (5, 8, 8, 1) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_allclose(a * 16, np.round(a * 16), atol=1e-5)
    np.testing.assert_array_equal(model.sample(6, seed=2), model.sample(6, seed=2))
    # the latent is one_hot(argmax u): the decoder's mean image at that code
    z = np.eye(4, dtype="float32")[uz.argmax(-1)]
    mean = _np(model.decode(z))
    cold = _np(model.sample_from_noise(uz, np.full_like(ux, 0.5)))
    assert np.abs(cold - mean).max() < 0.5  # the median level of each pixel lies near its mean
    bern = kgen.build_model("concrete_vae", input_shape=digits.shape, num_levels=17, latent="bernoulli",
                            latent_vars=5, hidden_units=(16,))
    assert bern.noise_spec(2)[0] == ("uniform", (2, 5, 2)) and bern.sample(3, seed=0).shape == (3, 8, 8, 1)


def test_round_trip_and_bad_options(tmp_path, digits):
    model = kgen.build_model("concrete_vae", input_shape=digits.shape, num_levels=17, latent="bernoulli",
                             latent_vars=6, hidden_units=(16,), kl="relaxed", prior_temperature=0.5,
                             straight_through=True)
    model.compile(optimizer="adam")
    model.fit(digits.x, epochs=1, verbose=0)
    path = tmp_path / "cvae.keras"
    checkpoint.save_checkpoint(model, path)
    loaded = kgen.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.log_prob(digits.x[:16], seed=0), model.log_prob(digits.x[:16], seed=0),
                               rtol=1e-5)
    for bad, match in [(dict(latent="gaussian"), "unknown latent"), (dict(kl="mc"), "unknown kl"),
                       (dict(temperature=0.0), "temperature must be"), (dict(num_classes=10), "conditional"),
                       (dict(latent_classes=1), "latent_classes >= 2")]:
        with pytest.raises(UsageError, match=match):
            kgen.build_model("concrete_vae", input_shape=digits.shape, num_levels=17, **bad)


def test_binarized_mnist_recipe_is_jang_et_al_table_1():
    """784-512-256-(20x10)-256-512-784, tau = max(0.5, exp(-r t)) with tau_0 = 1, analytic KL."""
    from kgen import config as config_lib

    config = config_lib.resolve(config_file=config_lib.recipe_path("concrete_vae", "binarized_mnist"))
    hparams = config_lib.model_hparams(config)
    hparams.pop("conditional", None)
    model = kgen.build_model("concrete_vae", input_shape=(28, 28, 1), num_levels=2, **hparams)
    assert (model.latent, model.latent_vars, model.latent_classes) == ("categorical", 20, 10)
    assert model.hidden_units == (512, 256) and model.likelihood == "bernoulli" and model.kl == "discrete"
    assert (model.temperature, model.tau_min) == (1.0, 0.5) and config["evaluate"]["iw_samples"] == 5000
    assert [w.shape for w in model.trainable_weights[::2]] == [(784, 512), (512, 256), (256, 200), (200, 256),
                                                               (256, 512), (512, 784)]
