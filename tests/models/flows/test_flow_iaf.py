"""IAF: the inverse of MAF (one-pass sampling, D-pass density)."""

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
def data():
    return kgen.load_dataset("8gaussians").x[:256]


@pytest.fixture(scope="module")
def trained(data):
    """Weights before and after one step, NLL before and after 40 steps."""
    flow = kgen.build_model("iaf", input_shape=(2,), num_layers=3, hidden_units=(32, 32))
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
