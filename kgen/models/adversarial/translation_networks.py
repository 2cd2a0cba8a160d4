"""The image-to-image networks: pix2pix's U-Net and PatchGAN, CycleGAN's ResNet generator.

- **U-Net generator** (Ronneberger et al. 2015; Isola et al. 2017): strided 4x4
  convolutions down, transposed convolutions up, each decoder block concatenated
  with the encoder block of the same size.
- **PatchGAN discriminator** (Isola et al. 2017): a fully convolutional
  classifier of overlapping N x N patches.
- **ResNet generator** (Johnson et al. 2016; Zhu et al. 2017): downsampling,
  residual blocks, upsampling.
"""

import keras
from keras import layers

from kgen.errors import UsageError
from kgen.models.adversarial import networks

TRANSLATION_NORMS = ("batch", "instance", "none")


# === Networks ===


def check_translation_norm(norm):
    if norm not in TRANSLATION_NORMS:
        raise UsageError(f'unknown normalization "{norm}"; choose one of {", ".join(TRANSLATION_NORMS)}.')
    return norm


def norm_layer(kind, name):
    """BatchNorm, instance norm (GroupNormalization with one group per channel) or nothing."""
    if kind == "batch":
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)
    if kind == "instance":
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)
    return None


def _apply(x, *stack):
    for layer in stack:
        if layer is not None:
            x = layer(x)
    return x


def auto_depth(shape, min_size=2, cap=8):
    """Halvings of H and W that keep them integers and >= `min_size` (at most `cap`)."""
    h, w = int(shape[0]), int(shape[1])
    depth = 0
    while depth < cap and h % 2 == 0 and w % 2 == 0 and h // 2 >= min_size and w // 2 >= min_size:
        h, w, depth = h // 2, w // 2, depth + 1
    return depth


def check_halvings(shape, depth, what):
    factor = 2 ** depth
    if depth < 1 or shape[0] % factor or shape[1] % factor:
        raise UsageError(
            f"the {what} halves H and W {depth} times: {tuple(shape[:2])} must be divisible by {factor} "
            "(and depth >= 1); choose a smaller depth."
        )


def unet_generator(shape, filters=64, depth=None, norm="batch", dropout=0.5, output_activation="sigmoid",
                   name="generator"):
    """The pix2pix U-Net: (H, W, C) -> (H, W, C), skip connections between mirrored layers.

    Encoder layer i has `filters * min(2**i, 8)` channels at 1/2**(i+1) of the
    size; decoder layer j (from the innermost out) is concatenated with
    encoder layer `depth - 2 - j`, so there are `depth - 1` skips
    (`skip_<i>` layers).
    """
    h, w, c = (int(d) for d in shape)
    depth = auto_depth(shape) if depth is None else int(depth)
    check_halvings(shape, depth, "U-Net generator")
    inputs = keras.Input((h, w, c), name="source")
    x, skips = inputs, []
    for i in range(depth):
        f = filters * min(2 ** i, 8)
        normed = 0 < i < depth - 1  # no norm on the first and the innermost layer (pix2pix)
        x = _apply(
            x,
            layers.Conv2D(f, 4, strides=2, padding="same", use_bias=not normed or norm == "none",
                          kernel_initializer=networks.dcgan_init(), name=f"down_{i}"),
            norm_layer(norm, f"down_norm_{i}") if normed else None,
            networks.leaky_relu(f"down_lrelu_{i}"),
        )
        skips.append(x)
    for j, i in enumerate(range(depth - 2, -1, -1)):
        f = filters * min(2 ** i, 8)
        x = _apply(
            x,
            layers.Conv2DTranspose(f, 4, strides=2, padding="same", use_bias=norm == "none",
                                   kernel_initializer=networks.dcgan_init(), name=f"up_{j}"),
            norm_layer(norm, f"up_norm_{j}"),
            layers.Dropout(dropout, name=f"up_dropout_{j}") if dropout > 0 and j < 3 else None,
            layers.ReLU(name=f"up_relu_{j}"),
        )
        x = layers.Concatenate(name=f"skip_{i}")([x, skips[i]])
    outputs = layers.Conv2DTranspose(c, 4, strides=2, padding="same", activation=output_activation,
                                     kernel_initializer=networks.dcgan_init(), name="out")(x)
    return keras.Model(inputs, outputs, name=name)


