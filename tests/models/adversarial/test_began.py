"""BEGAN: the k_t equilibrium update, the convergence measure, and the shared contract."""

import keras
import numpy as np
import pytest

import kgen
from adversarial_checks import check_samples, check_save_load_resume, check_training, fit_and_record
from kgen.errors import UsageError
from kgen.models.adversarial import BEGAN


def k_value(model):
    return float(keras.ops.convert_to_numpy(model.k.value))


@pytest.fixture(scope="module")
def data():
    return kgen.load_dataset("digits").x[:64]


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(0)
    model = BEGAN((8, 8, 1), latent_dim=4, filters=4, num_scales=1, gamma=0.5, k_learning_rate=0.05)
    model.compile()
    return model, fit_and_record(model, data, steps=2)


def test_training_step(trained):
    model, record = trained
    check_training(record, steps=2, extra_metrics=("ae_real", "ae_fake", "k", "convergence"))
    # The autoencoder (encoder + decoder) is the discriminator.
    assert {id(v) for v in model.decoder.trainable_variables} <= {id(v) for v in model.discriminator_variables()}


def test_k_follows_the_equilibrium_update(data):
    """One step from k = 0: k_1 = clip(lambda_k (gamma L(x) - L(G(z))), 0, 1) with the step's logged losses."""
    keras.utils.set_random_seed(1)
    model = BEGAN((8, 8, 1), latent_dim=4, filters=4, gamma=1.0, k_learning_rate=0.5)
    model.compile()
    history = model.fit(data[:16], batch_size=16, epochs=1, verbose=0).history
    ae_real, ae_fake = history["ae_real"][0], history["ae_fake"][0]
    expected = np.clip(0.5 * (1.0 * ae_real - ae_fake), 0.0, 1.0)
    assert expected > 0.0  # a fresh generator's fakes reconstruct better than the data: k rises
    np.testing.assert_allclose(k_value(model), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(history["k"][0], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(history["convergence"][0], ae_real + abs(ae_real - ae_fake), rtol=1e-5)


def test_end_step_clips_k_and_leaves_it_in_evaluation():
    model = BEGAN((2,), architecture="mlp", hidden_units=(4,), latent_dim=2, gamma=0.5, k_learning_rate=0.001)
    model.k.assign(0.5)
    logs = model.end_step({"ae_real": 0.4, "ae_fake": 0.1}, training=True)
    np.testing.assert_allclose(k_value(model), 0.5 + 0.001 * (0.5 * 0.4 - 0.1), rtol=1e-6)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(logs["convergence"])), 0.4 + 0.1, rtol=1e-6)
    model.end_step({"ae_real": 0.0, "ae_fake": 1e4}, training=True)
    assert k_value(model) == 0.0
    model.end_step({"ae_real": 1e4, "ae_fake": 0.0}, training=False)
    assert k_value(model) == 0.0  # evaluation never moves k


def test_save_load_resume_keeps_k(trained, data, tmp_path):
    model, _ = trained
    assert k_value(model) > 0.0
    checkpoint_k = k_value(model)
    loaded = check_save_load_resume(model, data, tmp_path / "began.keras")
    assert k_value(loaded) != checkpoint_k  # the further step moved the restored k
    assert kgen.load_model(tmp_path / "began.keras").k.numpy() == pytest.approx(checkpoint_k)


def test_samples_and_reconstruction(trained):
    model, _ = trained
    check_samples(model)
    x = kgen.load_dataset("digits").x[:3]
    assert keras.ops.convert_to_numpy(model.reconstruct(x)).shape == (3, 8, 8, 1)
    assert keras.ops.convert_to_numpy(model.autoencoder_loss(x)).shape == (3,)


def test_usage_errors():
    with pytest.raises(UsageError, match="gamma"):
        BEGAN((8, 8, 1), gamma=0.0)
    with pytest.raises(UsageError, match="divisible"):
        BEGAN((6, 6, 1), num_scales=2)
    with pytest.raises(UsageError, match="unconditional"):
        BEGAN((8, 8, 1), num_classes=3)
