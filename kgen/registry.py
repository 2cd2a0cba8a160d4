"""One decorator registers a model for `.keras` loading and for the CLI.

    @register_model("vae", family="latent", conditional=False)
    class VAE(GenerativeModel): ...

registers `VAE` with Keras' serialization under the `kgen>` package (so a
`.keras` file loads with `safe_mode=True`) and under the name `vae` for
`kgen.build_model`, `kgen list` and `kgen train --model`.
"""

import dataclasses

import keras

from kgen.errors import UsageError, did_you_mean

ALL_BACKENDS = ("tensorflow", "jax", "torch")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type
    family: str
    conditional: bool
    backends: tuple
    summary: str

    def as_dict(self):
        return {
            "name": self.name,
            "class": self.cls.__name__,
            "family": self.family,
            "conditional": self.conditional,
            "backends": list(self.backends),
            "summary": self.summary,
        }


_MODELS = {}


def register_model(name, *, family, conditional=False, backends=ALL_BACKENDS):
    """Class decorator: registers for serialization and for `build_model`."""

    def decorator(cls):
        cls = keras.saving.register_keras_serializable(package="kgen")(cls)
        doc = (cls.__doc__ or "").strip().splitlines()
        _MODELS[name] = ModelEntry(
            name=name,
            cls=cls,
            family=family,
            conditional=conditional,
            backends=tuple(backends),
            summary=doc[0] if doc else "",
        )
        cls.registered_name = name
        return cls

    return decorator


def register_layer(cls):
    """Registers a reusable layer for `.keras` loading."""
    return keras.saving.register_keras_serializable(package="kgen")(cls)


def _ensure_models_imported():
    import kgen.models  # noqa: F401  (registers every family)


def canonical_name(name):
    """The registered name for `name`, forgiving case, dashes and underscores.

    `pixelcnn`, `PixelCNN` and `pixel-cnn` all mean `pixel_cnn`;
    `gated_pixelcnn` means `gated_pixel_cnn`. Unknown names come back
    normalized but otherwise unchanged (`get_entry` then says what exists).
    """
    _ensure_models_imported()
    key = str(name).lower().replace("-", "_")
    if key in _MODELS:
        return key
    squashed = {k.replace("_", ""): k for k in _MODELS}
    return squashed.get(key.replace("_", ""), key)


def get_entry(name):
    key = canonical_name(name)
    if key not in _MODELS:
        raise UsageError(
            f'unknown model "{name}".{did_you_mean(key, _MODELS)} '
            f"Run `kgen list` to see the {len(_MODELS)} models."
        )
    return _MODELS[key]


def list_entries():
    _ensure_models_imported()
    return [_MODELS[k] for k in sorted(_MODELS)]
