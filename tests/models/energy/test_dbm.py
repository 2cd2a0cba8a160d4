"""DBM: mean-field fixed point, exact log p and log Z by enumeration, the bound, AIS, Gibbs sampling,
the modified RBMs of pretraining, training, PCD state through checkpoints and resume."""

import itertools

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen.errors import DataError, UsageError
from kgen.models.energy.dbm import copies_free_energy, mean_field, mean_field_bound, rbm_copies
from kgen.training.trainer import train


def to_np(t):
    return keras.ops.convert_to_numpy(keras.ops.stop_gradient(t)).astype("float64")


def build(shape=(6, 1, 1), hidden=(4, 3), scale=0.0, seed=0, **kwargs):
    model = kgen.build_model("dbm", input_shape=shape, num_levels=2, hidden_units=hidden, **kwargs)
    if scale:
        rng = np.random.default_rng(seed)
        for t in model.weight_list() + model.bias_list():
            t.assign(rng.normal(0, scale, t.shape).astype("float32"))
    return model


def all_states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def brute_force(model):
    """(log Z, log p(v) of every visible state) of a 2-hidden-layer DBM, every layer enumerated in NumPy."""
    w1, w2 = (to_np(w) for w in model.weight_list())
    b0, b1, b2 = (to_np(b) for b in model.bias_list())
    v, h1, h2 = all_states(len(b0)), all_states(len(b1)), all_states(len(b2))
    neg_e = ((v @ b0)[:, None, None] + (h1 @ b1)[None, :, None] + (h2 @ b2)[None, None, :]
             + (v @ w1 @ h1.T)[:, :, None] + (h1 @ w2 @ h2.T)[None])
    log_z = np.logaddexp.reduce(neg_e.ravel())
    return log_z, np.logaddexp.reduce(neg_e.reshape(len(v), -1), axis=1) - log_z


def tensor(a):
    return keras.ops.convert_to_tensor(np.asarray(a, "float32"))


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def test_mean_field_fixed_point_satisfies_its_equations():
    model = build(shape=(10, 1, 1), hidden=(6, 5), scale=1.0)
    ws, bs = model.weight_list(), model.bias_list()
    w1, w2 = (to_np(w) for w in ws)
    _, b1, b2 = (to_np(b) for b in bs)
    v = (np.random.default_rng(1).uniform(size=(16, 10)) < 0.5).astype("float32")

    def residual(mu1, mu2):
        return max(np.abs(mu1 - sigmoid(v @ w1 + mu2 @ w2.T + b1)).max(), np.abs(mu2 - sigmoid(mu1 @ w2 + b2)).max())

    mu1, mu2 = (to_np(keras.ops.sigmoid(z)) for z in mean_field(tensor(v), ws, bs, 0))
    assert residual(mu1, mu2) > 0.05  # the recognition pass is not the fixed point: the test can tell
    mu1, mu2 = model.mean_field(v, steps=100)
    assert residual(to_np(mu1), to_np(mu2)) < 1e-5
    # Each sweep is coordinate ascent on the bound: it never decreases.
    bounds = [to_np(mean_field_bound(tensor(v), mean_field(tensor(v), ws, bs, k), ws, bs)) for k in range(6)]
    for before, after in zip(bounds, bounds[1:]):
        assert np.all(after >= before - 1e-4)
    assert np.any(bounds[-1] > bounds[0] + 1e-3)


