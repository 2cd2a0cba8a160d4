"""IAF: the inverse of MAF (one-pass sampling, D-pass density).

The standard checks of the trained 2-D IAF (weights, loss, invertibility, log-det,
normalization, round trip) are in test_flow_standard_checks.py."""

import numpy as np
import pytest

import kgen
from flow_checks import needs_tfp, to_np

pytestmark = needs_tfp


def test_iaf_is_the_inverse_of_maf():
    """With the same weights, IAF's sampling map is MAF's (one-pass) encoding map.

    One layer each, encoding order [MADE, reverse]: MAF encodes x to
    rev(m^-1(x)) and IAF decodes u to m^-1(rev(u)), m being the MAF bijector.
    """
    maf = kgen.build_model("maf", input_shape=(3,), num_layers=1, hidden_units=(8,))
    iaf = kgen.build_model("iaf", input_shape=(3,), num_layers=1, hidden_units=(8,))
    rng = np.random.default_rng(0)
    weights = [0.5 * rng.standard_normal(w.shape).astype("float32") for w in maf.get_weights()]
    maf.set_weights(weights)
    iaf.set_weights(weights)
    x = rng.standard_normal((5, 3)).astype("float32")
    z_maf = to_np(maf.encode(x)[0])
    x_iaf = to_np(iaf.decode(x[:, ::-1].copy()))
    np.testing.assert_allclose(x_iaf, z_maf[:, ::-1], atol=1e-5)
    assert not np.allclose(z_maf[:, ::-1], x, atol=1e-2)  # not the identity


def test_iaf_rejects_batch_norm():
    with pytest.raises(kgen.KgenError, match="batch_norm"):
        kgen.build_model("iaf", input_shape=(2,), batch_norm=True)


def test_iaf_samples_in_one_pass_and_maf_in_d_passes(monkeypatch):
    """IAF's sampling calls each MADE once, MAF's once per dimension; the reverse for the density.

    (A density pass calls the MADE twice, for the inverse and its log-det; a
    compiled graph computes it once.)"""
    from kgen.models.flows.conditioners import MADEConditioner

    calls = []
    original = MADEConditioner.call

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MADEConditioner, "call", counting)
    d = 6
    z = np.random.default_rng(0).standard_normal((2, d)).astype("float32")
    counts = {}
    for name in ("iaf", "maf"):
        flow = kgen.build_model(name, input_shape=(d,), num_layers=1, hidden_units=(8,))
        calls.clear()
        x = flow.decode(z)
        counts[name, "sample"] = len(calls)
        calls.clear()
        flow.encode(x)
        counts[name, "density"] = len(calls)
    assert counts["iaf", "sample"] == 1 and counts["maf", "density"] <= 2, counts
    assert counts["iaf", "density"] >= d and counts["maf", "sample"] >= d, counts
