"""Conditional GAN (Mirza & Osindero 2014).

Both players see the class label y: the generator models p(x | y) from
G(z, y), the discriminator judges pairs, D(x, y). The game is the GAN's (see
`gan.py`) with every term conditioned on y:

    min_G max_D  E_{x,y}[log D(x, y)] + E_{z,y}[log(1 - D(G(z, y), y))].

The one-hot label is concatenated to z, and to the discriminator's input:
to the flattened example for MLP players (the paper), or as constant label
planes beside the image channels for convolutional (DCGAN-style) players.
Fakes in each discriminator step carry the real batch's labels, so both
halves of the discriminator's batch have the same label distribution.

Sampling takes labels: `model.sample(n, labels=3)` or `kgen sample --label 3`.

#### References

- Mirza, M. & Osindero, S. Conditional Generative Adversarial Nets.
  arXiv:1411.1784, 2014.
"""

from kgen.errors import UsageError
from kgen.models.adversarial.gan import _StandardGAN
from kgen.registry import register_model

ARCHITECTURES = ("mlp", "conv")


@register_model("cgan", family="adversarial", conditional=True,
                tiny=dict(latent_dim=4, generator_units=(16,), discriminator_units=(16,)))
class ConditionalGAN(_StandardGAN):
    """Conditional GAN (Mirza & Osindero 2014): generator and discriminator both see the one-hot label.

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: number of label classes (required).
        latent_dim: size of z ~ N(0, I).
        architecture: "mlp" (the paper) or "conv" (DCGAN-style players).
        generator_units: hidden units of the MLP generator.
        discriminator_units: hidden units of the MLP discriminator.
        dropout: dropout after each MLP discriminator layer.
        generator_batch_norm: BatchNorm after each MLP generator layer
            (without it the MLP generator collapses on small data sets).
        generator_filters: feature-map channels of the conv generator,
            smallest map first.
        discriminator_filters: channels of the conv discriminator.
        kernel_size: conv kernel size.
        loss: the generator's loss, "non_saturating" or "minimax".
        output_activation: "sigmoid", "tanh", "linear" or "auto".

    Example:

    >>> import kgen
    >>> data = kgen.load_dataset("digits")
    >>> cgan = kgen.build_model("cgan", input_shape=(8, 8, 1), num_classes=10)
    >>> cgan.compile()
    >>> _ = cgan.fit((data.x, data.y), epochs=1, verbose=0)
    >>> cgan.sample(4, labels=7, seed=0).shape
    (4, 8, 8, 1)
    """

    takes_labels = True

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=64, architecture="mlp",
                 generator_units=(256, 256), discriminator_units=(256, 256), dropout=0.0, generator_batch_norm=True,
                 generator_filters=(128, 64), discriminator_filters=(64, 128), kernel_size=4,
                 loss="non_saturating", output_activation="auto", **kwargs):
        if num_classes is None:
            raise UsageError(
                "the conditional GAN needs labels: pass num_classes (in a recipe, model.conditional = true)."
            )
        super().__init__(input_shape, num_levels, num_classes, latent_dim, loss, output_activation, **kwargs)
        if architecture not in ARCHITECTURES:
            raise UsageError(f'unknown architecture "{architecture}"; choose "mlp" or "conv".')
        self.architecture = architecture
        self.generator_units = tuple(int(u) for u in generator_units)
        self.discriminator_units = tuple(int(u) for u in discriminator_units)
        self.dropout = float(dropout)
        self.generator_batch_norm = bool(generator_batch_norm)
        self.generator_filters = tuple(int(f) for f in generator_filters)
        self.discriminator_filters = tuple(int(f) for f in discriminator_filters)
        self.kernel_size = int(kernel_size)
        if architecture == "mlp":
            self._build_mlp(self.generator_units, self.discriminator_units, self.dropout, self.generator_batch_norm)
        else:
            self._build_conv(self.generator_filters, self.discriminator_filters, self.kernel_size)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "architecture": self.architecture,
            "generator_units": list(self.generator_units),
            "discriminator_units": list(self.discriminator_units),
            "dropout": self.dropout,
            "generator_batch_norm": self.generator_batch_norm,
            "generator_filters": list(self.generator_filters),
            "discriminator_filters": list(self.discriminator_filters),
            "kernel_size": self.kernel_size,
        })
        return config