def test_exact_log_z_log_p_bound_and_ais_against_enumeration():
    model = build(scale=1.0)
    want_z, want_logp = brute_force(model)
    x = all_states(6).reshape(-1, 6, 1, 1).astype("float32")
    assert model.log_partition()["method"] == "exact"
    assert model.log_partition()["log_z"] == pytest.approx(want_z, abs=1e-4)
    exact = model.exact_log_prob(x)
    np.testing.assert_allclose(exact, want_logp, atol=1e-4)
    assert np.exp(exact.astype("float64")).sum() == pytest.approx(1.0, abs=1e-4)
    # The mean-field bound is below log p(v) for every v, and not trivially (within a few nats).
    bound = model.log_prob(x)
    assert np.all(bound <= want_logp + 1e-4), (bound - want_logp).max()
    assert 0 < np.mean(want_logp - bound) < 2.0
    # AIS (over v and h2, h1 summed out) lands within its reported spread of the exact log Z,
    # from a uniform base and from a base-rate model.
    result = model.log_partition(method="ais", chains=100, betas=1000, seed=0)
    assert result["method"] == "ais" and result["chains"] == 100 and result["betas"] == 1000
    assert 0 < result["log_z_stderr"] < 0.2
    assert abs(result["log_z"] - want_z) < 3 * result["log_z_stderr"] + 1e-3, (result, want_z)
    model.data_sum.assign(np.linspace(0.1, 0.9, 6).astype("float32") * 10)
    model.data_count.assign(10.0)
    result = model.log_partition(method="ais", chains=100, betas=1000, seed=1)
    assert abs(result["log_z"] - want_z) < 3 * result["log_z_stderr"] + 1e-3, (result, want_z)


def test_three_hidden_layers_enumerate_and_anneal():
    model = build(shape=(3, 1, 1), hidden=(3, 2, 2), scale=1.0, seed=2)
    ws = [to_np(w) for w in model.weight_list()]
    bs = [to_np(b) for b in model.bias_list()]
    layers = [all_states(len(b)) for b in bs]
    total = []
    for x in itertools.product(*layers):
        total.append(sum(b @ s for b, s in zip(bs, x)) + sum(x[i] @ ws[i] @ x[i + 1] for i in range(3)))
    want = np.logaddexp.reduce(np.array(total))
    assert model.log_partition(method="exact")["log_z"] == pytest.approx(want, abs=1e-4)
    result = model.log_partition(method="ais", chains=100, betas=500)
    assert abs(result["log_z"] - want) < 3 * result["log_z_stderr"] + 1e-3, (result, want)


def test_long_gibbs_chains_match_the_exact_distribution():
    model = build(shape=(2, 2, 1), hidden=(3, 2), scale=1.5, seed=3, sample_steps=40)
    _, logp = brute_force(model)
    p = np.exp(logp)
    assert 0.5 * np.abs(p - 1 / 16).sum() > 0.2  # far from uniform: the test can tell
    s = model.sample(20000, seed=0, batch_size=20000).reshape(20000, 4)
    assert set(np.unique(s)) <= {0.0, 1.0}
    freq = np.bincount((s @ (2 ** np.arange(3, -1, -1))).astype(int), minlength=16) / 20000
    assert 0.5 * np.abs(freq - p).sum() < 0.05
    np.testing.assert_array_equal(model.sample(5, seed=1), model.sample(5, seed=1))


