"""kgen: classic deep generative models for Keras 3.

    >>> import kgen
    >>> model = kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17)
    >>> model.compile(optimizer="adam")
    >>> _ = model.fit(kgen.load_dataset("digits").x, epochs=1, verbose=0)
    >>> model.sample(16, seed=0).shape
    (16, 8, 8, 1)

Importing `kgen` does not import Keras: the attributes below load on first
use, so `KERAS_BACKEND` (or `kgen --backend`) can still be chosen. Export
lives in the subpackage: `kgen.export.export(model, "saved_model", path)`.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "build_model": "kgen.api",
    "list_models": "kgen.api",
    "load_model": "kgen.checkpoint",
    "load_dataset": "kgen.data",
    "list_datasets": "kgen.data",
    "train": "kgen.training.trainer",
    "evaluate": "kgen.metrics",
    "KgenError": "kgen.errors",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kgen' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = sorted(_LAZY)
