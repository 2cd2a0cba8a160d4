"""InfoGAN (Chen et al. 2016): a GAN whose latent codes are made interpretable.

The generator's input is split into incompressible noise z and a structured
code c: here one categorical code c_cat ~ Cat(K) (uniform) and
`num_continuous` continuous codes c_cont ~ U[-1, 1]. InfoGAN maximises the
mutual information I(c; G(z, c)) through its variational lower bound

    L_I = H(c) + E_{c, z}[log Q(c | G(z, c))] <= I(c; G(z, c)),

where Q is a head on the discriminator's shared body: class logits for
c_cat, and a factored Gaussian (mean, log-scale) for c_cont. With the GAN
loss of `gan.py` (non-saturating), the players minimise

    d_loss = GAN discriminator loss + lambda * info_loss
    g_loss = -E log D(G(z, c))      + lambda * info_loss
    info_loss = -E[log Q(c_cat | x)] - E[log Q(c_cont | x)]  (x = G(z, c))

as in the authors' code: the discriminator's optimizer updates the shared
body, the D head and the Q head; the generator's updates G. Logged:
`mi_categorical` = log K - E[-log Q(c_cat | x)] (nats; 0 for a Q at chance,
log K at most) and `mi_continuous` = num_continuous * log 2 + E log Q(c_cont | x).

Sampling with chosen codes: `sample(n, category=3)`, `code_grid()` (the paper's
figure: categories x a sweep of one continuous code, same z),
`sample(n, continuous=[[0.5, -1.0]])` or `generate_with_codes(z, category,
continuous)`; `predict_codes(x)` reads Q on any example.

#### References

- Chen, X., Duan, Y., Houthooft, R., Schulman, J., Sutskever, I. & Abbeel, P.
  InfoGAN: Interpretable Representation Learning by Information Maximizing
  Generative Adversarial Nets. NeurIPS 2016.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from kgen.errors import UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel
from kgen.models.base import LOG_2PI
from kgen.registry import register_model

ARCHITECTURES = ("mlp", "conv")


@register_model("info_gan", family="adversarial",
                tiny=dict(latent_dim=4, num_categories=3, num_continuous=2, generator_filters=(8, 4),
                          discriminator_filters=(4, 8), q_units=8))
class InfoGAN(AdversarialModel):
    """InfoGAN (Chen et al. 2016): categorical and continuous latent codes recovered by a Q head (MI lower bound).

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: must be None (the codes are unsupervised).
        latent_dim: size of the incompressible noise z ~ N(0, I).
        num_categories: K of the categorical code (0: none).
        num_continuous: number of U[-1, 1] continuous codes.
        architecture: "conv" (DCGAN-style players) or "mlp".
        generator_units: hidden units of the MLP generator.
        discriminator_units: hidden units of the MLP discriminator body.
        generator_filters: feature-map channels of the conv generator,
            smallest map first.
        discriminator_filters: channels of the conv discriminator body.
        kernel_size: conv kernel size.
        q_units: hidden units of the Q head.
        info_weight: lambda, the weight of the information term (1 in the
            paper for categorical codes).
        output_activation: "sigmoid", "tanh", "linear" or "auto".

    Example:

    >>> import kgen
    >>> info = kgen.build_model("info_gan", input_shape=(8, 8, 1), num_categories=10)
    >>> info.compile()
    >>> _ = info.fit(kgen.load_dataset("digits").x, epochs=1, verbose=0)
    >>> info.sample(4, seed=0, category=3).shape
    (4, 8, 8, 1)
    """

    metric_names = ("d_loss", "g_loss", "d_real", "d_fake", "info_loss", "mi_categorical", "mi_continuous")

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=16, num_categories=10,
                 num_continuous=2, architecture="conv", generator_units=(256, 256), discriminator_units=(256, 256),
                 generator_filters=(128, 64), discriminator_filters=(64, 128), kernel_size=4, q_units=128,
                 info_weight=1.0, output_activation="auto", **kwargs):
        if num_classes is not None:
            raise UsageError("InfoGAN learns its codes without labels; drop num_classes (model.conditional).")
        super().__init__(input_shape, num_levels, num_classes, latent_dim, output_activation, **kwargs)
        if architecture not in ARCHITECTURES:
            raise UsageError(f'unknown architecture "{architecture}"; choose "mlp" or "conv".')
        if int(num_categories) == 1 or int(num_categories) < 0:
            raise UsageError(f"num_categories must be 0 (no categorical code) or at least 2, got {num_categories}.")
        if int(num_categories) == 0 and int(num_continuous) == 0:
            raise UsageError("InfoGAN needs a code: set num_categories >= 2 or num_continuous >= 1.")
        self.num_categories = int(num_categories)
        self.num_continuous = int(num_continuous)
        self.architecture = architecture
        self.generator_units = tuple(int(u) for u in generator_units)
        self.discriminator_units = tuple(int(u) for u in discriminator_units)
        self.generator_filters = tuple(int(f) for f in generator_filters)
        self.discriminator_filters = tuple(int(f) for f in discriminator_filters)
        self.kernel_size = int(kernel_size)
        self.q_units = int(q_units)
        self.info_weight = float(info_weight)

        # === Players ===
        g_in = self.latent_dim + self.num_categories + self.num_continuous
        if architecture == "mlp":
            self.generator = networks.mlp_generator(g_in, self.generator_units, self.data_shape,
                                                    self.output_activation)
            self.discriminator = networks.mlp_discriminator(self.num_dims, self.discriminator_units, head=False)
        else:
            networks.check_conv_shape(self.data_shape, len(self.generator_filters), "generator")
            networks.check_conv_shape(self.data_shape, len(self.discriminator_filters), "discriminator")
            self.generator = networks.conv_generator(g_in, self.generator_filters, self.data_shape,
                                                     self.output_activation, self.kernel_size)
            self.discriminator = networks.conv_discriminator(self.data_shape, self.discriminator_filters,
                                                             kernel_size=self.kernel_size, head=False)
        features = int(self.discriminator.output_shape[-1])
        self.d_head = layers.Dense(1, name="d_head")
        self.d_head.build((None, features))
        self.q_head = keras.Sequential([
            layers.Dense(self.q_units, name="dense"),
            networks.leaky_relu("lrelu"),
            layers.Dense(self.num_categories + 2 * self.num_continuous, name="out"),
        ], name="q_head")
        self.q_head.build((None, features))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_categories": self.num_categories,
            "num_continuous": self.num_continuous,
            "architecture": self.architecture,
            "generator_units": list(self.generator_units),
            "discriminator_units": list(self.discriminator_units),
            "generator_filters": list(self.generator_filters),
            "discriminator_filters": list(self.discriminator_filters),
            "kernel_size": self.kernel_size,
            "q_units": self.q_units,
            "info_weight": self.info_weight,
        })
        return config

    # === Players ===

    def discriminator_variables(self):
        return (list(self.discriminator.trainable_variables) + list(self.d_head.trainable_variables)
                + list(self.q_head.trainable_variables))

    def draw_latent(self, batch):
        """(z, category (int32), continuous codes) for `batch` fakes."""
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        if self.num_categories:
            category = keras.random.randint((batch,), 0, self.num_categories, seed=self.seed_generator)
        else:
            category = ops.zeros((batch,), "int32")
        if self.num_continuous:
            continuous = keras.random.uniform((batch, self.num_continuous), -1.0, 1.0, seed=self.seed_generator)
        else:
            continuous = ops.zeros((batch, 0), "float32")
        return z, ops.cast(category, "int32"), continuous

    def generate(self, latent, labels=None, training=False):
        z, category, continuous = latent
        parts = [ops.cast(z, "float32")]
        if self.num_categories:
            parts.append(ops.one_hot(ops.cast(category, "int32"), self.num_categories))
        if self.num_continuous:
            parts.append(ops.cast(continuous, "float32"))
        return self.generator(ops.concatenate(parts, axis=-1), training=training)

    def _features(self, x, training):
        x = ops.cast(x, "float32")
        if self.architecture == "mlp":
            x = ops.reshape(x, (ops.shape(x)[0], self.num_dims))
        return self.discriminator(x, training=training)

    def discriminate(self, x, training=False):
        """The discriminator's logit per example."""
        return self.d_head(self._features(x, training))[:, 0]

    def q_distribution(self, features):
        """Q(c | x) from body features: (category logits, continuous mean, continuous log-scale)."""
        out = self.q_head(features)
        k, m = self.num_categories, self.num_continuous
        return out[:, :k], out[:, k:k + m], ops.clip(out[:, k + m:], -5.0, 2.0)

    def info_terms(self, features, category, continuous):
        """Per-batch (info_loss, mi_categorical, mi_continuous) in nats."""
        logits, mean, log_scale = self.q_distribution(features)
        info_loss = 0.0
        mi_cat = ops.zeros(())
        mi_cont = ops.zeros(())
        if self.num_categories:
            log_q = ops.log_softmax(logits, axis=-1)
            ce = -ops.mean(ops.sum(log_q * ops.one_hot(category, self.num_categories), axis=-1))
            info_loss = info_loss + ce
            mi_cat = math.log(self.num_categories) - ce
        if self.num_continuous:
            c = ops.cast(continuous, "float32")
            ll = -0.5 * (LOG_2PI + 2.0 * log_scale + ops.square((c - mean) * ops.exp(-log_scale)))
            nll = -ops.mean(ops.sum(ll, axis=-1))
            info_loss = info_loss + nll
            mi_cont = self.num_continuous * math.log(2.0) - nll  # H(U[-1, 1]) = log 2 per code
        return info_loss, mi_cat, mi_cont

    # === Losses ===

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        _, category, continuous = latent
        real_logits = self.d_head(self._features(real, training))[:, 0]
        fake_features = self._features(fake, training)
        fake_logits = self.d_head(fake_features)[:, 0]
        gan_loss = ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))
        info_loss, mi_cat, mi_cont = self.info_terms(fake_features, category, continuous)
        logs = {"d_real": ops.mean(ops.sigmoid(real_logits)), "d_fake": ops.mean(ops.sigmoid(fake_logits))}
        return gan_loss + self.info_weight * info_loss, logs

    def generator_loss(self, latent, labels=None, training=True):
        _, category, continuous = latent
        features = self._features(self.generate(latent, training=training), training)
        fake_logits = self.d_head(features)[:, 0]
        info_loss, mi_cat, mi_cont = self.info_terms(features, category, continuous)
        loss = ops.mean(ops.softplus(-fake_logits)) + self.info_weight * info_loss
        return loss, {"info_loss": info_loss, "mi_categorical": mi_cat, "mi_continuous": mi_cont}

    # === Sampling ===

    def noise_spec(self, n):
        """z ~ N(0, I) and uniforms u: u[:, 0] picks the category, u[:, 1:] the continuous codes (2u - 1)."""
        return [("normal", (n, self.latent_dim)), ("uniform", (n, 1 + self.num_continuous))]

    def codes_from_uniform(self, u):
        u = np.asarray(u, "float32")
        category = np.minimum((u[:, 0] * max(self.num_categories, 1)).astype("int32"),
                              max(self.num_categories - 1, 0))
        return category, 2.0 * u[:, 1:] - 1.0

    def generate_with_codes(self, z, category=None, continuous=None):
        """Examples (NumPy) for noise z and chosen codes.

        Args:
            z: `(n, latent_dim)` noise.
            category: int or `(n,)` ints in 0..K-1 (default 0).
            continuous: `(num_continuous,)` or `(n, num_continuous)` values
                (default 0; the prior is U[-1, 1], values beyond extrapolate).
        """
        z = np.asarray(z, "float32")
        n = len(z)
        category = np.broadcast_to(np.asarray(0 if category is None else category, "int32"), (n,))
        if self.num_categories and (category.min() < 0 or category.max() >= self.num_categories):
            raise UsageError(f"category must lie in 0..{self.num_categories - 1}.")
        continuous = np.zeros((n, self.num_continuous), "float32") if continuous is None else continuous
        continuous = np.broadcast_to(np.asarray(continuous, "float32"), (n, self.num_continuous))
        fn = self.compiled_fn("generate", lambda a, b, c: self.generate((a, b, c), training=False))
        return self.batched(fn, [z, np.ascontiguousarray(category), np.ascontiguousarray(continuous)], 256)

    def sample_from_noise(self, z, u, labels=None):
        category, continuous = self.codes_from_uniform(u)
        return self.generate_with_codes(z, category, continuous)

    def sample(self, n, seed=None, labels=None, temperature=1.0, batch_size=256, category=None, continuous=None):
        """`n` samples; `category` / `continuous` fix codes (else drawn from their priors)."""
        if labels is not None:
            raise UsageError("InfoGAN is not conditional on labels; choose a code with category=K.")
        z, u = self.draw_noise(n, seed)
        z = z * temperature
        drawn_category, drawn_continuous = self.codes_from_uniform(u)
        category = drawn_category if category is None else category
        continuous = drawn_continuous if continuous is None else continuous
        return self.generate_with_codes(z, category, continuous)

    def code_grid(self, num_steps=8, code=0, seed=0):
        """The paper's figure: one noise z, every category (rows) x a sweep of one continuous code (columns).

        Args:
            num_steps: values of continuous code `code`, evenly from -1 to 1
                (the other codes stay 0).
            code: which continuous code to sweep.
            seed: seed of the shared noise z.

        Returns:
            `(rows * num_steps,) + input_shape` examples, row-major; rows are
            the categories (one row without a categorical code).
        """
        rows = max(self.num_categories, 1)
        steps = int(num_steps) if self.num_continuous else 1
        if self.num_continuous and not 0 <= code < self.num_continuous:
            raise UsageError(f"code must lie in 0..{self.num_continuous - 1}.")
        z = np.repeat(self.draw_noise(1, seed)[0], rows * steps, axis=0)
        category = np.repeat(np.arange(rows, dtype="int32"), steps)
        continuous = np.zeros((rows * steps, self.num_continuous), "float32")
        if self.num_continuous:
            continuous[:, code] = np.tile(np.linspace(-1.0, 1.0, steps, dtype="float32"), rows)
        return self.generate_with_codes(z, category, continuous)

    def predict_codes(self, x, batch_size=256):
        """Q's reading of examples: {"category": argmax (n,), "continuous": mean (n, num_continuous)}."""
        def run(a):
            logits, mean, _ = self.q_distribution(self._features(a, False))
            return {"category": ops.argmax(logits, axis=-1) if self.num_categories else ops.zeros((ops.shape(a)[0],)),
                    "continuous": mean}

        return self.batched(self.compiled_fn("codes", run), [np.asarray(x, "float32")], batch_size)

    # === Export ===

    def export_endpoints(self):
        """generate(z, category (int32), continuous) -> examples."""
        def generate(z, category, continuous):
            return self.generate((z, category, continuous), training=False)

        return {"generate": (generate, [((None, self.latent_dim), "float32"), ((None,), "int32"),
                                        ((None, self.num_continuous), "float32")])}
