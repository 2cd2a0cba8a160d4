"""The shipped binarized-MNIST and Fashion-MNIST feature classifiers against their cards, on the real data
(skipped where the data is absent), and FID's reference split for a classifier fitted on test images."""

import pathlib
import tomllib

import numpy as np
import pytest

import kgen
from kgen import evaluation
from kgen.data.pipeline import Pipeline
from kgen.metrics import features

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"
FASHION_DEBIAN = pathlib.Path("/usr/share/datasets/fashion-mnist")


def card(dataset):
    return tomllib.loads(features.classifier_path(dataset).with_suffix(".toml").read_text())


def test_cards_state_how_each_classifier_was_fitted_and_scored():
    binarized = card("binarized_mnist")
    assert binarized["reference_split"] == "valid" and "test split only" in binarized["splits"]
    assert binarized["train_examples"] == 4500 and binarized["test_examples"] == 5000
    fashion = card("fashion_mnist")
    assert "reference_split" not in fashion and fashion["test_accuracy"] >= 0.90
    assert fashion["train_examples"] == 54000 and fashion["test_examples"] == 10000
    for c in (binarized, fashion):
        assert c["command"].startswith(f"python -m kgen.metrics.features {c['dataset']} ")
        assert features.classifier_path(c["dataset"]).stat().st_size < 2_000_000


@pytest.mark.skipif(not (SHARED_DATA / "binarized_mnist.npz").is_file(), reason="binarized MNIST not present")
def test_binarized_mnist_classifier_scores_its_card_on_the_held_out_half():
    test = kgen.load_dataset("binarized_mnist", split="test", data_dir=str(SHARED_DATA))
    _, _, held = features.test_halves(len(test), card("binarized_mnist")["seed"])
    fx = features.FeatureExtractor("binarized_mnist")
    accuracy = float(np.mean(fx.predict_labels(test.x[held]) == test.y[held]))
    assert abs(accuracy - card("binarized_mnist")["test_accuracy"]) <= 1.5 / len(held)


@pytest.mark.skipif(not FASHION_DEBIAN.is_dir(), reason=f"{FASHION_DEBIAN} absent (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_classifier_scores_its_card_on_the_test_split():
    test = kgen.load_dataset("fashion_mnist", split="test")
    fx = features.FeatureExtractor("fashion_mnist")
    accuracy = float(np.mean(fx.predict_labels(test.x) == test.y))
    assert abs(accuracy - card("fashion_mnist")["test_accuracy"]) <= 1.5 / len(test)
    assert accuracy >= 0.90


class NoiseModel:
    """Samples uniform noise: FID only needs `sample` and `conditional`."""

    conditional = False

    def sample(self, n, seed=0, labels=None, batch_size=256):
        return np.random.default_rng(seed).uniform(size=(n, 8, 8, 1)).astype("float32")


def test_fid_reads_the_cards_reference_split(tmp_path, monkeypatch):
    """A classifier whose card names reference_split = "valid" makes FID compare with the valid split."""
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    x = np.zeros((300, 8, 8), "float32")
    for k in range(3):
        x[y == k, 2 * k : 2 * k + 2, :] = 1.0
    x = np.clip(x + 0.1 * rng.uniform(size=x.shape), 0, 1).astype("float32")
    path = tmp_path / "bands.npz"
    np.savez(path, x=x, y=y)
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path / "cache"))
    features.train_classifier(str(path), dest=tmp_path / "cache", epochs=1, batch_size=32)
    pipeline = Pipeline({"name": str(path)})
    test = pipeline.load("test")
    eval_config = {"batch_size": 64, "num_samples": 30, "kid_subsets": 5, "kid_subset_size": 10}

    plain = evaluation.sample_metrics(NoiseModel(), pipeline, test, eval_config)
    assert plain["reference_split"] == "test" and "reference_note" not in plain

    toml = tmp_path / "cache" / "features-bands.toml"
    toml.write_text(toml.read_text() + 'reference_split = "valid"\n')
    moved = evaluation.sample_metrics(NoiseModel(), pipeline, test, eval_config)
    assert moved["reference_split"] == "valid" and moved["floor_split"] == "train"
    assert moved["reference_note"].endswith("bands.npz's test split, so the real data is its valid split")
    assert moved["fid"] != plain["fid"]  # another real set: the valid split's 30 images, not the test split's
    assert any("real data:" in line for line in evaluation.sample_metrics_lines(moved))
