"""BGAN (Hjelm et al. 2018): normalized importance weights, the generator's gradient against NumPy, the closed-form
optimal discriminator on a toy categorical distribution, the straight-through baseline, training, save/load, resume."""

import itertools

import keras
import numpy as np
import pytest

import kgen
from adversarial_checks import check_save_load_resume, check_training, fit_and_record
from kgen.backend import adversarial
from kgen.errors import DataError, UsageError
from kgen.models.adversarial.bgan import BGAN, normalized_importance_weights
from kgen.training.trainer import train


def to_np(t):
    return np.asarray(keras.ops.convert_to_numpy(t), "float64")


def softmax(a, axis):
    a = a - a.max(axis=axis, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=axis, keepdims=True)


def linear_bgan(levels, dims=2, latent_dim=3, m=4, **kw):
    """A BGAN whose generator is one Dense layer (logits = z W + b): easy to reproduce in NumPy."""
    return BGAN((dims,), num_levels=levels, latent_dim=latent_dim, num_samples=m, generator_units=(),
                generator_batch_norm=False, discriminator_units=(8,), **kw)


def numpy_draw(logits, u, levels):
    """The model's sampling rule in NumPy: level indices (M, N, D)."""
    if levels == 2:
        return (u < 1 / (1 + np.exp(-logits))).astype("float64")
    cdf = np.cumsum(softmax(logits, -1), -1)
    return np.minimum((cdf[None] < u[..., None] * cdf[None, ..., -1:]).sum(-1), levels - 1).astype("float64")


# === The importance weights ===


def test_weights_are_softmax_of_the_discriminator_and_sum_to_one():
    d = np.random.default_rng(0).normal(scale=3.0, size=(5, 7)).astype("float32")
    w = to_np(normalized_importance_weights(d))
    np.testing.assert_allclose(w.sum(axis=0), np.ones(7), rtol=1e-6)
    np.testing.assert_allclose(w, softmax(d.astype("float64"), 0), rtol=1e-5, atol=1e-7)
    # w_m = exp(d_m) / sum exp(d): adding a constant to every logit of a column changes nothing.
    np.testing.assert_allclose(to_np(normalized_importance_weights(d + 4.0)), w, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("levels", [2, 3])
def test_generator_gradient_matches_numpy(levels):
    """grad of -1/N sum_n sum_m w~_mn log g(x_mn | z_n) with w~ = softmax_m d(x_mn), for logits = z W + b."""
    keras.utils.set_random_seed(2)
    model = linear_bgan(levels)
    n, m, dims, k = 2, 4, 2, (1 if levels == 2 else levels)
    rng = np.random.default_rng(1)
    z = rng.standard_normal((n, 3)).astype("float32")
    u = rng.uniform(size=(m, n, dims)).astype("float32")
    g_vars = model.generator_variables()
    (loss, logs), grads = adversarial.value_and_grad(
        lambda: model.generator_loss(z, training=False, uniforms=u), g_vars, has_aux=True)

    kernel, bias = (to_np(v.value) for v in g_vars)
    logits = (z.astype("float64") @ kernel + bias).reshape((n, dims) if k == 1 else (n, dims, k))
    idx = numpy_draw(logits, u.astype("float64"), levels)  # (M, N, D)
    d = to_np(model.discriminate((idx / (levels - 1)).reshape(m * n, dims).astype("float32"))).reshape(m, n)
    w = softmax(d, 0)
    if k == 1:
        p = 1 / (1 + np.exp(-logits))
        log_g = (idx * logits - np.log1p(np.exp(logits))).sum(-1)
        dlog_g = idx - p  # d log g / d logits, (M, N, D)
    else:
        q = softmax(logits, -1)
        onehot = np.eye(levels)[idx.astype(int)]
        log_g = (onehot * np.log(q)).sum((-1, -2))
        dlog_g = onehot - q
    expected_loss = -np.mean((w * log_g).sum(0))
    g_logits = -(w.reshape(m, n, *([1] * (dlog_g.ndim - 2))) * dlog_g).sum(0) / n  # (N, D[, K])
    g_logits = g_logits.reshape(n, -1)
    np.testing.assert_allclose(to_np(loss), expected_loss, rtol=1e-5)
    np.testing.assert_allclose(to_np(grads[0]), z.astype("float64").T @ g_logits, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_np(grads[1]), g_logits.sum(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_np(logs["ess"]), np.mean(1 / (w ** 2).sum(0)), rtol=1e-5)


def test_constant_discriminator_gives_uniform_weights_and_the_samples_nll():
    model = linear_bgan(3)
    model.discriminate = lambda x, training=False: keras.ops.zeros((keras.ops.shape(x)[0],))
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 3)).astype("float32")
    u = rng.uniform(size=(4, 5, 2)).astype("float32")
    loss, logs = model.generator_loss(z, training=False, uniforms=u)
    logits = model.logits(z)
    idx = model.draw_indices(logits, u)
    nll = -to_np(model.log_likelihood(logits, idx)).sum(0).mean() / 4  # mean over the M samples
    np.testing.assert_allclose(to_np(loss), nll, rtol=1e-5)
    np.testing.assert_allclose(to_np(logs["ess"]), 4.0, rtol=1e-6)


