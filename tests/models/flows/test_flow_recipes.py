"""The flow recipes resolve strictly and build; one short `kgen.train` run writes the density figure."""

import pathlib

import numpy as np
import pytest

import kgen
from flow_checks import BACKEND, needs_tfp
from kgen import config as config_lib
from kgen.training.trainer import build_for_data

pytestmark = needs_tfp

FLOWS = ("nice", "real_nvp", "maf", "iaf", "spline_flow", "glow")
RECIPES = sorted(r for r in config_lib.list_recipes() if r.split("/")[0] in FLOWS)


def test_every_flow_has_a_recipe():
    assert {r.split("/")[0] for r in RECIPES} == set(FLOWS)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_resolves_and_builds(recipe):
    """Every key checks (strict config); images are dequantized, with the model's own logit step.

    The full-size models are built on TensorFlow only: a recipe does not
    depend on the backend, and eager JAX compiles every initializer op.
    """
    model, dataset = recipe.split("/")
    config = config_lib.resolve(model=model, dataset=dataset)
    data = kgen.load_dataset(dataset, num_examples=8) if dataset != "digits" else kgen.load_dataset("digits")
    image = data.kind == "image"
    assert config["data"]["dequantize"] == image  # flows on images need dequantized data
    if image:
        assert config["data"]["logit_alpha"] == 0.0 and config["model"]["logit_alpha"] > 0
    if BACKEND == "tensorflow" or not image:
        flow = build_for_data(config, data)
        assert flow.data_shape == data.shape


def test_train_a_toy_flow_writes_the_density_figure(tiny_config, tmp_path):
    config = tiny_config("real_nvp", "moons", "model.num_couplings=2", "model.hidden_units=[16]",
                         "train.epochs=1", "train.batch_size=128")
    model, run_dir, last = kgen.train(config, run_dir=tmp_path / "run", verbose=0)
    png = pathlib.Path(run_dir) / "samples" / "epoch_001.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.isfinite(last["loss"]) and np.isfinite(last["val_loss"])
