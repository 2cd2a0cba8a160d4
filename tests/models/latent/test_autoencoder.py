"""Autoencoders: denoising, sparsity, codes, the fitted code Gaussian, the linear probe.

Save/load (the code Gaussian included: it is weights), sampling by seed and exports: the conformance test.
"""

import dataclasses

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen import config as config_lib
from kgen.errors import UsageError
from kgen.metrics.linear_probe import probe_accuracy


def _prototypes(n, seed=0):
    """`n` exact copies (picked with `seed`) of 8 fixed random binary 16-pixel prototypes: data a
    denoiser can restore."""
    protos = (np.random.default_rng(0).uniform(size=(8, 16)) < 0.5).astype("float32")
    return protos[np.random.default_rng([seed, 1]).integers(0, 8, n)]


def test_denoising_restores_corrupted_inputs_better_than_the_plain_autoencoder():
    x = _prototypes(400)
    test = _prototypes(200, seed=1)
    masked = kgen.build_model("autoencoder", input_shape=(16,), num_levels=2, corruption="masking",
                              corruption_level=0.3, code_dim=2, hidden_units=()).corrupt_numpy(test, seed=2)
    assert 0.2 < np.mean(masked[test == 1] == 0) < 0.4  # about 30% of the ones masked
    nll = {}
    for corruption in ("none", "masking"):
        keras.utils.set_random_seed(0)
        # Overcomplete (32 > 16): the plain autoencoder can learn the identity, corruption and all.
        model = kgen.build_model("autoencoder", input_shape=(16,), num_levels=2, code_dim=32, hidden_units=(),
                                 corruption=corruption, corruption_level=0.3)
        model.compile(optimizer=keras.optimizers.Adam(2e-2))
        model.fit(x, epochs=15, batch_size=50, verbose=0)
        nll[corruption] = float(np.mean(model.reconstruction_nll(test, inputs=masked)))
        assert np.mean(model.reconstruction_nll(test)) < 0.5  # both reconstruct clean inputs
    assert nll["masking"] < 0.75 * nll["none"], nll


def test_gaussian_corruption_adds_noise_only_in_training(digits):
    model = kgen.build_model("autoencoder", input_shape=digits.shape, num_levels=17, code_dim=4,
                             hidden_units=(8,), corruption="gaussian", corruption_level=0.5)
    x = digits.x[:32]
    noisy = keras.ops.convert_to_numpy(model.corrupt(x))
    assert 0.4 < np.std(noisy - x) < 0.6
    clean = keras.ops.convert_to_numpy(model(x, training=False)["recon"])
    np.testing.assert_allclose(clean, model.reconstruction_nll(x), rtol=1e-5)


@pytest.mark.parametrize("weight", [0.0, 30.0])
def test_sparsity_penalty_drives_the_mean_activation_to_rho(digits, weight):
    keras.utils.set_random_seed(0)
    model = kgen.build_model("autoencoder", input_shape=digits.shape, num_levels=17, code_dim=16,
                             hidden_units=(32,), code_activation="sigmoid", sparsity_weight=weight,
                             sparsity_target=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(digits.x, epochs=15, batch_size=32, verbose=0).history
    rho_hat = model.latent_codes(digits.x).mean(axis=0)  # each unit's mean activation
    if weight:
        assert history["sparsity"][-1] < history["sparsity"][0]
        assert abs(rho_hat.mean() - 0.1) < 0.02 and np.all(np.abs(rho_hat - 0.1) < 0.05), rho_hat
    else:
        assert "sparsity" not in history
        assert abs(rho_hat.mean() - 0.1) > 0.1, rho_hat  # without the penalty it is far from rho


def test_l1_penalty_shrinks_the_codes(digits):
    sizes = {}
    for weight in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        model = kgen.build_model("autoencoder", input_shape=digits.shape, num_levels=17, code_dim=8,
                                 hidden_units=(32,), l1_weight=weight)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        model.fit(digits.x, epochs=5, batch_size=32, verbose=0)
        sizes[weight] = np.abs(model.latent_codes(digits.x)).sum(axis=1).mean()
    assert sizes[1.0] < 0.5 * sizes[0.0], sizes


def test_encode_shapes_and_endpoints(digits):
    model = kgen.build_model("autoencoder", input_shape=digits.shape, num_levels=17, code_dim=5,
                             hidden_units=(8,))
    assert tuple(model.encode(digits.x[:3]).shape) == (3, 5)
    assert model.latent_codes(digits.x[:7]).shape == (7, 5)
    assert model.reconstruct(digits.x[:4]).shape == (4,) + digits.shape
    assert model.supports("latent_codes") and model.supports("traverse") and not model.has_likelihood
    endpoints = model.export_endpoints()
    assert set(endpoints) == {"encode", "decode", "sample"}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(endpoints["encode"][0](digits.x[:3])),
                               model.latent_codes(digits.x[:3]), atol=1e-5)


