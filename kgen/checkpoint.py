"""Crash-safe `.keras` checkpoints and safe loading.

A checkpoint is a `.keras` file (Keras' own zip format) with one extra
member, `kgen_state.json`, that holds what `model.weights` does not: the
epoch, the random state of every `SeedGenerator`, and the trainer's
bookkeeping. It is written to a temporary file in the same folder, fsynced,
then renamed over the old one, so a crash at any moment leaves either the old
or the new checkpoint, never a torn one.
"""

import json
import os
import pathlib
import zipfile

import keras
import numpy as np

from kgen.budget import DEFAULT_MAX_PARAMETERS, ParameterBudgetError, parameter_budget, stored_parameters
from kgen.errors import CheckpointError
from kgen.files import TMP_PREFIX, fsync_path

STATE_MEMBER = "kgen_state.json"


def seed_generators(model):
    """Every SeedGenerator of a model and its layers (their states are not in `weights`)."""
    seen, out = set(), []
    for layer in [model] + list(model._flatten_layers(include_self=False)):
        for sg in getattr(layer, "_seed_generators", []):
            if id(sg) not in seen:
                seen.add(id(sg))
                out.append(sg)
    return out


def seed_states(model):
    return [np.asarray(keras.ops.convert_to_numpy(sg.state.value)).tolist() for sg in seed_generators(model)]


def restore_seed_states(model, states):
    for sg, value in zip(seed_generators(model), states):
        sg.state.assign(np.asarray(value, dtype=sg.state.dtype))


# === One process per run folder ===

LOCK_NAME = ".kgen.lock"


