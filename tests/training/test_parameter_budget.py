"""Models too large to hold are refused before their weights take memory (issue 26, items 7 and 10).

`kgen train` builds under `train.max_parameters`; `kgen.load_model` builds a checkpoint's config under
the number of values its weights file stores. Each case here allocated gigabytes (or died in the
allocator) before the budget existed; now each is refused within the build, naming the key to change.
"""

import json
import os
import pathlib
import subprocess
import sys
import time
import zipfile

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen import checkpoint
from kgen import config as config_lib
from kgen.budget import DEFAULT_MAX_PARAMETERS, ParameterBudgetError, parameter_budget
from kgen.cli.main import main
from kgen.data import from_array
from kgen.errors import CheckpointError, ConfigError

BACKEND = keras.config.backend()
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _small_vae():
    return kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17, latent_dim=4, hidden_units=(16,))


def test_budget_counts_every_weight_and_refuses_before_allocating():
    with parameter_budget(100_000) as budget:
        model = _small_vae()
    assert budget.count == model.count_params() < 100_000
    with pytest.raises(ParameterBudgetError) as e, parameter_budget(1000, sizes={"model.hidden_units": [16]}):
        _small_vae()
    message = str(e.value)
    assert "more than 1,000 parameters" in message and "model.hidden_units = [16]" in message
    assert "raise train.max_parameters (now 1,000)" in message


def test_budgets_nest_and_end_with_their_block():
    with parameter_budget(10**9) as outer:
        with parameter_budget(10**9) as inner:
            keras.layers.Dense(3).build((None, 5))
        keras.layers.Dense(2).build((None, 5))
    assert (inner.count, outer.count) == (18, 30)
    keras.layers.Dense(10_000).build((None, 10_000))  # no budget in force: Keras as usual


@pytest.mark.parametrize("override, key", [
    ("model.hidden_units=[40000, 40000]", "model.hidden_units = [40000, 40000]"),
    ("model.hidden_units=[100000000, 256]", "model.hidden_units = [100000000, 256]"),
    ("model.latent_dim=1000000000", "model.latent_dim = 1000000000"),
])
def test_train_refuses_an_absurd_size_in_the_build(tiny_config, tmp_path, override, key):
    config = tiny_config("vae", "digits", override)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        kgen.train(config, run_dir=tmp_path / "run", verbose=0)
    assert time.perf_counter() - start < 30  # the allocator's failure took tens of seconds and ~20 GB
    assert key in str(e.value) and f"train.max_parameters (now {DEFAULT_MAX_PARAMETERS:,})" in str(e.value)
    assert not (tmp_path / "run" / "last.keras").exists()


def test_the_data_sizes_are_named_too(tmp_path):
    """Labels near 1e7 make a conditional model's class embedding huge: the data's classes are named."""
    x = np.random.default_rng(0).integers(0, 2, size=(32, 4, 4, 1)).astype("float32")
    labels = np.arange(32) + 10_000_000
    data = from_array(x, labels, name="many_labels")
    config = config_lib.resolve(model="vae", dataset="digits", overrides=[
        "model.conditional=true", "train.epochs=1", "train.max_parameters=1000000"])
    from kgen.training.trainer import build_for_data

    with pytest.raises(ConfigError, match=r"the data's classes \(many_labels\) = 10000032"):
        build_for_data(config, data)


def test_max_parameters_is_a_recipe_key_with_a_range(tiny_config):
    with pytest.raises(ConfigError, match="train.max_parameters"):
        tiny_config("vae", "digits", "train.max_parameters=0")
    config = tiny_config("vae", "digits", "train.max_parameters=1000")
    with pytest.raises(ConfigError, match="now 1,000"):
        kgen.train(config, verbose=0)


def test_cli_train_prints_one_line(tmp_path):
    result = CliRunner().invoke(main, ["--backend", BACKEND, "train", "--model", "vae", "--dataset", "digits",
                                       "--run-dir", str(tmp_path / "run"),
                                       "--set", "model.hidden_units=[40000, 40000]"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "model.hidden_units = [40000, 40000]" in result.output.strip().splitlines()[-1]


def _crafted(tmp_path, hidden="[40000, 40000]"):
    """A valid checkpoint whose config.json asks for a far larger model than its weights hold."""
    good = tmp_path / "good.keras"
    checkpoint.save_checkpoint(_small_vae(), good, state={"epoch": 1})
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    text = json.dumps(config).replace('"hidden_units": [16]', f'"hidden_units": {hidden}')
    assert text != json.dumps(config)
    members["config.json"] = text.encode()
    evil = tmp_path / "evil.keras"
    with zipfile.ZipFile(evil, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return good, evil


def test_load_refuses_a_config_larger_than_its_stored_weights(tmp_path):
    good, evil = _crafted(tmp_path)
    assert checkpoint.load_model(good).count_params() == _small_vae().count_params()
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_model(evil)
    message = str(e.value)
    assert "corrupted or crafted" in message and "stores" in message
    assert "encoder_dense_0/kernel" in message and "(64, 40000)" in message


def test_load_refusal_bounds_memory(tmp_path):
    """In a fresh process, the crafted 40000x40000 checkpoint is refused using well under a gigabyte
    above the interpreter's own footprint (it took 20.4 GB before the fix)."""
    _, evil = _crafted(tmp_path)
    code = (
        "import resource, kgen\n"
        "from kgen import checkpoint\n"
        "from kgen.errors import CheckpointError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"try:\n    checkpoint.load_model(r'{evil}')\nexcept CheckpointError:\n    pass\n"
        "else:\n    raise SystemExit('loaded')\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    grown_mb = int(out.stdout.strip().splitlines()[-1])
    assert grown_mb < 500, grown_mb


def test_load_cap_is_raised_by_the_environment(tmp_path, monkeypatch):
    good = tmp_path / "good.keras"
    checkpoint.save_checkpoint(_small_vae(), good, state={"epoch": 1})
    monkeypatch.setenv(checkpoint.MAX_PARAMETERS_ENV, "1000")
    with pytest.raises(CheckpointError, match=r"raise \$KGEN_MAX_PARAMETERS \(now 1,000\)"):
        checkpoint.load_model(good)
    monkeypatch.setenv(checkpoint.MAX_PARAMETERS_ENV, "lots")
    with pytest.raises(CheckpointError, match="positive integer"):
        checkpoint.load_model(good)
    monkeypatch.setenv(checkpoint.MAX_PARAMETERS_ENV, str(10**6))
    assert checkpoint.load_model(good).count_params() == _small_vae().count_params()
