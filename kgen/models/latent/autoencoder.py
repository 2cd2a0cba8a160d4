"""Autoencoders: plain, denoising and sparse, as options of one model.

An encoder maps x to a deterministic code h = f(x) and a decoder maps h back to
the parameters of p(x|h); training minimises the reconstruction loss

    L(x) = -log p(x | g(f(x~)))  [+ beta * sum_j KL(rho || rho_hat_j)]  [+ lambda * |h|_1]

with the decoder likelihood of the data, as in the VAE (`vae.resolve_likelihood`):
Bernoulli for binary images, a categorical over grey levels, Gaussian for
continuous data. The options:

- denoising (Vincent et al. 2008): x~ is a corrupted copy of x and the target
  is the clean x. `corruption = "masking"` zeroes each input dimension with
  probability `corruption_level` (masking noise; Vincent et al. zero a fixed
  fraction, a Bernoulli mask has that fraction in expectation);
  `corruption = "gaussian"` adds N(0, corruption_level^2) noise. Inputs are
  corrupted only in training; `encode` and the reconstructions use clean x.
- sparse (Ng, CS294A lecture notes "Sparse autoencoder"): with sigmoid codes,
  rho_hat_j is the mean activation of code unit j over the batch and the
  penalty beta * sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)) pulls every
  unit's mean activation toward the target rho (`sparsity_weight`,
  `sparsity_target`); `l1_weight` adds lambda * sum_j |h_j| per example (either
  or both).

Sampling: an autoencoder has no prior. kgen's `sample` decodes codes drawn from
a Gaussian fitted to the codes of the training data (full covariance), a
post-hoc density of the codes, not part of the model that was trained: the
samples show what the decoder makes of typical codes, not draws of a model
of p(x). The fit is a running average over training batches (momentum
`code_momentum`, as BatchNorm keeps its moving statistics) of the batch mean
and the batch covariance of the (clean) codes, from which each training step
stores the covariance's Cholesky factor; these are non-trainable weights, so
checkpoints and exports carry them.
`fit_code_gaussian(x)` refits them exactly on given data. Pixels are then
drawn from p(x|h) as the VAE does.

The code of x (`encode`, `latent_codes`) serves as features: `kgen evaluate`
fits a linear (logistic-regression) probe on the codes where the data set has
labels, beside the same probe on raw pixels. Latent walks
(`kgen.models.base.LatentWalks`) interpolate linearly between codes by default,
and a traversal sweeps each code unit over its fitted mean +/- 3 standard
deviations, the units ranked by their variance over the data.

#### References

- Vincent, P., Larochelle, H., Bengio, Y. & Manzagol, P.-A. Extracting and
  Composing Robust Features with Denoising Autoencoders. ICML 2008.
- Ng, A. Sparse autoencoder. CS294A Lecture notes, Stanford, 2011.
- Hinton, G. E. & Salakhutdinov, R. R. Reducing the Dimensionality of Data
  with Neural Networks. Science 2006.
"""

import keras
import numpy as np
from keras import layers, ops

from kgen.errors import DataError, UsageError
from kgen.models.base import GenerativeModel, LatentWalks
from kgen.models.latent.vae import VAE, _dense_stack, resolve_likelihood
from kgen.registry import register_model

CORRUPTIONS = ("none", "gaussian", "masking")
CODE_ACTIVATIONS = ("auto", "linear", "sigmoid")
_JITTER = 1e-3  # relative ridge on the fitted covariance before its Cholesky factor


