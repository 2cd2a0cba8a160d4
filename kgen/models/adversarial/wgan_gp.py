"""Wasserstein GAN with gradient penalty (Gulrajani et al. 2017).

A critic C (no sigmoid) estimates the Wasserstein-1 distance between data and
model, W = max_{||C||_L <= 1} E_x[C(x)] - E_z[C(G(z))], and the generator
minimises that estimate. Instead of clipping weights (Arjovsky et al. 2017),
the 1-Lipschitz constraint is enforced softly on points between real and
fake examples:

    x_hat = a x + (1 - a) G(z),   a ~ U[0, 1], one a per example
    d_loss = E[C(G(z))] - E[C(x)] + lambda E[(||grad_x_hat C(x_hat)||_2 - 1)^2]
    g_loss = -E[C(G(z))]

The critic makes `n_critic` updates per generator update (5 in the paper),
each on the step's real batch and fresh fakes. The critic must not normalize
across the batch (the penalty is per example): it uses layer normalization
or none. The gradient inside the loss runs through
`kgen.backend.adversarial.input_gradient`, which stays differentiable for the
critic's update on every backend. Logs `w_distance` (E C(x) - E C(G(z)), the
critic's estimate, without the penalty) and `gradient_penalty`.

#### References

- Gulrajani, I., Ahmed, F., Arjovsky, M., Dumoulin, V. & Courville, A.
  Improved Training of Wasserstein GANs. NeurIPS 2017.
- Arjovsky, M., Chintala, S. & Bottou, L. Wasserstein GAN. ICML 2017.
"""

import keras
from keras import ops

from kgen.backend import adversarial
from kgen.errors import UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel, GaussianObservation
from kgen.registry import register_model

ARCHITECTURES = ("mlp", "conv")


@register_model("wgan_gp", family="adversarial",
                tiny=dict(latent_dim=4, generator_filters=(8, 4), critic_filters=(4, 8)))
