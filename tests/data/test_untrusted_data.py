"""Untrusted images and labels are refused before they cost anything (issue 26, items 8 and 11)."""

import struct
import zlib

import numpy as np
import pytest

import kgen
from kgen.data.pipeline import Pipeline
from kgen.errors import DataError
from kgen.figures import encode_png


def _png_header_only(width, height):
    """A PNG whose header claims width x height (8-bit grey) over a tiny, truncated body."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def _folder(tmp_path, pngs):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, raw in enumerate(pngs):
        (folder / f"{i}.png").write_bytes(raw)
    return folder


def test_a_huge_png_is_refused_from_its_header(tmp_path):
    folder = _folder(tmp_path, [_png_header_only(20000, 20000)] * 3)
    with pytest.raises(DataError, match=r"20000 x 20000 pixels, more than data.max_pixels = 16777216.*--set "
                                        r"data.max_pixels"):
        kgen.load_dataset(str(folder))


def test_the_limit_is_the_users_to_raise(tmp_path):
    folder = _folder(tmp_path, [encode_png(np.zeros((8, 8), "uint8"))] * 4)
    with pytest.raises(DataError, match="8 x 8 pixels, more than data.max_pixels = 10"):
        Pipeline({"name": str(folder), "max_pixels": 10}).load("train")
    assert Pipeline({"name": str(folder), "max_pixels": 64, "valid_fraction": 0.0,
                     "test_fraction": 0.0}).load("train").shape == (8, 8, 1)


def test_translation_folders_are_checked_too(tmp_path):
    for side in "AB":
        (tmp_path / "t" / side).mkdir(parents=True)
        (tmp_path / "t" / side / "0.png").write_bytes(_png_header_only(30000, 30000))
    with pytest.raises(DataError, match="30000 x 30000 pixels"):
        kgen.load_dataset(str(tmp_path / "t"))


def test_negative_labels_are_refused(digits):
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, num_classes=10, hidden_units=(8,))
    bad = digits.subset(16)
    bad.y = bad.y.copy()
    bad.y[3] = -1
    with pytest.raises(DataError, match=r"label -1 is out of range for a model with 10 classes \(labels must lie "
                                        r"in 0..9\)"):
        model.check_data(bad)
    with pytest.raises(DataError, match="labels must lie in 0..9, got -1"):
        model.model_inputs(bad.x, bad.y)
