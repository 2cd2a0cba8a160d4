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

Every output is written whole (`kgen.export.outputs`): into a temporary
beside `out`, renamed into place only once complete, so a failed export
leaves nothing half-written and any previous export as it was. A folder
`out` must be new or empty; `overwrite=True` (`kgen export --overwrite`)
replaces a previous export there whole, never merging with it. A kgen run
folder is always refused.

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
from kgen.export.outputs import OutputError, check_folder_target, replacing_file, replacing_folder

__all__ = ["FORMATS", "ExportError", "OutputError", "export", "tflite_op_names"]


def export(model, fmt, out, endpoints=None, overwrite=False):
    """Writes the serving endpoints of `model` in format `fmt` to `out`.

    Args:
        model: a built kgen model (e.g. from `kgen.load_model`).
        fmt: "saved_model", "litert" or "onnx".
        out: output folder ("saved_model", "onnx") or `.tflite` file ("litert").
        endpoints: names of the endpoints to export; default every endpoint
            ("saved_model", "onnx") or the model's `litert_endpoints`.
        overwrite: replace a previous export in a non-empty `out` folder
            (refused otherwise); a `.tflite` file is always replaced whole.

    Returns:
        `{"path": str, "format": fmt, "endpoints": [names]}`; "onnx" adds
        `"files"`, the `.onnx` file of each endpoint.

    Raises:
        UsageError: unknown format or endpoint, or an `out` that does not fit
            the format, a non-empty folder without `overwrite`, or a kgen run folder.
        OutputError: the output could not be written (full disk, permissions);
            nothing was written at `out`.
        BackendError: Keras does not run the TensorFlow backend.
        ExportError: an endpoint does not convert (LiteRT builtins, ONNX ops),
            or the ONNX extra is not installed.
    """
    check_format(fmt)
    require_tensorflow()
    out = pathlib.Path(out)
    _check_out(fmt, out, overwrite)
    chosen = select_endpoints(model, endpoints, fmt)
    written = {"path": str(out), "format": fmt, "endpoints": list(chosen)}
    if fmt == "litert":
        from kgen.export.litert import write_litert

        with replacing_file(out) as tmp:
            write_litert(model, chosen, tmp)
        return written
    with replacing_folder(out, overwrite, what=f"{fmt} export") as tmp:
        if fmt == "saved_model":
            from kgen.export.saved_model import write_saved_model

            write_saved_model(model, chosen, tmp)
        else:
            from kgen.export.onnx_files import write_onnx

            files = write_onnx(model, chosen, tmp)
            written["files"] = [str(out / p.name) for p in files]
    return written


def _check_out(fmt, out, overwrite=False):
    """Raises `UsageError` when `out` is not a folder ("saved_model", "onnx") or `.tflite` file, or may not be written."""
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
    check_folder_target(out, overwrite, what=f"{fmt} export")
