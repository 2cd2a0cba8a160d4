"""MAF: masked autoregressive flow with a Keras 3 MADE (one-pass density, D-pass sampling).

The standard checks of the trained 2-D MAF (weights, loss, invertibility, log-det,
normalization, round trip) are in test_flow_standard_checks.py."""

import numpy as np

import kgen
from flow_checks import assert_invertible, assert_logdet_matches_autodiff, needs_tfp, train

pytestmark = needs_tfp


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
