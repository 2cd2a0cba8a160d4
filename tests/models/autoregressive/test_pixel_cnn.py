"""PixelCNN: masks A/B and colour order, exact normalization, cached == naive sampler, saving, training."""

import keras
import numpy as np
import pytest

import kgen
from kgen.errors import UsageError
from kgen.layers.masked import causal_kernel_mask

import ar_checks


def build(shape=(3, 3, 1), levels=2, **kwargs):
    kwargs = {"filters": 6, "num_blocks": 2, "output_filters": 12, **kwargs}
    return kgen.build_model("pixel_cnn", input_shape=shape, num_levels=levels, **kwargs)


def test_masks():
    # 7x7 mask A stored cropped to rows i-3..i: the centre row sees only the left.
    mask = causal_kernel_mask((4, 7), 3, 1, 1, 1, "A")[..., 0, 0]
    expected = np.ones((4, 7))
    expected[3, 3:] = 0
    np.testing.assert_array_equal(mask, expected)
    assert causal_kernel_mask((2, 3), 1, 1, 1, 1, "B")[1, 1, 0, 0] == 1
    # RGB centre taps: A lets G see R and B see R, G; B also lets each see itself.
    a = causal_kernel_mask((1, 1), 0, 3, 3, 3, "A")[0, 0]
    b = causal_kernel_mask((1, 1), 0, 3, 3, 3, "B")[0, 0]
    np.testing.assert_array_equal(a, np.triu(np.ones((3, 3)), 1))
    np.testing.assert_array_equal(b, np.triu(np.ones((3, 3))))
    # "above": only the row above (the gated model's vertical -> horizontal link).
    np.testing.assert_array_equal(causal_kernel_mask((2, 1), 0, 2, 2, 1, "above")[:, 0, 0, 0], [1, 0])


@pytest.fixture(scope="module")
def grey():
    """3x3 binary with the paper's 7x7 mask-A first layer."""
    return build((3, 3, 1), 2, first_kernel=7)


@pytest.fixture(scope="module")
def levels():
    return build((2, 2, 1), 3)


@pytest.fixture(scope="module")
def rgb():
    return build((1, 2, 3), 2)


@pytest.mark.parametrize("which", ["grey", "levels", "rgb"])
def test_autoregressive_property(which, request):
    model = request.getfixturevalue(which)
    rank = np.arange(model.num_dims)  # raster order, R -> G -> B inside a pixel
    x = ar_checks.all_images(model.data_shape, model.num_levels)
    x = x[np.random.default_rng(0).choice(len(x), 5, replace=False)]
    ar_checks.assert_autoregressive_by_perturbation(model, x, rank)
    ar_checks.assert_autoregressive_by_gradients(model, rank)


def test_rgb_channel_order_is_caught(rgb):
    rank = np.arange(6).reshape(2, 3)[:, ::-1].ravel()  # B -> G -> R: wrong
    with pytest.raises(AssertionError):
        ar_checks.assert_autoregressive_by_gradients(rgb, rank)


@pytest.mark.parametrize("which", ["grey", "levels", "rgb"])
def test_exact_normalization(which, request):
    """3x3 binary (512 images), 2x2 with 3 levels (81), 1x2 RGB binary (64)."""
    ar_checks.assert_normalized(request.getfixturevalue(which))


@pytest.mark.parametrize("shape,num_levels", [((5, 4, 1), 4), ((3, 3, 3), 3)], ids=["grey", "rgb"])
def test_cached_sampler_equals_naive(shape, num_levels):
    model = build(shape, num_levels, first_kernel=5, num_blocks=3)
    # Random biases too, so that no conditional is uniform.
    for w in model.weights:
        if "bias" in w.path:
            w.assign(np.random.default_rng(1).normal(0, 0.5, w.shape).astype("float32"))
    u = model.draw_noise(16, seed=4)[0]
    naive = keras.ops.convert_to_numpy(model.sample_from_noise(u, sampler="naive"))
    cached = keras.ops.convert_to_numpy(model.sample_from_noise(u, sampler="cached"))
    np.testing.assert_array_equal(cached, naive)
    assert len(np.unique(naive)) > 1
    ar_checks.assert_sampler_consistent(model, n=16)
    hot = keras.ops.convert_to_numpy(model.sample_from_noise(u, sampler="cached", temperature=3.0))
    np.testing.assert_array_equal(
        hot, keras.ops.convert_to_numpy(model.sample_from_noise(u, sampler="naive", temperature=3.0)))


def test_sampling_deterministic_and_valid(levels):
    ar_checks.assert_samples_valid(levels)
    assert not np.array_equal(levels.sample(4, seed=1), levels.sample(4, seed=2))
    np.testing.assert_array_equal(levels.sample(3, seed=1, sampler="naive"), levels.sample(3, seed=1))


def test_sample_frequencies_match_log_prob(levels):
    p = np.exp(levels.log_prob(ar_checks.all_images((2, 2, 1), 3)))
    s = levels.sample(4000, seed=0, batch_size=4000).reshape(4000, -1) * 2
    freq = np.bincount((s @ (3 ** np.arange(3, -1, -1))).astype(int), minlength=81) / 4000
    assert np.abs(freq - p).max() < 0.03


def test_round_trip(tmp_path, grey):
    ar_checks.assert_round_trip(grey, ar_checks.all_images((3, 3, 1), 2)[::100], tmp_path)


def test_training_loss_falls_and_trained_samplers_agree():
    x = ar_checks.digits_levels(128)
    model = kgen.build_model("pixel_cnn", input_shape=(8, 8, 1), num_levels=17, filters=8, num_blocks=1,
                             output_filters=16, first_kernel=5)
    ar_checks.assert_loss_falls(model, x)
    u = model.draw_noise(8, seed=0)[0]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.sample_from_noise(u, sampler="cached")),
                                  keras.ops.convert_to_numpy(model.sample_from_noise(u, sampler="naive")))


def test_export_endpoints_match(levels):
    model = levels
    ar_checks.assert_export_endpoints_match(model, ar_checks.all_images((2, 2, 1), 3)[:5])


def test_bad_arguments():
    with pytest.raises(UsageError):
        build(first_kernel=4)
    with pytest.raises(UsageError):
        build((3, 3, 3), filters=4)  # 2 * filters not divisible by 3 colour groups
    with pytest.raises(UsageError):
        build(sampler="fast")
    with pytest.raises(UsageError):
        kgen.build_model("pixel_cnn", input_shape=(9,), num_levels=2)
    with pytest.raises(UsageError):
        build().sample(2, sampler="fast")
