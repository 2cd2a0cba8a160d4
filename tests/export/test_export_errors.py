"""Export refuses what would not work, with one line that says why and what to do."""

import sys

import keras
import pytest
from keras import ops

import kgen
from kgen import backend
from kgen.errors import BackendError, UsageError
from kgen.export import ExportError, export, tflite_op_names
from kgen.models.latent.vae import VAE

only_tensorflow = pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    reason="export runs in a TensorFlow process; covered under other backends by the CLI subprocess test",
)


class ProbitVAE(VAE):
    """A VAE with an extra endpoint that needs an op LiteRT builtins and ONNX lack (Erfinv)."""

    litert_endpoints = ("decode", "probit")

    def export_endpoints(self):
        endpoints = super().export_endpoints()
        endpoints["probit"] = (lambda u: ops.erfinv(2.0 * u - 1.0), [((None, 2), "float32")])
        return endpoints


class DeterminantVAE(VAE):
    """A VAE with an extra endpoint that LiteRT runs only with Flex ops (MatrixDeterminant)."""

    litert_endpoints = ("det", "decode")

    def export_endpoints(self):
        endpoints = super().export_endpoints()
        endpoints["det"] = (lambda a: ops.linalg.det(a), [((None, 2, 2), "float32")])
        return endpoints


def _vae(cls=VAE):
    return cls(input_shape=(8, 8, 1), num_levels=17, latent_dim=4, hidden_units=(16,))


def test_unknown_format_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match='unknown export format "tflite".*saved_model, litert, onnx'):
        export(_vae(), "tflite", tmp_path / "out")


def test_other_backends_are_refused_with_the_fix(tmp_path, monkeypatch):
    if backend.name() == "tensorflow":  # pretend, to test the message on this backend too
        monkeypatch.setattr(backend, "name", lambda: "jax")
    with pytest.raises(BackendError, match="kgen export.*KERAS_BACKEND=tensorflow") as info:
        export(_vae(), "saved_model", tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


@only_tensorflow
def test_unknown_endpoint_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match='no export endpoint "decoder".*Did you mean "decode"'):
        export(_vae(), "saved_model", tmp_path / "out", endpoints=["decoder"])


@only_tensorflow
def test_endpoint_subset(tmp_path):
    written = export(_vae(), "saved_model", tmp_path / "out", endpoints=["sample", "decode"])
    assert written["endpoints"] == ["decode", "sample"]  # the model's order

    import tensorflow as tf

    assert sorted(tf.saved_model.load(str(tmp_path / "out")).signatures) == ["decode", "sample", "serving_default"]


@only_tensorflow
@pytest.mark.parametrize("fmt, out", [("litert", "model"), ("litert", "model.onnx"), ("onnx", "model.onnx")])
def test_output_path_must_fit_the_format(tmp_path, fmt, out):
    with pytest.raises(UsageError, match="\\.tflite file|folder"):
        export(_vae(), fmt, tmp_path / out)


@only_tensorflow
@pytest.mark.parametrize("cls, endpoint, op", [(ProbitVAE, "probit", "Erfinv"),
                                               (DeterminantVAE, "det", "MatrixDeterminant")])
def test_litert_refuses_non_builtin_ops_and_names_the_endpoint(tmp_path, cls, endpoint, op):
    out = tmp_path / "m.tflite"
    with pytest.raises(ExportError, match=f'LiteRT export: endpoint "{endpoint}" needs ops .*{op}') as info:
        export(_vae(cls), "litert", out)
    assert "\n" not in str(info.value)
    assert not out.exists()


@only_tensorflow
def test_op_lister_sees_flex_ops(tmp_path):
    """The check the LiteRT tests rely on does find Flex ops when a file has them."""
    import tensorflow as tf

    fn = tf.function(tf.linalg.det, input_signature=[tf.TensorSpec((None, 2, 2), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    assert "FlexMatrixDeterminant" in tflite_op_names(converter.convert())


@only_tensorflow
def test_onnx_without_the_extra_gives_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # `import tf2onnx` raises ImportError
    with pytest.raises(ExportError, match='pip install "kgen\\[onnx\\]"'):
        export(_vae(), "onnx", tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


@only_tensorflow
def test_onnx_refuses_unconvertible_ops_and_names_the_endpoint(tmp_path):
    pytest.importorskip("tf2onnx")
    with pytest.raises(ExportError, match='ONNX export: endpoint "probit" does not convert.*Erfinv') as info:
        export(_vae(ProbitVAE), "onnx", tmp_path / "onnx", endpoints=["decode", "probit"])
    assert "\n" not in str(info.value)
    assert not (tmp_path / "onnx" / "decode.onnx").exists()  # nothing half-written
