"""The shipped PixelCNN and conditional gated PixelCNN checkpoints: trained, named as users type them, sampleable."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen import config as config_lib
from kgen.cli.main import main
from kgen.api import canonical_name
from kgen.saved import pretrained_path


@pytest.fixture(scope="module")
def test_digits():
    return kgen.load_dataset("digits", split="test")


def independent_baseline_nll(test):
    """Per-pixel categorical over the 17 levels fitted on the train split (add-one): NLL in nats."""
    train = np.round(kgen.load_dataset("digits").x * 16).astype(int).reshape(-1, 64)
    levels = np.round(test.x * 16).astype(int).reshape(-1, 64)
    counts = np.stack([(train == k).sum(0) for k in range(17)]) + 1.0
    probs = counts / counts.sum(0)
    return float(-np.log(probs[levels, np.arange(64)]).sum(1).mean())


@pytest.mark.parametrize("typed, name", [("pixelcnn", "pixel_cnn"), ("PixelCNN", "pixel_cnn"),
                                         ("gated_pixelcnn", "gated_pixel_cnn"), ("gated-pixel-cnn", "gated_pixel_cnn"),
                                         ("wgan-gp", "wgan_gp"), ("vae", "vae")])
def test_model_names_as_users_type_them(typed, name):
    assert canonical_name(typed) == name
    assert config_lib.resolve(model=typed)["model"]["name"] == name


def test_shipped_pixel_cnn_beats_the_independent_baseline(test_digits):
    net = kgen.load_model(pretrained_path("pixelcnn"))
    assert net.registered_name == "pixel_cnn" and net.data_shape == (8, 8, 1)
    nll = float(-net.log_prob(test_digits.x).mean())
    baseline = independent_baseline_nll(test_digits)
    # Measured: 80.8 nats against 106.9 for the baseline; an untrained net is near 64 log 17 = 181.
    assert nll < 85.0 and nll < baseline - 20.0, (nll, baseline)


def test_shipped_gated_model_uses_the_label(test_digits):
    net = kgen.load_model(pretrained_path("gated_pixelcnn"))
    assert net.conditional and net.registered_name == "gated_pixel_cnn"
    x, y = test_digits.x, test_digits.y
    right = float(-net.log_prob(x, y).mean())
    wrong = float(-net.log_prob(x, (y + 1) % 10).mean())
    # Measured: 74.9 nats given the true label, 110 given the next digit's.
    assert right < 80.0 and wrong > right + 15.0, (right, wrong)


def test_shipped_gated_model_draws_the_digit_it_is_asked_for():
    """Samples given label K are read as K by the shipped digits classifier (test accuracy 0.99)."""
    from kgen.metrics.features import FeatureExtractor

    net = kgen.load_model(pretrained_path("gated_pixelcnn"))
    classifier = FeatureExtractor("digits")
    labels = np.repeat(np.arange(10), 8).astype("int32")
    samples = net.sample(len(labels), seed=0, labels=labels)
    agree = float((classifier.predict_labels(samples) == labels).mean())
    # Measured: 0.89 (seed 0). A label-blind model would agree about 10% of the time.
    assert agree > 0.6, agree


@pytest.mark.parametrize("args", [["--model", "pixelcnn", "-n", "16"], ["--model", "gated_pixelcnn", "--label", "3"]])
def test_cli_samples_pretrained_without_training(args, tmp_path):
    npz = tmp_path / "s.npz"
    result = CliRunner().invoke(main, ["--backend", keras.config.backend(), "sample", *args, "--seed", "0",
                                       "--out", str(npz)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = np.load(npz)
    x = data["x"]
    assert x.shape[1:] == (8, 8, 1) and len(x) == (16 if "-n" in args else 64)
    levels = x * 16
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-5)
    # Digits, not noise: ink in the middle columns, and images that differ from one another.
    assert x[:, :, 2:6].mean() > x[:, :, [0, 7]].mean() + 0.1
    assert len({img.tobytes() for img in x}) == len(x)
    if "--label" in args:
        np.testing.assert_array_equal(data["y"], 3)
    png = tmp_path / "s.png"
    result = CliRunner().invoke(main, ["--backend", keras.config.backend(), "sample", *args, "--out", str(png)],
                                catch_exceptions=False)
    assert result.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"
