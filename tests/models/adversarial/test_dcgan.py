"""DCGAN: BatchNorm statistics through the adversarial step, save/resume, latent walks and arithmetic."""

import keras
import numpy as np
import pytest

import kgen
from adversarial_checks import check_samples, check_save_load_resume, check_training, fit_and_record, moving_stats
from kgen.errors import UsageError
from kgen.models.adversarial import DCGAN
from kgen.models.adversarial.base import interpolate_latents


def tiny_dcgan(**kw):
    return DCGAN((8, 8, 1), latent_dim=6, generator_filters=(8, 4), discriminator_filters=(4, 8), **kw)


@pytest.fixture(scope="module")
def data():
    return kgen.load_dataset("digits").x[:64] * 2.0 - 1.0  # data.scale = "symmetric"


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(0)
    model = tiny_dcgan(output_activation="tanh")
    model.compile()
    return model, fit_and_record(model, data, steps=2)


def test_training_step_updates_batch_norm(trained):
    model, record = trained
    stats = moving_stats(model)
    # Both players normalise: the generator's stats and the discriminator's.
    assert any(v.path.startswith("generator/") for v in stats)
    assert any(v.path.startswith("discriminator/") for v in stats)
    check_training(record, steps=2, extra_metrics=("d_real", "d_fake"), has_batch_norm=True)


def test_save_load_resume(trained, data, tmp_path):
    model, _ = trained
    loaded = check_save_load_resume(model, data, tmp_path / "dcgan.keras")
    for a, b in zip(moving_stats(model), moving_stats(loaded)):
        assert a.path == b.path


def test_samples_in_tanh_range(trained):
    model, _ = trained
    samples = check_samples(model)
    assert samples.min() >= -1.0 and samples.max() <= 1.0 and samples.min() < 0.0


def test_interpolation_endpoints_and_path(trained):
    model, _ = trained
    z = model.draw_noise(2, seed=5)[0]
    walk = model.interpolate(z[0], z[1], num_steps=6)
    assert walk.shape == (6, 8, 8, 1)
    ends = model.generate_numpy(z)
    np.testing.assert_allclose(walk[0], ends[0], atol=1e-5)
    np.testing.assert_allclose(walk[-1], ends[1], atol=1e-5)
    linear = model.interpolate(z[0], z[1], num_steps=6, method="linear")
    np.testing.assert_allclose(linear[[0, -1]], walk[[0, -1]], atol=1e-5)
    assert not np.allclose(linear[2], walk[2], atol=1e-6)


def test_slerp_keeps_the_norm_of_equal_norm_latents():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(16), rng.standard_normal(16)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    path = interpolate_latents(a, b, 7)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-5)
    np.testing.assert_allclose(interpolate_latents(a, b, 3, "linear")[1], (a + b) / 2, rtol=1e-5)
    with pytest.raises(UsageError, match="slerp"):
        interpolate_latents(a, b, 3, "cubic")


def test_latent_arithmetic(trained):
    model, _ = trained
    za, zb, zc = (model.draw_noise(3, seed=s)[0] for s in (1, 2, 3))
    out = model.latent_arithmetic(za, zb, zc)
    expected = model.generate_numpy((za.mean(0) - zb.mean(0) + zc.mean(0))[None])[0]
    assert out.shape == (8, 8, 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_conv_shape_errors():
    with pytest.raises(UsageError, match="divisible by 8"):
        DCGAN((12, 12, 1), generator_filters=(8, 8, 8))
    with pytest.raises(UsageError, match="needs images"):
        DCGAN((2,))
    with pytest.raises(UsageError, match="cgan"):
        DCGAN((8, 8, 1), num_classes=10)


def test_max_leaky_relu_matches_keras_leaky_relu():
    from kgen.models.adversarial.networks import MaxLeakyReLU

    x = np.linspace(-3, 3, 13, dtype="float32").reshape(1, 13)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(MaxLeakyReLU(0.2)(x)),
                               keras.ops.convert_to_numpy(keras.layers.LeakyReLU(negative_slope=0.2)(x)), atol=1e-7)
    layer = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(MaxLeakyReLU(0.1)))
    assert layer.negative_slope == pytest.approx(0.1)