def patch_discriminator(shape, filters=(64, 128, 256), norm="batch", name="discriminator"):
    """PatchGAN: (H, W, C_in) -> (H / 2**len(filters), W / 2**len(filters), 1) patch logits.

    [Conv 4x4 stride 2 -> norm (not the first) -> LeakyReLU(0.2)] per entry of
    `filters`, then Conv 4x4 stride 1 (2x the last filters) -> norm ->
    LeakyReLU, then Conv 4x4 stride 1 to one logit per patch.
    """
    check_halvings(shape, len(filters), "PatchGAN discriminator")
    stack = []
    for i, f in enumerate(filters):
        stack.append(layers.Conv2D(f, 4, strides=2, padding="same", use_bias=(i == 0 or norm == "none"),
                                   kernel_initializer=networks.dcgan_init(), name=f"conv_{i}"))
        if i > 0 and norm != "none":
            stack.append(norm_layer(norm, f"norm_{i}"))
        stack.append(networks.leaky_relu(f"lrelu_{i}"))
    stack += [
        layers.Conv2D(2 * filters[-1], 4, padding="same", use_bias=norm == "none",
                      kernel_initializer=networks.dcgan_init(), name="conv_last"),
        *([norm_layer(norm, "norm_last")] if norm != "none" else []),
        networks.leaky_relu("lrelu_last"),
        layers.Conv2D(1, 4, padding="same", kernel_initializer=networks.dcgan_init(), name="patch_logits"),
    ]
    model = keras.Sequential(stack, name=name)
    model.build((None,) + tuple(int(d) for d in shape))
    return model


def auto_patch_filters(shape, filters=64):
    """pix2pix's (64, 128, 256) strided layers, fewer on small images (8x8: one)."""
    k = max(1, min(3, auto_depth(shape, min_size=4)))
    return tuple(filters * 2 ** i for i in range(k))


# === CycleGAN's ResNet generator ===


def _conv(filters, kernel, strides, name, bias):
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=bias,
                         kernel_initializer=networks.dcgan_init(), name=name)


def resnet_generator(shape, filters=64, downsamples=2, res_blocks=6, norm="instance", output_activation="sigmoid",
                     name="generator"):
    """CycleGAN's ResNet generator: c7s1-f, d2f, d4f, R x res_blocks, u2f, uf, c7s1-C (with `downsamples` = 2)."""
    h, w, c = (int(d) for d in shape)
    if downsamples:
        check_halvings(shape, downsamples, "ResNet generator")
    bias = norm == "none"

    def normed(x, label):
        layer = norm_layer(norm, label)
        return x if layer is None else layer(x)

    inputs = keras.Input((h, w, c), name="image")
    x = layers.ReLU(name="in_relu")(normed(_conv(filters, 7, 1, "in_conv", bias)(inputs), "in_norm"))
    for i in range(downsamples):
        f = filters * 2 ** (i + 1)
        x = layers.ReLU(name=f"down_relu_{i}")(normed(_conv(f, 3, 2, f"down_{i}", bias)(x), f"down_norm_{i}"))
    f = filters * 2 ** downsamples
    for r in range(res_blocks):
        y = layers.ReLU(name=f"res_{r}_relu")(normed(_conv(f, 3, 1, f"res_{r}_conv_a", bias)(x), f"res_{r}_norm_a"))
        y = normed(_conv(f, 3, 1, f"res_{r}_conv_b", bias)(y), f"res_{r}_norm_b")
        x = layers.Add(name=f"res_{r}_add")([x, y])
    for i in range(downsamples):
        f = filters * 2 ** (downsamples - 1 - i)
        x = layers.Conv2DTranspose(f, 3, strides=2, padding="same", use_bias=bias,
                                   kernel_initializer=networks.dcgan_init(), name=f"up_{i}")(x)
        x = layers.ReLU(name=f"up_relu_{i}")(normed(x, f"up_norm_{i}"))
    outputs = layers.Conv2D(c, 7, padding="same", activation=output_activation,
                            kernel_initializer=networks.dcgan_init(), name="out")(x)
    return keras.Model(inputs, outputs, name=name)
