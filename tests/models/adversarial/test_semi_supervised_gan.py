"""Semi-supervised GAN: the contract, the K+1 losses against NumPy, the label mask, a classifier that learns."""

import dataclasses
import types

import keras
import numpy as np
import pytest

import kgen
from adversarial_checks import check_samples, check_save_load_resume, check_training, fit_and_record, values
from kgen.errors import DataError, UsageError
from kgen.models.adversarial import SemiSupervisedGAN
from kgen.models.adversarial import semi_supervised_gan as ssgan


def tiny(**kw):
    kw.setdefault("latent_dim", 4)
    kw.setdefault("num_labeled", 20)
    kw.setdefault("labeled_batch_size", 10)
    kw.setdefault("generator_units", (16,))
    kw.setdefault("discriminator_units", (16, 8))
    return SemiSupervisedGAN((8, 8, 1), **kw)


@pytest.fixture(scope="module")
def digits():
    return kgen.load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits):
    keras.utils.set_random_seed(0)
    model = tiny()
    model.select_labeled(digits.x, digits.y)
    model.compile()
    return model, fit_and_record(model, digits.x[:64], steps=2)


def test_training_step(trained):
    model, record = trained
    check_training(record, steps=2, has_batch_norm=True,
                   extra_metrics=("supervised_loss", "unsupervised_loss", "labeled_error", "d_real", "d_fake"))
    # The class head is the discriminator's: its optimizer trains it.
    assert {id(v) for v in model.class_head.trainable_variables} <= {id(v) for v in model.discriminator_variables()}
    assert 0.0 <= record["history"]["labeled_error"] <= 1.0


def test_save_load_resume(trained, digits, tmp_path):
    model, _ = trained
    loaded = check_save_load_resume(model, digits.x[:64], tmp_path / "ssgan.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.labeled_y.value),
                                  keras.ops.convert_to_numpy(model.labeled_y.value))
    assert loaded.has_labeled
    check_samples(loaded)


def test_classify_and_evaluate_extra(trained, digits):
    model, _ = trained
    test = kgen.load_dataset("digits", split="test")
    predictions = model.classify(test.x)
    assert predictions.shape == (len(test),) and set(predictions) <= set(range(10))
    out = model.evaluate_extra(test, batch_size=64)["classifier"]
    assert out["examples"] == len(test) and out["errors"] == int(np.sum(predictions != test.y))
    assert out["error_rate"] == pytest.approx(out["errors"] / len(test))
    with pytest.raises(DataError, match="no labels"):
        model.evaluate_extra(dataclasses.replace(test, y=None))


