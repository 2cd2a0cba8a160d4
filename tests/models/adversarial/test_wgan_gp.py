"""WGAN-GP: the gradient penalty against hand-computed values, n_critic, and the shared contract."""

import keras
import numpy as np
import pytest

import kgen
from adversarial_checks import check_samples, check_save_load_resume, check_training, fit_and_record
from kgen.backend import adversarial
from kgen.errors import UsageError
from kgen.models.adversarial import WGANGP


@pytest.fixture(scope="module")
def data():
    return kgen.load_dataset("digits").x[:64]


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(0)
    model = WGANGP((8, 8, 1), latent_dim=4, generator_filters=(8, 4), critic_filters=(4, 8), n_critic=2)
    model.compile()
    return model, fit_and_record(model, data, steps=2)


def test_training_step_with_n_critic(trained):
    model, record = trained
    # The critic makes n_critic = 2 updates per generator update.
    check_training(record, steps=2, discriminator_steps=2, extra_metrics=("w_distance", "gradient_penalty"),
                   has_batch_norm=True)
    assert record["history"]["gradient_penalty"] >= 0.0
    np.testing.assert_allclose(record["history"]["d_loss"],
                               record["history"]["gradient_penalty"] - record["history"]["w_distance"], rtol=1e-4)


def test_save_load_resume(trained, data, tmp_path):
    model, _ = trained
    loaded = check_save_load_resume(model, data, tmp_path / "wgan.keras")
    assert loaded.n_critic == 2 and loaded.discriminator_steps == 2


def test_samples(trained):
    check_samples(trained[0])


def _linear_critic_model(dims=3, weight=10.0):
    model = WGANGP((dims,), architecture="mlp", critic_units=(), generator_units=(4,), latent_dim=2,
                   gradient_penalty_weight=weight)
    (kernel,) = model.discriminator.trainable_variables  # C(x) = w.x: no bias (it cancels out)
    w = np.array([[0.3], [-1.2], [0.5]], "float32")[:dims]
    kernel.assign(w)
    return model, w[:, 0].astype("float64")


def test_penalty_of_a_linear_critic_is_analytic():
    """C(x) = w.x + b has gradient w everywhere: the penalty is lambda (||w|| - 1)^2 whatever alpha."""
    model, w = _linear_critic_model()
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((5, 3)).astype("float32"), rng.standard_normal((5, 3)).astype("float32")
    expected = 10.0 * (np.linalg.norm(w) - 1.0) ** 2
    value = model.gradient_penalty(real, fake)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(value)), expected, rtol=1e-5)
    # And the critic's gradient of the penalty (double backprop through the input gradient):
    # d/dw lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w / ||w||.
    variables = model.discriminator.trainable_variables
    alpha = np.full((5, 1), 0.5, "float32")
    loss, grads = adversarial.value_and_grad(lambda: model.gradient_penalty(real, fake, alpha), variables)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(loss)), expected, rtol=1e-5)
    expected_grad = 2 * 10.0 * (np.linalg.norm(w) - 1.0) * w / np.linalg.norm(w)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grads[0])[:, 0], expected_grad, rtol=1e-4)


def test_penalty_uses_one_alpha_per_example():
    """C(x) = ||x||^2 / 2 has gradient x: the penalty depends on each example's own alpha."""
    model, _ = _linear_critic_model()
    rng = np.random.default_rng(1)
    real = rng.standard_normal((4, 3)).astype("float32")
    fake = rng.standard_normal((4, 3)).astype("float32")
    alpha = np.array([[0.0], [0.25], [0.5], [1.0]], "float32")

    def critic(v):
        return 0.5 * keras.ops.sum(keras.ops.square(v), axis=-1)

    value = model.gradient_penalty(real, fake, alpha, critic=critic)
    mixed = alpha * real + (1 - alpha) * fake
    expected = 10.0 * np.mean((np.linalg.norm(mixed, axis=1) - 1.0) ** 2)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(value)), expected, rtol=1e-5)
    # One weight per example, broadcast over the example's dimensions.
    images = WGANGP((8, 8, 1), generator_filters=(4,), critic_filters=(4,))
    drawn = keras.ops.convert_to_numpy(images.draw_alpha(6))
    assert drawn.shape == (6, 1, 1, 1)
    assert len(np.unique(drawn)) == 6 and drawn.min() >= 0.0 and drawn.max() <= 1.0


def test_losses_match_formulas():
    model, w = _linear_critic_model()
    rng = np.random.default_rng(2)
    real = rng.standard_normal((5, 3)).astype("float32")
    fake = rng.standard_normal((5, 3)).astype("float32")
    loss, logs = model.discriminator_loss(real, fake, None, training=False)
    w_distance = (real.astype("float64") @ w).mean() - (fake.astype("float64") @ w).mean()
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(logs["w_distance"])), w_distance, rtol=1e-4)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(loss)),
                               10.0 * (np.linalg.norm(w) - 1) ** 2 - w_distance, rtol=1e-4)


def test_usage_errors():
    with pytest.raises(UsageError, match="batch normalization"):
        WGANGP((8, 8, 1), critic_norm="batch")
    with pytest.raises(UsageError, match="n_critic"):
        WGANGP((2,), architecture="mlp", n_critic=0)
    with pytest.raises(UsageError, match="unconditional"):
        WGANGP((2,), architecture="mlp", num_classes=2)
    model = WGANGP((2,), architecture="mlp", critic_units=(4,), generator_units=(4,))
    model.compile()
    d_opt = model.optimizer.discriminator_optimizer
    assert d_opt.beta_1 == 0.0 and d_opt.beta_2 == 0.9  # the paper's Adam
