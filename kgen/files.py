"""Durable file writes: the ground floor that checkpoints and exports share (standard library only)."""

import os

# Temporaries are `.tmp-<pid>-<name>` beside their target (checkpoints, exports, sample files), so a rename
# never crosses a file system and `kgen.checkpoint.clean_stale` can tell whose writer is gone.
TMP_PREFIX = ".tmp-"


def fsync_path(path):
    """fsync a file or a folder (a folder: so a rename inside it survives a crash); best effort."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
