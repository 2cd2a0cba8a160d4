"""InfoGAN: the contract, the mutual-information bound rising on toy data, sampling with chosen codes."""

import math

import keras
import numpy as np
import pytest

import kgen
from adversarial_checks import check_samples, check_save_load_resume, check_training, fit_and_record
from kgen.errors import UsageError
from kgen.models.adversarial import InfoGAN


@pytest.fixture(scope="module")
def data():
    return kgen.load_dataset("digits").x[:64]


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(0)
    model = InfoGAN((8, 8, 1), latent_dim=4, num_categories=3, num_continuous=2, generator_filters=(8, 4),
                    discriminator_filters=(4, 8), q_units=8)
    model.compile()
    return model, fit_and_record(model, data, steps=2)


def test_training_step(trained):
    model, record = trained
    check_training(record, steps=2, extra_metrics=("info_loss", "mi_categorical", "mi_continuous"),
                   has_batch_norm=True)
    # The Q head is trained by the discriminator's optimizer (shared body, as in the paper's code).
    q_ids = {id(v) for v in model.q_head.trainable_variables}
    assert q_ids <= {id(v) for v in model.discriminator_variables()}
    assert record["history"]["mi_categorical"] <= math.log(3) + 1e-6


def test_save_load_resume(trained, data, tmp_path):
    model, _ = trained
    check_save_load_resume(model, data, tmp_path / "info.keras")


def test_sampling_with_chosen_codes(trained):
    model, _ = trained
    check_samples(model)
    a = model.sample(4, seed=0, category=0, continuous=[0.0, 0.0])
    b = model.sample(4, seed=0, category=2, continuous=[0.0, 0.0])
    c = model.sample(4, seed=0, category=0, continuous=[1.0, -1.0])
    assert a.shape == (4, 8, 8, 1)
    assert not np.allclose(a, b) and not np.allclose(a, c)
    z = model.draw_noise(4, seed=0)[0]
    np.testing.assert_allclose(model.generate_with_codes(z, 2, [0.0, 0.0]), b, atol=1e-6)
    with pytest.raises(UsageError, match="category must lie"):
        model.generate_with_codes(z, 3)
    with pytest.raises(UsageError, match="not conditional"):
        model.sample(2, labels=1)
    codes = model.predict_codes(kgen.load_dataset("digits").x[:5])
    assert codes["category"].shape == (5,) and codes["continuous"].shape == (5, 2)
    assert set(codes["category"]) <= {0, 1, 2}


def test_code_grid(trained):
    model, _ = trained
    grid = model.code_grid(num_steps=4, code=1, seed=2)
    assert grid.shape == (3 * 4, 8, 8, 1)
    z = np.repeat(model.draw_noise(1, seed=2)[0], 4, axis=0)
    row = model.generate_with_codes(z, 2, np.stack([np.zeros(4), np.linspace(-1, 1, 4)], 1))
    np.testing.assert_allclose(grid[8:], row, atol=1e-5)  # row 2: category 2, code 1 swept
    with pytest.raises(UsageError, match="code must lie"):
        model.code_grid(code=2)


def test_codes_from_uniform():
    model = InfoGAN((2,), architecture="mlp", num_categories=4, num_continuous=1, generator_units=(4,),
                    discriminator_units=(4,), q_units=4)
    category, continuous = model.codes_from_uniform(np.array([[0.0, 0.0], [0.26, 0.5], [0.999, 1.0]]))
    np.testing.assert_array_equal(category, [0, 1, 3])
    np.testing.assert_allclose(continuous[:, 0], [-1.0, 0.0, 1.0])
    assert [kind for kind, _ in model.noise_spec(3)] == ["normal", "uniform"]
    fn, specs = model.export_endpoints()["generate"]
    assert [s[1] for s in specs] == ["float32", "int32", "float32"]


def test_info_terms_match_formulas():
    model = InfoGAN((2,), architecture="mlp", num_categories=3, num_continuous=1, generator_units=(4,),
                    discriminator_units=(4,), q_units=4)
    features = np.random.default_rng(0).standard_normal((5, 4)).astype("float32")
    category = np.array([0, 1, 2, 0, 1], "int32")
    continuous = np.array([[0.5], [-0.5], [0.0], [0.9], [-0.9]], "float32")
    logits, mean, log_scale = (keras.ops.convert_to_numpy(t).astype("float64") for t in model.q_distribution(features))
    log_q = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -log_q[np.arange(5), category].mean()
    ll = -0.5 * (np.log(2 * np.pi) + 2 * log_scale + ((continuous - mean) / np.exp(log_scale)) ** 2)
    terms = model.info_terms(features, category, continuous)
    info, mi_cat, mi_cont = (float(keras.ops.convert_to_numpy(t)) for t in terms)
    np.testing.assert_allclose(mi_cat, math.log(3) - ce, rtol=1e-5)
    np.testing.assert_allclose(mi_cont, math.log(2) + ll.sum(-1).mean(), rtol=1e-5)
    np.testing.assert_allclose(info, ce - ll.sum(-1).mean(), rtol=1e-5)


def test_mutual_information_rises_on_toy_data():
    """On 2-D moons, the lower bound on I(c; G(z, c)) climbs from below 0 as G and Q cooperate."""
    x = kgen.load_dataset("moons").x[:512]
    keras.utils.set_random_seed(0)
    model = InfoGAN((2,), architecture="mlp", latent_dim=2, num_categories=4, num_continuous=1,
                    generator_units=(32,), discriminator_units=(32,), q_units=16)
    model.compile(optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    history = model.fit(x, batch_size=128, epochs=16, verbose=0).history
    bound = np.array(history["mi_categorical"]) + np.array(history["mi_continuous"])
    assert np.all(np.isfinite(bound))
    assert bound[-1] > bound[0] + 0.8 and bound[-1] > 0.5, bound


def test_usage_errors():
    with pytest.raises(UsageError, match="without labels"):
        InfoGAN((8, 8, 1), num_classes=10)
    with pytest.raises(UsageError, match="needs a code"):
        InfoGAN((2,), architecture="mlp", num_categories=0, num_continuous=0)
    with pytest.raises(UsageError, match="num_categories"):
        InfoGAN((2,), architecture="mlp", num_categories=1)
