"""What the image autoregressive models share (PixelCNN, gated PixelCNN, PixelRNN, multiscale PixelCNN).

`ImageAutoregressiveModel` holds the input scaling, the output head's
reshape to per-value logits, and the choice between a model's "cached" and
"naive" samplers; the functions below are the cache reads and writes of the
incremental samplers, each in a dynamic-update form (fast, in place under
XLA) and a portable form (masked selects, for LiteRT and ONNX export).
"""

import numpy as np
from keras import ops

from kgen.errors import UsageError
from kgen.layers.masked import CausalConv2D
from kgen.models.autoregressive.base import AutoregressiveModel

SAMPLERS = ("cached", "naive")


def check_image_model(model, name, kernel_sizes):
    if len(model.data_shape) != 3:
        raise UsageError(f"{name} models images (H, W, C); got input_shape {model.data_shape}.")
    if model.data_shape[-1] not in (1, 3):
        raise UsageError(f"{name} takes 1 (grey) or 3 (RGB) channels, got {model.data_shape[-1]}.")
    for k in kernel_sizes:
        if k < 1 or k % 2 == 0:
            raise UsageError(f"{name}: kernel sizes must be odd and >= 1, got {k}.")


def check_sampler(sampler):
    """`sampler` if it names one of SAMPLERS, else a UsageError."""
    if sampler not in SAMPLERS:
        raise UsageError(f'unknown sampler "{sampler}"; choose "cached" or "naive".')
    return sampler


def make_head(hidden_filters, outputs, channels, prefix="head"):
    """The per-pixel head: two mask-B 1x1 convolutions, `hidden_filters` then `outputs` channels."""
    return [
        CausalConv2D(hidden_filters, (1, 1), 0, "B", channels, name=f"{prefix}_hidden"),
        CausalConv2D(outputs, (1, 1), 0, "B", channels, name=f"{prefix}_out"),
    ]


def pixel_position(t, width, channels):
    """Raster position t -> (row, column, channel)."""
    return t // (width * channels), (t // channels) % width, t % channels


def read_patch(cache, row, col, layer):
    """The (batch, kh, kw, in) input patch of `layer` at (row, col) from a cache padded by its own margins."""
    n = ops.shape(cache)[0]
    kh, kw = layer.kernel_size
    return ops.slice(cache, [0, row, col, 0], [n, kh, kw, ops.shape(cache)[-1]])


def update_block(cache, start, value, portable=False):
    """cache with the block at `start` (dynamic indices, batch start 0) replaced by `value`.

    `portable=False` is a dynamic update slice (in place under XLA). The
    portable form selects with a 0/1 mask of the block instead: the same
    values, in ops that both LiteRT builtins and ONNX have (the exported
    samplers use it). `value` must broadcast against the cache: each of its
    axes is 1 or the cache's size.
    """
    if not portable:
        return ops.slice_update(cache, start, value)
    mask = None
    rank = len(cache.shape)
    for axis in range(1, rank):
        size = value.shape[axis]
        if size == cache.shape[axis]:
            continue
        index = ops.arange(cache.shape[axis], dtype="int32")
        inside = ops.logical_and(index >= start[axis], index < start[axis] + size)
        inside = ops.reshape(inside, [1] * axis + [-1] + [1] * (rank - axis - 1))
        mask = inside if mask is None else ops.logical_and(mask, inside)
    return value + ops.zeros_like(cache) if mask is None else ops.where(mask, value, cache)


def write_pixel(cache, row, col, value, portable=False):
    """cache[:, row, col, :] = value (batch, channels)."""
    return update_block(cache, [0, row, col, 0], value[:, None, None, :], portable)


class ImageAutoregressiveModel(AutoregressiveModel):
    """An autoregressive model of (H, W, C) images with a per-pixel head.

    Subclasses set `self.channels`, `self.head` (two 1x1 layers, hidden then
    `out_per_dim * C` outputs) and, for `_sample`'s choice, `self.sampler`
    with `_sample_cached(u, labels, temperature, portable=False)` and
    `_sample_naive`.
    """

    @property
    def has_cached_sampler(self):
        """Whether this model has an incremental sampler (`_sample_cached`) beside the naive one."""
        return hasattr(self, "_sample_cached")

    @staticmethod
    def scale(x):
        """Network input: values in [0, 1] -> [-1, 1]."""
        return 2.0 * ops.cast(x, "float32") - 1.0

    def to_logits(self, out):
        """Head output (..., P * C), feature p * C + c -> logits (..., C, P)."""
        shape = tuple(ops.shape(out)[:-1])
        out = ops.reshape(out, shape + (self.out_per_dim, self.channels))
        return ops.moveaxis(out, -1, -2)

    def head_logits(self, h, head=None):
        """A two-layer 1x1 head (default `self.head`) on the hidden stream (..., F) -> logits (..., C, P)."""
        head = self.head if head is None else head
        return self.to_logits(head[1](ops.relu(head[0](ops.relu(h)))))

    def sample_from_noise(self, u, labels=None, temperature=1.0, sampler=None):
        """Samples from one uniform per value, u (n, H, W, C).

        `sampler` ("cached" or "naive": the same samples) is for the models
        with both (PixelCNN, gated PixelCNN); the others have one sampler.
        """
        if not self.has_cached_sampler:
            if sampler is not None:
                raise UsageError(f"{type(self).__name__} has one sampler; leave `sampler` unset.")
            return super().sample_from_noise(u, labels, temperature)
        sampler = check_sampler(sampler or self.sampler)
        u = np.asarray(u, "float32")
        labels = self.sampling_labels(len(u), labels)
        temp = np.full((len(u),), temperature, "float32")
        fn = self._sample_cached if sampler == "cached" else self._sample_naive
        # XLA on TensorFlow makes the cached samplers' cache writes in place and fuses their small
        # per-pixel ops (3-20x faster on a CPU); the naive loop of full convolutions is faster without it.
        return self.compiled_fn(("sample", sampler), fn, jit_compile=sampler == "cached")(u, labels, temp)

    def sampling_labels(self, n, labels):
        """The labels `sample_from_noise` passes on: int32 (n,), zeros when None."""
        return np.zeros(n, "int32") if labels is None else np.asarray(labels, "int32")

    def _sample(self, u, labels, temperature):
        if getattr(self, "sampler", "naive") == "cached":
            return self._sample_cached(u, labels, temperature)
        return self._sample_naive(u, labels, temperature)

    def _export_sample(self, u, labels):
        if self.has_cached_sampler:
            return self._sample_cached(u, labels, None, portable=True)
        return super()._export_sample(u, labels)
