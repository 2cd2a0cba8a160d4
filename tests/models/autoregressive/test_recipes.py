"""Every autoregressive recipe resolves (no unknown keys) and its digits model builds for the data."""

import pytest

from kgen import config as config_lib
from kgen.training.trainer import build_for_data

MODELS = ["made", "nade", "pixel_cnn", "gated_pixel_cnn", "pixel_rnn", "multiscale_pixel_cnn"]


@pytest.mark.parametrize("name", MODELS)
def test_recipes(name, digits):
    for dataset in ("digits", "binarized_mnist"):
        path = config_lib.recipe_path(name, dataset)
        assert path is not None, f"configs/{name}/{dataset}.toml is missing"
        config = config_lib.resolve(model=name, dataset=dataset)
        assert config["model"]["name"] == name and config["description"]
        assert config["data"]["name"] == dataset
    config = config_lib.resolve(model=name, dataset="digits")
    model = build_for_data(config, digits)
    model.check_data(digits)
    assert model.num_levels == 17 and model.data_shape == (8, 8, 1)
    assert model.conditional == (name == "gated_pixel_cnn")
