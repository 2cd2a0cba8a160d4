"""RealNVP, vector variant: 2-D points with batch normalization; the per-epoch density figure.

The standard checks of the trained 2-D RealNVP (weights, loss, invertibility, log-det,
normalization, round trip) are in test_flow_standard_checks.py."""

import numpy as np
import pytest

import kgen
from kgen import figures
from flow_checks import needs_tfp, to_np, trained_case

pytestmark = needs_tfp


@pytest.fixture(scope="module")
def vector():
    """The 2-D RealNVP with batch norm that the standard checks train."""
    return trained_case("real_nvp")


# === Vector variant ===


def test_vector_batch_norm_tracks_moving_statistics(vector):
    bn = [s for s in vector["flow"].steps if type(s).__name__ == "BatchNorm"]
    assert len(bn) == 4
    assert not np.allclose(to_np(bn[0].moving_mean), 0.0)
    assert not np.allclose(to_np(bn[0].moving_var), 1.0)


def test_vector_epoch_figure(vector, tmp_path):
    flow = vector["flow"]
    data = kgen.load_dataset("moons").subset(512)
    path = tmp_path / "epoch_001.png"
    figures.write_epoch_figure(path, flow, flow.sample(256, seed=0), data)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_distribution_is_the_same_density(vector):
    """`distribution()` is the flow as a TFP TransformedDistribution: same log-density, same samples."""
    flow, moons = vector["flow"], vector["x"]
    dist = flow.distribution()
    np.testing.assert_allclose(to_np(dist.log_prob(moons[:8])), flow.log_prob(moons[:8]), rtol=1e-4, atol=1e-4)
    z = np.random.default_rng(0).standard_normal((8, 2)).astype("float32")
    np.testing.assert_allclose(to_np(dist.bijector.forward(z)), to_np(flow.decode(z)), atol=1e-5)


def test_conditional_density_figure_averages_the_labels(tmp_path):
    flow = kgen.build_model("real_nvp", input_shape=(2,), num_classes=2, num_couplings=2, hidden_units=(8,))
    data = kgen.load_dataset("moons").subset(256)
    path = tmp_path / "epoch_001.png"
    figures.write_epoch_figure(path, flow, flow.sample(64, seed=0), data)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
