"""Shared export checks for the flow export test files (TensorFlow backend).

Export runs in a TensorFlow process (a JAX-trained `.keras` reloads there).
"""

import keras
import numpy as np
import pytest

import kgen
from flow_checks import dequantized_images, to_np
from kgen.export import export, tflite_op_names

needs_tensorflow = pytest.mark.skipif(keras.config.backend() != "tensorflow",
                                      reason="export runs in a TensorFlow process")
BATCHES = (1, 5)


def _inputs(model, endpoint, n, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) + model.data_shape
    if endpoint == "log_prob":
        x = dequantized_images(n, model.data_shape, seed=seed) if len(shape) == 4 else rng.standard_normal(shape)
        out = {"x": x.astype("float32")}
    else:
        out = {"z": (0.7 * rng.standard_normal(shape)).astype("float32")}
    if model.conditional:
        out["labels"] = (np.arange(n) % model.num_classes).astype("int32")
    return out


def _keras(model, endpoint, inputs):
    labels = inputs.get("labels")
    if endpoint == "log_prob":
        return model.log_prob(inputs["x"], labels)
    return to_np(model.sample_from_noise(inputs["z"], labels=labels))


def export_case(name, kwargs, folder):
    """Builds, perturbs every trainable weight (so no map is the identity and per-feature
    scales differ), exports SavedModel and LiteRT."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    model = kgen.build_model(name, **kwargs)
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:
        v.assign(to_np(v) + 0.1 * rng.standard_normal(v.shape).astype("float32"))
    export(model, "saved_model", folder / "saved")
    written = export(model, "litert", folder / "flow.tflite")
    assert sorted(written["endpoints"]) == sorted(model.litert_endpoints)
    return {"model": model, "saved": tf.saved_model.load(str(folder / "saved")),
            "litert": Interpreter(model_path=written["path"]), "path": written["path"]}


def check_saved_model(exported, n):
    model = exported["model"]
    for endpoint in ("log_prob", "sample"):
        inputs = _inputs(model, endpoint, n)
        got = exported["saved"].signatures[endpoint](**inputs)["output_0"].numpy()
        np.testing.assert_allclose(got, _keras(model, endpoint, inputs), rtol=1e-4, atol=1e-4, err_msg=endpoint)


def check_litert(exported, n):
    model = exported["model"]
    for endpoint in model.litert_endpoints:
        runner = exported["litert"].get_signature_runner(endpoint)
        inputs = _inputs(model, endpoint, n)
        got = runner(**inputs)["output_0"]
        np.testing.assert_allclose(got, _keras(model, endpoint, inputs), rtol=1e-4, atol=1e-3, err_msg=endpoint)


def check_builtin_only(exported):
    ops = tflite_op_names(exported["path"])
    assert not [op for op in ops if "Flex" in op or not op.isupper()], ops
