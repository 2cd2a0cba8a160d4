"""NICE: additive couplings (volume-preserving) and the diagonal scaling.

The standard checks of the trained 2-D NICE (weights, loss, invertibility, log-det,
normalization, round trip) are in test_flow_standard_checks.py."""

import numpy as np
import pytest

import kgen
from flow_checks import assert_invertible, dequantized_images, needs_tfp, to_np, trained_case

pytestmark = needs_tfp


@pytest.fixture(scope="module")
def nice():
    return trained_case("nice")


def test_only_the_scaling_changes_volume(nice):
    """Additive couplings have unit Jacobian: the log-det is sum(s) for every x."""
    flow = nice["flow"]
    _, logdet = flow.encode(nice["x"][:8])
    scale = [s for s in flow.steps if type(s).__name__ == "DiagonalScale"][0]
    # encoding divides by exp(s): log|det dz/dx| = -sum(s)
    np.testing.assert_allclose(to_np(logdet), -np.sum(to_np(scale.log_scale)), rtol=1e-5, atol=1e-6)
    assert abs(float(np.sum(to_np(scale.log_scale)))) > 1e-3


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
