"""PPGN: the sampler's step against its formula, the DAE's score on a Gaussian, class-conditional samples."""

import dataclasses

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen.errors import DataError, UsageError
from kgen.models.energy import ppgn as ppgn_module
from kgen.training.trainer import train


def build(shape=(6,), classes=3, **kwargs):
    kwargs.setdefault("hidden_units", (5,))
    kwargs.setdefault("classifier_units", (4,))
    return kgen.build_model("ppgn", input_shape=shape, num_classes=classes, **kwargs)


def to_np(t):
    return keras.ops.convert_to_numpy(keras.ops.stop_gradient(t)).astype("float64")


def randomize(model, seed=1, scale=0.8):
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        w.assign(rng.normal(0, scale, w.shape).astype("float32"))


def numpy_parts(model):
    """R(x) and d log p(y | x) / dx in NumPy for one tanh hidden layer in the DAE and in the classifier."""
    w1, b1 = (to_np(t) for t in model.encoder[0].weights)
    w2, b2 = (to_np(t) for t in model.decoder_out.weights)
    v1, c1 = (to_np(t) for t in model.classifier_layers[0].weights)
    v2, c2 = (to_np(t) for t in model.classifier_out.weights)

    def recon(x):
        return 1 / (1 + np.exp(-(np.tanh(x @ w1 + b1) @ w2 + b2)))

    def grad_log_p_y(x, labels):
        h = np.tanh(x @ v1 + c1)
        logits = h @ v2 + c2
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        dlogits = np.eye(v2.shape[1])[labels] - p
        return ((dlogits @ v2.T) * (1 - h ** 2)) @ v1.T

    return recon, grad_log_p_y


def test_one_step_is_the_papers_update_on_fixed_noise():
    model = build(activation="tanh", eps1=0.3, eps2=0.7, eps3=0.2, clip=False)
    randomize(model)
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(16, 6)).astype("float32")
    z = rng.standard_normal((16, 6)).astype("float32")
    labels = rng.integers(0, 3, 16).astype("int32")
    recon, grad = numpy_parts(model)
    want = x + 0.3 * (recon(x) - x) + 0.7 * grad(x, labels) + 0.2 * z
    np.testing.assert_allclose(to_np(model.step(x, z, labels)), want, rtol=1e-4, atol=1e-5)
    # The condition term is not negligible here: the test tells it apart.
    assert np.abs(0.7 * grad(x, labels)).max() > 0.05
    # Each eps term is an option of the step; the state is clipped to [0, 1] with `clip`.
    np.testing.assert_allclose(to_np(model.step(x, z, labels, eps1=0.0, eps2=1.0, eps3=0.0)),
                               x + grad(x, labels), rtol=1e-4, atol=1e-5)
    clipped = build(activation="tanh", eps1=0.3, eps2=0.7, eps3=0.2, clip=True)
    clipped.set_weights(model.get_weights())
    got = to_np(clipped.step(x, z, labels))
    np.testing.assert_allclose(got, np.clip(want, 0, 1), rtol=1e-4, atol=1e-5)
    assert got.min() == 0.0 or got.max() == 1.0


def test_without_condition_and_noise_the_chain_follows_only_the_prior():
    model = build(activation="tanh", eps1=0.4, eps2=0.0, eps3=0.0, sample_steps=7)
    randomize(model)
    recon, _ = numpy_parts(model)
    x0, z = model.draw_noise(10, seed=3)
    want = x0.astype("float64")
    for _ in range(7):
        want = np.clip(want + 0.4 * (recon(want) - want), 0, 1)
    for labels in (np.zeros(10, "int32"), np.full(10, 2, "int32")):
        got = to_np(model.sample_from_noise(x0, z, labels=labels))
        np.testing.assert_allclose(got, recon(want), rtol=1e-4, atol=1e-5)  # final_denoise: R of the last state
    model.final_denoise = False
    model._kgen_fns.clear()
    np.testing.assert_allclose(to_np(model.sample_from_noise(x0, z, labels=np.zeros(10, "int32"))), want,
                               rtol=1e-4, atol=1e-5)
    # With the condition on, the label moves the chain.
    model.eps2 = 0.5
    model._kgen_fns.clear()
    a = to_np(model.sample_from_noise(x0, z, labels=np.zeros(10, "int32")))
    b = to_np(model.sample_from_noise(x0, z, labels=np.full(10, 2, "int32")))
    assert np.abs(a - b).max() > 0.01


