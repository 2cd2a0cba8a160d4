"""No run folder lost to a concurrent command (issue 26, items 1-4): each test reproduces a failure seen.

1. A concurrent `--resume` deleted a live writer's temporary file, and the save then appended its state
   to a new, empty zip that replaced the good `last.keras`.
2. Two trains into one folder both ran: one process per run folder now (an OS lock).
3. A crash between the `last.keras` and `best.keras` writes left `best.keras` an epoch behind for good.
4. A run that ended before its first checkpoint left a folder that neither `train` nor `--resume` took.
"""

import os
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen.errors import CheckpointError, TrainingDiverged, UsageError
from kgen.files import TMP_PREFIX
from kgen.training.trainer import train


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


# === 1. Temporaries and torn checkpoints ===


def test_a_vanished_temporary_never_replaces_the_checkpoint(tmp_path, digits, monkeypatch):
    model = kgen.build_model("vae", input_shape=digits.shape, num_levels=17, hidden_units=(8,))
    model.compile(optimizer="adam")
    path = tmp_path / "last.keras"
    checkpoint.save_checkpoint(model, path, {"epoch": 1})
    before = _weights(kgen.load_model(path))
    model.fit(digits.x, epochs=1, verbose=0)
    real_save = type(model).save

    def save_then_vanish(self, filepath, *args, **kwargs):  # another process deletes the temp meanwhile
        real_save(self, filepath, *args, **kwargs)
        os.remove(filepath)

    monkeypatch.setattr(type(model), "save", save_then_vanish)
    with pytest.raises(CheckpointError, match="vanished"):
        checkpoint.save_checkpoint(model, path, {"epoch": 2})
    monkeypatch.undo()
    for a, b in zip(before, _weights(kgen.load_model(path))):
        np.testing.assert_array_equal(a, b)
    assert checkpoint.read_state(path)["epoch"] == 1


def test_verify_refuses_a_state_only_zip(tmp_path):
    torn = tmp_path / "torn.keras"
    with zipfile.ZipFile(torn, "w") as zf:
        zf.writestr(checkpoint.STATE_MEMBER, "{}")
    with pytest.raises(CheckpointError, match="incomplete"):
        checkpoint.verify_checkpoint(torn)


