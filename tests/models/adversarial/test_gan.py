"""GAN (Goodfellow et al. 2014): the shared adversarial contract, the two generator losses, the composite optimizer."""

import keras
import numpy as np
import pytest

import kgen
from adversarial_checks import check_samples, check_save_load_resume, check_training, fit_and_record
from kgen.errors import UsageError
from kgen.models.adversarial import GAN, AdversarialOptimizer


def tiny_gan(**kw):
    kw.setdefault("generator_units", (16,))
    kw.setdefault("discriminator_units", (16,))
    kw.setdefault("latent_dim", 4)
    return GAN((8, 8, 1), **kw)


@pytest.fixture(scope="module")
def data():
    return kgen.load_dataset("digits").x[:64]


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(0)
    model = tiny_gan()
    model.compile()
    return model, fit_and_record(model, data, steps=2)


def test_training_step(trained):
    model, record = trained
    # The MLP generator has BatchNorm by default: its moving statistics follow training.
    check_training(record, steps=2, extra_metrics=("d_real", "d_fake"), has_batch_norm=True)
    assert 0.0 < record["history"]["d_real"] < 1.0


def test_save_load_resume(trained, data, tmp_path):
    model, _ = trained
    check_save_load_resume(model, data, tmp_path / "gan.keras")


def test_samples(trained):
    model, _ = trained
    samples = check_samples(model)
    assert samples.min() >= 0.0 and samples.max() <= 1.0  # sigmoid output for [0, 1] images
    z = model.draw_noise(3, seed=0)[0]
    np.testing.assert_allclose(model.generate_numpy(z), model.sample(3, seed=0), atol=1e-6)


@pytest.mark.parametrize("kind", ["non_saturating", "minimax"])
def test_losses_match_formulas(kind):
    keras.utils.set_random_seed(1)
    model = tiny_gan(loss=kind)
    real = kgen.load_dataset("digits").x[:6]
    z = np.random.default_rng(0).standard_normal((6, 4)).astype("float32")
    fake = model.generate(z)
    l_real = keras.ops.convert_to_numpy(model.discriminate(real)).astype("float64")
    l_fake = keras.ops.convert_to_numpy(model.discriminate(fake)).astype("float64")
    d_real, d_fake = 1 / (1 + np.exp(-l_real)), 1 / (1 + np.exp(-l_fake))
    d_loss, logs = model.discriminator_loss(real, fake, z, training=False)
    expected = -np.mean(np.log(d_real)) - np.mean(np.log(1 - d_fake))
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(d_loss)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(logs["d_fake"])), d_fake.mean(), rtol=1e-5)
    g_loss, _ = model.generator_loss(z, training=False)
    if kind == "minimax":
        expected = np.mean(np.log(1 - d_fake))  # the game's own term, minimised by G
    else:
        expected = -np.mean(np.log(d_fake))
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(g_loss)), expected, rtol=1e-5)


def test_points_get_a_linear_output():
    model = GAN((2,), generator_units=(8,), discriminator_units=(8,), latent_dim=2, generator_batch_norm=False)
    assert not [v for v in model.weights if "moving" in v.path]
    assert model.output_activation == "linear"
    assert model.sample(7, seed=0).shape == (7, 2)
    assert GAN.from_config(model.get_config()).output_activation == "linear"


# === Compile and the composite optimizer ===


def test_compile_makes_two_distinct_optimizers():
    model = tiny_gan()
    model.compile(optimizer="sgd")
    opt = model.optimizer
    assert isinstance(opt, AdversarialOptimizer)
    assert opt.discriminator_optimizer is not opt.generator_optimizer
    assert type(opt.discriminator_optimizer).__name__ == type(opt.generator_optimizer).__name__ == "SGD"
    # `variables` holds both players' optimizer states (what JAX's fit threads).
    ids = {id(v) for v in opt.variables}
    assert all(id(v) in ids for v in opt.discriminator_optimizer.variables)
    assert all(id(v) in ids for v in opt.generator_optimizer.variables)


