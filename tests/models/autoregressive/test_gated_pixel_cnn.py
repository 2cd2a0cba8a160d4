"""Gated PixelCNN: no blind spot, conditioning, exact normalization, cached == naive, saving, training."""

import keras
import numpy as np
import pytest

import kgen
from kgen.errors import DataError, UsageError

import ar_checks


def build(shape=(3, 3, 1), levels=2, **kwargs):
    kwargs = {"filters": 6, "num_layers": 2, "output_filters": 12, "first_kernel": 3, **kwargs}
    return kgen.build_model("gated_pixel_cnn", input_shape=shape, num_levels=levels, **kwargs)


def randomize_biases(model, seed=1):
    """Random biases (zero at init) so that no conditional is uniform."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "bias" in w.path:
            w.assign(rng.normal(0, 0.5, w.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def labelled():
    """3x3 binary, conditional on 3 classes."""
    return randomize_biases(build(num_classes=3))


@pytest.fixture(scope="module")
def rgb():
    return build((1, 2, 3), 2)


def test_autoregressive_property_and_no_blind_spot(labelled):
    rank = np.arange(9)
    x = ar_checks.all_images((3, 3, 1), 2)[[3, 77, 200, 301, 511]]
    ar_checks.assert_autoregressive_by_perturbation(labelled, x, rank, labels=np.array([2] * 5))
    jac = ar_checks.assert_autoregressive_by_gradients(labelled, rank, labels=np.array([1]))
    # Two 3x3 gated layers see every earlier pixel of a 3x3 image: no blind spot.
    earlier = rank[None, :] < rank[:, None]
    assert np.all(np.abs(jac[earlier]) > 0), np.argwhere(earlier & (jac == 0)).tolist()


def test_pixel_cnn_has_the_blind_spot_the_gated_model_removes():
    # PixelCNN with 3x3 masks: pixel (1, 0) never sees (0, 2), however deep.
    x = np.random.default_rng(0).uniform(0.1, 0.9, (1, 3, 3, 1)).astype("float32")
    pcnn = kgen.build_model("pixel_cnn", input_shape=(3, 3, 1), num_levels=2, filters=6, num_blocks=3,
                            output_filters=12, first_kernel=3)
    jac = ar_checks.jacobian(pcnn, x)
    assert jac[3, 2] == 0
    gated = build(num_layers=3)
    jac = ar_checks.jacobian(gated, x)
    assert jac[3, 2] != 0


def test_rgb_channel_order(rgb):
    rank = np.arange(6)
    ar_checks.assert_autoregressive_by_perturbation(rgb, ar_checks.all_images((1, 2, 3), 2)[::13], rank)
    ar_checks.assert_autoregressive_by_gradients(rgb, rank)
    with pytest.raises(AssertionError):
        ar_checks.assert_autoregressive_by_gradients(rgb, np.arange(6).reshape(2, 3)[:, ::-1].ravel())


def test_exact_normalization_per_label(labelled):
    for label in range(3):
        ar_checks.assert_normalized(labelled, labels=label)
    x = ar_checks.all_images((3, 3, 1), 2)[::50]
    assert not np.allclose(labelled.log_prob(x, labels=np.zeros(len(x))),
                           labelled.log_prob(x, labels=np.full(len(x), 2)))


def test_exact_normalization_multilevel_and_rgb(rgb):
    ar_checks.assert_normalized(build((2, 2, 1), 3))
    ar_checks.assert_normalized(rgb)


@pytest.mark.parametrize(
    "shape,num_levels,kwargs",
    [((5, 4, 1), 4, {"num_classes": 3, "first_kernel": 5, "num_layers": 3}),
     ((3, 3, 3), 3, {"condition_dim": 2, "num_layers": 3})],
    ids=["grey-labels", "rgb-vector"],
)
def test_cached_sampler_equals_naive(shape, num_levels, kwargs):
    model = randomize_biases(build(shape, num_levels, **kwargs))
    u = model.draw_noise(12, seed=4)[0]
    if "num_classes" in kwargs:
        labels = np.arange(12) % 3
    else:
        labels = np.random.default_rng(0).normal(size=(12, 2)).astype("float32")
    for temperature in (1.0, 2.5):
        naive = keras.ops.convert_to_numpy(
            model.sample_from_noise(u, labels=labels, temperature=temperature, sampler="naive"))
        cached = keras.ops.convert_to_numpy(
            model.sample_from_noise(u, labels=labels, temperature=temperature, sampler="cached"))
        np.testing.assert_array_equal(cached, naive)
    assert len(np.unique(naive)) > 1
    ar_checks.assert_sampler_consistent(model, n=12, labels=labels)


def test_sampling_by_label(labelled):
    ar_checks.assert_samples_valid(labelled)
    u = labelled.draw_noise(64, seed=0)[0]
    by_label = [keras.ops.convert_to_numpy(labelled.sample_from_noise(u, labels=np.full(64, k))) for k in range(3)]
    assert not np.array_equal(by_label[0], by_label[2])
    np.testing.assert_array_equal(labelled.sample(4, seed=2, labels=1), labelled.sample(4, seed=2, labels=[1] * 4))
    with pytest.raises(UsageError):
        labelled.sample(2, labels=5)
    with pytest.raises(UsageError):
        labelled.log_prob(np.zeros((2, 3, 3, 1), "float32"))


def test_round_trip(tmp_path, labelled):
    x = ar_checks.all_images((3, 3, 1), 2)[::60]
    ar_checks.assert_round_trip(labelled, x, tmp_path, labels=np.arange(len(x)) % 3)


def test_training_loss_falls_conditional():
    data = kgen.load_dataset("digits").subset(128)
    model = kgen.build_model("gated_pixel_cnn", input_shape=(8, 8, 1), num_levels=17, num_classes=10,
                             filters=8, num_layers=2, output_filters=16, first_kernel=3)
    ar_checks.assert_loss_falls(model, model.model_inputs(data.x, data.y))
    u = model.draw_noise(4, seed=0)[0]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.sample_from_noise(u, labels=[0, 3, 6, 9], sampler="cached")),
        keras.ops.convert_to_numpy(model.sample_from_noise(u, labels=[0, 3, 6, 9], sampler="naive")))


def test_vector_conditioning():
    model = build((2, 2, 1), 3, condition_dim=2)
    h = np.array([0.3, -1.0], "float32")
    ar_checks.assert_normalized(model, labels=h)
    x = ar_checks.digits_levels(64, num_levels=3, shape=(2, 2))
    hs = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
    ar_checks.assert_loss_falls(model, model.model_inputs(x, hs), epochs=3)
    assert model.sample(3, seed=0, labels=h).shape == (3, 2, 2, 1)
    with pytest.raises(UsageError):
        model.sample(3)
    with pytest.raises(DataError):
        model.log_prob(x[:3], labels=np.zeros((3, 5), "float32"))
    ends = model.export_endpoints()
    assert ends["sample"][1][-1] == ((None, 2), "float32")


def test_export_endpoints_match(labelled):
    ends = labelled.export_endpoints()
    assert ends["log_prob"][1][-1] == ((None,), "int32")
    x = ar_checks.all_images((3, 3, 1), 2)[:6]
    labels = np.array([0, 1, 2, 0, 1, 2], "int32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ends["log_prob"][0](x, labels)),
                               labelled.log_prob(x, labels), rtol=1e-5, atol=1e-5)
    u = labelled.draw_noise(6, seed=0)[0]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ends["sample"][0](u, labels)),
                                  np.asarray(labelled.sample_from_noise(u, labels=labels)))


def test_trainer_conditional_run(tmp_path):
    from kgen import config as config_lib
    from kgen.training.trainer import train

    config = config_lib.resolve(model="gated_pixel_cnn", overrides=[
        "train.epochs=1", "data.max_examples=128", "train.grid_size=4", "model.conditional=true",
        "model.filters=8", "model.num_layers=2", "model.output_filters=16"])
    model, run_dir, last = train(config, run_dir=tmp_path / "run", verbose=0)
    assert model.num_classes == 10
    assert np.isfinite(last["loss"]) and np.isfinite(last["val_loss"])
    assert (run_dir / "samples" / "epoch_001.png").is_file()


def test_bad_arguments():
    with pytest.raises(UsageError):
        build(num_classes=3, condition_dim=2)
    with pytest.raises(UsageError):
        build((2, 2, 3), filters=4)
    with pytest.raises(UsageError):
        build(num_layers=0)