def test_training_fits_the_code_gaussian_that_sample_draws_from(digits):
    keras.utils.set_random_seed(0)
    model = kgen.build_model("autoencoder", input_shape=digits.shape, num_levels=17, code_dim=3,
                             hidden_units=(16,), code_momentum=0.9)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(digits.x, epochs=6, batch_size=32, verbose=0)
    codes = model.latent_codes(digits.x).astype("float64")
    mean, cov = model.code_gaussian()
    # The running fit follows the last batches' codes: near the codes of the whole set.
    np.testing.assert_allclose(mean, codes.mean(axis=0), atol=0.5 * codes.std(axis=0).max())
    np.testing.assert_allclose(np.diag(cov), codes.var(axis=0), rtol=0.3)
    model.fit_code_gaussian(digits.x)  # the exact fit
    mean, cov = model.code_gaussian()
    np.testing.assert_allclose(mean, codes.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(cov, np.cov(codes.T, bias=True), atol=2e-3 * np.trace(cov))
    draws = model.draw_latents(20000, seed=0)
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.05 * np.trace(cov))
    # sample() decodes those codes: with pixel uniforms of 0.5 it is the decoder's median image.
    z = model.draw_noise(4, seed=3)[0]
    direct = keras.ops.convert_to_numpy(model.sample_from_noise(z, np.full((4,) + digits.shape, 1.0, "float32")))
    assert direct.shape == (4,) + digits.shape and direct.max() <= 1.0


def test_probe_beats_chance_on_digits_and_reports_the_pixel_baseline(tmp_path):
    from kgen.evaluation import evaluate_checkpoint

    data = kgen.load_dataset("digits")
    keras.utils.set_random_seed(0)
    model = kgen.build_model("autoencoder", input_shape=data.shape, num_levels=17, code_dim=8,
                             hidden_units=(32,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(data.x, epochs=4, batch_size=64, verbose=0)
    path = tmp_path / "ae.keras"
    checkpoint.save_checkpoint(model, path, {})
    result = evaluate_checkpoint(path, progress=False, sample_metrics_flag=False)
    probe = result["linear_probe"]
    assert probe["fit_on"] == "train split" and probe["chance"] == 0.1 and probe["code_size"] == 8
    assert probe["accuracy"] > 0.6, probe  # 8 unsupervised features, far above chance
    assert probe["pixel_accuracy"] > 0.9, probe  # the same-run baseline on 64 raw pixels
    assert result["reconstruction_nll"] > 0 and "fid" not in result


def test_probe_without_a_labelled_train_split_uses_random_halves_of_a_sorted_split(digits):
    from kgen.data.pipeline import Pipeline
    from kgen.evaluation import linear_probe

    order = np.argsort(digits.y, kind="stable")  # sorted by label, as binarized MNIST's test split is
    data = dataclasses.replace(digits, x=digits.x[order], y=digits.y[order])  # the train split: halves
    pipeline = Pipeline(config_lib.resolve(model="autoencoder", dataset="digits")["data"])
    model = kgen.build_model("autoencoder", input_shape=digits.shape, num_levels=17, code_dim=4,
                             hidden_units=(8,))
    probe = linear_probe(model, pipeline, data, pipeline.prepare(data, seed=0))
    assert probe["fit_on"].startswith("a random half") and probe["fit_examples"] == 128
    assert probe["pixel_accuracy"] > 0.8, probe  # first/second halves would hold different classes


def test_logistic_probe_separates_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.standard_normal((300, 5)) + 4.0 * np.eye(3, 5)[y]
    assert probe_accuracy(x[:200], y[:200], x[200:], y[200:]) > 0.95
    noise = rng.standard_normal((300, 5))
    assert probe_accuracy(noise[:200], y[:200], noise[200:], y[200:]) < 0.55


@pytest.mark.parametrize("kwargs, message", [
    (dict(corruption="salt"), "unknown corruption"),
    (dict(corruption="masking", corruption_level=1.0), "must lie in (0, 1)"),
    (dict(sparsity_weight=1.0, code_activation="linear"), "code_activation"),
    (dict(sparsity_target=0.0), "sparsity_target"),
    (dict(num_classes=3), "no conditional version"),
])
def test_bad_options_get_one_line(kwargs, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kgen.build_model("autoencoder", input_shape=(8, 8, 1), num_levels=17, **kwargs)
