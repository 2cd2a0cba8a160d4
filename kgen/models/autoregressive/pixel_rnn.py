"""PixelRNN: Row LSTM and Diagonal BiLSTM (van den Oord, Kalchbrenner & Kavukcuoglu 2016).

Both models read the image through a 7x7 mask-A convolution, then stack
LSTM layers with residual connections (a masked 1x1 convolution of the
LSTM's h features added to the 2h-channel stream) and end in the PixelCNN
head (two masked 1x1 convolutions; Bernoulli or softmax over levels). Each
LSTM layer computes its gates [o, f, i, g] from an input-to-state and a
state-to-state convolution:

    c = sigmoid(f) . c_prev + sigmoid(i) . tanh(g),   h = sigmoid(o) . tanh(c).

- Row LSTM: the image is processed row by row, top to bottom. The
  input-to-state term is a 1 x k convolution along the row masked to the
  pixels left of (and, mask B, at) the current one; the state-to-state term
  a 1 x k convolution of the row above's state. Each pixel sees a
  triangular context above it.
- Diagonal BiLSTM: the input map is skewed (row i shifted right by i), so
  that each diagonal becomes a column, and processed column by column with a
  1x1 input-to-state and a 2x1 state-to-state convolution: the state at
  (i, j) reads (i, j-1) and (i-1, j), covering everything above-left. A
  second LSTM runs on the mirrored image (above-right), and its output is
  shifted down one row before the two are added, so no pixel sees the
  future: the context is the whole past.

Colour groups (feature f belongs to group f % C) carry the R -> G -> B
masking as in `PixelCNN`. log_prob is exact (one pass).

Sampling: the Diagonal BiLSTM has the naive compiled loop (H * W * C full
passes). The Row LSTM also has a cached sampler (the default), as for
PixelCNN: its only recurrence runs from one row to the next, so the state at
(i, j) needs the stream at (i, j - k//2 .. j) and the row above's state at
(i - 1, j - k//2 .. j + k//2). Each step computes every layer at the one
pixel being sampled, reading those from per-layer caches of the stream and
of the LSTM's h and c, and writes its own values back: the same samples as
the naive loop from the same uniforms, for about 1/(H * W) of its work.

#### References

- van den Oord, A., Kalchbrenner, N. & Kavukcuoglu, K. Pixel Recurrent
  Neural Networks. ICML 2016.
"""

import numpy as np
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

CELLS = ("row_lstm", "diagonal_bilstm")


def lstm_update(gates, c_prev):
    """LSTM cell on pre-activations [o, f, i, g] (..., 4h) -> (h, c)."""
    o, f, i, g = ops.split(gates, 4, axis=-1)
    c = ops.sigmoid(f) * c_prev + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def skew(x):
    """(B, H, W, C) -> (B, H, W + H - 1, C): row i moved right by i, so diagonals become columns."""
    h = x.shape[1]
    return ops.stack([ops.pad(x[:, i], [[0, 0], [i, h - 1 - i], [0, 0]]) for i in range(h)], axis=1)


def unskew(x, width):
    """Inverse of `skew`: (B, H, W + H - 1, C) -> (B, H, W, C)."""
    return ops.stack([x[:, i, i : i + width] for i in range(x.shape[1])], axis=1)


def shift_down(x):
    """Row i takes row i-1 (zeros on top)."""
    keep = np.ones((1, x.shape[1], 1, 1), "float32")
    keep[0, 0] = 0.0
    return ops.roll(x, 1, axis=1) * ops.convert_to_tensor(keep, dtype=x.dtype)


