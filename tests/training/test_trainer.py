"""The harness: run folder, resume equality, NaN stop, crash-safe checkpoints."""

import csv

import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen.errors import CheckpointError, TrainingDiverged, UsageError
from kgen.training.trainer import Trainer, train


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def test_run_folder_has_everything(tmp_path, tiny_config):
    model, run_dir, last = train(tiny_config(), run_dir=tmp_path / "run", verbose=0)
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.toml", "metrics.csv", "loss.png", "last.keras", "best.keras", "samples"} <= names
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss", "kl", "recon", "val_loss", "seconds"} <= set(rows[0])
    assert all(float(r["seconds"]) > 0 for r in rows)
    assert (run_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert checkpoint.read_state(run_dir / "last.keras")["epoch"] == 2
    # the saved config reproduces the run's config
    assert kgen.config.resolve(config_file=run_dir / "config.toml") == tiny_config()


def test_resume_matches_an_uninterrupted_run(tmp_path, tiny_config):
    config = tiny_config("vae", "digits", "train.epochs=3", "data.binarize=dynamic", "model.likelihood=bernoulli")
    full, _, _ = train(config, run_dir=tmp_path / "full", verbose=0)
    first = tiny_config("vae", "digits", "train.epochs=1", "data.binarize=dynamic", "model.likelihood=bernoulli")
    train(first, run_dir=tmp_path / "cut", verbose=0)
    resumed, _, _ = train(None, run_dir=tmp_path / "cut", resume=True, epochs=3, verbose=0)
    for a, b in zip(_weights(full), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(resumed.optimizer.iterations) == int(full.optimizer.iterations)
    rows = list(csv.DictReader(open(tmp_path / "cut" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]


def test_cosine_schedule_decays_to_zero_and_survives_a_crash(tmp_path, tiny_config, monkeypatch):
    """train.lr_schedule = "cosine": half the rate at mid-run, zero at the end; a run killed after
    epoch 1 and resumed ends with the weights of one never interrupted; extending it is refused."""
    from kgen.training.trainer import Trainer

    sets = ("train.epochs=2", "train.lr_schedule=cosine", "train.learning_rate=0.01")
    full, _, _ = train(tiny_config("vae", "digits", *sets), run_dir=tmp_path / "full", verbose=0)
    steps = int(full.optimizer.iterations)
    assert steps == 2 * 4  # 256 examples at batch 64
    assert float(full.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)

    end_epoch = Trainer._end_epoch

    def crash_after_first(self, row):
        end_epoch(self, row)
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_end_epoch", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config("vae", "digits", *sets), run_dir=tmp_path / "cut", verbose=0)
    monkeypatch.setattr(Trainer, "_end_epoch", end_epoch)
    half = kgen.load_model(tmp_path / "cut" / "last.keras")
    assert float(half.optimizer.learning_rate) == pytest.approx(0.005, rel=1e-5)  # cos(pi / 2): half
    resumed, _, _ = train(None, run_dir=tmp_path / "cut", resume=True, verbose=0)
    for a, b in zip(_weights(full), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(UsageError, match="cosine learning-rate schedule was set for 2 epochs"):
        train(None, run_dir=tmp_path / "cut", resume=True, epochs=4, verbose=0)


def test_lr_schedule_is_checked(tiny_config):
    from kgen.training.trainer import build_for_data, compile_model, make_optimizer

    with pytest.raises(UsageError, match="lr_schedule"):
        tiny_config("vae", "digits", "train.lr_schedule=linear")
    config = tiny_config("vae", "digits", "train.lr_schedule=cosine")
    with pytest.raises(UsageError, match="steps per epoch"):
        make_optimizer(config["train"])
    gan = tiny_config("gan", "digits", "train.lr_schedule=cosine")
    digits = kgen.load_dataset("digits")
    with pytest.raises(UsageError, match="constant learning rate"):
        compile_model(build_for_data(gan, digits), gan["train"], steps_per_epoch=4)


def test_resume_refuses_missing_or_foreign_folders(tmp_path, tiny_config):
    with pytest.raises(UsageError, match="does not exist"):
        train(None, run_dir=tmp_path / "nope", resume=True)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not a kgen run folder"):
        train(None, run_dir=tmp_path / "foreign", resume=True)
    train(tiny_config("vae", "digits", "train.epochs=1"), run_dir=tmp_path / "run", verbose=0)
    with pytest.raises(UsageError, match="already holds a run"):
        train(tiny_config(), run_dir=tmp_path / "run", verbose=0)


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path, tiny_config, monkeypatch):
    run = tmp_path / "run"
    train(tiny_config("vae", "digits", "train.epochs=1"), run_dir=run, verbose=0)
    before = _weights(kgen.load_model(run / "last.keras"))
    real_load = checkpoint.load_model

    def load_with_huge_lr(path, **kwargs):
        model = real_load(path, **kwargs)
        model.optimizer.learning_rate.assign(1e30)  # weights overflow: the loss turns NaN/Inf
        return model

    monkeypatch.setattr(checkpoint, "load_model", load_with_huge_lr)
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 2: .*(nan|inf)"):
        train(None, run_dir=run, resume=True, epochs=3, verbose=0)
    monkeypatch.undo()
    after = kgen.load_model(run / "last.keras")
    for a, b in zip(before, _weights(after)):
        np.testing.assert_array_equal(a, b)
    assert checkpoint.read_state(run / "last.keras")["epoch"] == 1


def test_interrupted_save_leaves_old_checkpoint_loadable(tmp_path, digits):
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, hidden_units=(16,))
    model.compile(optimizer="adam")
    path = tmp_path / "last.keras"
    checkpoint.save_checkpoint(model, path, {"epoch": 1})
    old = _weights(model)
    model.fit(digits.x, epochs=1, verbose=0)

    class Killed(Exception):
        pass

    def die(tmp):
        assert tmp.exists() and tmp.parent == path.parent
        raise Killed  # the process dies between fsync and rename

    with pytest.raises(Killed):
        checkpoint.save_checkpoint(model, path, {"epoch": 2}, _before_rename=die)
    loaded = kgen.load_model(path)
    for a, b in zip(old, _weights(loaded)):
        np.testing.assert_array_equal(a, b)
    assert checkpoint.read_state(path)["epoch"] == 1
    stale = tmp_path / ".tmp-999-last.keras"
    stale.write_bytes(b"half a file")
    checkpoint.clean_stale(tmp_path)
    assert not stale.exists() and path.exists()


def test_corrupted_and_refused_checkpoints(tmp_path, digits):
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, hidden_units=(16,))
    path = tmp_path / "m.keras"
    checkpoint.save_checkpoint(model, path)
    data = path.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        kgen.load_model(tmp_path / "cut.keras")
    flipped = bytearray(data)
    mid = len(flipped) // 2
    flipped[mid : mid + 64] = bytes(64)
    (tmp_path / "flip.keras").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupted"):
        kgen.load_model(tmp_path / "flip.keras")
    with pytest.raises(CheckpointError, match="does not exist"):
        kgen.load_model(tmp_path / "missing.keras")
    for name, what in (("m.pkl", "pickle"), ("m.h5", "HDF5")):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(CheckpointError, match=what):
            kgen.load_model(tmp_path / name)
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="SavedModel"):
        kgen.load_model(tmp_path / "sm")


def test_nan_in_a_fresh_run_writes_no_checkpoint(tmp_path, tiny_config):
    with pytest.raises(TrainingDiverged, match="diverged at epoch 1"):
        train(tiny_config("vae", "digits", "train.learning_rate=1e30"), run_dir=tmp_path / "r", verbose=0)
    assert not (tmp_path / "r" / "last.keras").exists()


def test_training_is_reproducible_with_a_seed(tmp_path, tiny_config):
    a, _, _ = train(tiny_config("vae", "digits", "train.epochs=1", "train.seed=3"), run_dir=tmp_path / "a", verbose=0)
    b, _, _ = train(tiny_config("vae", "digits", "train.epochs=1", "train.seed=3"), run_dir=tmp_path / "b", verbose=0)
    for x, y in zip(_weights(a), _weights(b)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.sample(8, seed=1), b.sample(8, seed=1))


def test_train_xla_on_compiles_the_step_and_checkpoints_stay_portable(tmp_path, tiny_config):
    """train.xla = "on": TensorFlow's training step goes through XLA (Keras leaves it off on a
    CPU-only machine) and still learns; a resumed run keeps the choice; the checkpoint records
    Keras' "auto", so it loads on PyTorch without turning on torch.compile. JAX and PyTorch ignore it."""
    from kgen import backend
    from kgen.training.trainer import compile_model

    config = tiny_config("vae", "digits", "train.epochs=3", "train.xla=on")
    model, run_dir, _ = train(config, run_dir=tmp_path / "run", verbose=0)
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"]) - 1.0
    assert np.isfinite(float(rows[-1]["val_loss"]))
    default = compile_model(kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17), tiny_config()["train"])
    if backend.name() == "tensorflow":
        assert model.jit_compile is True and default.jit_compile is False
    assert checkpoint.load_model(run_dir / "last.keras").get_compile_config()["jit_compile"] == "auto"
    resumed, _, _ = train(None, run_dir=run_dir, resume=True, epochs=4, verbose=0)
    if backend.name() == "tensorflow":
        assert resumed.jit_compile is True
    off = tiny_config("vae", "digits", "train.xla=off")["train"]
    assert compile_model(kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17), off).jit_compile is (
        False if backend.name() == "tensorflow" else default.jit_compile
    )


