"""pix2pix and CycleGAN export: the translation endpoints take an image; SavedModel and LiteRT match Keras.

SavedModel via `tf.saved_model.load`, `.tflite` via the `ai_edge_litert`
interpreter, at batch 1 and batch 5; the `.tflite` holds builtin ops only.
"""

import keras
import numpy as np
import pytest

import kgen
from kgen.export import export, tflite_op_names

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    reason="export runs in a TensorFlow process; covered under other backends by the CLI subprocess test",
)

MODELS = {
    "pix2pix": dict(generator_filters=4, discriminator_filters=(4,)),
    "cycle_gan": dict(generator_filters=4, res_blocks=1, discriminator_filters=(4,)),
}
ENDPOINTS = {"pix2pix": {"translate": "a2b"}, "cycle_gan": {"translate_a2b": "a2b", "translate_b2a": "b2a"}}
BATCHES = (1, 5)
ATOL = 1e-5


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    keras.utils.set_random_seed(0)
    net = kgen.build_model(request.param, input_shape=(8, 8, 1), **MODELS[request.param])
    # BatchNorm statistics away from their initial 0 / 1, so inference mode is really exercised.
    rng = np.random.default_rng(0)
    for v in net.non_trainable_variables:
        if "moving_" in v.path:
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    return net


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 8, 8, 1)).astype("float32")


def test_endpoints_take_an_image(model):
    endpoints = model.export_endpoints()
    assert set(endpoints) == set(ENDPOINTS[model.registered_name])
    for _, specs in endpoints.values():
        assert specs == [((None, 8, 8, 1), "float32")]
    assert tuple(model.litert_endpoints) == tuple(ENDPOINTS[model.registered_name])


def test_saved_model_matches_keras(model, tmp_path):
    import tensorflow as tf

    written = export(model, "saved_model", tmp_path / "sm")
    assert written["endpoints"] == list(ENDPOINTS[model.registered_name])
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    for name, direction in ENDPOINTS[model.registered_name].items():
        for n in BATCHES:
            x = _images(n, seed=n)
            got = loaded.signatures[name](image=tf.constant(x))["output_0"].numpy()
            np.testing.assert_allclose(got, model.translate(x, direction), atol=ATOL, err_msg=f"{name} batch {n}")


def test_litert_matches_keras_with_builtin_ops_only(model, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    out = tmp_path / "translate.tflite"
    written = export(model, "litert", out)
    assert written["endpoints"] == list(ENDPOINTS[model.registered_name])
    ops = tflite_op_names(out)
    assert "CONV_2D" in ops
    assert not [op for op in ops if "Flex" in op or not op.isupper()], ops
    interpreter = Interpreter(model_path=str(out))
    assert sorted(interpreter.get_signature_list()) == sorted(ENDPOINTS[model.registered_name])
    for name, direction in ENDPOINTS[model.registered_name].items():
        runner = interpreter.get_signature_runner(name)
        for n in BATCHES:
            x = _images(n, seed=10 + n)
            got = runner(image=x)["output_0"]
            np.testing.assert_allclose(got, model.translate(x, direction), atol=ATOL, err_msg=f"{name} batch {n}")
