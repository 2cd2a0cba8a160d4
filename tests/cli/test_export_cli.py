"""`kgen export`: a checkpoint trained on this backend exports (on TensorFlow) and serves the same outputs."""

import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest

import kgen
from kgen.checkpoint import save_checkpoint


def _kgen(*args):
    """Runs `python -m kgen.cli.main ARGS` with KERAS_BACKEND set to this test run's backend."""
    env = dict(os.environ, KERAS_BACKEND=keras.config.backend(), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "kgen.cli.main", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300,
                          cwd=tempfile.gettempdir())  # outside the source tree: the installed kgen runs


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A VAE trained one step on this backend, saved as a checkpoint."""
    keras.utils.set_random_seed(0)
    data = kgen.load_dataset("digits").subset(64)
    model = kgen.build_model("vae", input_shape=data.shape, num_levels=17, latent_dim=4, hidden_units=(32,))
    model.compile(optimizer="adam")
    model.fit(data.x, batch_size=64, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("checkpoint") / "vae.keras"
    save_checkpoint(model, path)
    return model, path


def test_export_saved_model_matches_this_backend(checkpoint, tmp_path):
    import tensorflow as tf  # always installed: loads a SavedModel under any Keras backend

    model, path = checkpoint
    out = tmp_path / "served"
    result = _kgen("export", "--checkpoint", path, "--format", "saved_model", "--out", out)
    assert result.returncode == 0, result.stderr
    assert f"exported encode, decode, sample to {out}" in result.stdout
    served = tf.saved_model.load(str(out))
    for n in (1, 8):
        z = np.random.default_rng(n).standard_normal((n, 4)).astype("float32")
        got = served.signatures["decode"](z=tf.constant(z))["output_0"].numpy()
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model.decode(z)), atol=1e-5)


def test_bad_format_exits_2_with_the_choices(tmp_path):
    result = _kgen("export", "--checkpoint", tmp_path / "vae.keras", "--format", "tflite", "--out", tmp_path / "o")
    assert result.returncode == 2
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and "'tflite' is not one of 'saved_model', 'litert', 'onnx'" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_checkpoint_exits_1_with_one_line(tmp_path):
    missing = tmp_path / "nope.keras"
    result = _kgen("export", "--checkpoint", missing, "--format", "saved_model", "--out", tmp_path / "o")
    assert result.returncode == 1
    assert _error_lines(result.stderr) == [f"Error: checkpoint {missing} does not exist."], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()
