"""Reusable Keras 3 layers written with `keras.ops` (they run on every backend)."""

from kgen.layers.masked import CausalConv2D, MaskedDense  # noqa: F401
