"""Strict recipes: unknown keys at any depth, types, --set overrides, round trip."""

import pytest

from kgen import config as config_lib
from kgen.errors import ConfigError


def test_default_recipe_is_vae_on_digits():
    config = config_lib.resolve()
    assert config["model"]["name"] == "vae"
    assert config["data"]["name"] == "digits"
    assert config["model"]["likelihood"] == "categorical"  # from configs/vae/digits.toml


def test_unknown_key_deep_in_a_table_names_full_path(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[model]\nname = "vae"\nlatent_dimm = 3\n')
    with pytest.raises(ConfigError, match=r"model\.latent_dimm.*Did you mean \"latent_dim\""):
        config_lib.resolve(config_file=path)


def test_unknown_table_and_type_errors(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[trian]\nepochs = 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key trian.*Did you mean \"train\""):
        config_lib.resolve(config_file=path)
    path.write_text('[train]\nepochs = "ten"\n')
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer"):
        config_lib.resolve(config_file=path)


def test_set_overrides_are_typed_and_checked():
    config = config_lib.resolve(overrides=["train.epochs=3", "model.hidden_units=[32]", "train.learning_rate=1"])
    assert config["train"]["epochs"] == 3
    assert config["model"]["hidden_units"] == [32]
    assert config["train"]["learning_rate"] == 1.0 and isinstance(config["train"]["learning_rate"], float)
    with pytest.raises(ConfigError, match=r"train\.epoch\b.*Did you mean \"epochs\""):
        config_lib.resolve(overrides=["train.epoch=3"])
    with pytest.raises(ConfigError, match=r"train\.batch_size: expected an integer"):
        config_lib.resolve(overrides=["train.batch_size=big"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        config_lib.resolve(overrides=["train.epochs"])
    with pytest.raises(ConfigError, match=r"data\.binarize.*not one of"):
        config_lib.resolve(overrides=["data.binarize=sometimes"])
    assert config_lib.resolve()["train"]["xla"] == "auto"
    assert config_lib.resolve(overrides=["train.xla=on"])["train"]["xla"] == "on"
    with pytest.raises(ConfigError, match=r"train\.xla.*not one of"):
        config_lib.resolve(overrides=["train.xla=yes"])


def test_resolved_config_round_trips_through_toml(tmp_path):
    config = config_lib.resolve(overrides=["train.epochs=7", "data.binarize=dynamic", "model.beta=2.5"])
    path = tmp_path / "config.toml"
    path.write_text(config_lib.dumps(config))
    assert config_lib.resolve(config_file=path) == config


def test_every_bundled_recipe_resolves():
    recipes = config_lib.list_recipes()
    assert "vae/digits" in recipes
    for recipe in recipes:
        model, dataset = recipe.split("/", 1)
        config = config_lib.resolve(config_file=config_lib.recipe_path(model, dataset))
        assert config["model"]["name"] == model
