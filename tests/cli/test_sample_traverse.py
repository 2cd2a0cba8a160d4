"""Latent walks of the latent family: `interpolate`, `latent_arithmetic`, `traverse` and `kgen sample --traverse`."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen import checkpoint
from kgen import config as config_lib
from kgen.cli.main import main

LATENT_MODELS = {
    "vae": dict(latent_dim=4, hidden_units=(16,)),
    "concrete_vae": dict(latent_vars=3, latent_classes=4, hidden_units=(16,)),
    "autoencoder": dict(code_dim=4, hidden_units=(16,)),
}


def run(*args):
    return CliRunner().invoke(main, ["--backend", keras.config.backend(), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def models():
    """Each latent model, untrained (a random decoder depends on z too: walks need no training);
    the autoencoder's code Gaussian fitted to the codes of the data."""
    data = kgen.load_dataset("digits").subset(256)
    out = {}
    for name, kwargs in LATENT_MODELS.items():
        keras.utils.set_random_seed(0)
        out[name] = kgen.build_model(name, input_shape=data.shape, num_levels=17, **kwargs)
    out["autoencoder"].fit_code_gaussian(data.x)
    return out, data


@pytest.mark.parametrize("name", sorted(LATENT_MODELS))
def test_interpolation_ends_decode_to_the_end_codes(models, name):
    nets, data = models
    model = nets[name]
    assert model.supports("interpolate") and model.supports("traverse") and model.supports("latent_arithmetic")
    for z in (model.latent_codes(data.x[:2]), model.draw_latents(2, seed=3)):  # two examples, two prior draws
        walk = model.interpolate(z[0], z[1], num_steps=5)
        ends = model.decode_latents(z)
        assert walk.shape == (5,) + data.shape
        np.testing.assert_allclose(walk[0], ends[0], atol=1e-5)
        np.testing.assert_allclose(walk[-1], ends[1], atol=1e-5)
        assert not np.allclose(walk[2], walk[0], atol=1e-4)  # and it moves in between


def test_concrete_walks_stay_on_the_simplex(models):
    nets, data = models
    model = nets["concrete_vae"]
    codes = model.latent_codes(data.x[:3])
    np.testing.assert_allclose(codes.sum(axis=-1), 1.0, atol=1e-5)  # posterior means: points of each simplex
    draws = model.draw_latents(4, seed=0)
    assert set(np.unique(draws)) <= {0.0, 1.0} and np.all(draws.sum(axis=-1) == 1)  # one-hot prior draws
    with pytest.raises(kgen.errors.UsageError, match="linear"):
        model.interpolate(codes[0], codes[1], method="slerp")


def test_latent_arithmetic_decodes_a_minus_b_plus_c(models):
    nets, data = models
    model = nets["vae"]
    za, zb, zc = (model.latent_codes(data.x[i : i + 3]) for i in (0, 3, 6))
    out = model.latent_arithmetic(za, zb, zc)  # groups of three, averaged first
    expected = model.decode_latents((za.mean(0) - zb.mean(0) + zc.mean(0))[None])[0]
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["vae", "autoencoder"])
def test_traversal_grid_changes_only_the_chosen_dimension_along_a_row(models, name):
    nets, data = models
    model = nets[name]
    grid = model.traverse(x=data.x[:100], top_k=3, num_steps=5, span=2.0)
    assert grid.images.shape == (15,) + data.shape and grid.codes.shape == (3, 5, 4)
    base = model.latent_codes(data.x[:1])[0]
    centre, scale = model.latent_location()
    for r, d in enumerate(grid.dims):
        other = np.arange(4) != d
        np.testing.assert_allclose(grid.codes[r][:, other], np.broadcast_to(base[other], (5, 3)), atol=1e-6)
        np.testing.assert_allclose(grid.codes[r][:, d], centre[d] + np.linspace(-2, 2, 5) * scale[d], rtol=1e-5)
        np.testing.assert_allclose(grid.images[5 * r : 5 * r + 5], model.decode_latents(grid.codes[r]), atol=1e-5)
    # Rows are the most active dimensions, most active first.
    activity = model.latent_activity(data.x[:100])
    np.testing.assert_array_equal(grid.dims, np.argsort(-activity, kind="stable")[:3])


def test_vae_activity_is_the_kl_per_dimension(models):
    nets, data = models
    model = nets["vae"]
    per_dim = model.latent_activity(data.x[:64])
    assert per_dim.shape == (4,) and np.all(per_dim >= 0)
    np.testing.assert_allclose(per_dim.sum(), model.score(data.x[:64], seed=0)["kl"].mean(), rtol=1e-4)


