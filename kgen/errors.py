"""Errors a person can act on.

Every error kgen raises on purpose is a `KgenError`: one line that says what
was wrong, what was expected and what to do. The CLI prints it without a
traceback and exits with `exit_code` (2 for usage errors, 1 for runtime
failures).
"""

import difflib


class KgenError(Exception):
    """Base class of kgen's user-facing errors."""

    exit_code = 1


class UsageError(KgenError, ValueError):
    """The user asked for something that does not exist or does not fit."""

    exit_code = 2


class DataError(KgenError, ValueError):
    """The data is not what the model or loader expects."""

    exit_code = 2


class ConfigError(UsageError):
    """A config file or `--set` override is wrong."""


class CheckpointError(KgenError):
    """A checkpoint is missing, of a refused format, or corrupted."""


class OutputError(KgenError):
    """An output could not be written (full disk, no permission); the previous one is unchanged."""


class OfflineError(KgenError):
    """A data set needs a download and the network is not reachable."""


class TrainingDiverged(KgenError):
    """A logged loss became NaN or Inf."""


class BackendError(KgenError):
    """The active Keras backend cannot run this model."""

    exit_code = 2


def did_you_mean(name, choices):
    """Returns ' Did you mean "x"?' for the closest choice, or ''."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f' Did you mean "{close[0]}"?' if close else ""
