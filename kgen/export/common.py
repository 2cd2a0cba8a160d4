"""What every export format shares: the error type, the backend check and the endpoint specs."""

import inspect

from kgen.errors import BackendError, KgenError, UsageError, did_you_mean

FORMATS = ("saved_model", "litert", "onnx")


class ExportError(KgenError):
    """A model's endpoints cannot be written in the asked format."""


def require_tensorflow():
    """Raises `BackendError` unless Keras runs the TensorFlow backend.

    Export traces the endpoints into TensorFlow graphs. A `.keras` file
    trained on JAX or PyTorch reloads under TensorFlow, so the fix is always
    to run the export in a TensorFlow process.
    """
    from kgen import backend  # imports Keras: not at module level, so the CLI can read FORMATS first

    if backend.name() != "tensorflow":
        raise BackendError(
            f"export runs on the tensorflow backend, not on {backend.name()}: use `kgen export` "
            "(it switches to tensorflow) or set KERAS_BACKEND=tensorflow before importing keras."
        )


def check_format(fmt):
    """Raises `UsageError` for a format kgen does not write."""
    if fmt not in FORMATS:
        raise UsageError(
            f'unknown export format "{fmt}"; choose one of {", ".join(FORMATS)}.{did_you_mean(fmt, FORMATS)}'
        )


def select_endpoints(model, names, fmt):
    """The `{name: (fn, specs)}` endpoints of `model` to export, in the model's order.

    Args:
        model: a built kgen model.
        names: endpoint names, or None for the format's default (every
            endpoint; for "litert" the model's `litert_endpoints`).
        fmt: the export format, for the messages.

    Raises:
        ExportError: the model has no endpoint to export in this format.
        UsageError: a name in `names` is not an endpoint of the model.
    """
    available = model.export_endpoints()
    model_name = type(model).__name__
    if not available:
        raise ExportError(f"{model_name} defines no export endpoints; nothing to export.")
    if names is None:
        names = list(model.litert_endpoints) if fmt == "litert" else list(available)
        if not names:
            raise ExportError(
                f"{model_name} has no endpoint that converts to LiteRT with builtin ops; "
                "export it as saved_model or onnx instead."
            )
    for name in names:
        if name not in available:
            raise UsageError(
                f'{model_name} has no export endpoint "{name}"; it has {", ".join(available)}.'
                f"{did_you_mean(name, available)}"
            )
    return {name: available[name] for name in available if name in names}


def input_names(fn, count):
    """Names for the `count` inputs of an endpoint, from its parameter names.

    `def sample(z, u, *labels)` with 3 inputs gives `["z", "u", "labels"]`;
    inputs past the named parameters take the `*args` name (`labels_1`, ...
    from the second on), or `input_<i>` when there is none.
    """
    params = list(inspect.signature(fn).parameters.values())
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = next((p.name for p in params if p.kind == p.VAR_POSITIONAL), None)
    names = positional[:count]
    for i in range(count - len(names)):
        if varargs is None:
            names.append(f"input_{len(names)}")
        else:
            names.append(varargs if i == 0 else f"{varargs}_{i}")
    return names


def tensor_specs(fn, specs):
    """`tf.TensorSpec`s (batch dimension None) named after `fn`'s parameters."""
    import tensorflow as tf

    names = input_names(fn, len(specs))
    return [tf.TensorSpec(shape, dtype, name=name) for (shape, dtype), name in zip(specs, names)]
