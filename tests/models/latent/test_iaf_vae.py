"""The VAE with an IAF posterior: log q(z|x) by change of variables, reduction to the VAE, training."""

import math

import keras
import numpy as np
import pytest

import kgen
from kgen.errors import UsageError


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), "float64")


def _model(**kw):
    hparams = dict(input_shape=(2, 2, 1), num_levels=2, latent_dim=3, hidden_units=(8,), flow_steps=2,
                   flow_hidden_units=(6,), context_dim=4)
    return kgen.build_model("iaf_vae", **{**hparams, **kw})


def _randomize_flow(model, seed=0, scale=0.7):
    """Weights of every MADE (and the context layer) at a scale where each step is far from the identity."""
    rng = np.random.default_rng(seed)
    for layer in [model.context_out] + list(model.flow):
        for w in layer.weights:
            w.assign(rng.normal(scale=scale, size=w.shape).astype("float32"))


def test_log_q_matches_brute_force_change_of_variables():
    """log q(z_T|x) = log N(eps) - log |det dz_T / d eps|, the Jacobian by central differences."""
    model = _model(gate_bias=0.5)
    _randomize_flow(model)
    x = np.array([[[[1.0], [0.0]], [[1.0], [1.0]]]], "float32")
    rng = np.random.default_rng(1)
    for _ in range(3):
        eps = rng.standard_normal(3)
        h = 1e-2
        probes = [eps]
        for i in range(3):
            for sign in (1.0, -1.0):
                e = eps.copy()
                e[i] += sign * h
                probes.append(e)
        batch = np.array(probes, "float32")[:, None, :]  # (7, 1, 3): k samples of one example
        z, log_q = model.posterior_sample(x, None, batch)
        z, log_q = _np(z)[:, 0], _np(log_q)[:, 0]
        jac = np.stack([(z[1 + 2 * i] - z[2 + 2 * i]) / (2 * h) for i in range(3)], axis=1)  # dz_j/deps_i
        mean, logvar, _ = (_np(t) for t in model.posterior_params(x))
        log_normal = -0.5 * np.sum(eps ** 2 + math.log(2 * math.pi))
        brute = log_normal - np.log(abs(np.linalg.det(jac)))
        np.testing.assert_allclose(log_q[0], brute, atol=2e-3)
        # and the flow does something: log q(z_T) is far from the base Gaussian's log q(z_0)
        assert np.all(np.isfinite(mean)) and abs(brute - (log_normal - 0.5 * logvar.sum())) > 0.1


def test_each_step_is_autoregressive_and_the_order_reverses():
    """One step: z_T,i depends on eps_<=i only; two steps (reversed between): every output sees every input."""
    x = np.zeros((1, 2, 2, 1), "float32")
    eps = np.random.default_rng(2).standard_normal((1, 1, 3)).astype("float32")
    jac = {}
    for steps in (1, 2):
        model = _model(flow_steps=steps)
        _randomize_flow(model, seed=3)
        z0 = _np(model.posterior_sample(x, None, eps)[0])[0, 0]
        cols = []
        for i in range(3):
            e = eps.copy()
            e[0, 0, i] += 1e-2
            cols.append((_np(model.posterior_sample(x, None, e)[0])[0, 0] - z0) / 1e-2)
        jac[steps] = np.abs(np.stack(cols, axis=1))  # [j, i] = |dz_j / deps_i|
    assert np.all(jac[1][np.triu_indices(3, 1)] < 1e-6)  # lower triangular: autoregressive
    assert np.all(jac[1][np.tril_indices(3, -1)] > 1e-3)
    assert np.all(jac[2] > 1e-4)  # dense after the reversal


def _copy_vae_weights(source, target):
    for name in ("encoder_out", "decoder_out"):
        getattr(target, name).set_weights(getattr(source, name).get_weights())
    for a, b in zip(source.encoder_body + source.decoder_body, target.encoder_body + target.decoder_body):
        b.set_weights(a.get_weights())


def test_identity_flow_steps_give_the_plain_vae_bounds():
    """Zero-initialised MADE outputs (m = 0) with the gate shut open (sigmoid(30) = 1 in float32) make every
    step the identity: the ELBO and the IW bound equal the plain VAE's with the same weights and noise."""
    data = kgen.load_dataset("digits")
    x = data.x[:40]
    common = dict(input_shape=data.shape, num_levels=17, latent_dim=4, hidden_units=(32,))
    vae = kgen.build_model("vae", **common)
    iaf = kgen.build_model("iaf_vae", flow_steps=3, flow_hidden_units=(8,), context_dim=5, gate_bias=30.0, **common)
    _copy_vae_weights(vae, iaf)
    _randomize_flow(iaf)
    for made in iaf.flow:
        for w in made.masked[-1].weights:  # the output layer: zero-initialised
            w.assign(np.zeros(w.shape, "float32"))
    elbo = iaf.elbo_terms(x, seed=5)
    # The IAF's ELBO is a one-sample estimate of E_q[log p(x, z) - log q(z|x)]: the VAE's k = 1 bound, same noise.
    np.testing.assert_allclose(elbo["elbo"], vae.iw_log_prob(x, k=1, seed=5), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(iaf.iw_log_prob(x, k=20, seed=6), vae.iw_log_prob(x, k=20, seed=6), rtol=1e-5, atol=1e-4)
    # and its KL estimate averages to the VAE's analytic KL
    kl = iaf.elbo_terms(np.repeat(x, 30, axis=0), seed=7)["kl"]
    np.testing.assert_allclose(kl.mean(), vae.elbo_terms(x, seed=0)["kl"].mean(), atol=0.12)  # 1200 draws
    # a gate that is not open changes the bound (the comparison can fail)
    iaf.gate_bias = 0.0
    iaf._kgen_fns.clear()
    assert np.abs(iaf.iw_log_prob(x, k=20, seed=6) - vae.iw_log_prob(x, k=20, seed=6)).max() > 1e-2


def test_trains_the_flow_and_iw_bound_tightens():
    data = kgen.load_dataset("digits")
    model = kgen.build_model("iaf_vae", input_shape=data.shape, num_levels=17, latent_dim=6, hidden_units=(64,),
                             flow_steps=2, flow_hidden_units=(16,), context_dim=8)
    before = [_np(w).copy() for w in model.flow[0].weights]
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(data.x, batch_size=64, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 10.0
    assert all(np.abs(_np(w) - b).max() > 1e-4 for w, b in zip(model.flow[0].weights, before))
    x = data.x[:100]
    elbo = model.log_prob(x, seed=0)
    iw = model.iw_log_prob(x, k=50, seed=0)
    assert np.all(np.isfinite(iw)) and iw.mean() > elbo.mean()


def test_iwae_training_objective_and_bad_arguments():
    data = kgen.load_dataset("digits")
    model = kgen.build_model("iaf_vae", input_shape=data.shape, num_levels=17, latent_dim=3, hidden_units=(16,),
                             flow_steps=1, flow_hidden_units=(8,), context_dim=4, train_samples=4)
    model.compile(optimizer="adam")
    out = model(data.x[:5])
    assert set(out) == {"recon", "kl", "iw_bound"} and tuple(out["iw_bound"].shape) == (5,)
    model.fit(data.x[:64], batch_size=32, epochs=1, verbose=0)
    with pytest.raises(UsageError, match="flow_steps"):
        _model(flow_steps=-1)