def test_k_plus_one_losses_match_numpy():
    """The K logits with a fixed 0 fake logit against an explicit (K+1)-way softmax in NumPy."""
    rng = np.random.default_rng(0)
    k = 4
    lab, real, fake = (rng.normal(0, 2, (6, k)).astype("float32") for _ in range(3))
    y = rng.integers(0, k, 6)

    def softmax_k1(logits):
        full = np.concatenate([logits, np.zeros((len(logits), 1))], axis=1).astype("float64")
        e = np.exp(full - full.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p_lab, p_real, p_fake = softmax_k1(lab), softmax_k1(real), softmax_k1(fake)
    sup = -np.mean(np.log(p_lab[np.arange(6), y] / (1.0 - p_lab[:, k])))  # p(y | x, real)
    unsup = -np.mean(np.log(1.0 - p_real[:, k])) - np.mean(np.log(p_fake[:, k]))  # D(x) = 1 - p(fake | x)
    f = lambda t: float(keras.ops.convert_to_numpy(t))  # noqa: E731
    np.testing.assert_allclose(f(ssgan.supervised_loss(lab, y.astype("int32"))), sup, rtol=1e-5)
    np.testing.assert_allclose(f(ssgan.unsupervised_loss(real, fake)), unsup, rtol=1e-5)
    d = keras.ops.convert_to_numpy(keras.ops.sigmoid(ssgan.real_logit(real)))
    np.testing.assert_allclose(d, 1.0 - p_real[:, k], rtol=1e-5)
    fr, ff = rng.normal(size=(5, 3)), rng.normal(size=(7, 3))
    fm = np.mean((fr.mean(0) - ff.mean(0)) ** 2)
    np.testing.assert_allclose(f(ssgan.feature_matching_loss(fr.astype("float32"), ff.astype("float32"))), fm,
                               rtol=1e-5)


def test_select_labeled_is_fixed_and_balanced(digits):
    idx = ssgan.select_labeled(digits.y, 100, 10, seed=0)
    assert len(idx) == 100 and len(set(idx)) == 100
    np.testing.assert_array_equal(np.bincount(digits.y[idx], minlength=10), [10] * 10)
    np.testing.assert_array_equal(idx, ssgan.select_labeled(digits.y, 100, 10, seed=0))
    assert not np.array_equal(idx, ssgan.select_labeled(digits.y, 100, 10, seed=1))
    np.testing.assert_array_equal(np.bincount(digits.y[ssgan.select_labeled(digits.y, 23, 10)], minlength=10),
                                  [3, 3, 3] + [2] * 7)
    with pytest.raises(DataError, match="class 1 has"):
        ssgan.select_labeled(np.array([0, 0, 0, 1, 1]), 6, 2)


def _train_twin(x, stream_labels, labeled_x, labeled_y):
    keras.utils.set_random_seed(3)
    model = tiny()
    model.set_labeled(labeled_x, labeled_y)
    model.compile()
    model.fit((x, stream_labels), batch_size=16, epochs=1, shuffle=False, verbose=0)
    return values(model.trainable_variables)


def test_unlabeled_labels_do_not_change_training(digits):
    """Only the fixed subset's labels train: scrambling every other label leaves the weights bit-identical."""
    x, y = digits.x[:48], digits.y[:48]
    model = tiny()
    model.check_data(dataclasses.replace(digits, x=digits.x[:400], y=digits.y[:400]))
    idx = ssgan.select_labeled(digits.y[:400], 20, 10, seed=0)
    lx, ly = digits.x[:400][idx], digits.y[:400][idx]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.labeled_y.value), ly)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.labeled_x.value), lx)
    scrambled = (y + 1 + np.random.default_rng(0).integers(0, 9, len(y))) % 10
    assert np.all(scrambled != y)
    a = _train_twin(x, y, lx, ly)
    b = _train_twin(x, scrambled.astype("int32"), lx, ly)
    for va, vb in zip(a, b):
        np.testing.assert_array_equal(va, vb)
    # Control: the chosen subset's labels do reach training.
    c = _train_twin(x, y, lx, np.roll(ly, 1))
    assert any(not np.allclose(va, vc) for va, vc in zip(a, c))


def test_check_data_chooses_labels_from_the_training_split_only(digits):
    model = tiny(output_activation="tanh")
    model.check_data(kgen.load_dataset("digits", split="test"))
    assert not model.has_labeled
    with pytest.raises(UsageError, match="select_labeled"):
        model.fit(digits.x[:16], verbose=0)
    with pytest.raises(DataError, match="has no labels"):
        model.check_data(dataclasses.replace(digits, name="binarized_mnist", y=None))
    model.check_data(digits)
    idx = ssgan.select_labeled(digits.y, 20, 10, seed=0)
    # A tanh generator trains on [-1, 1] data: the stored examples are scaled like the pipeline's.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.labeled_x.value), digits.x[idx] * 2 - 1, atol=1e-6)


