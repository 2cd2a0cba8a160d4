"""AIS of log p(x) for decoder-based models (Wu et al. 2017) against quadrature on a 2-D latent."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen.cli.main import main
from kgen import backend, checkpoint
from kgen import config as config_lib
from kgen.errors import UsageError
from kgen.metrics.ais import decoder_ais, sigmoid_schedule


@pytest.fixture(scope="module")
def vae():
    model = kgen.build_model("vae", input_shape=(3, 3, 1), num_levels=2, latent_dim=2, hidden_units=(8,))
    rng = np.random.default_rng(0)
    for w in model.trainable_weights:  # a decoder with a sharp, non-Gaussian posterior
        w.assign(rng.normal(0, 1.5, w.shape).astype("float32"))
    return model


def quadrature_log_prob(model, x, half_width=7.0, points=281):
    """log p(x) = log sum_grid p(z) p(x|z) dz on a fine grid of the 2-D latent."""
    g = np.linspace(-half_width, half_width, points, dtype="float32")
    z = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    log_dz = 2 * np.log(g[1] - g[0])
    out = []
    for xi in x:
        xr = np.repeat(xi[None], len(z), axis=0)
        log_prior, log_lik = model.latent_log_joint(xr, z)
        total = backend.to_numpy(log_prior) + backend.to_numpy(log_lik)
        top = total.max()
        out.append(top + np.log(np.exp(total - top).sum()) + log_dz)
    return np.array(out)


def test_sigmoid_schedule_runs_from_zero_to_one():
    b = sigmoid_schedule(101)
    assert b[0] == 0.0 and b[-1] == 1.0 and np.all(np.diff(b) > 0)
    assert np.diff(b)[0] < np.diff(b)[50]  # dense near the ends
    with pytest.raises(UsageError, match="--ais-betas"):
        sigmoid_schedule(1)


def test_ais_matches_quadrature_and_beats_the_iw_bound(vae):
    x = (np.random.default_rng(1).uniform(size=(6, 3, 3, 1)) < 0.5).astype("float32")
    exact = quadrature_log_prob(vae, x)
    run = decoder_ais(vae, x, chains=32, betas=500, leapfrog=5, seed=0)
    assert run["log_prob"].shape == (6,) and 0.3 < run["accept_rate"] < 0.99
    err = np.abs(run["log_prob"] - exact)
    assert np.all(err < 4 * run["log_prob_stderr"] + 0.02), (err, run["log_prob_stderr"])
    assert err.mean() < 0.08
    # one beta step is importance sampling from the prior: far off on these sharp posteriors
    crude = decoder_ais(vae, x, chains=32, betas=2, leapfrog=1, seed=0)["log_prob"]
    assert np.abs(crude - exact).mean() > 5 * err.mean()
    iw = vae.iw_log_prob(x, k=8, seed=0)
    assert np.mean(run["log_prob"]) > np.mean(iw)
    again = decoder_ais(vae, x, chains=32, betas=500, leapfrog=5, seed=0)["log_prob"]
    np.testing.assert_allclose(again, run["log_prob"], rtol=1e-6)


def test_cli_reports_ais_for_a_vae_and_refuses_it_for_a_gan(tmp_path):
    vae = kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17, latent_dim=2, hidden_units=(16,))
    path = tmp_path / "vae.keras"
    checkpoint.save_checkpoint(vae, path, {"config": config_lib.resolve(model="vae", dataset="digits")})
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(path), "--max-examples", "4", "--iw-samples",
                                       "8", "--ais-chains", "3", "--ais-betas", "20", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ais"]["chains"] == 3 and data["ais"]["betas"] == 20
    assert np.isfinite(data["ais"]["nats"]) and data["ais"]["nats"] < 0
    text = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(path), "--max-examples", "2", "--iw-samples",
                                     "2", "--ais", "--ais-betas", "10"])
    assert text.exit_code == 0 and "AIS log p(x) (16 chains, 10 betas" in text.output, text.output
    refused = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(path), "--ais-sigma", "0.1"])
    assert refused.exit_code == 2 and "has none to set" in refused.output, refused.output
    gan = kgen.build_model("gan", input_shape=(8, 8, 1), num_levels=17, latent_dim=2, generator_units=(8,),
                           discriminator_units=(8,))
    gpath = tmp_path / "gan.keras"
    checkpoint.save_checkpoint(gan, gpath, {"config": config_lib.resolve(model="gan", dataset="digits")})
    refused = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(gpath), "--ais"])
    assert refused.exit_code == 2 and "pass --ais-sigma" in refused.output, refused.output
    refused = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(gpath), "--ais-sigma", "0"])
    assert refused.exit_code == 2 and "--ais-sigma must be" in refused.output, refused.output
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(gpath), "--max-examples", "3", "--ais-sigma",
                                       "0.2", "--ais-chains", "2", "--ais-betas", "10", "--no-sample-metrics",
                                       "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["nll_kind"] == "ais" and data["ais"]["observation_std"] == 0.2 and np.isfinite(data["nll"]["nats"])
    with pytest.raises(UsageError, match="--ais-sigma"):  # the mixin needs its sigma
        gan.latent_log_joint(np.zeros((1, 8, 8, 1), "float32"), np.zeros((1, 2), "float32"))


@pytest.fixture(scope="module")
def gan():
    model = kgen.build_model("gan", input_shape=(3, 3, 1), num_levels=17, latent_dim=2, generator_units=(8,),
                             discriminator_units=(4,))
    rng = np.random.default_rng(2)
    for w in model.generator.trainable_weights:  # a curved generator: p(x) is no Gaussian
        w.assign(rng.normal(0, 1.5, w.shape).astype("float32"))
    model.observation_std = 0.15
    return model


def test_gan_ais_matches_quadrature_with_gaussian_observations(gan):
    """Wu et al.'s GAN evaluation: log p(x) = log E_z N(x; G(z), sigma^2 I), AIS against a 2-D quadrature."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 2)).astype("float32")
    x = np.clip(gan.generate_numpy(z) + rng.normal(0, 0.15, (5, 3, 3, 1)), 0, 1).astype("float32")
    exact = quadrature_log_prob(gan, x)
    run = decoder_ais(gan, x, chains=32, betas=500, leapfrog=5, seed=0)
    err = np.abs(run["log_prob"] - exact)
    assert np.all(err < 4 * run["log_prob_stderr"] + 0.05), (err, run["log_prob_stderr"])
    crude = decoder_ais(gan, x, chains=32, betas=2, leapfrog=1, seed=0)["log_prob"]
    assert np.abs(crude - exact).mean() > 3 * err.mean()