def test_modified_rbms_double_the_missing_input():
    assert [rbm_copies(l, 2) for l in range(2)] == [(2, 1), (1, 2)]  # bottom: 2 copies of v; top: 2 of h2
    assert [rbm_copies(l, 3) for l in range(3)] == [(2, 1), (2, 2), (1, 2)]
    rng = np.random.default_rng(0)
    w, b, c = rng.normal(0, 1, (3, 2)), rng.normal(0, 1, 3), rng.normal(0, 1, 2)
    s3, s2 = all_states(3), all_states(2)
    # Bottom RBM: visible copies (v1, v2) with tied weights; F(v1 + v2) sums out h.
    pairs = [(a, d) for a in s3 for d in s3]
    for a, d in pairs[::7]:
        neg_e = b @ (a + d) + s2 @ c + s2 @ w.T @ (a + d)
        got = to_np(copies_free_energy(tensor((a + d)[None]), tensor(w), tensor(b), tensor(c), 1))[0]
        assert got == pytest.approx(-np.logaddexp.reduce(neg_e), abs=1e-4)
    # Data (v, v): p(h | v, v) = sigmoid(c + 2 W'v), the doubled bottom-up input.
    v = s3[5]
    neg_e = b @ (2 * v) + s2 @ c + s2 @ w.T @ (2 * v)
    post = np.exp(neg_e - np.logaddexp.reduce(neg_e)) @ s2
    np.testing.assert_allclose(post, sigmoid(c + 2 * v @ w), rtol=1e-6)
    # Top RBM: hidden copies (t1, t2); F(s) = -b's - 2 sum softplus(c + s'W) sums both out, and
    # p(bottom | t, t) = sigmoid(b + 2 W t): the doubled top-down input.
    for s in s3:
        neg_e = [b @ s + c @ (t1 + t2) + s @ w @ (t1 + t2) for t1 in s2 for t2 in s2]
        got = to_np(copies_free_energy(tensor(s[None]), tensor(w), tensor(b), tensor(c), 2))[0]
        assert got == pytest.approx(-np.logaddexp.reduce(neg_e), abs=1e-4)
    t = s2[1]
    neg_e = s3 @ b + c @ (2 * t) + s3 @ w @ (2 * t)
    post = np.exp(neg_e - np.logaddexp.reduce(neg_e)) @ s3
    np.testing.assert_allclose(post, sigmoid(b + 2 * w @ t), rtol=1e-6)


def toy_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    proto = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 0], [1, 0, 0, 0, 1, 1]])
    x = np.abs(proto[rng.integers(0, 3, n)] - (rng.uniform(size=(n, 6)) < 0.05))
    return x.reshape(n, 6, 1, 1).astype("float32")


def test_pretraining_phases_train_one_modified_rbm_each():
    x = toy_data(128)
    model = build(pretrain_epochs=1, persistent_chains=16)
    assert [model.phase_at(e) for e in range(4)] == ["rbm1", "rbm2", "joint", "joint"]
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    names = ["w1", "w2", "b0", "b1", "b2", "pretrain_b1"]

    def snapshot():
        return {n: to_np(getattr(model, n)) for n in names}

    before = snapshot()
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    after = snapshot()
    moved = {n for n in names if not np.allclose(before[n], after[n])}
    assert moved == {"w1", "b0", "b1"}, moved
    model.fit(x, batch_size=32, epochs=2, initial_epoch=1, verbose=0)
    last = snapshot()
    moved = {n for n in names if not np.allclose(after[n], last[n])}
    # The first RBM's parameters stay put: their Adam moments were cleared on leaving its phase.
    assert moved == {"w2", "b2", "pretrain_b1"}, moved
    assert float(to_np(model.chains_ready)) == 0.0
    model.fit(x, batch_size=32, epochs=3, initial_epoch=2, verbose=0)
    assert float(to_np(model.chains_ready)) == 1.0
    with pytest.raises(UsageError):
        model.set_phase("rbm3")


def test_training_raises_the_likelihood_and_the_bound():
    x = toy_data()
    model = build(hidden=(4, 3), persistent_chains=64, mean_field_steps=5)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    before_logp, before_bound = model.exact_log_prob(x).mean(), model.log_prob(x).mean()
    hist = model.fit(x, batch_size=32, epochs=8, verbose=0, shuffle=False)
    after_logp, after_bound = model.exact_log_prob(x).mean(), model.log_prob(x).mean()
    # From -4.16 (uniform); the data's entropy is about 2.3 nats.
    assert after_logp > before_logp + 0.5, (before_logp, after_logp)
    assert after_bound > before_bound + 0.5, (before_bound, after_bound)
    assert after_bound <= after_logp + 1e-4
    assert set(hist.history) == {"loss", "recon_error"} and all(np.isfinite(hist.history["loss"]))
    assert hist.history["recon_error"][-1] < hist.history["recon_error"][0]
    assert float(to_np(model.data_count)) == 8 * len(x)


