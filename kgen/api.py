"""`build_model` and `list_models`: the registry seen from Python."""

from kgen import backend
from kgen.registry import get_entry, list_entries


def build_model(name, input_shape, **hparams):
    """Builds a registered model by name.

    Args:
        name: a registered model name (`kgen.list_models()`).
        input_shape: shape of one example, e.g. `(8, 8, 1)` or `(2,)`.
        **hparams: the model's own arguments (`num_levels`, `num_classes`,
            `latent_dim`, ...).

    Returns:
        A built, uncompiled `keras.Model`.
    """
    entry = get_entry(name)
    backend.require(entry.backends, f"{entry.cls.__name__} ({entry.name})")
    return entry.cls(input_shape=tuple(input_shape), **hparams)


def list_models():
    """One dict per registered model: name, class, family, conditional, backends."""
    return [e.as_dict() for e in list_entries()]
