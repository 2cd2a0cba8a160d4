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

Sampling: beside the naive compiled loop (H * W * C full passes), both
cells have a cached sampler (the default), as PixelCNN does: each step
computes every layer at the one pixel being sampled from per-layer caches
and writes its own values back, the same samples as the naive loop from the
same uniforms for about 1/(H * W) of its work. The Row LSTM's state at
(i, j) needs the stream at (i, j - k//2 .. j) and the row above's state at
(i - 1, j - k//2 .. j + k//2). The Diagonal BiLSTM's left-to-right state
needs h(i - 1, j), h(i, j - 1) and c(i, j - 1); its right-to-left direction
reads the whole row, but its output reaches the next row only (the shift
down), so it runs along each row once the row is complete.

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


@register_model("pixel_rnn", family="autoregressive",
                tiny=dict(cell="row_lstm", hidden_units=4, num_layers=1, output_filters=8))
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
        sampler: "cached" (the default) or "naive"; the same samples either
            way, the cached one about H * W times less work.

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
        sampler="cached",
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
        self.sampler = check_sampler(sampler)

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

    def _sample_cached(self, u, labels, temperature, portable=False):
        """H * W * C steps, each computing every layer at one pixel from cached states.

        `portable` writes the caches with masked selects instead of dynamic
        update slices (the same samples; the exported graph uses it).
        """
        if self.cell == "row_lstm":
            return self._sample_cached_rows(u, temperature, portable)
        return self._sample_cached_diagonal(u, temperature, portable)

    def _sample_step(self, x, image, t, u, temp, stream_at, portable):
        """One value: the in_conv at the pixel, `stream_at(stream_0) -> (final stream, caches)`, the draw."""
        n = ops.shape(u)[0]
        _, w, c = self.data_shape
        p1 = self.first_kernel // 2
        i, j, ch = pixel_position(t, w, c)
        stream, caches = stream_at(self.in_conv.pixel(read_patch(image, i, j, self.in_conv)), i, j)
        logits = ops.take(self.head_logits(stream), ch, axis=1)  # (n, P)
        u_t = ops.reshape(ops.slice(u, [0, i, j, ch], [n, 1, 1, 1]), (-1,))
        value = self.pixel_sample(logits, u_t, temp)  # (n,)
        x = update_block(x, [0, i, j, ch], ops.reshape(value, (-1, 1, 1, 1)), portable)
        image = update_block(image, [0, i + p1, j + p1, ch], ops.reshape(self.scale(value), (-1, 1, 1, 1)), portable)
        return x, image, caches

    def _padded_image(self, n):
        """The scaled input, zero padded by the first layer's margins."""
        rows, w, c = self.data_shape
        p1 = self.first_kernel // 2
        return ops.zeros((n, rows + p1, w + 2 * p1, c), "float32")

    def _layer_zeros(self, n, *shape):
        """One zero cache of shape (n, *shape) per layer."""
        return tuple(ops.zeros((n,) + shape, "float32") for _ in range(self.num_layers))

    def _sample_cached_rows(self, u, temperature, portable):
        """Row LSTM. Caches per layer, a row or two each (small caches keep each step cheap): the current
        row of the stream entering it (what its 1 x k input-to-state kernel reads), and its h and c in two
        alternating slots, row i read from slot i % 2 and written to slot (i + 1) % 2 (slot 0 starts as
        the zeros above the first row)."""
        n = ops.shape(u)[0]
        _, w, _ = self.data_shape
        units, layers = self.hidden_units, range(self.num_layers)
        temp = None if temperature is None else ops.reshape(temperature, (-1, 1))
        p = self.row_kernel // 2
        streams = self._layer_zeros(n, 1, w + p, 2 * units)
        hs = self._layer_zeros(n, 2, w + 2 * p, units)
        cs = self._layer_zeros(n, 2, w, units)

        def step(t, state):
            x, image, caches = state

            def stream_at(stream, i, j):
                streams, hs, cs = caches
                above, current = i % 2, (i + 1) % 2
                new = ([], [], [])
                for k in layers:
                    cache = write_pixel(streams[k], 0, j + p, stream, portable)
                    gates = self.input_to_state[k].pixel(read_patch(cache, 0, j, self.input_to_state[k]))
                    gates = gates + self.state_to_state[k].pixel(read_patch(hs[k], above, j, self.state_to_state[k]))
                    c_prev = ops.reshape(ops.slice(cs[k], [0, above, j, 0], [n, 1, 1, units]), (-1, units))
                    h_new, c_new = lstm_update(gates, c_prev)
                    new[0].append(cache)
                    new[1].append(write_pixel(hs[k], current, j + p, h_new, portable))
                    new[2].append(write_pixel(cs[k], current, j, c_new, portable))
                    stream = stream + self.outs[k].pixel(h_new[:, None, None, :])
                return stream, tuple(tuple(a) for a in new)

            return self._sample_step(x, image, t, u, temp, stream_at, portable)

        x, _, _ = ops.fori_loop(0, self.num_dims, step, (ops.zeros_like(u), self._padded_image(n), (streams, hs, cs)))
        return x

    def _diagonal_border(self, state_conv, n):
        """(h, c) just left of each row's first pixel, (n, H, h) each.

        In the skewed map the cells left of row i are zero padding: their input
        gates are 0, so the state-to-state term alone (its bias, the cells
        above and to the left) drives them. They do not depend on the image.
        """
        rows, units = self.data_shape[0], self.hidden_units
        h = c = ops.zeros((n, rows, units), "float32")
        border_h, border_c = [h[:, 0]], [c[:, 0]]
        for d in range(rows - 1):  # skewed column d holds row d + 1's last padded cell
            h, c = lstm_update(state_conv(h[:, :, None])[:, :, 0], c)
            border_h.append(h[:, d + 1])
            border_c.append(c[:, d + 1])
        return ops.stack(border_h, axis=1), ops.stack(border_c, axis=1)

    def _diagonal_cell(self, stream, input_conv, state_conv, hs, cs, i, j, portable):
        """The Diagonal LSTM at (i, j) of its own direction's layout -> (h, new hs, new cs).

        hs, (n, 2, W + 1, h): two row slots, row i in slot i % 2, column j + 1 holding h(i, j) and
        column 0 the state left of the row; the 2 x 1 state-to-state kernel reads h(i - 1, j) (the
        other slot) and h(i, j - 1). cs, (n, 1, W + 1, h): the current row's c, laid out alike.
        """
        n, units = ops.shape(stream)[0], self.hidden_units
        current, above = i % 2, (i + 1) % 2
        patch = ops.concatenate(
            [ops.slice(hs, [0, above, j + 1, 0], [n, 1, 1, units]), ops.slice(hs, [0, current, j, 0], [n, 1, 1, units])],
            axis=1,
        )
        gates = input_conv.pixel(stream[:, None, None, :]) + state_conv.pixel(patch)
        c_left = ops.reshape(ops.slice(cs, [0, 0, j, 0], [n, 1, 1, units]), (-1, units))
        h, c = lstm_update(gates, c_left)
        hs = write_pixel(hs, current, j + 1, h, portable)
        cs = write_pixel(cs, 0, j + 1, c, portable)
        return h, hs, cs

    def _sample_cached_diagonal(self, u, temperature, portable):
        """Diagonal BiLSTM: row by row. Each step runs every layer's left-to-right cell at the pixel (it
        reads h above and to the left) and adds the right-to-left output of the row above, cached; when
        a row is complete, each layer's right-to-left cells run along it (they read the whole row) and
        cache their outputs for the next row, as the naive pass's shift down does.

        Caches are a row or two each (small caches keep each step cheap): per layer, the current row
        of the stream entering it; per layer and direction, h in two alternating row slots and the
        current row's c (see `_diagonal_cell`), each row starting from the image-independent states
        left of it (`_diagonal_border`); and the right-to-left outputs in two slots, row i's read from
        slot i % 2 and written to slot (i + 1) % 2 (slot 0 starts as the zeros above the first row).
        """
        n = ops.shape(u)[0]
        rows, w, c = self.data_shape
        units, layers = self.hidden_units, range(self.num_layers)
        temp = None if temperature is None else ops.reshape(temperature, (-1, 1))
        borders = (
            [self._diagonal_border(self.state_to_state[k], n) for k in layers],
            [self._diagonal_border(self.state_to_state_rev[k], n) for k in layers],  # mirrored: column w - 1 - j
        )

        def start_row(hs, cs, border, i):
            """The row's slot of h and its c, with the states left of row i in column 0."""
            def at(b):
                return ops.reshape(ops.slice(b, [0, i, 0], [n, 1, units]), (-1, units))

            return (tuple(write_pixel(hs[k], i % 2, 0, at(border[k][0]), portable) for k in layers),
                    tuple(write_pixel(cs[k], 0, 0, at(border[k][1]), portable) for k in layers))

        def row_step(i, state):
            x, image, (streams, lh, lc, rh, rc, rout) = state
            lh, lc = start_row(lh, lc, borders[0], i)
            rh, rc = start_row(rh, rc, borders[1], i)

            def pixel_step(t, state):
                x, image, caches = state

                def stream_at(stream, i, j):
                    streams, lh, lc = caches
                    new_streams, new_lh, new_lc = [], [], []
                    for k in layers:
                        new_streams.append(write_pixel(streams[k], 0, j, stream, portable))
                        h, hs, cs = self._diagonal_cell(stream, self.input_to_state[k], self.state_to_state[k],
                                                        lh[k], lc[k], i, j, portable)
                        new_lh.append(hs)
                        new_lc.append(cs)
                        above = ops.reshape(ops.slice(rout[k], [0, i % 2, j, 0], [n, 1, 1, units]), (-1, units))
                        stream = stream + self.outs[k].pixel((h + above)[:, None, None, :])
                    return stream, (tuple(new_streams), tuple(new_lh), tuple(new_lc))

                return self._sample_step(x, image, i * w * c + t, u, temp, stream_at, portable)

            x, image, (streams, lh, lc) = ops.fori_loop(0, w * c, pixel_step, (x, image, (streams, lh, lc)))
            new_rh, new_rc, new_rout = [], [], []
            for k in layers:
                def mirrored_step(jm, carry, k=k):
                    hs, cs, out = carry
                    col = w - 1 - jm
                    stream = ops.reshape(ops.slice(streams[k], [0, 0, col, 0], [n, 1, 1, 2 * units]), (-1, 2 * units))
                    h, hs, cs = self._diagonal_cell(stream, self.input_to_state_rev[k], self.state_to_state_rev[k],
                                                    hs, cs, i, jm, portable)
                    return hs, cs, write_pixel(out, (i + 1) % 2, col, h, portable)

                hs, cs, out = ops.fori_loop(0, w, mirrored_step, (rh[k], rc[k], rout[k]))
                new_rh.append(hs)
                new_rc.append(cs)
                new_rout.append(out)
            return x, image, (streams, lh, lc, tuple(new_rh), tuple(new_rc), tuple(new_rout))

        zeros = self._layer_zeros
        caches = (zeros(n, 1, w, 2 * units), zeros(n, 2, w + 1, units), zeros(n, 1, w + 1, units),
                  zeros(n, 2, w + 1, units), zeros(n, 1, w + 1, units), zeros(n, 2, w, units))
        x, _, _ = ops.fori_loop(0, rows, row_step, (ops.zeros_like(u), self._padded_image(n), caches))
        return x

    # === Export ===

    @property
    def litert_endpoints(self):
        """The LSTM scans of `log_prob` lower to TensorList ops, which the LiteRT builtins lack; the
        cached samplers have no scan, so `sample` converts."""
        return ("sample",)
