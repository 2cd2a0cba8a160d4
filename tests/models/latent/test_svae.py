"""The structured VAE (kgen.models.latent.svae): local inference against closed forms, the SVI step
against the conjugate posterior, save/load, resume, and training on every backend."""

import keras
import numpy as np
import pytest
from keras import ops

import kgen
from kgen import api, checkpoint
from kgen import config as config_lib
from kgen.data import bouncing
from kgen.models.latent import svae
from kgen.training.trainer import train

BACKEND = keras.config.backend()
LOG_2PI = np.log(2 * np.pi)


def np_(x):
    return np.asarray(keras.ops.convert_to_numpy(x), "float64")


def gauss_logpdf(y, mean, cov):
    d = len(y)
    diff = y - mean
    return -0.5 * (d * LOG_2PI + np.linalg.slogdet(cov)[1] + diff @ np.linalg.solve(cov, diff))


def spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.5 * np.eye(d))


# === Local inference vs closed forms ===


def test_gmm_local_inference_with_one_cluster_is_the_conjugate_gaussian_posterior():
    """One cluster at known (mu, Sigma), Gaussian observations y with known diagonal precision R as the
    potentials: q(x) is the exact posterior and the local bound is log N(y | mu, Sigma + R^-1)."""
    rng = np.random.default_rng(0)
    d, b = 3, 4
    mu, sigma = rng.normal(size=d), spd(rng, d)
    prec = np.linalg.inv(sigma)
    r = rng.uniform(0.5, 2.0, (b, d))
    y = rng.normal(size=(b, d)) * 2
    expected = (prec[None], (prec @ mu)[None], np.array([mu @ prec @ mu]), np.array([np.linalg.slogdet(prec)[1]]))
    f32 = lambda a: ops.convert_to_tensor(np.asarray(a, "float32"))  # noqa: E731
    out = svae.gmm_mean_field(f32(r * y), f32(r), tuple(f32(e) for e in expected), f32([0.0]), iters=3)
    for n in range(b):
        post_prec = prec + np.diag(r[n])
        post_cov = np.linalg.inv(post_prec)
        post_mean = post_cov @ (prec @ mu + r[n] * y[n])
        np.testing.assert_allclose(np_(out["mean"])[n], post_mean, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np_(out["cov"])[n], post_cov, rtol=1e-4, atol=1e-5)
        # E_q[log N(y | x, R^-1)] - KL(q || p) = log p(y) when q is the exact posterior.
        expected_ll = np.sum(-0.5 * LOG_2PI + 0.5 * np.log(r[n])
                             - 0.5 * r[n] * ((y[n] - post_mean) ** 2 + np.diag(post_cov)))
        evidence = gauss_logpdf(y[n], mu, sigma + np.diag(1 / r[n]))
        np.testing.assert_allclose(expected_ll - np_(out["kl"])[n], evidence, rtol=1e-4, atol=1e-3)


def kalman_smoother(y, r, a, q):
    """NumPy reference: moment-form Kalman filter and RTS smoother, x_1 ~ N(0, I), y_t = x_t + N(0, diag(1/r_t)).

    Returns smoothed means (T, D), covariances (T, D, D), E[x_{t+1} x_t'] (T-1, D, D) and log p(y)."""
    t_len, d = y.shape
    means_f, covs_f, means_p, covs_p = [], [], [], []
    m, p = np.zeros(d), np.eye(d)
    loglik = 0.0
    for t in range(t_len):
        if t:
            m, p = a @ m, a @ p @ a.T + q
        means_p.append(m)
        covs_p.append(p)
        s = p + np.diag(1 / r[t])
        loglik += gauss_logpdf(y[t], m, s)
        gain = p @ np.linalg.inv(s)
        m, p = m + gain @ (y[t] - m), p - gain @ p
        means_f.append(m)
        covs_f.append(p)
    ms, ps = [means_f[-1]], [covs_f[-1]]
    cross = []
    for t in range(t_len - 2, -1, -1):
        g = covs_f[t] @ a.T @ np.linalg.inv(covs_p[t + 1])
        m_s = means_f[t] + g @ (ms[0] - means_p[t + 1])
        p_s = covs_f[t] + g @ (ps[0] - covs_p[t + 1]) @ g.T
        cross.insert(0, ps[0] @ g.T + np.outer(ms[0], m_s))  # E[x_{t+1} x_t']
        ms.insert(0, m_s)
        ps.insert(0, p_s)
    return np.array(ms), np.array(ps), np.array(cross), loglik


