"""`--distribute data_parallel`: the options, the global batch, the rows each process feeds, refusals.

The multi-device runs are in test_distributed_jax.py and test_distributed_tf.py
(subprocesses with simulated devices); these checks run in this process.
"""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kgen import config as config_lib
from kgen.errors import BackendError, ConfigError, UsageError
from kgen.training import distribute

BACKEND = keras.config.backend()

def test_off_by_default_and_checked_in_a_recipe():
    config = config_lib.resolve(model="vae", dataset="digits")
    assert config["train"]["distribute"] == "off" and config["train"]["devices"] == 0
    assert isinstance(distribute.start(config["train"]), distribute.Single)
    with pytest.raises(ConfigError, match="train.distribute: 'data_paralel' is not one of off, data_parallel"):
        config_lib.resolve(model="vae", overrides=['train.distribute="data_paralel"'])
    with pytest.raises(ConfigError, match=r"train.devices \(--devices\): expected an integer >= 0"):
        config_lib.resolve(model="vae", overrides=["train.devices=-1"])


def test_global_batch_must_divide_over_devices_and_processes():
    distribute.check_batch(64, 2, 1)
    distribute.check_batch(64, 2, 2)
    with pytest.raises(UsageError, match=r"train.batch_size 30 does not divide over 4 devices \(4 replicas\).*"
                                         r"--batch-size 28 or 32"):
        distribute.check_batch(30, 4, 1)
    with pytest.raises(UsageError, match=r"2 devices x 2 processes \(4 replicas\)"):
        distribute.check_batch(6, 2, 2)


def test_each_process_feeds_its_block_of_every_global_batch():
    """Process p's rows are the p-th quarter of each global batch of 8: put back together in process
    order they are the single-device batches, in the same order (and the same noise rows on JAX)."""
    rows = np.random.default_rng(0).permutation(35)
    plan = [distribute.DataParallel(1, 4, p) for p in range(4)]
    usable = plan[0].usable(len(rows), 8)
    assert usable == 32 and plan[0].steps(35, 8) == 4  # the partial batch of 3 is dropped
    parts = [p.local_rows(rows[:usable], 8) for p in plan]
    assert all(local == 2 for _, local in parts)
    joined = np.stack([r.reshape(4, 2) for r, _ in parts], axis=1).reshape(-1)
    np.testing.assert_array_equal(joined, rows[:usable])
    single = distribute.Single()
    assert single.steps(35, 8) == 5 and single.usable(35, 8) == 35  # off: the last batch stays partial


@pytest.mark.skipif(BACKEND != "torch", reason="torchrun is the torch backend's launcher")
def test_torch_outside_torchrun_says_how_to_launch(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    config = config_lib.resolve(model="vae", overrides=['train.distribute="data_parallel"'])
    with pytest.raises(BackendError, match="one process a device under torchrun.*--nproc-per-node N"):
        distribute.start(config["train"])


@pytest.mark.skipif(BACKEND != "torch", reason="the refusal is the torch backend's")
def test_torch_refuses_batch_norm_models():
    from kgen.training.trainer import build_for_data

    import kgen

    config = config_lib.resolve(model="dcgan", dataset="digits")
    model = build_for_data(config, kgen.load_dataset("digits"))
    with pytest.raises(BackendError, match="has BatchNormalization .* no synchronized BatchNorm"):
        distribute.TorchDDP(1, 2, 0).prepare_model(model)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="MirroredStrategy is TensorFlow's")
def test_tensorflow_refuses_several_workers(monkeypatch):
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    config = config_lib.resolve(model="vae", overrides=['train.distribute="data_parallel"'])
    with pytest.raises(BackendError, match="MultiWorkerMirroredStrategy, which fails inside the released Keras"):
        distribute.start(config["train"])


@pytest.mark.skipif(BACKEND == "torch", reason="torch: one device a process (test_torch_outside_torchrun_...)")
def test_too_many_devices_is_refused():
    config = config_lib.resolve(model="vae", overrides=['train.distribute="data_parallel"', "train.devices=64"])
    with pytest.raises(UsageError, match="--devices 64: .* sees 1 CPU device"):
        distribute.start(config["train"])


def test_cli_passes_the_options(tmp_path):
    """`kgen train --distribute data_parallel --devices N` reaches train.distribute/train.devices; a
    second device that this process lacks is refused before anything is written; 33 rows a batch on one
    device train, dropping the partial batch."""
    from kgen.cli.main import main

    result = CliRunner().invoke(main, ["--backend", BACKEND, "train", "--model", "vae", "--epochs", "1",
                                       "--batch-size", "33",
                                       "--distribute", "data_parallel", "--devices", "2",
                                       "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code != 0
    if BACKEND == "torch":
        assert "under torchrun" in result.output
    elif BACKEND == "jax":  # this process has one CPU device
        assert "--devices 2: this process sees 1 CPU device" in result.output
    else:
        assert "--devices 2: TensorFlow sees 1 CPU device" in result.output
    assert not (tmp_path / "run").exists()
    result = CliRunner().invoke(main, ["--backend", BACKEND, "train", "--model", "vae", "--batch-size", "33",
                                       "--distribute",
                                       "data_parallel", "--devices", "1", "--epochs", "1",
                                       "--run-dir", str(tmp_path / "run2"), "--set", "data.max_examples=64",
                                       "--quiet"])
    if BACKEND != "torch":
        assert result.exit_code == 0, result.output  # 33 divides over 1 device
        assert "drops its last partial batch (31 of 64 examples" in result.output
