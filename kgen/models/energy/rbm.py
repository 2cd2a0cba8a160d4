"""RBM: the Bernoulli-Bernoulli restricted Boltzmann machine (Smolensky 1986; Hinton 2002).

Binary visible units v (D) and hidden units h (H), no connections within a
layer, and the joint

    E(v, h) = -b'v - c'h - v'W h,       p(v, h) = exp(-E(v, h)) / Z,

whose hidden units sum out in closed form into the free energy

    F(v) = -b'v - sum_j softplus(c_j + v'W_j),      p(v) = exp(-F(v)) / Z.

Both conditionals factorize: p(h_j = 1 | v) = sigmoid(c_j + v'W_j) and
p(v_i = 1 | h) = sigmoid(b_i + W_i h), so block Gibbs sampling alternates two
matrix products. The log-likelihood gradient is a data term minus a model term,

    d log p(v) / d theta = -dF(v)/d theta + E_model[dF(v')/d theta],

and training replaces the model expectation by Gibbs samples: contrastive
divergence CD-k starts k steps of Gibbs sampling at the data (Hinton 2002),
persistent CD continues chains kept from one update to the next (Tieleman
2008). Both are the gradient of the surrogate loss

    loss = mean F(v_data) - mean F(stop_gradient(v_model)),

the "free-energy gap", which is what `fit` minimizes: no custom train_step.

The partition function Z is exact when one layer has at most 20 units (it is
enumerated: log Z = logsumexp_h [c'h + sum_i softplus(b_i + W_i h)], or over
v when the visible layer is the smaller), and estimated otherwise by annealed
importance sampling (AIS, Salakhutdinov & Murray 2008) from a base-rate RBM
whose visible biases match the training data's mean pixel values.

#### References

- Smolensky, P. Information processing in dynamical systems: foundations of
  harmony theory. In Parallel Distributed Processing, vol. 1, 1986.
- Hinton, G. E. Training products of experts by minimizing contrastive
  divergence. Neural Computation 14(8), 2002.
- Tieleman, T. Training restricted Boltzmann machines using approximations to
  the likelihood gradient. ICML 2008.
- Salakhutdinov, R. & Murray, I. On the quantitative analysis of deep belief
  networks. ICML 2008.
- Neal, R. M. Annealed importance sampling. Statistics and Computing 11, 2001.
"""

import hashlib
import math

import keras
import numpy as np
from keras import ops

from kgen import backend
from kgen.errors import DataError, UsageError
from kgen.models.base import GenerativeModel, MarkovChain
from kgen.registry import register_model

# Exact log Z enumerates 2^units states of the smaller layer up to this size.
EXACT_MAX_UNITS = 20
# States enumerated per step of the exact sum (2^14 x D floats at a time).
ENUMERATION_CHUNK = 2**14
# Betas per compiled AIS call (the noise for one call is drawn up front).
AIS_CHUNK = 128
TRAINING_METHODS = ("cd", "pcd")


# === Functions of (W, b, c), shared by the model, AIS and the tests ===


def free_energy(v, w, b, c):
    """F(v) = -b'v - sum_j softplus(c_j + v'W_j): (batch, D) -> (batch,)."""
    return -ops.matmul(v, b[:, None])[:, 0] - ops.sum(ops.softplus(c + ops.matmul(v, w)), axis=-1)


def _bernoulli(p, u):
    return ops.cast(ops.less(u, p), "float32")


def gibbs_chain(v, noise, w, b, c):
    """Block Gibbs sampling from binary visible states `v` (n, D).

    `noise` (n, steps, H + D) holds the uniforms of each step: the first H
    sample h ~ p(h | v), the last D sample v ~ p(v | h). Deterministic given the
    noise; returns the binary visible states after `steps` steps.
    """
    units = int(c.shape[0])
    wt = ops.transpose(w)

    def step(t, v):
        u = ops.take(noise, t, axis=1)
        h = _bernoulli(ops.sigmoid(c + ops.matmul(v, w)), u[:, :units])
        return _bernoulli(ops.sigmoid(b + ops.matmul(h, wt)), u[:, units:])

    return ops.fori_loop(0, chain_length(noise), step, v)


