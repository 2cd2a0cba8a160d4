"""Boundary-seeking GAN for discrete data (Hjelm et al. 2018).

The generator maps z ~ N(0, I) to the logits of a factorized distribution
over the pixels, g(x | z) = prod_d g(x_d | z): Bernoulli for binary images
(one logit a pixel), categorical over the grey levels otherwise (one logit a
level and pixel). Its samples are discrete, so the discriminator's verdict
cannot be back-propagated through them. BGAN's estimator: for the GAN value
function the optimal discriminator D*(x) = sigmoid(d*(x)) gives
p_data(x) / p_g(x) = D* / (1 - D*) = exp(d*(x)), so the discriminator's logit
is an unnormalized log importance weight, log w(x) = d(x). With M samples
x_1..x_M ~ g(. | z) per noise vector (20 in the paper) the weights are
normalized over the M samples,

    w~_m = w(x_m) / sum_m' w(x_m') = softmax_m(d(x_1), ..., d(x_M)),

and the generator moves g(. | z) toward the importance-weighted target
(the boundary of the discriminator, where D = 1/2):

    g_loss = -1/N sum_n sum_m w~_mn log g(x_mn | z_n)     (w~ held constant)

whose gradient is the policy-gradient-like estimator of Sec. 2.3 (Eq. 9):
no gradient passes through the samples, only through log g. With a constant
discriminator the weights are uniform, 1/M, and the loss is the mean
negative log-likelihood of the generator's own samples. The discriminator
is trained with the usual GAN cross-entropy on the real batch against all
M x N samples.

`estimator = "straight_through"` gives the baseline the paper compares with:
the same networks and samples, but the generator is trained by the
non-saturating GAN loss -log D(x~) through a straight-through estimate of
each sample (Bengio et al. 2013): the forward value is the discrete sample,
the backward pass treats it as the identity of its probabilities,
x~ = p + stop_gradient(x - p) (the one-hot of a categorical pixel likewise,
the pixel value then being sum_k level_k onehot_k).

Sampling: the generator's noise is (z, u), u ~ U[0, 1) one uniform a pixel;
a Bernoulli pixel is 1 when u < sigmoid(logit), a categorical pixel is the
level whose CDF interval holds u. Both are deterministic given the noise, so
samples repeat by seed and the exported `sample` endpoint has no random ops.

#### References

- Hjelm, R. D., Jacob, A. P., Che, T., Trischler, A., Cho, K. & Bengio, Y.
  Boundary-Seeking Generative Adversarial Networks. ICLR 2018.
- Bengio, Y., Leonard, N. & Courville, A. Estimating or Propagating Gradients
  Through Stochastic Neurons for Conditional Computation. arXiv:1308.3432, 2013.
"""

import keras
import numpy as np
from keras import ops

from kgen.backend import adversarial
from kgen.errors import DataError, UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel
from kgen.registry import register_model

ARCHITECTURES = ("mlp", "conv")
ESTIMATORS = ("bgan", "straight_through")


def normalized_importance_weights(d_logits):
    """w~ = softmax over the M samples (axis 0) of the discriminator's logits, shape (M, N)."""
    return ops.softmax(ops.cast(d_logits, "float32"), axis=0)


@register_model("bgan", family="adversarial",
                tiny=dict(latent_dim=4, generator_units=(8,), discriminator_units=(8,), num_samples=3))
