"""The adversarial autoencoder: the reduction to an autoencoder, the priors, the labelled mixture, clustering."""

import types

import keras
import numpy as np
import pytest

import kgen
from kgen.backend import adversarial
from kgen.errors import UsageError
from kgen.models.latent.aae import clustering_error, mixture_means


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), "float64")


def _blobs(n=512, classes=4, dims=6, seed=0):
    """Points of `classes` well-separated clusters: class c at 3 e_c plus N(0, 0.3^2) noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = 3.0 * np.eye(dims, dtype="float32")[y] + 0.3 * rng.standard_normal((n, dims)).astype("float32")
    return x.astype("float32"), y.astype("int32")


def _aae(**kw):
    hparams = dict(input_shape=(6,), latent_dim=2, encoder_units=(32,), decoder_units=(32,),
                   discriminator_units=(32,))
    return kgen.build_model("aae", **{**hparams, **kw})


def _weights(layer):
    return [_np(w).copy() for w in layer.weights]


@pytest.mark.parametrize("prior", ["gaussian", "categorical"])
def test_without_the_adversary_a_step_is_an_autoencoder_step(prior):
    """adversary_weight = 0: the encoder and decoder move exactly as one Adam step on the reconstruction loss."""
    x, _ = _blobs(64)
    model = _aae(prior=prior, num_clusters=3, adversary_weight=0.0)
    reference = _aae(prior=prior, num_clusters=3, adversary_weight=0.0)
    reference.set_weights(model.get_weights())
    adversarial_model = _aae(prior=prior, num_clusters=3, adversary_weight=1.0)
    adversarial_model.set_weights(model.get_weights())
    for m in (model, adversarial_model):
        m.compile(discriminator_optimizer=keras.optimizers.Adam(1e-2), generator_optimizer=keras.optimizers.Adam(1e-2))
    d_before = _weights(model.discriminator)
    history = model.fit(x, batch_size=64, epochs=1, shuffle=False, verbose=0).history
    adversarial_model.fit(x, batch_size=64, epochs=1, shuffle=False, verbose=0)

    # The autoencoder's step by hand: the reconstruction loss, its gradient, one Adam update.
    ae_vars = reference.generator_variables()
    loss, grads = adversarial.value_and_grad(lambda: reference.reconstruction_loss(x), ae_vars)
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(ae_vars)
    optimizer.apply(grads, ae_vars)
    np.testing.assert_allclose(history["recon"][0], _np(loss), rtol=1e-5)
    for a, b, c in zip(model.generator_variables(), ae_vars, adversarial_model.generator_variables()):
        np.testing.assert_allclose(_np(a), _np(b), atol=1e-6)
    # the adversary's weight is what makes the difference (the comparison can fail) ...
    assert max(np.abs(_np(a) - _np(c)).max() for a, c in
               zip(model.encoder.weights, adversarial_model.encoder.weights)) > 1e-4
    # ... while the discriminator trains either way
    assert max(np.abs(_np(w) - b).max() for w, b in zip(model.discriminator.weights, d_before)) > 1e-4


def test_both_optimizers_step_on_every_backend():
    x, _ = _blobs(64)
    model = _aae(prior="mixture")
    model.compile()
    model.fit(x, batch_size=32, epochs=1, verbose=0)  # 2 steps
    opt = model.optimizer
    assert int(_np(opt.iterations)) == 2
    assert int(_np(opt.discriminator_optimizer.iterations)) == 2
    assert int(_np(opt.generator_optimizer.iterations)) == 4  # reconstruction, then the encoder's adversarial update


def test_prior_draws_follow_each_prior():
    model = _aae(prior="mixture", num_modes=5, mode_radius=4.0, mode_std=0.1, latent_dim=3)
    eps = np.random.default_rng(0).standard_normal((5000, 3)).astype("float32")
    u = np.random.default_rng(1).uniform(size=5000).astype("float32")
    z = _np(model.prior_from_noise(eps, u))
    means = mixture_means(5, 3, 4.0)
    nearest = np.argmin(((z[:, None] - means[None]) ** 2).sum(-1), 1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=5) / 5000, 0.2, atol=0.03)
    np.testing.assert_allclose(np.linalg.norm(means[:, :2], axis=1), 4.0, rtol=1e-6)
    assert (z - means[nearest]).std() == pytest.approx(0.1, rel=0.05)
    cat = _aae(prior="categorical", num_clusters=4, latent_dim=2)
    u4 = np.random.default_rng(2).uniform(size=(4000, 4)).astype("float32")
    code = _np(cat.prior_from_noise(eps[:4000, :2], u4))
    assert code.shape == (4000, 6) and np.all(code[:, :4].sum(1) == 1)
    np.testing.assert_allclose(code[:, :4].mean(0), 0.25, atol=0.03)
    np.testing.assert_array_equal(code[:, 4:], eps[:4000, :2])


def test_labelled_mixture_puts_each_class_in_its_mode():
    """Labels fed to the discriminator (Makhzani et al. Sec. 2.3): the codes of class c land in mode c,
    and a draw from mode c decodes to a point of class c."""
    keras.utils.set_random_seed(0)
    x, y = _blobs(1024)
    model = _aae(prior="mixture", num_classes=4, mode_radius=2.0, mode_std=0.3, encoder_units=(64,),
                 decoder_units=(64,), discriminator_units=(64,), adversary_weight=5.0)
    model.compile(discriminator_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                  generator_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    model.fit((x, y), batch_size=64, epochs=16, verbose=0)  # 1.0 of the codes in their mode for seeds 0-5
    z = model.encode(x)
    nearest = np.argmin(((z[:, None] - model.means[None]) ** 2).sum(-1), 1)
    assert np.mean(nearest == y) > 0.9, np.bincount(nearest * 4 + y, minlength=16).reshape(4, 4)
    samples = model.sample(400, seed=0, labels=np.arange(400) % 4)
    assert np.mean(np.argmax(samples[:, :4], axis=1) == np.arange(400) % 4) > 0.9
    np.testing.assert_allclose(model.latent_codes(x[:8]), z[:8], rtol=1e-5, atol=1e-6)  # the probe's codes
    clustering = model.evaluate_extra(types.SimpleNamespace(x=x, y=y))["clustering"]
    assert clustering["error_rate"] < 0.1 and clustering["clusters_used"] == 4


def test_clustering_error_assigns_majority_labels():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    clusters = np.array([5, 5, 7, 7, 7, 1, 1, 1, 5])
    out = clustering_error(labels, clusters)
    # cluster 5: {0, 0, 2} -> 0, 1 error; 7: {0, 1, 1} -> 1, 1 error; 1: {2, 2, 2} -> 0 errors
    assert out == {"errors": 2, "examples": 9, "error_rate": 2 / 9, "clusters_used": 3}
    assert clustering_error(labels, labels)["errors"] == 0


def test_semi_supervised_categorical_classifies_from_a_few_labels():
    keras.utils.set_random_seed(1)
    x, y = _blobs(512)
    model = _aae(prior="categorical", num_clusters=4, num_labeled=8, labeled_batch_size=8)
    with pytest.raises(UsageError, match="labelled examples first"):
        model.fit(x, epochs=1, verbose=0)
    model.select_labeled(x, y)
    assert sorted(_np(model.labeled_y).astype(int).tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    model.compile(discriminator_optimizer=keras.optimizers.Adam(1e-3), generator_optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit(x, batch_size=64, epochs=6, verbose=0).history
    assert history["supervised"][-1] < history["supervised"][0]
    assert np.mean(model.cluster(x) == y) > 0.9  # the cluster head is the classifier


def test_bad_arguments():
    with pytest.raises(UsageError, match="prior"):
        _aae(prior="uniform")
    with pytest.raises(UsageError, match="only the mixture prior takes labels"):
        _aae(num_classes=3)
    with pytest.raises(UsageError, match="categorical prior"):
        _aae(num_labeled=10)
    with pytest.raises(UsageError, match="latent_dim >= 2"):
        _aae(prior="mixture", latent_dim=1)
    with pytest.raises(UsageError, match="no clusters"):
        _aae().cluster(np.zeros((2, 6), "float32"))