def chain_length(noise):
    """The steps a chain's noise `(n, steps, ...)` holds: static where known, else a tensor
    (a compiled sampler called with chains of several lengths: `sample_chains`)."""
    steps = noise.shape[1]
    return int(steps) if steps is not None else ops.shape(noise)[1]


def _bits(index, units):
    """Integers (n,) -> their `units` binary digits (n, units), float32."""
    powers = ops.convert_to_tensor(2 ** np.arange(units, dtype="int32"))
    return ops.cast(ops.mod(ops.floor_divide(index[:, None], powers[None]), 2), "float32")


def exact_log_partition(w, b, c):
    """log Z by enumerating the 2^H hidden states: logsumexp_h [c'h + sum_i softplus(b_i + W_i h)].

    Enumerate the visible layer instead with `exact_log_partition(W', c, b)`
    (the RBM is symmetric in its two layers). Runs in chunks of 2^14 states in
    one compiled loop.
    """
    units = int(c.shape[0])
    if units > 30:
        raise UsageError(f"exact log Z enumerates 2^{units} states; use AIS above {EXACT_MAX_UNITS} units.")
    chunk = min(2**units, ENUMERATION_CHUNK)
    chunks = 2**units // chunk
    wt = ops.transpose(w)

    def chunk_lse(k):
        h = _bits(k * chunk + ops.arange(chunk, dtype="int32"), units)
        terms = ops.matmul(h, c[:, None])[:, 0] + ops.sum(ops.softplus(b + ops.matmul(h, wt)), axis=-1)
        return ops.logsumexp(terms)

    first = chunk_lse(0)
    if chunks == 1:
        return first
    return ops.fori_loop(1, chunks, lambda k, acc: ops.logaddexp(acc, chunk_lse(k)), first)


def ais_schedule(num_betas):
    """Inverse temperatures 0 = beta_0 < ... < beta_K = 1 (K = `num_betas`), NumPy (K + 1,).

    Salakhutdinov & Murray (2008): 14,500 betas, 500 spaced uniformly in
    [0, 0.5], 4,000 in [0.5, 0.9] and 10,000 in [0.9, 1]; other counts keep
    those proportions.
    """
    num_betas = int(num_betas)
    if num_betas < 3:
        raise UsageError(f"AIS needs at least 3 betas, got {num_betas}.")
    n1 = max(1, round(num_betas * 500 / 14500))
    n2 = max(1, round(num_betas * 4000 / 14500))
    n3 = num_betas - n1 - n2
    parts = [np.zeros(1), np.linspace(0.0, 0.5, n1 + 1)[1:], np.linspace(0.5, 0.9, n2 + 1)[1:],
             np.linspace(0.9, 1.0, n3 + 1)[1:]]
    return np.concatenate(parts).astype("float32")


def ais_chunk(v, log_w, betas, noise, w, b, c, base_bias):
    """AIS over `betas` (L + 1,): betas[0] is the current inverse temperature.

    For each next beta: log_w += log p*_beta(v) - log p*_prev(v), then one
    Gibbs transition that leaves p_beta invariant, where
    log p*_beta(v) = (1 - beta) b_A'v + beta b'v + sum_j softplus(beta (c_j + v'W_j)).
    `noise` (L, chains, H + D) holds each transition's uniforms.
    """
    units = int(c.shape[0])
    wt = ops.transpose(w)
    db = b - base_bias

    def step(l, state):
        v, log_w = state
        prev, beta = ops.take(betas, l), ops.take(betas, l + 1)
        a = c + ops.matmul(v, w)
        log_w = log_w + (beta - prev) * ops.matmul(v, db[:, None])[:, 0] + ops.sum(
            ops.softplus(beta * a) - ops.softplus(prev * a), axis=-1)
        u = ops.take(noise, l, axis=0)
        h = _bernoulli(ops.sigmoid(beta * a), u[:, :units])
        v = _bernoulli(ops.sigmoid((1.0 - beta) * base_bias + beta * (b + ops.matmul(h, wt))), u[:, units:])
        return v, log_w

    return ops.fori_loop(0, int(noise.shape[0]), step, (v, log_w))


