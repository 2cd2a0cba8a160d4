"""Gated PixelCNN with vertical and horizontal stacks, conditional (van den Oord et al. 2016).

Two stacks of causal convolutions remove PixelCNN's blind spot:

- the vertical stack sees every pixel in the rows above (a (k//2+1) x k
  convolution over rows i-k//2 .. i, shifted down one row before use);
- the horizontal stack sees the pixels left of (i, j) on the current row
  (a 1 x (k//2+1) convolution with mask A on the first layer, B after) plus,
  through a link, the vertical stack of the row above (a 2 x 1 convolution
  whose current-row tap is masked: the paper's shift down and 1x1
  convolution in one op).

Every layer uses the gated unit

    y = tanh(W_f * x + V_f h) . sigmoid(W_g * x + V_g h),

where h is the conditioning vector: the one-hot class label
(`num_classes`) or any vector of `condition_dim` features (an embedding,
attributes). The horizontal stack is residual (1x1 convolution of y plus
the input). A head of two masked 1x1 convolutions gives a Bernoulli logit
(binary) or a softmax over the levels per value; colour groups (f % C)
carry the R -> G -> B masking as in `PixelCNN`.

Samplers, the same samples for the same uniforms:

- "naive": H * W * C forward passes over the whole image;
- "cached" (default): once per row, the vertical stack's previous row for
  every layer (from cached rows above); once per value, the horizontal
  stack at the one pixel being sampled (from a cache of the current row).
  Each step computes only what the new pixel changes.

#### References

- van den Oord, A., Kalchbrenner, N., Vinyals, O., Espeholt, L., Graves, A.
  & Kavukcuoglu, K. Conditional Image Generation with PixelCNN Decoders.
  NeurIPS 2016.
- Ramachandran, P. et al. Fast Generation for Convolutional Autoregressive
  Models. ICLR 2017 workshop.
"""

import numpy as np
from keras import layers, ops

from kgen.errors import DataError, UsageError
from kgen.layers.masked import CausalConv2D
from kgen.models.autoregressive.image import (
    ImageAutoregressiveModel,
    check_image_model,
    check_sampler,
    make_head,
    update_block,
)
from kgen.registry import register_model


def gate(pre):
    """tanh(first half) * sigmoid(second half) along the last axis."""
    a, b = ops.split(pre, 2, axis=-1)  # (a split is much cheaper to differentiate than two slices)
    return ops.tanh(a) * ops.sigmoid(b)


@register_model("gated_pixel_cnn", family="autoregressive", conditional=True,
                tiny=dict(filters=8, num_layers=2, output_filters=16))
