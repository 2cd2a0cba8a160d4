"""ONNX export through tf2onnx: one `.onnx` file per endpoint in a folder.

ONNX has no notion of several entry points in one model, so `decode`,
`sample`, ... each get their own file (`<out>/decode.onnx`), with the input
names of the endpoint's parameters, outputs named like the SavedModel
signature (`output_0`, or the keys of a dict output) and a dynamic batch
dimension.
"""

import pathlib

from kgen.export.common import ExportError, tensor_specs

OPSET = 17
INSTALL_HINT = 'pip install "kgen[onnx]"'


def require_tf2onnx():
    """Imports tf2onnx and onnx, or raises `ExportError` with the install hint."""
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as e:
        raise ExportError(f"ONNX export needs tf2onnx and onnx ({e}); install them with {INSTALL_HINT}.") from None


def write_onnx(model, endpoints, folder):
    """Converts each endpoint of `model` to `<folder>/<endpoint>.onnx`.

    Args:
        model: a built kgen model on the TensorFlow backend.
        endpoints: `{name: (fn, [(shape, dtype), ...])}` to convert.
        folder: the output folder (created if needed).

    Returns:
        The written file paths, in endpoint order.

    Raises:
        ExportError: tf2onnx is missing, or an endpoint uses ops ONNX lacks.
    """
    require_tf2onnx()
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    protos = {name: _convert(name, fn, specs) for name, (fn, specs) in endpoints.items()}
    paths = []
    for name, proto in protos.items():
        path = folder / f"{name}.onnx"
        path.write_bytes(proto.SerializeToString())
        paths.append(path)
    return paths


def _convert(name, fn, specs):
    import onnx
    import tensorflow as tf
    import tf2onnx

    def named_outputs(*args):
        out = fn(*args)
        return out if isinstance(out, dict) else {"output_0": out}

    try:
        proto, _ = tf2onnx.convert.from_function(
            tf.function(named_outputs), input_signature=tensor_specs(fn, specs), opset=OPSET
        )
    except (ValueError, TypeError, NotImplementedError, KeyError) as e:  # tf2onnx's failures on graphs it cannot map
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ExportError(f'ONNX export: endpoint "{name}" does not convert (tf2onnx: {reason}); '
                          "export as saved_model instead.") from None
    # tf2onnx leaves ops it cannot convert in the graph (and only logs them);
    # the checker finds them, as onnxruntime would at load time.
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        reason = str(e).strip().splitlines()[0]
        raise ExportError(f'ONNX export: endpoint "{name}" does not convert ({reason}); '
                          "export as saved_model instead.") from None
    return proto
