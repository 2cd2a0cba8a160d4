"""Keras 3 conditioner networks for the flows.

TFP's own conditioner helpers (`tfb.AutoregressiveNetwork`,
`real_nvp_default_template`) are Keras 2 objects whose weights a Keras 3
model cannot see, so kgen writes its conditioners as Keras 3 layers owned
by the model: their weights train, save to `.keras` and load back. Each
network's last layer starts near zero, so every flow starts near the
identity map (stable early training), but not exactly at zero, so the first
step's gradient reaches every weight.

`MADEConditioner` is MADE (Germain et al. 2015) for MAF and IAF, built on
kgen's one MADE connectivity (`kgen.layers.masked`: degrees, masks and the
masked dense layer) with fixed masks.
"""

import keras
import numpy as np
from keras import layers, ops

from kgen.layers.masked import MaskedDense, made_degrees, made_masks
from kgen.registry import register_layer

# Initial weights of every conditioner's output layer: small, not zero.
OUTPUT_INIT_STDDEV = 1e-3


def _output_init():
    return keras.initializers.RandomNormal(stddev=OUTPUT_INIT_STDDEV)


def soft_clamp(log_scale, bound):
    """`bound * tanh(log_scale / bound)`: keeps affine flows stable, ~identity near 0."""
    if not bound:
        return log_scale
    return bound * ops.tanh(log_scale / bound)


