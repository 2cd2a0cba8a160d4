"""Conditional GAN: labels reach both players, sampling with labels, and a label-conditioned fit that works."""

import keras
import numpy as np
import pytest

import kgen
from adversarial_checks import check_samples, check_save_load_resume, check_training, fit_and_record
from kgen.errors import UsageError
from kgen.models.adversarial import ConditionalGAN


@pytest.fixture(scope="module")
def data():
    ds = kgen.load_dataset("digits")
    return ds.x[:64], ds.y[:64]


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(0)
    model = ConditionalGAN((8, 8, 1), num_classes=10, architecture="conv", latent_dim=4,
                           generator_filters=(8, 4), discriminator_filters=(4, 8))
    model.compile()
    return model, fit_and_record(model, data, steps=2)


def test_training_step(trained):
    model, record = trained
    check_training(record, steps=2, extra_metrics=("d_real", "d_fake"), has_batch_norm=True)


def test_save_load_resume(trained, data, tmp_path):
    model, _ = trained
    check_save_load_resume(model, data, tmp_path / "cgan.keras", labels=3)


def test_sampling_with_labels(trained):
    model, _ = trained
    check_samples(model, labels=4)
    by_label = [model.sample(3, seed=0, labels=k) for k in range(3)]
    # Same noise, different labels: different images.
    assert not np.allclose(by_label[0], by_label[1])
    # Default labels cycle through the classes.
    default = model.sample(3, seed=0)
    np.testing.assert_allclose(default[1], by_label[1][1], atol=1e-6)
    with pytest.raises(UsageError, match="labels must lie"):
        model.sample(2, labels=10)


def test_discriminator_sees_labels(trained):
    model, _ = trained
    x = np.repeat(kgen.load_dataset("digits").x[:1], 2, axis=0)
    logits = keras.ops.convert_to_numpy(model.discriminate(x, np.array([0, 1])))
    assert abs(logits[0] - logits[1]) > 0


def test_sample_to_file_with_label(trained, tmp_path):
    from kgen import checkpoint
    from kgen.sampling import sample_to_file

    model, _ = trained
    checkpoint.save_checkpoint(model, tmp_path / "c.keras", {"config": {"data": {"scale": "unit"}}})
    out = sample_to_file(checkpoint=tmp_path / "c.keras", n=4, seed=0, label=7, out=tmp_path / "s.npz")
    arrays = np.load(out)
    assert arrays["x"].shape == (4, 8, 8, 1) and set(arrays["y"]) == {7}
    np.testing.assert_allclose(arrays["x"], model.sample(4, seed=0, labels=7), atol=1e-5)


def test_label_conditioning_is_learned():
    """Two classes at x = -2 and x = +2: samples for each label land on their side."""
    rng = np.random.default_rng(0)
    y = (np.arange(512) % 2).astype("int32")
    x = np.stack([np.where(y == 0, -2.0, 2.0), np.zeros(512)], 1) + 0.2 * rng.standard_normal((512, 2))
    keras.utils.set_random_seed(0)
    model = ConditionalGAN((2,), num_classes=2, latent_dim=2, generator_units=(32,), discriminator_units=(32,))
    model.compile(optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    model.fit((x.astype("float32"), y), batch_size=64, epochs=30, verbose=0)
    left, right = model.sample(200, seed=1, labels=0), model.sample(200, seed=1, labels=1)
    assert left[:, 0].mean() < -1.0 and right[:, 0].mean() > 1.0, (left.mean(0), right.mean(0))


def test_usage_errors(data):
    with pytest.raises(UsageError, match="needs labels"):
        ConditionalGAN((8, 8, 1))
    with pytest.raises(UsageError, match="architecture"):
        ConditionalGAN((8, 8, 1), num_classes=3, architecture="resnet")
    entry = {m["name"]: m for m in kgen.list_models()}["cgan"]
    assert entry["conditional"]
    model = ConditionalGAN((8, 8, 1), num_classes=10, generator_units=(4,), discriminator_units=(4,))
    fn, specs = model.export_endpoints()["generate"]
    assert specs[1] == ((None,), "int32")
    model.compile()
    with pytest.raises(UsageError, match="fit it on"):
        model.fit(data[0][:8], batch_size=8, verbose=0)
