"""The generative adversarial network of Goodfellow et al. (2014).

A generator G maps noise z ~ N(0, I) to examples; a discriminator D(x) =
sigmoid(l(x)) tells real examples from generated ones. The two play

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))].

The discriminator minimises the cross-entropy

    d_loss = E_x[softplus(-l(x))] + E_z[softplus(l(G(z)))].

The generator either minimises the game's own term ("minimax"),

    g_loss = E_z[log(1 - D(G(z)))] = -E_z[softplus(l(G(z)))],

which saturates when D rejects fakes confidently (early training), or the
"non_saturating" loss the paper recommends in practice, with the same fixed
point and strong gradients early on:

    g_loss = -E_z[log D(G(z))] = E_z[softplus(-l(G(z)))].

Logits are used throughout (softplus forms), so no log of a rounded
probability ever overflows.

#### References

- Goodfellow, I. et al. Generative Adversarial Nets. NeurIPS 2014.
"""

from keras import ops

from kgen.errors import UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel, GaussianObservation
from kgen.registry import register_model

GAN_LOSSES = ("non_saturating", "minimax")


class _StandardGAN(GaussianObservation, AdversarialModel):
    """The cross-entropy game on MLP or convolutional players (shared by GAN, DCGAN, cGAN).

    A conditional model (`num_classes`) feeds the one-hot label to both
    players: concatenated to z, and to the flattened input (MLP) or as
    constant label planes beside the image channels (conv).
    """

    metric_names = ("d_loss", "g_loss", "d_real", "d_fake")
    # Whether the class takes labels (only the conditional GAN does).
    takes_labels = False

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=64, loss="non_saturating",
                 output_activation="auto", **kwargs):
        if num_classes is not None and not self.takes_labels:
            raise UsageError(
                f"{type(self).__name__} is unconditional; use the conditional GAN (\"cgan\") to condition on labels."
            )
        super().__init__(input_shape, num_levels, num_classes, latent_dim, output_activation, **kwargs)
        if loss not in GAN_LOSSES:
            raise UsageError(f'unknown GAN loss "{loss}"; choose one of {", ".join(GAN_LOSSES)}.')
        self.loss_kind = loss

    def get_config(self):
        config = super().get_config()
        config["loss"] = self.loss_kind
        return config

    # === Networks ===

    def _build_mlp(self, generator_units, discriminator_units, dropout, generator_batch_norm=False):
        cond = self.num_classes or 0
        self.generator = networks.mlp_generator(
            self.latent_dim + cond, generator_units, self.data_shape, self.output_activation,
            batch_norm=generator_batch_norm,
        )
        self.discriminator = networks.mlp_discriminator(self.num_dims + cond, discriminator_units, dropout=dropout)

    def _build_conv(self, generator_filters, discriminator_filters, kernel_size, discriminator_norm="batch"):
        networks.check_conv_shape(self.data_shape, len(generator_filters), "generator")
        networks.check_conv_shape(self.data_shape, len(discriminator_filters), "discriminator")
        cond = self.num_classes or 0
        h, w, c = self.data_shape
        self.generator = networks.conv_generator(
            self.latent_dim + cond, generator_filters, self.data_shape, self.output_activation, kernel_size
        )
        self.discriminator = networks.conv_discriminator(
            (h, w, c + cond), discriminator_filters, norm=discriminator_norm, kernel_size=kernel_size
        )

    def generator_input(self, z, labels=None):
        z = ops.cast(z, "float32")
        if self.conditional:
            z = ops.concatenate([z, self.one_hot(labels)], axis=-1)
        return z

    def generate(self, latent, labels=None, training=False):
        return self.generator(self.generator_input(latent, labels), training=training)

    def discriminator_input(self, x, labels=None):
        x = ops.cast(x, "float32")
        if self.architecture == "mlp":
            x = ops.reshape(x, (ops.shape(x)[0], self.num_dims))
            if self.conditional:
                x = ops.concatenate([x, self.one_hot(labels)], axis=-1)
            return x
        if self.conditional:
            h, w, _ = self.data_shape
            planes = ops.broadcast_to(self.one_hot(labels)[:, None, None, :],
                                      (ops.shape(x)[0], h, w, self.num_classes))
            x = ops.concatenate([x, planes], axis=-1)
        return x

    def discriminate(self, x, labels=None, training=False):
        """The discriminator's logit l(x) per example (D(x) = sigmoid(l(x)))."""
        return self.discriminator(self.discriminator_input(x, labels), training=training)[:, 0]

    # === Losses ===

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        real_logits = self.discriminate(real, labels, training=training)
        fake_logits = self.discriminate(fake, labels, training=training)
        loss = ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))
        return loss, {"d_real": ops.mean(ops.sigmoid(real_logits)), "d_fake": ops.mean(ops.sigmoid(fake_logits))}

    def generator_loss(self, latent, labels=None, training=True):
        fake_logits = self.discriminate(self.generate(latent, labels, training=training), labels, training=training)
        if self.loss_kind == "minimax":
            loss = -ops.mean(ops.softplus(fake_logits))  # E log(1 - D(G(z)))
        else:
            loss = ops.mean(ops.softplus(-fake_logits))  # -E log D(G(z))
        return loss, {}


@register_model("gan", family="adversarial",
                tiny=dict(latent_dim=4, generator_units=(16,), discriminator_units=(16,)))
class GAN(_StandardGAN):
    """Generative adversarial network (Goodfellow et al. 2014) with MLP generator and discriminator.

    Logs `d_loss`, `g_loss`, and the discriminator's mean probability of
    "real" on real (`d_real`) and generated (`d_fake`) batches.

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: must be None (see the conditional GAN, "cgan").
        latent_dim: size of z ~ N(0, I).
        generator_units: units of the generator's hidden ReLU layers.
        discriminator_units: units of the discriminator's hidden
            LeakyReLU(0.2) layers.
        loss: the generator's loss: "non_saturating" (-log D(G(z))) or
            "minimax" (log(1 - D(G(z)))).
        dropout: dropout rate after each discriminator hidden layer.
        generator_batch_norm: BatchNorm after each generator hidden layer.
            The 2014 paper had none; without it the MLP generator collapses
            to a few modes on small data sets such as the digits.
        output_activation: "sigmoid" (images in [0, 1]), "tanh" ([-1, 1]),
            "linear" (points) or "auto".

    Example:

    >>> import kgen
    >>> gan = kgen.build_model("gan", input_shape=(8, 8, 1))
    >>> gan.compile()  # Adam(2e-4, beta_1=0.5) for each player
    >>> x = kgen.load_dataset("digits").x
    >>> _ = gan.fit(x, epochs=1, batch_size=64, verbose=0)
    >>> gan.sample(4, seed=0).shape
    (4, 8, 8, 1)
    """

    architecture = "mlp"

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=64, generator_units=(256, 256),
                 discriminator_units=(256, 256), loss="non_saturating", dropout=0.0, generator_batch_norm=True,
                 output_activation="auto", **kwargs):
        super().__init__(input_shape, num_levels, num_classes, latent_dim, loss, output_activation, **kwargs)
        self.generator_units = tuple(int(u) for u in generator_units)
        self.discriminator_units = tuple(int(u) for u in discriminator_units)
        self.dropout = float(dropout)
        self.generator_batch_norm = bool(generator_batch_norm)
        self._build_mlp(self.generator_units, self.discriminator_units, self.dropout, self.generator_batch_norm)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator_units": list(self.generator_units),
            "discriminator_units": list(self.discriminator_units),
            "dropout": self.dropout,
            "generator_batch_norm": self.generator_batch_norm,
        })
        return config
