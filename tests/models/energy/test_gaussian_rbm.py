"""Gaussian-Bernoulli RBM: log Z against quadrature, the density integrates to 1, AIS, Gibbs sampling, training."""

import math

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen.data import from_array
from kgen.errors import DataError, UsageError
from kgen.models.energy.gaussian_rbm import gaussian_exact_log_partition
from kgen.training.trainer import train


def build(shape=(1, 1, 1), hidden=3, scale=0.0, seed=0, **kwargs):
    model = kgen.build_model("gaussian_rbm", input_shape=shape, num_levels=None, hidden_units=hidden, **kwargs)
    if scale:
        rng = np.random.default_rng(seed)
        d = int(np.prod(shape))
        model.w.assign(rng.normal(0, scale, (d, hidden)).astype("float32"))
        model.b.assign(rng.normal(0, scale, d).astype("float32"))
        model.c.assign(rng.normal(0, scale, hidden).astype("float32"))
    return model


def to_np(t):
    return keras.ops.convert_to_numpy(keras.ops.stop_gradient(t)).astype("float64")


def test_exact_log_z_equals_quadrature_of_the_free_energy():
    model = build(hidden=4, scale=1.0)
    w, b, c = (to_np(t) for t in (model.w, model.b, model.c))
    v = np.linspace(-40, 40, 400_001)
    free = 0.5 * (v - b[0]) ** 2 - np.logaddexp(0, c[None] + v[:, None] * w[0][None]).sum(1)
    quadrature = math.log(np.trapezoid(np.exp(-free), v))
    exact = float(keras.ops.convert_to_numpy(gaussian_exact_log_partition(model.w, model.b, model.c)))
    assert exact == pytest.approx(quadrature, abs=1e-4)
    assert model.log_partition(method="exact")["log_z"] == pytest.approx(quadrature, abs=1e-4)


@pytest.mark.parametrize("visible_std", [1.0, 0.2])
def test_the_density_on_data_units_integrates_to_one(visible_std):
    model = build(shape=(2, 1, 1), hidden=3, scale=0.8, visible_std=visible_std)
    grid = np.linspace(-12, 12, 601) * visible_std
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    x = np.stack([xx.ravel(), yy.ravel()], 1).reshape(-1, 2, 1, 1).astype("float32")
    p = np.exp(model.log_prob(x, batch_size=100_000).astype("float64")).reshape(len(grid), len(grid))
    step = grid[1] - grid[0]
    assert p.sum() * step * step == pytest.approx(1.0, abs=2e-3)


def test_ais_lands_within_its_standard_error_of_the_exact_log_z():
    model = build(shape=(4, 4, 1), hidden=10, scale=0.5)
    exact = model.log_partition(method="exact")["log_z"]
    result = model.log_partition(method="ais", chains=100, betas=1000, seed=0)
    assert 0 < result["log_z_stderr"] < 0.2
    assert abs(result["log_z"] - exact) < 3 * result["log_z_stderr"] + 1e-3, (result, exact)
    model.data_sum.assign(np.linspace(-1, 1, 16).astype("float32") * 10)  # a data-mean base model
    model.data_count.assign(10.0)
    result = model.log_partition(method="ais", chains=100, betas=1000, seed=1)
    assert abs(result["log_z"] - exact) < 3 * result["log_z_stderr"] + 1e-3, (result, exact)


def test_gibbs_samples_follow_the_model():
    # W = 0: x = sigma v with v ~ N(b, I), whatever the hidden units do.
    model = build(shape=(2, 1, 1), hidden=3, visible_std=0.5, sample_mean=False, sample_steps=5)
    model.b.assign(np.array([1.0, -2.0], "float32"))
    s = model.sample(20000, seed=0, batch_size=20000).reshape(-1, 2)
    np.testing.assert_allclose(s.mean(0), [0.5, -1.0], atol=0.02)
    np.testing.assert_allclose(s.std(0), [0.5, 0.5], atol=0.02)
    # A coupled 1-D model: the chain's histogram matches the exact density.
    model = build(hidden=2, scale=1.5, seed=2, sample_mean=False, sample_steps=60, visible_std=1.0)
    x = model.sample(20000, seed=1, batch_size=20000).ravel()
    edges = np.linspace(-8, 8, 81)
    mids = 0.5 * (edges[1:] + edges[:-1])
    p = np.exp(model.log_prob(mids.reshape(-1, 1, 1, 1).astype("float32"))) * (edges[1] - edges[0])
    freq = np.histogram(x, edges)[0] / len(x)
    assert 0.5 * np.abs(freq - p).sum() < 0.05
    np.testing.assert_array_equal(model.sample(4, seed=3), model.sample(4, seed=3))


def smooth_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    proto = np.array([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.9, 0.7]])
    return (proto[rng.integers(0, 2, n)] + rng.normal(0, 0.05, (n, 4))).reshape(n, 2, 2, 1).astype("float32")


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_training_raises_the_exact_log_likelihood(method):
    x = smooth_data()
    model = build(shape=(2, 2, 1), hidden=6, training_method=method, persistent_chains=64, visible_std=0.2)
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    before = model.log_prob(x).mean()
    hist = model.fit(x, batch_size=64, epochs=8, verbose=0, shuffle=False)
    after = model.log_prob(x).mean()
    assert after > before + 1.0, (before, after)
    assert all(np.isfinite(hist.history["loss"]))
    assert hist.history["recon_error"][-1] < hist.history["recon_error"][0]


def test_pcd_state_survives_a_checkpoint(tmp_path):
    x = smooth_data(128)
    model = build(shape=(2, 2, 1), hidden=4, training_method="pcd", persistent_chains=16, visible_std=0.3)
    model.compile(optimizer="adam")
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    checkpoint.save_checkpoint(model, tmp_path / "m.keras")
    loaded = checkpoint.load_model(tmp_path / "m.keras")
    assert loaded.visible_std == 0.3 and loaded.training_method == "pcd"
    np.testing.assert_array_equal(to_np(loaded.chains), to_np(model.chains))
    np.testing.assert_allclose(loaded.log_prob(x[:4]), model.log_prob(x[:4]), rtol=1e-6)


def test_digits_recipe_trains_and_evaluates_in_discrete_bits(tmp_path, tiny_config):
    config = tiny_config("gaussian_rbm", "digits", "train.epochs=2", "model.hidden_units=8",
                         "model.persistent_chains=16", "model.sample_steps=10")
    model, run_dir, last = train(config, run_dir=tmp_path / "run", verbose=0)
    assert np.isfinite(last["loss"])
    from kgen.evaluation import evaluate_checkpoint

    result = evaluate_checkpoint(run_dir / "last.keras", max_examples=64, progress=False)
    assert result["nll_kind"] == "exact"
    # the density on dequantized [0, 1] data, turned into the discrete 17-level NLL: positive bits
    assert 0 < result["nll"]["bits_per_dim"] < 20, result
    assert result["log_z_method"] == "exact"


def test_bad_arguments_and_data():
    with pytest.raises(UsageError):
        build(visible_std=0.0)
    with pytest.raises(UsageError):
        build(visible_std=float("nan"))
    model = build(shape=(2, 2, 1))
    binary = from_array(np.random.default_rng(0).integers(0, 2, (8, 2, 2, 1)).astype("float32"), name="bits")
    with pytest.raises(DataError, match="binary"):
        model.check_data(binary)
    with pytest.raises(DataError, match="NaN"):
        model.log_prob(np.full((1, 2, 2, 1), np.nan, "float32"))