def test_lds_message_passing_is_the_kalman_smoother():
    rng = np.random.default_rng(1)
    d, t_len, b = 2, 6, 3
    theta = 0.3
    a = 0.95 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    q = spd(rng, d, 0.2)
    q_inv = np.linalg.inv(q)
    r = rng.uniform(0.5, 3.0, (b, t_len, d))
    y = rng.normal(size=(b, t_len, d))
    f32 = lambda x: ops.convert_to_tensor(np.asarray(x, "float32"))  # noqa: E731
    pair = (f32(a.T @ q_inv @ a), f32(-a.T @ q_inv), f32(q_inv))
    post = svae.lds_posterior(f32(r * y), f32(r), pair, (f32(np.eye(d)), f32(np.zeros(d))))
    kl = np_(svae.lds_local_kl(post, f32(r * y), f32(r), f32(np.linalg.slogdet(q_inv)[1]), 0.5 * d * LOG_2PI))
    for n in range(b):
        ms, ps, cross, loglik = kalman_smoother(y[n], r[n], a, q)
        np.testing.assert_allclose(np_(post["mean"])[n], ms, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np_(post["cov"])[n], ps, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np_(post["cross"])[n], cross, rtol=1e-4, atol=1e-4)
        # With the exact posterior the bound is tight: E_q[log p(y|x)] - KL = log p(y).
        second = ms ** 2 + np.diagonal(ps, axis1=-2, axis2=-1)
        expected_ll = np.sum(-0.5 * LOG_2PI + 0.5 * np.log(r[n]) - 0.5 * r[n] * (y[n] ** 2 - 2 * y[n] * ms + second))
        np.testing.assert_allclose(expected_ll - kl[n], loglik, rtol=1e-4, atol=2e-3)


def test_lds_backward_sampling_has_the_smoothed_moments():
    rng = np.random.default_rng(3)
    d, t_len, n = 2, 4, 4000
    a, q = 0.9 * np.eye(d), 0.3 * np.eye(d)
    q_inv = np.linalg.inv(q)
    r = np.ones((1, t_len, d)) * 2.0
    y = rng.normal(size=(1, t_len, d))
    f32 = lambda x: ops.convert_to_tensor(np.asarray(x, "float32"))  # noqa: E731
    pair = (f32(a.T @ q_inv @ a), f32(-a.T @ q_inv), f32(q_inv))
    rep = lambda x: np.repeat(x, n, axis=0)  # noqa: E731
    post = svae.lds_posterior(f32(rep(r * y)), f32(rep(r)), pair, (f32(np.eye(d)), f32(np.zeros(d))))
    draws = np_(svae.lds_sample(post, pair, f32(rng.standard_normal((n, t_len, d)))))
    ms, ps, cross, _ = kalman_smoother(y[0], r[0], a, q)
    np.testing.assert_allclose(draws.mean(0), ms, atol=0.05)
    np.testing.assert_allclose(np.einsum("nti,ntj->tij", draws, draws) / n - np.einsum("ti,tj->tij", ms, ms), ps,
                               atol=0.05)
    np.testing.assert_allclose(np.einsum("nti,ntj->tij", draws[:, 1:], draws[:, :-1]) / n, cross, atol=0.05)


# === The natural-gradient step vs the conjugate posterior ===