# === The optimal discriminator on a toy categorical distribution ===


def test_updates_with_the_optimal_discriminator_move_p_g_toward_the_data():
    """D = log p_data / p_g in closed form (p_g over a fixed bank of z): KL(p_data || p_g) falls."""
    keras.utils.set_random_seed(4)
    levels, dims = 3, 2
    configs = np.array(list(itertools.product(range(levels), repeat=dims)))  # 9 configurations
    p_data = np.array([0.30, 0.02, 0.05, 0.02, 0.25, 0.02, 0.05, 0.02, 0.27])
    model = BGAN((dims,), num_levels=levels, latent_dim=2, num_samples=10, generator_units=(16,),
                 generator_batch_norm=False, discriminator_units=(4,))
    bank = np.random.default_rng(0).standard_normal((2000, 2)).astype("float32")

    def p_g():
        q = softmax(to_np(model.logits(bank)), -1)  # (Z, D, L)
        return np.mean(np.prod(q[:, np.arange(dims), configs], axis=-1), axis=0)  # (9,)

    table = {"log_ratio": None}

    def optimal_d(x, training=False):
        idx = keras.ops.cast(keras.ops.round(keras.ops.reshape(x, (-1, dims)) * (levels - 1)), "int32")
        config = idx[:, 0] * levels + idx[:, 1]
        return keras.ops.take(table["log_ratio"], config, axis=0)

    model.discriminate = optimal_d
    g_vars = model.generator_variables()
    opt = keras.optimizers.Adam(0.04)
    opt.build(g_vars)

    def kl():
        q = p_g()
        return float(np.sum(p_data * np.log(p_data / q))), q

    start, _ = kl()
    rng = np.random.default_rng(1)
    for _ in range(20):
        table["log_ratio"] = keras.ops.convert_to_tensor((np.log(p_data) - np.log(p_g())).astype("float32"))
        z = rng.standard_normal((64, 2)).astype("float32")
        u = rng.uniform(size=(10, 64, dims)).astype("float32")
        _, grads = adversarial.value_and_grad(lambda: model.generator_loss(z, training=False, uniforms=u), g_vars,
                                              has_aux=True)
        adversarial.apply_gradients(opt, grads, g_vars)
    end, q = kl()
    assert end < 0.5 * start, (start, end, q.round(3))  # measured 0.06 to 0.43 of the start over seeds


# === The straight-through baseline ===


