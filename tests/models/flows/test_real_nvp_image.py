"""RealNVP, image variant: checkerboard and channel masks, squeeze, factor-out, batch norm,
logit step, class-conditional (4x4x1 images)."""

import numpy as np
import pytest

import kgen
from flow_checks import (
    assert_invertible,
    assert_logdet_matches_autodiff,
    assert_round_trip,
    dequantized_images,
    labels_for,
    needs_tfp,
    train_and_record,
)

pytestmark = needs_tfp


@pytest.fixture(scope="module")
def image():
    """A conditional multiscale RealNVP on 4x4x1 images with batch norm, trained 11 steps."""
    flow = kgen.build_model("real_nvp", input_shape=(4, 4, 1), num_levels=17, num_classes=3, num_scales=2,
                            couplings_per_scale=1, filters=8, num_blocks=1, batch_norm=True)
    x = dequantized_images(32, (4, 4, 1))
    return train_and_record(flow, x, labels_for(flow, 32), steps=10)


# === Image variant ===


def test_image_has_weights_and_one_step_changes_all(image):
    assert len(image["flow"].trainable_weights) > 20
    assert image["unchanged"] == []


def test_image_loss_falls(image):
    assert image["nll1"] < image["nll0"] - 1.0, (image["nll0"], image["nll1"])


def test_image_invertible(image):
    flow = image["flow"]
    z = 0.5 * np.random.default_rng(2).standard_normal((4, 4, 4, 1)).astype("float32")
    assert_invertible(flow, image["x"][:4], image["y"][:4], z=z)


def test_image_logdet_matches_autodiff(image):
    assert_logdet_matches_autodiff(image["flow"], image["x"][:2], image["y"][:2])


def test_image_round_trip(image, tmp_path):
    assert_round_trip(image["flow"], image["x"], image["y"], tmp_path)


def test_image_samples_follow_labels_and_stay_in_range(image):
    flow = image["flow"]
    a = flow.sample(32, seed=0, labels=0)
    b = flow.sample(32, seed=0, labels=2)
    assert a.shape == (32, 4, 4, 1)
    assert not np.allclose(a, b)
    assert np.all(a > -0.06) and np.all(a < 1.06)  # the logit step maps back to [0, 1] (+- alpha)


def test_image_shape_errors():
    with pytest.raises(kgen.KgenError, match="divisible"):
        kgen.build_model("real_nvp", input_shape=(6, 6, 1), num_scales=3)
