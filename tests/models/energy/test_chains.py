"""Markov-chain sampling (`sample_chains`, `kgen sample --chains/--burn-in/--steps`) and `kgen evaluate --ais-*`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen.cli.main import main
from kgen import backend, checkpoint
from kgen import config as config_lib
from kgen.errors import UsageError


def build(name, hidden=6, scale=1.0, **kwargs):
    levels = 2 if name == "rbm" else 17
    model = kgen.build_model(name, input_shape=(3, 3, 1), num_levels=levels, hidden_units=hidden, **kwargs)
    rng = np.random.default_rng(0)
    model.w.assign(rng.normal(0, scale, (9, hidden)).astype("float32"))
    model.b.assign(rng.normal(0, scale, 9).astype("float32"))
    model.c.assign(rng.normal(0, scale, hidden).astype("float32"))
    return model


@pytest.mark.parametrize("name", ["rbm", "gaussian_rbm"])
def test_chain_states_are_one_trajectory(name):
    """State k of a chain is `sample` run for burn_in + k * every steps on the same noise."""
    model = build(name, sample_steps=7)
    grid = model.sample_chains(3, 4, burn_in=2, every=3, seed=5)
    assert grid.shape == (3, 4, 3, 3, 1)
    model.sample_steps = 11  # the last state's 2 + 3 * 3 steps: the noise sample_chains drew
    start, *per_step = model.draw_noise(3, 5)
    model.sample_steps = 7
    for k, t in enumerate([2, 5, 8, 11]):
        expected = model.sample_from_noise(start, *[a[:, :t] for a in per_step])
        np.testing.assert_allclose(grid[:, k], backend.to_numpy(expected), atol=1e-6)
    assert model.sample_steps == 7  # restored
    # the last state is what sample() gives for a chain of that length with the same seed
    model.sample_steps = 11
    np.testing.assert_allclose(grid[:, -1], model.sample(3, seed=5), atol=1e-6)


def test_dbm_chain_states_are_one_trajectory():
    model = kgen.build_model("dbm", input_shape=(6, 1, 1), num_levels=2, hidden_units=(4, 3), sample_steps=5)
    rng = np.random.default_rng(0)
    for t in model.weight_list() + model.bias_list():
        t.assign(rng.normal(0, 1.0, t.shape).astype("float32"))
    grid = model.sample_chains(4, 3, burn_in=1, every=2, seed=3)
    assert grid.shape == (4, 3, 6, 1, 1) and set(np.unique(grid)) <= {0.0, 1.0}
    model.sample_steps = 5
    start, per_step = model.draw_noise(4, 3)
    for k, t in enumerate([1, 3, 5]):
        np.testing.assert_allclose(grid[:, k], backend.to_numpy(model.sample_from_noise(start, per_step[:, :t])))


def test_gsn_chain_states_are_one_trajectory():
    model = kgen.build_model("gsn", input_shape=(4,), num_levels=2, hidden_units=(8,), burn_in=2, chain_length=3)
    grid = model.sample_chains(5, 3, burn_in=2, every=3, seed=7)
    assert grid.shape == (5, 3, 4)
    # the same chains run 8 steps from the same seed: states after 2, 5 and 8 steps
    child = np.random.SeedSequence(7).spawn(1)[0]
    traj = model.run_chains(5, np.random.default_rng(child), steps=8)
    np.testing.assert_allclose(grid, traj[:, [1, 4, 7]])
    np.testing.assert_allclose(model.sample_chains(5, 3, burn_in=2, every=3, seed=7), grid)
    # default burn-in: the first state `sample` keeps (after burn_in + 1 steps)
    first = model.sample_chains(5, 1, seed=7)[:, 0]
    short = model.run_chains(5, np.random.default_rng(np.random.SeedSequence(7).spawn(1)[0]), steps=3)
    np.testing.assert_allclose(first, short[:, 2])
    with pytest.raises(UsageError, match="--burn-in"):
        model.sample_chains(2, 2, burn_in=0)


def test_ppgn_chain_states_are_one_trajectory_of_its_labelled_chain(tmp_path):
    """PPGN's sampler as a Markov chain: per chain one label, states after burn_in + k * every steps."""
    model = kgen.build_model("ppgn", input_shape=(3, 3, 1), num_levels=17, num_classes=4, hidden_units=(8,),
                             classifier_units=(8,), sample_steps=3)
    grid = model.sample_chains(2, 3, burn_in=1, every=2, seed=4, labels=[3, 1])
    assert grid.shape == (2, 3, 3, 3, 1)
    model.sample_steps = 5
    start, steps = model.draw_noise(2, 4)
    model.sample_steps = 3
    for k, t in enumerate([1, 3, 5]):
        expected = model.sample_from_noise(start, steps[:, :t], labels=np.array([3, 1], "int32"))
        np.testing.assert_allclose(grid[:, k], backend.to_numpy(expected), atol=1e-5)
    other = model.sample_chains(2, 3, burn_in=1, every=2, seed=4, labels=[0, 2])
    assert np.abs(other - grid).max() > 1e-4  # the label steers the chain (its classifier's gradient)
    with pytest.raises(UsageError, match="labels must lie"):
        model.sample_chains(2, 1, burn_in=1, labels=7)
    # `kgen sample --chains 2 -n 6 --label 2`: 2 chains of 3 states, labelled 2
    path = tmp_path / "ppgn.keras"
    checkpoint.save_checkpoint(model, path, {"config": config_lib.resolve(model="ppgn", dataset="digits")})
    out = tmp_path / "chains.npz"
    result = CliRunner().invoke(main, ["sample", "--checkpoint", str(path), "-n", "6", "--chains", "2",
                                       "--burn-in", "2", "--label", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as f:
        assert f["x"].shape == (6, 3, 3, 1) and list(f["y"]) == [2] * 6


def test_unconditional_chains_refuse_labels():
    with pytest.raises(UsageError, match="not conditional"):
        build("rbm").sample_chains(2, 1, burn_in=1, labels=1)
    gsn = kgen.build_model("gsn", input_shape=(4,), num_levels=2, hidden_units=(8,))
    with pytest.raises(UsageError, match="not conditional"):
        gsn.sample_chains(2, 1, burn_in=1, labels=1)


def test_dbm_evaluate_reports_ais_beside_exact_log_z():
    model = kgen.build_model("dbm", input_shape=(6, 1, 1), num_levels=2, hidden_units=(4, 3))
    rng = np.random.default_rng(1)
    for t in model.weight_list() + model.bias_list():
        t.assign(rng.normal(0, 0.5, t.shape).astype("float32"))
    assert model.supports("configure_ais")
    plain = model.evaluate_extra(None)
    assert plain["log_z_method"] == "exact" and "ais_log_z" not in plain
    model.configure_ais(chains=20, betas=300)
    both = model.evaluate_extra(None)
    assert both["ais_chains"] == 20 and both["ais_betas"] == 300
    assert abs(both["ais_log_z"] - both["log_z"]) < 4 * both["ais_log_z_stderr"] + 0.05


def test_chain_states_move_and_repeat_with_a_seed():
    model = build("rbm", hidden=4, scale=0.5)
    a = model.sample_chains(16, 5, burn_in=1, every=1, seed=0)
    b = model.sample_chains(16, 5, burn_in=1, every=1, seed=0)
    np.testing.assert_array_equal(a, b)
    assert np.any(a[:, 0] != a[:, -1])  # a weakly coupled chain mixes: states differ along it
    assert set(np.unique(a)) <= {0.0, 1.0}


def test_chain_arguments_are_checked():
    model = build("rbm")
    for kwargs, message in [(dict(chains=0, states=2), "chains"), (dict(chains=2, states=2, burn_in=0), "--burn-in"),
                            (dict(chains=2, states=2, every=0), "every")]:
        with pytest.raises(UsageError, match=message):
            model.sample_chains(**kwargs)
    assert model.supports("configure_ais") and model.supports("sample_chains")
    vae = kgen.build_model("vae", input_shape=(4, 4, 1), latent_dim=2)
    assert not vae.supports("configure_ais") and not vae.supports("sample_chains")
    with pytest.raises(UsageError, match="--ais-betas"):
        model.configure_ais(betas=2)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chains")
    paths = {}
    rbm = kgen.build_model("rbm", input_shape=(8, 8, 1), num_levels=2, hidden_units=8, sample_steps=5)
    paths["rbm"] = folder / "rbm.keras"
    checkpoint.save_checkpoint(rbm, paths["rbm"], {"config": config_lib.resolve(model="rbm", dataset="digits")})
    vae = kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17, latent_dim=2)
    paths["vae"] = folder / "vae.keras"
    checkpoint.save_checkpoint(vae, paths["vae"], {"config": config_lib.resolve(model="vae", dataset="digits")})
    return paths


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_writes_a_chain_progress_grid(saved, tmp_path):
    out = tmp_path / "chains.npz"
    result = run("sample", "--checkpoint", str(saved["rbm"]), "-n", "12", "--chains", "3", "--burn-in", "2",
                 "--steps", "4", "--seed", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "3 chains' progress" in result.output
    x = np.load(out)["x"]
    model = kgen.load_model(saved["rbm"])
    np.testing.assert_allclose(x, model.sample_chains(3, 4, burn_in=2, every=4, seed=1).reshape(12, 8, 8, 1))
    png = tmp_path / "chains.png"
    assert run("sample", "--checkpoint", str(saved["rbm"]), "-n", "8", "--chains", "2", "--out",
               str(png)).exit_code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    # --burn-in alone: n chains, one state each after B steps
    one = tmp_path / "one.npz"
    assert run("sample", "--checkpoint", str(saved["rbm"]), "-n", "5", "--burn-in", "3", "--seed", "2",
               "--out", str(one)).exit_code == 0
    np.testing.assert_allclose(np.load(one)["x"], model.sample_chains(5, 1, burn_in=3, seed=2)[:, 0])


@pytest.mark.parametrize("model, args, message", [
    ("vae", ["--chains", "2"], "does not sample by a Markov chain"),
    ("rbm", ["--steps", "3"], "add --chains"),
    ("rbm", ["--chains", "2", "--traverse", "3"], "latent models' grids"),
    ("rbm", ["--burn-in", "0"], "--burn-in must be"),
])
def test_chain_options_say_what_is_wrong(saved, tmp_path, model, args, message):
    result = run("sample", "--checkpoint", str(saved[model]), "-n", "4", "--out", str(tmp_path / "x.png"), *args)
    assert result.exit_code != 0 and message in result.output, result.output


def test_evaluate_ais_options(saved):
    # 8 hidden units: log Z is exact; --ais-* adds the AIS estimate beside it.
    result = run("evaluate", "--checkpoint", str(saved["rbm"]), "--max-examples", "20", "--ais-chains", "20",
                 "--ais-betas", "200", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["log_z_method"] == "exact" and data["ais_chains"] == 20 and data["ais_betas"] == 200
    assert abs(data["ais_log_z"] - data["log_z"]) < 3 * data["ais_log_z_stderr"] + 1e-3
    text = run("evaluate", "--checkpoint", str(saved["rbm"]), "--max-examples", "20", "--ais-chains", "20",
               "--ais-betas", "200")
    assert "(exact)" in text.output and "log Z (AIS: 20 chains, 200 betas)" in text.output, text.output
    # on a VAE the same options set the decoder AIS of log p(x) (kgen.metrics.ais; tests/metrics)
    vae = run("evaluate", "--checkpoint", str(saved["vae"]), "--max-examples", "5", "--iw-samples", "2",
              "--ais-chains", "2", "--ais-betas", "10", "--json")
    assert vae.exit_code == 0 and json.loads(vae.output)["ais"]["betas"] == 10, vae.output