@pytest.mark.parametrize("levels", [2, 5])
def test_straight_through_sample_is_discrete_with_identity_gradient(levels):
    model = linear_bgan(levels, estimator="straight_through", m=1)
    k = 1 if levels == 2 else levels
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(3, 2) if k == 1 else (3, 2, k)).astype("float32")
    u = rng.uniform(size=(1, 3, 2)).astype("float32")
    c = rng.normal(size=(1, 3, 2)).astype("float32")
    out = to_np(model.straight_through(logits, u))
    # Forward: exactly the discrete sample.
    np.testing.assert_allclose(out, to_np(model.to_data(model.draw_indices(logits, u))), atol=1e-6)
    grad = to_np(adversarial.input_gradient(lambda l: keras.ops.sum(keras.ops.multiply(c, model.straight_through(l, u))), logits))
    # Backward: d x~ / d p = 1 (binary) and d x~ / d q_k = level_k (the one-hot passes the identity), chained
    # through p = sigmoid(logit) or q = softmax(logits).
    logits = logits.astype("float64")
    if k == 1:
        p = 1 / (1 + np.exp(-logits))
        expected = c[0] * p * (1 - p)
    else:
        q = softmax(logits, -1)
        level = np.arange(levels) / (levels - 1)
        expected = c[0][..., None] * q * (level - (q * level).sum(-1, keepdims=True))
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_straight_through_generator_loss_reaches_the_generator():
    keras.utils.set_random_seed(6)
    model = linear_bgan(2, estimator="straight_through", m=2)
    z = np.random.default_rng(0).standard_normal((4, 3)).astype("float32")
    u = np.random.default_rng(1).uniform(size=(2, 4, 2)).astype("float32")
    (loss, _), grads = adversarial.value_and_grad(lambda: model.generator_loss(z, training=False, uniforms=u),
                                                  model.generator_variables(), has_aux=True)
    samples = model.to_data(model.draw_indices(model.logits(z), u))
    d = to_np(model.discriminate(keras.ops.reshape(samples, (8, 2))))
    np.testing.assert_allclose(to_np(loss), np.mean(np.log1p(np.exp(-d))), rtol=1e-5)
    assert all(np.abs(to_np(g)).sum() > 0 for g in grads)


# === Training, sampling, saving ===


@pytest.fixture(scope="module")
def data():
    return kgen.load_dataset("digits").x[:64]


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(0)
    model = BGAN((8, 8, 1), num_levels=17, latent_dim=4, generator_units=(16,), discriminator_units=(16,),
                 num_samples=3)
    model.compile()
    return model, fit_and_record(model, data, steps=2)


def test_training_step(trained):
    model, record = trained
    check_training(record, steps=2, extra_metrics=("d_real", "d_fake", "ess"), has_batch_norm=True)
    assert 1.0 <= record["history"]["ess"] <= 3.0


def test_samples_lie_on_the_levels_and_repeat_by_seed(trained):
    model, _ = trained
    x = model.sample(6, seed=0)
    assert x.shape == (6, 8, 8, 1)
    np.testing.assert_allclose(x * 16, np.round(x * 16), atol=1e-5)
    np.testing.assert_array_equal(x, model.sample(6, seed=0))
    assert not np.array_equal(x, model.sample(6, seed=1))
    z, u = model.draw_noise(6, seed=0)
    np.testing.assert_array_equal(model.sample_from_noise(z, u), x)
    mean = model.generate_numpy(z)  # latent walks show E[x | z]
    assert mean.shape == (6, 8, 8, 1) and 0.0 <= mean.min() and mean.max() <= 1.0
    assert model.interpolate(z[0], z[1], num_steps=3).shape == (3, 8, 8, 1)


def test_save_load_resume(trained, data, tmp_path):
    model, _ = trained
    loaded = check_save_load_resume(model, data, tmp_path / "bgan.keras")
    assert loaded.estimator == "bgan" and loaded.num_samples == 3


