"""Every autoregressive recipe resolves (no unknown keys) and its digits model builds for the data."""

import pytest

from kgen import api
from kgen import config as config_lib
from kgen.training.trainer import build_for_data

MODELS = [e.name for e in api.list_entries() if e.family == "autoregressive"]  # from the registry


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
    assert model.conditional == api.get_entry(name).conditional


# === Paper-sized recipes (GPU runs: bench/autoregressive_nll.py --recipe binarized_mnist_paper) ===

PAPER = {  # what each must keep of its paper (the comment atop each file says what differs)
    "nade": dict(hidden_units=500, activation="sigmoid"),
    "made": dict(hidden_units=[8000], num_masks=32, eval_masks=32),
    "pixel_cnn": dict(num_blocks=15, first_kernel=7, kernel_size=3, output_filters=1024),
    "pixel_rnn": dict(cell="diagonal_bilstm", hidden_units=16, num_layers=7),
}


def test_the_paper_recipes_exist():
    assert sorted(r for r in config_lib.list_recipes()
                  if r.endswith("/binarized_mnist_paper") and r.split("/")[0] in MODELS) == [
        f"{m}/binarized_mnist_paper" for m in sorted(PAPER)
    ]


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_recipe_resolves_and_builds(name):
    """Strict resolution, the paper's architecture, longer training than the CPU recipe with the
    best validation checkpoint kept, and the full-size model builds for 28x28 binary images (no
    data file is read)."""
    import kgen

    path = config_lib.recipe_path(name, "binarized_mnist_paper")
    assert path.read_text().startswith("# Paper-sized recipe")
    config = config_lib.resolve(config_file=path)
    cpu = config_lib.resolve(model=name, dataset="binarized_mnist")
    assert config["model"]["name"] == name and config["data"]["name"] == "binarized_mnist"
    for key, want in PAPER[name].items():
        assert config["model"][key] == want, key
    assert config["train"]["epochs"] > cpu["train"]["epochs"]
    assert config["train"]["checkpoint_metric"] == "val_loss"
    hparams = config_lib.model_hparams(config)
    hparams.pop("conditional", None)
    model = kgen.build_model(name, input_shape=(28, 28, 1), num_levels=2, **hparams)
    assert model.num_dims == 784 and model.count_params() > 0
