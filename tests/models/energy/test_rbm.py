"""RBM: free energy and log Z against enumeration of both layers, AIS, the CD gradient, Gibbs sampling, PCD state."""

import itertools

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen.errors import DataError, UsageError
from kgen.models.energy.rbm import ais_schedule, exact_log_partition
from kgen.training.trainer import train


def build(shape=(3, 3, 1), hidden=6, scale=0.0, seed=0, **kwargs):
    model = kgen.build_model("rbm", input_shape=shape, num_levels=2, hidden_units=hidden, **kwargs)
    if scale:
        rng = np.random.default_rng(seed)
        d = int(np.prod(shape))
        model.w.assign(rng.normal(0, scale, (d, hidden)).astype("float32"))
        model.b.assign(rng.normal(0, scale, d).astype("float32"))
        model.c.assign(rng.normal(0, scale, hidden).astype("float32"))
    return model


def to_np(t):
    return keras.ops.convert_to_numpy(keras.ops.stop_gradient(t))


def params(model):
    return [keras.ops.convert_to_numpy(t).astype("float64") for t in (model.w, model.b, model.c)]


def all_states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def log_z_both_layers(model):
    """log sum_{v, h} exp(-E(v, h)), enumerating both layers in NumPy."""
    w, b, c = params(model)
    v, h = all_states(len(b)), all_states(len(c))
    neg_energy = (v @ b)[:, None] + (h @ c)[None] + v @ w @ h.T
    return np.logaddexp.reduce(neg_energy.ravel())


def exact_stats(model, v):
    """The data's E[v], E[p(h|v)], E[v p(h|v)'] (NumPy)."""
    w, b, c = params(model)
    ph = 1 / (1 + np.exp(-(c + v @ w)))
    return v.mean(0), ph.mean(0), v.T @ ph / len(v)


def test_free_energy_sums_out_the_hidden_units():
    model = build(scale=1.0)
    w, b, c = params(model)
    v, h = all_states(9), all_states(6)
    neg_energy = (v @ b)[:, None] + (h @ c)[None] + v @ w @ h.T
    expected = -np.logaddexp.reduce(neg_energy, axis=1)
    got = to_np(model.free_energy(v.reshape(-1, 3, 3, 1).astype("float32")))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    # E(v, h) as the model computes it agrees with the same sum.
    e = to_np(model.energy(v[:1].astype("float32").repeat(64, 0), h.astype("float32")))
    np.testing.assert_allclose(-np.logaddexp.reduce(-e), expected[0], rtol=1e-5)


def test_exact_log_z_equals_enumeration_of_both_layers_and_the_free_energy_sum():
    model = build(scale=1.0)
    want = log_z_both_layers(model)
    assert model.log_prob_kind == "exact"
    assert model.log_partition()["log_z"] == pytest.approx(want, abs=1e-4)
    w, b, c = model.w, model.b, model.c
    over_v = float(to_np(exact_log_partition(keras.ops.transpose(w), c, b)))
    assert over_v == pytest.approx(want, abs=1e-4)
    free = to_np(model.free_energy(all_states(9).astype("float32")))
    assert np.logaddexp.reduce(-free.astype("float64")) == pytest.approx(want, abs=1e-4)
    # Several enumeration chunks (2^16 hidden states > one chunk of 2^14) give the same sum.
    wide = build(shape=(2, 2, 1), hidden=16, scale=0.5)
    free = to_np(wide.free_energy(all_states(4).astype("float32")))
    assert wide.log_partition()["log_z"] == pytest.approx(np.logaddexp.reduce(-free.astype("float64")), abs=1e-3)


def test_exact_log_prob_sums_to_one():
    model = build(scale=1.0)
    p = np.exp(model.log_prob(all_states(9).reshape(-1, 3, 3, 1)).astype("float64"))
    assert p.sum() == pytest.approx(1.0, abs=1e-4)


