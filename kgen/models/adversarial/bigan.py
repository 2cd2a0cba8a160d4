"""BiGAN / ALI (Donahue et al. 2017; Dumoulin et al. 2017): a GAN that also learns an encoder.

Beside the generator G: z -> x there is an encoder E: x -> z, and the
discriminator judges joint pairs: D(x, z) = sigmoid(l(x, z)) tells
(x, E(x)) with x from the data from (G(z), z) with z ~ N(0, I). The game

    min_{G, E} max_D  E_x[log D(x, E(x))] + E_z[log(1 - D(G(z), z))]

has its optimum where the joint distributions p(x) p_E(z | x) and
p(z) p_G(x | z) agree, so E inverts G there. The encoder and the generator
are one player (the generator's optimizer updates both). With logits:

    d_loss = E_x[softplus(-l(x, E(x)))] + E_z[softplus(l(G(z), z))]
    g_loss = E_x[softplus(l(x, E(x)))]  + E_z[softplus(-l(G(z), z))]

(the players' labels swapped: the non-saturating form both papers' code
uses). `encoder = "deterministic"` is BiGAN's E(x); `"gaussian"` is ALI's
E(x) = mu(x) + sigma(x) * eps, trained through the reparameterisation
(`encode` returns mu). `reconstruct(x) = G(E(x))`: after training a
reconstruction is of the same kind as x, not a copy of it (the papers'
figures).

All three networks are MLPs (BiGAN's permutation-invariant MNIST setting);
the discriminator sees the flattened x concatenated with z.

#### References

- Donahue, J., Krähenbühl, P. & Darrell, T. Adversarial Feature Learning.
  ICLR 2017.
- Dumoulin, V., Belghazi, I., Poole, B., Mastropietro, O., Lamb, A.,
  Arjovsky, M. & Courville, A. Adversarially Learned Inference. ICLR 2017.
"""

import keras
import numpy as np
from keras import ops

from kgen.errors import UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel
from kgen.registry import register_model

ENCODERS = ("deterministic", "gaussian")


@register_model("bigan", family="adversarial",
                tiny=dict(latent_dim=4, generator_units=(16,), encoder_units=(16,), discriminator_units=(16,)))
