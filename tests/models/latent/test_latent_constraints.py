"""Latent constraints: the gated actor and distance penalty against NumPy, the penalty's reach, the frozen
VAE, label accuracy of conditional samples and edits by kgen's digits classifier, save/load, resume."""

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen.errors import UsageError
from kgen.metrics.features import FeatureExtractor
from kgen.models.latent.vae import VAE
from kgen.training.trainer import train


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), "float64")


def _values(variables):
    return [_np(v).copy() for v in variables]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def _lc(**kw):
    hparams = dict(input_shape=(8, 8, 1), num_levels=17, num_classes=10, vae="", vae_latent_dim=3,
                   vae_hidden_units=(16,), actor_units=(32,), critic_units=(32,), judge_units=(16,))
    return kgen.build_model("latent_constraints", **{**hparams, **kw})


@pytest.fixture(scope="module")
def digits():
    data = kgen.load_dataset("digits")
    return data.x, data.y.astype("int32")


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory):
    """A tiny untrained, unconditional VAE for 8x8 digits, saved as a checkpoint."""
    vae = kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17, latent_dim=3, hidden_units=(16,))
    path = tmp_path_factory.mktemp("vae") / "vae.keras"
    checkpoint.save_checkpoint(vae, path)
    return path, _values(vae.weights)


def test_the_actor_is_the_gated_residual_and_the_penalty_is_the_papers(digits):
    """z' = (1 - sigmoid(g)) z + sigmoid(g) dz from the actor's [dz, g]; L_dist = mean_d log(1 + (z'-z)^2) / sigma^2."""
    model = _lc()
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 3)).astype("float32")
    y = np.array([0, 1, 2, 3, 9, 5], "int32")
    out = _np(model.actor(np.concatenate([z, np.eye(10, dtype="float32")[y]], -1)))
    dz, g = out[:, :3], 1.0 / (1.0 + np.exp(-out[:, 3:]))
    want = (1.0 - g) * z + g * dz
    got = model.transform_latents(z, y)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the labels condition the actor: another label moves the same code elsewhere
    assert np.abs(model.transform_latents(z, (y + 1) % 10) - got).max() > 1e-4

    # sigma_z^2 is 1 before any batch, then the mean of the batch means of the posterior variance
    np.testing.assert_allclose(_np(model.posterior_variance), 1.0)
    model.posterior_variance_stats.assign(np.array([1.0, 4.0], "float32"))  # sigma_z^2 = 0.25
    penalty = _np(model.distance_penalty(got, z))
    np.testing.assert_allclose(penalty, np.mean(np.log1p((got - z) ** 2), -1) / 0.25, rtol=1e-5)

    # a closed gate (logits -> -inf) gives z' = z whatever the proposal: the penalty's zero
    kernel, bias = model.actor.layers[-1].weights
    b = _np(bias).copy()
    b[3:] = -40.0
    bias.assign(b.astype("float32"))
    np.testing.assert_allclose(model.transform_latents(z, y), z, atol=1e-6)
    np.testing.assert_allclose(_np(model.distance_penalty(model.transform_latents(z, y), z)), 0.0, atol=1e-6)


def test_a_given_vae_is_loaded_and_never_trained(digits, vae_file):
    x, y = digits
    path, stored = vae_file
    model = _lc(vae=str(path), vae_epochs=5)  # vae_epochs is ignored for a given (trained) VAE
    assert model.vae_epochs == 0 and not model.vae.trainable
    assert _same(_values(model.vae.weights), stored)
    model.compile()
    actor, critics = _values(model.actor_variables()), _values(model.discriminator_variables())
    history = model.fit((x[:64], y[:64]), batch_size=32, epochs=2, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in history.values())
    assert set(history) >= {"d_loss", "g_loss", "distance", "shift", "attribute_loss"}
    assert "recon" not in history and "kl" not in history  # the other phase's logs
    assert _same(_values(model.vae.weights), stored)  # the VAE: not a bit changed
    assert not any(np.array_equal(a, b) for a, b in zip(actor, _values(model.actor_variables())))
    assert not any(np.array_equal(a, b) for a, b in zip(critics, _values(model.discriminator_variables())))
    opt = model.optimizer
    assert int(_np(opt.discriminator_optimizer.iterations)) == int(_np(opt.generator_optimizer.iterations)) == 4
    # sigma_z^2: the mean over the 4 batches of the posterior variance, as the VAE gives it
    _, logvar = model.vae.encode(x[:32])
    assert 0.0 < float(_np(model.posterior_variance)) < 10.0
    assert float(_np(model.posterior_variance_stats)[1]) == 4.0
    assert abs(float(_np(model.posterior_variance)) - float(np.mean(np.exp(_np(logvar))))) < 0.5


