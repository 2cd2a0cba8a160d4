"""Variational autoencoders: VAE, beta-VAE and conditional VAE.

The model maximises the evidence lower bound (Kingma & Welling 2014)

    ELBO(x) = E_q(z|x)[log p(x|z)] - beta * KL(q(z|x) || p(z)) <= log p(x)

with a diagonal-Gaussian encoder q(z|x), a standard-normal prior p(z) and a
decoder p(x|z) that fits the data: Bernoulli for binary images, a categorical
over grey levels for discrete images (so likelihoods are exact discrete
probabilities and bits/dim are honest), Gaussian for continuous points.
`beta != 1` gives the beta-VAE (Higgins et al. 2017); `num_classes` gives
the conditional VAE (Sohn et al. 2015), with the one-hot label fed to both
encoder and decoder. `iw_log_prob` is the importance-weighted bound of
Burda et al. (2016), which tightens to log p(x) as k grows; `train_samples = k > 1`
trains on that bound (the importance-weighted autoencoder, IWAE) instead of
the ELBO.

Latent walks (`kgen.models.base.LatentWalks`): the code of x is the posterior
mean E_q[z|x]; `interpolate` follows the slerp path between two codes (prior
draws or the codes of two examples), `latent_arithmetic` decodes
mean(a) - mean(b) + mean(c), and `traverse` sweeps the most active dimensions,
ranked by their mean KL(q(z_d|x) || N(0, 1)) over data, from -3 to 3 prior
standard deviations around a base code (`kgen sample --traverse`).

#### References

- Kingma, D. P. & Welling, M. Auto-Encoding Variational Bayes. ICLR 2014.
- Burda, Y., Grosse, R. & Salakhutdinov, R. Importance Weighted
  Autoencoders. ICLR 2016.
- Sohn, K., Lee, H. & Yan, X. Learning Structured Output Representation
  using Deep Conditional Generative Models. NeurIPS 2015.
- Higgins, I. et al. beta-VAE. ICLR 2017.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from kgen import backend
from kgen.errors import DataError, UsageError
from kgen.models.base import LOG_2PI, GenerativeModel, LatentWalks
from kgen.registry import register_model

LIKELIHOODS = ("bernoulli", "categorical", "gaussian")


# Giles (2010) single-precision erfinv polynomials (also XLA's), for w < 5 and w >= 5.
_ERFINV_SMALL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                 -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_LARGE = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                 -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def _polyval(coeffs, w):
    p = coeffs[0]
    for c in coeffs[1:]:
        p = c + p * w
    return p


def _erfinv(x):
    """erfinv on (-1, 1) from log, sqrt and polynomials (within 1e-6 of float64).

    LiteRT builtins and ONNX have no Erfinv op, so `ops.erfinv` would keep the
    gaussian `sample` endpoint from exporting.
    """
    w = -ops.log((1.0 - x) * (1.0 + x))
    small = _polyval(_ERFINV_SMALL, w - 2.5)
    large = _polyval(_ERFINV_LARGE, ops.sqrt(ops.maximum(w, 5.0)) - 3.0)
    return ops.where(w < 5.0, small, large) * x


def _dense_stack(units, activation, name):
    return [layers.Dense(u, activation=activation, name=f"{name}_dense_{i}") for i, u in enumerate(units)]


def resolve_likelihood(likelihood, num_levels):
    """The decoder likelihood for data with `num_levels` ("auto": Gaussian for continuous data,
    Bernoulli for binary, categorical over the levels otherwise), checked against the data."""
    if likelihood == "auto":
        if num_levels is None:
            likelihood = "gaussian"
        else:
            likelihood = "bernoulli" if num_levels == 2 else "categorical"
    if likelihood not in LIKELIHOODS:
        raise UsageError(f'unknown likelihood "{likelihood}"; choose one of {", ".join(LIKELIHOODS)}.')
    if likelihood in ("bernoulli", "categorical") and num_levels is None:
        raise UsageError(f"a {likelihood} likelihood needs discrete data (num_levels).")
    if likelihood == "bernoulli" and num_levels != 2:
        raise UsageError(
            f"a bernoulli likelihood needs binary data, this data has {num_levels} levels; "
            "binarize it (data.binarize) or use likelihood = \"categorical\"."
        )
    return likelihood


@register_model("vae", family="latent", conditional=True,
                tiny=dict(latent_dim=2, hidden_units=(16,)))
class VAE(LatentWalks, GenerativeModel):
    """Variational autoencoder (Kingma & Welling 2014), also beta-VAE and conditional VAE.

    `log_prob(x)` is the ELBO, a lower bound on log p(x) in nats;
    `iw_log_prob(x, k)` is the tighter importance-weighted bound.

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (2: binary), None for continuous.
        num_classes: labels for the conditional VAE, or None.
        latent_dim: size of z.
        hidden_units: units of each hidden layer (MLP), or the filters of
            each stride-2 convolution (conv).
        architecture: "mlp" or "conv" (images with H and W divisible by
            2**len(hidden_units)).
        likelihood: "bernoulli", "categorical" (over `num_levels`),
            "gaussian" (continuous data), or "auto" (from the data).
        beta: weight of the KL term (1.0: the VAE; > 1: beta-VAE).
        activation: hidden activation.
        train_samples: importance samples k of the training objective: 1 trains
            on the ELBO (the VAE), k > 1 on the k-sample importance-weighted
            bound (IWAE, Burda et al. 2016), at about k times the decoder cost.

    Example:

    >>> import kgen
    >>> vae = kgen.build_model("vae", input_shape=(8, 8, 1), num_levels=17)
    >>> vae.compile(optimizer="adam")
    >>> data = kgen.load_dataset("digits")
    >>> _ = vae.fit(data.x, epochs=1, batch_size=64, verbose=0)
    >>> vae.sample(4, seed=0).shape
    (4, 8, 8, 1)
    """

    log_prob_kind = "elbo"

    def __init__(
        self,
        input_shape,
        num_levels=None,
        num_classes=None,
        latent_dim=16,
        hidden_units=(256, 256),
        architecture="mlp",
        likelihood="auto",
        beta=1.0,
        activation="relu",
        train_samples=1,
        **kwargs,
    ):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        likelihood = resolve_likelihood(likelihood, num_levels)
        if architecture not in ("mlp", "conv"):
            raise UsageError(f'unknown architecture "{architecture}"; choose "mlp" or "conv".')
        if architecture == "conv":
            if len(self.data_shape) != 3:
                raise UsageError("the conv VAE needs images (H, W, C); use architecture = \"mlp\".")
            factor = 2 ** len(hidden_units)
            if self.data_shape[0] % factor or self.data_shape[1] % factor:
                raise UsageError(
                    f"the conv VAE halves H and W {len(hidden_units)} times: {self.data_shape[:2]} "
                    f"must be divisible by {factor}; use fewer hidden_units or architecture = \"mlp\"."
                )
        if int(train_samples) < 1:
            raise UsageError(f"train_samples must be >= 1 (1: the ELBO), got {train_samples}.")
        if int(train_samples) > 1 and float(beta) != 1.0:
            raise UsageError(
                "the importance-weighted objective (train_samples > 1) bounds log p(x) only with beta = 1; "
                "set model.beta = 1.0 or model.train_samples = 1."
            )
        self.train_samples = int(train_samples)
        self.latent_dim = int(latent_dim)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.architecture = architecture
        self.likelihood = likelihood
        self.beta = float(beta)
        self.activation = activation
        self.out_per_dim = {"bernoulli": 1, "categorical": self.num_levels, "gaussian": 2}[likelihood]

        # === Layers ===
        self.flatten = layers.Flatten(name="flatten")
        if architecture == "mlp":
            self.encoder_body = _dense_stack(self.hidden_units, activation, "encoder")
        else:
            h, w, c = self.data_shape
            factor = 2 ** len(self.hidden_units)
            self.encoder_body = [
                layers.Conv2D(f, 3, strides=2, padding="same", activation=activation, name=f"encoder_conv_{i}")
                for i, f in enumerate(self.hidden_units)
            ]
            self.base_shape = (h // factor, w // factor, self.hidden_units[-1])
        self.make_decoder()
        self.encoder_out = layers.Dense(2 * self.latent_dim, name="encoder_out")

        # === State and metrics ===
        self.seed_generator = keras.random.SeedGenerator(0)
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        shape = (None,) + self.data_shape
        cond = self.num_classes or 0
        x = keras.KerasTensor(shape)
        # Build the sub-layers once, so a fresh model has all its weights.
        if self.architecture == "mlp":
            h = keras.KerasTensor((None, self.num_dims + cond))
            for layer in self.encoder_body:
                h = layer(h)
        else:
            h = x
            for layer in self.encoder_body:
                h = layer(h)
            h = keras.KerasTensor((None, int(np.prod(h.shape[1:])) + cond))
        self.encoder_out(h)
        self.build_decoder()
        self.built = True

    def make_decoder(self):
        """Creates p(x|z)'s layers: `decoder_body` and `decoder_out` (MLP or transposed convolutions).

        A subclass with another decoder overrides this, `build_decoder` and `decode_params`
        (sa_vae's gated PixelCNN decoder).
        """
        if self.architecture == "mlp":
            self.decoder_body = _dense_stack(self.hidden_units[::-1], self.activation, "decoder")
            self.decoder_out = layers.Dense(self.num_dims * self.out_per_dim, name="decoder_out")
            return
        c = self.data_shape[-1]
        self.decoder_body = [
            layers.Dense(int(np.prod(self.base_shape)), activation=self.activation, name="decoder_dense"),
            layers.Reshape(self.base_shape, name="decoder_reshape"),
        ] + [
            layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation=self.activation,
                                   name=f"decoder_deconv_{i}")
            for i, f in enumerate(self.hidden_units[::-1])
        ]
        self.decoder_out = layers.Conv2D(c * self.out_per_dim, 3, padding="same", name="decoder_out")

    def build_decoder(self):
        """Builds the layers `make_decoder` created (a fresh model has all its weights)."""
        z = keras.KerasTensor((None, self.latent_dim + (self.num_classes or 0)))
        for layer in self.decoder_body:
            z = layer(z)
        self.decoder_out(z)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "latent_dim": self.latent_dim,
                "hidden_units": list(self.hidden_units),
                "architecture": self.architecture,
                "likelihood": self.likelihood,
                "beta": self.beta,
                "activation": self.activation,
                "train_samples": self.train_samples,
            }
        )
        return config

    # === Networks ===

    def _one_hot(self, labels):
        return self.one_hot_labels(labels)

    def encode(self, x, labels=None):
        """q(z|x): returns (mean, log-variance), each (batch, latent_dim)."""
        stats = self.encoder_out(self.encoder_features(x, labels))
        return stats[:, : self.latent_dim], stats[:, self.latent_dim :]

    def encoder_features(self, x, labels=None):
        """The encoder's last hidden features (with the label for the conditional VAE), before `encoder_out`."""
        x = ops.cast(x, "float32")
        if self.architecture == "mlp":
            h = self.flatten(x)
            if self.conditional:
                h = ops.concatenate([h, self._one_hot(labels)], axis=-1)
            for layer in self.encoder_body:
                h = layer(h)
        else:
            h = x
            for layer in self.encoder_body:
                h = layer(h)
            h = self.flatten(h)
            if self.conditional:
                h = ops.concatenate([h, self._one_hot(labels)], axis=-1)
        return h

    def decode_params(self, z, labels=None):
        """p(x|z) parameters: logits (bernoulli), level logits (..., L), or (mean, log-scale)."""
        h = z
        if self.conditional:
            h = ops.concatenate([h, self._one_hot(labels)], axis=-1)
        for layer in self.decoder_body:
            h = layer(h)
        out = self.decoder_out(h)
        out = ops.reshape(out, (-1,) + self.data_shape + (self.out_per_dim,))
        if self.likelihood == "bernoulli":
            return out[..., 0]
        if self.likelihood == "categorical":
            return out
        return out[..., 0], ops.clip(out[..., 1], -7.0, 5.0)

    def decode(self, z, labels=None):
        """The decoder's mean image E[x|z] in data space ([0, 1] for images)."""
        params = self.decode_params(z, labels)
        if self.likelihood == "bernoulli":
            return ops.sigmoid(params)
        if self.likelihood == "categorical":
            levels = ops.arange(self.num_levels, dtype="float32") / (self.num_levels - 1)
            return ops.sum(ops.softmax(params, axis=-1) * levels, axis=-1)
        return params[0]

    def log_likelihood(self, x, params):
        """log p(x|z) summed over dimensions, per example."""
        x = ops.cast(x, "float32")
        if self.likelihood == "bernoulli":
            # -softplus(-l) for x = 1, -softplus(l) for x = 0
            ll = x * params - ops.softplus(params)
        elif self.likelihood == "categorical":
            idx = ops.cast(ops.round(x * (self.num_levels - 1)), "int32")
            logp = ops.log_softmax(params, axis=-1)
            ll = ops.sum(logp * ops.one_hot(idx, self.num_levels), axis=-1)
        else:
            mean, log_scale = params
            ll = -0.5 * (LOG_2PI + 2.0 * log_scale + ops.square((x - mean) * ops.exp(-log_scale)))
        return ops.sum(ops.reshape(ll, (ops.shape(ll)[0], -1)), axis=-1)

    # === Latent walks ===

    @property
    def latent_shape(self):
        return (self.latent_dim,)

    def code_of(self, x, labels=None):
        """The code of x: the posterior mean E_q[z|x]."""
        return self.encode(x, labels)[0]

    def latent_activity(self, x=None, labels=None):
        """Mean KL(q(z_d|x) || N(0, 1)) of each dimension over the examples `x` (nats), None without data."""
        if x is None:
            return None
        x = np.asarray(x, "float32")
        labs = self._walk_labels(len(x), labels, "encode")

        def kl_per_dim(a, l):
            mean, logvar = self.encode(a, l if self.conditional else None)
            return 0.5 * (ops.exp(logvar) + ops.square(mean) - 1.0 - logvar)

        return self.batched(self.compiled_fn("kl_per_dim", kl_per_dim), [x, labs], 256).mean(axis=0)

    @staticmethod
    def kl_divergence(mean, logvar):
        """KL(N(mean, exp(logvar)) || N(0, I)), per example."""
        return 0.5 * ops.sum(ops.exp(logvar) + ops.square(mean) - 1.0 - logvar, axis=-1)

    # === Training ===

    def call(self, inputs, training=False):
        x, labels = self.split_inputs(inputs)
        mean, logvar = self.encode(x, labels)
        k = self.train_samples
        if k > 1:
            # One (k * batch, latent) draw, read as k samples per example.
            eps = backend.random_normal(ops.shape(ops.repeat(mean, k, axis=0)), self.seed_generator)
            eps = ops.reshape(eps, (k, -1, self.latent_dim))
            ll, log_prior, log_q = self._log_weight_terms(x, labels, mean, logvar, eps)
            log_w = ll + log_prior - log_q
            iw = ops.logsumexp(log_w, axis=0) - math.log(k)
            # recon and kl are logged as their k-sample means (the ELBO's terms).
            return {"recon": -ops.mean(ll, axis=0), "kl": ops.mean(log_q - log_prior, axis=0), "iw_bound": iw}
        eps = backend.random_normal(ops.shape(mean), self.seed_generator)
        z = mean + ops.exp(0.5 * logvar) * eps
        recon = -self.log_likelihood(x, self.decode_params(z, labels))
        kl = self.kl_divergence(mean, logvar)
        return {"recon": recon, "kl": kl}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        recon, kl = y_pred["recon"], y_pred["kl"]
        self.recon_tracker.update_state(recon)
        self.kl_tracker.update_state(kl)
        if "iw_bound" in y_pred:
            loss = -ops.mean(y_pred["iw_bound"])
        else:
            loss = ops.mean(recon + self.beta * kl)
        return backend.scale_loss_for_replicas(self.plus_layer_losses(loss))  # tf.distribute: a replica's share

    # === Likelihood ===

    def check_data(self, data):
        super().check_data(data)
        if self.likelihood == "bernoulli" and data.num_levels != 2:
            raise DataError(
                f"{data.name}: a bernoulli VAE needs binary pixels, found "
                f"{data.num_levels or 'continuous'} levels; set data.binarize = \"static\" or \"dynamic\"."
            )
        if self.likelihood == "categorical" and data.num_levels != self.num_levels:
            raise DataError(
                f"{data.name}: pixels take {data.num_levels or 'continuous'} levels, the model "
                f"expects {self.num_levels}."
            )
        if self.likelihood == "gaussian" and data.num_levels is not None and data.kind == "image":
            pass  # allowed: a Gaussian on [0, 1] pixels (a density, not a probability)

    def _elbo_terms(self, x, labels, eps):
        mean, logvar = self.encode(x, labels)
        z = mean + ops.exp(0.5 * logvar) * eps
        ll = self.log_likelihood(x, self.decode_params(z, labels))
        kl = self.kl_divergence(mean, logvar)
        return {"elbo": ll - kl, "recon": -ll, "kl": kl}

    def _iw_chunk(self, x, labels, eps):
        """log w for k samples: eps (k, batch, latent) -> (k, batch)."""
        mean, logvar = self.encode(x, labels)
        ll, log_prior, log_q = self._log_weight_terms(x, labels, mean, logvar, eps)
        return ll + log_prior - log_q

    def _log_weight_terms(self, x, labels, mean, logvar, eps):
        """log p(x|z), log p(z), log q(z|x) for z = mean + std * eps, eps (k, batch, latent) -> (k, batch) each."""
        z = mean[None] + ops.exp(0.5 * logvar)[None] * eps
        log_prior = -0.5 * ops.sum(ops.square(z) + LOG_2PI, axis=-1)
        log_q = -0.5 * ops.sum(ops.square(eps) + LOG_2PI + logvar[None], axis=-1)
        return self.k_log_likelihood(x, labels, z), log_prior, log_q

    def latent_log_joint(self, x, z, labels=None):
        """log p(z) (standard normal) and log p(x|z) per row, for aligned x and z (n, latent_dim)."""
        log_prior = -0.5 * ops.sum(ops.square(z) + LOG_2PI, axis=-1)
        return log_prior, self.log_likelihood(x, self.decode_params(z, labels))

    def k_log_likelihood(self, x, labels, z):
        """log p(x|z) for k latents per example: z (k, batch, latent) -> (k, batch)."""
        k = ops.shape(z)[0]
        b = ops.shape(x)[0]
        z_flat = ops.reshape(z, (-1, self.latent_dim))
        x_rep = ops.reshape(ops.broadcast_to(x[None], (k,) + tuple(ops.shape(x))), (-1,) + self.data_shape)
        lab_rep = None
        if labels is not None:
            lab_rep = ops.reshape(ops.broadcast_to(labels[None], (k, b)), (-1,))
        return ops.reshape(self.log_likelihood(x_rep, self.decode_params(z_flat, lab_rep)), (k, b))

    def elbo_terms(self, x, labels=None, batch_size=256, seed=None):
        """Per-example ELBO, reconstruction NLL and KL (nats), one z sample each."""
        x = np.asarray(x, "float32")
        rng = np.random.default_rng(seed)
        eps = rng.standard_normal((len(x), self.latent_dim)).astype("float32")
        fn = self.compiled_fn("elbo", self._elbo_terms)
        labs = self._labels_array(x, labels)
        return self.batched(lambda a, l, e: fn(a, l, e), [x, labs, eps], batch_size)

    def _labels_array(self, x, labels):
        if self.conditional:
            if labels is None:
                raise UsageError("a conditional VAE needs labels to score data.")
            return np.asarray(labels, "int32")
        return np.zeros(len(x), "int32")

    def log_prob(self, x, labels=None, batch_size=256, seed=None):
        """The ELBO of each example (a lower bound on log p(x)), nats."""
        return self.elbo_terms(x, labels, batch_size, seed)["elbo"]

    def iw_log_prob(self, x, k=5000, labels=None, batch_size=None, seed=None, progress=None):
        """Importance-weighted bound log (1/k) sum_i p(x, z_i) / q(z_i|x), nats per example.

        Args:
            x: examples.
            k: importance samples (k=1 is the ELBO; Burda et al. use 5000).
            labels: labels for the conditional VAE.
            batch_size: examples per step (default keeps about 2**16 decoder
                evaluations a step).
            seed: integer seed for the samples.
            progress: optional callable(done_examples) for a progress bar.
        """
        x = np.asarray(x, "float32")
        labs = self._labels_array(x, labels)
        chunk = int(min(k, 512))
        batch_size = batch_size or max(1, 65536 // chunk)
        rng = np.random.default_rng(seed)
        fn = self.compiled_fn("iw", lambda a, l, e: self._iw_chunk(a, l if self.conditional else None, e))
        out = np.empty(len(x), "float64")
        for i in range(0, len(x), batch_size):
            xb, lb = x[i : i + batch_size], labs[i : i + batch_size]
            acc = np.full(len(xb), -np.inf)
            done = 0
            while done < k:
                kk = min(chunk, k - done)
                eps = rng.standard_normal((kk, len(xb), self.latent_dim)).astype("float32")
                if kk != chunk:  # keep one compiled shape: pad, then drop
                    eps = np.concatenate([eps, np.zeros((chunk - kk, len(xb), self.latent_dim), "float32")])
                logw = np.asarray(keras.ops.convert_to_numpy(fn(xb, lb, eps)), "float64")[:kk]
                acc = np.logaddexp(acc, _logsumexp0(logw))
                done += kk
            out[i : i + len(xb)] = acc - math.log(k)
            if progress:
                progress(i + len(xb))
        return out

    def score(self, x, labels=None, batch_size=256, seed=None, iw_samples=0, progress=None):
        """Evaluation terms per example: elbo, recon, kl and (k > 0) iw_bound."""
        out = self.elbo_terms(x, labels, batch_size, seed)
        if iw_samples:
            out["iw_bound"] = self.iw_log_prob(x, iw_samples, labels, seed=seed, progress=progress)
        return out

    # === Sampling ===

    def noise_spec(self, n):
        return [("normal", (n, self.latent_dim)), ("uniform", (n,) + self.data_shape)]

    def _sample(self, z, u, labels=None):
        params = self.decode_params(z, labels if self.conditional else None)
        if self.likelihood == "bernoulli":
            return ops.cast(u < ops.sigmoid(params), "float32")
        if self.likelihood == "categorical":
            # Inverse CDF: the level is the number of cumulative probabilities below u.
            cdf = ops.cumsum(ops.softmax(params, axis=-1), axis=-1)
            level = ops.sum(ops.cast(cdf[..., :-1] < u[..., None], "float32"), axis=-1)
            return level / (self.num_levels - 1)
        mean, log_scale = params
        # Box-Muller-free: Gaussian noise from the uniform via the probit.
        g = ops.sqrt(2.0) * _erfinv(ops.clip(2.0 * u - 1.0, -0.999999, 0.999999))
        return mean + ops.exp(log_scale) * g

    def sample_from_noise(self, z, u, labels=None):
        """Samples from latent noise z ~ N(0, I) and pixel uniforms u ~ U[0, 1)."""
        if labels is None:
            labels = np.zeros(len(z), "int32")
        return self.compiled_fn("sample", self._sample)(z, u, labels)

    def reconstruct(self, x, labels=None, batch_size=256):
        """Decoder means at the encoder means: the model's reconstructions."""
        x = np.asarray(x, "float32")
        labs = self._labels_array(x, labels)

        def run(a, l):
            lab = l if self.conditional else None
            return self.decode(self.encode(a, lab)[0], lab)

        return self.batched(self.compiled_fn("reconstruct", run), [x, labs], batch_size)


    # === Export ===

    litert_endpoints = ("decode", "sample")

    def export_endpoints(self):
        """encode(x) -> {mean, logvar}; decode(z) -> mean image; sample(z, u) -> sample.

        Conditional models take `labels` (int32) as the last input of each.
        """
        x_spec = ((None,) + self.data_shape, "float32")
        z_spec = ((None, self.latent_dim), "float32")
        label_spec = [((None,), "int32")] if self.conditional else []

        def encode(x, *labels):
            mean, logvar = self.encode(x, *labels)
            return {"mean": mean, "logvar": logvar}

        def decode(z, *labels):
            return self.decode(z, *labels)

        def sample(z, u, *labels):
            return self._sample(z, u, *labels)

        return {
            "encode": (encode, [x_spec] + label_spec),
            "decode": (decode, [z_spec] + label_spec),
            "sample": (sample, [z_spec, x_spec] + label_spec),
        }


def _logsumexp0(a):
    m = a.max(axis=0)
    return m + np.log(np.exp(a - m).sum(axis=0))
