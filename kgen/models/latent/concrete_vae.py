"""Concrete / Gumbel-softmax VAE: a VAE with discrete latents trained through a relaxation.

The latent z is V categorical variables of K classes (Jang et al.'s 20 x 10) or V
Bernoulli variables (handled as K = 2 classes), with a uniform prior p(z) and an
encoder that emits the logits of q(z|x) = prod_v Cat(softmax(logits_v)). A one-hot
z is not differentiable in the logits, so training samples the Concrete
(Gumbel-softmax) relaxation instead (Maddison et al. 2017; Jang et al. 2017):

    g_k = -log(-log u_k),  u_k ~ U(0, 1)
    y = softmax((logits + g) / tau)            (a point of the simplex)

As tau -> 0, y tends to the one-hot argmax(logits + g), which is an exact draw
from Cat(softmax(logits)) (the Gumbel-max trick); at tau > 0 the decoder sees y
and the reparameterised gradient flows through the softmax. The temperature
follows Jang et al.'s schedule tau_t = max(tau_min, tau_0 exp(-r t)), t the
training step (counted in a non-trainable weight, so a resumed run continues the
schedule), updated every `anneal_every` steps.

Estimators (the model's defining choice):

- relaxed (default): the decoder sees y; the gradient is that of the relaxed
  objective (biased for the discrete model, low variance).
- straight-through (`straight_through=True`, Jang et al. Sec. 2.2): the decoder
  sees the one-hot h = one_hot(argmax y) in the forward pass, and the backward
  pass uses the gradient of y: z = y + stop_gradient(h - y).

KL terms (`kl`):

- "discrete": the analytic KL(q(z|x) || p(z)) = sum_v sum_k q_vk log(K q_vk)
  of the categorical posterior against the uniform prior (Jang et al.).
- "relaxed": a one-sample estimate log q_tau(y|x) - log p_lambda(y) at the relaxed
  sample, both Concrete densities (Maddison et al.'s objective), with the prior's
  temperature lambda (`prior_temperature`) separate from the posterior's. The
  Concrete log-density of y on the simplex (w.r.t. Lebesgue measure on its first
  K - 1 coordinates) is

      log p(y) = log (K-1)! + (K-1) log tau + sum_k (a_k - (tau+1) log y_k)
                 - K logsumexp_k(a_k - tau log y_k),     a = logits.

Evaluation uses the discrete model: `score()` / `log_prob()` give the ELBO with one
one-hot sample from q(z|x) and the analytic KL, and `iw_samples` k > 0 adds the
importance-weighted bound log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x) with one-hot
z_i ~ q(z|x) and the uniform categorical prior (Burda et al. 2016). Sampling draws
the prior by Gumbel-max from uniforms. The decoder, its likelihoods (Bernoulli,
categorical over grey levels, Gaussian) and the bound loops are `kgen.models.latent.vae`'s.

Latent walks (`kgen.models.base.LatentWalks`) on categorical codes: the code of x is
the posterior mean E_q[z|x] = softmax(logits), a point of each variable's simplex
(the relaxed samples the decoder was trained on live there too); prior draws are
one-hot. `interpolate` is linear only (a straight path between two points of a
simplex stays in it; slerp would leave it). A traversal's rows are the latent
variables with the largest mean KL(q(z_v|x) || uniform) over data, and its columns
cycle one variable through its K classes (one-hot; `num_steps` and `span` do not
apply), every other variable kept at the base code; for Bernoulli latents the
columns sweep the variable from 0 to 1 in `num_steps` relaxed values (the ends are
the two discrete states).

#### References

- Jang, E., Gu, S. & Poole, B. Categorical Reparameterization with
  Gumbel-Softmax. ICLR 2017.
- Maddison, C. J., Mnih, A. & Teh, Y. W. The Concrete Distribution: A
  Continuous Relaxation of Discrete Random Variables. ICLR 2017.
- Burda, Y., Grosse, R. & Salakhutdinov, R. Importance Weighted
  Autoencoders. ICLR 2016.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from kgen import backend
from kgen.errors import DataError, UsageError
from kgen.models.base import GenerativeModel, LatentWalks
from kgen.models.latent.vae import VAE, _dense_stack, resolve_likelihood
from kgen.registry import register_model

LATENTS = ("categorical", "bernoulli")
KL_KINDS = ("discrete", "relaxed")
_TINY = 1e-7  # uniforms are drawn in [_TINY, 1 - _TINY]: finite Gumbel noise


# === The relaxation ===


def gumbel_noise(u):
    """Gumbel(0, 1) noise -log(-log u) from uniforms u in (0, 1)."""
    u = ops.clip(u, _TINY, 1.0 - _TINY)
    return -ops.log(-ops.log(u))


def gumbel_softmax(logits, u, tau, straight_through=False):
    """A relaxed one-hot sample y = softmax((logits + g) / tau) over the last axis.

    Args:
        logits: unnormalised log-probabilities (..., K).
        u: uniforms of the same shape (the noise, an input: deterministic given u).
        tau: temperature (> 0), a float or scalar tensor.
        straight_through: return one_hot(argmax y) in the forward pass with the
            gradient of y in the backward pass: y + stop_gradient(h - y).

    Returns:
        (z, log_y): the sample the decoder sees and the log of the relaxed sample y.
    """
    logits, u = ops.convert_to_tensor(logits, "float32"), ops.convert_to_tensor(u, "float32")
    log_y = ops.log_softmax((logits + gumbel_noise(u)) / tau, axis=-1)
    y = ops.exp(log_y)
    if straight_through:
        hard = ops.one_hot(ops.argmax(y, axis=-1), ops.shape(logits)[-1], dtype=y.dtype)
        return y + ops.stop_gradient(hard - y), log_y
    return y, log_y


def concrete_log_density(log_y, logits, tau):
    """log-density of Concrete(logits, tau) at y (given as log y), per variable (the last axis is K).

    With respect to Lebesgue measure on the first K - 1 coordinates of the simplex
    (Maddison et al. 2017, Definition 1).
    """
    log_y, logits = ops.convert_to_tensor(log_y, "float32"), ops.convert_to_tensor(logits, "float32")
    k = int(log_y.shape[-1])
    tau = ops.cast(tau, "float32")
    return (
        math.lgamma(k)
        + (k - 1) * ops.log(tau)
        + ops.sum(logits - (tau + 1.0) * log_y, axis=-1)
        - k * ops.logsumexp(logits - tau * log_y, axis=-1)
    )


def categorical_kl_to_uniform(logits):
    """KL(Cat(softmax(logits)) || uniform) per variable: sum_k q_k (log q_k + log K)."""
    log_q = ops.log_softmax(ops.convert_to_tensor(logits, "float32"), axis=-1)
    return ops.sum(ops.exp(log_q) * (log_q + math.log(int(logits.shape[-1]))), axis=-1)


def _uniform_from_normal(eps):
    """U(0, 1) from standard-normal noise by the normal CDF (the bound loops of `VAE` draw normals)."""
    return 0.5 * (1.0 + ops.erf(eps / math.sqrt(2.0)))


@register_model("concrete_vae", family="latent",
                tiny=dict(latent_vars=3, latent_classes=4, hidden_units=(16,)))
class ConcreteVAE(LatentWalks, GenerativeModel):
    """Concrete / Gumbel-softmax VAE (Jang et al. 2017; Maddison et al. 2017): discrete latents.

    `log_prob(x)` is the ELBO of the discrete model (one-hot z, analytic KL), a
    lower bound on log p(x) in nats; `iw_log_prob(x, k)` and `score(...,
    iw_samples=k)` give the tighter importance-weighted bound with one-hot samples.

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (2: binary), None for continuous.
        num_classes: must be None (no conditional version).
        latent: "categorical" (`latent_vars` variables of `latent_classes`
            classes) or "bernoulli" (`latent_vars` binary variables).
        latent_vars: number of latent variables V.
        latent_classes: classes K of each categorical variable (ignored, 2,
            for "bernoulli").
        hidden_units: units of each hidden layer of the encoder MLP (the
            decoder mirrors it).
        activation: hidden activation.
        likelihood: "bernoulli", "categorical" (over `num_levels`),
            "gaussian", or "auto" (from the data), as in `VAE`.
        temperature: the initial temperature tau_0 of the relaxed posterior.
        tau_min: the floor of the annealed temperature.
        anneal_rate: r in tau_t = max(tau_min, tau_0 exp(-r t)) (0: constant).
        anneal_every: the temperature is updated every this many steps
            (Jang et al.'s N; t is floored to a multiple of it).
        prior_temperature: the Concrete prior's temperature lambda for the
            relaxed KL; None uses the posterior's (annealed) temperature.
        kl: "discrete" (analytic categorical KL) or "relaxed" (Concrete
            log-density ratio at the relaxed sample).
        straight_through: the decoder sees one-hot samples in training, with
            the relaxed gradient (straight-through Gumbel-softmax).

    Example:

    >>> import kgen
    >>> model = kgen.build_model("concrete_vae", input_shape=(8, 8, 1), num_levels=17,
    ...                          latent_vars=4, latent_classes=5, hidden_units=(32,))
    >>> model.compile(optimizer="adam")
    >>> data = kgen.load_dataset("digits")
    >>> _ = model.fit(data.x, epochs=1, batch_size=64, verbose=0)
    >>> model.sample(4, seed=0).shape
    (4, 8, 8, 1)
    >>> model.current_temperature()  # tau_0 until step 500 (anneal_every)
    1.0
    """

    log_prob_kind = "elbo"

    def __init__(
        self,
        input_shape,
        num_levels=None,
        num_classes=None,
        latent="categorical",
        latent_vars=20,
        latent_classes=10,
        hidden_units=(512, 256),
        activation="relu",
        likelihood="auto",
        temperature=1.0,
        tau_min=0.5,
        anneal_rate=3e-5,
        anneal_every=500,
        prior_temperature=None,
        kl="discrete",
        straight_through=False,
        **kwargs,
    ):
        if num_classes is not None:
            raise UsageError("concrete_vae has no conditional version: drop num_classes.")
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        likelihood = resolve_likelihood(likelihood, num_levels)
        if latent not in LATENTS:
            raise UsageError(f'unknown latent "{latent}"; choose one of {", ".join(LATENTS)}.')
        if kl not in KL_KINDS:
            raise UsageError(f'unknown kl "{kl}"; choose one of {", ".join(KL_KINDS)}.')
        if int(latent_vars) < 1 or (latent == "categorical" and int(latent_classes) < 2):
            raise UsageError(f"need latent_vars >= 1 and latent_classes >= 2, got {latent_vars} and {latent_classes}.")
        for key, value in (("temperature", temperature), ("tau_min", tau_min)):
            if not float(value) > 0:
                raise UsageError(f"{key} must be > 0, got {value}.")
        if prior_temperature is not None and not float(prior_temperature) > 0:
            raise UsageError(f"prior_temperature must be > 0 (or None: the posterior's), got {prior_temperature}.")
        if float(anneal_rate) < 0 or int(anneal_every) < 1:
            raise UsageError(f"need anneal_rate >= 0 and anneal_every >= 1, got {anneal_rate} and {anneal_every}.")
        self.latent = latent
        self.latent_vars = int(latent_vars)
        self.latent_classes = int(latent_classes)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.likelihood = likelihood
        self.temperature = float(temperature)
        self.tau_min = float(tau_min)
        self.anneal_rate = float(anneal_rate)
        self.anneal_every = int(anneal_every)
        self.prior_temperature = None if prior_temperature is None else float(prior_temperature)
        self.kl = kl
        self.straight_through = bool(straight_through)
        # Classes per variable as computed (Bernoulli: 2, logits [l, 0]); noise per example.
        self.k = 2 if latent == "bernoulli" else self.latent_classes
        self.latent_dim = self.latent_vars * self.k  # the noise size the bound loops of `VAE` draw
        self.decoder_in = self.latent_vars if latent == "bernoulli" else self.latent_dim
        self.out_per_dim = {"bernoulli": 1, "categorical": self.num_levels, "gaussian": 2}[likelihood]

        # === Layers ===
        self.flatten = layers.Flatten(name="flatten")
        self.encoder_body = _dense_stack(self.hidden_units, activation, "encoder")
        self.encoder_out = layers.Dense(self.latent_vars * (1 if latent == "bernoulli" else self.k),
                                        name="encoder_out")
        self.decoder_body = _dense_stack(self.hidden_units[::-1], activation, "decoder")
        self.decoder_out = layers.Dense(self.num_dims * self.out_per_dim, name="decoder_out")

        # === State and metrics ===
        # The training step t of the temperature schedule: a weight, so checkpoints keep it.
        self.anneal_step = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False,
                                           name="anneal_step")
        self.seed_generator = keras.random.SeedGenerator(0)
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.tau_tracker = keras.metrics.Mean(name="temperature")
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        h = keras.KerasTensor((None, self.num_dims))
        for layer in self.encoder_body:
            h = layer(h)
        self.encoder_out(h)
        z = keras.KerasTensor((None, self.decoder_in))
        for layer in self.decoder_body:
            z = layer(z)
        self.decoder_out(z)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "latent": self.latent,
                "latent_vars": self.latent_vars,
                "latent_classes": self.latent_classes,
                "hidden_units": list(self.hidden_units),
                "activation": self.activation,
                "likelihood": self.likelihood,
                "temperature": self.temperature,
                "tau_min": self.tau_min,
                "anneal_rate": self.anneal_rate,
                "anneal_every": self.anneal_every,
                "prior_temperature": self.prior_temperature,
                "kl": self.kl,
                "straight_through": self.straight_through,
            }
        )
        return config

    # === Networks ===

    # The decoder and its likelihoods are the VAE's (vae.py keeps them as methods).
    decode_params = VAE.decode_params
    log_likelihood = VAE.log_likelihood

    def encode(self, x, labels=None):
        """q(z|x): logits (batch, latent_vars, K); Bernoulli variables as the two classes [l, 0]."""
        h = self.flatten(ops.cast(x, "float32"))
        for layer in self.encoder_body:
            h = layer(h)
        out = self.encoder_out(h)
        if self.latent == "bernoulli":
            return ops.stack([out, ops.zeros_like(out)], axis=-1)
        return ops.reshape(out, (-1, self.latent_vars, self.k))

    def _decoder_input(self, z):
        """(batch, V, K) one-hot or relaxed z -> the decoder's input (Bernoulli: class 0, "on")."""
        if self.latent == "bernoulli":
            return z[..., 0]
        return ops.reshape(z, (-1, self.decoder_in))

    def decode(self, z, labels=None):
        """The decoder's mean image E[x|z] from a one-hot z: (batch, V, K), or (batch, V) bits for Bernoulli."""
        if self.latent == "bernoulli":
            return VAE.decode(self, ops.cast(z, "float32"))
        return VAE.decode(self, self._decoder_input(ops.cast(z, "float32")))

    # === Latent walks ===

    walk_methods = ("linear",)

    @property
    def latent_shape(self):
        return (self.latent_vars,) if self.latent == "bernoulli" else (self.latent_vars, self.k)

    @property
    def traversal_units(self):
        return self.latent_vars

    def code_of(self, x, labels=None):
        """The code of x: the posterior mean softmax(logits) (Bernoulli: the probability of "on")."""
        probs = ops.softmax(self.encode(x), axis=-1)
        return probs[..., 0] if self.latent == "bernoulli" else probs

    def draw_latents(self, n, seed=None):
        """`n` one-hot (Bernoulli: 0/1) codes from the uniform prior."""
        rng = np.random.default_rng(seed)
        if self.latent == "bernoulli":
            return (rng.uniform(size=(n, self.latent_vars)) < 0.5).astype("float32")
        return np.eye(self.k, dtype="float32")[rng.integers(0, self.k, (n, self.latent_vars))]

    def latent_location(self):
        """The prior's mean code (1/K for every class) and a unit scale (unused by the traversal)."""
        centre = np.full(self.latent_shape, 1.0 / self.k, "float32")
        return centre, np.ones(self.latent_shape, "float32")

    def latent_activity(self, x=None, labels=None):
        """Mean KL(q(z_v|x) || uniform) of each variable over the examples `x` (nats), None without data."""
        if x is None:
            return None
        fn = self.compiled_fn("kl_per_var", lambda a: categorical_kl_to_uniform(self.encode(a)))
        return self.batched(fn, [np.asarray(x, "float32")], 256).mean(axis=0)

    def traversal_codes(self, base, dims, num_steps=7, span=3.0):
        """Rows cycle variable `dims[r]` through its K classes (Bernoulli: 0 to 1 in `num_steps`)."""
        base = np.asarray(base, "float32").reshape(self.latent_shape)
        if self.latent == "bernoulli":
            values = np.repeat(np.linspace(0.0, 1.0, int(num_steps), dtype="float32")[None], len(dims), 0)
        else:
            values = np.repeat(np.arange(self.k, dtype="float32")[None], len(dims), 0)
        codes = np.repeat(np.repeat(base[None, None], len(dims), 0), values.shape[1], 1)
        for r, v in enumerate(dims):
            if self.latent == "bernoulli":
                codes[r, :, v] = values[r]
            else:
                codes[r, :, v] = np.eye(self.k, dtype="float32")
        return codes, values

    # === Temperature ===

    def temperature_at(self, step):
        """tau_t = max(tau_min, tau_0 exp(-r t)), t floored to a multiple of `anneal_every`."""
        t = ops.cast(step, "float32")
        if self.anneal_every > 1:
            t = ops.floor(t / self.anneal_every) * self.anneal_every
        return ops.maximum(self.tau_min, self.temperature * ops.exp(-self.anneal_rate * t))

    def current_temperature(self):
        """The posterior's temperature at the current training step (a float)."""
        return float(keras.ops.convert_to_numpy(self.temperature_at(self.anneal_step)))

    # === Training ===

    def call(self, inputs, training=False):
        x, _ = self.split_inputs(inputs)
        logits = self.encode(x)
        tau = self.temperature_at(self.anneal_step)
        if training:
            self.anneal_step.assign_add(1)
        u = keras.random.uniform(ops.shape(logits), seed=self.seed_generator)
        z, log_y = gumbel_softmax(logits, u, tau, self.straight_through)
        recon = -self.log_likelihood(x, self.decode_params(self._decoder_input(z)))
        if self.kl == "discrete":
            kl = ops.sum(categorical_kl_to_uniform(logits), axis=-1)
        else:
            prior_tau = tau if self.prior_temperature is None else self.prior_temperature
            kl = ops.sum(concrete_log_density(log_y, logits, tau)
                         - concrete_log_density(log_y, ops.zeros_like(logits), prior_tau), axis=-1)
        return {"recon": recon, "kl": kl, "temperature": ops.zeros_like(recon) + tau}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        recon, kl = y_pred["recon"], y_pred["kl"]
        self.recon_tracker.update_state(recon)
        self.kl_tracker.update_state(kl)
        self.tau_tracker.update_state(y_pred["temperature"])
        loss = ops.mean(recon + kl)
        return backend.scale_loss_for_replicas(self.plus_layer_losses(loss))  # tf.distribute: a replica's share

    def check_data(self, data):
        super().check_data(data)
        if self.likelihood in ("bernoulli", "categorical") and data.num_levels != self.num_levels:
            raise DataError(
                f"{data.name}: pixels take {data.num_levels or 'continuous'} levels, the model expects "
                f"{self.num_levels}" + ("; set data.binarize = \"static\" or \"dynamic\"."
                                        if self.likelihood == "bernoulli" else ".")
            )

    # === Likelihood: the discrete model ===

    def _discrete_posterior(self, logits, eps):
        """One-hot z ~ q(z|x) by Gumbel-max from normal noise eps (mapped to uniforms), and log q(z|x)."""
        u = ops.reshape(_uniform_from_normal(eps), tuple(ops.shape(eps)[:-1]) + (self.latent_vars, self.k))
        z = ops.one_hot(ops.argmax(logits + gumbel_noise(u), axis=-1), self.k)
        log_q = ops.sum(z * ops.log_softmax(logits, axis=-1), axis=(-2, -1))
        return z, log_q

    def _elbo_terms(self, x, labels, eps):
        logits = self.encode(x)
        z, _ = self._discrete_posterior(logits, eps)
        ll = self.log_likelihood(x, self.decode_params(self._decoder_input(z)))
        kl = ops.sum(categorical_kl_to_uniform(logits), axis=-1)
        return {"elbo": ll - kl, "recon": -ll, "kl": kl}

    def _iw_chunk(self, x, labels, eps):
        """log w = log p(x|z) + log p(z) - log q(z|x) for one-hot z: eps (k, batch, noise) -> (k, batch)."""
        logits = self.encode(x)
        z, log_q = self._discrete_posterior(logits[None], eps)
        k, b = ops.shape(eps)[0], ops.shape(x)[0]
        x_rep = ops.reshape(ops.broadcast_to(x[None], (k,) + tuple(ops.shape(x))), (-1,) + self.data_shape)
        z_flat = self._decoder_input(ops.reshape(z, (-1, self.latent_vars, self.k)))
        ll = ops.reshape(self.log_likelihood(x_rep, self.decode_params(z_flat)), (k, b))
        return ll - self.latent_vars * math.log(self.k) - log_q

    # The loops over examples and importance samples are the VAE's: they draw normal noise
    # (n, latent_dim), which `_discrete_posterior` maps to the uniforms of a Gumbel-max draw.
    _labels_array = VAE._labels_array
    elbo_terms = VAE.elbo_terms
    log_prob = VAE.log_prob
    iw_log_prob = VAE.iw_log_prob
    score = VAE.score

    # === Sampling ===

    def noise_spec(self, n):
        return [("uniform", (n, self.latent_vars, self.k)), ("uniform", (n,) + self.data_shape)]

    def _sample(self, uz, ux):
        # Gumbel-max on the uniform prior: argmax_k -log(-log u_k) = argmax_k u_k (monotone). The
        # one-hot as a comparison with the max (ties have probability 0): TensorFlow's argmax brings a
        # BitwiseAnd that LiteRT lacks.
        z = ops.cast(uz >= ops.max(uz, axis=-1, keepdims=True), "float32")
        return VAE._sample(self, self._decoder_input(z), ux)

    def sample_from_noise(self, uz, ux, labels=None):
        """Samples from prior uniforms uz (n, V, K) (Gumbel-max) and pixel uniforms ux."""
        return self.compiled_fn("sample", self._sample)(uz, ux)

    # === Export ===

    litert_endpoints = ("decode", "sample")

    def export_endpoints(self):
        """encode(x) -> logits (n, V, K); decode(one-hot z) -> mean image; sample(uz, ux) -> sample."""
        x_spec = ((None,) + self.data_shape, "float32")
        z_shape = (None, self.latent_vars) if self.latent == "bernoulli" else (None, self.latent_vars, self.k)
        u_spec = ((None, self.latent_vars, self.k), "float32")

        def encode(x):
            return self.encode(x)

        def decode(z):
            return self.decode(z)

        def sample(uz, ux):
            return self._sample(uz, ux)

        return {
            "encode": (encode, [x_spec]),
            "decode": (decode, [(z_shape, "float32")]),
            "sample": (sample, [u_spec, x_spec]),
        }
