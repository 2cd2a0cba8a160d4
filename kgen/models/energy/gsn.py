"""GSN: the generative stochastic network (Bengio et al. 2014), a denoising autoencoder trained with walkback.

A GSN learns the transition operator of a Markov chain instead of a density.
One step of the chain from a state x_t is the denoising autoencoder with
noise injected in its hidden layers:

    x~ = C(x_t)                                   input corruption
    a_l = W_l h_{l-1} + c_l + s * eps_l,  h_l = act(a_l) + s * eps'_l   (each hidden layer, h_0 = x~)
    p(x | h_L) = decoder(h_L)                     Bernoulli (binary data) or categorical over grey levels
    x_{t+1} ~ p(x | h_L)

Generalized denoising autoencoders (Bengio et al. 2013) show that when the
reconstruction distribution P(X | X~) is a consistent estimator of the true
one, the chain's stationary distribution is a consistent estimator of the data
distribution. Walkback (Bengio et al. 2013, Sec. 3.4) trains the
reconstruction from the chain's own visits: k steps are run from a training
point x_0 and every step's reconstruction distribution is scored at the clean
x_0,

    loss(x_0) = (1 / k) sum_{t=1..k} -log p(x_0 | h_L(C(x_{t-1}))),

so with k = 1 it is the plain denoising loss; the sampled states carry no
gradient (the samples are discrete). Walkback seeks out the spurious modes the
chain would wander into far from the data and pushes them back toward it.

The corruption C:

- "salt_and_pepper" (the GSN paper's MNIST choice, p = 0.4): each pixel is
  replaced with probability p by a level drawn uniformly from the data's
  levels (for binary data a fair coin: a pixel changes with probability p/2);
- "gaussian": x + N(0, s^2) added to the pixel values (the state stays
  discrete; only the encoder's input is noisy).

Output for level data (kgen's 17-level digits): a categorical over the grey
levels (as the VAE's "categorical" likelihood), so the chain's state stays in
the data's own discrete space and a salt-and-pepper replacement draws a level.
Continuous data are refused: the state of this chain is discrete.

Sampling runs `ceil(n / chain_length)` chains from uniformly random states:
`burn_in` steps are discarded, then each chain gives `chain_length`
consecutive states (the GSN paper shows consecutive states of one chain).
The chain's randomness comes from NumPy noise drawn from the seed in blocks of
steps, so the same seed gives the same samples on every backend and memory
stays bounded however long the chain.

#### References

- Bengio, Y., Thibodeau-Laufer, E., Alain, G. & Yosinski, J. Deep generative
  stochastic networks trainable by backprop. ICML 2014.
- Bengio, Y., Yao, L., Alain, G. & Vincent, P. Generalized denoising
  auto-encoders as generative models. NIPS 2013.
- Vincent, P., Larochelle, H., Bengio, Y. & Manzagol, P.-A. Extracting and
  composing robust features with denoising autoencoders. ICML 2008.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from kgen import backend
from kgen.errors import DataError, UsageError
from kgen.models.base import GenerativeModel, chain_schedule
from kgen.models.latent.vae import resolve_likelihood
from kgen.registry import register_model

CORRUPTIONS = ("salt_and_pepper", "gaussian")
# Chain steps per compiled call of `sample` (each block's noise is drawn up front).
SAMPLE_BLOCK = 25


@register_model("gsn", family="energy",
                tiny=dict(hidden_units=(16,), walkback=2, burn_in=3, chain_length=2))
class GSN(GenerativeModel):
    """Generative stochastic network (Bengio et al. 2014): a denoising autoencoder with walkback, sampled by its chain.

    No likelihood: `kgen evaluate` reports FID/KID of chain samples and the
    reconstruction NLL of the first (plain denoising) step.

    Args:
        input_shape: shape of one example, e.g. `(28, 28, 1)` or `(D,)`.
        num_levels: grey levels of the data: 2 (binary) or more (categorical
            output over the levels). Continuous data are refused.
        num_classes: must be None (unconditional).
        hidden_units: units of each hidden layer of the encoder (the decoder
            mirrors all but the last).
        activation: hidden activation (tanh in the paper).
        likelihood: "bernoulli", "categorical" or "auto" (from the data).
        corruption: "salt_and_pepper" or "gaussian" (input noise).
        corruption_level: the replacement probability p, or the Gaussian std.
        hidden_noise: std of the Gaussian noise added before and after each
            hidden activation (the paper's sigma = 2; 0: a plain DAE).
        walkback: k, chain steps per training example, each reconstruction
            scored at the clean example.
        burn_in: chain steps discarded before the first sample.
        chain_length: consecutive samples each chain gives after burn-in.

    Training logs `loss` (the mean over the k walkback steps) and `recon`
    (the first step's NLL: the plain denoising loss, comparable across k).

    Example:

    >>> import kgen
    >>> gsn = kgen.build_model("gsn", input_shape=(8, 8, 1), num_levels=17, hidden_units=(32,), walkback=2)
    >>> gsn.compile(optimizer="adam")
    >>> _ = gsn.fit(kgen.load_dataset("digits").x[:64], epochs=1, batch_size=32, verbose=0)
    >>> gsn.sample(4, seed=0).shape
    (4, 8, 8, 1)
    """

    def __init__(
        self,
        input_shape,
        num_levels=2,
        num_classes=None,
        hidden_units=(1500,),
        activation="tanh",
        likelihood="auto",
        corruption="salt_and_pepper",
        corruption_level=0.4,
        hidden_noise=2.0,
        walkback=4,
        burn_in=100,
        chain_length=1,
        **kwargs,
    ):
        if num_classes is not None:
            raise UsageError("the GSN is not conditional; it takes no num_classes.")
        if num_levels is None:
            raise UsageError("the GSN's chain lives on discrete data: it needs num_levels (2 for binary images, "
                             "or the grey levels); continuous data are not supported.")
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        likelihood = resolve_likelihood(likelihood, num_levels)
        if likelihood == "gaussian":
            raise UsageError('the GSN samples discrete states: likelihood must be "bernoulli" or "categorical".')
        if corruption not in CORRUPTIONS:
            raise UsageError(f'unknown corruption "{corruption}"; choose one of {", ".join(CORRUPTIONS)}.')
        if corruption == "salt_and_pepper" and not 0.0 <= float(corruption_level) <= 1.0:
            raise UsageError(f"salt-and-pepper noise replaces a fraction of the pixels: corruption_level must lie "
                             f"in [0, 1], got {corruption_level}.")
        if not float(corruption_level) >= 0.0 or not float(hidden_noise) >= 0.0:
            raise UsageError(f"noise levels must be >= 0, got corruption_level = {corruption_level}, "
                             f"hidden_noise = {hidden_noise}.")
        self.hidden_units = tuple(int(u) for u in hidden_units)
        if not self.hidden_units or min(self.hidden_units) < 1:
            raise UsageError(f"hidden_units must be one or more positive sizes, got {list(hidden_units)}.")
        for name, value, low in (("walkback", walkback, 1), ("burn_in", burn_in, 0), ("chain_length", chain_length, 1)):
            if isinstance(value, bool) or int(value) != value or int(value) < low:
                raise UsageError(f"{name} must be an integer >= {low}, got {value}.")
        self.activation = activation
        self.likelihood = likelihood
        self.corruption = corruption
        self.corruption_level = float(corruption_level)
        self.hidden_noise = float(hidden_noise)
        self.walkback = int(walkback)
        self.burn_in = int(burn_in)
        self.chain_length = int(chain_length)
        self.out_per_dim = 1 if likelihood == "bernoulli" else self.num_levels

        # === Layers ===
        self.encoder_layers = [layers.Dense(u, name=f"encoder_dense_{i}") for i, u in enumerate(self.hidden_units)]
        self.hidden_act = layers.Activation(activation, name="hidden_activation")
        self.decoder_body = [layers.Dense(u, activation=activation, name=f"decoder_dense_{i}")
                             for i, u in enumerate(self.hidden_units[:-1][::-1])]
        self.decoder_out = layers.Dense(self.num_dims * self.out_per_dim, name="decoder_out")

        # === State and metrics ===
        self.seed_generator = keras.random.SeedGenerator(0)
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        h = keras.KerasTensor((None, self.num_dims))
        for layer in self.encoder_layers:
            h = layer(h)
        for layer in self.decoder_body:
            h = layer(h)
        self.decoder_out(h)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "likelihood": self.likelihood,
            "corruption": self.corruption,
            "corruption_level": self.corruption_level,
            "hidden_noise": self.hidden_noise,
            "walkback": self.walkback,
            "burn_in": self.burn_in,
            "chain_length": self.chain_length,
        })
        return config

    # === One step of the chain, as a function of its noise ===

    @property
    def uniform_width(self):
        """Uniforms per example per step: D for the corruption mask, D for the replacement level, D to sample."""
        return 3 * self.num_dims

    @property
    def normal_width(self):
        """Standard normals per example per step: D for Gaussian input noise, then 2 per hidden unit."""
        return self.num_dims + 2 * sum(self.hidden_units)

    def corrupt(self, x, u, z):
        """C(x) from flat states x (n, D), uniforms u (n, 3D) and normals z (n, normal_width)."""
        d = self.num_dims
        x, u, z = (ops.convert_to_tensor(a, "float32") for a in (x, u, z))
        if self.corruption == "gaussian":
            return x + self.corruption_level * z[:, :d]
        levels = self.num_levels
        replace = ops.cast(ops.less(u[:, :d], self.corruption_level), "float32")
        level = ops.minimum(ops.floor(u[:, d: 2 * d] * levels), levels - 1.0) / (levels - 1.0)
        return x * (1.0 - replace) + level * replace

    def encode(self, x_tilde, z):
        """h_L of corrupted flat inputs with the hidden noise from z (after the first D columns)."""
        h, offset = ops.convert_to_tensor(x_tilde, "float32"), self.num_dims
        z = ops.convert_to_tensor(z, "float32")
        for layer, units in zip(self.encoder_layers, self.hidden_units):
            a = layer(h)
            if self.hidden_noise > 0:
                a = a + self.hidden_noise * z[:, offset: offset + units]
            h = self.hidden_act(a)
            if self.hidden_noise > 0:
                h = h + self.hidden_noise * z[:, offset + units: offset + 2 * units]
            offset += 2 * units
        return h

    def decode_params(self, h):
        """Logits of p(x | h): (n, D) for Bernoulli, (n, D, L) for categorical."""
        for layer in self.decoder_body:
            h = layer(h)
        out = self.decoder_out(h)
        if self.likelihood == "bernoulli":
            return out
        return ops.reshape(out, (-1, self.num_dims, self.num_levels))

    def nll(self, x, params):
        """-log p(x | h) summed over pixels, per example (x flat in [0, 1])."""
        if self.likelihood == "bernoulli":
            return ops.sum(ops.softplus(params) - x * params, axis=-1)
        idx = ops.cast(ops.round(x * (self.num_levels - 1)), "int32")
        logp = ops.log_softmax(params, axis=-1)
        return -ops.sum(ops.sum(logp * ops.one_hot(idx, self.num_levels), axis=-1), axis=-1)

    def draw(self, params, u):
        """A state drawn from p(x | h) with uniforms u (n, D): Bernoulli, or the categorical's inverse CDF."""
        if self.likelihood == "bernoulli":
            return ops.cast(ops.less(u, ops.sigmoid(params)), "float32")
        cdf = ops.cumsum(ops.softmax(params, axis=-1), axis=-1)
        level = ops.sum(ops.cast(ops.less(cdf[..., :-1], u[..., None]), "float32"), axis=-1)
        return level / (self.num_levels - 1.0)

    def mean(self, params):
        """E[x | h] in [0, 1] (n, D)."""
        if self.likelihood == "bernoulli":
            return ops.sigmoid(params)
        levels = ops.arange(self.num_levels, dtype="float32") / (self.num_levels - 1.0)
        return ops.sum(ops.softmax(params, axis=-1) * levels, axis=-1)

    def step(self, x, u, z):
        """One transition: (reconstruction logits, next state) from flat states x (n, D) and one step's noise."""
        params = self.decode_params(self.encode(self.corrupt(x, u, z), z))
        return params, self.draw(params, u[:, 2 * self.num_dims:])

    def walkback_nll(self, x0, u, z):
        """Per-step NLLs (n, k) of the clean x0 under each reconstruction of a k-step walk from x0.

        `u` (n, k, 3D) and `z` (n, k, normal_width) are the walk's noise; the sampled states
        carry no gradient.
        """
        x0, u, z = (ops.convert_to_tensor(a, "float32") for a in (x0, u, z))
        x, out = x0, []
        for t in range(int(u.shape[1])):
            params, nxt = self.step(x, u[:, t], z[:, t])
            out.append(self.nll(x0, params))
            x = ops.stop_gradient(nxt)
        return ops.stack(out, axis=1)

    def run_chain(self, x, u, z):
        """The state after `u.shape[1]` chain steps from flat states x (n, D) (a compiled loop)."""
        def body(t, x):
            return self.step(x, ops.take(u, t, axis=1), ops.take(z, t, axis=1))[1]

        return ops.fori_loop(0, int(u.shape[1]), body, x)

    # === Training ===

    def _flat(self, x):
        return ops.reshape(ops.cast(x, "float32"), (-1, self.num_dims))

    def call(self, inputs, training=False):
        x, _ = self.split_inputs(inputs)
        x0 = self._flat(x)
        n = ops.shape(x0)[0]
        u = keras.random.uniform((n, self.walkback, self.uniform_width), seed=self.seed_generator)
        z = keras.random.normal((n, self.walkback, self.normal_width), seed=self.seed_generator)
        return {"walkback": self.walkback_nll(x0, u, z)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        steps = y_pred["walkback"]
        self.recon_tracker.update_state(steps[:, 0])
        return backend.scale_loss_for_replicas(self.plus_layer_losses(ops.mean(steps)))

    def check_data(self, data):
        super().check_data(data)
        if data.num_levels != self.num_levels:
            raise DataError(
                f"{data.name}: pixels take {data.num_levels or 'continuous'} levels, the GSN expects "
                f"{self.num_levels}; " + ("set data.binarize = \"static\" or \"dynamic\"."
                                          if self.num_levels == 2 else "train a new model on this data set.")
            )

    # === Evaluation ===

    def reconstruction_nll(self, x, seed=0, steps=None, batch_size=256):
        """Per-example NLL (nats) of each walkback step's reconstruction at x, NumPy (n, steps); seeded noise.

        Column 0 is the plain denoising loss; `steps` defaults to `walkback`.
        """
        x = np.asarray(x, "float32").reshape(-1, self.num_dims)
        steps = self.walkback if steps is None else int(steps)
        rng = np.random.default_rng(seed)
        u = rng.uniform(size=(len(x), steps, self.uniform_width)).astype("float32")
        z = rng.standard_normal((len(x), steps, self.normal_width)).astype("float32")
        fn = self.compiled_fn(("walkback_nll", steps), self.walkback_nll)
        return self.batched(fn, [x, u, z], batch_size)

    def evaluate_extra(self, prepared, batch_size=256):
        """The reconstruction NLL of the first (denoising) step and of the last walkback step (nats)."""
        nll = self.reconstruction_nll(prepared.x, batch_size=batch_size)
        return {"reconstruction_nll": float(nll[:, 0].mean()), "walkback_last_nll": float(nll[:, -1].mean()),
                "walkback": self.walkback}

    # === Sampling ===

    def noise_spec(self, n):
        """The chains' initial uniforms, then each of the burn_in + chain_length steps' uniforms and normals."""
        steps = self.burn_in + self.chain_length
        return [("uniform", (n, self.num_dims)), ("uniform", (n, steps, self.uniform_width)),
                ("normal", (n, steps, self.normal_width))]

    def _initial_state(self, u0):
        """A uniformly random state from uniforms u0 (n, D): each pixel a level drawn uniformly."""
        levels = self.num_levels
        return ops.minimum(ops.floor(ops.cast(u0, "float32") * levels), levels - 1.0) / (levels - 1.0)

    def sample_from_noise(self, u0, u, z, labels=None):
        """The chains' last `chain_length` states (n * chain_length samples, chain by chain) from given noise."""
        if labels is not None:
            raise UsageError("the GSN is not conditional: it takes no labels.")
        x = self._initial_state(ops.convert_to_tensor(np.asarray(u0, "float32").reshape(-1, self.num_dims)))
        traj = self.compiled_fn(("trajectory", int(u.shape[1])), self._trajectory)(x, u, z)
        return backend.to_numpy(traj)[:, self.burn_in:].reshape((-1,) + self.data_shape)

    def sample(self, n, seed=None, labels=None, temperature=1.0, batch_size=256):
        """`n` samples: `ceil(n / chain_length)` chains from random states, `burn_in` steps discarded.

        The noise is drawn from `seed` in blocks of steps (bounded memory); the same seed gives the
        same samples. `temperature` is not defined for a chain and must stay 1.
        """
        if labels is not None:
            raise UsageError("the GSN is not conditional: it takes no labels.")
        if temperature != 1.0:
            raise UsageError("the GSN's chain has no temperature: drop --temperature.")
        chains = math.ceil(int(n) / self.chain_length)
        outs = []
        for i, child in enumerate(np.random.SeedSequence(seed).spawn(math.ceil(chains / batch_size))):
            m = min(batch_size, chains - i * batch_size)
            outs.append(self.run_chains(m, np.random.default_rng(child))[:, self.burn_in:])
        return np.concatenate(outs).reshape((-1,) + self.data_shape)[: int(n)]

    def sample_chains(self, chains, states, burn_in=None, every=1, seed=None, batch_size=256, labels=None):
        """`chains` chains from random states, each recording `states` states: the state after
        `burn_in` steps (default `burn_in + 1`: the first state `sample` keeps), then every `every` steps.

        Returns NumPy `(chains, states) + data_shape`; the same seed gives the same states.
        The GSN is unconditional: `labels` must be None.
        """
        self._labels_for(1, labels)  # a one-line error for labels
        steps = chain_schedule(chains, states, self.burn_in + 1 if burn_in is None else burn_in, every)
        picks = np.asarray(steps) - 1  # the trajectory's index t holds the state after t + 1 steps
        outs = []
        for i, child in enumerate(np.random.SeedSequence(seed).spawn(math.ceil(chains / batch_size))):
            m = min(batch_size, chains - i * batch_size)
            outs.append(self.run_chains(m, np.random.default_rng(child), steps=steps[-1])[:, picks])
        return np.concatenate(outs).reshape((int(chains), len(steps)) + self.data_shape)

    def run_chains(self, m, rng, steps=None, start=None):
        """`m` chains' trajectories (m, steps, D), NumPy, with noise from the NumPy Generator `rng`.

        `steps` defaults to burn_in + chain_length; the chains start at `start` (m, D) flat states,
        else at uniformly random states. Runs in compiled blocks of steps, each block's noise drawn
        up front.
        """
        steps = self.burn_in + self.chain_length if steps is None else int(steps)
        d = self.num_dims
        u0 = rng.uniform(size=(m, d)).astype("float32")
        x = (ops.convert_to_tensor(np.asarray(start, "float32").reshape(m, d)) if start is not None
             else self._initial_state(ops.convert_to_tensor(u0)))
        states, done = [], 0
        while done < steps:
            block = min(SAMPLE_BLOCK, steps - done)
            u = rng.uniform(size=(m, block, self.uniform_width)).astype("float32")
            z = rng.standard_normal((m, block, self.normal_width)).astype("float32")
            traj = self.compiled_fn(("trajectory", block), self._trajectory)(x, u, z)
            states.append(backend.to_numpy(traj))
            x = ops.convert_to_tensor(states[-1][:, -1])
            done += block
        return np.concatenate(states, axis=1)

    def _trajectory(self, x, u, z):
        """Every state of `u.shape[1]` chain steps from flat states x: (n, steps, D)."""
        def body(t, carry):
            x, traj = carry
            x = self.step(x, ops.take(u, t, axis=1), ops.take(z, t, axis=1))[1]
            return x, ops.slice_update(traj, (0, t, 0), x[:, None])

        traj = ops.zeros((ops.shape(x)[0], int(u.shape[1]), self.num_dims), "float32")
        return ops.fori_loop(0, int(u.shape[1]), body, (x, traj))[1]

    # === Export ===

    litert_endpoints = ("sample", "denoise")

    def export_endpoints(self):
        """sample(u0, u, z) -> the state after burn_in + 1 steps from uniforms u0 (one sample a chain);
        denoise(x, u, z) -> (reconstruction mean, next state) of one chain step from x."""
        steps = self.burn_in + 1
        x_spec = ((None,) + self.data_shape, "float32")
        u_spec = ((None, steps, self.uniform_width), "float32")
        z_spec = ((None, steps, self.normal_width), "float32")
        u1_spec = ((None, self.uniform_width), "float32")
        z1_spec = ((None, self.normal_width), "float32")

        def sample(u0, u, z):
            x = self.run_chain(self._initial_state(ops.reshape(u0, (-1, self.num_dims))), u, z)
            return ops.reshape(x, (-1,) + self.data_shape)

        def denoise(x, u, z):
            params, nxt = self.step(self._flat(x), u, z)
            return {"mean": ops.reshape(self.mean(params), (-1,) + self.data_shape),
                    "next": ops.reshape(nxt, (-1,) + self.data_shape)}

        return {"sample": (sample, [x_spec, u_spec, z_spec]), "denoise": (denoise, [x_spec, u1_spec, z1_spec])}
