"""Image flows export: SavedModel log_prob/sample (conditional: labels last); LiteRT builtin-only
(RealNVP both endpoints; Glow `sample`, its 1x1 convolution's inverse needs a triangular solve)."""

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
    "real_nvp": ("real_nvp", dict(input_shape=(4, 4, 1), num_levels=17, num_classes=3, couplings_per_scale=1,
                                  filters=8, batch_norm=True)),
    "glow": ("glow", dict(input_shape=(4, 4, 1), num_levels=17, num_classes=3, steps_per_scale=1, filters=8)),
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
