"""Generator and discriminator stacks shared by the adversarial models.

Every builder returns a built `keras.Sequential`, so a model's players are
ordinary Keras layers whose weights save under stable paths
(`generator/...`, `discriminator/...`).

The convolutional stacks follow the DCGAN guidelines (Radford et al. 2016):
strided convolutions instead of pooling, fractionally-strided (transposed)
convolutions in the generator, BatchNorm in both players except the
generator's output and the discriminator's input layer, ReLU in the
generator, LeakyReLU(0.2) in the discriminator, no hidden dense layers, and
weights drawn from N(0, 0.02).
"""

import keras
from keras import layers, ops

from kgen.errors import UsageError
from kgen.registry import register_layer

NORMS = ("batch", "layer", "none")


def dcgan_init():
    """A fresh N(0, 0.02) initializer (one per layer: unseeded initializers repeat)."""
    return keras.initializers.RandomNormal(stddev=0.02)


def _gamma_init():
    return keras.initializers.RandomNormal(mean=1.0, stddev=0.02)


def _norm(kind, name, axis=-1):
    if kind == "batch":
        return [layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer=_gamma_init(), name=name)]
    if kind == "layer":
        return [layers.LayerNormalization(axis=axis, name=name)]
    return []


@register_layer
class MaxLeakyReLU(layers.Layer):
    """LeakyReLU written as max(x, slope * x): the discriminators' activation.

    Same values and gradients as `keras.layers.LeakyReLU` (for 0 < slope < 1).
    TensorFlow's graph optimizer fuses Conv2D + BiasAdd + LeakyRelu and, in the
    gradient graphs of an adversarial step that is not XLA-compiled (e.g. a
    last, smaller batch), fails with a "remapper failed" error line; this
    form is never fused.
    """

    def __init__(self, negative_slope=0.2, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = float(negative_slope)

    def call(self, x):
        return ops.maximum(x, self.negative_slope * x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config


def leaky_relu(name):
    """LeakyReLU(0.2) (as `MaxLeakyReLU`)."""
    return MaxLeakyReLU(0.2, name=name)


def check_norm(norm):
    if norm not in NORMS:
        raise UsageError(f'unknown normalization "{norm}"; choose one of {", ".join(NORMS)}.')
    return norm


def _built(stack, input_shape, name):
    model = keras.Sequential(stack, name=name)
    model.build((None,) + tuple(input_shape))
    return model


def mlp_generator(input_dim, units, data_shape, output_activation, batch_norm=False, name="generator"):
    """z -> [Dense -> (BatchNorm) -> ReLU]* -> Dense(prod(data_shape)) -> activation -> reshape."""
    num_dims = 1
    for d in data_shape:
        num_dims *= int(d)
    stack = []
    for i, u in enumerate(units):
        stack.append(layers.Dense(u, use_bias=not batch_norm, name=f"dense_{i}"))
        if batch_norm:
            stack += _norm("batch", f"norm_{i}")
        stack.append(layers.ReLU(name=f"relu_{i}"))
    stack.append(layers.Dense(num_dims, activation=output_activation, name="out"))
    stack.append(layers.Reshape(tuple(data_shape), name="reshape"))
    return _built(stack, (input_dim,), name)


def mlp_discriminator(input_dim, units, outputs=1, dropout=0.0, name="discriminator", head=True, head_bias=True):
    """x (flattened) -> [Dense -> LeakyReLU(0.2) -> (Dropout)]* -> Dense(outputs).

    With `head=False` the final Dense is left out (a feature extractor);
    `head_bias=False` drops its bias (a WGAN critic's bias cancels out of
    every loss and would never train).
    """
    stack = []
    for i, u in enumerate(units):
        stack.append(layers.Dense(u, name=f"dense_{i}"))
        stack.append(leaky_relu(f"lrelu_{i}"))
        if dropout > 0:
            stack.append(layers.Dropout(dropout, name=f"dropout_{i}"))
    if head:
        stack.append(layers.Dense(outputs, use_bias=head_bias, name="out"))
    return _built(stack, (input_dim,), name)


def check_conv_shape(data_shape, num_layers, what):
    if len(data_shape) != 3:
        raise UsageError(f"the convolutional {what} needs images (H, W, C); use architecture = \"mlp\".")
    factor = 2 ** num_layers
    if data_shape[0] % factor or data_shape[1] % factor:
        raise UsageError(
            f"the convolutional {what} halves H and W {num_layers} times: {tuple(data_shape[:2])} must "
            f"be divisible by {factor}; use fewer filters or architecture = \"mlp\"."
        )


def conv_generator(input_dim, filters, data_shape, output_activation, kernel_size=4, name="generator"):
    """DCGAN generator: z -> Dense -> BN -> ReLU -> reshape -> [ConvT(stride 2) -> BN -> ReLU]* -> ConvT -> act.

    `filters` run from the smallest feature map to the largest, e.g.
    `(128, 64)` for 8x8 output: Dense to 2x2x128, ConvT to 4x4x64, ConvT to
    8x8xC. H and W must be divisible by `2 ** len(filters)`.
    """
    h, w, c = data_shape
    factor = 2 ** len(filters)
    base = (h // factor, w // factor, filters[0])
    stack = [
        layers.Dense(base[0] * base[1] * base[2], use_bias=False, kernel_initializer=dcgan_init(), name="project"),
        *_norm("batch", "project_norm"),
        layers.ReLU(name="project_relu"),
        layers.Reshape(base, name="reshape"),
    ]
    for i, f in enumerate(filters[1:]):
        stack += [
            layers.Conv2DTranspose(f, kernel_size, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=dcgan_init(), name=f"deconv_{i}"),
            *_norm("batch", f"norm_{i}"),
            layers.ReLU(name=f"relu_{i}"),
        ]
    stack.append(
        layers.Conv2DTranspose(c, kernel_size, strides=2, padding="same", activation=output_activation,
                               kernel_initializer=dcgan_init(), name="out")
    )
    return _built(stack, (input_dim,), name)


def conv_discriminator(input_shape, filters, norm="batch", kernel_size=4, outputs=1, name="discriminator",
                       head=True, head_bias=True):
    """DCGAN discriminator: [Conv(stride 2) -> (norm) -> LeakyReLU(0.2)]* -> flatten -> Dense(outputs).

    The first convolution has no normalization (DCGAN). `norm="layer"` is the
    WGAN-GP choice (a critic must not normalize across the batch). With
    `head=False` the final Dense is left out; `head_bias=False` drops its bias.
    """
    stack = []
    for i, f in enumerate(filters):
        stack.append(layers.Conv2D(f, kernel_size, strides=2, padding="same", use_bias=(i == 0 or norm == "none"),
                                   kernel_initializer=dcgan_init(), name=f"conv_{i}"))
        if i > 0:
            # Layer norm over (H, W, C) of each example, as in WGAN-GP.
            stack += _norm(norm, f"norm_{i}", axis=[-3, -2, -1])
        stack.append(leaky_relu(f"lrelu_{i}"))
    stack.append(layers.Flatten(name="flatten"))
    if head:
        stack.append(layers.Dense(outputs, use_bias=head_bias, kernel_initializer=dcgan_init(), name="out"))
    return _built(stack, tuple(input_shape), name)
