"""Adversarial variational Bayes (Mescheder, Nowozin & Geiger 2017): a VAE with an implicit posterior.

The encoder is a black box that takes the noise as an input, z = f(x, eps)
with eps ~ N(0, I): q(z|x) has no density to evaluate, so the KL term of the
ELBO cannot be computed. An adversary T(x, z) is trained with the logistic
loss to tell pairs (x, z ~ q(z|x)) from pairs (x, z ~ p(z)):

    max_T  E_x[ E_q(z|x) log sigmoid(T(x, z)) + E_p(z) log(1 - sigmoid(T(x, z))) ],

whose optimum is T*(x, z) = log q(z|x) - log p(z) (Prop. 1), so that

    ELBO(x) = E_q(z|x)[ log p(x|z) - T*(x, z) ]

and (Prop. 2) its gradient with respect to the encoder and decoder needs no
derivative of T* through its parameters: the encoder and the decoder
maximise E_q[log p(x|z) - T(x, z)] with T held fixed. The two players are
kgen's adversarial step's (`kgen.models.adversarial.base`): the
discriminator's optimizer trains T, the generator's the encoder and the
decoder (the step's generated batch, the decoder at prior draws, is not used).

Adaptive contrast (`adaptive_contrast=True`, Sec. 4): T then compares the
normalised z~ = (z - mu(x)) / sigma(x), with mu and sigma the mean and
standard deviation of `ac_samples` draws of q(z|x), against N(0, I) (an easier
task: the two are close), and the KL is recovered through the auxiliary
Gaussian r(z|x) = N(mu(x), sigma(x)^2):

    KL(q || p) = KL(q~ || N(0, I)) + E_q[log r(z|x) - log p(z)],  with T estimating the first term.

`elbo_estimate(x)` gives the ELBO with the trained adversary in place of T*
(an estimate, not a bound: it is only as good as T), and `kgen evaluate`
reports its mean; the decoder, its likelihoods (Bernoulli, categorical over
grey levels, Gaussian) and the prior sampling are `kgen.models.latent.vae`'s.

#### References

- Mescheder, L., Nowozin, S. & Geiger, A. Adversarial Variational Bayes:
  Unifying Variational Autoencoders and Generative Adversarial Networks.
  ICML 2017. arXiv:1701.04722.
"""

import keras
import numpy as np
from keras import layers, ops

from kgen.errors import UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel
from kgen.models.base import LOG_2PI
from kgen.models.latent.vae import VAE, _dense_stack, resolve_likelihood
from kgen.registry import register_model


@register_model("avb", family="latent",
                tiny=dict(latent_dim=2, noise_dim=2, hidden_units=(16,), adversary_units=(16,)))