def test_the_models_own_vae_trains_first_then_stays_frozen(digits):
    x, y = digits
    model = _lc(vae_epochs=1)
    model.compile()
    snapshots = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append((_values(model.vae.weights), _values(model.actor_variables()), dict(logs)))

    start = (_values(model.vae.weights), _values(model.actor_variables()))
    model.fit((x[:64], y[:64]), batch_size=32, epochs=3, verbose=0, callbacks=[Record()])
    (vae1, actor1, logs1), (vae2, actor2, logs2), (vae3, actor3, _) = snapshots
    assert not _same(start[0], vae1) and _same(start[1], actor1)  # epoch 1: the VAE's ELBO only
    assert set(logs1) == {"loss", "recon", "kl"} and "d_loss" in logs2
    assert _same(vae1, vae2) and _same(vae2, vae3)  # then frozen
    assert not _same(actor1, actor2) and not _same(actor2, actor3)


@pytest.fixture(scope="module")
def trained(digits):
    """Constraints on kgen's shipped digits VAE, after 8 short epochs (small critics and actor)."""
    x, y = digits
    keras.utils.set_random_seed(0)
    model = _lc(vae="vae-digits", actor_units=(64, 64), critic_units=(64, 64), judge_units=(64,))
    model.compile(discriminator_optimizer=keras.optimizers.Adam(2e-3),
                  generator_optimizer=keras.optimizers.Adam(2e-3))
    model.fit((x[:1280], y[:1280]), batch_size=64, epochs=8, verbose=0)
    return model


def test_a_large_distance_weight_keeps_the_actor_near_its_input(trained, digits):
    """The distance penalty's reach: lambda_dist = 300 holds z' ~ z where lambda_dist = 0.1 (`trained`) lets the
    constraints move codes (at initialisation, the half-open gates put z' ~ z / 2: a shift of about 0.4)."""
    x, y = digits
    z = np.random.default_rng(1).standard_normal((256, 16)).astype("float32")
    labels = np.arange(256) % 10
    keras.utils.set_random_seed(0)
    model = _lc(vae="vae-digits", actor_units=(64, 64), critic_units=(64, 64), judge_units=(64,), dist_weight=300.0)
    model.compile(discriminator_optimizer=keras.optimizers.Adam(2e-3),
                  generator_optimizer=keras.optimizers.Adam(2e-3))
    model.fit((x[:640], y[:640]), batch_size=64, epochs=3, verbose=0)
    held = float(np.mean(np.abs(model.transform_latents(z, labels) - z)))
    free = float(np.mean(np.abs(trained.transform_latents(z, labels) - z)))
    assert held < 0.15 and free > 4 * held, (held, free)


def test_conditional_samples_and_edits_take_their_label(trained, digits):
    """By kgen's digits classifier (chance: 0.1): samples at G(z, y), edits of held-out digits toward y."""
    x, y = digits
    classifier = FeatureExtractor("digits")
    labels = np.arange(200) % 10
    samples = trained.sample(200, seed=0, labels=labels)
    assert samples.shape == (200, 8, 8, 1) and np.all((samples >= 0) & (samples <= 1))
    accuracy = np.mean(classifier.predict_labels(samples) == labels)
    # the same prior draws decoded without the actor carry no label: the actor is what conditions
    z = trained.draw_latents(200, seed=0)
    plain = np.mean(classifier.predict_labels(_np(trained.vae.decode(z))) == labels)
    assert accuracy > 0.6 and plain < 0.25, (accuracy, plain)

    held_out, their = x[1280:1380], y[1280:1380]
    targets = (their + 1 + np.arange(100) % 9) % 10  # another label each
    edits = trained.edit(held_out, targets)
    assert np.mean(classifier.predict_labels(edits) == targets) > 0.5

    extra = trained.evaluate_extra(type("Prepared", (), {"x": held_out, "y": their})())["judge"]
    assert extra["sample_label_accuracy"] > 0.6 and extra["data_accuracy"] > 0.8


