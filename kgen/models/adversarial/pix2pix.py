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

The networks live in `translation_networks.py`; what pix2pix shares with
CycleGAN (batches of (source, target) pairs, translation panels, L1 metric,
export) in `translation.py`.

#### References

- Isola, P., Zhu, J.-Y., Zhou, T. & Efros, A. A. Image-to-Image Translation
  with Conditional Adversarial Networks. CVPR 2017.
- Ronneberger, O., Fischer, P. & Brox, T. U-Net: Convolutional Networks for
  Biomedical Image Segmentation. MICCAI 2015.
"""
from keras import ops

from kgen.models.adversarial.translation import TranslationModel
from kgen.models.adversarial.translation_networks import (
    auto_depth,
    auto_patch_filters,
    check_translation_norm,
    patch_discriminator,
    unet_generator,
)
from kgen.registry import register_model


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
