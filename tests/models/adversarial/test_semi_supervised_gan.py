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


def test_recipe_trains_through_the_harness(tiny_config, tmp_path):
    """`kgen train`'s path: the labelled subset is chosen from the training split and saved with the run."""
    from kgen.training import trainer

    config = tiny_config("semi_supervised_gan", "digits", "train.epochs=1", "model.num_labeled=20",
                         "model.labeled_batch_size=10", "model.generator_units=[16]",
                         "model.discriminator_units=[16, 8]", "model.latent_dim=4", "train.grid_size=4")
    model, run_dir, last = trainer.train(config, run_dir=tmp_path / "run", verbose=0)
    assert np.isfinite(last["d_loss"]) and np.isfinite(last["g_loss"])
    train = kgen.load_dataset("digits").subset(256)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kgen.load_model(run_dir / "last.keras").labeled_y.value),
                                  train.y[ssgan.select_labeled(train.y, 20, 10, seed=0)])


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
