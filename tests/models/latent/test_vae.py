"""The VAE family: learning, bounds, normalization, conditioning, round trip."""

import itertools

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen.errors import DataError, UsageError


def _all_images(levels, shape=(2, 2, 1)):
    grid = np.array(list(itertools.product(range(levels), repeat=int(np.prod(shape)))), "float32")
    return grid.reshape((-1,) + shape) / (levels - 1)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_loss_falls_with_plain_fit(digits, architecture):
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, latent_dim=4,
                             hidden_units=(32, 32), architecture=architecture)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(digits.x, batch_size=64, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 5.0
    assert set(history) >= {"loss", "recon", "kl"}


@pytest.mark.parametrize("levels", [2, 3])
def test_decoder_distribution_is_normalized(levels):
    model = kgen.build_model("vae", input_shape=(2, 2, 1), num_levels=levels, latent_dim=2, hidden_units=(8,))
    images = _all_images(levels)
    z = np.random.default_rng(0).standard_normal((1, 2)).astype("float32")
    params = model.decode_params(np.repeat(z, len(images), 0))
    total = np.exp(keras.ops.convert_to_numpy(model.log_likelihood(images, params))).sum()
    assert abs(total - 1.0) < 1e-4


def test_iw_bound_tightens_and_sums_to_at_most_one():
    images = _all_images(2)
    rng = np.random.default_rng(0)
    data = images[rng.choice(16, 400, p=np.r_[0.5, np.full(15, 0.5 / 15)])]
    model = kgen.build_model("vae", input_shape=(2, 2, 1), num_levels=2, latent_dim=2, hidden_units=(16,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(data, batch_size=50, epochs=20, verbose=0)
    elbo = np.mean([model.log_prob(images, seed=s) for s in range(100)], axis=0)  # ELBO, not one draw
    iw = model.iw_log_prob(images, k=2000, seed=0)
    assert np.mean(iw) > np.mean(elbo)  # the IW bound is tighter
    assert np.exp(elbo).sum() < 1.02  # a lower bound (up to Monte Carlo noise)
    assert 0.9 < np.exp(iw).sum() < 1.02  # a lower bound on a normalized model, nearly tight


def test_score_terms_are_consistent(digits):
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, hidden_units=(16,))
    terms = model.score(digits.x[:20], seed=1, iw_samples=10)
    np.testing.assert_allclose(terms["elbo"], -(terms["recon"] + terms["kl"]), rtol=1e-5)
    assert np.all(terms["kl"] >= 0)
    np.testing.assert_allclose(model.log_prob(digits.x[:20], seed=1), terms["elbo"], rtol=1e-6)


def test_samples_are_reproducible_and_on_the_grid(digits):
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, hidden_units=(16,))
    a = model.sample(10, seed=5)
    np.testing.assert_array_equal(a, model.sample(10, seed=5))
    assert not np.array_equal(a, model.sample(10, seed=6))
    assert a.shape == (10, 8, 8, 1) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_allclose(a * 16, np.round(a * 16), atol=1e-5)
    cold = model.sample(10, seed=5, temperature=0.0)
    np.testing.assert_array_equal(cold, model.sample(10, seed=7, temperature=0.0) * 0 + cold)


def test_conditional_vae_uses_labels():
    digits = kgen.load_dataset("digits")
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, num_classes=10,
                             hidden_units=(64,), latent_dim=2)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit((digits.x, digits.y), batch_size=64, epochs=8, verbose=0)
    threes = model.sample(8, seed=0, labels=3)
    sevens = model.sample(8, seed=0, labels=7)
    assert not np.array_equal(threes, sevens)
    np.testing.assert_array_equal(threes, model.sample(8, seed=0, labels=3))
    with pytest.raises(UsageError, match="labels must lie"):
        model.sample(2, labels=12)
    lp_right = model.log_prob(digits.x[:32], labels=digits.y[:32], seed=0)
    lp_wrong = model.log_prob(digits.x[:32], labels=(digits.y[:32] + 5) % 10, seed=0)
    assert lp_right.mean() > lp_wrong.mean()