class RunLock:
    """An exclusive OS lock on a run folder, held while one process trains into it.

    `fcntl.flock` on `<folder>/.kgen.lock`: the kernel drops it when the process ends, however it
    ends (a SIGKILL never leaves the folder locked). The holder writes its PID into the file so a
    second process can say who holds it. Where `fcntl` does not exist (Windows), no lock is taken.
    """

    def __init__(self, directory):
        self.path = pathlib.Path(directory) / LOCK_NAME
        self._file = None

    def acquire(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover (Windows)
            return self
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise CheckpointError(
                f"{self.path.parent} is in use by another kgen process (PID {holder}); wait for it to "
                "finish, or train into another --run-dir."
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def release(self):
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def clean_stale(directory):
    """Removes temporaries a crashed save left behind: only those whose writing process is gone.

    A temporary is named `.tmp-<pid>-...` after its writer; one whose writer still runs (another
    process saving into this folder right now) is left alone.
    """
    for p in pathlib.Path(directory).glob(f"{TMP_PREFIX}*"):
        pid = p.name[len(TMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        p.unlink(missing_ok=True)


# Members a kgen checkpoint must hold before it may replace the previous one.
REQUIRED_MEMBERS = ("config.json", "model.weights.h5", STATE_MEMBER)


def verify_checkpoint(path):
    """Raises `CheckpointError` unless `path` is a whole, readable `.keras` checkpoint."""
    try:
        with zipfile.ZipFile(path) as zf:
            missing = [m for m in REQUIRED_MEMBERS if m not in zf.namelist()]
            bad = zf.testzip()
    except (OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({e}).") from None
    if missing or bad is not None:
        raise CheckpointError(f"checkpoint {path} is incomplete (missing {missing or bad}).")


def save_checkpoint(model, path, state=None, _before_rename=None):
    """Writes `model` (weights, optimizer, config) and `state` atomically to `path`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}-{path.name}"
    try:
        model.save(tmp)
        payload = dict(state or {})
        payload["seed_states"] = seed_states(model)
        payload["backend"] = keras.config.backend()
        # Append to the file Keras wrote, never to a new one: zipfile's "a" mode would create a
        # state-only zip if the temporary had vanished (deleted by another process).
        try:
            f = open(tmp, "r+b")
        except FileNotFoundError:
            raise CheckpointError(f"the temporary checkpoint {tmp} vanished while being written (another "
                                  f"process removed it); {path} is unchanged.") from None
        with f, zipfile.ZipFile(f, "a") as zf:
            zf.writestr(STATE_MEMBER, json.dumps(payload))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if _before_rename is not None:  # tests interrupt here
            _before_rename(tmp)
        verify_checkpoint(tmp)  # a torn or foreign file never replaces a good checkpoint
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


_REFUSED = {
    ".h5": "an HDF5 (.h5) full model",
    ".hdf5": "an HDF5 full model",
    ".pkl": "a pickle",
    ".pickle": "a pickle",
    ".pt": "a PyTorch pickle",
    ".pb": "a SavedModel",
}


def _check_path(path):
    path = pathlib.Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            raise CheckpointError(
                f"{path} is a SavedModel export, not a checkpoint; kgen loads only .keras files "
                "(exports are for serving runtimes)."
            )
        if (path / "last.keras").is_file():
            return path / "last.keras"
        raise CheckpointError(f"{path} is a folder with no last.keras; pass a .keras file.")
    if path.suffix.lower() in _REFUSED:
        raise CheckpointError(
            f"{path} is {_REFUSED[path.suffix.lower()]}; kgen loads only .keras files "
            "(refused: they can run arbitrary code or lose the config)."
        )
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    if path.suffix != ".keras":
        raise CheckpointError(f"{path} is not a .keras file; kgen loads only .keras checkpoints.")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated (not a valid .keras zip).")
    return path


def read_state(path):
    """The `kgen_state.json` of a checkpoint, or {} for a plain `.keras` file."""
    path = _check_path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            if STATE_MEMBER not in zf.namelist():
                return {}
            state = json.loads(zf.read(STATE_MEMBER))
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupted: its {STATE_MEMBER} cannot be read as JSON "
                              f"({type(e).__name__}: {e}); restore the file from a copy or retrain.") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is corrupted: its {STATE_MEMBER} holds a "
                              f"{type(state).__name__}, not an object; restore the file from a copy or retrain.")
    return state


# A weight that loads needs a stored value; the slack covers any variable a layer makes that Keras
# does not save (none in kgen's models: tests/models/test_conformance.py loads each with no slack).
_BUDGET_SLACK = 1024
MAX_PARAMETERS_ENV = "KGEN_MAX_PARAMETERS"


def max_loaded_parameters():
    """The most parameters a loaded checkpoint may have: `$KGEN_MAX_PARAMETERS`, else the default."""
    raw = os.environ.get(MAX_PARAMETERS_ENV, "")
    if not raw:
        return DEFAULT_MAX_PARAMETERS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise CheckpointError(f"${MAX_PARAMETERS_ENV} must be a positive integer, got {raw!r}.")
    return value


def _stored_parameters(zf, path):
    """Values stored in a `.keras` archive's weights (HDF5 headers only), 0 when it has none."""
    if "model.weights.h5" not in zf.namelist():
        return 0
    try:
        with zf.open("model.weights.h5") as f:
            return stored_parameters(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupted: its weights file cannot be read "
                              f"({type(e).__name__}: {e}); restore the file from a copy or retrain.") from None


def load_model(path, compile=True):
    """Loads a `.keras` model with safe mode on; restores its random state.

    Refuses pickles, `.h5` full models and SavedModels with a clear message, and
    reports a truncated or corrupted file as corrupted (not as missing).
    """
    # kgen's classes are registered: importing `kgen` (which imported this module)
    # registers them with Keras as soon as Keras is imported (kgen/__init__.py).
    path = _check_path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(bad)
            stored = _stored_parameters(zf, path)
        # The config is built before the weights load: a config asking for more weights than the
        # archive holds is refused as the model is built, before its memory is taken.
        limit = min(stored + _BUDGET_SLACK, max_loaded_parameters())
        hint = (f"raise ${MAX_PARAMETERS_ENV} (now {max_loaded_parameters():,}) if the file is yours"
                if stored + _BUDGET_SLACK > max_loaded_parameters() else None)
        with parameter_budget(limit, raise_hint=hint):
            model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except ParameterBudgetError as e:
        if hint:
            raise CheckpointError(f"checkpoint {path}: {e}") from None
        raise CheckpointError(
            f"checkpoint {path} is corrupted or crafted: its config builds a model larger than the "
            f"{stored:,} values its weights file stores ({str(e).split(';')[0]}); refused before "
            "building it. Restore the file from a copy or retrain.") from None
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 (Keras raises many types on bad files)
        raise CheckpointError(f"checkpoint {path} is corrupted or unreadable ({type(e).__name__}: {e}).") from None
    state = read_state(path)
    if state.get("seed_states"):
        restore_seed_states(model, state["seed_states"])
    return model