def test_the_dae_learns_the_score_of_a_gaussian():
    """For x ~ N(mu, S) and corruption N(0, s^2 I) the optimal DAE has R(x) - x = s^2 grad log N(x; mu, S + s^2 I)
    = -s^2 (S + s^2 I)^-1 (x - mu): a linear map, fitted here by least squares on the trained DAE."""
    mu, s = np.array([0.5, 0.45]), 0.1
    cov = np.array([[0.02, 0.008], [0.008, 0.01]])
    want = -s ** 2 * np.linalg.inv(cov + s ** 2 * np.eye(2))  # [[-0.37, 0.15], [0.15, -0.56]]
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal(mu, cov, size=8192).astype("float32")
    labels = (x[:, 0] > mu[0]).astype("int32")
    model = kgen.build_model("ppgn", input_shape=(2,), num_classes=2, hidden_units=(64,), classifier_units=(8,),
                             dae_noise=s, classifier_weight=0.1, activation="tanh")
    probe = rng.multivariate_normal(mu, cov + s ** 2 * np.eye(2), size=2000).astype("float32")

    def fitted():
        residual = model.reconstruct(probe).astype("float64") - probe
        a, *_ = np.linalg.lstsq(probe - mu, residual - residual.mean(0), rcond=None)
        return a.T

    before = fitted()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit((x, labels), batch_size=128, epochs=12, verbose=0)
    after = fitted()
    assert np.abs(before - want).max() > 0.2, before  # the untrained DAE is far from the answer
    # Measured: largest entry error 0.008 (TensorFlow), 0.013 (JAX), 0.015 (PyTorch); untrained 0.6-0.7.
    np.testing.assert_allclose(after, want, atol=0.04)


@pytest.fixture(scope="module")
def digits_model():
    data = kgen.load_dataset("digits")
    model = kgen.build_model("ppgn", input_shape=data.shape, num_levels=17, num_classes=10, hidden_units=(128, 32),
                             classifier_units=(64,), sample_steps=100)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit((data.x, data.y), batch_size=64, epochs=15, verbose=0)
    return model


def test_class_conditional_samples_carry_their_labels(digits_model):
    model = digits_model
    labels = np.arange(100) % 10
    samples = model.sample(100, seed=0, labels=labels)
    assert samples.shape == (100, 8, 8, 1) and samples.min() >= 0 and samples.max() <= 1
    accuracy = np.mean(model.classify(samples).argmax(-1) == labels)
    # Without the condition term the labels cannot matter: the classes come out at chance.
    model.eps2 = 0.0
    model._kgen_fns.clear()
    try:
        unconditioned = np.mean(model.classify(model.sample(100, seed=0, labels=labels)).argmax(-1) == labels)
    finally:
        model.eps2 = 0.1
        model._kgen_fns.clear()
    # Measured on every backend: 1.00 with the condition, 0.08 without.
    assert accuracy > 0.6 and unconditioned < 0.3, (accuracy, unconditioned)