def sparsity_kl(rho, rho_hat):
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)) over the last axis (nats)."""
    rho_hat = ops.clip(rho_hat, 1e-6, 1.0 - 1e-6)
    return ops.sum(rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log((1.0 - rho) / (1.0 - rho_hat)), axis=-1)


@register_model("autoencoder", family="latent",
                tiny=dict(code_dim=2, hidden_units=(16,)))
class Autoencoder(LatentWalks, GenerativeModel):
    """Autoencoder: plain, denoising (Vincent et al. 2008) and sparse (KL to rho, or L1) as options.

    No likelihood: `kgen evaluate` reports the reconstruction NLL, a linear probe on
    the codes and FID/KID of samples decoded from the fitted code Gaussian.

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (2: binary), None for continuous.
        num_classes: must be None (no conditional version).
        code_dim: size of the code h.
        hidden_units: units of each hidden layer of the encoder MLP (the
            decoder mirrors it).
        activation: hidden activation.
        code_activation: "linear", "sigmoid" (codes in (0, 1), needed by the KL
            sparsity penalty), or "auto" (sigmoid when `sparsity_weight` > 0).
        likelihood: "bernoulli", "categorical" (over `num_levels`),
            "gaussian", or "auto" (from the data), as in `VAE`.
        corruption: "none" (plain), "masking" or "gaussian" (denoising).
        corruption_level: the masking probability, or the Gaussian noise's
            standard deviation.
        sparsity_weight: beta of the KL sparsity penalty (0: none).
        sparsity_target: rho, the target mean activation of each code unit.
        l1_weight: lambda of the L1 penalty on the code (0: none).
        code_momentum: momentum of the running code mean and second moment
            (the Gaussian that `sample` draws codes from).

    Example:

    >>> import kgen
    >>> ae = kgen.build_model("autoencoder", input_shape=(8, 8, 1), num_levels=17, code_dim=8,
    ...                       hidden_units=(32,), corruption="masking")
    >>> ae.compile(optimizer="adam")
    >>> data = kgen.load_dataset("digits")
    >>> _ = ae.fit(data.x, epochs=1, batch_size=64, verbose=0)
    >>> ae.latent_codes(data.x[:5]).shape
    (5, 8)
    >>> ae.sample(4, seed=0).shape
    (4, 8, 8, 1)
    """

    def __init__(
        self,
        input_shape,
        num_levels=None,
        num_classes=None,
        code_dim=32,
        hidden_units=(256,),
        activation="relu",
        code_activation="auto",
        likelihood="auto",
        corruption="none",
        corruption_level=0.25,
        sparsity_weight=0.0,
        sparsity_target=0.05,
        l1_weight=0.0,
        code_momentum=0.99,
        **kwargs,
    ):
        if num_classes is not None:
            raise UsageError("autoencoder has no conditional version: drop num_classes.")
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        likelihood = resolve_likelihood(likelihood, num_levels)
        if corruption not in CORRUPTIONS:
            raise UsageError(f'unknown corruption "{corruption}"; choose one of {", ".join(CORRUPTIONS)}.')
        if code_activation not in CODE_ACTIVATIONS:
            raise UsageError(f'unknown code_activation "{code_activation}"; choose one of '
                             f'{", ".join(CODE_ACTIVATIONS)}.')
        if int(code_dim) < 1:
            raise UsageError(f"code_dim must be >= 1, got {code_dim}.")
        if corruption == "masking" and not 0.0 < float(corruption_level) < 1.0:
            raise UsageError(f"masking noise zeroes a fraction of the inputs: corruption_level must lie in "
                             f"(0, 1), got {corruption_level}.")
        if corruption == "gaussian" and not float(corruption_level) > 0.0:
            raise UsageError(f"gaussian corruption needs a noise standard deviation > 0, got {corruption_level}.")
        for key, value in (("sparsity_weight", sparsity_weight), ("l1_weight", l1_weight)):
            if not float(value) >= 0.0:
                raise UsageError(f"{key} must be >= 0, got {value}.")
        if not 0.0 < float(sparsity_target) < 1.0:
            raise UsageError(f"sparsity_target (rho, a mean activation) must lie in (0, 1), got {sparsity_target}.")
        if code_activation == "auto":
            code_activation = "sigmoid" if float(sparsity_weight) > 0 else "linear"
        if float(sparsity_weight) > 0 and code_activation != "sigmoid":
            raise UsageError("the KL sparsity penalty compares mean activations in (0, 1) with rho: set "
                             "code_activation = \"sigmoid\" (or \"auto\"), or use l1_weight instead.")
        if not 0.0 <= float(code_momentum) < 1.0:
            raise UsageError(f"code_momentum must lie in [0, 1), got {code_momentum}.")
        self.code_dim = int(code_dim)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.code_activation = code_activation
        self.likelihood = likelihood
        self.corruption = corruption
        self.corruption_level = float(corruption_level)
        self.sparsity_weight = float(sparsity_weight)
        self.sparsity_target = float(sparsity_target)
        self.l1_weight = float(l1_weight)
        self.code_momentum = float(code_momentum)
        self.out_per_dim = {"bernoulli": 1, "categorical": self.num_levels, "gaussian": 2}[likelihood]

        # === Layers ===
        self.flatten = layers.Flatten(name="flatten")
        self.encoder_body = _dense_stack(self.hidden_units, activation, "encoder")
        self.encoder_out = layers.Dense(self.code_dim, activation=code_activation, name="encoder_out")
        self.decoder_body = _dense_stack(self.hidden_units[::-1], activation, "decoder")
        self.decoder_out = layers.Dense(self.num_dims * self.out_per_dim, name="decoder_out")

        # === State and metrics ===
        # The Gaussian fitted to the training codes (what `sample` draws codes from), starting at N(0, I).
        self.code_mean = self.add_weight(shape=(self.code_dim,), initializer="zeros", trainable=False,
                                         name="code_mean")
        self.code_covariance = self.add_weight(shape=(self.code_dim, self.code_dim), initializer="identity",
                                               trainable=False, name="code_covariance")
        self.code_cholesky = self.add_weight(shape=(self.code_dim, self.code_dim), initializer="identity",
                                             trainable=False, name="code_cholesky")
        self.seed_generator = keras.random.SeedGenerator(0)
        self.recon_tracker = keras.metrics.Mean(name="recon")
        # Trackers of the penalties this model has only (no constant zeros in the logs).
        self.sparsity_tracker = keras.metrics.Mean(name="sparsity") if self.sparsity_weight > 0 else None
        self.l1_tracker = keras.metrics.Mean(name="l1") if self.l1_weight > 0 else None
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        h = keras.KerasTensor((None, self.num_dims))
        for layer in self.encoder_body:
            h = layer(h)
        self.encoder_out(h)
        z = keras.KerasTensor((None, self.code_dim))
        for layer in self.decoder_body:
            z = layer(z)
        self.decoder_out(z)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "code_dim": self.code_dim,
                "hidden_units": list(self.hidden_units),
                "activation": self.activation,
                "code_activation": self.code_activation,
                "likelihood": self.likelihood,
                "corruption": self.corruption,
                "corruption_level": self.corruption_level,
                "sparsity_weight": self.sparsity_weight,
                "sparsity_target": self.sparsity_target,
                "l1_weight": self.l1_weight,
                "code_momentum": self.code_momentum,
            }
        )
        return config

    # === Networks ===

    # The decoder, its likelihoods and pixel sampling are the VAE's (vae.py keeps them as methods).
    decode_params = VAE.decode_params
    decode = VAE.decode
    log_likelihood = VAE.log_likelihood
    _decode_sample = VAE._sample

    def encode(self, x, labels=None):
        """The code h = f(x), (batch, code_dim)."""
        h = self.flatten(ops.cast(x, "float32"))
        for layer in self.encoder_body:
            h = layer(h)
        return self.encoder_out(h)

    def corrupt(self, x):
        """A corrupted copy of x for the denoising objective (x itself when `corruption` is "none")."""
        x = ops.cast(x, "float32")
        if self.corruption == "masking":
            keep = keras.random.uniform(ops.shape(x), seed=self.seed_generator) >= self.corruption_level
            return x * ops.cast(keep, "float32")
        if self.corruption == "gaussian":
            return x + self.corruption_level * keras.random.normal(ops.shape(x), seed=self.seed_generator)
        return x

    # === Training ===

    def call(self, inputs, training=False):
        x, _ = self.split_inputs(inputs)
        x = ops.cast(x, "float32")
        h = self.encode(self.corrupt(x) if training else x)
        recon = -self.log_likelihood(x, self.decode_params(h))
        out = {"recon": recon}
        if self.sparsity_weight > 0:
            out["sparsity"] = ops.zeros_like(recon) + sparsity_kl(self.sparsity_target, ops.mean(h, axis=0))
        if self.l1_weight > 0:
            out["l1"] = ops.sum(ops.abs(h), axis=-1)
        if training:
            clean = h if self.corruption == "none" else self.encode(x)
            self._update_code_gaussian(ops.stop_gradient(clean))
        return out

    def _update_code_gaussian(self, h):
        """One step of the running code mean and covariance; stores the covariance's Cholesky factor.

        The running covariance averages the batches' covariances (not the second moment around
        the running mean, which the codes' drift during training would inflate): a convex
        combination of positive semi-definite matrices, with a ridge of `_JITTER` times its mean
        variance to keep the factor well defined in float32.
        """
        m = self.code_momentum
        n = ops.cast(ops.shape(h)[0], "float32")
        batch_mean = ops.mean(h, axis=0)
        centred = h - batch_mean[None]
        cov = m * self.code_covariance + (1.0 - m) * ops.matmul(ops.transpose(centred), centred) / n
        self.code_mean.assign(m * self.code_mean + (1.0 - m) * batch_mean)
        self.code_covariance.assign(cov)
        self.code_cholesky.assign(_cholesky(cov, self.code_dim))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        recon = y_pred["recon"]
        self.recon_tracker.update_state(recon)
        loss = ops.mean(recon)
        if "sparsity" in y_pred:
            self.sparsity_tracker.update_state(y_pred["sparsity"])
            loss = loss + self.sparsity_weight * ops.mean(y_pred["sparsity"])
        if "l1" in y_pred:
            self.l1_tracker.update_state(y_pred["l1"])
            loss = loss + self.l1_weight * ops.mean(y_pred["l1"])
        return self.plus_layer_losses(loss)

    def check_data(self, data):
        super().check_data(data)
        if self.likelihood in ("bernoulli", "categorical") and data.num_levels != self.num_levels:
            raise DataError(
                f"{data.name}: pixels take {data.num_levels or 'continuous'} levels, the model expects "
                f"{self.num_levels}" + ("; set data.binarize = \"static\" or \"dynamic\"."
                                        if self.likelihood == "bernoulli" else ".")
            )

    # === Features and reconstructions ===

    def reconstruct(self, x, batch_size=256):
        """Decoder means at the codes of x (NumPy): the model's reconstructions."""
        fn = self.compiled_fn("reconstruct", lambda a: self.decode(self.encode(a)))
        return self.batched(fn, [np.asarray(x, "float32")], batch_size)

    def reconstruction_nll(self, x, inputs=None, corrupted=False, batch_size=256, seed=0):
        """-log p(x | g(f(x~))) per example in nats: x~ is `inputs` (e.g. a corrupted copy of x), or
        with `corrupted` this model's corruption of x (seeded), else x itself."""
        x = np.asarray(x, "float32")
        if inputs is None:
            inputs = self.corrupt_numpy(x, seed) if corrupted else x
        inputs = np.asarray(inputs, "float32")
        fn = self.compiled_fn("recon_nll", lambda a, b: -self.log_likelihood(a, self.decode_params(self.encode(b))))
        return self.batched(fn, [x, inputs], batch_size)

    def corrupt_numpy(self, x, seed=0):
        """The corruption of training applied to NumPy data with a seed (x itself for a plain model)."""
        rng = np.random.default_rng(seed)
        x = np.asarray(x, "float32")
        if self.corruption == "masking":
            return x * (rng.uniform(size=x.shape) >= self.corruption_level).astype("float32")
        if self.corruption == "gaussian":
            return (x + self.corruption_level * rng.standard_normal(x.shape)).astype("float32")
        return x

    def evaluate_extra(self, prepared, batch_size=256):
        """Reconstruction NLL (nats per example; also from corrupted inputs for a denoising model)
        and the codes' mean activation."""
        out = {"reconstruction_nll": float(np.mean(self.reconstruction_nll(prepared.x, batch_size=batch_size)))}
        if self.corruption != "none":
            out["reconstruction_nll_corrupted"] = float(np.mean(
                self.reconstruction_nll(prepared.x, corrupted=True, batch_size=batch_size)))
        out["code_mean_activation"] = float(np.mean(self.latent_codes(prepared.x, batch_size=batch_size)))
        return out

    # === The fitted code Gaussian ===

    def fit_code_gaussian(self, x, batch_size=256):
        """Refits the code Gaussian (mean, covariance) exactly to the codes of `x`."""
        h = self.latent_codes(x, batch_size=batch_size).astype("float64")
        mean = h.mean(axis=0)
        cov = np.asarray((h - mean).T @ (h - mean) / len(h), "float32")
        self.code_mean.assign(mean.astype("float32"))
        self.code_covariance.assign(cov)
        self.code_cholesky.assign(keras.ops.convert_to_numpy(_cholesky(cov, self.code_dim)))
        self._kgen_fns.clear()

    def code_gaussian(self):
        """(mean, covariance) of the fitted code Gaussian, NumPy."""
        chol = np.asarray(keras.ops.convert_to_numpy(self.code_cholesky), "float64")
        return np.asarray(keras.ops.convert_to_numpy(self.code_mean)), chol @ chol.T

    # === Latent walks ===

    walk_methods = ("linear", "slerp")

    @property
    def latent_shape(self):
        return (self.code_dim,)

    def code_of(self, x, labels=None):
        return self.encode(x)

    def latent_location(self):
        """The fitted code Gaussian's mean and per-unit standard deviation."""
        mean, cov = self.code_gaussian()
        return mean.astype("float32"), np.sqrt(np.diag(cov)).astype("float32")

    def latent_activity(self, x=None, labels=None):
        """The variance of each code unit over `x`, or under the fitted code Gaussian without data."""
        if x is None:
            return np.diag(self.code_gaussian()[1])
        return LatentWalks.latent_activity(self, x)

    def draw_latents(self, n, seed=None):
        """`n` codes from the fitted code Gaussian."""
        z = np.random.default_rng(seed).standard_normal((n, self.code_dim)).astype("float32")
        chol = np.asarray(keras.ops.convert_to_numpy(self.code_cholesky))
        return np.asarray(keras.ops.convert_to_numpy(self.code_mean)) + z @ chol.T

    # === Sampling ===

    def noise_spec(self, n):
        return [("normal", (n, self.code_dim)), ("uniform", (n,) + self.data_shape)]

    def _sample(self, z, u):
        code = self.code_mean[None] + ops.matmul(ops.cast(z, "float32"), ops.transpose(self.code_cholesky))
        return self._decode_sample(code, u)

    def sample_from_noise(self, z, u, labels=None):
        """Samples from normal noise z (mapped through the fitted code Gaussian) and pixel uniforms u."""
        return self.compiled_fn("sample", self._sample)(z, u)

    # === Export ===

    litert_endpoints = ("encode", "decode", "sample")

    def export_endpoints(self):
        """encode(x) -> code; decode(code) -> mean image; sample(z, u) -> sample (z ~ N(0, I) through
        the fitted code Gaussian)."""
        x_spec = ((None,) + self.data_shape, "float32")
        z_spec = ((None, self.code_dim), "float32")

        def encode(x):
            return self.encode(x)

        def decode(z):
            return self.decode(z)

        def sample(z, u):
            return self._sample(z, u)

        return {
            "encode": (encode, [x_spec]),
            "decode": (decode, [z_spec]),
            "sample": (sample, [z_spec, x_spec]),
        }


def _cholesky(cov, dim):
    """The Cholesky factor of `cov` plus a ridge of `_JITTER` times its mean variance (and 1e-6)."""
    cov = ops.convert_to_tensor(cov, "float32")
    ridge = _JITTER * ops.mean(ops.diagonal(cov)) + 1e-6
    cov = 0.5 * (cov + ops.transpose(cov)) + ridge * ops.eye(dim, dtype="float32")
    return ops.cholesky(cov)
