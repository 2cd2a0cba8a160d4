"""pix2pix: image-to-image translation with a conditional GAN (Isola et al. 2017).

A generator G maps a source image a (domain A) to a target image b (domain
B); a discriminator D judges *pairs* (a, b). On paired data {(a_i, b_i)}:

    d_loss = 1/2 (E[softplus(-l(a, b))] + E[softplus(l(a, G(a)))])
    g_loss = E[softplus(-l(a, G(a)))] + lambda * E|b - G(a)|_1

with D(a, b) = sigmoid(l(a, b)) per patch. The paper halves D's objective
("we divide the objective by 2 while optimizing D") and uses lambda = 100.
The L1 term makes G get the low frequencies right; the adversarial term, on
a PatchGAN that classifies each overlapping N x N patch as real or fake,
sharpens the high frequencies.

- **U-Net generator**: an encoder of strided 4x4 convolutions (LeakyReLU 0.2,
  BatchNorm except on the first and the innermost layer) and a mirror
  decoder of transposed convolutions (BatchNorm, ReLU, dropout 0.5 on the
  first up to three blocks), with a skip connection concatenating encoder
  layer i to the decoder layer of the same size. `depth` = number of
  halvings; "auto" halves while the map stays >= 2x2 (8x8 digits: 2).
- **PatchGAN discriminator** on the channel-wise concatenation (a, b): strided
  4x4 convolutions, one stride-1 convolution, then a 1-channel convolution
  giving a map of patch logits (8x8 input, one strided layer: 4x4 patches).
- The paper's only noise is dropout in the generator. Here dropout acts while
  training; `translate` is deterministic (dropout off), so a checkpoint
  translates the same way every time.

`TranslationModel` below is the part shared with CycleGAN: how (source,
target) batches enter the one adversarial step of `base.py` (the source
rides in the step's `labels` slot as the condition `(source, target)`), the
translation grids, `evaluate_extra`, export endpoints that take an image.

#### References

- Isola, P., Zhu, J.-Y., Zhou, T. & Efros, A. A. Image-to-Image Translation
  with Conditional Adversarial Networks. CVPR 2017.
- Ronneberger, O., Fischer, P. & Brox, T. U-Net: Convolutional Networks for
  Biomedical Image Segmentation. MICCAI 2015.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from kgen.errors import DataError, UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel
from kgen.registry import register_model

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


# === The shared image-to-image base ===


class TranslationModel(AdversarialModel):
    """Shared by pix2pix and CycleGAN: (source, target) batches, translation grids, export.

    `fit((a, b))` trains on sources `a` and targets `b` (aligned pairs, or an
    equal-length random alignment of two unpaired domains). Inside the one
    adversarial step of `base.py` the real batch is `b` and the condition
    passed as `labels` is `(a, b)`; there is no latent noise.
    """

    # Whether the model needs a[i] to be the source of b[i].
    needs_pairs = True
    # Export endpoint name -> translation direction.
    directions = {"translate": "a2b"}

    def __init__(self, input_shape, num_levels=None, num_classes=None, output_activation="auto", **kwargs):
        if num_classes is not None:
            raise UsageError(f"{type(self).__name__} translates images; it takes no class labels.")
        if len(tuple(input_shape)) != 3:
            raise UsageError(
                f"{type(self).__name__} translates images (H, W, C), got input_shape {tuple(input_shape)}."
            )
        super().__init__(input_shape, num_levels, None, latent_dim=0, output_activation=output_activation, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("latent_dim", None)
        return config

    # === Data ===

    def check_data(self, data):
        name = type(self).__name__
        if data.x_source is None:
            raise DataError(
                f"{data.name} is not a translation data set; {name} needs source (A) and target (B) images: "
                "use digits_inpaint (paired), digits_bold (unpaired) or a folder with A/ and B/ of PNGs."
            )
        if self.needs_pairs and not data.paired:
            raise DataError(
                f"{data.name} is unpaired (A/ and B/ file names differ); {name} needs pairs with the same "
                "file names in A/ and B/. Train cycle_gan for unpaired data."
            )
        for what, shape in (("target (B)", data.shape), ("source (A)", tuple(data.x_source.shape[1:]))):
            if shape != self.data_shape:
                raise DataError(
                    f"{data.name}: {what} images have shape {shape}, the model expects {self.data_shape}; "
                    "train a new model on this data set."
                )

    def translation_inputs(self, source, target):
        """What `fit` takes: the pair `(source, target)` of float32 arrays."""
        if source is None:
            raise DataError(f"{type(self).__name__} needs source images: train it on a translation data set.")
        return (np.asarray(source, "float32"), np.asarray(target, "float32"))

    def fit_inputs(self, x, labels=None, source=None):
        return self.translation_inputs(source, x)

    def model_inputs(self, x, labels=None):
        raise UsageError(
            f"{type(self).__name__} trains on (source, target) pairs: use translation_inputs(source, target)."
        )

    def unpack_batch(self, data):
        """A `fit` batch `(a, b)` -> (real targets b, condition (a, b))."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, dict):
            x, y = x["source"], x["target"]
        elif isinstance(x, (tuple, list)) and y is None:
            if len(x) != 2:
                raise UsageError("fit a translation model on (source, target) pairs: model.fit((a, b)).")
            x, y = x
        if y is None:
            raise UsageError("fit a translation model on (source, target) pairs: model.fit((a, b)).")
        source, target = ops.cast(x, "float32"), ops.cast(y, "float32")
        return target, (source, target)

    def draw_latent(self, batch):
        return None  # no latent noise (pix2pix's noise is the generator's dropout)

    # === Translation ===

    def translator(self, direction):
        """The generator network for `direction` ("a2b" or "b2a")."""
        raise NotImplementedError

    def _check_direction(self, direction):
        allowed = sorted(set(self.directions.values()))
        if direction not in allowed:
            raise UsageError(
                f'{type(self).__name__} translates in direction {" or ".join(allowed)}, not "{direction}".'
            )

    def _check_images(self, x, what="images"):
        x = np.asarray(x, "float32")
        if x.ndim == 3 and len(self.data_shape) == 3:
            x = x[None]
        if tuple(x.shape[1:]) != self.data_shape:
            raise UsageError(f"{what} have shape {tuple(x.shape[1:])}, the model expects {self.data_shape}.")
        return x

    def translate(self, x, direction="a2b", batch_size=256):
        """Translated images (NumPy) for `x`, a batch `(N, H, W, C)` or one image."""
        self._check_direction(direction)
        x = self._check_images(x, "source images")
        net = self.translator(direction)
        fn = self.compiled_fn(f"translate_{direction}", lambda a: net(a, training=False))
        return self.batched(fn, [x], batch_size)

    def call(self, inputs, training=False):
        """`model(a)`: the translation A -> B."""
        return self.translator("a2b")(inputs, training=training)

    def noise_spec(self, n):
        raise UsageError(self._no_sampling_message())

    def sample(self, n, seed=None, labels=None, temperature=1.0, batch_size=256):
        raise UsageError(self._no_sampling_message())

    def _no_sampling_message(self):
        return (
            f"{type(self).__name__} translates images, it does not sample from noise: use model.translate(a), "
            "or `kgen sample --checkpoint X` (it translates the test split)."
        )

    def translation_panels(self, source, target=None, direction="a2b", per_row=None):
        """Images and columns of a grid: source | translated (| target) triplets, side by side."""
        source = self._check_images(source, "source images")
        translated = self.translate(source, direction)
        columns = [source, translated] + ([self._check_images(target, "target images")] if target is not None else [])
        k, n = len(columns), len(source)
        per_row = per_row or max(1, int(math.ceil(math.sqrt(n))))
        panels = np.stack(columns, axis=1).reshape((n * k,) + self.data_shape)
        return panels, per_row * k

    # === Evaluation ===

    def pixel_scale(self):
        """Factor from the model's data units to [0, 1] pixel units (0.5 for tanh models on [-1, 1])."""
        return 0.5 if self.output_activation == "tanh" else 1.0

    def mean_abs_error(self, a, b):
        """Per-pixel mean |a - b| over every example, in [0, 1] pixel units."""
        return float(np.mean(np.abs(np.asarray(a, "float64") - np.asarray(b, "float64")))) * self.pixel_scale()

    def evaluate_extra(self, prepared, batch_size=256):
        """Per-pixel L1 between translations and targets on a prepared split (paired data).

        Returns `{"l1": ...}`, the mean absolute error per pixel in [0, 1]
        pixel units (exact over the split; lower is better).
        """
        if prepared.x_source is None or not getattr(prepared.source, "paired", False):
            raise DataError(f"{type(self).__name__}: the L1 error needs a paired translation split.")
        return {"l1": self.mean_abs_error(self.translate(prepared.x_source, batch_size=batch_size), prepared.x)}

    # === Export ===

    @property
    def litert_endpoints(self):
        return tuple(self.directions)

    def export_endpoints(self):
        """translate(image) -> translated image (CycleGAN: translate_a2b, translate_b2a)."""
        spec = [((None,) + self.data_shape, "float32")]

        def endpoint(net):  # a closure: the exported function's only argument is the image
            def translate(image):
                return net(image, training=False)

            return translate

        return {name: (endpoint(self.translator(direction)), spec) for name, direction in self.directions.items()}