class BGAN(AdversarialModel):
    """Boundary-seeking GAN (Hjelm et al. 2018): discrete samples, importance-weighted generator updates.

    Logs `d_loss`, `g_loss`, the discriminator's mean probability of "real"
    on real (`d_real`) and generated (`d_fake`) batches, and `ess`, the
    effective sample size 1 / sum_m w~_m^2 of the normalized weights (M when
    they are uniform, 1 when one sample takes all the weight; bgan only).

    Args:
        input_shape: `(H, W, C)` images or `(D,)` vectors of discrete values.
        num_levels: values a pixel takes: 2 (binary data, Bernoulli
            generator) or more (grey levels, categorical generator).
        num_classes: must be None.
        latent_dim: size of z ~ N(0, I).
        estimator: "bgan" (normalized importance weights, the paper) or
            "straight_through" (the baseline: non-saturating GAN loss through
            straight-through samples).
        num_samples: M, samples drawn per noise vector (20 in the paper).
        architecture: "mlp" or "conv" (DCGAN-like players).
        generator_units, discriminator_units: hidden sizes of the MLP players.
        generator_batch_norm: BatchNorm after the MLP generator's hidden layers.
        generator_filters, discriminator_filters, kernel_size: the conv
            players (see `dcgan`); the generator's last layer emits one logit
            per level (or one per pixel for binary data).
        discriminator_norm: the conv discriminator's normalization, "batch",
            "layer" or "none".
        dropout: dropout after each MLP discriminator hidden layer.

    Example:

    >>> import kgen
    >>> import numpy as np
    >>> data = kgen.load_dataset("digits")                # 17 grey levels
    >>> bgan = kgen.build_model("bgan", input_shape=data.shape, num_levels=data.num_levels,
    ...                         generator_units=(64,), discriminator_units=(64,), num_samples=4)
    >>> bgan.compile()
    >>> _ = bgan.fit(data.x[:128], epochs=1, batch_size=32, verbose=0)
    >>> x = bgan.sample(3, seed=0)                          # pixels on the 17 levels
    >>> bool(np.all(np.isin(np.round(x * 16), np.arange(17))))
    True
    """

    @property
    def metric_names(self):
        # `ess` exists for the importance weights only (read by the base's __init__, before
        # `self.estimator` is set, hence the plain attribute written first).
        ess = ("ess",) if self.__dict__.get("_weights_logged", True) else ()
        return ("d_loss", "g_loss", "d_real", "d_fake") + ess
    optimizer_defaults = {"learning_rate": 1e-4, "beta_1": 0.5}

    def __init__(self, input_shape, num_levels=2, num_classes=None, latent_dim=64, estimator="bgan", num_samples=20,
                 architecture="mlp", generator_units=(256, 256), discriminator_units=(256, 256),
                 generator_batch_norm=True, generator_filters=(128, 64), discriminator_filters=(64, 128),
                 kernel_size=4, discriminator_norm="batch", dropout=0.0, **kwargs):
        kwargs.pop("output_activation", None)
        if num_classes is not None:
            raise UsageError("BGAN is unconditional: it takes no num_classes.")
        if num_levels is None or int(num_levels) < 2:
            raise UsageError(
                "BGAN generates discrete data: it needs num_levels (2 for binary images, or the grey levels); "
                "for continuous data use gan or dcgan."
            )
        object.__setattr__(self, "_weights_logged", estimator == "bgan")
        super().__init__(input_shape, num_levels, None, latent_dim, output_activation="linear", **kwargs)
        if estimator not in ESTIMATORS:
            raise UsageError(f'unknown estimator "{estimator}"; choose one of {", ".join(ESTIMATORS)}.')
        if architecture not in ARCHITECTURES:
            raise UsageError(f'unknown architecture "{architecture}"; choose "mlp" or "conv".')
        if isinstance(num_samples, bool) or int(num_samples) != num_samples or int(num_samples) < 1:
            raise UsageError(f"num_samples (M) must be an integer >= 1, got {num_samples}.")
        if estimator == "bgan" and int(num_samples) < 2:
            raise UsageError("BGAN normalizes its weights over the M samples of a noise vector: num_samples must "
                             "be at least 2 (the paper draws 20).")
        self.estimator = estimator
        self.num_samples = int(num_samples)
        self.architecture = architecture
        self.generator_units = tuple(int(u) for u in generator_units)
        self.discriminator_units = tuple(int(u) for u in discriminator_units)
        self.generator_batch_norm = bool(generator_batch_norm)
        self.generator_filters = tuple(int(f) for f in generator_filters)
        self.discriminator_filters = tuple(int(f) for f in discriminator_filters)
        self.kernel_size = int(kernel_size)
        self.discriminator_norm = networks.check_norm(discriminator_norm)
        self.dropout = float(dropout)
        # Logits a pixel: one (Bernoulli) or one per level (categorical).
        self.logits_per_dim = 1 if self.num_levels == 2 else self.num_levels

        # === Players ===
        k = self.logits_per_dim
        if architecture == "mlp":
            self.generator = networks.mlp_generator(self.latent_dim, self.generator_units, (self.num_dims * k,),
                                                    "linear", batch_norm=self.generator_batch_norm)
            self.discriminator = networks.mlp_discriminator(self.num_dims, self.discriminator_units,
                                                            dropout=self.dropout)
        else:
            networks.check_conv_shape(self.data_shape, len(self.generator_filters), "generator")
            networks.check_conv_shape(self.data_shape, len(self.discriminator_filters), "discriminator")
            h, w, c = self.data_shape
            self.generator = networks.conv_generator(self.latent_dim, self.generator_filters, (h, w, c * k),
                                                     "linear", self.kernel_size)
            self.discriminator = networks.conv_discriminator(self.data_shape, self.discriminator_filters,
                                                             norm=self.discriminator_norm,
                                                             kernel_size=self.kernel_size)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.pop("output_activation", None)
        config.update({
            "estimator": self.estimator,
            "num_samples": self.num_samples,
            "architecture": self.architecture,
            "generator_units": list(self.generator_units),
            "discriminator_units": list(self.discriminator_units),
            "generator_batch_norm": self.generator_batch_norm,
            "generator_filters": list(self.generator_filters),
            "discriminator_filters": list(self.discriminator_filters),
            "kernel_size": self.kernel_size,
            "discriminator_norm": self.discriminator_norm,
            "dropout": self.dropout,
        })
        return config

    def check_data(self, data):
        super().check_data(data)
        if data.num_levels != self.num_levels:
            raise DataError(
                f"{data.name}: pixels take {data.num_levels or 'continuous'} levels, the BGAN expects "
                f"{self.num_levels}; " + ("set data.binarize = \"static\" or \"dynamic\"."
                                          if self.num_levels == 2 else "train a new model on this data set.")
            )

    # === The generator's distribution ===

    def logits(self, latent, training=False):
        """The generator's logits: (N, D) for binary data, (N, D, L) for L levels."""
        out = self.generator(ops.cast(latent, "float32"), training=training)
        if self.logits_per_dim == 1:
            return ops.reshape(out, (-1, self.num_dims))
        return ops.reshape(out, (-1, self.num_dims, self.logits_per_dim))

    def _levels(self):
        return ops.arange(self.num_levels, dtype="float32") / float(self.num_levels - 1)

    def mean_image(self, logits):
        """E[x | z] in data space: sigmoid (binary) or the expected level (categorical)."""
        if self.logits_per_dim == 1:
            mean = ops.sigmoid(logits)
        else:
            mean = ops.sum(ops.softmax(logits, axis=-1) * self._levels(), axis=-1)
        return ops.reshape(mean, (-1,) + self.data_shape)

    def draw_indices(self, logits, u):
        """Discrete samples as level indices (float), (..., N, D), from uniforms u (..., N, D) in [0, 1).

        Binary: 1 when u < sigmoid(logit). Categorical: the level whose CDF interval holds u.
        """
        u = ops.cast(u, "float32")
        if self.logits_per_dim == 1:
            return ops.cast(u < ops.sigmoid(logits), "float32")
        probs = ops.softmax(logits, axis=-1)
        cdf = ops.cumsum(probs, axis=-1)
        below = ops.sum(ops.cast(cdf < u[..., None] * cdf[..., -1:], "float32"), axis=-1)
        return ops.minimum(below, float(self.num_levels - 1))

    def to_data(self, indices):
        """Level indices (..., N, D) -> images (..., N) + data_shape in [0, 1]."""
        x = indices / float(self.num_levels - 1)
        lead = tuple(ops.shape(indices)[:-1])
        return ops.reshape(x, lead + self.data_shape)

    def log_likelihood(self, logits, indices):
        """log g(x | z) summed over pixels: logits (N, D[, L]), indices (..., N, D) -> (..., N)."""
        if self.logits_per_dim == 1:
            return ops.sum(indices * logits - ops.softplus(logits), axis=-1)
        logp = ops.log_softmax(logits, axis=-1)
        onehot = ops.one_hot(ops.cast(indices, "int32"), self.num_levels)
        return ops.sum(ops.sum(onehot * logp, axis=-1), axis=-1)

    def straight_through(self, logits, u):
        """Samples in data space whose forward value is discrete and whose gradient is the identity.

        Binary: x~ = p + stop_gradient(x - p), p = sigmoid(logit). Categorical: the one-hot h of the
        drawn level as q + stop_gradient(h - q), q = softmax(logits), and x~ = sum_k level_k h~_k.
        Shapes as `draw_indices`, returned as `(..., N) + data_shape`.
        """
        indices = ops.stop_gradient(self.draw_indices(logits, u))
        if self.logits_per_dim == 1:
            p = ops.sigmoid(logits)
            return self.to_data((p + ops.stop_gradient(indices - p)) * float(self.num_levels - 1))
        q = ops.softmax(logits, axis=-1)
        onehot = ops.one_hot(ops.cast(indices, "int32"), self.num_levels)
        h = q + ops.stop_gradient(onehot - q)
        index = ops.sum(h * ops.arange(self.num_levels, dtype="float32"), axis=-1)
        return self.to_data(index)

    def generate(self, latent, labels=None, training=False):
        """The generator's mean image E[x | z] (what latent walks show; samples need uniforms too)."""
        return self.mean_image(self.logits(latent, training=training))

    def sample_images(self, latent, u, training=False):
        """Discrete samples (N,) + data_shape for latents (N, latent_dim) and uniforms (N, D)."""
        logits = self.logits(latent, training=training)
        return self.to_data(self.draw_indices(logits, ops.reshape(ops.cast(u, "float32"), (-1, self.num_dims))))

    # === Losses ===

    def draw_uniforms(self, batch):
        """U[0, 1) noise for M samples of each of `batch` noise vectors: (M, batch, D)."""
        return keras.random.uniform((self.num_samples, batch, self.num_dims), seed=self.seed_generator)

    def discriminate(self, x, training=False):
        """The discriminator's logit d(x) per example (D(x) = sigmoid(d(x)), log w(x) = d(x))."""
        x = ops.cast(x, "float32")
        if self.architecture == "mlp":
            x = ops.reshape(x, (ops.shape(x)[0], self.num_dims))
        return self.discriminator(x, training=training)[:, 0]

    def _discriminate_samples(self, samples, training):
        """d(x) of samples (M, N) + data_shape -> (M, N)."""
        m, n = ops.shape(samples)[0], ops.shape(samples)[1]
        flat = ops.reshape(samples, (m * n,) + self.data_shape)
        return ops.reshape(self.discriminate(flat, training=training), (m, n))

    def discriminator_loss(self, real, fake, latent=None, labels=None, training=True):
        """Cross-entropy of real examples against fakes (any number of them, `(K,) + data_shape`)."""
        real_logits = self.discriminate(real, training=training)
        fake_logits = self.discriminate(fake, training=training)
        loss = ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))
        return loss, {"d_real": ops.mean(ops.sigmoid(real_logits)), "d_fake": ops.mean(ops.sigmoid(fake_logits))}

    def generator_loss(self, latent, labels=None, training=True, uniforms=None):
        """The generator's loss for latents (N, latent_dim) and uniforms (M, N, D) (drawn when None).

        bgan: -1/N sum_n sum_m w~_mn log g(x_mn | z_n), w~ = softmax_m d(x_mn) held constant.
        straight_through: mean over the M x N straight-through samples of -log D(x~).
        """
        batch = ops.shape(latent)[0]
        u = self.draw_uniforms(batch) if uniforms is None else ops.cast(uniforms, "float32")
        logits = self.logits(latent, training=training)
        if self.estimator == "straight_through":
            samples = self.straight_through(logits, u)
            d = self._discriminate_samples(samples, training)
            return ops.mean(ops.softplus(-d)), {}
        indices = ops.stop_gradient(self.draw_indices(logits, u))
        d = ops.stop_gradient(self._discriminate_samples(self.to_data(indices), training))
        weights = ops.stop_gradient(normalized_importance_weights(d))
        log_g = self.log_likelihood(logits, indices)  # (M, N)
        loss = -ops.mean(ops.sum(weights * log_g, axis=0))
        ess = ops.mean(1.0 / ops.sum(ops.square(weights), axis=0))
        return loss, {"ess": ess}

    # === Training ===

    def adversarial_step(self, data):
        """The discriminator on the real batch against M samples of each of N fresh noise vectors, then the
        generator on the same noise and samples (its loss re-evaluated by the updated discriminator)."""
        real, _ = self.unpack_batch(data)
        batch = ops.shape(real)[0]
        opt = self.optimizer
        d_vars, g_vars = self.discriminator_variables(), self.generator_variables()
        with adversarial.no_grad():
            latent = self.draw_latent(batch)
            u = self.draw_uniforms(batch)
            logits = ops.stop_gradient(self.logits(latent, training=True))
            fake = ops.stop_gradient(self.to_data(self.draw_indices(logits, u)))
            fake = ops.reshape(fake, (self.num_samples * batch,) + self.data_shape)

        def d_loss_fn():
            return self.discriminator_loss(real, fake, training=True)

        (d_loss, d_logs), grads = adversarial.value_and_grad(d_loss_fn, d_vars, has_aux=True)
        adversarial.apply_gradients(opt.discriminator_optimizer, grads, d_vars)

        def g_loss_fn():
            return self.generator_loss(latent, training=True, uniforms=u)

        (g_loss, g_logs), grads = adversarial.value_and_grad(g_loss_fn, g_vars, has_aux=True)
        adversarial.apply_gradients(opt.generator_optimizer, grads, g_vars)
        with adversarial.no_grad():
            opt.iterations.assign_add(1)
        return self._record({"d_loss": d_loss, "g_loss": g_loss, **d_logs, **g_logs})

    def evaluation_step(self, data):
        real, _ = self.unpack_batch(data)
        batch = ops.shape(real)[0]
        latent = self.draw_latent(batch)
        u = self.draw_uniforms(batch)
        fake = self.to_data(self.draw_indices(self.logits(latent), u))
        d_loss, d_logs = self.discriminator_loss(real, ops.reshape(fake, (-1,) + self.data_shape), training=False)
        g_loss, g_logs = self.generator_loss(latent, training=False, uniforms=u)
        return self._record({"d_loss": d_loss, "g_loss": g_loss, **d_logs, **g_logs})

    # === Sampling ===

    def noise_spec(self, n):
        return [("normal", (n, self.latent_dim)), ("uniform", (n, self.num_dims))]

    def sample_from_noise(self, z, u=None, labels=None):
        """Discrete samples (NumPy) for latents z and uniforms u (n, D); the mean images E[x | z] without u."""
        if u is None:
            fn = self.compiled_fn("mean", lambda z: self.generate(z, training=False))
            return fn(np.asarray(z, "float32"))
        fn = self.compiled_fn("sample", lambda z, u: self.sample_images(z, u, training=False))
        return fn(np.asarray(z, "float32"), np.asarray(u, "float32").reshape(len(z), self.num_dims))

    # === Export ===

    litert_endpoints = ("sample", "generate")

    def export_endpoints(self):
        """sample(z, u) -> discrete images; generate(z) -> the mean images E[x | z]."""
        def sample(z, u):
            return self.sample_images(z, u, training=False)

        def generate(z):
            return self.generate(z, training=False)

        z_spec = ((None, self.latent_dim), "float32")
        return {"sample": (sample, [z_spec, ((None, self.num_dims), "float32")]),
                "generate": (generate, [z_spec])}