class WGANGP(GaussianObservation, AdversarialModel):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017): critic, penalty on interpolates, n_critic.

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: must be None.
        latent_dim: size of z ~ N(0, I).
        architecture: "conv" (DCGAN-style generator, strided-conv critic) or
            "mlp" (e.g. 2-D toy densities).
        generator_units: hidden units of the MLP generator.
        critic_units: hidden units of the MLP critic (empty: a linear critic).
        generator_filters: feature-map channels of the conv generator,
            smallest map first.
        critic_filters: channels of the conv critic's stride-2 convolutions.
        kernel_size: conv kernel size.
        critic_norm: "layer" (the paper's choice) or "none"; batch
            normalization is refused (it breaks the per-example penalty).
        gradient_penalty_weight: lambda (10 in the paper).
        n_critic: critic updates per generator update (5 in the paper).
        output_activation: "sigmoid", "tanh", "linear" or "auto".

    Example:

    >>> import kgen
    >>> wgan = kgen.build_model("wgan_gp", input_shape=(2,), architecture="mlp")
    >>> wgan.compile()  # Adam(1e-4, beta_1=0, beta_2=0.9), as in the paper
    >>> x = kgen.load_dataset("moons").x
    >>> _ = wgan.fit(x, epochs=1, batch_size=256, verbose=0)
    >>> wgan.sample(8, seed=0).shape
    (8, 2)
    """

    optimizer_defaults = {"learning_rate": 1e-4, "beta_1": 0.0, "beta_2": 0.9}
    metric_names = ("d_loss", "g_loss", "w_distance", "gradient_penalty")

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=64, architecture="conv",
                 generator_units=(256, 256), critic_units=(256, 256), generator_filters=(128, 64),
                 critic_filters=(64, 128), kernel_size=4, critic_norm="layer", gradient_penalty_weight=10.0,
                 n_critic=5, output_activation="auto", **kwargs):
        if num_classes is not None:
            raise UsageError("WGANGP is unconditional; use the conditional GAN (\"cgan\") to condition on labels.")
        super().__init__(input_shape, num_levels, num_classes, latent_dim, output_activation, **kwargs)
        if architecture not in ARCHITECTURES:
            raise UsageError(f'unknown architecture "{architecture}"; choose "mlp" or "conv".')
        if critic_norm == "batch":
            raise UsageError(
                "a WGAN-GP critic must not use batch normalization (the gradient penalty is per example); "
                "use critic_norm = \"layer\" or \"none\"."
            )
        networks.check_norm(critic_norm)
        if int(n_critic) < 1:
            raise UsageError(f"n_critic must be at least 1, got {n_critic}.")
        self.architecture = architecture
        self.generator_units = tuple(int(u) for u in generator_units)
        self.critic_units = tuple(int(u) for u in critic_units)
        self.generator_filters = tuple(int(f) for f in generator_filters)
        self.critic_filters = tuple(int(f) for f in critic_filters)
        self.kernel_size = int(kernel_size)
        self.critic_norm = critic_norm
        self.gradient_penalty_weight = float(gradient_penalty_weight)
        self.n_critic = int(n_critic)
        self.discriminator_steps = self.n_critic

        # === Players ===
        if architecture == "mlp":
            self.generator = networks.mlp_generator(
                self.latent_dim, self.generator_units, self.data_shape, self.output_activation
            )
            # No output bias: it cancels out of E C(x) - E C(G(z)) and the penalty.
            self.discriminator = networks.mlp_discriminator(self.num_dims, self.critic_units, name="critic",
                                                            head_bias=False)
        else:
            networks.check_conv_shape(self.data_shape, len(self.generator_filters), "generator")
            networks.check_conv_shape(self.data_shape, len(self.critic_filters), "critic")
            self.generator = networks.conv_generator(
                self.latent_dim, self.generator_filters, self.data_shape, self.output_activation, self.kernel_size
            )
            self.discriminator = networks.conv_discriminator(
                self.data_shape, self.critic_filters, norm=critic_norm, kernel_size=self.kernel_size, name="critic",
                head_bias=False,
            )
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "architecture": self.architecture,
            "generator_units": list(self.generator_units),
            "critic_units": list(self.critic_units),
            "generator_filters": list(self.generator_filters),
            "critic_filters": list(self.critic_filters),
            "kernel_size": self.kernel_size,
            "critic_norm": self.critic_norm,
            "gradient_penalty_weight": self.gradient_penalty_weight,
            "n_critic": self.n_critic,
        })
        return config

    # === Networks ===

    def generate(self, latent, labels=None, training=False):
        return self.generator(ops.cast(latent, "float32"), training=training)

    def critic(self, x, training=False):
        """C(x), one real number per example."""
        x = ops.cast(x, "float32")
        if self.architecture == "mlp":
            x = ops.reshape(x, (ops.shape(x)[0], self.num_dims))
        return self.discriminator(x, training=training)[:, 0]

    # === Losses ===

    def draw_alpha(self, batch):
        """One interpolation weight a ~ U[0, 1] per example, shaped to broadcast over an example."""
        return keras.random.uniform((batch,) + (1,) * len(self.data_shape), seed=self.seed_generator)

    def gradient_penalty(self, real, fake, alpha=None, critic=None):
        """lambda * mean_i (||grad C(x_hat_i)||_2 - 1)^2 with x_hat_i = a_i real_i + (1 - a_i) fake_i.

        Args:
            real, fake: batches of the same shape.
            alpha: per-example weights `(batch, 1, ...)`; drawn when None.
            critic: the function to penalise (default: this model's critic).
        """
        real = ops.cast(real, "float32")
        fake = ops.cast(fake, "float32")
        alpha = self.draw_alpha(ops.shape(real)[0]) if alpha is None else ops.cast(alpha, "float32")
        critic = critic or (lambda v: self.critic(v, training=True))
        mixed = alpha * real + (1.0 - alpha) * fake
        grads = adversarial.input_gradient(critic, mixed)
        grads = ops.reshape(grads, (ops.shape(grads)[0], -1))
        norms = ops.sqrt(ops.sum(ops.square(grads), axis=-1) + 1e-12)
        return self.gradient_penalty_weight * ops.mean(ops.square(norms - 1.0))

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        real_scores = self.critic(real, training=training)
        fake_scores = self.critic(fake, training=training)
        w_distance = ops.mean(real_scores) - ops.mean(fake_scores)
        penalty = self.gradient_penalty(real, fake)
        return penalty - w_distance, {"w_distance": w_distance, "gradient_penalty": penalty}

    def generator_loss(self, latent, labels=None, training=True):
        fake_scores = self.critic(self.generate(latent, training=training), training=training)
        return -ops.mean(fake_scores), {}
