"""multi_digits / multi_mnist: each canvas holds exactly its stated digits at their stated boxes, apart, by seed."""

import doctest

import numpy as np
import pytest

import kgen
from kgen.data import loaders, multi_digits
from kgen.data.pipeline import Pipeline


def _check_layout(lay, digits, gap=multi_digits.GAP):
    """Rebuilds every canvas from its boxes and sources: equal canvases, counts and apart boxes."""
    n, h, w, _ = lay.x.shape
    for i in range(n):
        c = int(lay.count[i])
        assert np.all(lay.boxes[i, c:] == -1) and np.all(lay.sources[i, c:] == -1)
        rebuilt = np.zeros((h, w), "float32")
        for k in range(c):
            top, left, bh, bw = lay.boxes[i, k]
            assert 0 <= top and top + bh <= h and 0 <= left and left + bw <= w
            t, l, sh, sw = multi_digits.ink_box(digits[lay.sources[i, k], ..., 0])
            assert (sh, sw) == (bh, bw)
            patch = digits[lay.sources[i, k], t:t + sh, l:l + sw, 0]
            # the digit's ink touches all four sides of its box: the box is the digit's, not a guess
            assert patch[0].any() and patch[-1].any() and patch[:, 0].any() and patch[:, -1].any()
            rebuilt[top:top + bh, left:left + bw] += patch
            for m in range(k):
                assert multi_digits.boxes_apart(lay.boxes[i, k], lay.boxes[i, m], gap)
        np.testing.assert_array_equal(lay.x[i, ..., 0], rebuilt)  # nothing but the stated digits


def test_canvases_hold_exactly_the_stated_digits_apart():
    lay = multi_digits.layout("multi_digits", "valid")
    digits = loaders.load_digits("valid").x
    assert lay.x.shape == (500, 24, 24, 1)
    _check_layout(lay, digits)
    # counts 0, 1, 2 in about equal shares; empty canvases are empty
    shares = np.bincount(lay.count, minlength=3) / len(lay.count)
    assert np.all(np.abs(shares - 1 / 3) < 0.06), shares
    assert np.all(lay.x[lay.count == 0] == 0) and np.all(lay.x[lay.count > 0].reshape(-1, 576).max(1) > 0)
    # positions vary over the canvas (not one corner)
    tops = lay.boxes[lay.count > 0, 0, 0]
    assert tops.min() == 0 and tops.max() == 24 - 8


def test_make_canvases_with_large_digits_and_a_known_tiny_case():
    rng = np.random.default_rng(3)
    digits = (rng.uniform(size=(20, 6, 6, 1)) > 0.3).astype("float32")
    digits[:, 0, :] = digits[:, -1, :] = digits[:, :, 0] = digits[:, :, -1] = 1  # full 6x6 ink boxes
    lay = multi_digits.make_canvases(digits, 200, 13, seed=5)
    _check_layout(lay, digits)
    # 13 = 6 + 1 + 6: two digits lie in opposite halves, on one axis at least
    two = lay.boxes[lay.count == 2]
    assert len(two) and np.all(np.maximum(np.abs(two[:, 0, 0] - two[:, 1, 0]),
                                          np.abs(two[:, 0, 1] - two[:, 1, 1])) == 7)


def test_reproducible_from_the_seed_and_splits_differ():
    a = kgen.load_dataset("multi_digits", "test")
    b = kgen.load_dataset("multi_digits", "test")
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    c = kgen.load_dataset("multi_digits", "test", split_seed=1)
    assert not np.array_equal(a.x, c.x)
    t = kgen.load_dataset("multi_digits", "train")
    assert len(t) == 3000 and not np.array_equal(t.x[:500], a.x)
    np.testing.assert_array_equal(a.y, multi_digits.layout("multi_digits", "test").count)
    assert a.num_classes == 3 and a.num_levels == 17 and set(np.unique(a.y)) == {0, 1, 2}
    levels = np.unique(a.x * 16)
    np.testing.assert_allclose(levels, np.round(levels))  # the digits' 17 grey levels, unchanged


def test_pipeline_binarizes_and_keeps_count_labels():
    pipeline = Pipeline({"name": "multi_digits", "binarize": "dynamic"})
    ds = pipeline.load("valid")
    prepared = pipeline.prepare(ds, seed=0)
    assert ds.num_levels == 2 and set(np.unique(prepared.x)) <= {0.0, 1.0}
    assert np.all(prepared.x[prepared.y == 0] == 0)  # background stays background
    np.testing.assert_array_equal(prepared.y, multi_digits.layout("multi_digits", "valid").count)


def test_multi_mnist_from_shared_binarized_mnist(shared_data):
    lay = multi_digits.layout("multi_mnist", "valid", data_dir=str(shared_data))
    digits = loaders.load_binarized_mnist("valid", data_dir=str(shared_data)).x
    assert lay.x.shape == (1000, 50, 50, 1)
    _check_layout(lay, digits)
    assert set(np.unique(lay.x)) == {0.0, 1.0}


def test_docstring_example():
    assert doctest.testmod(multi_digits).failed == 0


def test_registered_and_described():
    names = kgen.list_datasets()
    assert "multi_digits" in names and "multi_mnist" in names
    with pytest.raises(Exception, match="split"):
        kgen.load_dataset("multi_digits", "training")
