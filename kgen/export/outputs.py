"""Outputs written whole: a temporary beside the target, then a rename.

`kgen sample --out` and every export write here, as checkpoints are written
(`kgen.checkpoint.save_checkpoint`): a failure at any moment (a full disk, an
endpoint that does not convert, a kill) leaves the previous file or folder as
it was and nothing half-written under the target's name. Temporaries are named
`.tmp-<pid>-<name>` beside the target, so the rename never crosses a file system.

Keras-free: the CLI and `kgen.sampling` import it before a backend is chosen.
"""

import contextlib
import os
import pathlib
import shutil

from kgen.errors import OutputError, UsageError  # noqa: F401  (OutputError: kgen.export.outputs.OutputError, as before)
from kgen.files import TMP_PREFIX, fsync_path


# What a previous SavedModel or ONNX export holds at its top level: `--overwrite` replaces only such a folder.
EXPORT_MEMBERS = {"saved_model.pb", "fingerprint.pb", "keras_metadata.pb", "variables", "assets"}
# What marks a kgen run folder (kgen.training.trainer.RUN_MARKER, kgen.checkpoint.LOCK_NAME, checkpoints).
RUN_FOLDER_MARKERS = ("last.keras", "best.keras", "config.toml", ".kgen.lock", "metrics.csv")



def _tmp_beside(path, tag=""):
    return path.parent / f"{TMP_PREFIX}{os.getpid()}-{tag}{path.name}"


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _write_failed(path, e):
    reason = e.strerror or str(e) if isinstance(e, OSError) else str(e)
    return OutputError(f"could not write {path} ({reason}); nothing was written there and any previous "
                       f"{path.name} is unchanged. Free space or fix the permissions, or write elsewhere.")


@contextlib.contextmanager
def replacing_file(path):
    """Yields a temporary path beside `path` (same suffix); renames it over `path` when the block succeeds.

    On any failure the temporary is removed and `path` keeps its previous
    content (or stays absent); an `OSError` becomes one `OutputError` line
    naming `path`.
    """
    path = pathlib.Path(path)
    tmp = _tmp_beside(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        yield tmp
        if not tmp.is_file():
            raise OutputError(f"writing {path} produced no file; nothing was written there.")
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as e:
        raise _write_failed(path, e) from None
    finally:
        _remove(tmp)


def is_run_folder(path):
    """The marker that makes `path` a kgen run folder (e.g. "last.keras"), or None."""
    path = pathlib.Path(path)
    for name in RUN_FOLDER_MARKERS:
        if (path / name).exists():
            return name
    return None


def check_folder_target(path, overwrite=False, what="export"):
    """Raises `UsageError` unless `path` may receive a folder output.

    A missing or empty folder may; a non-empty one only with `overwrite`, and
    only when it holds a previous export (SavedModel members, `.onnx` files):
    kgen deletes no other files. A kgen run folder never may: an export there
    would make it unusable.
    """
    path = pathlib.Path(path)
    if not path.is_dir():
        return
    marker = is_run_folder(path)
    if marker:
        raise UsageError(f"{path} is a kgen run folder (it holds {marker}); writing the {what} there would make "
                         f"the run unusable. Pass another --out, e.g. {path / 'export'}.")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    shown = ", ".join(entries[:4]) + (f" (and {len(entries) - 4} more)" if len(entries) > 4 else "")
    if not overwrite:
        raise UsageError(f"{path} is not empty (it holds {shown}); writing the {what} there would mix with those files. "
                         "Pass --overwrite to replace the folder whole, or choose a new or empty folder.")
    foreign = [n for n in entries if n not in EXPORT_MEMBERS and not n.endswith(".onnx")]
    if foreign:
        raise UsageError(f"--overwrite replaces only a previous export, and {path} also holds "
                         f"{', '.join(foreign[:4])}; kgen deletes no other files. Choose a new or empty folder.")


@contextlib.contextmanager
def replacing_folder(path, overwrite=False, what="export"):
    """Yields an empty temporary folder beside `path`; puts it in place of `path` when the block succeeds.

    `path` is checked first (`check_folder_target`). A previous folder at
    `path` is replaced whole, never merged; on failure the temporary is
    removed and `path` is as it was.
    """
    path = pathlib.Path(path)
    check_folder_target(path, overwrite, what)
    tmp = _tmp_beside(path)
    old = _tmp_beside(path, "old-")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        tmp.mkdir()
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                fsync_path(f)
        if path.is_dir() and any(path.iterdir()):
            os.replace(path, old)  # the previous export steps aside whole, then goes
        elif path.is_dir():
            path.rmdir()
        os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as e:
        if old.exists() and not path.exists():  # put the previous export back
            os.replace(old, path)
        raise _write_failed(path, e) from None
    finally:
        _remove(tmp)
        _remove(old)