def test_classifier_error_falls_below_chance_on_separable_blobs():
    """Three separated 2-D blobs, 2 labels per class: after 40 steps the error is far below chance (2/3)."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 4.0], [3.5, -2.0], [-3.5, -2.0]], "float32")
    y = rng.integers(0, 3, 940).astype("int32")
    x = (centers[y] + 0.5 * rng.standard_normal((940, 2))).astype("float32")
    x_train, y_train, x_test, y_test = x[:640], y[:640], x[640:], y[640:]
    keras.utils.set_random_seed(0)
    model = SemiSupervisedGAN((2,), latent_dim=2, num_label_classes=3, num_labeled=6, labeled_batch_size=6,
                              generator_units=(32,), discriminator_units=(32, 16), input_noise=0.1, hidden_noise=0.1)
    model.select_labeled(x_train, y_train)
    before = model.evaluate_extra(types.SimpleNamespace(x=x_test, y=y_test))
    model.compile(optimizer=keras.optimizers.Adam(3e-3, beta_1=0.5))
    model.fit(x_train, batch_size=64, epochs=4, verbose=0)  # 40 steps
    after = model.evaluate_extra(types.SimpleNamespace(x=x_test, y=y_test))["classifier"]
    assert after["error_rate"] < 0.15, (before, after)


def test_usage_errors():
    with pytest.raises(UsageError, match="num_label_classes"):
        tiny(num_classes=10)
    with pytest.raises(UsageError, match="num_labeled"):
        tiny(num_labeled=5)
    model = tiny()
    with pytest.raises(UsageError, match="expects 20 examples"):
        model.set_labeled(np.zeros((3, 8, 8, 1)), np.zeros(3, "int32"))
    with pytest.raises(DataError, match="0..9"):
        model.select_labeled(np.zeros((30, 8, 8, 1)), np.full(30, 12))


# === The paper's options: weight norm, ReLU/softplus, uniform z, moving average, labels from the test split ===

PAPER = dict(weight_norm=True, discriminator_activation="relu", generator_activation="softplus",
             latent_distribution="uniform", ema_decay=0.9)


def test_weight_norm_dense_equals_the_formula():
    """y = x (g v / ||v||) + b with the norm over the input axis; data_init standardises the pre-activations."""
    rng = np.random.default_rng(0)
    layer = ssgan.WeightNormDense(3, activation="relu", trainable_scale=False)
    layer.build((None, 5))
    v = rng.normal(size=(5, 3)).astype("float32")
    g = np.array([0.5, 2.0, -1.0], "float32")
    b = np.array([0.1, -0.2, 0.3], "float32")
    layer.kernel.assign(v)
    layer.scale.assign(g)
    layer.bias.assign(b)
    x = rng.normal(size=(7, 5)).astype("float32")
    w = v * g / np.sqrt(np.sum(v ** 2, axis=0))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), np.maximum(x @ w + b, 0.0), rtol=1e-5, atol=1e-6)
    assert [v.name for v in layer.trainable_weights] == ["kernel", "bias"]  # g fixed (trainable_scale=False)
    # Data-dependent init: the batch's pre-activations get mean 0 and std 1; the direction v is kept.
    out = layer.data_init(x)
    pre = keras.ops.convert_to_numpy(layer.preactivation(x))
    np.testing.assert_allclose(pre, out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pre.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(pre.std(0), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel.value), v)
    # Round trip through the config.
    clone = ssgan.WeightNormDense.from_config(layer.get_config())
    assert clone.units == 3 and not clone.trainable_scale


def test_ema_update_equals_the_formula():
    """a_t = d_t a_{t-1} + (1 - d_t) p_t with d_t = min(decay, (1 + t) / (10 + t)), for D's trained weights."""
    model = tiny(**PAPER)
    pairs = model.ema_pairs()
    trained = [(s, d) for s, d in pairs if s.trainable]
    fixed = [(s, d) for s, d in pairs if not s.trainable]
    assert len(trained) == len(model.discriminator_variables()) and fixed  # the hidden layers' g are fixed
    rng = np.random.default_rng(1)
    for s, d in pairs:
        s.assign(rng.normal(size=s.shape).astype("float32"))
        d.assign(rng.normal(size=d.shape).astype("float32"))
    for step in (1, 200):
        before = [(values([s])[0], values([d])[0]) for s, d in pairs]
        model.update_ema(step)
        decay = min(0.9, (1 + step) / (10 + step))
        for (s, d), (p, a) in zip(pairs, before):
            expected = decay * a + (1 - decay) * p if s.trainable else a
            np.testing.assert_allclose(values([d])[0], expected, rtol=1e-5, atol=1e-6)
    model.reset_ema()
    for s, d in pairs:
        np.testing.assert_array_equal(values([s])[0], values([d])[0])


