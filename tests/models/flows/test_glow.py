"""Glow: ActNorm (data-dependent init), LU 1x1 convolutions, affine couplings, multiscale, conditional."""

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
    to_np,
    train_and_record,
)

pytestmark = needs_tfp


@pytest.fixture(scope="module")
def glow():
    """A conditional two-scale Glow on 4x4x1 images, trained 1 + 10 steps."""
    flow = kgen.build_model("glow", input_shape=(4, 4, 1), num_levels=17, num_classes=3, num_scales=2,
                            steps_per_scale=1, filters=8, num_blocks=0)
    x = dequantized_images(32, (4, 4, 1))
    return train_and_record(flow, x, labels_for(flow, 32), steps=10)


def test_has_weights_and_one_step_changes_all(glow):
    assert len(glow["flow"].trainable_weights) > 20
    assert glow["unchanged"] == []


def test_loss_falls(glow):
    assert glow["nll1"] < glow["nll0"] - 1.0, (glow["nll0"], glow["nll1"])


def test_actnorm_was_initialized_from_data(glow):
    norms = [s for s in glow["flow"].steps if type(s).__name__ == "ActNorm"]
    assert len(norms) == 2
    for step in norms:
        assert float(to_np(step.initialized)) == 1.0
        assert not np.allclose(to_np(step.init_log_scale), 0.0)


def test_invertible(glow):
    z = 0.5 * np.random.default_rng(2).standard_normal((4, 4, 4, 1)).astype("float32")
    assert_invertible(glow["flow"], glow["x"][:4], glow["y"][:4], z=z)


def test_logdet_matches_autodiff(glow):
    assert_logdet_matches_autodiff(glow["flow"], glow["x"][:2], glow["y"][:2])


def test_round_trip(glow, tmp_path):
    loaded = assert_round_trip(glow["flow"], glow["x"], glow["y"], tmp_path)
    # the data-dependent initialization is part of the checkpoint: no second init on load
    norms = [s for s in loaded.steps if type(s).__name__ == "ActNorm"]
    assert float(to_np(norms[0].initialized)) == 1.0


def test_temperature_and_labels(glow):
    flow = glow["flow"]
    cold = flow.sample(32, seed=0, labels=1, temperature=0.0)
    assert np.allclose(cold, cold[0])  # temperature 0: every sample is the mode of the base
    a = flow.sample(32, seed=0, labels=0)
    b = flow.sample(32, seed=0, labels=2)
    assert not np.allclose(a, b)


def test_actnorm_initializes_once_from_its_first_batch():
    from kgen.models.flows.steps import ActNorm

    step = ActNorm((2, 2, 3))
    rng = np.random.default_rng(0)
    h = (5.0 + 3.0 * rng.standard_normal((64, 2, 2, 3))).astype("float32")
    z, _ = step.encode(h, training=True)
    z = to_np(z)
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    z2, _ = step.encode(h * 10.0, training=True)  # a second batch does not re-initialize
    assert to_np(z2).std() > 5.0


def test_conv1x1_starts_as_a_rotation_and_matches_its_bijector():
    from kgen.models.flows import substrate
    from kgen.models.flows.steps import InvertibleConv1x1

    step = InvertibleConv1x1((2, 2, 4), seed=3)
    w = to_np(step.weight_matrix())
    np.testing.assert_allclose(w @ w.T, np.eye(4), atol=1e-5)
    z = np.random.default_rng(0).standard_normal((1, 2, 2, 4)).astype("float32")
    np.testing.assert_allclose(to_np(step.decode(z)), z @ w.T, atol=1e-5)
    assert substrate.tfb() is not None


def test_shape_errors():
    with pytest.raises(kgen.KgenError, match="divisible"):
        kgen.build_model("glow", input_shape=(4, 4, 1), num_scales=3)
    with pytest.raises(kgen.KgenError, match="images"):
        kgen.build_model("glow", input_shape=(2,))
