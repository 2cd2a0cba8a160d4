"""Masked layers for autoregressive models: masked dense (MADE) and causal convolutions (PixelCNN).

`MaskedDense` multiplies its kernel by a 0/1 connectivity matrix given at call
time, so one set of weights serves many masks (MADE's order and connectivity
resampling). `CausalConv2D` is a convolution whose output at pixel (i, j)
sees only the pixels before (i, j) in raster order and, at (i, j) itself, only
the earlier colour channels (the R -> G -> B masking of PixelCNN).

#### References

- Germain, M., Gregor, K., Murray, I. & Larochelle, H. MADE: Masked
  Autoencoder for Distribution Estimation. ICML 2015.
- van den Oord, A., Kalchbrenner, N. & Kavukcuoglu, K. Pixel Recurrent
  Neural Networks. ICML 2016.
"""

import keras
import numpy as np
from keras import layers, ops

from kgen.registry import register_layer

MASK_TYPES = ("A", "B", "none", "above")


# === MADE connectivity ===


def made_degrees(num_dims, hidden_units, rng=None, resample_order=True):
    """Degrees of MADE's units for one mask.

    Input (and output) degrees are the positions 1..D of each dimension in
    the autoregressive order (a random permutation when `resample_order`,
    else the natural order); each hidden unit gets a degree drawn uniformly
    from [min degree of the layer below, D - 1] (Germain et al. 2015, eq. 12).
    With `rng` None the degrees are fixed: the natural order, and hidden
    degrees cycling through 1..D-1 so every degree is represented (the flows'
    conditioners, whose connectivity never changes).

    Returns:
        A list of int arrays: input degrees (D,), then one array per hidden layer.
    """
    if rng is None:
        top = max(1, num_dims - 1)
        return [np.arange(1, num_dims + 1).astype("int32")] + [
            (np.arange(units) % top + 1).astype("int32") for units in hidden_units]
    order = rng.permutation(num_dims) + 1 if resample_order else np.arange(1, num_dims + 1)
    degrees = [order.astype("int32")]
    for units in hidden_units:
        low = min(int(degrees[-1].min()), num_dims - 1)
        degrees.append(rng.integers(low, num_dims, size=units).astype("int32"))
    return degrees


def made_masks(degrees, out_per_dim=1):
    """0/1 masks (in, out) for MADE from `made_degrees`; the last maps to D * out_per_dim outputs.

    A hidden unit of degree k sees inputs of degree <= k; an output of
    dimension d (degree m_d) sees hidden units of degree < m_d, so output d
    depends only on the dimensions before d in the order.
    """
    masks = []
    for below, above in zip(degrees[:-1], degrees[1:]):
        masks.append((above[None, :] >= below[:, None]).astype("float32"))
    out_degrees = np.repeat(degrees[0], out_per_dim)
    masks.append((out_degrees[None, :] > degrees[-1][:, None]).astype("float32"))
    return masks