def test_compile_per_player_and_defaults():
    model = tiny_gan()
    model.compile(discriminator_optimizer=keras.optimizers.Adam(1e-3),
                  generator_optimizer=keras.optimizers.RMSprop(5e-4))
    opt = model.optimizer
    assert type(opt.generator_optimizer).__name__ == "RMSprop"
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(opt.discriminator_optimizer.learning_rate)), 1e-3)
    default = tiny_gan()
    default.compile()
    d_opt = default.optimizer.discriminator_optimizer
    assert d_opt.beta_1 == 0.5
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(d_opt.learning_rate)), 2e-4)
    # The discriminator's optimizer is built on exactly the discriminator's weights.
    assert len(d_opt.variables) == 2 + 2 * len(default.discriminator_variables())


def test_compile_for_training_uses_train_table():
    model = tiny_gan()
    model.compile_for_training({"optimizer": "adam", "learning_rate": 3e-4, "clipnorm": 1.0})
    for opt in (model.optimizer.discriminator_optimizer, model.optimizer.generator_optimizer):
        np.testing.assert_allclose(float(keras.ops.convert_to_numpy(opt.learning_rate)), 3e-4, rtol=1e-6)
        assert opt.beta_1 == 0.5 and opt.clipnorm == 1.0


def test_composite_config_round_trip():
    opt = AdversarialOptimizer(keras.optimizers.Adam(1e-3, beta_1=0.3), keras.optimizers.SGD(0.1))
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(opt))
    assert isinstance(again, AdversarialOptimizer)
    assert again.discriminator_optimizer.beta_1 == pytest.approx(0.3)
    assert type(again.generator_optimizer).__name__ == "SGD"


def test_composite_refuses_misuse():
    adam = keras.optimizers.Adam()
    with pytest.raises(UsageError, match="two optimizer objects"):
        AdversarialOptimizer(adam, adam)
    opt = AdversarialOptimizer()
    with pytest.raises(AttributeError, match="no single learning rate"):
        _ = opt.learning_rate
    with pytest.raises(ValueError, match="does not apply gradients"):
        opt.apply([], [])


def test_usage_errors():
    with pytest.raises(UsageError, match="cgan"):
        GAN((8, 8, 1), num_classes=10)
    with pytest.raises(UsageError, match="unknown GAN loss"):
        tiny_gan(loss="hinge")
    with pytest.raises(UsageError, match="output_activation"):
        tiny_gan(output_activation="relu")
    with pytest.raises(UsageError, match="own losses"):
        tiny_gan().compile(loss="mse")


def test_registry_and_export_endpoints():
    entry = {m["name"]: m for m in kgen.list_models()}["gan"]
    assert entry["family"] == "adversarial" and not entry["conditional"]
    model = kgen.build_model("gan", input_shape=(8, 8, 1), generator_units=[8], discriminator_units=[8])
    endpoints = model.export_endpoints()
    fn, specs = endpoints["generate"]
    assert specs == [((None, model.latent_dim), "float32")]
    assert "generate" in model.litert_endpoints
    z = np.zeros((2, model.latent_dim), "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fn(z)), model.generate_numpy(z), atol=1e-6)


def test_compile_config_keeps_jit_compile_portable():
    """Keras stores jit_compile resolved for the saving backend; "auto" must survive (PyTorch would torch.compile)."""
    model = tiny_gan()
    model.compile()
    assert model.get_compile_config()["jit_compile"] == "auto"
    model.compile(jit_compile=False)
    assert model.get_compile_config()["jit_compile"] is False


def test_training_step_under_xla(data):
    """`train.xla = "on"` (the digits recipe sets it): on TensorFlow the two-player step compiles
    through XLA and still updates both players and BatchNorm's statistics; other backends ignore it."""
    from kgen import backend, config as config_lib
    from kgen.training.trainer import compile_model

    assert config_lib.resolve(model="gan", dataset="digits")["train"]["xla"] == "on"
    keras.utils.set_random_seed(0)
    model = compile_model(tiny_gan(), config_lib.resolve(model="gan", overrides=["train.xla=on"])["train"])
    if backend.name() == "tensorflow":
        assert model.jit_compile is True
    record = fit_and_record(model, data, steps=2)
    check_training(record, steps=2, extra_metrics=("d_real", "d_fake"), has_batch_norm=True)
    assert 0.0 < record["history"]["d_real"] < 1.0
