"""Boundary equilibrium GAN (Berthelot, Schumm & Metz 2017).

The discriminator D is an autoencoder; L(v) = mean |v - D(v)| is its
reconstruction loss on an example. Instead of telling real from fake, it
learns to reconstruct real examples well and generated ones badly, and the
generator learns to produce examples D reconstructs well:

    d_loss = L(x) - k_t L(G(z_D))
    g_loss = L(G(z_G))
    k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1)

k_t (a non-trainable weight, saved with the model) keeps the equilibrium
E[L(G(z))] = gamma E[L(x)]: gamma in (0, 1] trades diversity (high) for
quality (low). The convergence measure

    M_global = L(x) + |gamma L(x) - L(G(z_G))|

falls as training converges and is logged as `convergence` (with `k`,
`ae_real` = L(x) and `ae_fake` = L(G(z_G))). Networks follow the paper at
small scale: ELU convolutions, nearest-neighbour upsampling, an embedding of
`latent_dim` units, and a generator with the decoder's architecture.

#### References

- Berthelot, D., Schumm, T. & Metz, L. BEGAN: Boundary Equilibrium
  Generative Adversarial Networks. arXiv:1703.10717, 2017.
"""

import keras
from keras import layers, ops

from kgen.errors import UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel
from kgen.registry import register_model

ARCHITECTURES = ("mlp", "conv")


