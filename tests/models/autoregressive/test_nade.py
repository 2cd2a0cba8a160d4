"""NADE: tied-weight recursion, exact normalization, sampling, saving, training."""

import keras
import numpy as np
import pytest

import kgen
from kgen.errors import UsageError

import ar_checks


def build(shape=(3, 3, 1), levels=2, hidden=8, **kwargs):
    return kgen.build_model("nade", input_shape=shape, num_levels=levels, hidden_units=hidden, **kwargs)


def test_weights_are_tied_and_linear_in_dh():
    model = build(shape=(4, 5, 1), levels=3, hidden=7)
    shapes = sorted(tuple(w.shape) for w in model.trainable_weights)
    # W (D, H), c (H,), V (D, H, L), b (D, L): no D x D term anywhere.
    assert shapes == sorted([(20, 7), (7,), (20, 7, 3), (20, 3)])


def test_autoregressive_property():
    # D = 20 > the prefix-sum block (16): two blocks, the second padded.
    model = build(shape=(4, 5, 1), levels=3)
    rank = np.arange(20)
    x = np.random.default_rng(0).integers(0, 3, (4, 4, 5, 1)).astype("float32") / 2
    ar_checks.assert_autoregressive_by_perturbation(model, x, rank)
    ar_checks.assert_autoregressive_by_gradients(model, rank)
    with pytest.raises(AssertionError):
        ar_checks.assert_autoregressive_by_gradients(model, rank[::-1])


@pytest.mark.parametrize("shape", [(2, 2, 1), (5, 7, 1)], ids=["one-block", "three-blocks"])
def test_matches_the_explicit_formula(shape):
    model = build(shape=shape, levels=2, hidden=5)
    w, c, v, b = (keras.ops.convert_to_numpy(t) for t in (model.w, model.c, model.v, model.b))
    d_all = int(np.prod(shape))
    xs = np.random.default_rng(0).integers(0, 2, (3, d_all)).astype("float32")
    for x, got in zip(xs, model.log_prob(xs.reshape((3,) + shape))):
        expected = 0.0
        for d in range(d_all):
            h = 1.0 / (1.0 + np.exp(-(c + x[:d] @ w[:d])))
            logit = b[d, 0] + h @ v[d, :, 0]
            p1 = 1.0 / (1.0 + np.exp(-logit))
            expected += np.log(p1 if x[d] else 1.0 - p1)
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_exact_normalization_binary_3x3():
    ar_checks.assert_normalized(build())


def test_exact_normalization_multilevel():
    ar_checks.assert_normalized(build(shape=(2, 2, 1), levels=3))


def test_sampler_recursion_matches_the_conditionals():
    # The O(DH) running sum of the sampler and the blocked prefix sum of call() agree.
    ar_checks.assert_sampler_consistent(build(shape=(5, 7, 1), levels=3, hidden=6))


def test_sampling_deterministic_valid_and_consistent():
    model = build(shape=(2, 2, 1), levels=2, hidden=6)
    ar_checks.assert_samples_valid(model)
    assert not np.array_equal(model.sample(8, seed=1), model.sample(8, seed=2))
    # Frequencies of 4000 samples match exp(log_prob) of the 16 images.
    p = np.exp(model.log_prob(ar_checks.all_images((2, 2, 1), 2)))
    s = model.sample(4000, seed=0, batch_size=4000).reshape(4000, -1)
    freq = np.bincount((s @ (2 ** np.arange(3, -1, -1))).astype(int), minlength=16) / 4000
    assert np.abs(freq - p).max() < 0.04


def test_temperature_sharpens():
    model = build(shape=(2, 2, 1), levels=3)
    hot = model.sample(200, seed=0, temperature=1.0)
    cold = model.sample(200, seed=0, temperature=0.01)
    # At a tiny temperature every sample is the greedy (most likely) path: few distinct images.
    assert len(np.unique(cold.reshape(200, -1), axis=0)) < len(np.unique(hot.reshape(200, -1), axis=0))


def test_round_trip(tmp_path):
    model = build(shape=(3, 3, 1), levels=3)
    ar_checks.assert_round_trip(model, ar_checks.all_images((3, 3, 1), 3)[::700], tmp_path)


def test_training_loss_falls():
    x = ar_checks.digits_levels(128)
    model = kgen.build_model("nade", input_shape=(8, 8, 1), num_levels=17, hidden_units=32)
    ar_checks.assert_loss_falls(model, x)


def test_export_endpoints_match():
    model = build(shape=(2, 2, 1), levels=3)
    ar_checks.assert_export_endpoints_match(model, ar_checks.all_images((2, 2, 1), 3)[:5])


def test_bad_arguments():
    with pytest.raises(UsageError):
        build(hidden=0)
    with pytest.raises(UsageError):
        build(num_classes=3)
    model = build()
    with pytest.raises(kgen.KgenError):
        model.log_prob(np.full((1, 3, 3, 1), 2.0, "float32"))
    with pytest.raises(kgen.KgenError):
        model.log_prob(np.zeros((1, 4, 4, 1), "float32"))
