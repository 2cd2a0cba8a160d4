"""`kgen evaluate` on models without a likelihood: FID/KID beside the real-data floor."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen.cli.main import main

BACKEND = keras.config.backend()
TINY_DCGAN = dict(latent_dim=8, generator_filters=(16, 8), discriminator_filters=(8, 16))


def run(*args, env=None):
    return CliRunner().invoke(main, ["--backend", BACKEND, *args], env=env, catch_exceptions=False)


def evaluate_json(*args):
    result = run("evaluate", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check_sample_metrics(report):
    for key in ("fid", "fid_floor"):
        assert np.isfinite(report[key]) and report[key] >= 0, (key, report[key])
    for key in ("kid", "kid_floor"):
        assert np.isfinite(report[key]["mean"]) and report[key]["std"] >= 0, (key, report[key])
    assert report["num_samples"] == report["examples"] == report["floor_examples"]
    assert "skipped" in report["inception"]


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """An untrained tiny DCGAN saved as a plain .keras (evaluated with its digits recipe: scale symmetric)."""
    keras.utils.set_random_seed(0)
    model = kgen.build_model("dcgan", input_shape=(8, 8, 1), output_activation="tanh", **TINY_DCGAN)
    path = tmp_path_factory.mktemp("untrained") / "dcgan.keras"
    model.save(path)
    return evaluate_json("--checkpoint", str(path))


def test_trained_gan_reports_fid_kid_and_floor(tmp_path, untrained):
    run_dir = tmp_path / "run"
    result = run("train", "--model", "dcgan", "--epochs", "1", "--run-dir", str(run_dir), "--quiet",
                 "--set", "data.max_examples=128", "--set", "train.grid_size=16",
                 "--set", "model.latent_dim=8", "--set", "model.generator_filters=[16, 8]",
                 "--set", "model.discriminator_filters=[8, 16]")
    assert result.exit_code == 0, result.output
    report = evaluate_json("--checkpoint", str(run_dir / "last.keras"))
    assert report["model"] == "dcgan" and report["split"] == "test" and report["nll_kind"] == "none"
    assert "nll" not in report
    check_sample_metrics(report)
    assert report["features"]["network"] == "features-digits.keras"
    # The floor is held-out real data (the full train split, not data.max_examples).
    assert report["floor_examples"] == 180 and report["fid_floor"] == pytest.approx(untrained["fid_floor"])


def test_floor_is_below_an_untrained_generator(untrained):
    check_sample_metrics(untrained)
    assert untrained["fid_floor"] < untrained["fid"] / 3
    assert untrained["kid_floor"]["mean"] < untrained["kid"]["mean"]


def test_text_report_and_num_samples(tmp_path, untrained):
    model = kgen.build_model("dcgan", input_shape=(8, 8, 1), output_activation="tanh", **TINY_DCGAN)
    path = tmp_path / "dcgan.keras"
    model.save(path)
    result = run("evaluate", "--checkpoint", str(path), "--num-samples", "60", "--max-examples", "90")
    assert result.exit_code == 0, result.output
    assert "FID:" in result.output and "real-data floor" in result.output and "KID:" in result.output
    assert "Inception FID skipped: KGEN_INCEPTION_WEIGHTS is not set" in result.output
    assert "not comparable with Inception FID" in result.output
    report = evaluate_json("--checkpoint", str(path), "--num-samples", "60", "--max-examples", "90")
    assert report["num_samples"] == report["floor_examples"] == 60 and report["examples"] == 90
    assert report["floor_split"] == "train"
    report = evaluate_json("--checkpoint", str(path), "--split", "train", "--max-examples", "50")
    assert report["floor_split"] == "valid" and report["floor_examples"] == 50  # never the scored images
    result = run("evaluate", "--checkpoint", str(path), "--num-samples", "1")
    assert result.exit_code == 2 and "at least 2 samples" in result.output


def test_conditional_gan_samples_the_split_labels(tmp_path):
    model = kgen.build_model("cgan", input_shape=(8, 8, 1), num_classes=10, latent_dim=4,
                             generator_units=(16,), discriminator_units=(16,))
    path = tmp_path / "cgan.keras"
    model.save(path)
    report = evaluate_json("--checkpoint", str(path), "--max-examples", "60")
    check_sample_metrics(report)
    assert 0.0 <= report["label_accuracy"] <= 1.0


def test_vae_sample_metrics_beside_its_likelihood(untrained):
    from kgen.saved import pretrained_path

    report = evaluate_json("--checkpoint", str(pretrained_path("vae")), "--iw-samples", "2", "--sample-metrics")
    assert report["nll_kind"] == "bound" and np.isfinite(report["nll"]["nats"])
    check_sample_metrics(report)
    assert report["fid"] < untrained["fid"]  # a trained VAE beats an untrained GAN
    plain = evaluate_json("--checkpoint", str(pretrained_path("vae")), "--iw-samples", "2",
                          "--max-examples", "20")
    assert "fid" not in plain  # likelihood models: sample metrics only when asked


def test_points_use_the_coordinates_as_features(tmp_path):
    model = kgen.build_model("gan", input_shape=(2,), latent_dim=2, generator_units=(8,), discriminator_units=(8,))
    path = tmp_path / "gan.keras"
    model.save(path)
    report = evaluate_json("--checkpoint", str(path), "--dataset", "8gaussians", "--max-examples", "400")
    assert report["features"]["network"] == "identity"
    check_sample_metrics(report)
    assert report["fid_floor"] < 0.2 < report["fid"]


def test_evaluate_extra_hook_is_merged(tmp_path, monkeypatch):
    from kgen.models.adversarial import DCGAN

    def evaluate_extra(self, prepared, batch_size):
        return {"extra_examples": int(len(prepared.x)), "extra_batch": int(batch_size)}

    monkeypatch.setattr(DCGAN, "evaluate_extra", evaluate_extra, raising=False)
    model = kgen.build_model("dcgan", input_shape=(8, 8, 1), output_activation="tanh", **TINY_DCGAN)
    path = tmp_path / "dcgan.keras"
    model.save(path)
    report = evaluate_json("--checkpoint", str(path), "--max-examples", "40")
    assert report["extra_examples"] == 40 and report["extra_batch"] == 256 and "fid" in report


def test_models_with_their_own_metrics_say_why_fid_is_missing(tmp_path, monkeypatch):
    from kgen.errors import UsageError
    from kgen.models.adversarial import DCGAN

    def sample(self, *args, **kwargs):
        raise UsageError("this model translates images, it does not sample from noise.")

    monkeypatch.setattr(DCGAN, "evaluate_extra", lambda self, prepared, batch_size: {"l1": 0.5}, raising=False)
    monkeypatch.setattr(DCGAN, "sample", sample)
    model = kgen.build_model("dcgan", input_shape=(8, 8, 1), output_activation="tanh", **TINY_DCGAN)
    model.save(tmp_path / "dcgan.keras")
    report = evaluate_json("--checkpoint", str(tmp_path / "dcgan.keras"), "--max-examples", "20")
    assert report["l1"] == 0.5 and "fid" not in report
    assert "does not sample from noise" in report["sample_metrics_skipped"]
    result = run("evaluate", "--checkpoint", str(tmp_path / "dcgan.keras"), "--max-examples", "20")
    assert result.exit_code == 0 and "FID/KID skipped: this model translates" in result.output
    result = run("evaluate", "--checkpoint", str(tmp_path / "dcgan.keras"), "--sample-metrics")
    assert result.exit_code == 2 and "does not sample from noise" in result.output  # asked for: an error


def test_data_without_a_feature_classifier_is_one_clear_line(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (40, 12, 12)).astype("uint8")
    np.savez(tmp_path / "mine.npz", x=x)
    model = kgen.build_model("gan", input_shape=(12, 12, 1), latent_dim=2, generator_units=(8,),
                             discriminator_units=(8,))
    model.save(tmp_path / "gan.keras")
    result = run("evaluate", "--checkpoint", str(tmp_path / "gan.keras"), "--dataset", str(tmp_path / "mine.npz"),
                 env={"KGEN_CACHE_DIR": str(tmp_path / "cache")})
    assert result.exit_code == 2, result.output
    assert 'no feature classifier for' in result.output and "python -m kgen.metrics.features" in result.output
    assert "Traceback" not in result.output
