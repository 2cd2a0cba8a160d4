"""Export a model's serving endpoints: SavedModel, LiteRT and ONNX.

kgen exports *endpoints*, not the training model: the `export_endpoints()`
of each model (`encode`, `decode`, `sample`, ... as the family allows), with
a dynamic batch dimension. Randomness comes in as inputs (noise, uniforms),
so the graphs hold no random ops and run the same in every runtime.

| format        | `out`        | what is written                                        |
|---------------|--------------|--------------------------------------------------------|
| `saved_model` | a folder     | one SavedModel, a signature per endpoint               |
| `litert`      | `NAME.tflite`| one file, a signature per `litert_endpoints` entry,    |
|               |              | TFLite builtin ops only (no Flex)                      |
| `onnx`        | a folder     | `<endpoint>.onnx` per endpoint (needs `kgen[onnx]`)    |

Inputs are named after the endpoint's parameters (`z`, `u`, `labels`);
outputs are `output_0`, or the keys of a dict output (`mean`, `logvar`).

Export traces TensorFlow graphs, so it runs on the TensorFlow backend; a
`.keras` trained on JAX or PyTorch reloads there (`kgen export` switches to
it by itself).

    >>> import tempfile, kgen
    >>> model = kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17)
    >>> kgen.export.export(model, "saved_model", tempfile.mkdtemp())["endpoints"]
    ['encode', 'decode', 'sample']
"""

import pathlib

from kgen.errors import UsageError
from kgen.export.common import FORMATS, ExportError, check_format, require_tensorflow, select_endpoints
from kgen.export.litert import tflite_op_names

__all__ = ["FORMATS", "ExportError", "export", "tflite_op_names"]


def export(model, fmt, out, endpoints=None):
    """Writes the serving endpoints of `model` in format `fmt` to `out`.

    Args:
        model: a built kgen model (e.g. from `kgen.load_model`).
        fmt: "saved_model", "litert" or "onnx".
        out: output folder ("saved_model", "onnx") or `.tflite` file ("litert").
        endpoints: names of the endpoints to export; default every endpoint
            ("saved_model", "onnx") or the model's `litert_endpoints`.

    Returns:
        `{"path": str, "format": fmt, "endpoints": [names]}`; "onnx" adds
        `"files"`, the `.onnx` file of each endpoint.

    Raises:
        UsageError: unknown format or endpoint, or an `out` that does not fit
            the format.
        BackendError: Keras does not run the TensorFlow backend.
        ExportError: an endpoint does not convert (LiteRT builtins, ONNX ops),
            or the ONNX extra is not installed.
    """
    check_format(fmt)
    require_tensorflow()
    out = pathlib.Path(out)
    _check_out(fmt, out)
    chosen = select_endpoints(model, endpoints, fmt)
    written = {"path": str(out), "format": fmt, "endpoints": list(chosen)}
    if fmt == "saved_model":
        from kgen.export.saved_model import write_saved_model

        write_saved_model(model, chosen, out)
    elif fmt == "litert":
        from kgen.export.litert import write_litert

        out.parent.mkdir(parents=True, exist_ok=True)
        write_litert(model, chosen, out)
    else:
        from kgen.export.onnx_files import write_onnx

        written["files"] = [str(p) for p in write_onnx(model, chosen, out)]
    return written


def _check_out(fmt, out):
    """Raises `UsageError` when `out` is not a folder ("saved_model", "onnx") or `.tflite` file."""
    if fmt == "litert":
        if out.suffix != ".tflite" or out.is_dir():
            raise UsageError(
                f"LiteRT export writes one .tflite file; pass an output path like model.tflite, not {out}."
            )
        return
    if out.is_file():
        raise UsageError(f"{fmt} export writes a folder and {out} is a file; pass a folder path.")
    if fmt == "onnx" and out.suffix == ".onnx":
        raise UsageError(
            f"ONNX export writes one .onnx file per endpoint into a folder; pass a folder path, not {out}."
        )