def test_gan_observation_density_is_on_the_unit_scale_for_a_tanh_generator():
    model = kgen.build_model("gan", input_shape=(2, 2, 1), num_levels=17, latent_dim=3, generator_units=(4,),
                             discriminator_units=(4,), output_activation="tanh")
    model.observation_std = 0.2
    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 3)).astype("float32")
    x = rng.uniform(-1, 1, (6, 2, 2, 1)).astype("float32")  # the model's [-1, 1] scale
    log_prior, log_lik = (backend.to_numpy(t) for t in model.latent_log_joint(x, z))
    mean01 = (model.generate_numpy(z).reshape(6, -1) + 1) / 2
    x01 = (x.reshape(6, -1) + 1) / 2
    expected = (-0.5 * ((x01 - mean01) / 0.2) ** 2 - np.log(0.2) - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(log_lik, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(log_prior, (-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi)).sum(-1), rtol=1e-6)


def test_avb_gets_a_log_likelihood_from_ais(tmp_path):
    avb = kgen.build_model("avb", input_shape=(8, 8, 1), num_levels=17, latent_dim=2, noise_dim=2,
                           hidden_units=(16,), adversary_units=(16,))
    assert avb.supports("latent_log_joint") and not avb.has_likelihood
    path = tmp_path / "avb.keras"
    checkpoint.save_checkpoint(avb, path, {"config": config_lib.resolve(model="avb", dataset="digits")})
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(path), "--max-examples", "3",
                                       "--ais-chains", "2", "--ais-betas", "10", "--no-sample-metrics", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["nll_kind"] == "ais" and data["nll"]["nats"] == pytest.approx(-data["ais"]["nats"])
    assert "elbo_estimate" in data  # the adversary's estimate stays beside it
