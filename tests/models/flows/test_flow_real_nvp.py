"""RealNVP, vector variant: 2-D points with batch normalization; the per-epoch density figure."""

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
def vector(moons):
    """A small 2-D RealNVP with batch norm: weights before and after one step, NLL before and after 40."""
    flow = kgen.build_model("real_nvp", input_shape=(2,), num_couplings=4, hidden_units=(32, 32), batch_norm=True)
    before = weights_snapshot(flow)
    nll0 = mean_nll(flow, moons)
    train(flow, moons, steps=1, batch_size=64, learning_rate=3e-3)
    unchanged = unchanged_weights(before, flow)
    train(flow, moons, steps=40, batch_size=64, learning_rate=3e-3)
    return {"flow": flow, "unchanged": unchanged, "nll0": nll0, "nll1": mean_nll(flow, moons)}


# === Vector variant ===


def test_vector_has_weights_and_one_step_changes_all(vector):
    assert len(vector["flow"].trainable_weights) >= 4 * 6
    assert vector["unchanged"] == []


def test_vector_batch_norm_tracks_moving_statistics(vector):
    bn = [s for s in vector["flow"].steps if type(s).__name__ == "BatchNorm"]
    assert len(bn) == 4
    assert not np.allclose(to_np(bn[0].moving_mean), 0.0)
    assert not np.allclose(to_np(bn[0].moving_var), 1.0)


def test_vector_loss_falls(vector):
    assert vector["nll1"] < vector["nll0"] - 0.2, (vector["nll0"], vector["nll1"])


def test_vector_invertible(vector, moons):
    z = np.random.default_rng(1).standard_normal((16, 2)).astype("float32")
    assert_invertible(vector["flow"], moons[:16], z=z)


def test_vector_logdet_matches_autodiff(vector, moons):
    assert_logdet_matches_autodiff(vector["flow"], moons[:4])


def test_vector_density_integrates_to_one(vector):
    assert abs(grid_integral(vector["flow"]) - 1.0) < 0.01


def test_vector_round_trip(vector, moons, tmp_path):
    assert_round_trip(vector["flow"], moons, None, tmp_path)


def test_vector_epoch_figure(vector, moons, tmp_path):
    flow = vector["flow"]
    data = kgen.load_dataset("moons").subset(512)
    path = tmp_path / "epoch_001.png"
    flow.write_epoch_figure(path, data, flow.sample(256, seed=0))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_distribution_is_the_same_density(vector, moons):
    """`distribution()` is the flow as a TFP TransformedDistribution: same log-density, same samples."""
    flow = vector["flow"]
    dist = flow.distribution()
    np.testing.assert_allclose(to_np(dist.log_prob(moons[:8])), flow.log_prob(moons[:8]), rtol=1e-4, atol=1e-4)
    z = np.random.default_rng(0).standard_normal((8, 2)).astype("float32")
    np.testing.assert_allclose(to_np(dist.bijector.forward(z)), to_np(flow.decode(z)), atol=1e-5)


def test_conditional_density_figure_averages_the_labels(tmp_path):
    flow = kgen.build_model("real_nvp", input_shape=(2,), num_classes=2, num_couplings=2, hidden_units=(8,))
    data = kgen.load_dataset("moons").subset(256)
    path = tmp_path / "epoch_001.png"
    flow.write_epoch_figure(path, data, flow.sample(64, seed=0))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
