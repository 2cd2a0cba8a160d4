"""Shared fixtures. The suite runs once per backend: KERAS_BACKEND=tensorflow|jax|torch."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KGEN_OFFLINE", "1")  # tests never download

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
BACKEND = keras.config.backend()


def pytest_report_header(config):
    return f"kgen tests on the {BACKEND} backend"


@pytest.fixture
def digits():
    """A small slice of the bundled digits (train split)."""
    import kgen

    return kgen.load_dataset("digits").subset(256)


@pytest.fixture
def shared_data():
    """../shared/data (reference data for loader tests); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not present at {SHARED_DATA}")
    return SHARED_DATA


if BACKEND == "torch":
    import torch

    # Tiny models: one intra-op thread avoids thread hand-offs that cost more than the math.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="module", autouse=True)
def _seed_module():
    """Module-scoped fixtures (models shared by a test file) get weights that do
    not depend on which tests ran before them: autouse fixtures run first in their scope."""
    keras.utils.set_random_seed(0)
    np.random.seed(0)


def _tiny_config(model="vae", dataset="digits", *sets):
    from kgen import config as config_lib

    overrides = ["train.epochs=2", "train.batch_size=64", "data.max_examples=256", "train.grid_size=16"]
    overrides += list(sets)
    return config_lib.resolve(model=model, dataset=dataset, overrides=overrides)


@pytest.fixture
def tiny_config():
    """`tiny_config(model, dataset, *"key=value")`: a resolved config trimmed for a fast run."""
    return _tiny_config
