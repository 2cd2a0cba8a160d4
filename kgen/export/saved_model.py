"""TensorFlow SavedModel export: one signature per endpoint."""

import keras

from kgen.export.common import tensor_specs


def write_saved_model(model, endpoints, path):
    """Writes `endpoints` of `model` as a SavedModel folder at `path`.

    Each endpoint becomes both a callable attribute (`loaded.decode(z)`) and a
    serving signature (`loaded.signatures["decode"]`) whose inputs are named
    after the endpoint's parameters and whose outputs are named `output_0`
    (one tensor) or after the keys of the dict the endpoint returns. The
    first endpoint is also the `serving_default` signature.

    Args:
        model: a built kgen model on the TensorFlow backend.
        endpoints: `{name: (fn, [(shape, dtype), ...])}` to export.
        path: the output folder.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, specs) in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=tensor_specs(fn, specs))
    archive.write_out(str(path), verbose=False)