def _began_decoder(input_dim, data_shape, filters, num_scales, output_activation, name):
    """Dense -> reshape -> [conv ELU, conv ELU, upsample] * num_scales -> conv ELU x2 -> conv (C)."""
    h, w, c = data_shape
    factor = 2 ** num_scales
    base = (h // factor, w // factor, filters)
    stack = [layers.Dense(base[0] * base[1] * base[2], name="project"), layers.Reshape(base, name="reshape")]
    for i in range(num_scales):
        stack += [
            layers.Conv2D(filters, 3, padding="same", activation="elu", name=f"conv_{i}_a"),
            layers.Conv2D(filters, 3, padding="same", activation="elu", name=f"conv_{i}_b"),
            layers.UpSampling2D(2, interpolation="nearest", name=f"upsample_{i}"),
        ]
    stack += [
        layers.Conv2D(filters, 3, padding="same", activation="elu", name="conv_out_a"),
        layers.Conv2D(filters, 3, padding="same", activation="elu", name="conv_out_b"),
        layers.Conv2D(c, 3, padding="same", activation=output_activation, name="out"),
    ]
    model = keras.Sequential(stack, name=name)
    model.build((None, input_dim))
    return model


def _began_encoder(data_shape, filters, num_scales, latent_dim, name):
    """conv ELU -> [conv ELU, conv ELU, stride-2 conv ELU (n, 2n, 3n, ...)] -> flatten -> Dense(latent_dim)."""
    stack = [layers.Conv2D(filters, 3, padding="same", activation="elu", name="conv_in")]
    for i in range(num_scales):
        width = filters * (i + 1)
        stack += [
            layers.Conv2D(width, 3, padding="same", activation="elu", name=f"conv_{i}_a"),
            layers.Conv2D(width, 3, padding="same", activation="elu", name=f"conv_{i}_b"),
            layers.Conv2D(filters * (i + 2), 3, strides=2, padding="same", activation="elu", name=f"down_{i}"),
        ]
    stack += [layers.Flatten(name="flatten"), layers.Dense(latent_dim, name="embedding")]
    model = keras.Sequential(stack, name=name)
    model.build((None,) + tuple(data_shape))
    return model


def _mlp(input_dim, units, outputs, activation_out, name, out_shape=None):
    stack = [layers.Dense(u, activation="elu", name=f"dense_{i}") for i, u in enumerate(units)]
    stack.append(layers.Dense(outputs, activation=activation_out, name="out"))
    if out_shape is not None:
        stack.append(layers.Reshape(tuple(out_shape), name="reshape"))
    model = keras.Sequential(stack, name=name)
    model.build((None, input_dim))
    return model


@register_model("began", family="adversarial",
                tiny=dict(latent_dim=4, filters=4, num_scales=1))
class BEGAN(AdversarialModel):
    """Boundary equilibrium GAN (Berthelot et al. 2017): autoencoder discriminator, k_t equilibrium.

    Logs `ae_real` = L(x), `ae_fake` = L(G(z)), `k` and the convergence
    measure `convergence` = M_global besides `d_loss` and `g_loss`.

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: must be None.
        latent_dim: size of z ~ N(0, I) and of the autoencoder's embedding.
        architecture: "conv" (the paper, at small scale) or "mlp".
        filters: channels n of the convolutions (the encoder widens to
            n, 2n, 3n, ...).
        num_scales: times the decoder (and generator) upsample by 2: H and
            W must be divisible by `2 ** num_scales`.
        hidden_units: hidden units of each MLP (encoder, decoder, generator).
        gamma: the diversity ratio E[L(G(z))] / E[L(x)] to hold (0.5 in the
            paper's figures).
        k_learning_rate: lambda_k, the proportional gain of k_t (0.001).
        output_activation: "sigmoid", "tanh", "linear" or "auto"; also the
            decoder's output.

    Example:

    >>> import kgen
    >>> began = kgen.build_model("began", input_shape=(8, 8, 1), filters=16)
    >>> began.compile()
    >>> _ = began.fit(kgen.load_dataset("digits").x, epochs=1, verbose=0)
    >>> began.sample(4, seed=0).shape
    (4, 8, 8, 1)
    """

    optimizer_defaults = {"learning_rate": 1e-4, "beta_1": 0.5}
    metric_names = ("d_loss", "g_loss", "ae_real", "ae_fake", "k", "convergence")

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=32, architecture="conv",
                 filters=32, num_scales=1, hidden_units=(256, 256), gamma=0.5, k_learning_rate=0.001,
                 output_activation="auto", **kwargs):
        if num_classes is not None:
            raise UsageError("BEGAN is unconditional; use the conditional GAN (\"cgan\") to condition on labels.")
        super().__init__(input_shape, num_levels, num_classes, latent_dim, output_activation, **kwargs)
        if architecture not in ARCHITECTURES:
            raise UsageError(f'unknown architecture "{architecture}"; choose "mlp" or "conv".')
        if not 0.0 < float(gamma) <= 1.0:
            raise UsageError(f"gamma must lie in (0, 1], got {gamma}.")
        self.architecture = architecture
        self.filters = int(filters)
        self.num_scales = int(num_scales)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.gamma = float(gamma)
        self.k_learning_rate = float(k_learning_rate)

        # === Players ===
        if architecture == "conv":
            networks.check_conv_shape(self.data_shape, self.num_scales, "BEGAN")
            self.generator = _began_decoder(self.latent_dim, self.data_shape, self.filters, self.num_scales,
                                            self.output_activation, "generator")
            self.encoder = _began_encoder(self.data_shape, self.filters, self.num_scales, self.latent_dim, "encoder")
            self.decoder = _began_decoder(self.latent_dim, self.data_shape, self.filters, self.num_scales,
                                          self.output_activation, "decoder")
        else:
            self.generator = _mlp(self.latent_dim, self.hidden_units, self.num_dims, self.output_activation,
                                  "generator", self.data_shape)
            self.encoder = _mlp(self.num_dims, self.hidden_units, self.latent_dim, None, "encoder")
            self.decoder = _mlp(self.latent_dim, self.hidden_units[::-1], self.num_dims, self.output_activation,
                                "decoder", self.data_shape)
        # === State ===
        self.k = self.add_weight(shape=(), initializer="zeros", trainable=False, name="k")
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "architecture": self.architecture,
            "filters": self.filters,
            "num_scales": self.num_scales,
            "hidden_units": list(self.hidden_units),
            "gamma": self.gamma,
            "k_learning_rate": self.k_learning_rate,
        })
        return config

    # === Networks ===

    def discriminator_variables(self):
        return list(self.encoder.trainable_variables) + list(self.decoder.trainable_variables)

    def generate(self, latent, labels=None, training=False):
        return self.generator(ops.cast(latent, "float32"), training=training)

    def reconstruct(self, x, training=False):
        """D(x): the autoencoder's reconstruction."""
        x = ops.cast(x, "float32")
        if self.architecture == "mlp":
            x = ops.reshape(x, (ops.shape(x)[0], self.num_dims))
        return self.decoder(self.encoder(x, training=training), training=training)

    def autoencoder_loss(self, x, training=False):
        """L(x) = mean |x - D(x)| per example."""
        x = ops.cast(x, "float32")
        err = ops.abs(x - self.reconstruct(x, training))
        return ops.mean(ops.reshape(err, (ops.shape(err)[0], -1)), axis=-1)

    # === Losses ===

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        ae_real = ops.mean(self.autoencoder_loss(real, training))
        ae_fake_d = ops.mean(self.autoencoder_loss(fake, training))
        k = ops.stop_gradient(ops.convert_to_tensor(self.k))
        return ae_real - k * ae_fake_d, {"ae_real": ae_real}

    def generator_loss(self, latent, labels=None, training=True):
        ae_fake = ops.mean(self.autoencoder_loss(self.generate(latent, training=training), training))
        return ae_fake, {"ae_fake": ae_fake}

    def end_step(self, logs, training):
        """Updates k_t (training only) and adds `k` and the convergence measure to the logs."""
        ae_real = ops.stop_gradient(ops.convert_to_tensor(logs["ae_real"], "float32"))
        ae_fake = ops.stop_gradient(ops.convert_to_tensor(logs["ae_fake"], "float32"))
        balance = self.gamma * ae_real - ae_fake
        if training:
            self.k.assign(ops.clip(self.k + self.k_learning_rate * balance, 0.0, 1.0))
        logs = dict(logs)
        logs["k"] = ops.convert_to_tensor(self.k)
        logs["convergence"] = ae_real + ops.abs(balance)
        return logs
