"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016).

A stack of masked convolutions over the image in raster order,

    p(x) = prod_i prod_j p(x_ij,R | x_<ij) p(x_ij,G | x_<ij, x_ij,R) p(x_ij,B | x_<ij, x_ij,R, x_ij,G),

so every conditional comes out of one forward pass and the likelihood is
exact. The first layer is a k x k convolution with mask A (a pixel does not
see itself: on the centre tap colour c sees only colours < c), then
residual blocks (ReLU, 1x1 to h, ReLU, masked k x k with mask B, ReLU, 1x1
to 2h, plus the input) and a head of two masked 1x1 convolutions. Output is
a Bernoulli logit per value (binary data) or a softmax over the grey levels
(256-way for 8-bit images). Hidden feature f belongs to colour group
f % C, which carries the R -> G -> B masking through every layer.

Two compiled samplers give the same samples for the same uniforms:

- "naive": H * W * C steps, each a forward pass over the whole image;
- "cached" (default): each step computes every layer at the one pixel
  being sampled, from per-layer caches of the activations already
  computed (what the new pixel changes, in the spirit of Fast PixelCNN++,
  Ramachandran et al. 2017): O(layers * k^2) per step instead of
  O(layers * k^2 * H * W).

#### References

- van den Oord, A., Kalchbrenner, N. & Kavukcuoglu, K. Pixel Recurrent
  Neural Networks. ICML 2016.
- Ramachandran, P. et al. Fast Generation for Convolutional Autoregressive
  Models. ICLR 2017 workshop.
