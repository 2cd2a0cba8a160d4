"""Multiscale parallel PixelCNN (Reed et al. 2017): O(log N) sampling steps.

The image is generated coarse to fine. A PixelCNN models the base image
x_0 = x[::2^S, ::2^S]; each of the S upscaling stages doubles the
resolution by adding the three other pixels of every 2x2 block in three
groups,

    p(x) = p(x_0) prod_{s=1..S} prod_{g=1..3} prod_{i in G_{s,g}} p(x_i | x_0, G_{1,1}, ..., G_{s,g-1}),

where group 1 holds the pixels at offset (0, 1) of each block, group 2 those
at (1, 0) and group 3 those at (1, 1). The pixels of a group (and their
colour channels) are independent given every earlier group, so a group is
one pass of a convolutional network (a residual stack of unmasked 3x3
convolutions reading the known pixels and a known/unknown mask). The
likelihood stays exact (every factor is normalized); sampling takes
H0 * W0 * C steps for the base and then 3 S parallel steps, instead of
H * W * C.

Each factor is a Bernoulli (binary data) or a softmax over the levels, as
in `PixelCNN`.

#### References

- Reed, S. et al. Parallel Multiscale Autoregressive Density Estimation.
  ICML 2017.
- van den Oord, A., Kalchbrenner, N. & Kavukcuoglu, K. Pixel Recurrent
  Neural Networks. ICML 2016.
"""

import numpy as np
from keras import layers, ops

from kgen.errors import UsageError
from kgen.layers.masked import CausalConv2D
from kgen.models.autoregressive.image import ImageAutoregressiveModel, check_image_model, make_head
from kgen.registry import register_model

OFFSETS = ((0, 1), (1, 0), (1, 1))  # the three groups of each 2x2 block, in order


def group_masks(height, width):
    """(known before group g, group g) 0/1 masks of shape (1, H, W, 1) at one resolution, g = 0, 1, 2."""
    out = []
    known = np.zeros((height, width), "float32")
    known[0::2, 0::2] = 1.0
    for di, dj in OFFSETS:
        group = np.zeros((height, width), "float32")
        group[di::2, dj::2] = 1.0
        out.append((known[None, :, :, None].copy(), group[None, :, :, None]))
        known = known + group
    return out


def upsample_zeros(x, factor):
    """(B, h, w, ...) -> (B, h * f, w * f, ...): x[i, j] placed at (i * f, j * f), zeros elsewhere.

    Concatenations and reshapes of rank <= 4 only (they convert to LiteRT builtins).
    """
    if factor == 1:
        return x
    shape = tuple(ops.shape(x))
    n, h, w, rest = shape[0], shape[1], shape[2], tuple(shape[3:])
    k = int(np.prod(rest)) if rest else 1
    y = ops.reshape(x, (n, h, w, k))
    zeros = ops.zeros_like(y)
    y = ops.reshape(ops.concatenate([y] + [zeros] * (factor - 1), axis=-1), (n, h, w * factor, k))
    zeros = ops.zeros_like(y)
    y = ops.reshape(ops.concatenate([y] + [zeros] * (factor - 1), axis=2), (n, h * factor, w * factor, k))
    return ops.reshape(y, (n, h * factor, w * factor) + rest)


@register_model("multiscale_pixel_cnn", family="autoregressive",
                tiny=dict(filters=8, base_blocks=1, group_blocks=1))