def test_ais_lands_within_its_standard_error_of_the_exact_log_z():
    model = build(scale=1.0)
    exact = log_z_both_layers(model)
    result = model.log_partition(method="ais", chains=100, betas=1000, seed=0)
    assert result["method"] == "ais" and result["chains"] == 100 and result["betas"] == 1000
    assert 0 < result["log_z_stderr"] < 0.2
    assert abs(result["log_z"] - exact) < 3 * result["log_z_stderr"] + 1e-3, (result, exact)
    # A base-rate model (the data's mean, learned from the batches seen) works as well.
    model.data_sum.assign(np.linspace(0.1, 0.9, 9).astype("float32") * 10)
    model.data_count.assign(10.0)
    result = model.log_partition(method="ais", chains=100, betas=1000, seed=1)
    assert abs(result["log_z"] - exact) < 3 * result["log_z_stderr"] + 1e-3, (result, exact)


def test_log_prob_uses_ais_when_both_layers_are_large():
    model = build(shape=(21, 1, 1), hidden=21, scale=0.3, ais_chains=50, ais_betas=300)
    assert model.log_prob_kind == "ais"
    exact = model.log_partition(method="exact")["log_z"]
    estimate = model.log_partition()
    assert estimate["method"] == "ais" and abs(estimate["log_z"] - exact) < 3 * estimate["log_z_stderr"] + 1e-3
    x = np.random.default_rng(0).integers(0, 2, (4, 21, 1, 1)).astype("float32")
    free = to_np(model.free_energy(x))
    np.testing.assert_allclose(model.log_prob(x), -free - estimate["log_z"], rtol=1e-5)
    assert model.evaluate_extra(None)["log_z_method"] == "ais"


def test_ais_schedule_is_salakhutdinov_and_murray():
    betas = ais_schedule(14500)
    steps = np.diff(betas)
    assert len(betas) == 14501 and betas[0] == 0 and betas[-1] == 1
    np.testing.assert_allclose(steps[:500], 1e-3, rtol=1e-3)
    np.testing.assert_allclose(steps[500:4500], 1e-4, rtol=1e-2)
    np.testing.assert_allclose(steps[4500:], 1e-5, rtol=5e-2)


def test_cd_with_a_long_chain_follows_the_exact_log_likelihood_gradient():
    # One SGD step of learning rate 1 moves the weights by minus the surrogate loss's gradient:
    # E_data[v p(h|v)'] - E_chain[v p(h|v)'], which with long chains is the exact gradient of mean log p(x).
    model = build(scale=0.5, training_method="cd", cd_steps=100)
    rng = np.random.default_rng(0)
    proto = rng.integers(0, 2, (3, 9))
    x = np.abs(proto[rng.integers(0, 3, 4096)] - (rng.uniform(size=(4096, 9)) < 0.1)).astype("float32")
    all_v = all_states(9)
    p = np.exp(model.log_prob(all_v.reshape(-1, 3, 3, 1)).astype("float64"))
    data = exact_stats(model, x)
    w, b, c = params(model)
    ph = 1 / (1 + np.exp(-(c + all_v @ w)))
    model_stats = (p @ all_v, p @ ph, (all_v * p[:, None]).T @ ph)
    exact_grad = [d - m for d, m in zip(data, model_stats)]  # d mean log p / d (b, c, W)
    before = params(model)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    model.fit(x.reshape(-1, 3, 3, 1), batch_size=4096, epochs=1, verbose=0, shuffle=False)
    after = params(model)
    moved = {"w": after[0] - before[0], "b": after[1] - before[1], "c": after[2] - before[2]}
    for name, want in zip(("b", "c", "w"), exact_grad):
        np.testing.assert_allclose(moved[name], want, atol=0.04, err_msg=name)
    # The gradient is far from zero, so a chain that ignored the model would fail.
    assert np.abs(exact_grad[2]).max() > 0.15


def test_long_gibbs_chains_match_the_exact_distribution():
    model = build(shape=(2, 2, 1), hidden=3, scale=1.5, seed=3, sample_steps=50)
    states = all_states(4)
    p = np.exp(model.log_prob(states.reshape(-1, 2, 2, 1)).astype("float64"))
    assert 0.5 * np.abs(p - 1 / 16).sum() > 0.2  # far from uniform: the test can tell
    s = model.sample(20000, seed=0, batch_size=20000).reshape(20000, 4)
    assert set(np.unique(s)) <= {0.0, 1.0}
    freq = np.bincount((s @ (2 ** np.arange(3, -1, -1))).astype(int), minlength=16) / 20000
    assert 0.5 * np.abs(freq - p).sum() < 0.05
    np.testing.assert_array_equal(model.sample(5, seed=1), model.sample(5, seed=1))