@register_model("pixel_rnn", family="autoregressive")
class PixelRNN(ImageAutoregressiveModel):
    """PixelRNN (van den Oord et al. 2016): Row LSTM or Diagonal BiLSTM layers with residual connections.

    Args:
        input_shape: `(H, W, C)` with C = 1 (grey) or 3 (RGB).
        num_levels: levels per value (2: Bernoulli; more: softmax over levels).
        num_classes: unused (unconditional); None.
        cell: "row_lstm" or "diagonal_bilstm".
        hidden_units: h, the LSTM's state size (divisible by C); the
            residual stream has 2h channels.
        num_layers: LSTM layers.
        first_kernel: size of the first, mask-A convolution (the paper: 7).
        row_kernel: k of the Row LSTM's 1 x k convolutions (the paper: 3).
        output_filters: channels of the hidden 1x1 layer of the head.
        likelihood: "auto", "bernoulli" or "categorical".
        sampler: "cached" (Row LSTM only; its default) or "naive" (the
            Diagonal BiLSTM's only sampler); the same samples either way.

    Example:

    >>> import kgen
    >>> net = kgen.build_model("pixel_rnn", input_shape=(8, 8, 1), num_levels=17, cell="row_lstm",
    ...                        hidden_units=8, num_layers=2)
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
        cell="diagonal_bilstm",
        hidden_units=16,
        num_layers=7,
        first_kernel=7,
        row_kernel=3,
        output_filters=64,
        likelihood="auto",
        sampler=None,
        **kwargs,
    ):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        if num_classes is not None:
            raise UsageError("PixelRNN is not conditional; use gated_pixel_cnn with model.conditional = true.")
        check_image_model(self, "PixelRNN", (first_kernel, row_kernel))
        if cell not in CELLS:
            raise UsageError(f'unknown cell "{cell}"; choose "row_lstm" or "diagonal_bilstm".')
        self.setup_likelihood(likelihood)
        self.channels = self.data_shape[-1]
        self.cell = cell
        self.hidden_units = int(hidden_units)
        if self.hidden_units < 1 or self.hidden_units % self.channels:
            raise UsageError(
                f"hidden_units must be >= 1 and divisible by {self.channels} colour channels, got {hidden_units}."
            )
        self.num_layers = int(num_layers)
        if self.num_layers < 1:
            raise UsageError(f"num_layers must be >= 1, got {num_layers}.")
        self.first_kernel = int(first_kernel)
        self.row_kernel = int(row_kernel)
        self.output_filters = int(output_filters)
        if sampler is None:
            sampler = "cached" if cell == "row_lstm" else "naive"
        self.sampler = check_sampler(sampler)
        if self.sampler == "cached" and cell != "row_lstm":
            raise UsageError(
                'the Diagonal BiLSTM has no cached sampler (its diagonals run across rows); use sampler = "naive", '
                'or cell = "row_lstm".'
            )

        # === Layers ===
        c, h = self.channels, self.hidden_units
        k1, k = self.first_kernel, self.row_kernel
        n = self.num_layers
        self.in_conv = CausalConv2D(2 * h, (k1 // 2 + 1, k1), k1 // 2, "A", c, name="conv_a")
        if cell == "row_lstm":
            self.input_to_state = [
                CausalConv2D(4 * h, (1, k // 2 + 1), k // 2, "B", c, name=f"row_input_{i}") for i in range(n)
            ]
            # The row above is all past: no mask.
            self.state_to_state = [CausalConv2D(4 * h, (1, k), k // 2, "none", c, name=f"row_state_{i}")
                                   for i in range(n)]
        else:
            self.input_to_state = [CausalConv2D(4 * h, (1, 1), 0, "B", c, name=f"diag_input_{i}") for i in range(n)]
            self.state_to_state = [CausalConv2D(4 * h, (2, 1), 0, "none", c, name=f"diag_state_{i}")
                                   for i in range(n)]
            self.input_to_state_rev = [CausalConv2D(4 * h, (1, 1), 0, "B", c, name=f"diag_input_rev_{i}")
                                       for i in range(n)]
            self.state_to_state_rev = [CausalConv2D(4 * h, (2, 1), 0, "none", c, name=f"diag_state_rev_{i}")
                                       for i in range(n)]
        self.outs = [CausalConv2D(2 * h, (1, 1), 0, "B", c, name=f"residual_{i}") for i in range(n)]
        self.head = make_head(self.output_filters, self.out_per_dim * c, c)
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        hh, w, c = self.data_shape
        h = self.hidden_units
        self.in_conv.build((None, hh, w, c))
        for i in range(self.num_layers):
            self.input_to_state[i].build((None, hh, w, 2 * h))
            self.state_to_state[i].build((None, 1, w, h) if self.cell == "row_lstm" else (None, hh, 1, h))
            if self.cell == "diagonal_bilstm":
                self.input_to_state_rev[i].build((None, hh, w, 2 * h))
                self.state_to_state_rev[i].build((None, hh, 1, h))
            self.outs[i].build((None, hh, w, h))
        self.head[0].build((None, hh, w, 2 * h))
        self.head[1].build((None, hh, w, self.output_filters))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "cell": self.cell,
                "hidden_units": self.hidden_units,
                "num_layers": self.num_layers,
                "first_kernel": self.first_kernel,
                "row_kernel": self.row_kernel,
                "output_filters": self.output_filters,
                "likelihood": self.likelihood,
                "sampler": self.sampler,
            }
        )
        return config

    # === LSTM layers ===

    def row_lstm(self, x, i):
        """Row LSTM layer i on the stream x (B, H, W, 2h) -> h features (B, H, W, h)."""
        units = self.hidden_units
        gates_in = ops.moveaxis(self.input_to_state[i](x), 1, 0)  # (H, B, W, 4h)
        zeros = ops.zeros_like(gates_in[0][..., :units])
        state_conv = self.state_to_state[i]

        def step(carry, row_gates):
            h_prev, c_prev = carry
            gates = row_gates + state_conv(h_prev[:, None])[:, 0]
            h_new, c_new = lstm_update(gates, c_prev)
            # ys mirrors the carry: the TensorFlow scan of Keras needs the same structure.
            return (h_new, c_new), (h_new, c_new)

        _, (rows, _) = ops.scan(step, (zeros, zeros), gates_in)
        return ops.moveaxis(rows, 0, 1)

    def _diagonal(self, x, input_conv, state_conv):
        """One direction of the Diagonal LSTM: state (i, j) from (i, j-1) and (i-1, j)."""
        units, width = self.hidden_units, self.data_shape[1]
        gates_in = ops.moveaxis(skew(input_conv(x)), 2, 0)  # (W + H - 1, B, H, 4h)
        zeros = ops.zeros_like(gates_in[0][..., :units])

        def step(carry, column_gates):
            h_prev, c_prev = carry
            gates = column_gates + state_conv(h_prev[:, :, None])[:, :, 0]
            h_new, c_new = lstm_update(gates, c_prev)
            return (h_new, c_new), (h_new, c_new)

        _, (columns, _) = ops.scan(step, (zeros, zeros), gates_in)  # (W + H - 1, B, H, h)
        return unskew(ops.moveaxis(columns, 0, 2), width)

    def diagonal_bilstm(self, x, i):
        """Diagonal BiLSTM layer i: left-to-right plus the mirrored direction shifted down one row."""
        left = self._diagonal(x, self.input_to_state[i], self.state_to_state[i])
        right = ops.flip(self._diagonal(ops.flip(x, axis=2), self.input_to_state_rev[i], self.state_to_state_rev[i]),
                         axis=2)
        return left + shift_down(right)

    # === Network ===

    def call(self, inputs, training=False):
        x, _ = self.split_inputs(inputs)
        stream = self.in_conv(self.scale(x))
        layer = self.row_lstm if self.cell == "row_lstm" else self.diagonal_bilstm
        for i in range(self.num_layers):
            stream = stream + self.outs[i](layer(stream, i))
        return self.head_logits(stream)

    # === Sampling ===

    @property
    def has_cached_sampler(self):
        return self.cell == "row_lstm"

    def _sample_cached(self, u, labels, temperature, portable=False):
        """Row LSTM: H * W * C steps, each computing every layer at one pixel from cached rows.

        Caches (zero padded by each reading layer's margins): the scaled
        image; per layer, the stream entering it (the current row is what its
        1 x k input-to-state kernel reads) and its h and c (one row of zeros
        on top, so row i reads row i - 1). `portable` writes with masked
        selects (the exported graph).
        """
        if self.cell != "row_lstm":
            raise UsageError("only the Row LSTM has a cached sampler.")
        n = ops.shape(u)[0]
        rows, w, c = self.data_shape
        units = self.hidden_units
        temp = None if temperature is None else ops.reshape(temperature, (-1, 1))
        p1 = self.first_kernel // 2
        p = self.row_kernel // 2
        image = ops.zeros((n, rows + p1, w + 2 * p1, c), "float32")
        streams = tuple(ops.zeros((n, rows, w + p, 2 * units), "float32") for _ in range(self.num_layers))
        hs = tuple(ops.zeros((n, rows + 1, w + 2 * p, units), "float32") for _ in range(self.num_layers))
        cs = tuple(ops.zeros((n, rows + 1, w, units), "float32") for _ in range(self.num_layers))

        def step(t, state):
            x, image, streams, hs, cs = state
            i, j, ch = pixel_position(t, w, c)
            stream = self.in_conv.pixel(read_patch(image, i, j, self.in_conv))  # (n, 2h)
            new_streams, new_hs, new_cs = [], [], []
            for layer in range(self.num_layers):
                cache = write_pixel(streams[layer], i, j + p, stream, portable)
                gates = self.input_to_state[layer].pixel(read_patch(cache, i, j, self.input_to_state[layer]))
                gates = gates + self.state_to_state[layer].pixel(read_patch(hs[layer], i, j, self.state_to_state[layer]))
                c_prev = ops.reshape(ops.slice(cs[layer], [0, i, j, 0], [n, 1, 1, units]), (-1, units))
                h_new, c_new = lstm_update(gates, c_prev)
                new_streams.append(cache)
                new_hs.append(write_pixel(hs[layer], i + 1, j + p, h_new, portable))
                new_cs.append(write_pixel(cs[layer], i + 1, j, c_new, portable))
                stream = stream + self.outs[layer].pixel(h_new[:, None, None, :])
            logits = ops.take(self.head_logits(stream), ch, axis=1)  # (n, P)
            u_t = ops.reshape(ops.slice(u, [0, i, j, ch], [n, 1, 1, 1]), (-1,))
            value = self.pixel_sample(logits, u_t, temp)  # (n,)
            x = update_block(x, [0, i, j, ch], ops.reshape(value, (-1, 1, 1, 1)), portable)
            image = update_block(image, [0, i + p1, j + p1, ch], ops.reshape(self.scale(value), (-1, 1, 1, 1)),
                                 portable)
            return x, image, tuple(new_streams), tuple(new_hs), tuple(new_cs)

        x, *_ = ops.fori_loop(0, self.num_dims, step, (ops.zeros_like(u), image, streams, hs, cs))
        return x

    # === Export ===

    @property
    def litert_endpoints(self):
        """The LSTM scans of `log_prob` (and of the naive sampler) lower to TensorList ops, which the
        LiteRT builtins lack; the Row LSTM's cached sampler has no scan, so its `sample` converts."""
        return ("sample",) if self.cell == "row_lstm" else ()
