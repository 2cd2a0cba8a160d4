"""NICE: additive couplings (volume-preserving) and the diagonal scaling."""

import numpy as np
import pytest

import kgen
from flow_checks import (
    assert_invertible,
    assert_logdet_matches_autodiff,
    assert_round_trip,
    dequantized_images,
    grid_integral,
    mean_nll,
    needs_tfp,
    to_np,
    train,
    unchanged_weights,
    weights_snapshot,
)

pytestmark = needs_tfp


@pytest.fixture(scope="module")
def moons():
    return kgen.load_dataset("moons").x[:256]


@pytest.fixture(scope="module")
def nice(moons):
    flow = kgen.build_model("nice", input_shape=(2,), num_couplings=4, hidden_units=(32, 32))
    before = weights_snapshot(flow)
    nll0 = mean_nll(flow, moons)
    train(flow, moons, steps=1, batch_size=64, learning_rate=3e-3)
    unchanged = unchanged_weights(before, flow)
    train(flow, moons, steps=40, batch_size=64, learning_rate=3e-3)
    return {"flow": flow, "unchanged": unchanged, "nll0": nll0, "nll1": mean_nll(flow, moons)}


def test_has_weights_and_one_step_changes_all(nice):
    assert len(nice["flow"].trainable_weights) == 4 * 6 + 1
    assert nice["unchanged"] == []


def test_loss_falls(nice):
    assert nice["nll1"] < nice["nll0"] - 0.2, (nice["nll0"], nice["nll1"])


def test_invertible(nice, moons):
    z = np.random.default_rng(1).standard_normal((16, 2)).astype("float32")
    assert_invertible(nice["flow"], moons[:16], z=z)


def test_logdet_matches_autodiff(nice, moons):
    assert_logdet_matches_autodiff(nice["flow"], moons[:4])


def test_only_the_scaling_changes_volume(nice, moons):
    """Additive couplings have unit Jacobian: the log-det is sum(s) for every x."""
    flow = nice["flow"]
    _, logdet = flow.encode(moons[:8])
    scale = [s for s in flow.steps if type(s).__name__ == "DiagonalScale"][0]
    # encoding divides by exp(s): log|det dz/dx| = -sum(s)
    np.testing.assert_allclose(to_np(logdet), -np.sum(to_np(scale.log_scale)), rtol=1e-5, atol=1e-6)
    assert abs(float(np.sum(to_np(scale.log_scale)))) > 1e-3


def test_density_integrates_to_one(nice):
    assert abs(grid_integral(nice["flow"]) - 1.0) < 0.01


def test_round_trip(nice, moons, tmp_path):
    assert_round_trip(nice["flow"], moons, None, tmp_path)


def test_images_are_flattened():
    flow = kgen.build_model("nice", input_shape=(4, 4, 1), num_levels=17, num_couplings=2, hidden_units=(16,))
    x = dequantized_images(4, (4, 4, 1))
    assert_invertible(flow, x)
    assert flow.sample(3, seed=0).shape == (3, 4, 4, 1)


def test_rejects_labels_and_one_dimension():
    with pytest.raises(kgen.KgenError, match="unconditional"):
        kgen.build_model("nice", input_shape=(2,), num_classes=3)
    with pytest.raises(kgen.KgenError, match="at least 2"):
        kgen.build_model("nice", input_shape=(1,))
