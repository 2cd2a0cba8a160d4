"""Translation data: digits_inpaint (paired), digits_bold (unpaired), folders A/ B/, and the pipeline."""

import numpy as np
import pytest

import kgen
from kgen.data import translation
from kgen.data.pipeline import Pipeline
from kgen.errors import DataError
from kgen.figures import encode_png


def _rows(x):
    return {row.tobytes() for row in np.asarray(x, "float32").reshape(len(x), -1)}


def _data_config(name, **kw):
    from kgen import config as config_lib

    config = config_lib.resolve(model="gan", dataset=name)["data"]
    config.update(kw)
    return config


def test_builtin_translation_sets_are_listed():
    names = kgen.list_datasets()
    assert "digits_inpaint" in names and "paired" in names["digits_inpaint"]
    assert "digits_bold" in names and "unpaired" in names["digits_bold"]


@pytest.mark.parametrize("split", ["train", "test"])
def test_digits_inpaint_pairs_each_digit_with_its_upper_half(split):
    digits = kgen.load_dataset("digits", split=split)
    data = kgen.load_dataset("digits_inpaint", split=split)
    assert data.paired is True and data.x_source.shape == data.x.shape == digits.x.shape
    np.testing.assert_array_equal(data.x, digits.x)
    np.testing.assert_array_equal(data.x_source[:, :4], digits.x[:, :4])  # upper half kept
    assert np.all(data.x_source[:, 4:] == 0) and data.x[:, 4:].sum() > 0  # lower half erased
    np.testing.assert_array_equal(data.y, digits.y)


def test_digits_bold_is_unpaired_no_source_partner_appears():
    for split in ("train", "valid", "test"):
        digits = kgen.load_dataset("digits", split=split)
        data = kgen.load_dataset("digits_bold", split=split)
        assert data.paired is False
        assert abs(len(data.x) - len(data.x_source)) <= 1 and len(data.x) + len(data.x_source) == len(digits)
        # Every source is a digit of this split as drawn, every target a bold digit of it ...
        originals = {row.tobytes(): i for i, row in enumerate(digits.x.reshape(len(digits), -1))}
        source_idx = [originals[row.tobytes()] for row in data.x_source.reshape(len(data.x_source), -1)]
        bold = translation.dilate(digits.x)
        bold_rows = {row.tobytes(): i for i, row in enumerate(bold.reshape(len(bold), -1))}
        target_idx = [bold_rows[row.tobytes()] for row in data.x.reshape(len(data.x), -1)]
        # ... and no source's own bold partner is among the targets.
        assert not set(source_idx) & set(target_idx)
        assert not _rows(bold[source_idx]) & _rows(data.x)


def test_bold_digits_hold_more_ink_on_the_same_grey_levels():
    data = kgen.load_dataset("digits_bold")
    assert data.x.mean() > 1.5 * data.x_source.mean()
    np.testing.assert_array_equal(np.unique(np.round(data.x * 16) / 16), np.unique(data.x))
    x = np.zeros((1, 5, 5, 1), "float32")
    x[0, 2, 2] = 1.0
    plus = translation.dilate(x)[0, :, :, 0]
    assert plus.sum() == 5 and plus[1, 2] == plus[2, 1] == plus[2, 2] == 1 and plus[1, 1] == 0


def _write_folder(root, names_a, names_b, shape=(6, 6), rng=None):
    rng = rng or np.random.default_rng(0)
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir(parents=True)
    pairs = {}
    for name in names_a:
        img = rng.integers(0, 128, shape).astype("uint8")
        (root / "A" / name).write_bytes(encode_png(img))
        pairs[name] = img
    for name in names_b:
        img = 255 - pairs[name] if name in pairs else rng.integers(128, 256, shape).astype("uint8")
        (root / "B" / name).write_bytes(encode_png(img))
    return pairs


def test_folder_with_matching_names_is_paired(tmp_path):
    names = [f"img_{i:02d}.png" for i in range(20)]
    _write_folder(tmp_path / "pairs", names, names)
    seen = 0
    for split in ("train", "valid", "test"):
        data = kgen.load_dataset(str(tmp_path / "pairs"), split=split)
        assert data.paired is True and data.num_levels == 256 and data.x.shape[1:] == (6, 6, 1)
        np.testing.assert_allclose(data.x, 1.0 - data.x_source, atol=1e-6)  # B = 255 - A, pair by pair
        seen += len(data)
    assert seen == 20


def test_folder_with_other_names_is_unpaired(tmp_path):
    _write_folder(tmp_path / "horses2zebras", [f"h{i}.png" for i in range(12)], [f"z{i}.png" for i in range(20)])
    data = kgen.load_dataset(str(tmp_path / "horses2zebras"), split="train")
    assert data.paired is False
    assert len(data.x_source) == 10 and len(data.x) == 16  # each domain split 80/10/10 on its own
    assert data.x_source.max() < 0.5 <= data.x.min()


def test_folder_errors(tmp_path):
    _write_folder(tmp_path / "sizes", ["a.png"], [])
    (tmp_path / "sizes" / "B" / "a.png").write_bytes(encode_png(np.zeros((7, 6), "uint8")))
    with pytest.raises(DataError, match="shape"):
        kgen.load_dataset(str(tmp_path / "sizes"))
    _write_folder(tmp_path / "empty", ["a.png"], [])
    with pytest.raises(DataError, match="no .png"):
        kgen.load_dataset(str(tmp_path / "empty"))
    _write_folder(tmp_path / "broken", ["a.png"], ["a.png"])
    (tmp_path / "broken" / "B" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="corrupted"):
        kgen.load_dataset(str(tmp_path / "broken"))


def test_subset_keeps_pairs_aligned():
    data = kgen.load_dataset("digits_inpaint").subset(10)
    assert len(data.x_source) == len(data.x) == 10
    np.testing.assert_array_equal(data.x_source[:, :4], data.x[:, :4])


def test_pipeline_aligns_unpaired_sources_per_epoch():
    pipeline = Pipeline(_data_config("digits_bold", scale="symmetric"))
    ds = pipeline.load("train")
    sources = _rows(ds.x_source * 2.0 - 1.0)
    epochs = [pipeline.prepare(ds, epoch=e, seed=0) for e in (0, 0, 1)]
    for p in epochs:
        assert p.x_source.shape == p.x.shape and p.x.min() == -1.0
        assert _rows(p.x_source) <= sources  # every aligned source is a source of the split
    np.testing.assert_array_equal(epochs[0].x_source, epochs[1].x_source)  # deterministic per epoch
    assert not np.array_equal(epochs[0].x_source, epochs[2].x_source)  # fresh alignment each epoch


def test_pipeline_keeps_pairs_and_refuses_binarize():
    pipeline = Pipeline(_data_config("digits_inpaint"))
    ds = pipeline.load("valid")
    prepared = pipeline.prepare(ds, seed=0)
    np.testing.assert_array_equal(prepared.x_source, ds.x_source)
    with pytest.raises(DataError, match="translation data"):
        Pipeline(_data_config("digits_inpaint", binarize="static")).load("train")