def test_paper_options_train_and_average_in_the_step(digits):
    """Every step (compiled, on each backend) updates the average by the formula; the uniform z lies in [0, 1)."""
    keras.utils.set_random_seed(0)
    model = tiny(**PAPER)
    model.select_labeled(digits.x, digits.y)
    model.compile()
    record = fit_and_record(model, digits.x[:32], steps=2)
    check_training(record, steps=2, has_batch_norm=True)
    assert int(keras.ops.convert_to_numpy(model.data_initialized.value)) == 1
    # One more step by itself: a_3 = d_3 a_2 + (1 - d_3) p_3.
    ema_before = values([d for s, d in model.ema_pairs() if s.trainable])
    model.fit(digits.x[32:48], batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations.value)) == 3
    decay = min(0.9, 4 / 13)
    for (s, d), a in zip([p for p in model.ema_pairs() if p[0].trainable], ema_before):
        np.testing.assert_allclose(values([d])[0], decay * a + (1 - decay) * values([s])[0], rtol=1e-5, atol=1e-6)
    # classify reads the average by default; ema=False the trained D.
    x = digits.x[:50]
    np.testing.assert_array_equal(model.classify(x), model.classify(x, ema=True))
    assert model.evaluate_extra(digits)["classifier"]["moving_average"] is True
    z = keras.ops.convert_to_numpy(model.draw_latent(256))
    assert z.min() >= 0.0 and z.max() < 1.0 and z.mean() == pytest.approx(0.5, abs=0.05)
    assert model.noise_spec(3) == [("uniform", (3, 4))]
    # The paper's generator: BatchNorm without scale, softplus, weight-normalised output layer.
    kinds = [type(layer).__name__ for layer in model.generator.layers]
    assert kinds == ["Dense", "BatchNormalization", "Activation", "WeightNormDense", "Reshape"]
    assert not model.generator.layers[1].scale
    assert isinstance(model.class_head.layers[-1], ssgan.WeightNormDense)
    with pytest.raises(UsageError, match="ema=False"):
        tiny().classify(x, ema=True)


def test_data_init_standardises_every_layer_of_d(digits):
    """Without noise, after initialize_from_data each weight-normalised layer's pre-activations on the labelled
    subset have mean 0 and std 1 (and the average equals D)."""
    model = tiny(input_noise=0.0, hidden_noise=0.0, **PAPER)
    model.select_labeled(digits.x, digits.y)
    model.initialize_from_data()
    h = keras.ops.convert_to_numpy(model.labeled_x.value).reshape(20, -1)
    checked = 0
    for layer in list(model.discriminator.layers) + list(model.class_head.layers):
        if isinstance(layer, ssgan.WeightNormDense):
            pre = keras.ops.convert_to_numpy(layer.preactivation(h))
            np.testing.assert_allclose(pre.mean(0), 0.0, atol=1e-4)
            np.testing.assert_allclose(pre.std(0), 1.0, rtol=1e-3)
            checked += 1
        h = keras.ops.convert_to_numpy(layer(h))
    assert checked == 3
    for s, d in model.ema_pairs():
        np.testing.assert_array_equal(values([s])[0], values([d])[0])


