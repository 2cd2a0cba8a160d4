"""MADE: autoregressive masks, exact normalization, mask ensembles, sampling, saving, training."""

import keras
import numpy as np
import pytest

import kgen
from kgen.errors import UsageError
from kgen.layers.masked import made_degrees, made_masks

import ar_checks


def build(shape=(3, 3, 1), levels=2, **kwargs):
    kwargs.setdefault("hidden_units", (16, 16))
    return kgen.build_model("made", input_shape=shape, num_levels=levels, **kwargs)


def test_masks_are_autoregressive_in_numpy():
    rng = np.random.default_rng(0)
    degrees = made_degrees(6, (5, 7), rng, resample_order=True)
    masks = made_masks(degrees, out_per_dim=2)
    # Path counts: input j reaches output i only if order[j] < order[i].
    reach = masks[0] @ masks[1] @ masks[2]  # (D, D * 2)
    order = np.repeat(degrees[0], 2)
    assert np.all(reach[degrees[0][:, None] >= order[None, :]] == 0)


@pytest.mark.parametrize("kwargs", [{}, {"num_masks": 3, "resample_order": True},
                                    {"num_masks": 3, "resample_order": True, "direct_connections": True}])
def test_autoregressive_property(kwargs):
    model = build(shape=(2, 3, 1), levels=3, **kwargs)
    rank = model.orders()[0]
    x = ar_checks.all_images((2, 3, 1), 3)[::97][:4]
    ar_checks.assert_autoregressive_by_perturbation(model, x, rank)
    ar_checks.assert_autoregressive_by_gradients(model, rank)
    if kwargs:
        assert not np.array_equal(model.orders()[1], model.orders()[0])


def test_gradient_check_can_fail():
    model = build(shape=(2, 3, 1), levels=3)
    rank = model.orders()[0]
    with pytest.raises(AssertionError):  # the reversed order must be caught
        ar_checks.assert_autoregressive_by_gradients(model, rank.max() + 1 - rank)


def test_exact_normalization_binary_3x3():
    model = build(num_masks=2, resample_order=True)
    ar_checks.assert_normalized(model)


def test_exact_normalization_multilevel_and_ensemble():
    model = build(shape=(2, 2, 1), levels=3, num_masks=4, eval_masks=3, resample_order=True)
    ar_checks.assert_normalized(model)
    x = ar_checks.all_images((2, 2, 1), 3)
    mixture = model.log_prob(x)
    single = [model.log_prob(x, num_masks=1)]
    assert abs(np.exp(single[0]).sum() - 1) < 1e-4
    assert not np.allclose(mixture, single[0])
    with pytest.raises(UsageError):
        model.log_prob(x, num_masks=5)


def test_direct_connections_normalized_sampled_and_saved(tmp_path):
    model = build(shape=(2, 2, 1), levels=3, num_masks=3, eval_masks=2, resample_order=True,
                  direct_connections=True)
    assert "masked_direct" in [w.path.split("/")[-2] for w in model.weights]
    ar_checks.assert_normalized(model)
    ar_checks.assert_sampler_consistent(model)
    path = tmp_path / "made.keras"
    model.save(path)
    x = ar_checks.all_images((2, 2, 1), 3)
    np.testing.assert_allclose(kgen.load_model(path).log_prob(x), model.log_prob(x), rtol=1e-6, atol=1e-6)


class TrainingMode:
    """The model called with training=True (dropout on), for the gradient check."""

    def __init__(self, model):
        self.model, self.num_dims, self.data_shape, self.conditional = model, model.num_dims, model.data_shape, False

    def __call__(self, inputs, training=False):
        with keras.StatelessScope():  # the dropout seed update stays inside (jax.jit traces this)
            return self.model(inputs, training=True)


def test_dropout_keeps_the_model_autoregressive_and_exact(tmp_path):
    model = build(shape=(2, 3, 1), levels=3, hidden_units=(32,), dropout=0.5, direct_connections=True)
    rank = model.orders()[0]
    x = ar_checks.all_images((2, 3, 1), 3)[::97][:4]
    jac = ar_checks.assert_autoregressive_by_gradients(TrainingMode(model), rank, seed=0)
    # Dropout was on (the check above saw it): the Jacobian at the same point differs from inference's.
    same_point = np.random.default_rng(0).uniform(0.1, 0.9, (1, 2, 3, 1)).astype("float32")
    assert not np.allclose(jac, ar_checks.jacobian(model, same_point))
    # Inference is deterministic and normalized; the rate is saved with the model.
    ar_checks.assert_normalized(model)
    np.testing.assert_array_equal(model.log_prob(x), model.log_prob(x))
    path = tmp_path / "made.keras"
    model.save(path)
    loaded = kgen.load_model(path)
    assert loaded.dropout == 0.5
    np.testing.assert_allclose(loaded.log_prob(x), model.log_prob(x), rtol=1e-6, atol=1e-6)
    ar_checks.assert_loss_falls(build(shape=(8, 8, 1), levels=17, hidden_units=(64,), dropout=0.2),
                                ar_checks.digits_levels(64))