class AVB(AdversarialModel):
    """Adversarial variational Bayes (Mescheder et al. 2017): implicit posterior q(z|x, eps), adversary T(x, z).

    Logs `recon` (-log p(x|z)), `kl` (the adversary's KL estimate), `d_loss`,
    `g_loss` (recon + kl: the negative ELBO estimate) and the adversary's mean
    probability of "posterior" on posterior (`d_real`) and prior (`d_fake`) pairs.

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (2: binary), None for continuous.
        num_classes: must be None (no conditional version).
        latent_dim: size of z.
        noise_dim: size of the encoder's noise input eps (None: latent_dim).
        hidden_units: the encoder's hidden layers (the decoder mirrors them).
        adversary_units: T's hidden LeakyReLU(0.2) layers (T sees [x, z]).
        activation: hidden activation of the encoder and decoder.
        likelihood: "bernoulli", "categorical", "gaussian" or "auto", as `VAE`.
        adaptive_contrast: T compares normalised codes with N(0, I) (Sec. 4).
        ac_samples: draws of q(z|x) per example for adaptive contrast's moments.

    Example:

    >>> import kgen
    >>> avb = kgen.build_model("avb", input_shape=(8, 8, 1), num_levels=17, latent_dim=8,
    ...                        hidden_units=(64,), adversary_units=(64,))
    >>> avb.compile()
    >>> x = kgen.load_dataset("digits").x
    >>> _ = avb.fit(x, epochs=1, batch_size=64, verbose=0)
    >>> avb.elbo_estimate(x[:4])["elbo"].shape, avb.sample(4, seed=0).shape
    ((4,), (4, 8, 8, 1))
    """

    metric_names = ("d_loss", "g_loss", "recon", "kl", "d_real", "d_fake")
    generator_loss_takes_real = True
    optimizer_defaults = {"learning_rate": 1e-4}

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=8, noise_dim=None,
                 hidden_units=(300, 300), adversary_units=(300, 300), activation="relu", likelihood="auto",
                 adaptive_contrast=False, ac_samples=10, **kwargs):
        if num_classes is not None:
            raise UsageError("avb has no conditional version: drop num_classes.")
        super().__init__(input_shape, num_levels, None, latent_dim, "linear", **kwargs)
        # === Config ===
        self.likelihood = resolve_likelihood(likelihood, num_levels)
        if int(ac_samples) < 2:
            raise UsageError(f"ac_samples must be >= 2 (adaptive contrast estimates a variance), got {ac_samples}.")
        self.noise_dim = int(noise_dim) if noise_dim is not None else self.latent_dim
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.adversary_units = tuple(int(u) for u in adversary_units)
        self.activation = activation
        self.adaptive_contrast = bool(adaptive_contrast)
        self.ac_samples = int(ac_samples)
        self.out_per_dim = {"bernoulli": 1, "categorical": self.num_levels, "gaussian": 2}[self.likelihood]

        # === Layers: the encoder f(x, eps), the VAE's decoder, the adversary T(x, z) ===
        self.encoder_body = _dense_stack(self.hidden_units, activation, "encoder")
        self.encoder_out = layers.Dense(self.latent_dim, name="encoder_out")
        self.decoder_body = _dense_stack(self.hidden_units[::-1], activation, "decoder")
        self.decoder_out = layers.Dense(self.num_dims * self.out_per_dim, name="decoder_out")
        self.discriminator = networks.mlp_discriminator(self.num_dims + self.latent_dim, self.adversary_units,
                                                        name="adversary")
        h = keras.KerasTensor((None, self.num_dims + self.noise_dim))
        for layer in self.encoder_body:
            h = layer(h)
        self.encoder_out(h)
        z = keras.KerasTensor((None, self.latent_dim))
        for layer in self.decoder_body:
            z = layer(z)
        self.decoder_out(z)
        self.built = True

    def get_config(self):
        config = super().get_config()
        for key in ("latent_dim", "output_activation"):
            config.pop(key, None)
        config.update({
            "latent_dim": self.latent_dim,
            "noise_dim": self.noise_dim,
            "hidden_units": list(self.hidden_units),
            "adversary_units": list(self.adversary_units),
            "activation": self.activation,
            "likelihood": self.likelihood,
            "adaptive_contrast": self.adaptive_contrast,
            "ac_samples": self.ac_samples,
        })
        return config

    # === Networks ===

    # The decoder, its likelihoods and prior sampling are the VAE's (vae.py keeps them as methods).
    decode_params = VAE.decode_params
    decode = VAE.decode
    log_likelihood = VAE.log_likelihood
    latent_log_joint = VAE.latent_log_joint  # N(0, I) prior: `kgen evaluate --ais` estimates log p(x), as the paper does
    noise_spec = VAE.noise_spec
    _sample = VAE._sample

    def generator_variables(self):
        """The encoder's and the decoder's variables (one player): everything but the adversary."""
        layers_ = self.encoder_body + [self.encoder_out] + self.decoder_body + [self.decoder_out]
        return [v for layer in layers_ for v in layer.trainable_variables]

    def _flat(self, x):
        return ops.reshape(ops.cast(x, "float32"), (ops.shape(x)[0], self.num_dims))

    def generate(self, latent, labels=None, training=False):
        """The decoder's mean at latents z."""
        return self.decode(ops.cast(latent, "float32"))

    def encode(self, x, eps):
        """z = f(x, eps): x (batch, ...) and eps (..., batch, noise_dim) -> z (..., batch, latent_dim)."""
        h = self._flat(x)
        eps = ops.convert_to_tensor(eps, "float32")
        if len(eps.shape) == 3:
            h = ops.broadcast_to(h[None], (ops.shape(eps)[0],) + tuple(ops.shape(h)))
        h = ops.concatenate([h, eps], axis=-1)
        for layer in self.encoder_body:
            h = layer(h)
        return self.encoder_out(h)

    def adversary(self, x, z, training=False):
        """T(x, z): the adversary's logit of "z comes from q(z|x)" (T* = log q(z|x) - log p(z))."""
        pair = ops.concatenate([self._flat(x), ops.cast(z, "float32")], axis=-1)
        return self.discriminator(pair, training=training)[:, 0]

    def kl_estimate(self, x, eps, adversary=None, training=False):
        """The KL(q(z|x) || p(z)) estimate at one posterior draw, per example.

        Args:
            x: examples (batch, ...).
            eps: encoder noise (m, batch, noise_dim); the draw is z = f(x, eps[0]), and adaptive
                contrast estimates mu(x), sigma(x) from all m draws.
            adversary: T(x, z) (default: the model's adversary; the tests pass the optimal one).

        Returns:
            (kl, z, t_input): the estimate (batch,), the draw z (batch, latent_dim), and what T sees
            (z, or the normalised z~ with adaptive contrast).
        """
        adversary = adversary or (lambda a, b: self.adversary(a, b, training))
        z = self.encode(x, eps)
        z0 = z[0]
        if not self.adaptive_contrast:
            return adversary(x, z0), z0, z0
        mu = ops.mean(z, axis=0)
        sd = ops.sqrt(ops.var(z, axis=0) + 1e-6)
        zt = (z0 - mu) / sd
        log_r = -0.5 * ops.sum(ops.square(zt) + LOG_2PI + 2.0 * ops.log(sd), axis=-1)
        log_p = -0.5 * ops.sum(ops.square(z0) + LOG_2PI, axis=-1)
        return adversary(x, zt) + log_r - log_p, z0, zt

    def _draw_eps(self, batch):
        m = self.ac_samples if self.adaptive_contrast else 1
        return keras.random.normal((m, batch, self.noise_dim), seed=self.seed_generator)

    # === Losses ===

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        """T's logistic loss: posterior pairs (x, z ~ q, or z~) against (x, z ~ N(0, I))."""
        _, _, t_input = self.kl_estimate(real, self._draw_eps(ops.shape(real)[0]), training=training)
        posterior_logits = self.adversary(real, ops.stop_gradient(t_input), training)
        prior_logits = self.adversary(real, latent, training)
        loss = ops.mean(ops.softplus(-posterior_logits)) + ops.mean(ops.softplus(prior_logits))
        return loss, {"d_real": ops.mean(ops.sigmoid(posterior_logits)),
                      "d_fake": ops.mean(ops.sigmoid(prior_logits))}

    def generator_loss(self, latent, labels=None, training=True, real=None):
        """The negative ELBO estimate E_q[-log p(x|z) + T(x, z)] (T's weights are not this player's)."""
        if real is None:
            raise UsageError("AVB's encoder trains on the step's real batch: generator_loss(..., real=x).")
        kl, z, _ = self.kl_estimate(real, self._draw_eps(ops.shape(real)[0]), training=training)
        recon = -self.log_likelihood(real, self.decode_params(z))
        return ops.mean(recon + kl), {"recon": ops.mean(recon), "kl": ops.mean(kl)}

    # === Evaluation ===

    def elbo_estimate(self, x, batch_size=256, seed=None):
        """Per-example ELBO estimate log p(x|z) - KL estimate (nats), one posterior draw each.

        An estimate through the trained adversary, not a bound: it is the ELBO when T is optimal.
        """
        x = np.asarray(x, "float32")
        if x.shape[1:] != self.data_shape:
            raise UsageError(f"elbo_estimate expects examples of shape {self.data_shape}, got {x.shape[1:]}.")
        m = self.ac_samples if self.adaptive_contrast else 1
        eps = np.random.default_rng(seed).standard_normal((len(x), m, self.noise_dim)).astype("float32")

        def terms(a, e):
            kl, z, _ = self.kl_estimate(a, ops.transpose(e, (1, 0, 2)))
            ll = self.log_likelihood(a, self.decode_params(z))
            return {"elbo": ll - kl, "recon": -ll, "kl": kl}

        return self.batched(self.compiled_fn("elbo_estimate", terms), [x, eps], batch_size)

    def evaluate_extra(self, prepared, batch_size=256):
        """The mean ELBO estimate and its terms on the split (nats; see `elbo_estimate`)."""
        terms = self.elbo_estimate(prepared.x, batch_size, seed=0)
        return {"elbo_estimate": {k: float(np.mean(v)) for k, v in terms.items()}}

    # === Sampling ===

    def sample_from_noise(self, z, u, labels=None):
        """Samples from latent noise z ~ N(0, I) and pixel uniforms u ~ U[0, 1) (the VAE's)."""
        return self.compiled_fn("sample", lambda a, b: self._sample(a, b))(z, u)

    def latent_codes(self, x, labels=None, batch_size=256):
        """Codes of examples: f(x, eps = 0), the draw at the noise's mode (an implicit posterior has no
        mean in closed form); `kgen evaluate`'s linear probe reads them."""
        x = np.asarray(x, "float32")
        fn = self.compiled_fn("latent_codes", lambda a: self.encode(a, ops.zeros((ops.shape(a)[0], self.noise_dim))))
        return self.batched(fn, [x], batch_size)

    def decode_latents(self, z, labels=None, batch_size=256):
        """The decoder's means at latents z (NumPy), as `generate_numpy`."""
        return self.generate_numpy(z, batch_size=batch_size)

    def generate_numpy(self, z, labels=None, batch_size=256):
        """The decoder's means at latents z as NumPy: what `interpolate` and `latent_arithmetic` decode."""
        fn = self.compiled_fn("decode", lambda a: self.decode(a))
        return self.batched(fn, [np.asarray(z, "float32")], batch_size)

    # === Export ===

    litert_endpoints = ("decode", "sample", "encode")

    def export_endpoints(self):
        """encode(x, eps) -> z; decode(z) -> mean example; sample(z, u) -> sample."""
        x_spec = ((None,) + self.data_shape, "float32")
        z_spec = ((None, self.latent_dim), "float32")

        def encode(x, eps):
            return self.encode(x, eps)

        def decode(z):
            return self.decode(z)

        def sample(z, u):
            return self._sample(z, u)

        return {
            "encode": (encode, [x_spec, ((None, self.noise_dim), "float32")]),
            "decode": (decode, [z_spec]),
            "sample": (sample, [z_spec, x_spec]),
        }