class MultiscalePixelCNN(ImageAutoregressiveModel):
    """Multiscale parallel PixelCNN (Reed et al. 2017): a base PixelCNN and 3 parallel groups per 2x upscaling.

    Args:
        input_shape: `(H, W, C)` with H and W divisible by 2 ** num_stages.
        num_levels: levels per value (2: Bernoulli; more: softmax over levels).
        num_classes: unused (unconditional); None.
        num_stages: S, the 2x upscaling stages (the base is H / 2^S x W / 2^S).
        filters: channels of every network (2h in the base PixelCNN's stream).
        base_blocks: residual blocks of the base PixelCNN.
        base_kernel: size of the base's first, mask-A convolution.
        group_blocks: residual blocks of each group's network.
        likelihood: "auto", "bernoulli" or "categorical".

    Example:

    >>> import kgen
    >>> net = kgen.build_model("multiscale_pixel_cnn", input_shape=(8, 8, 1), num_levels=17,
    ...                        num_stages=2, filters=16)
    >>> net.compile(optimizer="adam")
    >>> _ = net.fit(kgen.load_dataset("digits").x[:64], epochs=1, verbose=0)
    >>> net.sample(2, seed=0).shape
    (2, 8, 8, 1)
    """

    def __init__(
        self,
        input_shape,
        num_levels=None,
        num_classes=None,
        num_stages=2,
        filters=32,
        base_blocks=2,
        base_kernel=5,
        group_blocks=2,
        likelihood="auto",
        **kwargs,
    ):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        if num_classes is not None:
            raise UsageError("MultiscalePixelCNN is not conditional; use gated_pixel_cnn for labels.")
        check_image_model(self, "MultiscalePixelCNN", (base_kernel,))
        self.setup_likelihood(likelihood)
        self.num_stages = int(num_stages)
        h, w, c = self.data_shape
        factor = 2 ** self.num_stages
        if self.num_stages < 0 or h % factor or w % factor:
            raise UsageError(
                f"MultiscalePixelCNN halves H and W {num_stages} times: {(h, w)} must be divisible by {factor}; "
                "use fewer num_stages."
            )
        self.channels = c
        self.filters = int(filters)
        if self.filters < 2 or self.filters % (2 * c):
            raise UsageError(f"filters must be a positive multiple of {2 * c}, got {filters}.")
        self.base_blocks = int(base_blocks)
        self.base_kernel = int(base_kernel)
        self.group_blocks = int(group_blocks)
        self.base_shape = (h // factor, w // factor, c)

        # === Layers: the base PixelCNN ===
        f, k = self.filters, self.base_kernel
        self.base_in = CausalConv2D(f, (k // 2 + 1, k), k // 2, "A", c, name="base_conv_a")
        self.base_convs = [CausalConv2D(f, (2, 3), 1, "B", c, name=f"base_block_{i}") for i in range(self.base_blocks)]
        self.base_head = make_head(f, self.out_per_dim * c, c, prefix="base_head")
        # === Layers: one network per (stage, group) ===
        self.group_in, self.group_convs, self.group_out = [], [], []
        for s in range(self.num_stages):
            for g in range(3):
                name = f"stage_{s}_group_{g}"
                self.group_in.append(layers.Conv2D(f, 3, padding="same", name=f"{name}_in"))
                self.group_convs.append(
                    [layers.Conv2D(f, 3, padding="same", name=f"{name}_block_{i}") for i in range(self.group_blocks)]
                )
                self.group_out.append(layers.Conv2D(self.out_per_dim * c, 1, name=f"{name}_out"))
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        h0, w0, c = self.base_shape
        f = self.filters
        self.base_in.build((None, h0, w0, c))
        for conv in self.base_convs:
            conv.build((None, h0, w0, f))
        self.base_head[0].build((None, h0, w0, f))
        self.base_head[1].build((None, h0, w0, f))
        for s in range(self.num_stages):
            size = (h0 * 2 ** (s + 1), w0 * 2 ** (s + 1))
            for g in range(3):
                n = 3 * s + g
                self.group_in[n].build((None,) + size + (c + 1,))
                for conv in self.group_convs[n]:
                    conv.build((None,) + size + (f,))
                self.group_out[n].build((None,) + size + (f,))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_stages": self.num_stages,
                "filters": self.filters,
                "base_blocks": self.base_blocks,
                "base_kernel": self.base_kernel,
                "group_blocks": self.group_blocks,
                "likelihood": self.likelihood,
            }
        )
        return config

    # === Order ===

    def ranks(self):
        """(D,) position of each flattened value in the order: base values in raster order, then one rank a group."""
        h, w, c = self.data_shape
        h0, w0, _ = self.base_shape
        rank = np.zeros((h, w, c), "int64")
        factor = 2 ** self.num_stages
        rank[::factor, ::factor] = np.arange(h0 * w0 * c).reshape(h0, w0, c)
        base = h0 * w0 * c
        for s in range(self.num_stages):
            step = 2 ** (self.num_stages - s - 1)
            for g, (di, dj) in enumerate(OFFSETS):
                rank[di * step :: 2 * step, dj * step :: 2 * step] = base + 3 * s + g
        return rank.ravel()

    # === Networks ===

    def base_logits(self, x0):
        """Logits (B, h0, w0, C, P) of the base image (a PixelCNN)."""
        h = self.base_in(self.scale(x0))
        for conv in self.base_convs:
            h = h + conv(ops.relu(h))
        return self.head_logits(h, self.base_head)

    def group_logits(self, x_known, known, n):
        """Logits (B, H_s, W_s, C, P) of group network n from the known pixels (others ignored)."""
        known = ops.convert_to_tensor(known)
        inputs = ops.concatenate(
            [self.scale(x_known) * known, ops.broadcast_to(known, tuple(ops.shape(x_known)[:3]) + (1,))], axis=-1
        )
        h = self.group_in[n](inputs)
        for conv in self.group_convs[n]:
            h = h + conv(ops.relu(h))
        return self.to_logits(self.group_out[n](ops.relu(h)))

    def call(self, inputs, training=False):
        """Logits (B, H, W, C, P) of every value, each from the pixels of earlier groups only."""
        x, _ = self.split_inputs(inputs)
        x = ops.cast(x, "float32")
        total = upsample_zeros(self.base_logits(x[:, :: 2 ** self.num_stages, :: 2 ** self.num_stages]),
                               2 ** self.num_stages)
        h0, w0, _ = self.base_shape
        for s in range(self.num_stages):
            step = 2 ** (self.num_stages - s - 1)
            x_s = x[:, ::step, ::step]
            masks = group_masks(h0 * 2 ** (s + 1), w0 * 2 ** (s + 1))
            for g, (known, group) in enumerate(masks):
                logits = self.group_logits(x_s, known, 3 * s + g) * ops.convert_to_tensor(group[..., None])
                total = total + upsample_zeros(logits, step)
        return total

    # === Sampling ===

    def _sample(self, u, labels, temperature):
        """Base: H0 * W0 * C compiled steps; then 3 parallel steps per stage."""
        u = ops.convert_to_tensor(u, "float32")
        factor = 2 ** self.num_stages
        h0, w0, c = self.base_shape
        temp = None if temperature is None else ops.reshape(temperature, (-1, 1, 1, 1, 1))
        u0 = u[:, ::factor, ::factor]
        position = ops.reshape(ops.arange(h0 * w0 * c, dtype="int32"), (1,) + self.base_shape)

        def step(t, x0):
            new = self.pixel_sample(self.base_logits(x0), u0, temp)
            return ops.where(ops.equal(position, t), new, x0)

        x = ops.fori_loop(0, h0 * w0 * c, step, ops.zeros_like(u0))
        for s in range(self.num_stages):
            step_size = 2 ** (self.num_stages - s - 1)
            x = upsample_zeros(x, 2)
            u_s = u[:, ::step_size, ::step_size]
            for g, (known, group) in enumerate(group_masks(h0 * 2 ** (s + 1), w0 * 2 ** (s + 1))):
                new = self.pixel_sample(self.group_logits(x, known, 3 * s + g), u_s, temp)
                x = ops.where(ops.convert_to_tensor(group) > 0, new, x)
        return x