class GatedPixelCNN(ImageAutoregressiveModel):
    """Gated PixelCNN (van den Oord et al. 2016): vertical/horizontal stacks, gated units, class-conditional.

    Args:
        input_shape: `(H, W, C)` with C = 1 (grey) or 3 (RGB).
        num_levels: levels per value (2: Bernoulli; more: softmax over levels).
        num_classes: classes of the label h (one-hot), or None.
        filters: channels of each stack (divisible by C).
        num_layers: gated layers.
        first_kernel: kernel size of the first layer (k x k receptive field).
        kernel_size: kernel size of the later layers.
        output_filters: channels of the hidden 1x1 layer of the head.
        condition_dim: size of a real conditioning vector h (instead of
            labels): `fit((x, h))`, `log_prob(x, labels=h)`,
            `sample(n, labels=h)`.
        likelihood: "auto", "bernoulli" or "categorical".
        sampler: default sampler, "cached" or "naive" (same samples).

    Example:

    >>> import kgen
    >>> data = kgen.load_dataset("digits")
    >>> net = kgen.build_model("gated_pixel_cnn", input_shape=(8, 8, 1), num_levels=17,
    ...                        num_classes=10, filters=16, num_layers=3)
    >>> net.compile(optimizer="adam")
    >>> _ = net.fit((data.x[:64], data.y[:64]), epochs=1, verbose=0)
    >>> net.sample(2, seed=0, labels=[3, 7]).shape
    (2, 8, 8, 1)
    """

    def __init__(
        self,
        input_shape,
        num_levels=None,
        num_classes=None,
        filters=64,
        num_layers=8,
        first_kernel=7,
        kernel_size=3,
        output_filters=256,
        condition_dim=None,
        likelihood="auto",
        sampler="cached",
        **kwargs,
    ):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        check_image_model(self, "GatedPixelCNN", (first_kernel, kernel_size))
        self.setup_likelihood(likelihood)
        self.channels = self.data_shape[-1]
        self.filters = int(filters)
        if self.filters < 1 or self.filters % self.channels:
            raise UsageError(f"filters must be >= 1 and divisible by {self.channels} colour channels, got {filters}.")
        self.num_layers = int(num_layers)
        if self.num_layers < 1:
            raise UsageError(f"num_layers must be >= 1, got {num_layers}.")
        self.first_kernel = int(first_kernel)
        self.kernel_size = int(kernel_size)
        self.output_filters = int(output_filters)
        if condition_dim is not None and num_classes is not None:
            raise UsageError("condition on labels (num_classes) or on vectors (condition_dim), not both.")
        self.condition_dim = None if condition_dim is None else int(condition_dim)
        self.sampler = check_sampler(sampler)

        # === Layers ===
        c, f2 = self.channels, 2 * self.filters
        kernels = [self.first_kernel] + [self.kernel_size] * (self.num_layers - 1)
        self.v_convs = [
            CausalConv2D(f2, (k // 2 + 1, k), k // 2, "none", c, name=f"vertical_{i}") for i, k in enumerate(kernels)
        ]
        self.h_convs = [
            CausalConv2D(f2, (1, k // 2 + 1), k // 2, "A" if i == 0 else "B", c, name=f"horizontal_{i}")
            for i, k in enumerate(kernels)
        ]
        # Vertical -> horizontal: the row above only (shift down + 1x1 in one convolution).
        self.links = [CausalConv2D(f2, (2, 1), 0, "above", c, name=f"link_{i}") for i in range(self.num_layers)]
        self.h_outs = [
            CausalConv2D(self.filters, (1, 1), 0, "B", c, name=f"horizontal_out_{i}") for i in range(self.num_layers)
        ]
        if self.conditional:
            n = self.num_layers
            self.cond_v = [layers.Dense(f2, use_bias=False, name=f"cond_vertical_{i}") for i in range(n)]
            self.cond_h = [layers.Dense(f2, use_bias=False, name=f"cond_horizontal_{i}") for i in range(n)]
        self.head = make_head(self.output_filters, self.out_per_dim * c, c)
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        h, w, c = self.data_shape
        f = self.filters
        for i in range(self.num_layers):
            cin = c if i == 0 else f
            self.v_convs[i].build((None, h, w, cin))
            self.h_convs[i].build((None, h, w, cin))
            self.links[i].build((None, h, w, 2 * f))
            self.h_outs[i].build((None, h, w, f))
            if self.conditional:
                self.cond_v[i].build((None, self.cond_size))
                self.cond_h[i].build((None, self.cond_size))
        self.head[0].build((None, h, w, f))
        self.head[1].build((None, h, w, self.output_filters))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "num_layers": self.num_layers,
                "first_kernel": self.first_kernel,
                "kernel_size": self.kernel_size,
                "output_filters": self.output_filters,
                "condition_dim": self.condition_dim,
                "likelihood": self.likelihood,
                "sampler": self.sampler,
            }
        )
        return config

    # === Conditioning ===

    @property
    def conditional(self):
        return self.num_classes is not None or getattr(self, "condition_dim", None) is not None

    @property
    def cond_size(self):
        return self.num_classes if self.num_classes is not None else self.condition_dim

    def condition_vector(self, labels):
        """h: the one-hot label (batch, num_classes) or the given vectors (batch, condition_dim)."""
        if self.num_classes is not None:
            return self.one_hot_labels(labels)
        return ops.cast(labels, "float32")

    def _conditions(self, labels):
        """Per layer (vertical, horizontal) terms V h, each (batch, 2 * filters); None if unconditional."""
        if not self.conditional:
            return [(None, None)] * self.num_layers
        h = self.condition_vector(labels)
        return [(cv(h), ch(h)) for cv, ch in zip(self.cond_v, self.cond_h)]

    def _vectors(self, n, labels, what):
        if labels is None:
            raise UsageError(
                f"GatedPixelCNN conditions on vectors of {self.condition_dim} features: pass labels=h "
                f"of shape (n, {self.condition_dim}) to {what}."
            )
        h = np.asarray(labels, "float32")
        if h.ndim == 1:
            h = np.broadcast_to(h, (n, h.shape[0]))
        if h.shape != (n, self.condition_dim) or not np.all(np.isfinite(h)):
            raise DataError(f"{what}: expected finite conditioning vectors of shape ({n}, {self.condition_dim}), "
                            f"got {h.shape}.")
        return h.copy()

    def _labels_for(self, n, labels):
        if self.condition_dim is not None:
            return self._vectors(n, labels, "sample")
        return super()._labels_for(n, labels)

    def _labels_array(self, n, labels):
        if self.condition_dim is not None:
            return self._vectors(n, labels, "log_prob")
        return super()._labels_array(n, labels)

    def model_inputs(self, x, labels=None):
        if self.condition_dim is not None:
            return (x, self._vectors(len(x), labels, "fit"))
        return super().model_inputs(x, labels)

    def check_data(self, data):
        if self.condition_dim is not None:
            raise DataError(
                f"{data.name}: this model conditions on real vectors (condition_dim), which data sets do not "
                "carry; train it from Python with model.fit((x, h)), or use num_classes for labels."
            )
        super().check_data(data)

    # === Network ===

    def call(self, inputs, training=False):
        x, labels = self.split_inputs(inputs)
        v = hh = self.scale(x)
        for i, (cv, ch) in enumerate(self._conditions(labels)):
            vp = self.v_convs[i](v)
            hp = self.h_convs[i](hh)
            if cv is not None:
                vp = vp + cv[:, None, None, :]
                hp = hp + ch[:, None, None, :]
            hp = hp + self.links[i](vp)
            v = gate(vp)
            out = self.h_outs[i](gate(hp))
            hh = out if i == 0 else hh + out
        return self.head_logits(hh)

    # === Samplers ===

    def _sample_cached(self, u, labels, temperature, portable=False):
        """Rows: the vertical stack's row above for every layer; values: the horizontal stack at one pixel.

        `portable` writes the caches with masked selects instead of dynamic
        update slices (the same samples; the exported graph uses it).
        """
        n = ops.shape(u)[0]
        h, w, c = self.data_shape
        f = self.filters
        temp = None if temperature is None else ops.reshape(temperature, (-1, 1))
        conds = self._conditions(labels)
        pads = [k // 2 for k in [self.first_kernel] + [self.kernel_size] * (self.num_layers - 1)]
        p0 = pads[0]
        image = ops.zeros((n, h + p0, w + 2 * p0, c), "float32")
        # Vertical inputs of layers 1.. (gated outputs of the layer below), padded by their kernel.
        v_caches = tuple(ops.zeros((n, h + p, w + 2 * p, f), "float32") for p in pads[1:])
        # Horizontal inputs of layers 1.. on the current row, padded left by their kernel.
        h_caches = tuple(ops.zeros((n, w + p, f), "float32") for p in pads[1:])

        def vertical_rows(i, image, v_caches):
            """Link terms (batch, W, 2f) of every layer for row i, from the finished rows above."""
            r = ops.maximum(i - 1, 0)  # row i-1 (row 0 gives zeros, as the shift does)
            above = ops.cast(i > 0, "float32")
            slab = ops.slice(image, [0, r, 0, 0], [n, p0 + 1, w + 2 * p0, c])
            links, new_caches = [], []
            for k in range(self.num_layers):
                if k > 0:
                    p = pads[k]
                    slab = ops.slice(new_caches[k - 1], [0, r, 0, 0], [n, p + 1, w + 2 * p, f])
                vp = self.v_convs[k].valid(slab)  # (n, 1, W, 2f)
                if conds[k][0] is not None:
                    vp = vp + conds[k][0][:, None, None, :]
                link = self.links[k]  # its only live tap reads the row above: vp of row i-1
                links.append(ops.matmul(vp[:, 0] * above, link.masked_kernel()[0, 0]) + link.bias)
                if k + 1 < self.num_layers:
                    p = pads[k + 1]
                    row = ops.pad(gate(vp), [[0, 0], [0, 0], [p, p], [0, 0]])
                    new_caches.append(update_block(v_caches[k], [0, r + p, 0, 0], row, portable))
            return tuple(links), tuple(new_caches)

        def value_step(i, links, t, state):
            x, image, h_caches = state
            j, ch = t // c, t % c
            hp = self.h_convs[0].pixel(ops.slice(image, [0, i + p0, j, 0], [n, 1, p0 + 1, c]))
            new_caches = []
            hh = None
            for k in range(self.num_layers):
                if k > 0:
                    p = pads[k]
                    patch = ops.slice(new_caches[k - 1], [0, j, 0], [n, p + 1, f])
                    hp = self.h_convs[k].pixel(patch[:, None])
                hp = hp + ops.take(links[k], j, axis=1)
                if conds[k][1] is not None:
                    hp = hp + conds[k][1]
                out = self.h_outs[k].pixel(gate(hp)[:, None, None, :])
                hh = out if k == 0 else hh + out
                if k + 1 < self.num_layers:
                    new_caches.append(update_block(h_caches[k], [0, j + pads[k + 1], 0], hh[:, None, :], portable))
            logits = ops.take(self.head_logits(hh), ch, axis=1)  # (n, P)
            u_t = ops.reshape(ops.slice(u, [0, i, j, ch], [n, 1, 1, 1]), (-1,))
            value = self.pixel_sample(logits, u_t, temp)
            x = update_block(x, [0, i, j, ch], ops.reshape(value, (-1, 1, 1, 1)), portable)
            image = update_block(image, [0, i + p0, j + p0, ch], ops.reshape(self.scale(value), (-1, 1, 1, 1)),
                                 portable)
            return x, image, tuple(new_caches)

        def row_step(i, state):
            x, image, v_caches, h_caches = state
            links, v_caches = vertical_rows(i, image, v_caches)
            x, image, h_caches = ops.fori_loop(
                0, w * c, lambda t, s: value_step(i, links, t, s), (x, image, h_caches)
            )
            return x, image, v_caches, h_caches

        x, _, _, _ = ops.fori_loop(0, h, row_step, (ops.zeros_like(u), image, v_caches, h_caches))
        return x

    def sampling_labels(self, n, labels):
        """Class labels int32 (n,), or condition vectors (n, condition_dim) for vector conditioning."""
        if self.condition_dim is not None:
            return self._vectors(n, labels, "sample")
        return super().sampling_labels(n, labels)

    # === Export ===

    def export_endpoints(self):
        """log_prob(x[, labels]) -> nats; sample(u[, labels]) -> images.

        Labels are int32 (batch,) for a class-conditional model, float32
        (batch, condition_dim) for vector conditioning.
        """
        ends = super().export_endpoints()
        if self.condition_dim is not None:
            spec = ((None, self.condition_dim), "float32")
            ends = {name: (fn, specs[:-1] + [spec]) for name, (fn, specs) in ends.items()}
        return ends