# === pix2pix ===


@register_model("pix2pix", family="adversarial",
                tiny=dict(generator_filters=4, discriminator_filters=(4,)), tiny_dataset="digits_inpaint")
class Pix2Pix(TranslationModel):
    """pix2pix (Isola et al. 2017): U-Net generator, PatchGAN on (source, target) pairs, L1 + adversarial loss.

    Logs `d_loss`, `g_loss` (= `g_adv` + l1_weight * `l1`), the adversarial
    term `g_adv`, the per-pixel `l1` between G(a) and b, and D's mean
    probability of "real" on real pairs (`d_real`) and translated ones
    (`d_fake`).

    Args:
        input_shape: shape of one image `(H, W, C)`; sources and targets share it.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: must be None.
        generator_filters: channels of the U-Net's first layer (doubling to 8x).
        depth: U-Net halvings, or None for as many as keep the map >= 2x2.
        dropout: dropout rate of the first (up to three) decoder blocks.
        discriminator_filters: channels of the PatchGAN's strided layers, or
            None for pix2pix's (64, 128, 256) cut to fit the image (8x8: (64,)).
        norm: "batch" (the paper), "instance" or "none".
        l1_weight: lambda, the weight of the L1 term (paper: 100).
        output_activation: "sigmoid" (images in [0, 1]), "tanh" ([-1, 1],
            `data.scale = "symmetric"`) or "auto" (sigmoid).

    Example:

    >>> import kgen
    >>> data = kgen.load_dataset("digits_inpaint")
    >>> model = kgen.build_model("pix2pix", input_shape=(8, 8, 1), generator_filters=16)
    >>> model.compile()
    >>> _ = model.fit((data.x_source, data.x), epochs=1, batch_size=32, verbose=0)
    >>> model.translate(data.x_source[:4]).shape
    (4, 8, 8, 1)
    """

    metric_names = ("d_loss", "g_loss", "g_adv", "l1", "d_real", "d_fake")

    def __init__(self, input_shape, num_levels=None, num_classes=None, generator_filters=64, depth=None,
                 dropout=0.5, discriminator_filters=None, norm="batch", l1_weight=100.0, output_activation="auto",
                 **kwargs):
        super().__init__(input_shape, num_levels, num_classes, output_activation, **kwargs)
        self.generator_filters = int(generator_filters)
        self.depth = auto_depth(self.data_shape) if depth is None else int(depth)
        self.dropout = float(dropout)
        self.norm = check_translation_norm(norm)
        self.discriminator_filters = (auto_patch_filters(self.data_shape) if discriminator_filters is None
                                      else tuple(int(f) for f in discriminator_filters))
        self.l1_weight = float(l1_weight)
        # === Layers ===
        self.generator = unet_generator(self.data_shape, self.generator_filters, self.depth, self.norm,
                                        self.dropout, self.output_activation)
        h, w, c = self.data_shape
        self.discriminator = patch_discriminator((h, w, 2 * c), self.discriminator_filters, self.norm)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator_filters": self.generator_filters,
            "depth": self.depth,
            "dropout": self.dropout,
            "discriminator_filters": list(self.discriminator_filters),
            "norm": self.norm,
            "l1_weight": self.l1_weight,
        })
        return config

    def translator(self, direction):
        self._check_direction(direction)
        return self.generator

    # === Adversarial step pieces (see base.AdversarialModel) ===

    def generate(self, latent, labels=None, training=False):
        source, _ = labels
        return self.generator(source, training=training)

    def discriminate(self, source, target, training=False):
        """Patch logits l(a, b), shape (N, h, w, 1)."""
        return self.discriminator(ops.concatenate([source, target], axis=-1), training=training)

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        source, _ = labels
        real_logits = self.discriminate(source, real, training=training)
        fake_logits = self.discriminate(source, fake, training=training)
        loss = 0.5 * (ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits)))
        return loss, {"d_real": ops.mean(ops.sigmoid(real_logits)), "d_fake": ops.mean(ops.sigmoid(fake_logits))}

    def generator_loss(self, latent, labels=None, training=True, **_):
        source, target = labels
        fake = self.generator(source, training=training)
        adv = ops.mean(ops.softplus(-self.discriminate(source, fake, training=training)))
        l1 = ops.mean(ops.abs(target - fake))
        return adv + self.l1_weight * l1, {"g_adv": adv, "l1": l1}
