"""Every export loads in its own runtime and matches Keras at batch 1 and batch 8.

SavedModel via `tf.saved_model.load`, `.tflite` via the `ai_edge_litert`
interpreter, `.onnx` via onnxruntime.
"""

import importlib.util

import keras
import numpy as np
import pytest

import kgen
from kgen.export import export, tflite_op_names

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    reason="export runs in a TensorFlow process; covered under other backends by the CLI subprocess test",
)

# name -> build_model kwargs: categorical images, conditional, continuous points (erfinv in `sample`)
MODELS = {
    "categorical": dict(input_shape=(8, 8, 1), num_levels=17),
    "conditional": dict(input_shape=(8, 8, 1), num_levels=17, num_classes=10),
    "gaussian": dict(input_shape=(2,)),
}
BATCHES = (1, 8)
ATOL = 1e-5


def _model(kind):
    return kgen.build_model("vae", latent_dim=4, hidden_units=(32,), **MODELS[kind])


def _inputs(model, name, n, seed=0):
    """Named NumPy inputs for endpoint `name` at batch `n`."""
    rng = np.random.default_rng(seed)
    shape = model.data_shape
    arrays = {
        "encode": {"x": rng.integers(0, 17, (n,) + shape).astype("float32") / 16},
        "decode": {"z": rng.standard_normal((n, model.latent_dim)).astype("float32")},
        "sample": {"z": rng.standard_normal((n, model.latent_dim)).astype("float32"),
                   "u": rng.uniform(size=(n,) + shape).astype("float32")},
    }[name]
    if model.conditional:
        arrays["labels"] = (np.arange(n) % model.num_classes).astype("int32")
    return arrays


def _keras_outputs(model, name, inputs):
    """The Keras model's own answer, through its public methods (not the endpoint fns)."""
    labels = inputs.get("labels")
    if name == "encode":
        mean, logvar = model.encode(inputs["x"], labels)
        out = {"mean": mean, "logvar": logvar}
    elif name == "decode":
        out = {"output_0": model.decode(inputs["z"], labels)}
    else:
        out = {"output_0": model.sample_from_noise(inputs["z"], inputs["u"], labels=labels)}
    return {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}


def _assert_match(got, want):
    assert set(got) == set(want)
    for key in want:
        assert got[key].shape == want[key].shape, key
        np.testing.assert_allclose(got[key], want[key], atol=ATOL, err_msg=key)


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    keras.utils.set_random_seed(0)
    return _model(request.param)


# === SavedModel ===


@pytest.fixture(scope="module")
def saved_model(model, tmp_path_factory):
    import tensorflow as tf

    out = tmp_path_factory.mktemp("saved_model") / "vae"
    written = export(model, "saved_model", out)
    assert written == {"path": str(out), "format": "saved_model", "endpoints": ["encode", "decode", "sample"]}
    return tf.saved_model.load(str(out))


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("name", ["encode", "decode", "sample"])
def test_saved_model_signatures_match_keras(model, saved_model, name, n):
    inputs = _inputs(model, name, n)
    got = {k: v.numpy() for k, v in saved_model.signatures[name](**inputs).items()}
    _assert_match(got, _keras_outputs(model, name, inputs))


def test_saved_model_endpoints_are_callable(model, saved_model):
    inputs = _inputs(model, "decode", 8)
    got = saved_model.decode(*inputs.values()).numpy()
    _assert_match({"output_0": got}, _keras_outputs(model, "decode", inputs))


# === LiteRT ===


@pytest.fixture(scope="module")
def tflite_file(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("litert") / "vae.tflite"
    written = export(model, "litert", out)
    assert written["endpoints"] == ["decode", "sample"]
    return out


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("name", ["decode", "sample"])
def test_litert_signatures_match_keras(model, tflite_file, name, n):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(tflite_file)).get_signature_runner(name)
    inputs = _inputs(model, name, n)
    _assert_match(runner(**inputs), _keras_outputs(model, name, inputs))


def test_litert_has_builtin_ops_only(tflite_file):
    ops = tflite_op_names(tflite_file)
    assert "FULLY_CONNECTED" in ops
    assert not [op for op in ops if "Flex" in op or not op.isupper()], ops


def test_litert_has_only_the_litert_endpoints(tflite_file):
    from ai_edge_litert.interpreter import Interpreter

    assert sorted(Interpreter(model_path=str(tflite_file)).get_signature_list()) == ["decode", "sample"]


# === ONNX ===

needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("tf2onnx") is None or importlib.util.find_spec("onnxruntime") is None,
    reason='the ONNX extra is not installed (pip install "kgen[onnx]")',
)


@pytest.fixture(scope="module")
def onnx_folder(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "vae"
    written = export(model, "onnx", out)
    assert written["files"] == [str(out / f"{name}.onnx") for name in ("encode", "decode", "sample")]
    return out


@needs_onnx
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("name", ["encode", "decode", "sample"])
def test_onnx_files_match_keras(model, onnx_folder, name, n):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_folder / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    inputs = _inputs(model, name, n)
    assert [i.name for i in session.get_inputs()] == list(inputs)
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, inputs)))
    _assert_match(got, _keras_outputs(model, name, inputs))
