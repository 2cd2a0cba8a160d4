"""Outputs are written whole, and an export never mixes with or destroys what is at its target (issue 26, items 5-6).

`kgen sample --out` and every export write a temporary beside the target and
rename it into place: a failure (a full disk, an endpoint that does not
convert) leaves the previous output as it was and nothing half-written. A
non-empty export folder is refused unless `--overwrite`, which replaces a
previous export whole; a run folder is always refused.
"""

import errno

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen import checkpoint
from kgen.cli.main import main
from kgen.errors import UsageError
from kgen.export import ExportError, OutputError, export
from kgen.sampling import sample_to_file

only_tensorflow = pytest.mark.skipif(keras.config.backend() != "tensorflow",
                                     reason="export runs in a TensorFlow process")


def run(*args):
    return CliRunner().invoke(main, ["--backend", keras.config.backend(), *args], catch_exceptions=False)


def _vae():
    return kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17, latent_dim=4, hidden_units=(16,))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("outputs") / "vae.keras"
    checkpoint.save_checkpoint(_vae(), path)
    return path


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def _disk_full(path, *args, **kwargs):
    """`np.savez(path, ...)` that gets half its bytes out before the disk fills."""
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04half")
    raise OSError(errno.ENOSPC, "No space left on device")


def _litert_disk_full(model, endpoints, path):
    """`write_litert` that gets half its bytes out before the disk fills."""
    _disk_full(path)


# === kgen sample --out ===


def test_failed_sample_leaves_the_previous_file_whole(ckpt, tmp_path, monkeypatch):
    out = tmp_path / "s.npz"
    sample_to_file(checkpoint=str(ckpt), n=4, seed=0, out=str(out))
    good = out.read_bytes()
    monkeypatch.setattr(np, "savez", _disk_full)
    result = run("sample", "--checkpoint", str(ckpt), "-n", "4", "--seed", "1", "--out", str(out))
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        f"Error: could not write {out} (No space left on device); nothing was written there and any previous "
        "s.npz is unchanged. Free space or fix the permissions, or write elsewhere.")
    assert out.read_bytes() == good
    assert _leftovers(tmp_path) == []


def test_sample_png_is_renamed_into_place(ckpt, tmp_path):
    out = tmp_path / "grid" / "s.png"
    assert sample_to_file(checkpoint=str(ckpt), n=4, seed=0, out=str(out)) == out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _leftovers(out.parent) == []


# === exports ===


@only_tensorflow
def test_failed_export_leaves_nothing_half_written(tmp_path, monkeypatch):
    from kgen.export import saved_model

    def half_then_fail(model, endpoints, path):
        (tmp_path / "seen").write_text(str(path))
        (path / "saved_model.pb").write_bytes(b"half")
        raise ExportError("endpoint does not convert")

    monkeypatch.setattr(saved_model, "write_saved_model", half_then_fail)
    with pytest.raises(ExportError):
        export(_vae(), "saved_model", tmp_path / "sm")
    assert not (tmp_path / "sm").exists()
    assert (tmp_path / "seen").read_text() != str(tmp_path / "sm")  # it wrote beside the target
    assert _leftovers(tmp_path) == []


@only_tensorflow
def test_failed_litert_export_keeps_the_previous_file(tmp_path, monkeypatch):
    from kgen.export import litert

    out = tmp_path / "m.tflite"
    out.write_bytes(b"good tflite")
    monkeypatch.setattr(litert, "write_litert", _litert_disk_full)
    with pytest.raises(OutputError, match=f"could not write {out} \\(No space left on device\\)"):
        export(_vae(), "litert", out)
    assert out.read_bytes() == b"good tflite"
    assert _leftovers(tmp_path) == []


@only_tensorflow
def test_export_into_a_non_empty_folder_needs_overwrite_and_then_replaces_it_whole(ckpt, tmp_path):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "encode.onnx").write_bytes(b"a VAE's onnx")
    (out / "decode.onnx").write_bytes(b"a VAE's onnx")
    result = run("export", "--checkpoint", str(ckpt), "--format", "saved_model", "--out", str(out))
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"Error: {out} is not empty (it holds decode.onnx, encode.onnx); writing the saved_model export there would "
        "mix with those files. Pass --overwrite to replace the folder whole, or choose a new or empty folder.")
    assert sorted(p.name for p in out.iterdir()) == ["decode.onnx", "encode.onnx"]
    result = run("export", "--checkpoint", str(ckpt), "--format", "saved_model", "--out", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "saved_model.pb").is_file()
    assert not list(out.glob("*.onnx"))  # replaced whole, not merged
    assert _leftovers(tmp_path) == []
    # an empty folder is fine without --overwrite
    (tmp_path / "empty").mkdir()
    assert export(_vae(), "saved_model", tmp_path / "empty")["path"] == str(tmp_path / "empty")


@only_tensorflow
def test_overwrite_deletes_only_a_previous_export(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError) as e:
        export(_vae(), "saved_model", out, overwrite=True)
    assert str(e.value) == (f"--overwrite replaces only a previous export, and {out} also holds notes.txt; "
                            "kgen deletes no other files. Choose a new or empty folder.")
    assert (out / "notes.txt").read_text() == "keep me"


@only_tensorflow
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_export_into_a_run_folder_is_refused(tmp_path, overwrite):
    run_dir = tmp_path / "run"
    checkpoint.save_checkpoint(_vae(), run_dir / "last.keras")
    before = sorted(p.name for p in run_dir.iterdir())
    result = run("export", "--checkpoint", str(run_dir), "--format", "saved_model", "--out", str(run_dir),
                 *overwrite)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"Error: {run_dir} is a kgen run folder (it holds last.keras); writing the saved_model export there would "
        f"make the run unusable. Pass another --out, e.g. {run_dir / 'export'}.")
    assert sorted(p.name for p in run_dir.iterdir()) == before
    kgen.load_model(run_dir)  # still a run folder