def test_save_and_load(trained, digits, tmp_path):
    x, y = digits
    path = tmp_path / "lc.keras"
    checkpoint.save_checkpoint(trained, path, {"epoch": 8})
    for loaded in (kgen.load_model(path), keras.saving.load_model(path)):
        assert type(loaded) is type(trained) and type(loaded.vae) is VAE
        assert len(loaded.weights) == len(trained.weights)
        for a, b in zip(trained.weights, loaded.weights):
            np.testing.assert_array_equal(_np(a), _np(b), err_msg=a.path)
        np.testing.assert_allclose(loaded.sample(6, seed=3, labels=4), trained.sample(6, seed=3, labels=4), atol=1e-5)
        np.testing.assert_allclose(loaded.edit(x[:5], labels=7), trained.edit(x[:5], labels=7), atol=1e-5)
    loaded = kgen.load_model(path)
    opt, lopt = trained.optimizer, loaded.optimizer
    for player in ("discriminator_optimizer", "generator_optimizer"):
        for a, b in zip(getattr(opt, player).variables, getattr(lopt, player).variables):
            np.testing.assert_array_equal(_np(a), _np(b))
    vae = _values(loaded.vae.weights)
    loaded.fit((x[:64], y[:64]), batch_size=32, epochs=1, verbose=0)  # the restored optimizers continue
    assert int(_np(loaded.optimizer.generator_optimizer.iterations)) == int(_np(opt.generator_optimizer.iterations)) + 2
    assert _same(vae, _values(loaded.vae.weights))


def test_a_resumed_run_matches_an_uninterrupted_one(tmp_path, tiny_config):
    """Through the harness: 1 VAE epoch, then constraints; cut after the VAE's epoch, resumed to 2."""
    from kgen.sampling import sample_to_file

    sets = ['model.vae=""', "model.vae_epochs=1", "model.vae_latent_dim=3", "model.vae_hidden_units=[16]",
            "model.actor_units=[16]", "model.critic_units=[16]", "model.judge_units=[16]", "data.max_examples=128",
            "train.batch_size=32"]
    full, _, _ = train(tiny_config("latent_constraints", "digits", "train.epochs=2", *sets),
                       run_dir=tmp_path / "full", verbose=0)
    train(tiny_config("latent_constraints", "digits", "train.epochs=2", *sets), run_dir=tmp_path / "cut",
          epochs=1, verbose=0)
    resumed, run_dir, _ = train(None, run_dir=tmp_path / "cut", resume=True, epochs=2, verbose=0)
    assert float(_np(resumed.posterior_variance_stats)[1]) == 4.0  # the constraints' 4 batches, after resuming
    assert [v.path.partition("/")[2] for v in full.weights] == [v.path.partition("/")[2] for v in resumed.weights]
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-6, err_msg=a.path)
    # `kgen sample --checkpoint RUN --label 3`
    out = sample_to_file(checkpoint=run_dir, n=4, seed=0, label=3, out=tmp_path / "s.npz")
    with np.load(out) as f:
        assert f["x"].shape == (4, 8, 8, 1) and list(f["y"]) == [3] * 4


def test_realism_only_without_labels(digits):
    x, _ = digits
    model = _lc(num_classes=None)
    assert not model.conditional and model.attribute_critic is None and model.judge is None
    model.compile()
    history = model.fit(x[:64], batch_size=32, epochs=1, verbose=0).history
    assert "attribute_loss" not in history and np.isfinite(history["g_loss"][-1])
    assert model.sample(3, seed=0).shape == (3, 8, 8, 1)
    assert model.edit(x[:2]).shape == (2, 8, 8, 1)
    with pytest.raises(UsageError, match="no labels|takes no labels"):
        model.edit(x[:2], labels=1)


def test_usage_errors(tmp_path, vae_file):
    with pytest.raises(UsageError, match="does not exist"):
        _lc(vae=str(tmp_path / "missing.keras"))
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="corrupted"):
        _lc(vae=str(broken))
    conditional = kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17, num_classes=10, latent_dim=3,
                                   hidden_units=(16,))
    checkpoint.save_checkpoint(conditional, tmp_path / "cvae.keras")
    with pytest.raises(UsageError, match="conditional"):
        _lc(vae=str(tmp_path / "cvae.keras"))
    other = kgen.build_model("made", input_shape=(8, 8, 1), num_levels=17, hidden_units=(16,))
    checkpoint.save_checkpoint(other, tmp_path / "made.keras")
    with pytest.raises(UsageError, match="not a vae"):
        _lc(vae=str(tmp_path / "made.keras"))
    with pytest.raises(UsageError, match="shape"):
        _lc(vae=str(vae_file[0]), input_shape=(4, 4, 1))
    with pytest.raises(UsageError, match="pass labels"):
        _lc().edit(np.zeros((2, 8, 8, 1), "float32"))
    with pytest.raises(UsageError, match="must exceed"):
        _lc(vae_epochs=3).compile_for_training({"epochs": 2})
