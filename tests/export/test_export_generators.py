"""GAN generators export: `generate(z[, labels])` (InfoGAN: `generate(z, category, continuous)`).

SavedModel via `tf.saved_model.load`, `.tflite` via the `ai_edge_litert`
interpreter (TFLite builtin ops only), compared with the Keras model at batch
1 and batch 8, for gan, dcgan, cgan, info_gan, wgan_gp and began. BatchNorm
moving statistics are set away from their initial values first, so an export
that used batch statistics (training mode) would not match.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kgen
import kgen.api
from kgen.checkpoint import save_checkpoint

ON_TF = keras.config.backend() == "tensorflow"
tf_only = pytest.mark.skipif(
    not ON_TF, reason="export runs in a TensorFlow process; other backends: test_cli_export_of_this_backends_checkpoint"
)

def _generators():
    """Every registered model whose one serving endpoint is `generate`, at its registered tiny size."""
    out = {}
    for e in kgen.api.list_entries():
        hparams = {**e.tiny, **({"num_classes": 10} if e.conditional else {})}
        if e.family == "adversarial" and e.tiny_dataset == "digits":
            if list(e.cls(input_shape=(8, 8, 1), **hparams).export_endpoints()) == ["generate"]:
                out[e.name] = hparams
    out["dcgan"] = {**out["dcgan"], "output_activation": "tanh"}  # the other activation, as kgen's recipes use
    return out


MODELS = _generators()
BATCHES = (1, 8)
ATOL = 1e-5


def build(name):
    keras.utils.set_random_seed(0)
    model = kgen.build_model(name, input_shape=(8, 8, 1), **MODELS[name])
    rng = np.random.default_rng(1)
    for v in model.non_trainable_variables:  # BatchNorm moving stats: not the identity
        if "moving_mean" in v.path:
            v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
        elif "moving_variance" in v.path:
            v.assign(rng.uniform(0.5, 2.0, v.shape).astype("float32"))
    return model


def inputs(model, n, seed=0):
    """Named NumPy inputs of `generate` at batch n."""
    rng = np.random.default_rng(seed + n)
    out = {"z": rng.standard_normal((n, model.latent_dim)).astype("float32")}
    if type(model).__name__ == "InfoGAN":
        out["category"] = (np.arange(n) % model.num_categories).astype("int32")
        out["continuous"] = rng.uniform(-1, 1, (n, model.num_continuous)).astype("float32")
    elif model.conditional:
        out["labels"] = ((np.arange(n) * 3) % model.num_classes).astype("int32")
    return out


def keras_output(model, arrays):
    """The Keras model's answer through its public NumPy API (not the endpoint function)."""
    if "category" in arrays:
        return model.generate_with_codes(arrays["z"], arrays["category"], arrays["continuous"])
    return model.generate_numpy(arrays["z"], arrays.get("labels"))


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request, tmp_path_factory):
    if not ON_TF:
        pytest.skip("export runs in a TensorFlow process")
    import tensorflow as tf

    from kgen.export import export

    model = build(request.param)
    assert list(model.export_endpoints()) == ["generate"] and list(model.litert_endpoints) == ["generate"]
    folder = tmp_path_factory.mktemp(request.param)
    written = export(model, "saved_model", folder / "saved")
    assert written["endpoints"] == ["generate"]
    written = export(model, "litert", folder / "gen.tflite")
    assert written["endpoints"] == ["generate"]
    return model, tf.saved_model.load(str(folder / "saved")), folder / "gen.tflite"


@tf_only
@pytest.mark.parametrize("n", BATCHES)
def test_saved_model_generate_matches_keras(exported, n):
    model, saved, _ = exported
    arrays = inputs(model, n)
    got = saved.signatures["generate"](**arrays)
    assert list(got) == ["output_0"]
    want = keras_output(model, arrays)
    assert got["output_0"].shape == (n, 8, 8, 1)
    np.testing.assert_allclose(got["output_0"].numpy(), want, atol=ATOL)


@tf_only
@pytest.mark.parametrize("n", BATCHES)
def test_litert_generate_matches_keras(exported, n):
    from ai_edge_litert.interpreter import Interpreter

    model, _, tflite = exported
    runner = Interpreter(model_path=str(tflite)).get_signature_runner("generate")
    arrays = inputs(model, n)
    got = runner(**arrays)
    np.testing.assert_allclose(got["output_0"], keras_output(model, arrays), atol=ATOL)


@tf_only
def test_litert_is_builtin_ops_only(exported):
    from kgen.export import tflite_op_names

    _, _, tflite = exported
    ops = tflite_op_names(tflite)
    assert ops and not [op for op in ops if "Flex" in op or not op.isupper()], ops


@tf_only
def test_conditional_labels_change_the_export(tmp_path):
    import tensorflow as tf

    from kgen.export import export

    path = export(build("cgan"), "saved_model", tmp_path / "cgan")["path"]
    fn = tf.saved_model.load(path).signatures["generate"]
    z = np.repeat(np.random.default_rng(0).standard_normal((1, 4)).astype("float32"), 2, axis=0)
    out = fn(z=z, labels=np.array([0, 7], "int32"))["output_0"].numpy()
    assert not np.allclose(out[0], out[1], atol=1e-4)  # the label reaches the graph


def test_cli_export_of_this_backends_checkpoint(tmp_path):
    """A DCGAN checkpoint saved on this backend exports through `kgen export` (TF) and serves the same images."""
    from ai_edge_litert.interpreter import Interpreter

    model = build("dcgan")
    save_checkpoint(model, tmp_path / "dcgan.keras")
    env = dict(os.environ, KERAS_BACKEND=keras.config.backend(), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-m", "kgen.cli.main", "export", "--checkpoint", "dcgan.keras",
                             "--format", "litert", "--out", "gen.tflite"],
                            capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "exported generate to gen.tflite" in result.stdout
    runner = Interpreter(model_path=str(tmp_path / "gen.tflite")).get_signature_runner("generate")
    for n in BATCHES:
        arrays = inputs(model, n)
        np.testing.assert_allclose(runner(**arrays)["output_0"], keras_output(model, arrays), atol=ATOL)
