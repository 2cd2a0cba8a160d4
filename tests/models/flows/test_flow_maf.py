"""MAF: masked autoregressive flow with a Keras 3 MADE (one-pass density, D-pass sampling)."""

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
    return kgen.load_dataset("8gaussians").x[:256]


@pytest.fixture(scope="module")
def trained(data):
    """Weights before and after one step, NLL before and after 40 steps."""
    flow = kgen.build_model("maf", input_shape=(2,), num_layers=3, hidden_units=(32, 32))
    before = weights_snapshot(flow)
    nll0 = mean_nll(flow, data)
    train(flow, data, steps=1, batch_size=64, learning_rate=3e-3)
    unchanged = unchanged_weights(before, flow)
    train(flow, data, steps=40, batch_size=64, learning_rate=3e-3)
    return {"flow": flow, "unchanged": unchanged, "nll0": nll0, "nll1": mean_nll(flow, data)}


def test_has_weights_and_one_step_changes_all(trained):
    assert len(trained["flow"].trainable_weights) == 3 * 6
    assert trained["unchanged"] == []


def test_loss_falls(trained):
    assert trained["nll1"] < trained["nll0"] - 0.2, (trained["nll0"], trained["nll1"])


def test_invertible(trained, data):
    z = np.random.default_rng(1).standard_normal((16, 2)).astype("float32")
    assert_invertible(trained["flow"], data[:16], z=z)


def test_logdet_matches_autodiff(trained, data):
    assert_logdet_matches_autodiff(trained["flow"], data[:4])


def test_density_integrates_to_one(trained):
    assert abs(grid_integral(trained["flow"]) - 1.0) < 0.01


def test_round_trip(trained, data, tmp_path):
    assert_round_trip(trained["flow"], data, None, tmp_path)


def test_maf_many_dims_uses_the_loop_and_inverts():
    """Past UNROLL_MAX dimensions MAF sampling runs TFP's while loop."""
    flow = kgen.build_model("maf", input_shape=(20,), num_layers=2, hidden_units=(24,), batch_norm=True)
    x = np.random.default_rng(0).standard_normal((32, 20)).astype("float32")
    train(flow, x, steps=2, batch_size=16)
    assert_invertible(flow, x[:4], z=x[4:8])


def test_conditional_maf_inverts_and_depends_on_the_label():
    flow = kgen.build_model("maf", input_shape=(3,), num_classes=2, num_layers=2, hidden_units=(16,))
    rng = np.random.default_rng(0)
    flow.set_weights([0.3 * rng.standard_normal(w.shape).astype("float32") for w in flow.get_weights()])
    x = rng.standard_normal((4, 3)).astype("float32")
    y = np.array([0, 1, 0, 1], "int32")
    assert_invertible(flow, x, y, z=x[::-1].copy())
    assert_logdet_matches_autodiff(flow, x[:2], y[:2])
    lp0 = flow.log_prob(x, np.zeros(4, "int32"))
    lp1 = flow.log_prob(x, np.ones(4, "int32"))
    assert np.abs(lp0 - lp1).min() > 1e-3
