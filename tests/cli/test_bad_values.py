"""Values kgen must refuse, each with its one line and exit code (issue 26, items 9, 12 and 13).

2 for usage errors (a value, a file the user named), 1 for runtime failures
(a corrupted checkpoint). Every refusal comes before any work: no model is
trained, no data set is read.
"""

import json
import zipfile

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen import checkpoint
from kgen import config as config_lib
from kgen.cli.main import main
from kgen.data import from_array, loaders
from kgen.errors import CheckpointError, ConfigError, DataError

BACKEND = keras.config.backend()


def run(*args):
    return CliRunner().invoke(main, ["--backend", BACKEND, *args], catch_exceptions=False)


def error_line(result):
    """The one line kgen printed (no traceback)."""
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert "Traceback" not in result.output, result.output
    return lines[-1]


def _vae():
    return kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17, latent_dim=4, hidden_units=(16,))


def _save(path, data_name="digits"):
    config = config_lib.resolve(model="vae", dataset="digits",
                                overrides=["model.latent_dim=4", "model.hidden_units=[16]"])
    config["data"]["name"] = data_name
    checkpoint.save_checkpoint(_vae(), path, state={"config": config, "epoch": 1})
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("bad") / "vae.keras")


# === kgen sample ===


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1"])
def test_sample_refuses_temperature_that_is_not_a_positive_number(ckpt, tmp_path, value):
    result = run("sample", "--checkpoint", str(ckpt), "-n", "4", "--temperature", value,
                 "--out", str(tmp_path / "s.npz"))
    assert result.exit_code == 2, result.output
    assert "--temperature must be a finite number above 0" in error_line(result)
    assert "lower values are sharper" in error_line(result)
    assert not (tmp_path / "s.npz").exists()


def test_sample_refuses_negative_seed_with_kgens_line(ckpt, tmp_path):
    result = run("sample", "--checkpoint", str(ckpt), "-n", "4", "--seed", "-1", "--out", str(tmp_path / "s.npz"))
    assert result.exit_code == 2, result.output
    assert error_line(result) == ("Error: --seed must be an integer from 0 to 4294967295, got -1; "
                                  "omit it for fresh randomness.")


# === kgen train: config values refused when the config is resolved, before anything runs ===


@pytest.mark.parametrize("args, expected", [
    (["--batch-size", "0"], "config key train.batch_size (--batch-size): expected an integer >= 1, got 0"),
    (["--seed", "-1"], "config key train.seed (--seed): expected an integer in [0, 4294967295], got -1"),
    (["--set", "train.steps_per_execution=0"], "config key train.steps_per_execution: expected an integer >= 1"),
    (["--set", "train.grid_size=0"], "config key train.grid_size: expected an integer >= 1, got 0"),
    (["--set", "data.valid_fraction=1.5"], "config key data.valid_fraction: expected a number in [0, 1), got 1.5"),
    (["--set", "data.test_fraction=-0.1"], "config key data.test_fraction: expected a number in [0, 1), got -0.1"),
    (["--set", "data.valid_fraction=nan"], "config key data.valid_fraction: expected a finite number, got nan"),
    (["--set", "data.valid_fraction=0.6", "--set", "data.test_fraction=0.5"],
     "data.valid_fraction (0.6) + data.test_fraction (0.5) = 1.1 leave no training examples; expected a sum below 1"),
    (["--set", "evaluate.iw_samples=-5"], "config key evaluate.iw_samples: expected an integer >= 0, got -5"),
])
def test_train_refuses_bad_values_before_training(tmp_path, args, expected):
    run_dir = tmp_path / "run"
    result = run("train", "--epochs", "1", "--run-dir", str(run_dir), "--quiet", *args)
    assert result.exit_code == 2, result.output
    assert expected in error_line(result)
    assert "--set" in error_line(result)  # what to do
    assert not run_dir.exists()  # refused before a run folder, let alone an epoch


def test_library_resolve_and_overrides_check_ranges():
    with pytest.raises(ConfigError, match=r"train.batch_size \(--batch-size\): expected an integer >= 1"):
        config_lib.resolve(model="vae", overrides=["train.batch_size=0"])
    config = config_lib.resolve(model="vae")
    with pytest.raises(ConfigError, match="leave no training examples"):
        config_lib.apply_overrides(config, ["data.valid_fraction=0.5", "data.test_fraction=0.5"])