@register_layer
class MaskedDense(layers.Layer):
    """A dense layer whose kernel is multiplied by a connectivity mask.

    `call(x, connectivity)` computes `x @ (kernel * connectivity) + bias`.
    The connectivity is one mask (in, out); or a stack of K masks
    (K, in, out) with inputs (K, batch, in), evaluating K masked networks at
    once (MADE's test-time ensemble); or one mask per example (batch, in,
    out) with inputs (batch, in) (sampling from the ensemble).

    Args:
        units: output size.
        use_bias: whether to add a bias.
        kernel_initializer: initializer of the (in, units) kernel.

    Example:

    >>> import numpy as np
    >>> layer = MaskedDense(3)
    >>> mask = np.tril(np.ones((3, 3), "float32"), -1)
    >>> tuple(layer(np.ones((2, 3), "float32"), mask).shape)
    (2, 3)
    """

    def __init__(self, units, use_bias=True, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(int(input_shape[-1]), self.units), initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros") if self.use_bias else None
        self.built = True

    def call(self, inputs, connectivity):
        connectivity = ops.cast(connectivity, self.kernel.dtype)
        if len(connectivity.shape) == 3 and len(inputs.shape) == 3:  # K masks, inputs (K, batch, in)
            out = ops.einsum("kbi,kio->kbo", inputs, self.kernel[None] * connectivity)
        elif len(connectivity.shape) == 3:  # one mask per example
            out = ops.einsum("bi,bio->bo", inputs, self.kernel[None] * connectivity)
        else:
            out = ops.matmul(inputs, self.kernel * connectivity)
        if self.use_bias:
            out = out + self.bias
        return out

    def compute_output_shape(self, input_shape, connectivity_shape=None):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


# === Causal convolutions ===


def channel_group_mask(in_channels, out_channels, color_channels, mask_type):
    """(in, out) mask of the centre tap: which channel groups see which.

    Feature f belongs to colour group `f % color_channels` (the image's own
    channels are groups 0..C-1: R, G, B). Type "A" lets group g see groups
    < g only (the first layer: a pixel's own colour is hidden); type "B"
    lets it see groups <= g (later layers).
    """
    gi = np.arange(in_channels) % color_channels
    go = np.arange(out_channels) % color_channels
    if mask_type == "A":
        return (gi[:, None] < go[None, :]).astype("float32")
    return (gi[:, None] <= go[None, :]).astype("float32")


def causal_kernel_mask(kernel_size, left, in_channels, out_channels, color_channels, mask_type):
    """The (kh, kw, in, out) mask of `CausalConv2D`.

    The kernel covers rows i-kh+1 .. i and columns j-left .. j+kw-1-left.
    Rows above the current one are fully visible; on the current row the
    columns left of j are visible, the centre tap follows the channel-group
    mask and the columns right of j are hidden. Type "none" masks nothing
    (the vertical stack of the gated PixelCNN). Type "above" hides the whole
    current row: only the rows strictly above (a shift down one row folded
    into the convolution).
    """
    kh, kw = kernel_size
    mask = np.ones((kh, kw, in_channels, out_channels), "float32")
    if mask_type == "none":
        return mask
    if mask_type == "above":
        mask[kh - 1] = 0.0
        return mask
    mask[kh - 1, left + 1 :] = 0.0
    mask[kh - 1, left] = channel_group_mask(in_channels, out_channels, color_channels, mask_type)
    return mask


@register_layer
class CausalConv2D(layers.Layer):
    """A 2-D convolution that sees only earlier pixels (and earlier colour channels).

    The kernel is stored cropped to its causal part: `kernel_size = (kh, kw)`
    rows i-kh+1 .. i and columns j-left .. j-left+kw-1. A PixelCNN k x k mask
    is `kernel_size=(k // 2 + 1, k), left=k // 2`; a horizontal stack is
    `(1, k // 2 + 1), left=k // 2`; a vertical stack is `(k // 2 + 1, k)`
    with `mask_type="none"`. The output has the input's height and width
    (zero padding above, left and right).

    `call(x)` is the whole image; `pixel(patch)` is the output at one pixel
    from the (kh, kw) input patch around it (the incremental samplers).

    Args:
        filters: output channels.
        kernel_size: (kh, kw) of the causal part.
        left: columns left of the current pixel inside the kernel.
        mask_type: "A" (the first layer: a pixel's own colour group is
            hidden), "B" (later layers), "none", or "above" (only the rows
            above the current one).
        color_channels: colour groups C (1 grey, 3 RGB); feature f belongs
            to group f % C.
        use_bias: whether to add a bias.
        kernel_initializer: initializer of the kernel.
    """

    def __init__(
        self,
        filters,
        kernel_size=(1, 1),
        left=0,
        mask_type="B",
        color_channels=1,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mask_type not in MASK_TYPES:
            raise ValueError(f'mask_type must be one of {", ".join(MASK_TYPES)}, got "{mask_type}".')
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.left = int(left)
        if not 0 <= self.left < self.kernel_size[1]:
            raise ValueError(f"left must lie in 0..{self.kernel_size[1] - 1}, got {left}.")
        self.mask_type = mask_type
        self.color_channels = int(color_channels)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    @property
    def right(self):
        return self.kernel_size[1] - 1 - self.left

    @property
    def top(self):
        return self.kernel_size[0] - 1

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=self.kernel_size + (in_channels, self.filters), initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None
        self.mask = causal_kernel_mask(
            self.kernel_size, self.left, in_channels, self.filters, self.color_channels, self.mask_type
        )
        self.built = True

    def masked_kernel(self):
        if self.mask_type == "none" or self.mask.all():
            return self.kernel
        return self.kernel * ops.convert_to_tensor(self.mask, dtype=self.kernel.dtype)

    def call(self, inputs):
        x = inputs
        if self.top or self.left or self.right:
            x = ops.pad(x, [[0, 0], [self.top, 0], [self.left, self.right], [0, 0]])
        return self.valid(x)

    def valid(self, padded):
        """The convolution of an already padded input, without padding (a slab of rows)."""
        if self.kernel_size == (1, 1):
            out = ops.matmul(padded, self.masked_kernel()[0, 0])
        else:
            out = ops.conv(padded, self.masked_kernel(), strides=1, padding="valid")
        if self.use_bias:
            out = out + self.bias
        return out

    def pixel(self, patch):
        """Output at one pixel, (batch, filters), from its (batch, kh, kw, in) input patch."""
        if self.kernel_size == (1, 1):
            out = ops.matmul(patch[:, 0, 0], self.masked_kernel()[0, 0])
        else:
            out = ops.einsum("bhwi,hwio->bo", patch, self.masked_kernel())
        if self.use_bias:
            out = out + self.bias
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": list(self.kernel_size),
                "left": self.left,
                "mask_type": self.mask_type,
                "color_channels": self.color_channels,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