def test_training_moves_samples_toward_a_toy_distribution():
    """Full adversarial training (learned discriminator) on 2 pixels with 3 levels: the samples' total
    variation distance to the data distribution falls."""
    keras.utils.set_random_seed(7)
    levels, dims = 3, 2
    p_data = np.array([0.40, 0.0, 0.05, 0.0, 0.10, 0.0, 0.05, 0.0, 0.40])
    rng = np.random.default_rng(0)
    configs = rng.choice(9, size=1024, p=p_data)
    x = np.stack([configs // levels, configs % levels], axis=1).astype("float32") / (levels - 1)
    model = BGAN((dims,), num_levels=levels, latent_dim=4, num_samples=8, generator_units=(32,),
                 discriminator_units=(32,), generator_batch_norm=False)
    model.compile(optimizer=keras.optimizers.Adam(3e-3, beta_1=0.5))

    def tv():
        s = np.round(model.sample(4000, seed=0) * (levels - 1)).astype(int)
        freq = np.bincount(s[:, 0] * levels + s[:, 1], minlength=9) / len(s)
        return 0.5 * np.abs(freq - p_data).sum()

    start = tv()
    model.fit(x, batch_size=128, epochs=20, verbose=0)
    end = tv()
    assert end < 0.5 * start and end < 0.2, (start, end)


def test_a_resumed_run_matches_an_uninterrupted_one(tmp_path, tiny_config):
    sets = ["model.generator_units=[16]", "model.discriminator_units=[16]", "model.latent_dim=4",
            "model.num_samples=3", "data.max_examples=128", "train.xla=off", "train.steps_per_execution=1"]
    full, _, _ = train(tiny_config("bgan", "digits", "train.epochs=2", *sets), run_dir=tmp_path / "full", verbose=0)
    train(tiny_config("bgan", "digits", "train.epochs=1", *sets), run_dir=tmp_path / "cut", verbose=0)
    resumed, _, _ = train(None, run_dir=tmp_path / "cut", resume=True, epochs=2, verbose=0)
    assert len(full.weights) == len(resumed.weights)
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_conv_players_on_binary_images():
    """The DCGAN-like players: Bernoulli logits per pixel, binary samples, both losses reach every weight."""
    keras.utils.set_random_seed(8)
    x = (kgen.load_dataset("digits").x[:4] > 0.5).astype("float32")
    model = BGAN((8, 8, 1), num_levels=2, architecture="conv", latent_dim=4, generator_filters=(8, 4),
                 discriminator_filters=(4, 8), num_samples=2)
    assert tuple(model.logits(np.zeros((3, 4), "float32")).shape) == (3, 64)
    assert set(np.unique(model.sample(8, seed=0))) <= {0.0, 1.0}
    z = np.random.default_rng(0).standard_normal((4, 4)).astype("float32")
    _, g_grads = adversarial.value_and_grad(lambda: model.generator_loss(z), model.generator_variables(),
                                            has_aux=True)
    fake = model.sample(4, seed=1)
    _, d_grads = adversarial.value_and_grad(lambda: model.discriminator_loss(x, fake),
                                            model.discriminator_variables(), has_aux=True)
    assert all(np.abs(to_np(g)).sum() > 0 for g in g_grads + d_grads)


def test_usage_errors():
    with pytest.raises(UsageError, match="num_levels"):
        BGAN((4,), num_levels=None)
    with pytest.raises(UsageError, match="estimator"):
        BGAN((4,), num_levels=2, estimator="reinforce")
    with pytest.raises(UsageError, match="at least 2"):
        BGAN((4,), num_levels=2, num_samples=1)
    with pytest.raises(UsageError, match="num_classes"):
        BGAN((4,), num_levels=2, num_classes=3)
    BGAN((4,), num_levels=2, num_samples=1, estimator="straight_through", generator_units=(4,),
         discriminator_units=(4,))
    digits = kgen.load_dataset("digits")
    with pytest.raises(DataError, match="binarize"):
        BGAN(digits.shape, num_levels=2, generator_units=(4,), discriminator_units=(4,)).check_data(digits)
