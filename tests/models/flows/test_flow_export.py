"""Flows export log_prob(x) and sample(z) (conditional: labels last): SavedModel, and LiteRT with builtin
ops only. Vector flows and RealNVP export both endpoints to LiteRT; Glow exports `sample` (its 1x1
convolution's inverse needs a triangular solve); the spline flow has no LiteRT endpoint."""

import pytest

from flow_export_checks import (
    BATCHES,
    check_builtin_only,
    check_litert,
    check_saved_model,
    export_case,
    needs_tensorflow,
)

pytestmark = needs_tensorflow

CASES = {
    "nice": ("nice", dict(input_shape=(3,), num_couplings=2, hidden_units=(16,))),
    "real_nvp": ("real_nvp", dict(input_shape=(2,), num_couplings=2, hidden_units=(16,), batch_norm=True)),
    "maf": ("maf", dict(input_shape=(3,), num_layers=2, hidden_units=(16,))),
    "iaf": ("iaf", dict(input_shape=(3,), num_layers=2, hidden_units=(16,))),
    "real_nvp_image": ("real_nvp", dict(input_shape=(4, 4, 1), num_levels=17, num_classes=3,
                                        couplings_per_scale=1, filters=8, batch_norm=True)),
    "glow_image": ("glow", dict(input_shape=(4, 4, 1), num_levels=17, num_classes=3, steps_per_scale=1,
                                filters=8)),
}


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, tmp_path_factory):
    name, kwargs = CASES[request.param]
    return export_case(name, kwargs, tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("n", BATCHES)
def test_saved_model_matches_keras(exported, n):
    check_saved_model(exported, n)


@pytest.mark.parametrize("n", BATCHES)
def test_litert_matches_keras(exported, n):
    check_litert(exported, n)


def test_litert_has_builtin_ops_only(exported):
    check_builtin_only(exported)


def test_spline_flow_has_no_litert_endpoint(tmp_path):
    """TFP's spline finds its bin with tf.searchsorted (no LiteRT builtin): say so, write nothing."""
    import kgen
    from kgen.export import ExportError, export

    model = kgen.build_model("spline_flow", input_shape=(2,), num_layers=1, hidden_units=(8,))
    with pytest.raises(ExportError, match="LiteRT"):
        export(model, "litert", tmp_path / "spline.tflite")
    assert not (tmp_path / "spline.tflite").exists()