def test_keras_round_trip_gives_equal_outputs(tmp_path, digits):
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, num_classes=10, hidden_units=(16,))
    model.compile(optimizer="adam")
    model.fit((digits.x, digits.y), epochs=1, verbose=0)
    path = tmp_path / "vae.keras"
    checkpoint.save_checkpoint(model, path)
    loaded = kgen.load_model(path)
    assert type(loaded).__name__ == "VAE" and loaded.num_classes == 10
    np.testing.assert_allclose(loaded.log_prob(digits.x[:16], digits.y[:16], seed=0),
                               model.log_prob(digits.x[:16], digits.y[:16], seed=0), rtol=1e-5)
    np.testing.assert_array_equal(loaded.sample(4, seed=0, labels=1), model.sample(4, seed=0, labels=1))
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations)
    # the training noise state travels too
    np.testing.assert_array_equal(checkpoint.seed_states(loaded), checkpoint.seed_states(model))


def test_beta_weights_the_kl_term(digits):
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, hidden_units=(16,), beta=4.0)
    out = model(digits.x[:32])
    loss = keras.ops.convert_to_numpy(model.compute_loss(y_pred=out))
    expected = np.mean(keras.ops.convert_to_numpy(out["recon"]) + 4.0 * keras.ops.convert_to_numpy(out["kl"]))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_iwae_objective_is_the_k_sample_bound():
    """train_samples = k: the loss is minus the k-sample IW bound, which lies above the ELBO (Jensen),
    and has the same expectation as `iw_log_prob(x, k)`."""
    images = _all_images(2)
    model = kgen.build_model("vae", input_shape=(2, 2, 1), num_levels=2, latent_dim=2, hidden_units=(8,),
                             train_samples=4)
    reps = np.tile(images, (400, 1, 1, 1))
    out = {key: keras.ops.convert_to_numpy(v) for key, v in model(reps).items()}
    assert out["iw_bound"].shape == (len(reps),)
    assert np.all(out["iw_bound"] >= -(out["recon"] + out["kl"]) - 1e-4)
    loss = keras.ops.convert_to_numpy(model.compute_loss(y_pred=model(reps)))
    assert loss.shape == () and np.isfinite(loss)
    trained = out["iw_bound"].reshape(400, 16).mean(0)
    scored = model.iw_log_prob(reps, k=4, seed=0).reshape(400, 16).mean(0)
    np.testing.assert_allclose(trained, scored, atol=0.1)  # dropping log q or log k would miss by >= 1.3


def test_iwae_trains_and_round_trips(tmp_path, digits):
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, latent_dim=4, hidden_units=(32,),
                             train_samples=5)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(digits.x, batch_size=64, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 5.0
    # the IW bound is at least the ELBO, so the loss sits below recon + kl
    assert history["loss"][-1] <= history["recon"][-1] + history["kl"][-1] + 1e-3
    path = tmp_path / "iwae.keras"
    checkpoint.save_checkpoint(model, path)
    assert kgen.load_model(path).train_samples == 5
    with pytest.raises(UsageError, match="beta = 1"):
        kgen.build_model("vae", input_shape=digits.shape, num_levels=17, train_samples=5, beta=2.0)
    with pytest.raises(UsageError, match="train_samples must be"):
        kgen.build_model("vae", input_shape=digits.shape, num_levels=17, train_samples=0)


def test_wrong_data_is_refused(digits):
    binary = kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=2)
    with pytest.raises(DataError, match="binarize"):
        binary.check_data(digits)
    small = kgen.build_model("vae", input_shape=(4, 4, 1), num_levels=17)
    with pytest.raises(DataError, match="shape"):
        small.check_data(digits)
    with pytest.raises(UsageError, match="bernoulli likelihood needs binary"):
        kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17, likelihood="bernoulli")
    with pytest.raises(UsageError, match="divisible"):
        kgen.build_model("vae", input_shape=(6, 6, 1), num_levels=17, architecture="conv", hidden_units=(8, 8))


