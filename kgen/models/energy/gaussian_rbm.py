"""Gaussian-Bernoulli RBM: real-valued visible units, binary hidden units (Hinton & Salakhutdinov 2006).

The visible units are Gaussian with a fixed standard deviation sigma (`visible_std`), the usual
choice since learning it is unstable (Hinton 2010, "A practical guide to training RBMs", sec. 13.2).
On the scaled data v = x / sigma the energy is

    E(v, h) = |v - b|^2 / 2 - c'h - v'W h,

the hidden units sum out into the free energy

    F(v) = |v - b|^2 / 2 - sum_j softplus(c_j + v'W_j),

and the conditionals are p(h_j = 1 | v) = sigmoid(c_j + v'W_j), p(v | h) = N(b + W h, I). The
density of x is p(v) / sigma^D, so `log_prob(x) = -F(x / sigma) - log Z - D log sigma`.

The partition function: the Gaussian integral over v leaves a sum over hidden states,

    log Z = (D / 2) log 2 pi + logsumexp_h [c'h + b'W h + |W h|^2 / 2],

exact when H <= 20 (enumerated in chunks as for the binary RBM), and annealed importance sampling
otherwise, from the base model N(b_A, I) x uniform hidden units with b_A the scaled data mean. The
intermediate distributions mix the energies, p_beta ~ exp(-(1 - beta) E_A - beta E_B), so that

    log p*_beta(v) = -|v - m_beta|^2 / 2 - k_beta + sum_j softplus(beta (c_j + v'W_j)),
    m_beta = (1 - beta) b_A + beta b,  k_beta = ((1 - beta)|b_A|^2 + beta |b|^2 - |m_beta|^2) / 2,

and the transition at beta draws h ~ sigmoid(beta (c + v'W)) then v ~ N(m_beta + beta W h, I).

Training is the binary RBM's (CD-k or PCD through the free-energy gap, `kgen/models/energy/rbm.py`)
with Gaussian visible steps. Data: real values, e.g. dequantized grey levels (`data.dequantize`), whose
density `kgen evaluate` converts to the discrete NLL and bits/dim as it does for flows.

#### References

- Hinton, G. E. & Salakhutdinov, R. R. Reducing the dimensionality of data with neural networks.
  Science 313, 2006 (Gaussian visible units, supporting material).
- Hinton, G. E. A practical guide to training restricted Boltzmann machines. UTML TR 2010-003.
- Salakhutdinov, R. & Murray, I. On the quantitative analysis of deep belief networks. ICML 2008.
"""

import math

import keras
import numpy as np
from keras import ops

from kgen import backend
from kgen.errors import DataError, UsageError
from kgen.models.base import GenerativeModel
from kgen.models.energy.rbm import (AIS_CHUNK, ENUMERATION_CHUNK, RBM, _bernoulli, _bits, ais_result, ais_schedule,
                                    chain_length)
from kgen.registry import register_model

LOG_2PI = math.log(2.0 * math.pi)


# === Functions of (W, b, c) on scaled data v = x / sigma, shared by the model, AIS and the tests ===


def gaussian_free_energy(v, w, b, c):
    """F(v) = |v - b|^2 / 2 - sum_j softplus(c_j + v'W_j): (batch, D) -> (batch,)."""
    return 0.5 * ops.sum(ops.square(v - b), axis=-1) - ops.sum(ops.softplus(c + ops.matmul(v, w)), axis=-1)


def gaussian_gibbs_chain(v, uniforms, normals, w, b, c):
    """Block Gibbs sampling from visible states `v` (n, D).

    `uniforms` (n, steps, H) sample h ~ p(h | v); `normals` (n, steps, D) sample v ~ N(b + W h, I).
    Deterministic given the noise; returns (v, h) after `steps` steps.
    """
    wt = ops.transpose(w)
    h0 = ops.zeros((ops.shape(v)[0], int(c.shape[0])), "float32")

    def step(t, state):
        v, _ = state
        h = _bernoulli(ops.sigmoid(c + ops.matmul(v, w)), ops.take(uniforms, t, axis=1))
        return b + ops.matmul(h, wt) + ops.take(normals, t, axis=1), h

    return ops.fori_loop(0, chain_length(uniforms), step, (v, h0))


