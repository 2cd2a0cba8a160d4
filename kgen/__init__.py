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

kgen's classes register with Keras' serialization as soon as both are
imported, in either order, so a `.keras` file saved from a user's script
(`model.save`, `keras.callbacks.ModelCheckpoint`) loads with plain
`keras.saving.load_model` once `kgen` is imported, as with keras-hub.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# From the source tree (a notebook, `python -c` or a script in the repository's root), `import kgen`
# finds this folder rather than the installed package, and the folders that install under kgen
# (`cli/`, `configs/`, `saved_models/` beside it) would be missing: make them kgen.cli, kgen.configs
# and kgen.saved_models here too, as an install does. An installed kgen has no pyproject.toml beside it.
_SOURCE_ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
if (_SOURCE_ROOT / "pyproject.toml").is_file() and (_SOURCE_ROOT / "configs" / "__init__.py").is_file():
    __path__.append(str(_SOURCE_ROOT))

__version__ = "0.1.0"

_LAZY = {
    "build_model": "kgen.api",
    "list_models": "kgen.api",
    "load_model": "kgen.checkpoint",
    "models_markdown": "kgen.api",
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


# === Registration with Keras, without choosing the backend ===


def _register_with_keras():
    """Imports every model, which registers each class for `.keras` loading."""
    try:
        importlib.import_module("kgen.models")
    except ImportError as e:  # never break the user's `import keras`
        warnings.warn(f"kgen could not register its models with Keras ({e}); "
                      "kgen.load_model still works once the import error is fixed.", stacklevel=2)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Runs `_register_with_keras` right after the first `import keras` finishes."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)  # once; the lookup below must not find this finder again
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            sys.modules.setdefault("keras", module)
            _register_with_keras()

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:  # Keras (and so the backend) is already chosen
    _register_with_keras()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
