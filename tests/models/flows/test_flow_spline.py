"""Neural spline flow: rational-quadratic spline couplings (TFP's RationalQuadraticSpline)."""

import numpy as np
import pytest

import kgen
from flow_checks import (
    assert_invertible,
    assert_logdet_matches_autodiff,
    assert_round_trip,
    grid_integral,
    mean_nll,
    needs_tfp,
    train,
    unchanged_weights,
    weights_snapshot,
)

pytestmark = needs_tfp


@pytest.fixture(scope="module")
def data():
    return kgen.load_dataset("checkerboard").x[:256]


@pytest.fixture(scope="module")
def spline(data):
    flow = kgen.build_model("spline_flow", input_shape=(2,), num_layers=2, num_bins=6, hidden_units=(32,))
    before = weights_snapshot(flow)
    nll0 = mean_nll(flow, data)
    train(flow, data, steps=1, batch_size=64, learning_rate=3e-3)
    unchanged = unchanged_weights(before, flow)
    train(flow, data, steps=30, batch_size=64, learning_rate=3e-3)
    return {"flow": flow, "unchanged": unchanged, "nll0": nll0, "nll1": mean_nll(flow, data)}


def test_has_weights_and_one_step_changes_all(spline):
    assert len(spline["flow"].trainable_weights) == 2 * 4
    assert spline["unchanged"] == []


def test_loss_falls(spline):
    assert spline["nll1"] < spline["nll0"] - 0.1, (spline["nll0"], spline["nll1"])


def test_invertible_inside_and_outside_the_spline_interval(spline, data):
    z = np.array([[0.3, -1.2], [5.0, -6.0], [-4.5, 0.1], [0.0, 0.0]], "float32")  # |z| > bound: identity tails
    assert_invertible(spline["flow"], data[:16], z=z)


def test_logdet_matches_autodiff(spline, data):
    assert_logdet_matches_autodiff(spline["flow"], data[:4])


def test_density_integrates_to_one(spline):
    assert abs(grid_integral(spline["flow"]) - 1.0) < 0.01


def test_round_trip(spline, data, tmp_path):
    assert_round_trip(spline["flow"], data, None, tmp_path)
