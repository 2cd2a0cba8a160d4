"""Multiscale parallel PixelCNN: group order, exact normalization, parallel sampling, saving, training."""

import keras
import numpy as np
import pytest

import kgen
from kgen.errors import UsageError
from kgen.models.autoregressive.multiscale_pixel_cnn import group_masks, upsample_zeros

import ar_checks


def build(shape=(4, 4, 1), levels=2, **kwargs):
    kwargs = {"num_stages": 1, "filters": 6 if shape[-1] == 3 else 4, "base_kernel": 3, **kwargs}
    return kgen.build_model("multiscale_pixel_cnn", input_shape=shape, num_levels=levels, **kwargs)


def test_groups_partition_each_resolution():
    masks = group_masks(4, 6)
    known0 = masks[0][0]
    assert known0.sum() == 6  # the (0, 0) pixel of each 2x2 block
    total = known0 + sum(group for _, group in masks)
    np.testing.assert_array_equal(total, np.ones((1, 4, 6, 1)))
    for g, (known, group) in enumerate(masks):
        assert not np.any(known * group)  # a group never sees itself


def test_upsample_zeros():
    x = np.arange(2 * 2 * 3 * 1, dtype="float32").reshape(2, 2, 3, 1) + 1
    up = keras.ops.convert_to_numpy(upsample_zeros(x, 2))
    assert up.shape == (2, 4, 6, 1)
    np.testing.assert_array_equal(up[:, ::2, ::2], x)
    assert up[:, 1::2].sum() == 0 and up[:, :, 1::2].sum() == 0


def test_ranks():
    model = build((4, 4, 1), num_stages=2)
    rank = model.ranks().reshape(4, 4)
    assert rank[0, 0] == 0  # the 1x1 base
    assert rank[0, 2] == 1 and rank[2, 0] == 2 and rank[2, 2] == 3  # stage 1 groups
    assert rank[0, 1] == rank[2, 3] == 4 and rank[1, 0] == 5 and rank[3, 3] == 6  # stage 2 groups


@pytest.mark.parametrize(
    "shape,levels,stages", [((4, 4, 1), 3, 2), ((2, 4, 3), 2, 1)], ids=["grey-2-stages", "rgb"]
)
def test_autoregressive_property(shape, levels, stages):
    model = build(shape, levels, num_stages=stages, base_kernel=3)
    rank = model.ranks()
    x = np.random.default_rng(0).integers(0, levels, (4,) + shape).astype("float32") / (levels - 1)
    ar_checks.assert_autoregressive_by_perturbation(model, x, rank)
    ar_checks.assert_autoregressive_by_gradients(model, rank)
    with pytest.raises(AssertionError):  # the raster order is not the model's order
        ar_checks.assert_autoregressive_by_gradients(model, np.arange(model.num_dims))


@pytest.mark.parametrize(
    "shape,levels,stages",
    [((4, 4, 1), 2, 2), ((4, 4, 1), 2, 1), ((2, 2, 1), 3, 1), ((2, 2, 3), 2, 1)],
    ids=["4x4-binary-2-stages", "4x4-binary-1-stage", "2x2-3-levels", "rgb"],
)
def test_exact_normalization(shape, levels, stages):
    ar_checks.assert_normalized(build(shape, levels, num_stages=stages))


def test_sampling():
    model = build((4, 4, 1), 3, num_stages=2)
    ar_checks.assert_samples_valid(model)
    ar_checks.assert_sampler_consistent(model)
    assert not np.array_equal(model.sample(4, seed=1), model.sample(4, seed=2))
    cold = model.sample(4, seed=1, temperature=0.5)
    assert cold.shape == (4, 4, 4, 1)


def test_round_trip(tmp_path):
    model = build((4, 4, 1), 3, num_stages=2)
    x = np.random.default_rng(0).integers(0, 3, (5, 4, 4, 1)).astype("float32") / 2
    ar_checks.assert_round_trip(model, x, tmp_path)


def test_training_loss_falls():
    model = kgen.build_model("multiscale_pixel_cnn", input_shape=(8, 8, 1), num_levels=17, num_stages=2,
                             filters=8, base_blocks=1, group_blocks=1)
    ar_checks.assert_loss_falls(model, ar_checks.digits_levels(128))


def test_export_endpoints_match():
    model = build((4, 4, 1), 3)
    x = np.random.default_rng(1).integers(0, 3, (5, 4, 4, 1)).astype("float32") / 2
    ar_checks.assert_export_endpoints_match(model, x)


def test_bad_arguments():
    with pytest.raises(UsageError):
        build((6, 6, 1), num_stages=2)  # 6 is not divisible by 4
    with pytest.raises(UsageError):
        build(filters=3)
    with pytest.raises(UsageError):
        build(num_classes=2)