def gaussian_exact_log_partition(w, b, c):
    """log Z = (D/2) log 2 pi + logsumexp_h [c'h + b'W h + |W h|^2 / 2], over the 2^H hidden states."""
    d, units = int(w.shape[0]), int(c.shape[0])
    if units > 30:
        raise UsageError(f"exact log Z enumerates 2^{units} hidden states; use AIS above 20 units.")
    chunk = min(2**units, ENUMERATION_CHUNK)
    chunks = 2**units // chunk
    wt = ops.transpose(w)

    def chunk_lse(k):
        h = _bits(k * chunk + ops.arange(chunk, dtype="int32"), units)
        wh = ops.matmul(h, wt)  # (chunk, D)
        terms = (ops.matmul(h, c[:, None])[:, 0] + ops.matmul(wh, b[:, None])[:, 0]
                 + 0.5 * ops.sum(ops.square(wh), axis=-1))
        return ops.logsumexp(terms)

    first = chunk_lse(0)
    total = first if chunks == 1 else ops.fori_loop(1, chunks, lambda k, acc: ops.logaddexp(acc, chunk_lse(k)),
                                                     first)
    return total + 0.5 * d * LOG_2PI


def gaussian_ais_chunk(v, log_w, betas, uniforms, normals, w, b, c, base_bias):
    """AIS over `betas` (L + 1,) for the Gaussian-Bernoulli RBM (module docstring for the terms)."""
    wt = ops.transpose(w)

    def log_p_star(v, a, beta):
        m = (1.0 - beta) * base_bias + beta * b
        k = 0.5 * ((1.0 - beta) * ops.sum(ops.square(base_bias)) + beta * ops.sum(ops.square(b))
                   - ops.sum(ops.square(m)))
        return -0.5 * ops.sum(ops.square(v - m), axis=-1) - k + ops.sum(ops.softplus(beta * a), axis=-1)

    def step(l, state):
        v, log_w = state
        prev, beta = ops.take(betas, l), ops.take(betas, l + 1)
        a = c + ops.matmul(v, w)
        log_w = log_w + log_p_star(v, a, beta) - log_p_star(v, a, prev)
        h = _bernoulli(ops.sigmoid(beta * a), ops.take(uniforms, l, axis=0))
        m = (1.0 - beta) * base_bias + beta * b
        v = m + beta * ops.matmul(h, wt) + ops.take(normals, l, axis=0)
        return v, log_w

    return ops.fori_loop(0, int(uniforms.shape[0]), step, (v, log_w))


def gaussian_annealed_importance_sampling(model, chains=100, betas=14500, seed=0, base_bias=None,
                                          chunk=AIS_CHUNK):
    """AIS estimate of a Gaussian-Bernoulli RBM's log Z (on scaled data), from N(base_bias, I).

    Same contract and result as `kgen.models.energy.rbm.annealed_importance_sampling`.
    """
    w, b, c = model.w, model.b, model.c
    d, units = int(w.shape[0]), int(w.shape[1])
    schedule = ais_schedule(betas) if np.isscalar(betas) else np.asarray(betas, "float32")
    if schedule[0] != 0.0 or schedule[-1] != 1.0 or np.any(np.diff(schedule) < 0):
        raise UsageError("AIS betas must increase from 0 to 1.")
    base = np.zeros(d, "float32") if base_bias is None else np.asarray(base_bias, "float32").reshape(d)
    k = len(schedule) - 1
    steps = math.ceil(k / chunk)
    padded = np.concatenate([schedule, np.ones(steps * chunk - k, "float32")])
    rng = np.random.default_rng([int(seed), 20080605, 1])
    v = (base + rng.standard_normal((chains, d))).astype("float32")
    log_w = np.zeros(chains, "float32")

    def run(v, log_w, betas_chunk, uniforms, normals, base_bias):
        return gaussian_ais_chunk(v, log_w, betas_chunk, uniforms, normals, w, b, c, base_bias)

    fn = model.compiled_fn("ais", run)
    for i in range(steps):
        uniforms = rng.uniform(size=(chunk, chains, units)).astype("float32")
        normals = rng.standard_normal((chunk, chains, d)).astype("float32")
        v, log_w = fn(v, log_w, padded[i * chunk: (i + 1) * chunk + 1], uniforms, normals, base)
    return ais_result(log_w, 0.5 * d * LOG_2PI + units * math.log(2.0), chains, k, betas)


# === The model ===


@register_model("gaussian_rbm", family="energy",
                tiny=dict(hidden_units=16, training_method="pcd", persistent_chains=16, sample_steps=20))