def test_train_with_valid_trains_on_both_splits_and_says_so(tmp_path, tiny_config):
    """The run trains on train + valid (an epoch's steps count both) and its log says that the
    val_* metrics now score seen data."""
    n = len(kgen.load_dataset("digits", split="train")) + len(kgen.load_dataset("digits", split="valid"))
    config = tiny_config("vae", "digits", "train.epochs=1", "data.max_examples=0", "data.train_with_valid=true")
    messages = []
    trainer = Trainer(config, run_dir=tmp_path / "run", verbose=0, log=messages.append)
    trainer.setup()
    assert len(trainer.train_data) == n and trainer.steps_per_epoch == -(-n // config["train"]["batch_size"])
    assert any(f"training on train + valid ({n} examples)" in m and "val_*" in m for m in messages)


def test_progress_bar_never_counts_past_the_epoch(capsys):
    """With steps_per_execution = 8 Keras reports step 503 as the last of a 500-step epoch."""
    from kgen.training.callbacks import ProgressBar

    bar = ProgressBar(1, 1, steps=500)
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(495, {"loss": 1.0})
    assert bar.bar._seen_so_far == 496
    bar.on_train_batch_end(503, {"loss": 1.0})
    assert bar.bar._seen_so_far == 500
    bar.on_epoch_end(0, {"loss": 1.0})
    assert "500/500" in capsys.readouterr().out


@pytest.mark.parametrize("parts", [1, 2])
def test_fit_data_feeds_each_example_once_in_order(parts):
    """What the trainer hands `fit` each epoch. On TensorFlow a tf.data pipeline with autotuning off
    (deleting an autotuned iterator can block `fit`'s return for seconds); elsewhere the arrays."""
    from kgen import backend

    x = np.arange(30, dtype="float64").reshape(10, 3)
    inputs = x if parts == 1 else (x, np.arange(10, dtype="int32"))
    train, valid = backend.fit_data(inputs, 4), backend.validation_data(inputs, 4)
    if backend.name() != "tensorflow":
        assert train == {"x": inputs, "batch_size": 4}
        assert valid == {"validation_data": (inputs,), "validation_batch_size": 4}
        return
    assert set(train) == {"x"} and set(valid) == {"validation_data"}
    for data in (train["x"], valid["validation_data"]):
        assert data.options().autotune.enabled is False
        batches = [element[0] for element in data.as_numpy_iterator()]  # 1-tuples: x alone
        first = [b if parts == 1 else b[0] for b in batches]
        assert [len(b) for b in first] == [4, 4, 2]  # in order, the last batch partial
        np.testing.assert_array_equal(np.concatenate(first), x)
        assert first[0].dtype == np.float32  # floats in floatx, as Keras' own pipeline gives them
        if parts == 2:
            np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.arange(10))
            assert batches[0][1].dtype == np.int32