def toy_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    proto = np.array([[1, 1, 1, 0, 0, 0, 1, 0, 1], [0, 0, 1, 0, 1, 0, 1, 0, 0]])
    x = np.abs(proto[rng.integers(0, 2, n)] - (rng.uniform(size=(n, 9)) < 0.05))
    return x.reshape(n, 3, 3, 1).astype("float32")


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_training_raises_the_exact_log_likelihood(method):
    x = toy_data()
    model = build(hidden=6, training_method=method, cd_steps=1, persistent_chains=64)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    noise = (np.random.default_rng(1).uniform(size=x.shape) < 0.5).astype("float32")

    def gap():  # free energy of the data relative to random binary images
        return float(to_np(keras.ops.mean(model.free_energy(x)) - keras.ops.mean(model.free_energy(noise))))

    before, gap_before = model.log_prob(x).mean(), gap()
    hist = model.fit(x, batch_size=64, epochs=6, verbose=0, shuffle=False)
    after, gap_after = model.log_prob(x).mean(), gap()
    assert after > before + 1.5, (before, after)
    assert gap_after < gap_before - 1.0, (gap_before, gap_after)
    assert set(hist.history) == {"loss", "recon_error"}
    assert all(np.isfinite(hist.history["loss"]))
    assert hist.history["recon_error"][-1] < hist.history["recon_error"][0]
    assert float(keras.ops.convert_to_numpy(model.data_count)) == 6 * len(x)


def test_pcd_chains_change_in_fit_and_survive_a_checkpoint(tmp_path):
    x = toy_data(128)
    model = build(training_method="pcd", persistent_chains=32)
    model.compile(optimizer="adam")
    chains = keras.ops.convert_to_numpy(model.chains).copy()
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    after = keras.ops.convert_to_numpy(model.chains)
    assert not np.array_equal(chains, after) and set(np.unique(after)) <= {0.0, 1.0}
    checkpoint.save_checkpoint(model, tmp_path / "m.keras")
    for loaded in (checkpoint.load_model(tmp_path / "m.keras"), keras.saving.load_model(tmp_path / "m.keras")):
        assert loaded.training_method == "pcd"
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.chains), after)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.data_sum),
                                      keras.ops.convert_to_numpy(model.data_sum))
        np.testing.assert_allclose(loaded.log_prob(x[:4]), model.log_prob(x[:4]), rtol=1e-6)


def test_a_resumed_pcd_run_matches_an_uninterrupted_one(tmp_path, tiny_config):
    sets = ["model.hidden_units=8", "model.persistent_chains=16", "model.sample_steps=10", "data.max_examples=128"]
    full, _, _ = train(tiny_config("rbm", "digits", "train.epochs=3", *sets), run_dir=tmp_path / "full", verbose=0)
    train(tiny_config("rbm", "digits", "train.epochs=1", *sets), run_dir=tmp_path / "cut", verbose=0)
    resumed, _, _ = train(None, run_dir=tmp_path / "cut", resume=True, epochs=3, verbose=0)
    assert [v.name for v in full.weights] == [v.name for v in resumed.weights]
    assert "chains" in [v.name for v in full.weights]
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_bad_arguments_and_data():
    with pytest.raises(UsageError):
        build(training_method="gibbs")
    with pytest.raises(UsageError):
        build(hidden=0)
    with pytest.raises(UsageError):
        build(num_classes=3)
    model = build()
    with pytest.raises(DataError):
        model.log_prob(np.full((1, 3, 3, 1), 0.5, "float32"))
    with pytest.raises(DataError):
        model.log_prob(np.zeros((1, 4, 4, 1), "float32"))
    with pytest.raises(UsageError):
        model.log_partition(method="ais", betas=[0.5, 1.0])
    digits = kgen.load_dataset("digits")
    with pytest.raises(DataError, match="binarize"):
        build(shape=digits.shape).check_data(digits)