def test_sampling_repeats_with_a_seed_in_blocks_of_steps(digits_model, monkeypatch):
    model = digits_model
    monkeypatch.setattr(ppgn_module, "SAMPLE_BLOCK", 40)  # 100 steps: blocks of 40, 40, 20
    first = model.sample(7, seed=5, labels=3, batch_size=4)
    np.testing.assert_array_equal(first, model.sample(7, seed=5, labels=3, batch_size=4))
    assert not np.allclose(first, model.sample(7, seed=6, labels=3, batch_size=4))
    # The first batch's chains: the child seed's uniform start, then each block's normals.
    rng = np.random.default_rng(np.random.SeedSequence(5).spawn(2)[0])
    x0 = rng.uniform(size=(4, 8, 8, 1)).astype("float32")
    z = np.concatenate([rng.standard_normal((4, k, 64)).astype("float32") for k in (40, 40, 20)], axis=1)
    want = to_np(model.sample_from_noise(x0, z, labels=np.full(4, 3, "int32")))
    np.testing.assert_allclose(first[:4], want, rtol=1e-4, atol=1e-5)
    # temperature 0 silences the noise term: eps3 = 0.
    cold = model.sample(4, seed=5, labels=3, temperature=0.0)
    model.eps3 = 0.0
    model._kgen_fns.clear()
    try:
        np.testing.assert_allclose(cold, model.sample(4, seed=5, labels=3), rtol=1e-5, atol=1e-6)
    finally:
        model.eps3 = 0.1
        model._kgen_fns.clear()
    # Labels default to cycling through the classes.
    np.testing.assert_array_equal(model.sample(3, seed=1), model.sample(3, seed=1, labels=[0, 1, 2]))


def test_save_load_round_trip(tmp_path):
    data = kgen.load_dataset("digits").subset(64)
    model = kgen.build_model("ppgn", input_shape=data.shape, num_levels=17, num_classes=10, hidden_units=(16, 8),
                             classifier_units=(8,), eps1=0.2, eps2=0.3, eps3=0.05, sample_steps=6,
                             final_denoise=False)
    model.compile(optimizer="adam")
    model.fit((data.x, data.y), batch_size=32, epochs=1, verbose=0)
    checkpoint.save_checkpoint(model, tmp_path / "ppgn.keras")
    for loaded in (checkpoint.load_model(tmp_path / "ppgn.keras"), keras.saving.load_model(tmp_path / "ppgn.keras")):
        assert loaded.hidden_units == (16, 8) and (loaded.eps1, loaded.eps2, loaded.eps3) == (0.2, 0.3, 0.05)
        assert loaded.sample_steps == 6 and not loaded.final_denoise
        np.testing.assert_allclose(loaded.sample(4, seed=1, labels=7), model.sample(4, seed=1, labels=7),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(loaded.classify(data.x[:8]), model.classify(data.x[:8]), rtol=1e-5, atol=1e-6)


def test_a_resumed_run_matches_an_uninterrupted_one(tmp_path, tiny_config):
    sets = ["model.hidden_units=[16]", "model.classifier_units=[8]", "model.sample_steps=3",
            "data.max_examples=128"]
    full, _, _ = train(tiny_config("ppgn", "digits", "train.epochs=2", *sets), run_dir=tmp_path / "full", verbose=0)
    train(tiny_config("ppgn", "digits", "train.epochs=1", *sets), run_dir=tmp_path / "cut", verbose=0)
    resumed, _, _ = train(None, run_dir=tmp_path / "cut", resume=True, epochs=2, verbose=0)
    assert len(full.weights) == len(resumed.weights)
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_bad_arguments_and_data():
    with pytest.raises(UsageError, match="num_classes"):
        kgen.build_model("ppgn", input_shape=(4,))
    with pytest.raises(UsageError, match="eps2"):
        build(eps2=-0.1)
    with pytest.raises(UsageError, match="dae_noise"):
        build(dae_noise=0.0)
    with pytest.raises(UsageError, match="sample_steps"):
        build(sample_steps=0)
    model = build(sample_steps=2)
    x0, z = model.draw_noise(2, seed=0)
    with pytest.raises(UsageError, match="labels"):
        model.sample_from_noise(x0, z)
    with pytest.raises(UsageError, match="labels"):
        model.sample(2, labels=5)
    digits = kgen.load_dataset("digits")
    symmetric = dataclasses.replace(digits, x=digits.x * 2 - 1)
    with pytest.raises(DataError, match="data.scale"):
        kgen.build_model("ppgn", input_shape=digits.shape, num_classes=10, hidden_units=(8,)).check_data(symmetric)