def test_svi_step_with_rho_one_on_the_full_data_is_the_niw_dirichlet_posterior():
    rng = np.random.default_rng(4)
    d, k, b = 2, 3, 10
    model = svae.SVAE((2,), prior="gmm", latent_dim=d, num_components=k, hidden_units=(4,), num_data=b,
                      prior_kappa=0.5, prior_concentration=2.0)
    r = rng.dirichlet(np.ones(k), b)
    mean = rng.normal(size=(b, d)) * 2
    cov = np.stack([spd(rng, d, 0.1) for _ in range(b)])
    f32 = lambda x: ops.convert_to_tensor(np.asarray(x, "float32"))  # noqa: E731
    stats = model.expected_stats({"r": f32(r), "mean": f32(mean), "cov": f32(cov)})
    model.update_globals(stats, b, rho=1.0)
    got = model.point_params()
    nu0, kappa0, psi0 = d + 2.0, 0.5, np.eye(d)
    alpha = 2.0 + r.sum(0)
    np.testing.assert_allclose(got["weights"], alpha / alpha.sum(), rtol=1e-5)
    np.testing.assert_allclose(np_(model.global_vars[4]), alpha, rtol=1e-5)
    for c in range(k):
        n_k = r[:, c].sum()
        sx = r[:, c] @ mean
        sxx = np.einsum("b,bij->ij", r[:, c], cov + np.einsum("bi,bj->bij", mean, mean))
        kappa, nu = kappa0 + n_k, nu0 + n_k
        m = sx / kappa  # m0 = 0
        psi = psi0 + sxx - kappa * np.outer(m, m)
        np.testing.assert_allclose(got["means"][c], m, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got["covs"][c], psi / (nu - d - 1), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np_(model.global_vars[3])[c], nu, rtol=1e-5)


def test_svi_step_with_rho_one_on_the_full_data_is_the_mniw_posterior():
    rng = np.random.default_rng(5)
    d, t_len, b = 2, 5, 3
    model = svae.SVAE((t_len, 4, 1), num_levels=2, prior="lds", latent_dim=d, hidden_units=(4,), num_data=b,
                      prior_kappa=0.7)
    mean = rng.normal(size=(b, t_len, d))
    cov = np.zeros((b, t_len, d, d))  # point-mass trajectories: the textbook MNIW regression posterior
    cross = np.einsum("bti,btj->btij", mean[:, 1:], mean[:, :-1])
    f32 = lambda x: ops.convert_to_tensor(np.asarray(x, "float32"))  # noqa: E731
    model.update_globals(model.expected_stats({"mean": f32(mean), "cov": f32(cov), "cross": f32(cross)}), b, rho=1.0)
    got = model.point_params()
    x_in, x_out = mean[:, :-1].reshape(-1, d), mean[:, 1:].reshape(-1, d)
    k0, s0, nu0 = 0.7 * np.eye(d), np.eye(d), d + 2.0  # M0 = 0
    k_n = k0 + x_in.T @ x_in
    m_n = (x_out.T @ x_in) @ np.linalg.inv(k_n)
    s_n = s0 + x_out.T @ x_out - m_n @ k_n @ m_n.T
    nu_n = nu0 + len(x_in)
    np.testing.assert_allclose(got["A"], m_n, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["Q"], s_n / (nu_n - d - 1), rtol=1e-4, atol=1e-5)


def test_global_kl_is_zero_at_the_prior_and_positive_elsewhere():
    model = svae.SVAE((2,), prior="gmm", latent_dim=2, num_components=3, hidden_units=(4,))
    assert float(np_(model.global_kl())) > 0.1
    assert abs(float(np_(model.global_kl(model.prior_params())))) < 1e-3
    lds = svae.SVAE((4, 3, 1), num_levels=2, prior="lds", latent_dim=2, hidden_units=(4,))
    assert float(np_(lds.global_kl())) > 0.1
    assert abs(float(np_(lds.global_kl(lds.prior_params())))) < 1e-3


# === Training, saving, resuming ===


def pinwheel(n=200):
    return kgen.load_dataset("pinwheel", num_examples=n).x


def gmm_model(**kw):
    return kgen.build_model("svae", input_shape=(2,), prior="gmm", latent_dim=2, num_components=4,
                            hidden_units=(16,), mean_field_iters=3, num_data=200, **kw)


def lds_model():
    return kgen.build_model("svae", input_shape=(6, 5, 1), num_levels=2, prior="lds", latent_dim=2,
                            hidden_units=(16,), num_data=64)