def test_concrete_traversal_cycles_one_variable_through_its_classes(models):
    nets, data = models
    model = nets["concrete_vae"]
    grid = model.traverse(x=data.x[:100], top_k=2)
    assert grid.codes.shape == (2, 4, 3, 4) and grid.images.shape == (8,) + data.shape
    base = model.latent_codes(data.x[:1])[0]
    for r, v in enumerate(grid.dims):
        np.testing.assert_array_equal(grid.codes[r][:, v], np.eye(4))  # class c in column c
        others = np.arange(3) != v
        np.testing.assert_allclose(grid.codes[r][:, others], np.broadcast_to(base[others], (4, 2, 4)), atol=1e-6)


@pytest.fixture(scope="module")
def saved(models, tmp_path_factory):
    """The walked models as checkpoints recording the digits recipe (so the CLI finds test examples)."""
    nets, _ = models
    folder = tmp_path_factory.mktemp("walks")
    paths = {}
    for name, model in nets.items():
        paths[name] = folder / f"{name}.keras"
        checkpoint.save_checkpoint(model, paths[name], {"config": config_lib.resolve(model=name, dataset="digits")})
    gan = kgen.build_model("dcgan", input_shape=(8, 8, 1), latent_dim=8)
    paths["dcgan"] = folder / "dcgan.keras"
    checkpoint.save_checkpoint(gan, paths["dcgan"], {})
    return paths


@pytest.mark.parametrize("name", ["vae", "concrete_vae"])
def test_cli_traverse_writes_a_png_grid(saved, tmp_path, name):
    png = tmp_path / "grid.png"
    result = run("sample", "--checkpoint", str(saved[name]), "--traverse", "5", "--top-k", "2", "--out", str(png))
    assert result.exit_code == 0, result.output
    assert "traversal grid" in result.output and png.read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "grid.npz"
    assert run("sample", "--checkpoint", str(saved[name]), "--traverse", "5", "--top-k", "2", "--seed", "4",
               "--out", str(out)).exit_code == 0
    arrays = np.load(out)
    columns = 5 if name == "vae" else 4  # the Concrete VAE's columns are its 4 classes
    assert arrays["x"].shape == (2 * columns, 8, 8, 1) and arrays["dims"].shape == (2,)
    assert arrays["values"].shape == (2, columns)


def test_cli_interpolates_between_test_examples(saved, models, tmp_path):
    nets, _ = models
    out = tmp_path / "walks.npz"
    result = run("sample", "--checkpoint", str(saved["vae"]), "--interpolate", "4", "-n", "8", "--from-data",
                 "--seed", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    x = np.load(out)["x"]
    assert x.shape == (8, 8, 8, 1)
    starts = nets["vae"].decode_latents(nets["vae"].latent_codes(_test_examples()))
    # Each walk starts and ends at the decode of a test example's code.
    assert min(np.abs(starts - x[0]).max(axis=(1, 2, 3))) < 1e-5
    assert min(np.abs(starts - x[3]).max(axis=(1, 2, 3))) < 1e-5
    prior = tmp_path / "prior.npz"
    assert run("sample", "--checkpoint", str(saved["autoencoder"]), "--interpolate", "4", "-n", "8", "--seed", "2",
               "--out", str(prior)).exit_code == 0
    ends = nets["autoencoder"].draw_latents(4, 2)  # prior walks: the fitted code Gaussian's draws
    np.testing.assert_allclose(np.load(prior)["x"][0], nets["autoencoder"].decode_latents(ends[:1])[0], atol=1e-5)


def _test_examples():
    from kgen.data.pipeline import Pipeline

    pipeline = Pipeline(config_lib.resolve(model="vae", dataset="digits")["data"])
    return pipeline.prepare(pipeline.load("test"), seed=0).x


@pytest.mark.parametrize("model, args, message", [
    ("dcgan", ["--traverse", "5"], "no `traverse`"),
    ("vae", ["--traverse", "1"], "at least 2"),
    ("vae", ["--traverse", "4", "--top-k", "0"], "--top-k"),
    ("vae", ["--traverse", "4", "--interpolate", "4"], "one of"),
    ("vae", ["--from-data"], "add --interpolate"),
    ("dcgan", ["--interpolate", "4", "--from-data"], "records none"),
])
def test_traverse_options_say_what_is_wrong(saved, tmp_path, model, args, message):
    result = CliRunner().invoke(main, ["--backend", keras.config.backend(), "sample", "--checkpoint",
                                       str(saved[model]), *args, "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and message in result.output, result.output
