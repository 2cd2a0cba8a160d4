"""Export of the autoregressive models: LiteRT (builtin ops only), SavedModel and ONNX match Keras."""

import keras
import numpy as np
import pytest

import kgen
import kgen.api
import kgen.export

import ar_checks

pytestmark = pytest.mark.skipif(
    ar_checks.BACKEND != "tensorflow", reason="export traces TensorFlow graphs: it runs on the TensorFlow backend"
)

# Every autoregressive model of the registry at its registered tiny size (PixelRNN: tested below;
# its LSTM scans keep log_prob out of LiteRT and ONNX), conditional ones on 2 classes.
CASES = {e.name: (e.name, {**e.tiny, **({"num_classes": 2} if e.conditional else {})})
         for e in kgen.api.list_entries() if e.family == "autoregressive" and e.name != "pixel_rnn"}


def _inputs(specs, n, rng, endpoint):
    out = []
    for shape, dtype in specs:
        shape = (n,) + tuple(shape[1:])
        if dtype == "int32":
            out.append(rng.integers(0, 2, shape).astype("int32"))
        else:
            out.append(rng.uniform(size=shape).astype("float32"))
    if endpoint == "log_prob":
        out[0] = np.round(out[0] * 2) / 2  # 3 levels
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_litert_endpoints(case, tmp_path):
    from ai_edge_litert.interpreter import Interpreter
    from kgen.export.common import input_names

    name, kwargs = CASES[case]
    shape = (4, 4, 1) if name == "multiscale_pixel_cnn" else (3, 3, 1)
    model = kgen.build_model(name, input_shape=shape, num_levels=3, **kwargs)
    assert set(model.litert_endpoints) == {"log_prob", "sample"}
    path = tmp_path / f"{case}.tflite"
    kgen.export.export(model, "litert", path)
    ops = kgen.export.tflite_op_names(path)
    assert not any(op.startswith("Flex") for op in ops), ops
    assert "WHILE" in ops  # the sampler is one compiled loop, not unrolled
    interpreter = Interpreter(model_path=str(path))
    rng = np.random.default_rng(0)
    for endpoint, (fn, specs) in model.export_endpoints().items():
        runner = interpreter.get_signature_runner(endpoint)
        names = input_names(fn, len(specs))
        for n in (1, 3):
            inputs = _inputs(specs, n, rng, endpoint)
            got = list(runner(**dict(zip(names, inputs))).values())[0]
            want = keras.ops.convert_to_numpy(fn(*inputs))
            if endpoint == "sample":
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cell", ["row_lstm", "diagonal_bilstm"])
def test_pixel_rnn_saved_model(cell, tmp_path):
    """PixelRNN's SavedModel matches Keras (its LSTM scans keep log_prob out of LiteRT; see below)."""
    import tensorflow as tf

    model = kgen.build_model("pixel_rnn", input_shape=(2, 3, 1), num_levels=3, cell=cell, hidden_units=4,
                             num_layers=1, first_kernel=3)
    kgen.export.export(model, "saved_model", tmp_path / "sm")
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    rng = np.random.default_rng(0)
    for n in (1, 3):
        x = rng.integers(0, 3, (n, 2, 3, 1)).astype("float32") / 2
        np.testing.assert_allclose(np.asarray(loaded.log_prob(x)), model.log_prob(x), rtol=1e-5, atol=1e-4)
        u = rng.uniform(size=(n, 2, 3, 1)).astype("float32")
        np.testing.assert_array_equal(np.asarray(loaded.sample(u)), np.asarray(model.sample_from_noise(u)))


@pytest.mark.parametrize("cell", ["row_lstm", "diagonal_bilstm"])
def test_pixel_rnn_litert(cell, tmp_path):
    """The cached samplers convert with builtin ops and match Keras; log_prob's LSTM scans do not convert,
    so LiteRT carries `sample` only."""
    from ai_edge_litert.interpreter import Interpreter

    model = kgen.build_model("pixel_rnn", input_shape=(3, 3, 1), num_levels=3, cell=cell, hidden_units=4,
                             num_layers=2, first_kernel=3, output_filters=8)
    assert model.litert_endpoints == ("sample",)
    path = tmp_path / "m.tflite"
    kgen.export.export(model, "litert", path)
    ops = kgen.export.tflite_op_names(path)
    assert not any(op.startswith("Flex") for op in ops), ops
    assert "WHILE" in ops
    interpreter = Interpreter(model_path=str(path))
    assert set(interpreter.get_signature_list()) == {"sample"}
    runner = interpreter.get_signature_runner("sample")
    (name,) = interpreter.get_signature_list()["sample"]["inputs"]
    rng = np.random.default_rng(0)
    for n in (1, 8):
        u = rng.uniform(size=(n, 3, 3, 1)).astype("float32")
        got = list(runner(**{name: u}).values())[0]
        np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(model.sample_from_noise(u)))


def test_pixel_rnn_onnx_says_to_use_saved_model(tmp_path):
    """tf2onnx cannot convert PixelRNN's LSTM scans: a clear ExportError, not tf2onnx's own exception."""
    pytest.importorskip("tf2onnx", reason="the ONNX check needs tf2onnx (kgen[onnx])")
    model = kgen.build_model("pixel_rnn", input_shape=(2, 3, 1), num_levels=3, cell="row_lstm", hidden_units=4,
                             num_layers=1, first_kernel=3)
    with pytest.raises(kgen.export.ExportError, match="does not convert.*export as saved_model"):
        kgen.export.export(model, "onnx", tmp_path / "onnx")


# PixelRNN is left out: tf2onnx cannot convert its LSTM scans (SavedModel only, tested above).
ONNX_CASES = CASES


@pytest.mark.parametrize("case", sorted(ONNX_CASES))
def test_onnx_endpoints(case, tmp_path):
    """Every endpoint converts to ONNX and matches Keras in onnxruntime (the cached samplers included)."""
    ort = pytest.importorskip("onnxruntime", reason="the ONNX check needs onnxruntime (kgen[onnx])")
    pytest.importorskip("tf2onnx", reason="the ONNX check needs tf2onnx (kgen[onnx])")
    from kgen.export.common import input_names

    name, kwargs = ONNX_CASES[case]
    shape = (4, 4, 1) if name == "multiscale_pixel_cnn" else (3, 3, 1)
    model = kgen.build_model(name, input_shape=shape, num_levels=3, **kwargs)
    written = kgen.export.export(model, "onnx", tmp_path / "onnx")
    rng = np.random.default_rng(0)
    for endpoint, (fn, specs) in model.export_endpoints().items():
        session = ort.InferenceSession(str(tmp_path / "onnx" / f"{endpoint}.onnx"))
        names = [i.name for i in session.get_inputs()]
        assert sorted(names) == sorted(input_names(fn, len(specs)))
        inputs = _inputs(specs, 3, rng, endpoint)
        got = session.run(None, dict(zip(input_names(fn, len(specs)), inputs)))[0]
        want = keras.ops.convert_to_numpy(fn(*inputs))
        if endpoint == "sample":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert len(written["files"]) == 2
