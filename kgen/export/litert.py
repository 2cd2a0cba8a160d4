"""LiteRT (TFLite) export: one multi-signature `.tflite` file, builtin ops only.

A graph that needs Flex (select TensorFlow) ops converts fine with them
allowed and then fails at run time on a plain LiteRT runtime, so kgen only
allows the builtin op set and reports which endpoint needs more.
"""

import pathlib
import re
import tempfile

from kgen.export.common import ExportError

_FAILED_ENDPOINT = re.compile(r"failed while converting: '([^']+)'")
# "TF Select ops: X, Y" (Flex) or "Custom ops: X" (no kernel anywhere).
_MISSING_OPS = re.compile(r"(?:TF Select|Flex|Custom) ops: ([^\n]+)")


def write_litert(model, endpoints, path):
    """Converts `endpoints` of `model` to one `.tflite` file at `path`.

    Each endpoint is a signature of the file (`interpreter.get_signature_runner
    ("decode")`), with the inputs and outputs of the SavedModel signature and
    a dynamic batch dimension.

    Args:
        model: a built kgen model on the TensorFlow backend.
        endpoints: `{name: (fn, [(shape, dtype), ...])}` to convert.
        path: the `.tflite` file to write.

    Raises:
        ExportError: an endpoint needs ops outside the TFLite builtins.
    """
    with tempfile.TemporaryDirectory(prefix="kgen-litert-") as tmp:
        from kgen.export.saved_model import write_saved_model  # imports Keras (see kgen.export.common)

        write_saved_model(model, endpoints, tmp)
        flatbuffer = _convert(tmp, list(endpoints))
    _check_builtin_only(flatbuffer, list(endpoints))
    path = pathlib.Path(path)
    path.write_bytes(flatbuffer)


def _convert(saved_model_dir, names):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=names)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as e:  # noqa: BLE001 (ConverterError, and whatever MLIR raises)
        raise ExportError(_conversion_message(str(e), names)) from None


def _conversion_message(text, names):
    """One line from the converter's long MLIR report."""
    failed = sorted(set(_FAILED_ENDPOINT.findall(text))) or names
    ops = sorted({op.strip() for found in _MISSING_OPS.findall(text) for op in found.split(",")})
    which = ", ".join(f'"{n}"' for n in failed)
    if ops:
        return (
            f"LiteRT export: endpoint {which} needs ops that are not TFLite builtins ({', '.join(ops)}); "
            "kgen writes no Flex ops (they fail on a plain LiteRT runtime). Export as saved_model or onnx instead."
        )
    first = next((line.strip() for line in text.splitlines() if "error" in line.lower()), text.strip())
    return f"LiteRT conversion of endpoint {which} failed: {first[:300]}"


def _check_builtin_only(flatbuffer, names):
    custom = [op for op in tflite_op_names(flatbuffer) if not op.isupper()]
    if custom:
        raise ExportError(
            f"LiteRT export of {', '.join(names)} produced non-builtin ops ({', '.join(custom)}); "
            "export as saved_model or onnx instead."
        )


def tflite_op_names(model):
    """The sorted op names used anywhere in a `.tflite` model, every signature included.

    Builtin ops have their upper-case names (`FULLY_CONNECTED`); custom and
    Flex ops their custom code (`FlexErfinv`). The interpreter's
    `_get_ops_details()` sees only the first subgraph, so this reads the
    flatbuffer itself.

    Args:
        model: the `.tflite` file's path or bytes.
    """
    schema = _schema()
    data = model if isinstance(model, (bytes, bytearray)) else pathlib.Path(model).read_bytes()
    root = schema.Model.GetRootAs(data, 0)
    codes = [root.OperatorCodes(i) for i in range(root.OperatorCodesLength())]
    used = set()
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            used.add(subgraph.Operators(o).OpcodeIndex())
    return sorted({_op_name(schema, codes[i]) for i in used})


def _op_name(schema, code):
    if code.CustomCode():
        return code.CustomCode().decode()
    # Codes above 127 live in BuiltinCode; DeprecatedBuiltinCode caps at 127.
    value = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(value, f"BUILTIN_{value}")


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:  # the LiteRT runtime is optional; TensorFlow ships the same schema
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated
