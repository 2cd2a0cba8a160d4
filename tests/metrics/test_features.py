"""The shipped feature classifier, its training script, the Inception path and the evaluation helpers."""

import tomllib

import numpy as np
import pytest

import kgen
from kgen.errors import DataError, UsageError
from kgen.metrics import features, inception


@pytest.fixture(scope="module")
def digits_test():
    return kgen.load_dataset("digits", split="test")


@pytest.fixture(scope="module")
def extractor():
    return features.FeatureExtractor("digits")


def test_shipped_digits_classifier_matches_its_card(extractor, digits_test):
    card = tomllib.loads(extractor.path.with_suffix(".toml").read_text())
    assert extractor.path.name == "features-digits.keras" and extractor.path.stat().st_size < 1_000_000
    assert card["test_examples"] == len(digits_test) and card["features_dim"] == extractor.dim == 64
    accuracy = float(np.mean(extractor.predict_labels(digits_test.x) == digits_test.y))
    # The card's accuracy, on this backend too (one image of 180 may round differently).
    assert abs(accuracy - card["test_accuracy"]) <= 1.5 / len(digits_test)
    assert accuracy > 0.95


def test_features_are_the_penultimate_layer(extractor, digits_test):
    f = extractor(digits_test.x[:20])
    assert f.shape == (20, 64) and f.dtype == np.float64
    assert f.min() >= 0.0 and np.std(f) > 0  # ReLU outputs, not constant
    # Same class -> closer features than different class, on average.
    f = extractor(digits_test.x)
    y = digits_test.y
    centroids = np.stack([f[y == k].mean(0) for k in range(10)])
    nearest = np.argmin(((f[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest == y) > 0.9
    with pytest.raises(DataError, match="shape"):
        extractor(np.zeros((2, 28, 28, 1), "float32"))


def test_feature_classifiers_are_not_listed_as_pretrained_models():
    from kgen.saved import list_pretrained

    assert not [p for p in list_pretrained() if p["model"] == "features"]
    assert any(p["model"] == "vae" for p in list_pretrained())
    assert [c["dataset"] for c in features.list_feature_classifiers()] == ["binarized_mnist", "digits", "fashion_mnist"]


def test_missing_classifier_says_how_to_train_one(tmp_path, monkeypatch):
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(UsageError, match=r"python -m kgen\.metrics\.features mnist") as info:
        features.classifier_path("mnist")
    assert "binarized_mnist, digits, fashion_mnist" in str(info.value)
    with pytest.raises(UsageError, match="does not exist"):
        features.classifier_path("digits", tmp_path / "nope.keras")


def test_test_labelled_data_sets_split_their_test_split_into_disjoint_halves():
    fit, stop, held = features.test_halves(10000, seed=0)
    assert (len(fit), len(stop), len(held)) == (4500, 500, 5000)
    together = np.concatenate([fit, stop, held])
    assert len(np.unique(together)) == 10000  # disjoint and covering
    assert np.array_equal(fit, np.sort(fit)) and not np.array_equal(held, np.arange(5000, 10000))  # shuffled
    again = features.test_halves(10000, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (fit, stop, held)))
    other = features.test_halves(10000, seed=1)
    assert not np.array_equal(other[2], held)


def test_unlabelled_source_is_a_one_line_error_naming_the_labelled_split(tmp_path):
    np.savez(tmp_path / "unlabelled.npz", x=np.zeros((30, 8, 8), "float32"))
    with pytest.raises(DataError, match="needs labels"):
        features.train_classifier(str(tmp_path / "unlabelled.npz"), dest=tmp_path, epochs=1)


def test_training_script_writes_a_usable_classifier(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = np.zeros((90, 8, 8), "float32")
    for k in range(3):  # class k: a bright row band at 2k + noise
        x[y == k, 2 * k : 2 * k + 2, :] = 1.0
    x = np.clip(x + 0.1 * rng.uniform(size=x.shape), 0, 1).astype("float32")
    path = tmp_path / "bands.npz"
    np.savez(path, x=x, y=y)
    card = features.train_classifier(str(path), dest=tmp_path / "out", epochs=8, batch_size=16)
    written = tmp_path / "out" / "features-bands.keras"
    assert card["file"] == str(written) and written.is_file()
    assert tomllib.loads(written.with_suffix(".toml").read_text())["test_accuracy"] == card["test_accuracy"]
    assert card["num_classes"] == 3 and card["test_accuracy"] > 0.6
    # Found in the cache by data set name; explicit paths work too.
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path / "out"))
    assert features.classifier_path(str(path)) == written
    fx = features.FeatureExtractor(str(path))
    assert fx(x[:4, :, :, None]).shape == (4, 64)


# === Inception (no weights on this machine: only the skip path and the resizing) ===


def test_inception_is_skipped_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.delenv(inception.ENV, raising=False)
    path, reason = inception.inception_status()
    assert path is None and "KGEN_INCEPTION_WEIGHTS is not set" in reason
    monkeypatch.setenv(inception.ENV, str(tmp_path / "missing.h5"))
    path, reason = inception.inception_status()
    assert path is None and "does not exist" in reason


def test_inception_inputs_resize_to_three_channels_in_minus_one_one():
    x = np.full((2, 8, 8, 1), 0.5, "float32")
    x[1] = 0.0
    x[1, :4] = 1.0  # top half white
    out = inception.inception_inputs(x, size=32)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], 0.0, atol=1e-6)  # 0.5 -> 0 in [-1, 1]
    np.testing.assert_array_equal(out[..., 0], out[..., 2])  # grey repeated
    assert out[1, 2, 5, 0] == pytest.approx(1.0, abs=1e-5) and out[1, 29, 5, 0] == pytest.approx(-1.0, abs=1e-5)
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert inception.inception_inputs(np.zeros((1, 4, 4, 4), "float32"), size=8).shape == (1, 8, 8, 3)


# === Evaluation helpers ===


def test_to_unit_undoes_the_pipeline_transforms():
    from kgen.data import preprocess
    from kgen.evaluation import to_unit

    x = np.random.default_rng(0).uniform(0.01, 0.99, (3, 4, 4, 1)).astype("float32")
    np.testing.assert_allclose(to_unit(preprocess.scale(x, "symmetric"), {"scale": "symmetric"}), x, atol=1e-6)
    y, _ = preprocess.logit_transform(x, 0.05)
    np.testing.assert_allclose(to_unit(y, {"scale": "unit", "logit_alpha": 0.05}), x, atol=1e-5)
    assert to_unit(np.full((1, 2, 2, 1), 3.0), {"scale": "unit"}).max() == 1.0  # images clipped
    assert to_unit(np.full((1, 2), 3.0), {"scale": "unit"}).max() == 3.0  # points are not


def test_matching_labels_follow_the_split():
    from kgen.evaluation import _matching_labels

    y = np.array([0, 0, 0, 1, 2, 2])
    same = _matching_labels(y, 6, seed=0)
    assert sorted(same) == sorted(y)
    many = _matching_labels(y, 6000, seed=0)
    np.testing.assert_allclose(np.bincount(many) / 6000, [0.5, 1 / 6, 1 / 3], atol=0.03)


def test_has_likelihood():
    from kgen.evaluation import has_likelihood

    assert has_likelihood(kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17, hidden_units=(8,)))
    assert not has_likelihood(kgen.build_model("gan", input_shape=(8, 8, 1), generator_units=(8,),
                                               discriminator_units=(8,)))