def test_the_gmm_trains_its_loss_falls_and_its_globals_move():
    keras.utils.set_random_seed(0)
    model = gmm_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    before = [np_(v) for v in model.global_vars]
    hist = model.fit(pinwheel(), epochs=4, batch_size=50, verbose=0).history["loss"]
    assert np.all(np.isfinite(hist)) and hist[-1] < hist[0], hist
    assert all(not np.allclose(a, np_(v)) for a, v in zip(before, model.global_vars))
    assert int(np_(model.optimizer.iterations)) == 16


def test_the_lds_trains_and_predicts_frames():
    keras.utils.set_random_seed(0)
    x = bouncing.make_videos(64, frames=6, width=5, seed=0)
    model = lds_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    hist = model.fit(x, epochs=4, batch_size=32, verbose=0).history["loss"]
    assert np.all(np.isfinite(hist)) and hist[-1] < hist[0], hist
    pred = model.predict_frames(x[:5], prefix=3)
    assert pred.shape == (5, 3, 5, 1) and np.all((pred >= 0) & (pred <= 1))
    err = model.frame_prediction_error(x[:5], prefix=3)
    np.testing.assert_allclose(err["frame_prediction_mse"], np.mean((pred - x[:5, 3:]) ** 2), rtol=1e-5)
    assert model.sample(3, seed=1).shape == (3, 6, 5, 1)


def test_bouncing_dot_is_one_reflected_dot_a_frame():
    x = bouncing.make_videos(50, seed=3)
    assert x.shape == (50, bouncing.FRAMES, bouncing.WIDTH, 1)
    np.testing.assert_array_equal(x.sum(axis=(2, 3)), 1.0)
    pos = np.argmax(x[..., 0], axis=-1)
    assert np.all(np.abs(np.diff(pos, axis=1)) <= 2)  # speeds <= 1.2 pixels a frame, rounded
    np.testing.assert_array_equal(bouncing.make_videos(50, seed=3), x)
    np.testing.assert_allclose(bouncing.bouncing_positions([10.0], [1.0], 4, 12)[0], [10, 11, 10, 9])
    assert kgen.load_dataset("bouncing_dot", split="valid").x.shape[0] == bouncing.SIZES["valid"]


@pytest.mark.parametrize("prior", ["gmm", "lds"])
def test_save_load_round_trip(prior, tmp_path):
    keras.utils.set_random_seed(0)
    if prior == "gmm":
        model, x = gmm_model(), pinwheel(64)
    else:
        model, x = lds_model(), bouncing.make_videos(32, frames=6, width=5, seed=0)
    model.compile(optimizer="adam")
    model.fit(x, epochs=1, batch_size=32, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(np_(a), np_(b), err_msg=a.path)
    np.testing.assert_allclose(loaded.log_prob(x, seed=1), model.log_prob(x, seed=1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(loaded.sample(4, seed=2), model.sample(4, seed=2), atol=1e-5)


def resume_config(epochs):
    entry = api.get_entry("svae")
    sets = [(["model", k], list(v) if isinstance(v, tuple) else v) for k, v in entry.tiny.items()]
    sets += [(["train", k], v) for k, v in dict(epochs=epochs, batch_size=16, grid_size=4).items()]
    sets += [(["data", "max_examples"], 48)]
    return config_lib.resolve(model="svae", dataset="pinwheel", overrides=sets)


def test_a_resumed_run_matches_an_uninterrupted_one(tmp_path):
    keras.utils.set_random_seed(0)
    full, _, _ = train(resume_config(2), run_dir=tmp_path / "full", verbose=0)
    keras.utils.set_random_seed(0)
    train(resume_config(1), run_dir=tmp_path / "cut", verbose=0)
    keras.utils.set_random_seed(123)
    resumed, _, _ = train(None, run_dir=tmp_path / "cut", resume=True, epochs=2, verbose=0)
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(np_(a), np_(b), rtol=1e-5, atol=1e-6, err_msg=a.path)
    np.testing.assert_array_equal(checkpoint.seed_states(full), checkpoint.seed_states(resumed))


def test_docstring_examples():
    import doctest

    assert doctest.testmod(bouncing).failed == 0
    assert doctest.testmod(svae).failed == 0
