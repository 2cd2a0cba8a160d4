"""Durable file writes: the ground floor that checkpoints and exports share (standard library only)."""

import os


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