def test_binary_toml_is_one_line(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_bytes(bytes(range(256)) * 4)
    result = run("train", "--config", str(path), "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.exit_code == 2, result.output
    assert error_line(result) == (f"Error: config file {path} is not a TOML text file (its bytes are not UTF-8 "
                                  "text: a binary file?); pass a .toml recipe.")


# === kgen evaluate ===


def test_evaluate_refuses_negative_max_examples_and_iw_samples(ckpt):
    result = run("evaluate", "--checkpoint", str(ckpt), "--max-examples", "-170")
    assert result.exit_code == 2, result.output
    assert error_line(result) == "Error: --max-examples must be 0 (every example) or a positive count, got -170."
    result = run("evaluate", "--checkpoint", str(ckpt), "--iw-samples", "-5")
    assert result.exit_code == 2, result.output
    assert "--iw-samples must be 0 (no importance-weighted bound) or a positive k, got -5" in error_line(result)


def test_data_set_named_in_a_checkpoint_is_not_read_unless_the_user_names_it(tmp_path, monkeypatch):
    """Item 9: `data.name = "/"` stored in a checkpoint made `kgen evaluate` walk the filesystem."""
    path = _save(tmp_path / "hostile.keras", data_name="/")
    read = []
    monkeypatch.setattr(loaders, "load_png_folder", lambda p, **_: read.append(p) or pytest.fail(f"read {p}"))
    result = run("evaluate", "--checkpoint", str(path), "--iw-samples", "0")
    assert result.exit_code == 2, result.output
    assert error_line(result) == (
        f"Error: {path} records the data set '/', which is not a built-in data set; kgen reads a file or folder "
        "only when you name it: pass --dataset with that path (or a built-in name) to score it.")
    assert read == []
    # a user's own .npz recorded in a checkpoint is read once the user names it again
    npz = tmp_path / "mine.npz"
    levels = np.round(kgen.load_dataset("digits", "test").x[:40] * 16).astype("int64")
    levels[0, 0, 0, 0] = 16  # 17 levels, as the model was built for
    np.savez(npz, x=levels)
    path = _save(tmp_path / "mine.keras", data_name=str(npz))
    assert run("evaluate", "--checkpoint", str(path), "--iw-samples", "0").exit_code == 2
    result = run("evaluate", "--checkpoint", str(path), "--dataset", str(npz), "--iw-samples", "0", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["dataset"] == str(npz)


# === a user's .npz ===


def _npz_cases(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("x,y\n1,2\n")
    npy = tmp_path / "one.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros((4, 8, 8)))
    scalar = tmp_path / "scalar.npz"
    np.savez(scalar, x=np.float32(3.0))
    complex_ = tmp_path / "complex.npz"
    np.savez(complex_, x=np.full((20, 8, 8), 0.5 + 0.5j))
    return {
        text: f"{text} is not a .npz file (not a zip archive: a text or other file named .npz); "
              "save images with np.savez(path, x=images, y=labels).",
        npy: f"{npy} is a .npy file (one array), not a .npz archive; save images with np.savez(path, x=images, "
             "y=labels).",
        scalar: f"{scalar}: expected an array of examples, (N, D) points or (N, H, W[, C]) images, got a single "
                "float32 value; store the examples themselves under 'x'.",
        complex_: f"{complex_}: expected real numbers, got complex values (dtype complex128); store real images "
                  "or points (np.abs(x) or x.real, if that is what you mean).",
    }


def test_bad_npz_files_get_one_line_each(tmp_path, ckpt):
    for path, message in _npz_cases(tmp_path).items():
        with pytest.raises(DataError) as e:
            kgen.load_dataset(str(path), "train")
        assert str(e.value) == message
    text = tmp_path / "text.npz"
    result = run("evaluate", "--checkpoint", str(ckpt), "--dataset", str(text))
    assert result.exit_code == 2, result.output
    assert "is not a .npz file (not a zip archive" in error_line(result)


def test_complex_array_is_refused_by_from_array():
    with pytest.raises(DataError, match="complex values"):
        from_array(np.ones((4, 2), "complex64"))


# === a checkpoint whose kgen_state.json is broken ===


def test_broken_state_json_is_a_corrupted_checkpoint(ckpt, tmp_path):
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(ckpt) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = b'{"epoch": 1, "config": {' if item.filename == checkpoint.STATE_MEMBER else src.read(item)
            dst.writestr(item, data)
    with pytest.raises(CheckpointError, match=f"checkpoint {broken} is corrupted: its kgen_state.json cannot be read"):
        checkpoint.read_state(broken)
    result = run("sample", "--checkpoint", str(broken), "-n", "2", "--out", str(tmp_path / "s.npz"))
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert line.startswith(f"Error: checkpoint {broken} is corrupted: its kgen_state.json cannot be read as JSON")
    assert line.endswith("restore the file from a copy or retrain.")
