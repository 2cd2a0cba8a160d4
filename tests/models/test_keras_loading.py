"""A `.keras` file from a user's own script loads with plain `keras.saving.load_model` once kgen is imported.

Each case runs in a fresh Python process, as a user's script would: registration must not depend on
anything a test session imported before. `import kgen` alone must not import Keras (the backend stays
choosable), yet kgen's classes register as soon as both are imported, in either order.
"""

import os
import subprocess
import sys
import textwrap

import keras
import pytest

BACKEND = keras.config.backend()

SAVE = """
import keras, numpy as np
import kgen
data = kgen.load_dataset("digits").subset(64)
model = kgen.build_model("vae", input_shape=data.shape, num_levels=data.num_levels, latent_dim=2, hidden_units=(8,))
model.compile(optimizer="adam")
model.fit(data.x, epochs=1, batch_size=32, verbose=0,
          callbacks=[keras.callbacks.ModelCheckpoint(r"{dir}/checkpoint.keras")])
model.save(r"{dir}/saved.keras")
np.save(r"{dir}/samples.npy", model.sample(4, seed=3))
"""

LOAD = """
import numpy as np
{imports}
for name in ("saved.keras", "checkpoint.keras"):
    model = keras.saving.load_model(r"{dir}/" + name)
    assert type(model).__name__ == "VAE", type(model)
np.testing.assert_allclose(keras.saving.load_model(r"{dir}/saved.keras").sample(4, seed=3),
                           np.load(r"{dir}/samples.npy"), atol=1e-6)
print("loaded")
"""


def python(code, tmp_path):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3", KGEN_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user_script")
    result = python(SAVE.format(dir=folder), folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.mark.parametrize("imports", ["import keras, kgen", "import kgen\nimport keras",
                                     "import keras\nimport kgen.data"])
def test_plain_keras_load_model_after_importing_kgen(saved, imports):
    result = python(LOAD.format(dir=saved, imports=imports), saved)
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr[-3000:]


def test_without_kgen_keras_cannot_load_it(saved):
    """The control: the registration above is kgen's doing, not something Keras does by itself."""
    result = python(LOAD.format(dir=saved, imports="import keras"), saved)
    assert result.returncode != 0 and "VAE" in result.stderr


def test_import_kgen_leaves_the_backend_choosable(tmp_path):
    result = python("import sys, kgen, kgen.cli.main, kgen.export\nassert 'keras' not in sys.modules\nprint('lazy')", tmp_path)
    assert result.returncode == 0 and "lazy" in result.stdout, result.stderr[-3000:]