class BiGAN(AdversarialModel):
    """BiGAN / ALI (Donahue et al. 2017; Dumoulin et al. 2017): G(z), an encoder E(x), D on joint (x, z) pairs.

    Logs `d_loss`, `g_loss` and D's mean probability of "real" on data
    pairs (`d_real`, x with E(x)) and generated pairs (`d_fake`, G(z) with z).
    `encode(x)` and `reconstruct(x)` (= G(E(x))) from Python.

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: must be None (BiGAN is unconditional).
        latent_dim: size of z ~ N(0, I).
        generator_units: the generator's hidden ReLU layers.
        encoder_units: the encoder's hidden LeakyReLU(0.2) layers.
        discriminator_units: the joint discriminator's hidden LeakyReLU(0.2) layers.
        encoder: "deterministic" (BiGAN) or "gaussian" (ALI).
        dropout: dropout rate after each discriminator hidden layer (ALI: 0.2).
        generator_batch_norm: BatchNorm after each generator hidden layer.
        output_activation: "sigmoid" (images in [0, 1]), "tanh" ([-1, 1]),
            "linear" (points) or "auto".

    Example:

    >>> import kgen
    >>> bigan = kgen.build_model("bigan", input_shape=(8, 8, 1), latent_dim=16)
    >>> bigan.compile()  # the generator's optimizer also updates the encoder
    >>> x = kgen.load_dataset("digits").x
    >>> _ = bigan.fit(x, epochs=1, batch_size=64, verbose=0)
    >>> bigan.encode(x[:4]).shape, bigan.reconstruct(x[:4]).shape
    ((4, 16), (4, 8, 8, 1))
    """

    metric_names = ("d_loss", "g_loss", "d_real", "d_fake")
    generator_loss_takes_real = True

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=32, generator_units=(256, 256),
                 encoder_units=(256, 256), discriminator_units=(256, 256), encoder="deterministic", dropout=0.2,
                 generator_batch_norm=True, output_activation="auto", **kwargs):
        if num_classes is not None:
            raise UsageError("BiGAN is unconditional; drop num_classes (model.conditional).")
        super().__init__(input_shape, num_levels, None, latent_dim, output_activation, **kwargs)
        if encoder not in ENCODERS:
            raise UsageError(f'unknown encoder "{encoder}"; choose "deterministic" (BiGAN) or "gaussian" (ALI).')
        self.generator_units = tuple(int(u) for u in generator_units)
        self.encoder_units = tuple(int(u) for u in encoder_units)
        self.discriminator_units = tuple(int(u) for u in discriminator_units)
        self.encoder_kind = encoder
        self.dropout = float(dropout)
        self.generator_batch_norm = bool(generator_batch_norm)

        # === Players: (G, E) against D ===
        self.generator = networks.mlp_generator(self.latent_dim, self.generator_units, self.data_shape,
                                                self.output_activation, batch_norm=self.generator_batch_norm)
        outputs = self.latent_dim * (2 if encoder == "gaussian" else 1)
        self.encoder = networks.mlp_discriminator(self.num_dims, self.encoder_units, outputs=outputs, name="encoder")
        self.discriminator = networks.mlp_discriminator(self.num_dims + self.latent_dim, self.discriminator_units,
                                                        dropout=self.dropout)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator_units": list(self.generator_units),
            "encoder_units": list(self.encoder_units),
            "discriminator_units": list(self.discriminator_units),
            "encoder": self.encoder_kind,
            "dropout": self.dropout,
            "generator_batch_norm": self.generator_batch_norm,
        })
        return config

    # === Players ===

    def generator_variables(self):
        """The generator's and the encoder's variables: one player, one optimizer."""
        return list(self.generator.trainable_variables) + list(self.encoder.trainable_variables)

    def generate(self, latent, labels=None, training=False):
        return self.generator(ops.cast(latent, "float32"), training=training)

    def _flat(self, x):
        return ops.reshape(ops.cast(x, "float32"), (ops.shape(x)[0], self.num_dims))

    def encoder_distribution(self, x, training=False):
        """(mean, log_scale) of E(z | x); log_scale is None for the deterministic encoder."""
        out = self.encoder(self._flat(x), training=training)
        if self.encoder_kind == "deterministic":
            return out, None
        return out[:, :self.latent_dim], ops.clip(out[:, self.latent_dim:], -7.0, 3.0)

    def encode_sample(self, x, training=False):
        """z ~ E(z | x): E(x) (deterministic) or mu + sigma * eps (gaussian, reparameterised)."""
        mean, log_scale = self.encoder_distribution(x, training)
        if log_scale is None:
            return mean
        eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(log_scale) * eps

    def discriminate(self, x, z, training=False):
        """The discriminator's logit l(x, z) per pair (D = sigmoid of it)."""
        joint = ops.concatenate([self._flat(x), ops.cast(z, "float32")], axis=-1)
        return self.discriminator(joint, training=training)[:, 0]

    # === Losses ===

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        z_real = ops.stop_gradient(self.encode_sample(real, training))
        real_logits = self.discriminate(real, z_real, training)
        fake_logits = self.discriminate(fake, latent, training)
        loss = ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))
        return loss, {"d_real": ops.mean(ops.sigmoid(real_logits)), "d_fake": ops.mean(ops.sigmoid(fake_logits))}

    def generator_loss(self, latent, labels=None, training=True, real=None):
        if real is None:
            raise UsageError("BiGAN's encoder trains on the step's real batch: generator_loss(..., real=x).")
        real_logits = self.discriminate(real, self.encode_sample(real, training), training)
        fake_logits = self.discriminate(self.generate(latent, training=training), latent, training)
        return ops.mean(ops.softplus(real_logits)) + ops.mean(ops.softplus(-fake_logits)), {}

    # === Inference ===

    def _check_x(self, x, what):
        x = np.asarray(x, "float32")
        if x.shape[1:] != self.data_shape:
            raise UsageError(f"{what} expects examples of shape {self.data_shape}, got {x.shape[1:]}.")
        return x

    def encode(self, x, batch_size=256):
        """E(x) as NumPy `(n, latent_dim)` (the mean for the gaussian encoder)."""
        x = self._check_x(x, "encode")
        fn = self.compiled_fn("encode", lambda a: self.encoder_distribution(a, training=False)[0])
        return self.batched(fn, [x], batch_size)

    def reconstruct(self, x, batch_size=256):
        """G(E(x)) as NumPy, in data space."""
        x = self._check_x(x, "reconstruct")
        fn = self.compiled_fn("reconstruct",
                              lambda a: self.generate(self.encoder_distribution(a, training=False)[0]))
        return self.batched(fn, [x], batch_size)

    # === Export ===

    litert_endpoints = ("generate", "encode")

    def export_endpoints(self):
        """generate(z) -> examples; encode(x) -> E(x) (the mean)."""
        endpoints = super().export_endpoints()

        def encode(x):
            return self.encoder_distribution(x, training=False)[0]

        endpoints["encode"] = (encode, [((None,) + self.data_shape, "float32")])
        return endpoints