def annealed_importance_sampling(model, chains=100, betas=14500, seed=0, base_bias=None, chunk=AIS_CHUNK):
    """AIS estimate of an RBM's log Z (Salakhutdinov & Murray 2008), from a base-rate RBM.

    The base model has W = 0, hidden biases 0 and visible biases `base_bias`
    (D,) (zeros when None), so log Z_A = sum_i softplus(b_A,i) + H log 2 and
    exact samples are independent pixels. Each chain anneals to the model
    through the `betas` schedule with one Gibbs transition per beta.

    Args:
        model: an `RBM` (its `w`, `b`, `c` are read).
        chains: independent AIS runs M.
        betas: the number of intermediate distributions K (the schedule of
            `ais_schedule`), or an explicit increasing array from 0 to 1.
        seed: seeds the base samples and every transition's noise (NumPy).
        base_bias: the base model's visible biases, or None for zeros.
        chunk: betas per compiled call. Keras' random ops take no tensor seeds
            on every backend, so each call's uniforms (chunk, M, H + D) are
            drawn up front; the schedule is padded with beta = 1 (zero weight
            increments, valid transitions) so every call has the same shape.

    Returns:
        a dict: `log_z` (log of the mean importance weight, + log Z_A),
        `log_z_stderr` (the delta-method standard error of log Z over chains:
        std(w) / (mean(w) sqrt(M))), `log_weights_std` (spread of log w over
        chains), `log_z_base`, `chains`, `betas` (K) and `schedule`.
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
    rng = np.random.default_rng([int(seed), 20080605])
    p_base = 1.0 / (1.0 + np.exp(-base))
    v = (rng.uniform(size=(chains, d)) < p_base).astype("float32")
    log_w = np.zeros(chains, "float32")

    def run(v, log_w, betas_chunk, noise, base_bias):
        return ais_chunk(v, log_w, betas_chunk, noise, w, b, c, base_bias)

    fn = model.compiled_fn("ais", run)
    for i in range(steps):
        noise = rng.uniform(size=(chunk, chains, units + d)).astype("float32")
        v, log_w = fn(v, log_w, padded[i * chunk: (i + 1) * chunk + 1], noise, base)
    log_z_base = float(np.sum(np.logaddexp(0.0, base)) + units * math.log(2.0))
    return ais_result(log_w, log_z_base, chains, k, betas)


def ais_result(log_w, log_z_base, chains, k, betas):
    """AIS's dict from the chains' final log weights: log Z, its delta-method standard error, the spread."""
    log_w = backend.to_numpy(log_w).astype("float64")
    top = log_w.max()
    r = np.exp(log_w - top)
    log_z = float(log_z_base + top + np.log(r.mean()))
    stderr = float(r.std(ddof=1) / (r.mean() * math.sqrt(chains))) if chains > 1 else float("inf")
    return {"log_z": log_z, "log_z_stderr": stderr, "log_weights_std": float(log_w.std()),
            "log_z_base": log_z_base, "chains": int(chains), "betas": int(k),
            "schedule": "salakhutdinov_murray_2008" if np.isscalar(betas) else "given"}


class _Memo:
    """The last log Z and the weights it belongs to (a plain object: TensorFlow must not track it)."""

    key = None
    value = None


# === The model ===


class AISLogPartition:
    """`configure_ais` and the evaluation's log Z report, for a model with `log_partition(method=...)`
    and `ais_chains` / `ais_betas` attributes (the RBMs and the DBM). Mix in before `GenerativeModel`."""

    _ais_requested = False  # set by configure_ais: an exact log Z is then also estimated by AIS

    def configure_ais(self, chains=None, betas=None):
        """AIS chains and betas for log Z (`kgen evaluate --ais-chains/--ais-betas`).

        Where log Z is exact (few enough units to enumerate), `log_z_report` then also gives the
        AIS estimate beside it (`ais_log_z`, `ais_log_z_stderr`), to check the estimator.
        """
        for name, value, low in (("--ais-chains", chains, 2), ("--ais-betas", betas, 3)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < low):
                raise UsageError(f"{name} must be an integer >= {low}, got {value}.")
        if chains is not None:
            self.ais_chains = int(chains)
        if betas is not None:
            self.ais_betas = int(betas)
        self._ais_requested = True

    def log_z_report(self):
        """log Z and how it was found, with the evaluation's key names (`log_z_method`, `ais_*`)."""
        result = self.log_partition()
        names = {"method": "log_z_method", "chains": "ais_chains", "betas": "ais_betas", "schedule": "ais_schedule",
                 "log_weights_std": "ais_log_weights_std"}
        out = {names.get(k, k): v for k, v in result.items()}
        if result["method"] == "exact" and self._ais_requested:
            ais = self.log_partition(method="ais")
            out.update({"ais_log_z": ais["log_z"], "ais_log_z_stderr": ais["log_z_stderr"],
                        "ais_chains": ais["chains"], "ais_betas": ais["betas"]})
        return out