"""

from keras import ops

from kgen.errors import UsageError
from kgen.layers.masked import CausalConv2D
from kgen.models.autoregressive.image import (
    ImageAutoregressiveModel,
    check_image_model,
    check_sampler,
    make_head,
    pixel_position,
    read_patch,
    update_block,
    write_pixel,
)
from kgen.registry import register_model

@register_model("pixel_cnn", family="autoregressive",
                tiny=dict(filters=8, num_blocks=1, output_filters=16))
class PixelCNN(ImageAutoregressiveModel):
    """PixelCNN (van den Oord et al. 2016): masked convolutions, residual blocks, exact likelihood.

    Args:
        input_shape: `(H, W, C)` with C = 1 (grey) or 3 (RGB, R -> G -> B).
        num_levels: levels per value (2: Bernoulli; more: softmax over levels).
        num_classes: unused (the gated PixelCNN is the conditional one); None.
        filters: h; the residual stream has 2h channels (divisible by C).
        num_blocks: residual blocks after the first layer.
        first_kernel: size of the first, mask-A convolution (the paper: 7).
        kernel_size: size of the mask-B convolution in each block (3).
        output_filters: channels of the hidden 1x1 layer of the head.
        likelihood: "auto", "bernoulli" or "categorical".
        sampler: default sampler, "cached" or "naive" (same samples).

    Example:

    >>> import kgen
    >>> net = kgen.build_model("pixel_cnn", input_shape=(8, 8, 1), num_levels=17, filters=16, num_blocks=2)
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
        filters=64,
        num_blocks=5,
        first_kernel=7,
        kernel_size=3,
        output_filters=256,
        likelihood="auto",
        sampler="cached",
        **kwargs,
    ):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        if num_classes is not None:
            raise UsageError("PixelCNN is not conditional; use gated_pixel_cnn with model.conditional = true.")
        check_image_model(self, "PixelCNN", (first_kernel, kernel_size))
        self.setup_likelihood(likelihood)
        self.channels = self.data_shape[-1]
        self.filters = int(filters)
        if self.filters < 1 or (2 * self.filters) % self.channels:
            raise UsageError(f"filters must be >= 1 with 2 * filters divisible by {self.channels}, got {filters}.")
        self.num_blocks = int(num_blocks)
        self.first_kernel = int(first_kernel)
        self.kernel_size = int(kernel_size)
        self.output_filters = int(output_filters)
        self.sampler = check_sampler(sampler)

        # === Layers ===
        c = self.channels
        f, k1, k = self.filters, self.first_kernel, self.kernel_size
        self.in_conv = CausalConv2D(2 * f, (k1 // 2 + 1, k1), k1 // 2, "A", c, name="conv_a")
        self.block_in = [CausalConv2D(f, (1, 1), 0, "B", c, name=f"block_{i}_in") for i in range(self.num_blocks)]
        self.block_conv = [
            CausalConv2D(f, (k // 2 + 1, k), k // 2, "B", c, name=f"block_{i}_conv_b") for i in range(self.num_blocks)
        ]
        self.block_out = [
            CausalConv2D(2 * f, (1, 1), 0, "B", c, name=f"block_{i}_out") for i in range(self.num_blocks)
        ]
        self.head = make_head(self.output_filters, self.out_per_dim * c, c)
        self.build()

    @property
    def blocks(self):
        """(1x1 in, masked k x k, 1x1 out) of each residual block."""
        return list(zip(self.block_in, self.block_conv, self.block_out))

    def build(self, input_shape=None):
        if self.built:
            return
        h, w, c = self.data_shape
        f = self.filters
        self.in_conv.build((None, h, w, c))
        for a, b, o in self.blocks:
            a.build((None, h, w, 2 * f))
            b.build((None, h, w, f))
            o.build((None, h, w, f))
        self.head[0].build((None, h, w, 2 * f))
        self.head[1].build((None, h, w, self.output_filters))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "num_blocks": self.num_blocks,
                "first_kernel": self.first_kernel,
                "kernel_size": self.kernel_size,
                "output_filters": self.output_filters,
                "likelihood": self.likelihood,
                "sampler": self.sampler,
            }
        )
        return config

    # === Network ===

    def call(self, inputs, training=False):
        x, _ = self.split_inputs(inputs)
        h = self.in_conv(self.scale(x))
        for a, b, o in self.blocks:
            r = ops.relu(a(ops.relu(h)))
            h = h + o(ops.relu(b(r)))
        return self.head_logits(h)

    # === Samplers ===

    def _sample_cached(self, u, labels, temperature, portable=False):
        """H * W * C steps, each computing every layer at one pixel from cached activations.

        `portable` writes the caches with masked selects instead of dynamic
        update slices (the same samples; the exported graph uses it).
        """
        n = ops.shape(u)[0]
        h, w, c = self.data_shape
        f = self.filters
        temp = None if temperature is None else ops.reshape(temperature, (-1, 1))
        p1 = self.first_kernel // 2
        p = self.kernel_size // 2
        image = ops.zeros((n, h + p1, w + 2 * p1, c), "float32")  # the scaled input, zero padded
        caches = tuple(ops.zeros((n, h + p, w + 2 * p, f), "float32") for _ in self.blocks)

        def step(t, state):
            x, image, caches = state
            i, j, ch = pixel_position(t, w, c)
            hid = self.in_conv.pixel(read_patch(image, i, j, self.in_conv))
            new_caches = []
            for (a, b, o), cache in zip(self.blocks, caches):
                r = ops.relu(a.pixel(ops.relu(hid)[:, None, None, :]))
                cache = write_pixel(cache, i + p, j + p, r, portable)
                new_caches.append(cache)
                r = ops.relu(b.pixel(read_patch(cache, i, j, b)))
                hid = hid + o.pixel(r[:, None, None, :])
            logits = ops.take(self.head_logits(hid), ch, axis=1)  # (n, P)
            u_t = ops.reshape(ops.slice(u, [0, i, j, ch], [n, 1, 1, 1]), (-1,))
            value = self.pixel_sample(logits, u_t, temp)  # (n,)
            x = update_block(x, [0, i, j, ch], ops.reshape(value, (-1, 1, 1, 1)), portable)
            image = update_block(image, [0, i + p1, j + p1, ch], ops.reshape(self.scale(value), (-1, 1, 1, 1)),
                                 portable)
            return x, image, tuple(new_caches)

        x, _, _ = ops.fori_loop(0, self.num_dims, step, (ops.zeros_like(u), image, caches))
        return x