def test_chains_change_in_fit_and_survive_a_checkpoint(tmp_path):
    x = toy_data(128)
    model = build(persistent_chains=32)
    model.compile(optimizer="adam")
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    chains = [to_np(c) for c in model.chain_list()]
    assert all(set(np.unique(c)) <= {0.0, 1.0} for c in chains) and chains[0].any()
    model.fit(x, batch_size=32, epochs=2, initial_epoch=1, verbose=0)
    after = [to_np(c) for c in model.chain_list()]
    assert not all(np.array_equal(a, b) for a, b in zip(chains, after))
    checkpoint.save_checkpoint(model, tmp_path / "m.keras")
    for loaded in (checkpoint.load_model(tmp_path / "m.keras"), keras.saving.load_model(tmp_path / "m.keras")):
        assert loaded.hidden_units == (4, 3)
        for a, b in zip(loaded.chain_list(), after):
            np.testing.assert_array_equal(to_np(a), b)
        assert float(to_np(loaded.chains_ready)) == 1.0
        np.testing.assert_allclose(loaded.log_prob(x[:4]), model.log_prob(x[:4]), rtol=1e-5)
        np.testing.assert_array_equal(loaded.sample(3, seed=2), model.sample(3, seed=2))


def test_a_resumed_run_matches_an_uninterrupted_one(tmp_path, tiny_config):
    # Joint training from the start (the phases are tested above): cut after the chains exist.
    sets = ["model.hidden_units=[8, 6]", "model.persistent_chains=16", "model.sample_steps=10",
            "model.pretrain_epochs=0", "model.mean_field_steps=3", "data.max_examples=128"]
    full, _, _ = train(tiny_config("dbm", "digits", "train.epochs=3", *sets), run_dir=tmp_path / "full", verbose=0)
    train(tiny_config("dbm", "digits", "train.epochs=2", *sets), run_dir=tmp_path / "cut", verbose=0)
    resumed, _, _ = train(None, run_dir=tmp_path / "cut", resume=True, epochs=3, verbose=0)
    names = [v.name for v in full.weights]
    assert names == [v.name for v in resumed.weights] and "chains1" in names
    assert float(to_np(full.chains_ready)) == 1.0
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(to_np(a), to_np(b), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_bad_arguments_and_data():
    with pytest.raises(UsageError, match="two"):
        build(hidden=(4,))
    with pytest.raises(UsageError):
        build(hidden=4)
    with pytest.raises(UsageError):
        build(hidden=(4, 0))
    with pytest.raises(UsageError):
        build(num_classes=3)
    with pytest.raises(UsageError):
        build(mean_field_steps=-1)
    model = build()
    with pytest.raises(DataError):
        model.log_prob(np.full((1, 6, 1, 1), 0.5, "float32"))
    with pytest.raises(DataError):
        model.log_prob(np.zeros((1, 4, 4, 1), "float32"))
    with pytest.raises(UsageError):
        model.log_partition(method="ais", betas=[0.5, 1.0])
    with pytest.raises(UsageError):
        build(shape=(2, 1, 1), hidden=(21, 2)).exact_log_prob(np.zeros((1, 2, 1, 1), "float32"))
    digits = kgen.load_dataset("digits")
    with pytest.raises(DataError, match="binarize"):
        build(shape=digits.shape).check_data(digits)


@pytest.mark.parametrize("recipe", ["binarized_mnist", "binarized_mnist_paper"])
def test_binarized_mnist_recipes_resolve_and_build_the_papers_model(recipe):
    from kgen import config as config_lib

    config = config_lib.resolve(config_file=config_lib.recipe_path("dbm", recipe))
    assert config["model"]["hidden_units"] == [500, 1000] and config["data"]["name"] == "binarized_mnist"
    hparams = {k: v for k, v in config["model"].items() if k not in ("name", "conditional")}
    model = kgen.build_model("dbm", input_shape=(28, 28, 1), num_levels=2, **hparams)
    assert [tuple(w.shape) for w in model.weight_list()] == [(784, 500), (500, 1000)]
