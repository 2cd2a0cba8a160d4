"""Neural spline flow variants: identity tails, the autoregressive architecture, class-conditional,
argument errors."""

import numpy as np
import pytest

import kgen
from flow_checks import (
    assert_invertible,
    assert_logdet_matches_autodiff,
    needs_tfp,
    to_np,
)

pytestmark = needs_tfp


def test_identity_outside_the_bound():
    """Far out, every spline is the identity: log p(x) is the standard normal's (z is x reversed)."""
    flow = kgen.build_model("spline_flow", input_shape=(2,), num_layers=1, num_bins=4, bound=2.0, hidden_units=(8,))
    x = np.array([[9.0, 7.0]], "float32")
    want = -0.5 * (81 + 49) - np.log(2 * np.pi)
    np.testing.assert_allclose(to_np(flow.encode(x)[0]), x[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(flow.log_prob(x), [want], rtol=1e-6)


def test_autoregressive_variant_inverts_and_matches_autodiff():
    flow = kgen.build_model("spline_flow", input_shape=(2,), num_layers=1, num_bins=4, hidden_units=(8,),
                            architecture="autoregressive")
    w = flow.get_weights()
    flow.set_weights([0.3 * np.random.default_rng(i).standard_normal(v.shape).astype("float32")
                      for i, v in enumerate(w)])
    x = np.random.default_rng(0).standard_normal((4, 2)).astype("float32")
    assert_invertible(flow, x, z=x[::-1].copy())
    assert_logdet_matches_autodiff(flow, x[:3])


def test_bad_arguments():
    with pytest.raises(kgen.KgenError, match="architecture"):
        kgen.build_model("spline_flow", input_shape=(2,), architecture="nope")
    with pytest.raises(kgen.KgenError, match="num_bins"):
        kgen.build_model("spline_flow", input_shape=(2,), num_bins=1)


def test_conditional_spline_inverts_and_depends_on_the_label():
    flow = kgen.build_model("spline_flow", input_shape=(2,), num_classes=3, num_layers=2, num_bins=4,
                            hidden_units=(8,))
    rng = np.random.default_rng(0)
    flow.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in flow.get_weights()])
    x = rng.standard_normal((4, 2)).astype("float32")
    y = np.array([0, 1, 2, 1], "int32")
    assert_invertible(flow, x, y, z=x[::-1].copy())
    assert_logdet_matches_autodiff(flow, x[:2], y[:2])
    a, b = flow.sample(8, seed=0, labels=0), flow.sample(8, seed=0, labels=2)
    assert not np.allclose(a, b)