def test_gaussian_vae_on_points():
    data = kgen.load_dataset("moons", num_examples=512)
    model = kgen.build_model("vae", input_shape=(2,), latent_dim=2, hidden_units=(32,))
    assert model.likelihood == "gaussian"
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(data.x, batch_size=64, epochs=5, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert model.sample(16, seed=0).shape == (16, 2)


def test_user_script_with_plain_keras_fit(tmp_path):
    """What a user writes in their own script: build, compile, fit, save, sample."""
    script = f"""
import keras, kgen
data = kgen.load_dataset("digits")
model = kgen.build_model("vae", input_shape=data.shape, num_levels=data.num_levels, hidden_units=(64,))
model.compile(optimizer=keras.optimizers.Adam(1e-3))
history = model.fit(data.x, batch_size=128, epochs=2, validation_split=0.1, verbose=0)
model.save({str(tmp_path / 'mine.keras')!r})
again = keras.saving.load_model({str(tmp_path / 'mine.keras')!r})
print(history.history["loss"][-1] < history.history["loss"][0], again.sample(3, seed=0).shape)
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)  # outside the source tree: the installed kgen
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("True (3, 8, 8, 1)")


@pytest.mark.parametrize("recipe, k, epochs", [("binarized_mnist_iwae", 50, 3280), ("binarized_mnist_iwae_cpu", 5, 600),
                                               ("binarized_mnist_iwae10_cpu", 10, 600),
                                               ("binarized_mnist_iwae10_full_cpu", 10, 450)])
def test_iwae_recipe_resolves_and_builds(recipe, k, epochs):
    """The IWAE recipes (paper-sized, a GPU run; CPU-sized): Burda et al.'s architecture trained on the k-sample
    bound with cosine decay, evaluated with k = 5000."""
    from kgen import config as config_lib

    config = config_lib.resolve(config_file=config_lib.recipe_path("vae", recipe))
    cpu = config_lib.resolve(model="vae", dataset="binarized_mnist")
    assert config["model"]["train_samples"] == k and cpu["model"]["train_samples"] == 1
    for key in ("latent_dim", "hidden_units", "activation", "likelihood"):
        assert config["model"][key] == cpu["model"][key], key
    assert config["train"]["epochs"] == epochs and config["evaluate"]["iw_samples"] == 5000
    assert config["train"]["lr_schedule"] == "cosine"
    # "full": trained on train + valid, so valid cannot pick the checkpoint (the last epochs are the best)
    assert config["data"]["train_with_valid"] == recipe.endswith("_full_cpu")
    assert (config["train"]["checkpoint_metric"] == "loss") == recipe.endswith("_full_cpu")
    hparams = config_lib.model_hparams(config)
    hparams.pop("conditional", None)
    model = kgen.build_model("vae", input_shape=(28, 28, 1), num_levels=2, **hparams)
    assert model.train_samples == k


def test_training_noise_is_seeded_standard_normal_with_and_without_xla():
    """`kgen.backend.random_normal` (the VAE's reparameterization noise): drawn from the model's
    SeedGenerator (same state, same draw: checkpoints carry it), standard normal, and without XLA
    exactly Keras' own draw (TensorFlow picks Philox on a CPU). On TensorFlow it also runs under XLA,
    where Keras' default algorithm is slow (bench/vae_xla_noise_probe.py)."""
    from kgen import backend

    shape = (400, 250)
    first = backend.to_numpy(backend.random_normal(shape, keras.random.SeedGenerator(3)))
    gen = keras.random.SeedGenerator(3)
    again = backend.to_numpy(backend.random_normal(shape, gen))
    following = backend.to_numpy(backend.random_normal(shape, gen))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - following).max() > 1.0  # the generator advanced
    np.testing.assert_array_equal(first, backend.to_numpy(keras.random.normal(shape, seed=keras.random.SeedGenerator(3))))
    for draw in (first, following):
        assert abs(draw.mean()) < 0.01 and abs(draw.std() - 1.0) < 0.01
        assert abs((draw > 1.0).mean() - 0.1587) < 0.005  # the normal's upper tail, not just its moments
    if backend.name() == "tensorflow":
        import tensorflow as tf

        gen = keras.random.SeedGenerator(3)
        xla = tf.function(lambda: backend.random_normal(shape, gen), jit_compile=True)
        a, b = backend.to_numpy(xla()), backend.to_numpy(xla())
        assert np.abs(a - b).max() > 1.0
        for draw in (a, b):
            assert abs(draw.mean()) < 0.01 and abs(draw.std() - 1.0) < 0.01
            assert abs((draw > 1.0).mean() - 0.1587) < 0.005
