"""Flows run on TensorFlow and JAX; on PyTorch they fail with a clear error, and import anyway."""

import sys

import keras
import pytest

import kgen
from kgen.errors import BackendError

FLOWS = ("nice", "real_nvp", "maf", "iaf", "spline_flow", "glow")
BACKEND = keras.config.backend()
SHAPES = {"glow": (4, 4, 1)}


def test_registry_lists_the_flows_with_their_backends():
    entries = {m["name"]: m for m in kgen.list_models()}
    for name in FLOWS:
        assert entries[name]["family"] == "flow"
        assert entries[name]["backends"] == ["tensorflow", "jax"]
    assert [n for n in FLOWS if entries[n]["conditional"]] == ["real_nvp", "maf", "iaf", "spline_flow", "glow"]


@pytest.mark.skipif(BACKEND != "torch", reason="the error is raised on the torch backend only")
@pytest.mark.parametrize("name", FLOWS)
def test_torch_raises_a_clear_backend_error(name):
    with pytest.raises(BackendError, match="tensorflow and jax") as err:
        kgen.build_model(name, input_shape=SHAPES.get(name, (2,)))
    assert "KERAS_BACKEND=tensorflow" in str(err.value)


@pytest.mark.skipif(BACKEND != "torch", reason="the error is raised on the torch backend only")
def test_torch_raises_when_the_class_is_built_directly():
    from kgen.models.flows import RealNVP

    with pytest.raises(BackendError, match="RealNVP"):
        RealNVP(input_shape=(2,))


@pytest.mark.skipif(BACKEND != "torch", reason="checked in the torch run, where no flow may load TFP")
def test_importing_the_flows_does_not_import_tfp():
    """TFP loads on the first flow built, so `import kgen.models` works (and stays light) on torch."""
    import kgen.models  # noqa: F401
    import kgen.models.flows  # noqa: F401

    assert "tensorflow_probability" not in sys.modules
