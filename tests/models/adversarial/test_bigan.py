"""BiGAN / ALI: the contract, the encoder as part of the generator's player, a joint (x, z) discriminator."""

import keras
import numpy as np
import pytest

import kgen
from adversarial_checks import check_samples, check_save_load_resume, check_training, fit_and_record, values
from kgen.errors import UsageError
from kgen.models.adversarial import BiGAN


def tiny(**kw):
    kw.setdefault("latent_dim", 4)
    kw.setdefault("generator_units", (16,))
    kw.setdefault("encoder_units", (16,))
    kw.setdefault("discriminator_units", (16,))
    return BiGAN((8, 8, 1), **kw)


@pytest.fixture(scope="module")
def data():
    return kgen.load_dataset("digits").x[:64]


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(0)
    model = tiny()
    model.compile()
    encoder_before = values(model.encoder.trainable_variables)
    return model, fit_and_record(model, data, steps=2), encoder_before


def test_training_step(trained):
    model, record, _ = trained
    check_training(record, steps=2, extra_metrics=("d_real", "d_fake"), has_batch_norm=True)
    assert 0.0 < record["history"]["d_real"] < 1.0


def test_encoder_trains_with_the_generator(trained):
    """E and G are one player: E's weights sit in the generator's optimizer, not D's, and a step moves them."""
    model, _, encoder_before = trained
    e_ids = {id(v) for v in model.encoder.trainable_variables}
    assert e_ids <= {id(v) for v in model.generator_variables()}
    assert not e_ids & {id(v) for v in model.discriminator_variables()}
    g_opt_vars = {id(v) for v in model.optimizer.generator_optimizer._trainable_variables}
    assert e_ids <= g_opt_vars
    changed = [not np.array_equal(a, b) for a, b in zip(encoder_before, values(model.encoder.trainable_variables))]
    assert changed and all(changed)


def test_discriminator_sees_x_and_z(trained, data):
    model, _, _ = trained
    rng = np.random.default_rng(0)
    x = data[:6]
    z1, z2 = (rng.standard_normal((6, 4)).astype("float32") for _ in range(2))
    l1 = keras.ops.convert_to_numpy(model.discriminate(x, z1))
    l2 = keras.ops.convert_to_numpy(model.discriminate(x, z2))  # only z changed
    l3 = keras.ops.convert_to_numpy(model.discriminate(data[6:12], z1))  # only x changed
    assert l1.shape == (6,)
    assert np.all(np.abs(l1 - l2) > 1e-6) and np.all(np.abs(l1 - l3) > 1e-6)
    # The losses use the joint logit: d_loss with E's codes vs hand-written softplus forms.
    z_real = model.encode(x)
    fake = model.generate(z1)
    d_loss, _ = model.discriminator_loss(x, fake, z1, training=False)
    lr = keras.ops.convert_to_numpy(model.discriminate(x, z_real)).astype("float64")
    lf = keras.ops.convert_to_numpy(model.discriminate(fake, z1)).astype("float64")
    expected = np.mean(np.logaddexp(0, -lr)) + np.mean(np.logaddexp(0, lf))
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(d_loss)), expected, rtol=1e-5)


def test_encode_reconstruct(trained, data):
    model, _, _ = trained
    z = model.encode(data[:5])
    assert z.shape == (5, 4) and np.all(np.isfinite(z))
    np.testing.assert_allclose(model.reconstruct(data[:5]), model.generate_numpy(z), atol=1e-5)
    assert model.reconstruct(data[:5]).shape == (5, 8, 8, 1)
    with pytest.raises(UsageError, match="shape"):
        model.encode(np.zeros((2, 4, 4, 1)))


def test_save_load_resume(trained, data, tmp_path):
    model, _, _ = trained
    loaded = check_save_load_resume(model, data, tmp_path / "bigan.keras")
    check_samples(loaded)


def test_save_load_encodings(trained, data, tmp_path):
    model, _, _ = trained
    path = tmp_path / "bigan2.keras"
    model.save(path)
    loaded = kgen.load_model(path)
    np.testing.assert_allclose(loaded.encode(data[:4]), model.encode(data[:4]), atol=1e-5)
    np.testing.assert_allclose(loaded.reconstruct(data[:4]), model.reconstruct(data[:4]), atol=1e-5)


def test_gaussian_encoder_ali(data):
    keras.utils.set_random_seed(1)
    model = tiny(encoder="gaussian")
    model.compile()
    record = fit_and_record(model, data, steps=2)
    check_training(record, steps=2, has_batch_norm=True)
    mean, log_scale = model.encoder_distribution(data[:3])
    assert keras.ops.shape(log_scale) == (3, 4)
    np.testing.assert_allclose(model.encode(data[:3]), keras.ops.convert_to_numpy(mean), atol=1e-5)
    a = keras.ops.convert_to_numpy(model.encode_sample(data[:3]))
    b = keras.ops.convert_to_numpy(model.encode_sample(data[:3]))
    assert not np.allclose(a, b)  # reparameterised draws


def test_usage_errors():
    with pytest.raises(UsageError, match="unconditional"):
        tiny(num_classes=10)
    with pytest.raises(UsageError, match="unknown encoder"):
        tiny(encoder="vq")
    with pytest.raises(UsageError, match="real batch"):
        tiny().generator_loss(np.zeros((2, 4), "float32"))