def test_ensemble_is_the_mean_of_mask_probabilities():
    model = build(shape=(2, 2, 1), num_masks=3, eval_masks=3, resample_order=True)
    x = ar_checks.all_images((2, 2, 1), 2)
    per_mask = []
    for k in range(3):
        flat = x.reshape(len(x), -1)
        degs = [d[k] for d in model._degrees(None)]
        logits = model.logits_flat(flat, degs)
        per_mask.append(keras.ops.convert_to_numpy(model.log_likelihood(flat, logits)))
    expected = np.log(np.mean(np.exp(np.stack(per_mask)), axis=0))
    np.testing.assert_allclose(model.log_prob(x), expected, rtol=1e-5, atol=1e-5)


def test_sampling_deterministic_and_valid():
    model = build(shape=(3, 3, 1), levels=3)
    ar_checks.assert_samples_valid(model)
    assert not np.array_equal(model.sample(4, seed=1), model.sample(4, seed=2))
    u = model.draw_noise(4, seed=1)[0]
    np.testing.assert_array_equal(np.asarray(model.sample_from_noise(u)), model.sample(4, seed=1))


def test_sampler_matches_the_conditionals():
    # Monte Carlo: the mixture sampler's frequencies match exp(log_prob) on all 16 images.
    model = build(shape=(2, 2, 1), levels=2, num_masks=2, eval_masks=2, resample_order=True)
    x = ar_checks.all_images((2, 2, 1), 2)
    p = np.exp(model.log_prob(x))
    u, c = model.draw_noise(4000, seed=1)
    s = np.asarray(model.sample_from_noise(u, c)).reshape(4000, -1)
    codes = s @ (2 ** np.arange(3, -1, -1))
    freq = np.bincount(codes.astype(int), minlength=16) / 4000
    assert np.abs(freq - p).max() < 0.04


def test_sampler_consistent_with_the_conditionals():
    ar_checks.assert_sampler_consistent(build(shape=(3, 3, 1), levels=3, num_masks=2, resample_order=True))


def test_temperature():
    model = build(shape=(3, 3, 1), levels=3)
    cold = model.sample(8, seed=0, temperature=0.05)
    assert cold.shape == (8, 3, 3, 1)
    with pytest.raises(UsageError):
        model.sample(2, temperature=0.0)


def test_round_trip(tmp_path):
    model = build(shape=(3, 3, 1), levels=3, num_masks=2, eval_masks=2)
    x = ar_checks.all_images((3, 3, 1), 3)[::500]
    loaded = ar_checks.assert_round_trip(model, x, tmp_path)
    np.testing.assert_array_equal(loaded.orders(), model.orders())


def test_training_loss_falls_with_mask_resampling():
    x = ar_checks.digits_levels(128)
    model = kgen.build_model("made", input_shape=(8, 8, 1), num_levels=17, hidden_units=(64,),
                             num_masks=4, resample_order=True)
    ar_checks.assert_loss_falls(model, x)


def test_export_endpoints_match():
    model = build(shape=(2, 2, 1), levels=3, num_masks=2, eval_masks=2)
    ends = model.export_endpoints()
    x = ar_checks.all_images((2, 2, 1), 3)[:7]
    fn, specs = ends["log_prob"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fn(x)), model.log_prob(x), rtol=1e-5, atol=1e-5)
    fn, specs = ends["sample"]
    u, c = model.draw_noise(3, seed=0)
    assert len(specs) == 2
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(fn(u, c)), np.asarray(model.sample_from_noise(u, c)))


def test_bad_arguments():
    with pytest.raises(UsageError):
        build(num_masks=2, eval_masks=3)
    with pytest.raises(UsageError):
        kgen.build_model("made", input_shape=(3, 3, 1), num_levels=None)
    with pytest.raises(UsageError):
        build(levels=3, likelihood="bernoulli")
    with pytest.raises(UsageError):
        build().sample(2, labels=[0, 1])
    with pytest.raises(UsageError):
        build(dropout=1.0)


def test_train_cli_path(tmp_path):
    from kgen import config as config_lib
    from kgen.training.trainer import train

    config = config_lib.resolve(
        model="made", overrides=["train.epochs=1", "data.max_examples=128", "train.grid_size=4",
                                 "model.hidden_units=[32]"]
    )
    model, run_dir, last = train(config, run_dir=tmp_path / "run", verbose=0)
    assert np.isfinite(last["loss"])
    assert (run_dir / "last.keras").is_file()
    assert (run_dir / "samples" / "epoch_001.png").is_file()
