"""The registry: a passive table of models, filled by one decorator.

    @register_model("vae", family="latent", conditional=True,
                    tiny=dict(latent_dim=2, hidden_units=(16,)))
    class VAE(GenerativeModel): ...

registers `VAE` with Keras' serialization under the `kgen>` package (so a
`.keras` file loads with `safe_mode=True`) and records it under the name
`vae`. The table knows only what has been imported; the lookups that need
every model (`kgen.api.get_entry`, `list_entries`, `build_model`) import the
models first. This module imports nothing of kgen's but the errors, so every
model can import it without a circle.
"""

import dataclasses

import keras

ALL_BACKENDS = ("tensorflow", "jax", "torch")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """What the registry knows of one model.

    Attributes:
        name: the registered name (`kgen train --model NAME`): the model's
            file, recipe folder and test file share it.
        cls: the `GenerativeModel` subclass.
        family: "autoregressive", "flow", "latent", "adversarial", ...
        conditional: True when the model has a version conditional on labels.
        backends: the Keras backends it runs on.
        summary: the first line of the class docstring.
        tiny: hyper-parameters of a tiny instance on the bundled 8x8 digits
            (`tiny_dataset`): what the conformance test over the registry builds.
        tiny_dataset: the data set the tiny instance is built for.
        tiny_data: data-config settings of the tiny instance (e.g. a short `seq_len` for
            sequence models, whose compiled steps unroll over the sequence).
    """

    name: str
    cls: type
    family: str
    conditional: bool
    backends: tuple
    summary: str
    tiny: dict
    tiny_dataset: str = "digits"
    tiny_data: dict = dataclasses.field(default_factory=dict)

    def as_dict(self):
        return {
            "name": self.name,
            "class": self.cls.__name__,
            "family": self.family,
            "conditional": self.conditional,
            "backends": list(self.backends),
            "summary": self.summary,
        }


MODELS = {}  # name -> ModelEntry, in import order


def register_model(name, *, family, conditional=False, backends=ALL_BACKENDS, tiny=None, tiny_dataset="digits",
                   tiny_data=None):
    """Class decorator: registers for `.keras` serialization and in the model table.

    Args:
        name: the registered name.
        family: the model's family (see `ModelEntry`).
        conditional: the model has a label-conditional version.
        backends: the Keras backends the model runs on.
        tiny: the hyper-parameters of a tiny instance (a few hundred to a few
            thousand weights) for the conformance test; required.
        tiny_dataset: the data set that tiny instance is built for.
        tiny_data: data-config settings of that tiny instance (default: the recipe's).
    """
    if tiny is None:
        raise TypeError(f"register_model({name!r}): declare `tiny=` hyper-parameters for the conformance test.")

    def decorator(cls):
        cls = keras.saving.register_keras_serializable(package="kgen")(cls)
        doc = (cls.__doc__ or "").strip().splitlines()
        MODELS[name] = ModelEntry(
            name=name,
            cls=cls,
            family=family,
            conditional=conditional,
            backends=tuple(backends),
            summary=doc[0] if doc else "",
            tiny=dict(tiny),
            tiny_dataset=tiny_dataset,
            tiny_data=dict(tiny_data or {}),
        )
        cls.registered_name = name
        return cls

    return decorator


def register_layer(cls):
    """Registers a reusable layer for `.keras` loading."""
    return keras.saving.register_keras_serializable(package="kgen")(cls)
