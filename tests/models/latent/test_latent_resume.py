"""Resume equality for the latent models of issue 21 (the Concrete VAE has its own, with its annealing):
a run interrupted after epoch 1 and resumed ends with the weights, optimizer steps and noise-generator
states of one never interrupted (the adversarial models' two optimizers included)."""

import keras
import numpy as np
import pytest

from kgen import api, checkpoint
from kgen import config as config_lib
from kgen.training.trainer import train

BACKEND = keras.config.backend()


def config(name, epochs):
    entry = api.get_entry(name)
    sets = [(["model", k], list(v) if isinstance(v, tuple) else v) for k, v in entry.tiny.items()]
    sets += [(["train", k], v) for k, v in dict(epochs=epochs, batch_size=16, grid_size=4).items()]
    sets += [(["data", "max_examples"], 48)]
    return config_lib.resolve(model=name, dataset="digits", overrides=sets)


@pytest.mark.parametrize("name", ["autoencoder", "iaf_vae", "aae", "avb"])
def test_a_resumed_run_matches_an_uninterrupted_one(name, tmp_path):
    if BACKEND not in api.get_entry(name).backends:
        pytest.skip(f"{name} does not run on {BACKEND}")
    keras.utils.set_random_seed(0)
    full, _, _ = train(config(name, 2), run_dir=tmp_path / "full", verbose=0)
    keras.utils.set_random_seed(0)
    train(config(name, 1), run_dir=tmp_path / "cut", verbose=0)
    keras.utils.set_random_seed(123)  # the resumed run must not depend on the process's global seed
    resumed, _, _ = train(None, run_dir=tmp_path / "cut", resume=True, epochs=2, verbose=0)
    strip = lambda w: w.path.split("/", 1)[-1]  # noqa: E731 (the model's own name gets a suffix per process)
    assert [strip(w) for w in full.weights] == [strip(w) for w in resumed.weights]
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6, err_msg=a.path)
    np.testing.assert_array_equal(checkpoint.seed_states(full), checkpoint.seed_states(resumed))
