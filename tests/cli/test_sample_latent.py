"""`kgen sample --interpolate` (GAN latent walks) and `--code` (InfoGAN code grid)."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen import checkpoint
from kgen.cli.main import main


def run(*args):
    return CliRunner().invoke(main, ["--backend", keras.config.backend(), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An untrained DCGAN and InfoGAN on 8x8 images, saved as checkpoints (walks need no training)."""
    folder = tmp_path_factory.mktemp("latent")
    paths = {}
    for name, kwargs in {"dcgan": {"latent_dim": 8}, "info_gan": {}}.items():
        model = kgen.build_model(name, input_shape=(8, 8, 1), **kwargs)
        paths[name] = folder / f"{name}.keras"
        checkpoint.save_checkpoint(model, paths[name], {})
    return paths


def test_interpolate_writes_walks_between_two_latents(saved, tmp_path):
    out = tmp_path / "walks.npz"
    result = run("sample", "--checkpoint", str(saved["dcgan"]), "-n", "12", "--interpolate", "6", "--seed", "1",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "latent walks" in result.output
    x = np.load(out)["x"]
    assert x.shape == (12, 8, 8, 1)  # 2 rows of 6 steps
    model = kgen.load_model(saved["dcgan"])
    ends = model.draw_noise(4, 1)[0]
    np.testing.assert_allclose(x[0], model.generate_numpy(ends[:1])[0], atol=1e-5)   # walk 1 starts at z0
    np.testing.assert_allclose(x[5], model.generate_numpy(ends[1:2])[0], atol=1e-5)  # and ends at z1
    assert not np.allclose(x[2], x[0], atol=1e-4)  # and moves in between
    png = tmp_path / "walks.png"
    assert run("sample", "--checkpoint", str(saved["dcgan"]), "--interpolate", "8", "--out", str(png)).exit_code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_code_grid_for_infogan(saved, tmp_path):
    out = tmp_path / "codes.npz"
    result = run("sample", "--checkpoint", str(saved["info_gan"]), "--code", "0", "--out", str(out))
    assert result.exit_code == 0, result.output
    x = np.load(out)["x"]
    model = kgen.load_model(saved["info_gan"])
    np.testing.assert_allclose(x, model.code_grid(num_steps=8, code=0, seed=0), atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--interpolate", "1"], "at least 2 steps"),
    (["--code", "0"], "has none"),
    (["--interpolate", "4", "--code", "0"], "not both"),
])
def test_latent_options_say_what_is_wrong(saved, tmp_path, args, message):
    result = CliRunner().invoke(main, ["--backend", keras.config.backend(), "sample", "--checkpoint",
                                       str(saved["dcgan"]), *args, "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and message in result.output, result.output


def test_interpolate_refused_for_models_without_a_latent_walk(tmp_path):
    from kgen.saved import pretrained_path

    result = CliRunner().invoke(main, ["--backend", keras.config.backend(), "sample", "--checkpoint",
                                       str(pretrained_path("pixel_cnn")), "--interpolate", "4",
                                       "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "no `interpolate`" in result.output, result.output
