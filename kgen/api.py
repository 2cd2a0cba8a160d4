"""The facade over the registry: lookups that need every model, and `build_model`.

`kgen.registry` is a passive table that the model modules fill as they are
imported; this module sits above the models, imports them all, then answers.
"""

from kgen import backend, models, registry  # noqa: F401  (importing the models fills the registry)
from kgen.errors import UsageError, did_you_mean


def canonical_name(name):
    """The registered name for `name`, forgiving case, dashes and underscores.

    `pixelcnn`, `PixelCNN` and `pixel-cnn` all mean `pixel_cnn`;
    `gated_pixelcnn` means `gated_pixel_cnn`. Unknown names come back
    normalized but otherwise unchanged (`get_entry` then says what exists).
    """
    key = str(name).lower().replace("-", "_")
    if key in registry.MODELS:
        return key
    squashed = {k.replace("_", ""): k for k in registry.MODELS}
    return squashed.get(key.replace("_", ""), key)


def get_entry(name):
    """The `ModelEntry` of a registered model; a `UsageError` with a did-you-mean otherwise."""
    key = canonical_name(name)
    if key not in registry.MODELS:
        raise UsageError(
            f'unknown model "{name}".{did_you_mean(key, registry.MODELS)} '
            f"Run `kgen list` to see the {len(registry.MODELS)} models."
        )
    return registry.MODELS[key]


def list_entries():
    """Every registered `ModelEntry`, sorted by name."""
    return [registry.MODELS[k] for k in sorted(registry.MODELS)]


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


# The README's order: the taxonomy's explicit-density branches, then the implicit ones.
FAMILY_ORDER = ("autoregressive", "flow", "latent", "energy", "adversarial")


def models_markdown():
    """The README's model table, printed from the registry (`kgen list --markdown`)."""
    def key(e):
        rank = FAMILY_ORDER.index(e.family) if e.family in FAMILY_ORDER else len(FAMILY_ORDER)
        return rank, e.family, e.name

    lines = ["| name | family | what | backends |", "| --- | --- | --- | --- |"]
    for e in sorted(list_entries(), key=key):
        lines.append(f"| `{e.name}` | {e.family} | {e.summary} | {', '.join(e.backends)} |")
    return "\n".join(lines)


__all__ = ["build_model", "canonical_name", "get_entry", "list_entries", "list_models", "models_markdown"]
