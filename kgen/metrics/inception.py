"""The standard (Inception-v3) FID, when Inception weights are on this machine.

kgen never downloads Inception weights. Set `KGEN_INCEPTION_WEIGHTS` to a
local Keras Inception-v3 weights file without the top
(`inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`) and
`kgen evaluate` adds the standard FID: images resized to 299x299 (bilinear),
grey repeated to 3 channels, scaled to [-1, 1] as Inception expects, features
= the 2048-d global average pool. Without the variable the Inception FID is
skipped and the output says why.

Inception FIDs of 8x8 or 28x28 images upsampled to 299x299 are what papers
report for MNIST-like data only loosely; kgen's domain FID
(`kgen.metrics.features`) is the primary number here.
"""

import os
import pathlib

import numpy as np

ENV = "KGEN_INCEPTION_WEIGHTS"
SIZE = 299


def inception_status():
    """`(weights_path or None, reason)`: where the weights are, or why the Inception FID is skipped."""
    value = os.environ.get(ENV, "")
    if not value:
        return None, (
            f"skipped: {ENV} is not set (kgen does not download Inception-v3 weights); set it to a local "
            "inception_v3 'notop' .h5 weights file to add the standard FID"
        )
    path = pathlib.Path(value).expanduser()
    if not path.is_file():
        return None, f"skipped: {ENV}={value} does not exist; point it at a local inception_v3 'notop' .h5 file"
    return path, "ok"


def inception_inputs(images, size=SIZE):
    """Images `(N, H, W, C)` in [0, 1] -> `(N, size, size, 3)` float32 in [-1, 1].

    Bilinear resize (antialiased when shrinking); one channel is repeated to
    three, a fourth (alpha) channel is dropped.
    """
    import keras

    x = np.clip(np.asarray(images, "float32"), 0.0, 1.0)
    if x.ndim != 4:
        raise ValueError(f"expected images (N, H, W, C), got shape {x.shape}")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] == 4:
        x = x[..., :3]
    out = keras.ops.image.resize(x, (size, size), interpolation="bilinear", antialias=True)
    out = np.asarray(keras.ops.convert_to_numpy(out), "float32")
    return np.clip(out, 0.0, 1.0) * 2.0 - 1.0


class InceptionFeatures:
    """2048-d pooled Inception-v3 features from local weights (`KGEN_INCEPTION_WEIGHTS`)."""

    def __init__(self, weights_path):
        import keras

        self.model = keras.applications.InceptionV3(include_top=False, weights=str(weights_path),
                                                    input_shape=(SIZE, SIZE, 3), pooling="avg")

    def __call__(self, images, batch_size=32):
        outs = []
        for i in range(0, len(images), batch_size):
            outs.append(self.model.predict(inception_inputs(images[i : i + batch_size]), verbose=0))
        return np.concatenate(outs).astype("float64")