class GaussianRBM(RBM):
    """Gaussian-Bernoulli RBM (Hinton & Salakhutdinov 2006): real-valued visible units of fixed std.

    Everything the binary `rbm` offers (CD-k / PCD, exact or AIS log Z, `log_prob`,
    `evaluate_extra`, Gibbs sampling, exports) for real-valued data: grey levels
    dequantized to [0, 1] (`data.dequantize = true`) or any continuous images.

    Args:
        input_shape: shape of one image, e.g. `(8, 8, 1)`.
        num_levels: grey levels of the data before dequantization, or None.
        num_classes: unused (unconditional); must be None.
        hidden_units: H binary hidden units (<= 20: exact log Z).
        visible_std: sigma, the visible units' fixed standard deviation, in data units.
            0.2 suits [0, 1] grey levels (digits' per-pixel std is 0.2 to 0.4).
        training_method, cd_steps, persistent_chains, sample_steps, ais_chains,
        ais_betas: as for `rbm`.
        sample_mean: `sample` returns the mean sigma (b + W h) of p(x | h) at the last
            Gibbs step (True, the usual way to show a Gaussian RBM's samples: the
            pixel noise of sigma = 0.2 would hide them) or a draw from it (False).

    Example:

    >>> import kgen
    >>> rbm = kgen.build_model("gaussian_rbm", input_shape=(8, 8, 1), num_levels=17, hidden_units=16)
    >>> rbm.compile(optimizer="adam")
    >>> x = kgen.load_dataset("digits").x[:64]
    >>> _ = rbm.fit(x, epochs=1, batch_size=16, verbose=0)
    >>> rbm.log_prob_kind, rbm.log_prob(x[:2]).shape, rbm.sample(2, seed=0).shape
    ('exact', (2,), (2, 8, 8, 1))
    """

    def __init__(self, input_shape, num_levels=None, num_classes=None, hidden_units=500, visible_std=0.2,
                 sample_mean=True, training_method="cd", cd_steps=1, persistent_chains=100, sample_steps=1000,
                 ais_chains=100, ais_betas=14500, **kwargs):
        self.visible_std = float(visible_std)
        if not self.visible_std > 0 or not math.isfinite(self.visible_std):
            raise UsageError(f"visible_std must be a positive number, got {visible_std}.")
        self.sample_mean = bool(sample_mean)
        super().__init__(input_shape, num_levels=num_levels, num_classes=num_classes, hidden_units=hidden_units,
                         training_method=training_method, cd_steps=cd_steps, persistent_chains=persistent_chains,
                         sample_steps=sample_steps, ais_chains=ais_chains, ais_betas=ais_betas, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update({"visible_std": self.visible_std, "sample_mean": self.sample_mean})
        return config

    # === Energy, on x in data units ===

    def _scaled(self, x):
        return ops.reshape(ops.cast(x, "float32"), (-1, self.num_dims)) / self.visible_std

    def free_energy(self, x):
        """F_x(x) = F(x / sigma) + D log sigma: the free energy of the density on x (batch,)."""
        return (gaussian_free_energy(self._scaled(x), self.w, self.b, self.c)
                + self.num_dims * math.log(self.visible_std))

    def energy(self, v, h):
        """E(v, h) of scaled visible states v = x / sigma (batch, D) and hidden states (batch, H)."""
        v = ops.reshape(ops.cast(v, "float32"), (-1, self.num_dims))
        h = ops.cast(h, "float32")
        return (0.5 * ops.sum(ops.square(v - self.b), axis=-1) - ops.matmul(h, self.c[:, None])[:, 0]
                - ops.sum(ops.matmul(v, self.w) * h, axis=-1))

    def visible_probs(self, h):
        """The mean of p(x | h) in data units: sigma (b + W h)."""
        return self.visible_std * (self.b + ops.matmul(h, ops.transpose(self.w)))

    # === Training ===

    def call(self, inputs, training=False):
        x, _ = self.split_inputs(inputs)
        v = self._scaled(x)
        w, b, c = (ops.stop_gradient(t) for t in (self.w, self.b, self.c))
        start = ops.stop_gradient(self.chains.value if self.training_method == "pcd" else v)
        n = ops.shape(start)[0]
        uniforms = keras.random.uniform((n, self.cd_steps, self.hidden_units), seed=self.seed_generator)
        normals = keras.random.normal((n, self.cd_steps, self.num_dims), seed=self.seed_generator)
        negative = ops.stop_gradient(gaussian_gibbs_chain(start, uniforms, normals, w, b, c)[0])
        if training:
            if self.training_method == "pcd":
                self.chains.assign(negative)
            self.data_sum.assign_add(ops.sum(v, axis=0))
            self.data_count.assign_add(ops.cast(ops.shape(v)[0], "float32"))
        recon = b + ops.matmul(ops.sigmoid(c + ops.matmul(v, w)), ops.transpose(w))
        return {
            "free_data": gaussian_free_energy(v, self.w, self.b, self.c),
            "free_model": gaussian_free_energy(negative, self.w, self.b, self.c),
            # in data units, summed over pixels, as the binary RBM logs it
            "recon_error": ops.sum(ops.square((v - recon) * self.visible_std), axis=-1),
        }

    def check_data(self, data):
        GenerativeModel.check_data(self, data)  # the shape; not the binary RBM's binary-only rule
        if data.kind != "image":
            raise DataError(f"{data.name}: the Gaussian RBM models images, found {data.kind} data.")
        if data.num_levels == 2:
            raise DataError(f"{data.name} is binary: use the Bernoulli-Bernoulli `rbm` for binary data.")

    # === Partition function ===

    @property
    def log_prob_kind(self):
        """ "exact" when H <= 20 (hidden states enumerated), else "ais"."""
        return "exact" if self.hidden_units <= 20 else "ais"

    def base_rate_bias(self):
        """The AIS base model's mean: the scaled training data's mean, or zeros if unknown."""
        count = float(backend.to_numpy(self.data_count))
        if count <= 0:
            return np.zeros(self.num_dims, "float32")
        return (backend.to_numpy(self.data_sum) / count).astype("float32")

    def _exact_log_partition(self):
        if self.hidden_units > 30:
            raise UsageError(f"exact log Z enumerates 2^{self.hidden_units} hidden states; use AIS.")
        fn = self.compiled_fn("log_z_h", lambda: gaussian_exact_log_partition(self.w, self.b, self.c))
        return float(backend.to_numpy(fn()))

    def _ais(self, chains, betas, seed, base_bias):
        return gaussian_annealed_importance_sampling(self, chains=chains, betas=betas, seed=seed,
                                                     base_bias=base_bias)

    def _check_x(self, x):
        x = np.asarray(x, "float32")
        if x.shape[1:] != self.data_shape:
            raise DataError(f"expected images of shape {self.data_shape}, got {x.shape[1:]}.")
        if not np.all(np.isfinite(x)):
            raise DataError("the images hold NaN or Inf values.")
        return x

    # === Sampling ===

    def noise_spec(self, n):
        """The initial state's normals, then each Gibbs step's uniforms (H) and normals (D)."""
        return [("normal", (n,) + self.data_shape),
                ("uniform", (n, self.sample_steps, self.hidden_units)),
                ("normal", (n, self.sample_steps, self.num_dims))]

    def _sample(self, z0, u, e):
        v0 = ops.reshape(ops.convert_to_tensor(z0, "float32"), (-1, self.num_dims)) + self.b
        v, h = gaussian_gibbs_chain(v0, ops.convert_to_tensor(u, "float32"), ops.convert_to_tensor(e, "float32"),
                                    self.w, self.b, self.c)
        x = self.visible_probs(h) if self.sample_mean else v * self.visible_std
        return ops.reshape(x, (-1,) + self.data_shape)

    def sample_from_noise(self, z0, u, e, labels=None):
        """Samples after `sample_steps` Gibbs steps from N(b, I): the mean of p(x | h), or a draw."""
        if labels is not None:
            raise UsageError("the Gaussian RBM is not conditional: it takes no labels.")
        return self.compiled_fn("sample", self._sample)(z0, u, e)

    # === Export ===

    def export_endpoints(self):
        """log_prob(x) -> (batch,) nats (log Z fixed at export); sample(z0, u, e) -> images."""
        log_z = self.log_partition()["log_z"]
        x_spec = ((None,) + self.data_shape, "float32")
        u_spec = ((None, self.sample_steps, self.hidden_units), "float32")
        e_spec = ((None, self.sample_steps, self.num_dims), "float32")

        def log_prob(x):
            return -self.free_energy(x) - log_z

        def sample(z0, u, e):
            return self._sample(z0, u, e)

        return {"log_prob": (log_prob, [x_spec]), "sample": (sample, [x_spec, u_spec, e_spec])}