@register_model("rbm", family="energy",
                tiny=dict(hidden_units=16, training_method="pcd", persistent_chains=16, sample_steps=20))
class RBM(AISLogPartition, MarkovChain, GenerativeModel):
    """Restricted Boltzmann machine (Smolensky 1986; Hinton 2002), Bernoulli-Bernoulli, trained by CD-k or PCD.

    Binary data only: a recipe on grey-level images sets `data.binarize`
    ("dynamic" or "static"). `log_prob` is exact when the smaller layer has at
    most 20 units (`log_prob_kind` "exact"), an AIS estimate otherwise
    (`log_prob_kind` "ais": log Z from `annealed_importance_sampling`, its
    standard error in `log_partition()`). `sample` returns binary visible
    states after `sample_steps` steps of block Gibbs sampling from uniformly
    random visible states. The Gaussian-Bernoulli variant for real-valued data
    is `gaussian_rbm` (`kgen/models/energy/gaussian_rbm.py`).

    Args:
        input_shape: shape of one binary image, e.g. `(28, 28, 1)`.
        num_levels: grey levels of the data: 2 (binary).
        num_classes: unused (the RBM is unconditional); must be None.
        hidden_units: H, the number of binary hidden units.
        training_method: "cd" (contrastive divergence: the negative chains
            start at the batch) or "pcd" (persistent CD: `persistent_chains`
            chains kept in the model, saved with it, continued at every
            update). Not called `training`: PyTorch modules own that attribute.
        cd_steps: k, Gibbs steps per update for the negative samples.
        persistent_chains: the number of persistent chains ("pcd").
        sample_steps: Gibbs steps of `sample` (and of the exported sampler).
        ais_chains: AIS chains when `log_prob` needs an estimated log Z.
        ais_betas: AIS intermediate distributions (the Salakhutdinov & Murray
            2008 schedule has 14,500).

    Training logs `loss` (the free-energy gap F(data) - F(model samples),
    which is not a likelihood) and `recon_error` (squared error of the
    mean-field reconstruction sigmoid(b + W sigmoid(c + v'W)), summed over
    pixels). The visible biases' base rates for AIS come from the mean of
    every training batch seen (`data_sum / data_count`, saved with the model).

    Example:

    >>> import kgen
    >>> rbm = kgen.build_model("rbm", input_shape=(8, 8, 1), num_levels=2, hidden_units=16, training_method="pcd")
    >>> rbm.compile(optimizer="adam")
    >>> x = (kgen.load_dataset("digits").x[:64] > 0.5).astype("float32")
    >>> _ = rbm.fit(x, epochs=1, batch_size=16, verbose=0)
    >>> rbm.log_prob_kind, rbm.log_prob(x[:2]).shape, rbm.sample(2, seed=0).shape
    ('exact', (2,), (2, 8, 8, 1))
    """

    def __init__(
        self,
        input_shape,
        num_levels=2,
        num_classes=None,
        hidden_units=500,
        training_method="cd",
        cd_steps=1,
        persistent_chains=100,
        sample_steps=1000,
        ais_chains=100,
        ais_betas=14500,
        **kwargs,
    ):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        if num_classes is not None:
            raise UsageError("the RBM is not conditional; it takes no num_classes.")
        if training_method not in TRAINING_METHODS:
            raise UsageError(
                f'unknown training_method "{training_method}"; choose one of {", ".join(TRAINING_METHODS)}.')
        self.hidden_units = int(hidden_units)
        self.training_method = training_method
        self.cd_steps = int(cd_steps)
        self.persistent_chains = int(persistent_chains)
        self.sample_steps = int(sample_steps)
        self.ais_chains = int(ais_chains)
        self.ais_betas = int(ais_betas)
        for name in ("hidden_units", "cd_steps", "persistent_chains", "sample_steps", "ais_chains"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}.")
        # === State and metrics (created in __init__: JAX needs them before fit) ===
        self.seed_generator = keras.random.SeedGenerator(0)
        self.recon_tracker = keras.metrics.Mean(name="recon_error")
        self._log_z = _Memo()
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        d, h = self.num_dims, self.hidden_units
        # === Weights ===
        self.w = self.add_weight(name="w", shape=(d, h), initializer=keras.initializers.RandomNormal(stddev=0.01))
        self.b = self.add_weight(name="b", shape=(d,), initializer="zeros")
        self.c = self.add_weight(name="c", shape=(h,), initializer="zeros")
        # === Non-trainable state (saved in .keras) ===
        if self.training_method == "pcd":
            self.chains = self.add_weight(name="chains", shape=(self.persistent_chains, d), initializer="zeros",
                                          trainable=False)
        self.data_sum = self.add_weight(name="data_sum", shape=(d,), initializer="zeros", trainable=False)
        self.data_count = self.add_weight(name="data_count", shape=(), initializer="zeros", trainable=False)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_units": self.hidden_units,
            "training_method": self.training_method,
            "cd_steps": self.cd_steps,
            "persistent_chains": self.persistent_chains,
            "sample_steps": self.sample_steps,
            "ais_chains": self.ais_chains,
            "ais_betas": self.ais_betas,
        })
        return config

    # === Energy ===

    def free_energy(self, x):
        """F(v) of each example (batch,) for images or flat (batch, D) visible states."""
        v = ops.reshape(ops.cast(x, "float32"), (-1, self.num_dims))
        return free_energy(v, self.w, self.b, self.c)

    def energy(self, v, h):
        """E(v, h) = -b'v - c'h - v'W h of flat visible (batch, D) and hidden (batch, H) states."""
        v = ops.reshape(ops.cast(v, "float32"), (-1, self.num_dims))
        h = ops.cast(h, "float32")
        return -(ops.matmul(v, self.b[:, None])[:, 0] + ops.matmul(h, self.c[:, None])[:, 0]
                 + ops.sum(ops.matmul(v, self.w) * h, axis=-1))

    def hidden_probs(self, v):
        return ops.sigmoid(self.c + ops.matmul(v, self.w))

    def visible_probs(self, h):
        return ops.sigmoid(self.b + ops.matmul(h, ops.transpose(self.w)))

    # === Training ===

    def call(self, inputs, training=False):
        """Free energies of the batch and of the negative samples, and the reconstruction error.

        With `training`, PCD stores its chains' new states and the batch is added to the
        data statistics; the negative samples never carry gradients.
        """
        x, _ = self.split_inputs(inputs)
        v = ops.reshape(ops.cast(x, "float32"), (-1, self.num_dims))
        w, b, c = (ops.stop_gradient(t) for t in (self.w, self.b, self.c))
        start = self.chains.value if self.training_method == "pcd" else v
        start = ops.stop_gradient(start)
        noise = keras.random.uniform((ops.shape(start)[0], self.cd_steps, self.hidden_units + self.num_dims),
                                     seed=self.seed_generator)
        negative = ops.stop_gradient(gibbs_chain(start, noise, w, b, c))
        if training:
            if self.training_method == "pcd":
                self.chains.assign(negative)
            self.data_sum.assign_add(ops.sum(v, axis=0))
            self.data_count.assign_add(ops.cast(ops.shape(v)[0], "float32"))
        recon = ops.sigmoid(b + ops.matmul(ops.sigmoid(c + ops.matmul(v, w)), ops.transpose(w)))
        return {
            "free_data": self.free_energy(v),
            "free_model": self.free_energy(negative),
            "recon_error": ops.sum(ops.square(v - recon), axis=-1),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.recon_tracker.update_state(y_pred["recon_error"])
        loss = ops.mean(y_pred["free_data"]) - ops.mean(y_pred["free_model"])
        return backend.scale_loss_for_replicas(self.plus_layer_losses(loss))  # tf.distribute: a replica's share

    def check_data(self, data):
        super().check_data(data)
        if data.num_levels != 2:
            raise DataError(
                f"{data.name}: the RBM has binary visible units, found "
                f"{data.num_levels or 'continuous'} levels; set data.binarize = \"dynamic\" or \"static\"."
            )

    # === Partition function and likelihood ===

    @property
    def log_prob_kind(self):
        """ "exact" when the smaller layer has <= 20 units (log Z enumerated), else "ais" (an estimate)."""
        return "exact" if min(self.num_dims, self.hidden_units) <= EXACT_MAX_UNITS else "ais"

    def base_rate_bias(self):
        """The AIS base model's visible biases: logit of the training data's mean, or zeros if unknown."""
        count = float(backend.to_numpy(self.data_count))
        if count <= 0:
            return np.zeros(self.num_dims, "float32")
        mean = np.clip(backend.to_numpy(self.data_sum) / count, 1e-3, 1 - 1e-3)
        return np.log(mean / (1 - mean)).astype("float32")

    def log_partition(self, method="auto", chains=None, betas=None, seed=0):
        """log Z: a dict with `log_z`, `method` ("exact" or "ais"), and AIS's spread and schedule.

        Args:
            method: "exact" (enumerate the smaller layer), "ais", or "auto"
                (exact when the smaller layer has <= 20 units).
            chains: AIS chains (default `ais_chains`).
            betas: AIS betas, a count or an array from 0 to 1 (default `ais_betas`).
            seed: AIS seed.

        The result is kept until the weights change, so `log_prob`, the exported
        `log_prob` and `evaluate_extra` share one AIS run.
        """
        if method == "auto":
            method = "exact" if self.log_prob_kind == "exact" else "ais"
        if method not in ("exact", "ais"):
            raise UsageError(f'unknown log Z method "{method}"; choose exact, ais or auto.')
        chains = self.ais_chains if chains is None else int(chains)
        betas = self.ais_betas if betas is None else betas
        base = self.base_rate_bias()
        digest = hashlib.sha1()
        for t in (self.w, self.b, self.c):
            digest.update(np.ascontiguousarray(backend.to_numpy(t)).tobytes())
        digest.update(base.tobytes())
        betas_key = int(betas) if np.isscalar(betas) else np.asarray(betas, "float32").tobytes()
        key = (digest.hexdigest(), method, chains, betas_key, int(seed))
        if self._log_z.key == key:
            return dict(self._log_z.value)
        if method == "exact":
            result = {"log_z": self._exact_log_partition(), "method": "exact"}
        else:
            result = self._ais(chains=chains, betas=betas, seed=seed, base_bias=base)
            result["method"] = "ais"
        self._log_z.key, self._log_z.value = key, result
        return dict(result)

    def _exact_log_partition(self):
        """log Z by enumerating the smaller layer (a float)."""
        if min(self.num_dims, self.hidden_units) > 30:
            raise UsageError(f"exact log Z needs a layer of <= 30 units; this RBM has "
                             f"{self.num_dims} x {self.hidden_units}: use AIS.")
        if self.hidden_units <= self.num_dims:
            fn = self.compiled_fn("log_z_h", lambda: exact_log_partition(self.w, self.b, self.c))
        else:
            fn = self.compiled_fn("log_z_v", lambda: exact_log_partition(ops.transpose(self.w), self.c, self.b))
        return float(backend.to_numpy(fn()))

    def _ais(self, chains, betas, seed, base_bias):
        return annealed_importance_sampling(self, chains=chains, betas=betas, seed=seed, base_bias=base_bias)

    def _check_x(self, x):
        x = np.asarray(x, "float32")
        if x.shape[1:] != self.data_shape:
            raise DataError(f"expected images of shape {self.data_shape}, got {x.shape[1:]}.")
        if not np.all((x == 0) | (x == 1)):
            raise DataError("the RBM scores binary images (values 0 or 1); binarize the data first.")
        return x

    def log_prob(self, x, labels=None, batch_size=256, seed=None):
        """log p(x) = -F(x) - log Z in nats (NumPy (N,)): exact, or with AIS's log Z (`log_prob_kind`).

        Args:
            x: binary images (N,) + input_shape.
            labels: must be None (unconditional).
            batch_size: examples per step.
            seed: the AIS seed (default 0) when log Z is estimated.
        """
        if labels is not None:
            raise UsageError("the RBM is not conditional: it takes no labels.")
        x = self._check_x(x)
        log_z = self.log_partition(seed=0 if seed is None else seed)["log_z"]
        fn = self.compiled_fn("neg_free_energy", lambda v: -self.free_energy(v))
        return self.batched(fn, [x], batch_size) - log_z

    def evaluate_extra(self, prepared, batch_size=256):
        """log Z and how it was found (AIS: its standard error, chains and betas)."""
        return self.log_z_report()

    # === Sampling ===

    def noise_spec(self, n):
        """The initial visible state's uniforms, then each Gibbs step's (H hidden + D visible)."""
        return [("uniform", (n,) + self.data_shape),
                ("uniform", (n, self.sample_steps, self.hidden_units + self.num_dims))]

    def _sample(self, u0, u):
        v0 = ops.cast(ops.less(ops.reshape(u0, (-1, self.num_dims)), 0.5), "float32")
        v = gibbs_chain(v0, ops.convert_to_tensor(u, "float32"), self.w, self.b, self.c)
        return ops.reshape(v, (-1,) + self.data_shape)

    def sample_from_noise(self, u0, u, labels=None):
        """Binary samples after `sample_steps` Gibbs steps from the uniformly random state `u0 < 0.5`."""
        if labels is not None:
            raise UsageError("the RBM is not conditional: it takes no labels.")
        return self.compiled_fn("sample", self._sample)(u0, u)

    # === Export ===

    litert_endpoints = ("log_prob", "sample")

    def export_endpoints(self):
        """log_prob(x) -> (batch,) nats (log Z fixed at export); sample(u0, u) -> binary images."""
        log_z = self.log_partition()["log_z"]
        x_spec = ((None,) + self.data_shape, "float32")
        noise_spec = ((None, self.sample_steps, self.hidden_units + self.num_dims), "float32")

        def log_prob(x):
            return -self.free_energy(x) - log_z

        def sample(u0, u):
            return self._sample(u0, u)

        return {"log_prob": (log_prob, [x_spec]), "sample": (sample, [x_spec, noise_spec])}