def test_clean_stale_keeps_a_live_writers_temporary(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
        mine = tmp_path / f"{checkpoint.TMP_PREFIX}{os.getpid()}-last.keras"
        theirs = tmp_path / f"{checkpoint.TMP_PREFIX}{live.pid}-last.keras"
        gone = tmp_path / f"{checkpoint.TMP_PREFIX}{dead}-last.keras"
        odd = tmp_path / f"{checkpoint.TMP_PREFIX}metrics.csv"
        for p in (mine, theirs, gone, odd):
            p.write_bytes(b"x")
        checkpoint.clean_stale(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [theirs.name]
    finally:
        live.kill()
        live.wait()


# === 2. One process per run folder ===


def test_a_second_train_into_a_locked_folder_names_the_holder(tmp_path, tiny_config):
    run = tmp_path / "run"
    run.mkdir()
    holder = checkpoint.RunLock(run).acquire()
    try:
        with pytest.raises(CheckpointError, match=rf"in use by another kgen process \(PID {os.getpid()}\)"):
            train(tiny_config("vae", "digits", "train.epochs=1"), run_dir=run, verbose=0)
        assert not (run / "config.toml").exists()
    finally:
        holder.release()
    train(tiny_config("vae", "digits", "train.epochs=1"), run_dir=run, verbose=0)  # free again
    holder = checkpoint.RunLock(run).acquire()
    try:
        with pytest.raises(CheckpointError, match="in use by another kgen process"):
            train(None, run_dir=run, resume=True, epochs=2, verbose=0)
        assert checkpoint.read_state(run / "last.keras")["epoch"] == 1
    finally:
        holder.release()


def test_a_killed_holder_leaves_the_folder_unlocked(tmp_path):
    code = ("import sys, time; from kgen.checkpoint import RunLock; lock = RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointError, match=f"PID {proc.pid}"):
            checkpoint.RunLock(tmp_path).acquire()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        checkpoint.RunLock(tmp_path).acquire().release()
    finally:
        proc.kill()
        proc.wait()


# === 3. best.keras consistent with last.keras ===


def test_resume_repairs_best_after_a_crash_between_the_two_writes(tmp_path, tiny_config, monkeypatch):
    run = tmp_path / "run"
    config = tiny_config("vae", "digits", "train.epochs=2", "train.checkpoint_metric=loss")
    real_save = checkpoint.save_checkpoint

    def crash_before_second_best(model, path, state=None, **kwargs):
        if path.name == "best.keras" and state["epoch"] == 2:
            raise KeyboardInterrupt  # the process dies between the two writes
        return real_save(model, path, state, **kwargs)

    monkeypatch.setattr(checkpoint, "save_checkpoint", crash_before_second_best)
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir=run, verbose=0)
    monkeypatch.undo()
    last = checkpoint.read_state(run / "last.keras")
    assert last["epoch"] == 2 and last["best_epoch"] == 2  # the training loss fell: epoch 2 is the best
    assert checkpoint.read_state(run / "best.keras")["epoch"] == 1  # stale
    train(None, run_dir=run, resume=True, verbose=0)
    assert checkpoint.read_state(run / "best.keras")["epoch"] == 2
    for a, b in zip(_weights(kgen.load_model(run / "last.keras")), _weights(kgen.load_model(run / "best.keras"))):
        np.testing.assert_array_equal(a, b)


# === 4. Folders whose run ended before its first checkpoint ===


@pytest.mark.parametrize("epochs", [0, -3])
def test_non_positive_epochs_are_refused_before_anything_is_written(tmp_path, tiny_config, epochs):
    with pytest.raises(UsageError, match="train.epochs must be at least 1"):
        train(tiny_config("vae", "digits", f"train.epochs={epochs}"), run_dir=tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_a_folder_without_a_checkpoint_restarts_and_resumes(tmp_path, tiny_config):
    from kgen import config as config_lib

    config = tiny_config("vae", "digits", "train.epochs=1")
    stuck = tmp_path / "stuck"
    stuck.mkdir()
    (stuck / "config.toml").write_text(config_lib.dumps(config))  # killed before its first checkpoint
    train(config, run_dir=stuck, verbose=0)
    assert checkpoint.read_state(stuck / "last.keras")["epoch"] == 1
    again = tmp_path / "again"
    again.mkdir()
    (again / "config.toml").write_text(config_lib.dumps(config))
    messages = []
    train(None, run_dir=again, resume=True, verbose=0, log=messages.append)
    assert checkpoint.read_state(again / "last.keras")["epoch"] == 1
    assert any("starts from scratch" in m for m in messages)


def test_divergence_in_the_first_epoch_names_no_missing_checkpoint(tmp_path, tiny_config):
    config = tiny_config("vae", "digits", "train.epochs=1", "train.learning_rate=1e30")
    with pytest.raises(TrainingDiverged, match="No checkpoint was written") as err:
        train(config, run_dir=tmp_path / "run", verbose=0)
    assert "last.keras" not in str(err.value)
    train(tiny_config("vae", "digits", "train.epochs=1"), run_dir=tmp_path / "run", verbose=0)  # starts afresh


# === 13. A full disk names the path, keeps the last checkpoint, and the run resumes ===


def test_a_full_disk_names_the_path_and_the_run_resumes(tmp_path, tiny_config, monkeypatch):
    import errno

    from kgen.errors import OutputError

    run = tmp_path / "run"
    config = tiny_config("vae", "digits", "train.epochs=2")
    real_save = checkpoint.save_checkpoint

    def disk_full_at_epoch_2(model, path, state=None, **kwargs):
        if state["epoch"] == 2:
            tmp = path.parent / f"{TMP_PREFIX}1-{path.name}"
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        return real_save(model, path, state, **kwargs)

    monkeypatch.setattr(checkpoint, "save_checkpoint", disk_full_at_epoch_2)
    with pytest.raises(OutputError) as e:
        train(config, run_dir=run, verbose=0)
    message = str(e.value)
    assert f"could not write {run} after epoch 2 (No space left on device)" in message
    assert f"{run / 'last.keras'} still holds epoch 1" in message and f"--resume --run-dir {run}" in message
    monkeypatch.undo()
    _, _, last = train(None, run_dir=run, resume=True, verbose=0)
    assert last["epoch"] == 2 and checkpoint.read_state(run / "last.keras")["epoch"] == 2


def test_an_unwritable_figure_is_named(tmp_path, tiny_config, monkeypatch):
    import errno

    from kgen import figures
    from kgen.errors import OutputError

    run = tmp_path / "run"

    def no_space(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(figures, "write_loss_plot", no_space)
    with pytest.raises(OutputError, match=r"could not write .*loss\.png after epoch 1 .*no checkpoint was written yet"):
        train(tiny_config("vae", "digits", "train.epochs=1"), run_dir=run, verbose=0)