@register_layer
class CouplingMLP(layers.Layer):
    """An MLP from the conditioning half (and a context) to per-unit parameters.

    Args:
        input_dim: size of the conditioning input.
        output_units: units the parameters are for (the transformed half).
        num_params: parameters per unit (2: shift and log-scale; 1: shift).
        hidden_units: widths of the hidden layers.
        activation: hidden activation.
        context_dim: size of an extra input (a one-hot label), 0 for none.

    Call: `(x0, context=None) -> (..., output_units, num_params)`.
    """

    def __init__(self, input_dim, output_units, num_params=2, hidden_units=(64, 64),
                 activation="relu", context_dim=0, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_units = int(output_units)
        self.num_params = int(num_params)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.context_dim = int(context_dim)
        self.hidden = [layers.Dense(u, activation=activation, name=f"dense_{i}")
                       for i, u in enumerate(self.hidden_units)]
        self.out = layers.Dense(self.output_units * self.num_params, kernel_initializer=_output_init(),
                                name="out")
        width = self.input_dim + self.context_dim
        for layer in self.hidden:
            layer.build((None, width))
            width = layer.units
        self.out.build((None, width))
        self.built = True

    def call(self, x0, context=None):
        h = x0
        if self.context_dim:
            h = ops.concatenate([h, ops.cast(context, h.dtype)], axis=-1)
        for layer in self.hidden:
            h = layer(h)
        out = self.out(h)
        return ops.reshape(out, ops.shape(out)[:-1] + (self.output_units, self.num_params))

    def get_config(self):
        config = super().get_config()
        config.update({"input_dim": self.input_dim, "output_units": self.output_units,
                       "num_params": self.num_params, "hidden_units": list(self.hidden_units),
                       "activation": self.activation, "context_dim": self.context_dim})
        return config


@register_layer
class CouplingConvNet(layers.Layer):
    """A small ResNet from an image (and a context) to per-pixel parameters.

    conv3x3 -> `num_blocks` residual blocks (conv3x3, ReLU, conv3x3) ->
    conv3x3 to `output_channels * num_params` channels, near-zero init. A
    one-hot context is broadcast over the pixels as extra input channels.

    Args:
        input_channels: channels of the conditioning input.
        output_channels: channels the parameters are for.
        num_params: parameters per output channel.
        filters: width of the network.
        num_blocks: residual blocks.
        context_dim: size of the context, 0 for none.

    Call: `(h, context=None) -> (B, H, W, output_channels, num_params)`.
    """

    def __init__(self, input_channels, output_channels, num_params=2, filters=32, num_blocks=1,
                 context_dim=0, **kwargs):
        super().__init__(**kwargs)
        self.input_channels = int(input_channels)
        self.output_channels = int(output_channels)
        self.num_params = int(num_params)
        self.filters = int(filters)
        self.num_blocks = int(num_blocks)
        self.context_dim = int(context_dim)
        f = self.filters
        self.conv_in = layers.Conv2D(f, 3, padding="same", name="conv_in")
        self.blocks = [
            (layers.Conv2D(f, 3, padding="same", name=f"block_{i}_a"),
             layers.Conv2D(f, 3, padding="same", name=f"block_{i}_b"))
            for i in range(self.num_blocks)
        ]
        self.conv_out = layers.Conv2D(self.output_channels * self.num_params, 3, padding="same",
                                      kernel_initializer=_output_init(), name="conv_out")
        self.conv_in.build((None, None, None, self.input_channels + self.context_dim))
        for a, b in self.blocks:
            a.build((None, None, None, f))
            b.build((None, None, None, f))
        self.conv_out.build((None, None, None, f))
        self.built = True

    def call(self, h, context=None):
        if self.context_dim:
            shape = ops.shape(h)
            c = ops.cast(ops.reshape(context, (-1, 1, 1, self.context_dim)), h.dtype)
            c = ops.broadcast_to(c, (shape[0], shape[1], shape[2], self.context_dim))
            h = ops.concatenate([h, c], axis=-1)
        h = ops.relu(self.conv_in(h))
        for a, b in self.blocks:
            h = ops.relu(h + b(ops.relu(a(h))))
        out = self.conv_out(h)
        return ops.reshape(out, ops.shape(out)[:-1] + (self.output_channels, self.num_params))

    def get_config(self):
        config = super().get_config()
        config.update({"input_channels": self.input_channels, "output_channels": self.output_channels,
                       "num_params": self.num_params, "filters": self.filters,
                       "num_blocks": self.num_blocks, "context_dim": self.context_dim})
        return config


# === MADE ===


@register_layer
class FlowMaskedDense(MaskedDense):
    """`MaskedDense` with its 0/1 mask fixed at construction, and an activation.

    Args:
        units: output units.
        mask: (input_dim, units) 0/1 array.
        activation: activation.
        kernel_initializer: initializer of the kernel.
    """

    def __init__(self, units, mask, activation=None, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(units, kernel_initializer=kernel_initializer, **kwargs)
        self.mask = np.asarray(mask, "float32")
        self.activation = keras.activations.get(activation)
        self.build((None, self.mask.shape[0]))

    def call(self, x):
        return self.activation(super().call(x, ops.convert_to_tensor(self.mask, dtype=self.kernel.dtype)))

    def get_config(self):
        config = super().get_config()
        config.pop("use_bias", None)
        config.update({"mask": self.mask.tolist(), "activation": keras.activations.serialize(self.activation)})
        return config


@register_layer
class MADEConditioner(layers.Layer):
    """MADE (Germain et al. 2015): output i depends only on inputs 0..i-1.

    Args:
        event_size: dimensions D of the input.
        num_params: parameters per dimension (2 for MAF: shift, log-scale).
        hidden_units: widths of the masked hidden layers.
        activation: hidden activation.
        context_dim: size of an unmasked extra input to the first layer.

    Call: `(x, context=None) -> (..., D, num_params)`.
    """

    def __init__(self, event_size, num_params=2, hidden_units=(64, 64), activation="relu",
                 context_dim=0, **kwargs):
        super().__init__(**kwargs)
        self.event_size = int(event_size)
        self.num_params = int(num_params)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.context_dim = int(context_dim)
        masks = made_masks(made_degrees(self.event_size, self.hidden_units), self.num_params)
        # The sub-layers build here, outside any call: under this layer's name, so that two MADEs
        # (an IAF's steps) never give two weights one path (PyTorch keeps a model's parameters in a
        # dict keyed by path: a duplicate would not be trained right).
        with keras.name_scope(self.name, caller=self):
            self.masked = [
                FlowMaskedDense(m.shape[1], m, activation=activation, name=f"masked_{i}")
                for i, m in enumerate(masks[:-1])
            ]
            self.masked.append(FlowMaskedDense(masks[-1].shape[1], masks[-1], kernel_initializer=_output_init(),
                                               name="masked_out"))
            self.context_layer = None
            if self.context_dim:
                first = masks[0].shape[1]
                self.context_layer = layers.Dense(first, use_bias=False, name="context")
                self.context_layer.build((None, self.context_dim))
        self.built = True

    def call(self, x, context=None):
        h = self.masked[0](x) if not self.context_dim else None
        if self.context_dim:
            first = self.masked[0]
            kernel = first.kernel * ops.convert_to_tensor(first.mask, dtype=first.kernel.dtype)
            h = first.activation(ops.matmul(x, kernel) + first.bias
                                 + self.context_layer(ops.cast(context, x.dtype)))
        for layer in self.masked[1:]:
            h = layer(h)
        return ops.reshape(h, ops.shape(h)[:-1] + (self.event_size, self.num_params))

    def get_config(self):
        config = super().get_config()
        config.update({"event_size": self.event_size, "num_params": self.num_params,
                       "hidden_units": list(self.hidden_units), "activation": self.activation,
                       "context_dim": self.context_dim})
        return config
