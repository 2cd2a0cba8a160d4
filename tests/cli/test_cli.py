"""Every command and every error path of the `kgen` command."""

import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kgen.cli.main import main

BACKEND = keras.config.backend()


def run(*args, env=None):
    """In-process invocation (Keras is already imported with this session's backend)."""
    return CliRunner().invoke(main, ["--backend", BACKEND, *args], env=env, catch_exceptions=False)


def kgen_process(*args, env=None, timeout=300):
    full_env = dict(os.environ, **(env or {}))
    # Run outside the source tree, so the installed kgen (with kgen.cli) is what runs.
    return subprocess.run([sys.executable, "-m", "kgen.cli.main", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=tempfile.gettempdir())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = CliRunner().invoke(main, ["--backend", BACKEND, "train", "--epochs", "2", "--run-dir", str(run_dir),
                                       "--set", "data.max_examples=256", "--set", "model.hidden_units=[32]",
                                       "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run_dir


def test_list_json_is_pure_json():
    result = run("list", "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    vae = next(m for m in info["models"] if m["name"] == "vae")
    assert vae["family"] == "latent" and set(vae["backends"]) == {"tensorflow", "jax", "torch"}
    assert "digits" in info["datasets"] and "vae/digits" in info["recipes"]
    assert any(p["model"] == "vae" for p in info["pretrained"])
    assert "vae" in run("list").stdout


def test_train_writes_run_folder(trained):
    assert (trained / "last.keras").is_file() and (trained / "samples" / "epoch_002.png").is_file()


def test_train_resume_extends_and_refuses_changes(trained, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    result = run("train", "--resume", "--run-dir", str(run_dir), "--epochs", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert (run_dir / "samples" / "epoch_003.png").is_file()
    result = run("train", "--resume", "--run-dir", str(run_dir), "--model", "pixel_cnn")
    assert result.exit_code == 2 and "only --epochs" in result.output and "model.name" in result.output
    result = run("train", "--resume", "--run-dir", str(tmp_path / "nothing"))
    assert result.exit_code == 2 and "nothing to resume" in result.output


def test_resume_accepts_the_first_command_line_again(trained, tmp_path):
    """The first command again with --resume is what the run was: accepted. Only a value that differs
    from the recorded configuration is refused, and the message names its key."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    first = ["train", "--model", "vae", "--dataset", "digits", "--epochs", "2", "--run-dir", str(run_dir),
             "--set", "data.max_examples=256", "--set", "model.hidden_units=[32]", "--quiet"]
    result = run(*first, "--resume")
    assert result.exit_code == 0, result.output
    assert "already trained 2 of 2 epochs" in result.output
    result = run(*first, "--resume", "--seed", "5")
    assert result.exit_code == 2
    assert "train.seed is 0 in the run, 5 now" in result.output and "model.name" not in result.output
    result = run(*first[:-1], "--set", "model.hidden_units=[64]", "--resume")
    assert result.exit_code == 2 and "model.hidden_units is [32] in the run, [64] now" in result.output


def test_sample_png_npz_and_pretrained(trained, tmp_path):
    result = run("sample", "--checkpoint", str(trained / "last.keras"), "-n", "9", "--seed", "1",
                 "--out", str(tmp_path / "a.npz"))
    assert result.exit_code == 0, result.output
    run("sample", "--checkpoint", str(trained / "last.keras"), "-n", "9", "--seed", "1", "--out", str(tmp_path / "b.npz"))
    a, b = np.load(tmp_path / "a.npz")["x"], np.load(tmp_path / "b.npz")["x"]
    assert a.shape == (9, 8, 8, 1)
    np.testing.assert_array_equal(a, b)  # --seed makes sampling reproducible
    result = run("sample", "--model", "vae", "-n", "16", "--out", str(tmp_path / "s.png"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_json(trained):
    result = run("evaluate", "--checkpoint", str(trained / "best.keras"), "--iw-samples", "20",
                 "--max-examples", "40", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["nll_kind"] == "bound" and report["examples"] == 40
    assert report["iw_bound"]["k"] == 20
    assert report["iw_bound"]["nats"] >= report["elbo"]["nats"] - 1.0
    assert abs(report["nll"]["bits_per_dim"] - report["nll"]["nats"] / (64 * np.log(2))) < 1e-6


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "--model", "vea"], 2, 'unknown model "vea". Did you mean "vae"?'),
        (["train", "--dataset", "digitz"], 2, 'Did you mean "digits"?'),
        (["train", "--set", "train.epochz=3"], 2, 'unknown config key train.epochz. Did you mean "epochs"?'),
        (["train", "--set", "model.hidden_unitz=[3]"], 2, "model.hidden_unitz"),
        (["train", "--set", "train.epochs=many"], 2, "expected an integer"),
        (["train", "--config", "vae/digitz"], 2, 'Did you mean "vae/digits"?'),
        (["sample", "--model", "vae", "--checkpoint", "x.keras"], 2, "exactly one"),
        (["sample", "--model", "nade_x"], 2, "no pretrained checkpoint"),
        (["sample", "--checkpoint", "missing.keras"], 1, "does not exist"),
        (["evaluate", "--checkpoint", "missing.keras"], 1, "does not exist"),
    ],
)
def test_usage_errors_are_one_line(args, code, message):
    result = run(*args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_config_typo_deep_in_a_table(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[model]\nname = "vae"\n\n[train]\nepochs = 1\nlearnig_rate = 0.1\n')
    result = run("train", "--config", str(path))
    assert result.exit_code == 2
    assert 'train.learnig_rate. Did you mean "learning_rate"?' in result.output


def test_offline_download_error(tmp_path):
    env = {"KGEN_CACHE_DIR": str(tmp_path), "KGEN_OFFLINE": "1", "KGEN_DATA_DIR": ""}
    result = run("train", "--dataset", "binarized_mnist", "--run-dir", str(tmp_path / "r"), env=env)
    assert result.exit_code == 1
    assert "could not be downloaded" in result.output and str(tmp_path) in result.output
    assert "Traceback" not in result.output


def test_bad_data_files(tmp_path):
    np.savez(tmp_path / "nan.npz", x=np.full((20, 8, 8), np.nan, "float32"))
    result = run("train", "--dataset", str(tmp_path / "nan.npz"), "--run-dir", str(tmp_path / "r1"))
    assert result.exit_code == 2 and "NaN" in result.output
    np.savez(tmp_path / "rank.npz", x=np.zeros((20, 2, 3, 4, 5)))
    result = run("train", "--dataset", str(tmp_path / "rank.npz"), "--run-dir", str(tmp_path / "r2"))
    assert result.exit_code == 2 and "expected shape" in result.output
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((20, 8, 8), "uint8"))
    result = run("train", "--dataset", str(tmp_path / "nolabels.npz"), "--set", "model.conditional=true",
                 "--run-dir", str(tmp_path / "r3"))
    assert result.exit_code == 2 and "labels" in result.output


def test_corrupted_checkpoint(trained, tmp_path):
    data = (trained / "last.keras").read_bytes()
    (tmp_path / "bad.keras").write_bytes(data[:1000])
    result = run("sample", "--checkpoint", str(tmp_path / "bad.keras"))
    assert result.exit_code == 1 and "corrupted" in result.output


def test_user_npz_trains_through_cli(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", x=(rng.uniform(size=(100, 4, 4)) < 0.3).astype("uint8") * 255)
    result = run("train", "--dataset", str(tmp_path / "mine.npz"), "--epochs", "1", "--quiet",
                 "--set", "model.hidden_units=[8]", "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "last.keras").is_file()


def test_backend_flag_and_debug_in_a_fresh_process(tmp_path):
    out = kgen_process("--backend", BACKEND, "list", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    json.loads(out.stdout)
    out = kgen_process("--backend", BACKEND, "train", "--model", "nope")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    out = kgen_process("--backend", BACKEND, "--debug", "train", "--model", "nope")
    assert out.returncode != 0 and "Traceback" in out.stderr