def test_paper_options_save_load_resume(digits, tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny(**PAPER)
    model.select_labeled(digits.x, digits.y)
    model.compile()
    model.fit(digits.x[:32], batch_size=16, epochs=1, verbose=0)
    loaded = check_save_load_resume(model, digits.x[:64], tmp_path / "paper.keras")  # compares every weight
    assert loaded.ema_decay == 0.9 and loaded.latent_distribution == "uniform"
    assert int(keras.ops.convert_to_numpy(loaded.data_initialized.value)) == 1


def test_resume_with_the_moving_average_equals_an_uninterrupted_run(tiny_config, tmp_path):
    """`kgen train` for 2 epochs equals 1 epoch then --resume to 2: weights, the average, data init, optimizers.

    Also `kgen train`'s path for the labels: the labelled subset is chosen from the training split and
    saved with the run."""
    from kgen.training import trainer

    sets = ("model.num_labeled=10", "model.labeled_batch_size=10", "model.generator_units=[8]",
            "model.discriminator_units=[8]", "model.latent_dim=4", "train.grid_size=4", "data.max_examples=64",
            "train.batch_size=32", "model.weight_norm=true", "model.ema_decay=0.9", "model.latent_distribution=uniform",
            "model.discriminator_activation=relu", "model.generator_activation=softplus")
    full, _, _ = trainer.train(tiny_config("semi_supervised_gan", "digits", "train.epochs=2", *sets),
                               run_dir=tmp_path / "full", verbose=0)
    trainer.train(tiny_config("semi_supervised_gan", "digits", "train.epochs=1", *sets), run_dir=tmp_path / "cut",
                  verbose=0)
    resumed, _, _ = trainer.train(None, run_dir=tmp_path / "cut", resume=True, epochs=2, verbose=0)
    a = kgen.load_model(tmp_path / "full" / "last.keras")
    b = kgen.load_model(tmp_path / "cut" / "last.keras")
    def paths(m):  # without the model's own (uniquified) name
        return [v.path.split("/", 1)[1] for v in m.weights]

    assert paths(a) == paths(b)
    assert any("ema_discriminator" in v.path for v in a.weights)
    for x, y in zip(values(a.weights), values(b.weights)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    for x, y in zip(values(a.optimizer.variables), values(b.optimizer.variables)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # Control: the average moved during the second epoch (a resume that lost it would differ).
    first = kgen.load_model(tmp_path / "full" / "last.keras")
    assert int(keras.ops.convert_to_numpy(first.optimizer.iterations.value)) == 4
    train = kgen.load_dataset("digits").subset(64)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.labeled_y.value),
                                  train.y[ssgan.select_labeled(train.y, 10, 10, seed=0)])


def test_labels_from_the_test_split_through_the_harness(tiny_config, tmp_path):
    """labeled_split = "test" (binarized_mnist's case): `kgen train` draws the labelled subset from the test
    split, and evaluate_extra on that split leaves those examples out."""
    from kgen.training import trainer

    config = tiny_config("semi_supervised_gan", "digits", "train.epochs=1", "model.num_labeled=20",
                         "model.labeled_batch_size=10", "model.generator_units=[8]", "model.discriminator_units=[8]",
                         "model.latent_dim=4", "train.grid_size=4", "data.max_examples=32", "train.batch_size=16",
                         "model.labeled_split=test")
    model, run_dir, _ = trainer.train(config, run_dir=tmp_path / "run", verbose=0)
    test = kgen.load_dataset("digits", split="test")
    idx = ssgan.select_labeled(test.y, 20, 10, seed=0)
    loaded = kgen.load_model(run_dir / "last.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.labeled_index.value), idx)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.labeled_y.value), test.y[idx])
    out = loaded.evaluate_extra(test)["classifier"]
    keep = np.setdiff1d(np.arange(len(test)), idx)
    assert out["labelled_left_out"] == 20 and out["examples"] == len(test) - 20
    assert out["errors"] == int(np.sum(loaded.classify(test.x[keep]) != test.y[keep]))
    assert out["errors_per_10000"] == pytest.approx(1e4 * out["errors"] / out["examples"])
    # Another labelled split (the training one) is counted whole.
    assert loaded.evaluate_extra(kgen.load_dataset("digits"))["classifier"]["labelled_left_out"] == 0


def test_paper_option_errors():
    for key in ("discriminator_activation", "generator_activation", "latent_distribution", "labeled_split"):
        with pytest.raises(UsageError, match=key):
            tiny(**{key: "nope"})
    with pytest.raises(UsageError, match="ema_decay"):
        tiny(ema_decay=1.0)
    with pytest.raises(UsageError, match="weight_norm"):
        tiny().initialize_from_data()
