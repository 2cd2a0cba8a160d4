"""`kgen sample --edit --label K`: a latent_constraints run edits test examples toward a class."""

import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen.cli.main import main
from kgen import checkpoint
from kgen import config as config_lib
from kgen.training.trainer import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    sets = ['model.vae=""', "model.vae_epochs=1", "model.vae_latent_dim=3", "model.vae_hidden_units=[16]",
            "model.actor_units=[16]", "model.critic_units=[16]", "model.judge_units=[16]", "data.max_examples=128",
            "train.batch_size=32", "train.epochs=2", "train.grid_size=4"]
    config = config_lib.resolve(model="latent_constraints", dataset="digits", overrides=sets)
    _, folder, _ = train(config, run_dir=tmp_path_factory.mktemp("lc") / "run", verbose=0)
    return folder


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_edits_keep_the_examples_shape_and_take_the_label(run_dir, tmp_path):
    out = tmp_path / "e.npz"
    result = run("sample", "--checkpoint", run_dir, "-n", 5, "--label", 3, "--edit", "--seed", 1, "--out", out)
    assert result.exit_code == 0 and "edits toward label 3" in result.output, result.output
    with np.load(out) as f:
        assert f["source"].shape == f["x"].shape == (5, 8, 8, 1) and list(f["y"]) == [3] * 5
        assert not np.allclose(f["source"], f["x"])
    png = tmp_path / "e.png"
    assert run("sample", "--checkpoint", run_dir, "-n", 4, "--label", 7, "--edit", "--out", png).exit_code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_edit_errors_say_what_to_do(run_dir, tmp_path):
    missing = run("sample", "--checkpoint", run_dir, "--edit", "--out", tmp_path / "x.png")
    assert missing.exit_code == 2 and "--edit needs --label K" in missing.output, missing.output
    vae = kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17, latent_dim=2, hidden_units=(8,))
    path = tmp_path / "vae.keras"
    checkpoint.save_checkpoint(vae, path, {"config": config_lib.resolve(model="vae", dataset="digits")})
    refused = run("sample", "--checkpoint", path, "--edit", "--out", tmp_path / "x.png")
    assert refused.exit_code == 2 and "does not edit" in refused.output, refused.output
