"""PixelRNN (Row LSTM, Diagonal BiLSTM): autoregressive property, full context, exact normalization, sampling."""

import keras
import numpy as np
import pytest

import kgen
from kgen.errors import UsageError
from kgen.models.autoregressive.pixel_rnn import skew, unskew

import ar_checks

CELLS = ["row_lstm", "diagonal_bilstm"]


def build(cell, shape=(3, 3, 1), levels=2, **kwargs):
    kwargs = {"hidden_units": 3 if shape[-1] == 3 else 4, "num_layers": 2, "output_filters": 8,
              "first_kernel": 3, **kwargs}
    return kgen.build_model("pixel_rnn", input_shape=shape, num_levels=levels, cell=cell, **kwargs)


def test_skew_unskew():
    x = np.arange(2 * 3 * 4 * 1, dtype="float32").reshape(2, 3, 4, 1)
    s = keras.ops.convert_to_numpy(skew(x))
    assert s.shape == (2, 3, 6, 1)
    # Diagonal i + j = d lands in column d.
    assert s[0, 1, 1, 0] == x[0, 1, 0, 0] and s[0, 2, 5, 0] == x[0, 2, 3, 0] and s[0, 2, 1, 0] == 0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(unskew(s, 4)), x)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape,levels", [((3, 4, 1), 3), ((1, 2, 3), 2)], ids=["grey", "rgb"])
def test_autoregressive_property(cell, shape, levels):
    model = build(cell, shape, levels)
    rank = np.arange(model.num_dims)
    x = np.random.default_rng(0).integers(0, levels, (4,) + shape).astype("float32") / (levels - 1)
    ar_checks.assert_autoregressive_by_perturbation(model, x, rank)
    ar_checks.assert_autoregressive_by_gradients(model, rank)


def test_diagonal_bilstm_sees_the_whole_past_row_lstm_a_triangle():
    # With a first layer wide enough for the border, every output of the
    # Diagonal BiLSTM depends on every earlier pixel (both directions).
    rank = np.arange(12)
    earlier = rank[None, :] < rank[:, None]
    diag = build("diagonal_bilstm", (3, 4, 1), 2, first_kernel=7)
    jac = ar_checks.assert_autoregressive_by_gradients(diag, rank)
    assert np.all(np.abs(jac[earlier]) > 0), np.argwhere(earlier & (jac == 0)).tolist()
    # The Row LSTM's context is a triangle: pixel (1, 0) does not see (0, 3) with 3-wide kernels.
    row = build("row_lstm", (3, 4, 1), 2, num_layers=1)
    jac = ar_checks.jacobian(row, np.random.default_rng(0).uniform(0.1, 0.9, (1, 3, 4, 1)).astype("float32"))
    assert jac[4, 3] == 0 and jac[4, 1] != 0


@pytest.mark.parametrize("cell", CELLS)
def test_exact_normalization(cell):
    ar_checks.assert_normalized(build(cell))  # 3x3 binary, 512 images
    ar_checks.assert_normalized(build(cell, (2, 2, 1), 3))  # 81 images
    ar_checks.assert_normalized(build(cell, (1, 2, 3), 2))  # RGB, 64 images


@pytest.mark.parametrize("cell", CELLS)
def test_sampling(cell):
    model = build(cell, (2, 3, 1), 3)
    ar_checks.assert_samples_valid(model)
    ar_checks.assert_sampler_consistent(model)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape,levels,kwargs", [
    ((5, 6, 1), 2, {}),
    ((4, 5, 1), 5, {"row_kernel": 5}),
    ((3, 4, 3), 4, {"hidden_units": 6}),
    ((6, 4, 1), 3, {"first_kernel": 7, "num_layers": 3}),
], ids=["binary", "levels-k5", "rgb", "k7-3layers"])
def test_cached_sampler_equals_naive(cell, shape, levels, kwargs):
    model = build(cell, shape, levels, **kwargs)
    assert model.sampler == "cached"
    # Larger weights than the initializer's, so that every conditional leans on its context.
    rng = np.random.default_rng(2)
    for v in model.weights:
        v.assign(rng.normal(0.0, 0.4, v.shape).astype("float32"))
    u = np.random.default_rng(0).uniform(size=(7,) + shape).astype("float32")
    for temperature in (1.0, 3.0):
        naive = keras.ops.convert_to_numpy(model.sample_from_noise(u, temperature=temperature, sampler="naive"))
        cached = keras.ops.convert_to_numpy(model.sample_from_noise(u, temperature=temperature, sampler="cached"))
        np.testing.assert_array_equal(cached, naive)
        assert len(np.unique(naive)) > 1
    np.testing.assert_array_equal(model.sample(3, seed=2), model.sample(3, seed=2, sampler="naive"))


def test_sampler_option(tmp_path):
    with pytest.raises(UsageError, match="unknown sampler"):
        build("row_lstm", sampler="fast")
    naive = build("diagonal_bilstm", (2, 3, 1), 3, sampler="naive")
    naive.save(tmp_path / "m.keras")
    assert kgen.load_model(tmp_path / "m.keras").sampler == "naive"


def test_round_trip(tmp_path):
    model = build("diagonal_bilstm", (2, 3, 1), 3)
    x = np.random.default_rng(0).integers(0, 3, (5, 2, 3, 1)).astype("float32") / 2
    ar_checks.assert_round_trip(model, x, tmp_path)


@pytest.mark.parametrize("cell", CELLS)
def test_training_loss_falls(cell):
    x = ar_checks.digits_levels(96, num_levels=5, shape=(6, 6))
    model = build(cell, (6, 6, 1), 5, hidden_units=8)
    ar_checks.assert_loss_falls(model, x, epochs=3)


def test_export_endpoints_match():
    model = build("row_lstm", (2, 2, 1), 3)
    ar_checks.assert_export_endpoints_match(model, ar_checks.all_images((2, 2, 1), 3)[:5])


def test_bad_arguments():
    with pytest.raises(UsageError):
        build("gru")
    with pytest.raises(UsageError):
        build("row_lstm", (2, 2, 3), hidden_units=4)
    with pytest.raises(UsageError):
        build("row_lstm", num_classes=2)
