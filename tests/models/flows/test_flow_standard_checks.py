"""The checks every vector flow passes (MAF, IAF, NICE, spline flow, RealNVP), parametrized over
`flow_checks.VECTOR_CASES`; and proof that each check fails on a flow that is broken its way."""

import numpy as np
import pytest

import kgen
from flow_checks import (
    VECTOR_CASES,
    VectorCase,
    assert_round_trip,
    check_invertible,
    check_logdet,
    check_loss_falls,
    check_normalized,
    check_weights_all_train,
    needs_tfp,
    train_and_record,
    trained_case,
)

pytestmark = needs_tfp

NAMES = sorted(VECTOR_CASES)


@pytest.mark.parametrize("name", NAMES)
def test_has_weights_and_one_step_changes_all(name):
    check_weights_all_train(trained_case(name))


@pytest.mark.parametrize("name", NAMES)
def test_loss_falls(name):
    check_loss_falls(trained_case(name))


@pytest.mark.parametrize("name", NAMES)
def test_invertible(name):
    check_invertible(trained_case(name))


@pytest.mark.parametrize("name", NAMES)
def test_logdet_matches_autodiff(name):
    check_logdet(trained_case(name))


@pytest.mark.parametrize("name", NAMES)
def test_density_integrates_to_one(name):
    check_normalized(trained_case(name))


@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name, tmp_path):
    result = trained_case(name)
    assert_round_trip(result["flow"], result["x"], None, tmp_path)


# === Each check can fail ===


class _Broken:
    """A trained flow seen through one fault: everything else is the real flow."""

    def __init__(self, flow, logdet_offset=0.0, decode_offset=0.0):
        self._flow, self._logdet_offset, self._decode_offset = flow, logdet_offset, decode_offset

    def __getattr__(self, attr):
        return getattr(self._flow, attr)

    def encode(self, x, labels=None, training=False):
        z, logdet = self._flow.encode(x, labels, training)
        return z, logdet + self._logdet_offset

    def decode(self, z, labels=None):
        return self._flow.decode(z, labels) + self._decode_offset

    def log_prob(self, x, labels=None, batch_size=256):
        return self._flow.log_prob(x, labels, batch_size=batch_size) + self._logdet_offset


def _with_flow(result, flow):
    return dict(result, flow=flow)


def test_the_checks_catch_a_wrong_logdet_and_a_wrong_inverse():
    result = trained_case("real_nvp")
    with pytest.raises(AssertionError):
        check_logdet(_with_flow(result, _Broken(result["flow"], logdet_offset=0.05)))
    with pytest.raises(AssertionError):  # exp(0.05): 5% too much mass
        check_normalized(_with_flow(result, _Broken(result["flow"], logdet_offset=0.05)))
    with pytest.raises(AssertionError, match="decode"):
        check_invertible(_with_flow(result, _Broken(result["flow"], decode_offset=1e-2)))


def test_the_checks_catch_frozen_weights_a_flat_loss_and_a_wrong_count():
    flow = kgen.build_model("nice", input_shape=(2,), num_couplings=1, hidden_units=(8,))
    x = kgen.load_dataset("moons").x[:64]
    result = train_and_record(flow, x, steps=1, learning_rate=0.0)  # nothing moves
    result["case"] = VECTOR_CASES["nice"]  # expects 4 couplings and a 0.2-nat drop
    with pytest.raises(AssertionError):
        check_weights_all_train(result)
    result["case"] = VectorCase("nice", "moons", (), num_weights=len(flow.trainable_weights))  # the right count
    with pytest.raises(AssertionError, match="unchanged"):
        check_weights_all_train(result)
    with pytest.raises(AssertionError):
        check_loss_falls(result)
    assert np.isclose(result["nll0"], result["nll1"])


def test_the_round_trip_catches_a_weight_that_is_not_restored(tmp_path, monkeypatch):
    result = trained_case("nice")
    fresh = kgen.build_model("nice", input_shape=(2,), **dict(VECTOR_CASES["nice"].hparams))
    monkeypatch.setattr(kgen, "load_model", lambda path, **kwargs: fresh)  # "loads" untrained weights
    with pytest.raises(AssertionError):
        assert_round_trip(result["flow"], result["x"], None, tmp_path)
