"""DBM: the deep Boltzmann machine (Salakhutdinov & Hinton 2009), binary units in L >= 2 hidden layers.

Layers x_0 = v (D visible units), x_1 = h1, ..., x_L = hL, each connected only to its neighbours:

    E(x) = -sum_l b_l'x_l - sum_{l < L} x_l'W_{l+1} x_{l+1},      p(x) = exp(-E(x)) / Z.

The input to layer l from its neighbours is a_l = b_l + x_{l-1}'W_l + W_{l+1} x_{l+1}, so every
conditional factorizes, p(x_l = 1 | rest) = sigmoid(a_l), and the layers split into two blocks (odd
and even) that are conditionally independent of each other: block Gibbs sampling alternates the odd
layers given the even ones and the even layers given the odd ones.

**Mean-field inference** (the data-dependent statistics). q(h | v) = prod Bernoulli(mu_l) fully
factorized; the lower bound

    log p(v) >= B(v, mu) = b_0'v + sum_l b_l'mu_l + v'W_1 mu_1 + sum_l mu_l'W_{l+1} mu_{l+1}
                           + sum_l H(mu_l) - log Z

is maximized by the fixed point mu_l = sigmoid(b_l + mu_{l-1}'W_l + W_{l+1} mu_{l+1}) (mu_0 = v,
no term above the top layer), reached by updating the layers in turn (coordinate ascent: B never
decreases), `mean_field_steps` sweeps from the recognition pass mu_l = sigmoid(b_l + 2 mu_{l-1}'W_l)
(doubled bottom-up input standing in for the missing top-down input; the top layer single).

**Joint training** (Salakhutdinov & Hinton 2009, Algorithm 1): the gradient of the bound is
E_q[-dE/dtheta] - E_model[-dE/dtheta]; the model term comes from `persistent_chains` Gibbs chains
kept in the model (saved in the checkpoint: a resumed run continues the same chains), advanced
`gibbs_steps` sweeps per update. As for the RBM, `fit` minimizes the surrogate

    loss = mean E(v, mu) - mean E(x~),     mu and the chains' states x~ held constant,

whose gradient is that difference (E is linear in the parameters). The even layers of x~ enter
through their conditional probabilities given the odd ones (Rao-Blackwellized: E is linear in each
even layer given its odd neighbours, so the expectation is unchanged and its variance smaller).
The chains start, at the first joint update, from the batch and a draw of its recognition pass.

**Greedy pretraining** (`pretrain_epochs` > 0, the paper's Sec. 3.1): before joint training, one
RBM a pair of adjacent layers, trained bottom-up by CD-k for `pretrain_epochs` epochs each on
samples of the layer below. A layer of the DBM hears both neighbours, a layer of an RBM only one,
so the modified RBMs double the missing input by duplicating a layer with tied weights: the bottom
RBM has two copies of v (the hidden units get 2 W_1'v), the top RBM two copies of hL (its visible
units get 2 W_L hL), a middle RBM both. Summing the copies, an RBM with c_b bottom and c_t top
copies has the free energy, on s the sum of the bottom copies (s = c_b x for data),

    F(s) = -b_bottom's - c_t sum_j softplus(b_top,j + s'W_j),

and its CD-k chain runs on s directly. The pretrained weights compose the DBM as they are (no
halving: the copies already account for the doubling). The top RBMs' own bottom-layer biases
(`pretrain_b<l>`) are used only during pretraining; the DBM keeps each hidden layer's bias from the
RBM in which it was the top layer. Pretraining and joint training are phases of one `fit`, by epoch:
epochs [0, P) train RBM 1, [P, 2P) RBM 2, ..., then joint training (`phase_at(epoch)`). The phases
share the optimizer: its moments carry over (a parameter idle in a phase may still drift by its
decaying moments for a few steps under Adam).

**The partition function.** Exact for small models: the odd layers summed over their 2^U states
(U = |h1| + |h3| + ...; up to 20 units) and the even layers summed out in closed form,

    log Z = logsumexp_{x_odd} [sum_odd b_l'x_l + sum_even sum_j softplus(a_l,j(x_odd))].

Otherwise annealed importance sampling over the even layers (v, h2, ...) with the odd layers
(h1, ...) summed out analytically, as in the paper (Sec. 4): p*_beta(v, h2) = base^(1 - beta)
target^beta with

    log p*_beta = ((1 - beta) b_A + beta b_0)'v + beta sum_{even l > 0} b_l'x_l
                  + sum_odd sum_j softplus(beta a_l,j(x_even)),

from a base model with independent visible units at the training data's base rates b_A and
uniform hidden units (log Z_A = sum_i softplus(b_A,i) + (|h1| + ... + |hL|) log 2), one Gibbs sweep
at inverse temperature beta per intermediate distribution (the odd layers, then the even ones).
The schedule is Salakhutdinov & Murray's (kgen.models.energy.rbm.ais_schedule).

`log_prob(x)` is the variational lower bound B(v, mu) at `eval_mean_field_steps` sweeps, with log Z
exact or by AIS: a stochastic lower bound on log p(v) when log Z is estimated (`log_prob_kind`
"elbo"; `kgen evaluate` reports its negative as an upper bound on the NLL). `exact_log_prob` sums
the odd layers out of p(v) on small models (tests).

#### References

- Salakhutdinov, R. & Hinton, G. Deep Boltzmann machines. AISTATS 2009.
- Salakhutdinov, R. & Hinton, G. An efficient learning procedure for deep Boltzmann machines.
  Neural Computation 24(8), 2012.
- Salakhutdinov, R. & Murray, I. On the quantitative analysis of deep belief networks. ICML 2008.
- Tieleman, T. Training restricted Boltzmann machines using approximations to the likelihood
  gradient. ICML 2008.
- Neal, R. M. Annealed importance sampling. Statistics and Computing 11, 2001.
"""

import hashlib
import math

import keras
import numpy as np
from keras import ops

from kgen import backend
from kgen.errors import DataError, UsageError
from kgen.models.base import GenerativeModel, MarkovChain, PhasedFit
from kgen.models.energy.rbm import AIS_CHUNK, AISLogPartition, ENUMERATION_CHUNK, _bernoulli, _bits, ais_result, ais_schedule
from kgen.registry import register_model

# Exact log Z enumerates the 2^U states of the odd hidden layers up to this many units.
EXACT_MAX_UNITS = 20


def _steps(noise, axis=1):
    """Steps a noise array holds along `axis`: static where known, else a tensor."""
    steps = noise.shape[axis]
    return int(steps) if steps is not None else ops.shape(noise)[axis]


# === Functions of the weights (lists ws = [W_1..W_L], bs = [b_0..b_L]): the model, AIS and the tests ===


def layer_input(states, ws, bs, l):
    """a_l = b_l + x_{l-1}'W_l + W_{l+1} x_{l+1}: the total input to layer l (batch, n_l)."""
    total = bs[l]
    if l > 0:
        total = total + ops.matmul(states[l - 1], ws[l - 1])
    if l < len(ws):
        total = total + ops.matmul(states[l + 1], ops.transpose(ws[l]))
    return total


def energy(states, ws, bs):
    """E(x) = -sum_l b_l'x_l - sum_l x_l'W_{l+1}x_{l+1} of every layer's states (list), (batch,)."""
    out = 0.0
    for l, x in enumerate(states):
        out = out - ops.matmul(x, bs[l][:, None])[:, 0]
    for l, w in enumerate(ws):
        out = out - ops.sum(ops.matmul(states[l], w) * states[l + 1], axis=-1)
    return out


def recognition_logits(v, ws, bs):
    """The start of mean field: logits of mu_l = sigmoid(b_l + 2 mu_{l-1}'W_l), single at the top layer."""
    logits, below = [], v
    for l, w in enumerate(ws, start=1):
        scale = 1.0 if l == len(ws) else 2.0
        logit = bs[l] + scale * ops.matmul(below, w)
        logits.append(logit)
        below = ops.sigmoid(logit)
    return logits


def mean_field(v, ws, bs, steps):
    """Fixed-point iterations of q(h | v): `steps` sweeps over the hidden layers in turn.

    Returns the hidden layers' logits (a list of L (batch, n_l) tensors); mu_l = sigmoid(logit).
    """
    count = len(ws)

    def sweep(t, logits):
        states = [v] + [ops.sigmoid(z) for z in logits]
        out = []
        for l in range(1, count + 1):
            z = layer_input(states, ws, bs, l)
            states[l] = ops.sigmoid(z)
            out.append(z)
        return tuple(out)

    start = tuple(recognition_logits(v, ws, bs))
    return list(ops.fori_loop(0, steps, sweep, start)) if steps else list(start)


def mean_field_bound(v, logits, ws, bs):
    """B(v, mu) + log Z = -E(v, mu) + sum_l H(mu_l), the unnormalized variational bound (batch,).

    The entropy of Bernoulli(sigmoid(z)) is softplus(z) - sigmoid(z) z (stable at saturation).
    """
    mus = [ops.sigmoid(z) for z in logits]
    out = -energy([v] + mus, ws, bs)
    for z, mu in zip(logits, mus):
        out = out + ops.sum(ops.softplus(z) - mu * z, axis=-1)
    return out


def _offsets(sizes):
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int)


def gibbs_sweep(states, u, ws, bs, beta=None, base_bias=None):
    """One block Gibbs sweep: the odd layers given the even ones, then the even layers given the odd.

    `u` (n, sum of all layers' units) holds the sweep's uniforms, layer by layer (v first). With
    `beta`, the sweep leaves AIS's intermediate distribution p_beta invariant (inputs scaled by beta,
    the visible bias (1 - beta) b_A + beta b_0). Returns (states, probabilities), lists of every layer.
    """
    sizes = [int(b.shape[0]) for b in bs]
    off = _offsets(sizes)
    states, probs = list(states), [None] * len(states)
    for parity in (1, 0):
        for l in range(parity, len(states), 2):
            a = layer_input(states, ws, bs, l)
            if beta is not None:
                a = beta * a
                if l == 0:
                    a = a + (1.0 - beta) * base_bias
            probs[l] = ops.sigmoid(a)
            states[l] = _bernoulli(probs[l], u[:, off[l]:off[l + 1]])
    return states, probs


def gibbs_chain(states, noise, ws, bs):
    """`noise.shape[1]` Gibbs sweeps from `states` (a list of every layer); `noise` (n, steps, total units)."""

    def step(t, s):
        return tuple(gibbs_sweep(list(s), ops.take(noise, t, axis=1), ws, bs)[0])

    return list(ops.fori_loop(0, _steps(noise), step, tuple(states)))


def _odd_terms(odd_states, ws, bs, v=None):
    """For odd-layer states (chunk, n_l each): sum_odd b_l'x_l + the even layers summed out (chunk,).

    With `v` (batch, D) the visible layer is fixed instead of summed out: (batch, chunk).
    """
    count = len(ws)
    states = [None] * (count + 1)
    for l, x in zip(range(1, count + 1, 2), odd_states):
        states[l] = x
    out = 0.0
    for l in range(1, count + 1, 2):
        out = out + ops.matmul(states[l], bs[l][:, None])[:, 0]
    for l in range(2 if v is not None else 0, count + 1, 2):
        out = out + ops.sum(ops.softplus(layer_input(states, ws, bs, l)), axis=-1)
    if v is None:
        return out
    # a_0 = b_0 + W_1 h1: v'a_0 for each (v, h1) pair.
    visible = ops.matmul(v, bs[0][:, None]) + ops.matmul(ops.matmul(v, ws[0]), ops.transpose(states[1]))
    return visible + out[None, :]


def _enumerate_odd(fn, ws, bs):
    """logaddexp-accumulates fn(odd_states) over the 2^U states of the odd layers, in chunks."""
    sizes = [int(bs[l].shape[0]) for l in range(1, len(ws) + 1, 2)]
    units = sum(sizes)
    if units > 30:
        raise UsageError(f"exact log Z enumerates 2^{units} odd-layer states; use AIS above {EXACT_MAX_UNITS} units.")
    chunk = min(2**units, ENUMERATION_CHUNK)
    chunks = 2**units // chunk
    off = _offsets(sizes)

    def chunk_lse(k):
        bits = _bits(k * chunk + ops.arange(chunk, dtype="int32"), units)
        return fn([bits[:, off[i]:off[i + 1]] for i in range(len(sizes))])

    first = chunk_lse(0)
    if chunks == 1:
        return first
    return ops.fori_loop(1, chunks, lambda k, acc: ops.logaddexp(acc, chunk_lse(k)), first)


def exact_log_partition(ws, bs):
    """log Z: the odd hidden layers enumerated, the even layers (v, h2, ...) summed out (module docstring)."""
    return _enumerate_odd(lambda odd: ops.logsumexp(_odd_terms(odd, ws, bs)), ws, bs)


def exact_unnormalized_log_prob(v, ws, bs):
    """log sum_h exp(-E(v, h)) of visible states v (batch, D): log p(v) + log Z, enumerated."""
    return _enumerate_odd(lambda odd: ops.logsumexp(_odd_terms(odd, ws, bs, v=v), axis=-1), ws, bs)


def ais_log_p_star(states, ws, bs, beta, base_bias):
    """log p*_beta of the even layers (odd layers summed out), (chains,)."""
    count = len(ws)
    out = ops.matmul(states[0], ((1.0 - beta) * base_bias + beta * bs[0])[:, None])[:, 0]
    for l in range(2, count + 1, 2):
        out = out + beta * ops.matmul(states[l], bs[l][:, None])[:, 0]
    for l in range(1, count + 1, 2):
        out = out + ops.sum(ops.softplus(beta * layer_input(states, ws, bs, l)), axis=-1)
    return out


def ais_chunk(states, log_w, betas, noise, ws, bs, base_bias):
    """AIS over `betas` (K + 1,) from the current betas[0]: weight increments, then one sweep at each beta."""

    def step(k, carry):
        states, log_w = list(carry[0]), carry[1]
        prev, beta = ops.take(betas, k), ops.take(betas, k + 1)
        log_w = (log_w + ais_log_p_star(states, ws, bs, beta, base_bias)
                 - ais_log_p_star(states, ws, bs, prev, base_bias))
        states, _ = gibbs_sweep(states, ops.take(noise, k, axis=0), ws, bs, beta=beta, base_bias=base_bias)
        return tuple(states), log_w

    states, log_w = ops.fori_loop(0, _steps(noise, 0), step, (tuple(states), log_w))
    return list(states), log_w


def annealed_importance_sampling(model, chains=100, betas=14500, seed=0, base_bias=None, chunk=AIS_CHUNK):
    """AIS estimate of a DBM's log Z over (v, h2, ...) with h1 (the odd layers) summed out.

    Same contract and result as `kgen.models.energy.rbm.annealed_importance_sampling`: `log_z`,
    `log_z_stderr` (delta method over chains), `log_weights_std`, `log_z_base`, `chains`, `betas`,
    `schedule`.
    """
    ws, bs = model.weight_list(), model.bias_list()
    sizes = [int(b.shape[0]) for b in bs]
    d = sizes[0]
    schedule = ais_schedule(betas) if np.isscalar(betas) else np.asarray(betas, "float32")
    if schedule[0] != 0.0 or schedule[-1] != 1.0 or np.any(np.diff(schedule) < 0):
        raise UsageError("AIS betas must increase from 0 to 1.")
    base = np.zeros(d, "float32") if base_bias is None else np.asarray(base_bias, "float32").reshape(d)
    k = len(schedule) - 1
    steps = math.ceil(k / chunk)
    padded = np.concatenate([schedule, np.ones(steps * chunk - k, "float32")])
    rng = np.random.default_rng([int(seed), 20090416])
    states = [(rng.uniform(size=(chains, d)) < 1.0 / (1.0 + np.exp(-base))).astype("float32")]
    states += [(rng.uniform(size=(chains, n)) < 0.5).astype("float32") for n in sizes[1:]]
    log_w = np.zeros(chains, "float32")

    def run(log_w, betas_chunk, noise, base_bias, *states):  # one array an argument (PyTorch's adapter)
        return ais_chunk(list(states), log_w, betas_chunk, noise, ws, bs, base_bias)

    fn = model.compiled_fn("ais", run)
    for i in range(steps):
        noise = rng.uniform(size=(chunk, chains, sum(sizes))).astype("float32")
        states, log_w = fn(log_w, padded[i * chunk: (i + 1) * chunk + 1], noise, base, *states)
    log_z_base = float(np.sum(np.logaddexp(0.0, base)) + sum(sizes[1:]) * math.log(2.0))
    return ais_result(log_w, log_z_base, chains, k, betas)


# === Pretraining's modified RBMs ===


def rbm_copies(l, depth):
    """(c_b, c_t): copies of the bottom and top layer of the RBM between layers l and l + 1 (0-based l).

    The top layer (l + 1) hears a layer above it in the DBM unless it is the top: 2 bottom copies; the
    bottom layer hears a layer below it unless it is v: 2 top copies.
    """
    return (2 if l + 1 < depth else 1), (2 if l > 0 else 1)


def copies_free_energy(s, w, b_bottom, b_top, top_copies):
    """F(s) = -b_bottom's - c_t sum_j softplus(b_top,j + s'W_j) on s, the sum of the bottom copies."""
    return (-ops.matmul(s, b_bottom[:, None])[:, 0]
            - top_copies * ops.sum(ops.softplus(b_top + ops.matmul(s, w)), axis=-1))


def copies_cd_chain(s, noise_top, noise_bottom, w, b_bottom, b_top):
    """CD-k on the modified RBM's summed states s (n, n_bottom).

    `noise_top` (n, k, c_t, n_top) and `noise_bottom` (n, k, c_b, n_bottom) hold each step's uniforms;
    each copy is drawn on its own, and s is the sum of the bottom copies.
    """
    wt = ops.transpose(w)

    def step(t, s):
        ut, ub = ops.take(noise_top, t, axis=1), ops.take(noise_bottom, t, axis=1)
        p_top = ops.sigmoid(b_top + ops.matmul(s, w))
        top = ops.sum(_bernoulli(p_top[:, None, :], ut), axis=1)
        p_bottom = ops.sigmoid(b_bottom + ops.matmul(top, wt))
        return ops.sum(_bernoulli(p_bottom[:, None, :], ub), axis=1)

    return ops.fori_loop(0, _steps(noise_top), step, s)


class _Memo:
    """The last log Z and the weights it belongs to (a plain object: TensorFlow must not track it)."""

    key = None
    value = None


PHASE_JOINT = "joint"


# === The model ===


@register_model("dbm", family="energy",
                tiny=dict(hidden_units=(12, 8), persistent_chains=16, sample_steps=20, mean_field_steps=5,
                          eval_mean_field_steps=10, pretrain_epochs=0))
class DBM(PhasedFit, AISLogPartition, MarkovChain, GenerativeModel):
    """Deep Boltzmann machine (Salakhutdinov & Hinton 2009): mean-field and persistent chains, AIS bound.

    Binary data only (a recipe on grey levels sets `data.binarize`). `log_prob` is the mean-field
    variational lower bound on log p(v) with log Z exact (odd hidden layers of <= 20 units in all)
    or estimated by AIS (`log_partition()` for its spread); `log_prob_kind` is "elbo". `sample` runs
    `sample_steps` block Gibbs sweeps from uniformly random visible states and returns the binary
    visible states.

    Args:
        input_shape: shape of one binary image, e.g. `(28, 28, 1)`.
        num_levels: grey levels of the data: 2 (binary).
        num_classes: unused (unconditional); must be None.
        hidden_units: the hidden layers' sizes, bottom first, at least two: e.g. `(500, 1000)`.
        pretrain_epochs: epochs of greedy pretraining per layer pair (the modified RBMs); 0 trains
            jointly from the start. Joint training fills the remaining `train.epochs`.
        pretrain_cd_steps: k of the modified RBMs' CD-k.
        mean_field_steps: mean-field sweeps per training update.
        eval_mean_field_steps: mean-field sweeps of `log_prob` (and its export).
        persistent_chains: the persistent Gibbs chains of joint training (saved in the model).
        gibbs_steps: Gibbs sweeps of the chains per update.
        sample_steps: Gibbs sweeps of `sample` (and of the exported sampler).
        ais_chains: AIS chains for an estimated log Z.
        ais_betas: AIS intermediate distributions (Salakhutdinov & Murray 2008: 14,500).

    Training logs `loss` (the energy gap E(data, mu) - E(chains), not a likelihood) and `recon_error`
    (squared error, summed over pixels, of the visible means given the first hidden layer's mean-field
    state; in pretraining, the current RBM's mean-field reconstruction of its input).

    Example:

    >>> import kgen
    >>> dbm = kgen.build_model("dbm", input_shape=(8, 8, 1), num_levels=2, hidden_units=(12, 8),
    ...                        persistent_chains=16, sample_steps=10)
    >>> dbm.compile(optimizer="adam")
    >>> x = (kgen.load_dataset("digits").x[:64] > 0.5).astype("float32")
    >>> _ = dbm.fit(x, epochs=1, batch_size=16, verbose=0)
    >>> dbm.log_prob_kind, dbm.log_prob(x[:2]).shape, dbm.sample(2, seed=0).shape
    ('elbo', (2,), (2, 8, 8, 1))
    """

    log_prob_kind = "elbo"

    def __init__(
        self,
        input_shape,
        num_levels=2,
        num_classes=None,
        hidden_units=(500, 1000),
        pretrain_epochs=0,
        pretrain_cd_steps=1,
        mean_field_steps=10,
        eval_mean_field_steps=30,
        persistent_chains=100,
        gibbs_steps=1,
        sample_steps=1000,
        ais_chains=100,
        ais_betas=14500,
        **kwargs,
    ):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        if num_classes is not None:
            raise UsageError("the DBM is not conditional; it takes no num_classes.")
        if isinstance(hidden_units, (int, np.integer)) or len(hidden_units) < 2:
            raise UsageError(f"hidden_units must list at least two layer sizes, e.g. [500, 1000], got "
                             f"{hidden_units} (one hidden layer: use the rbm).")
        self.hidden_units = tuple(int(h) for h in hidden_units)
        self.pretrain_epochs = int(pretrain_epochs)
        self.pretrain_cd_steps = int(pretrain_cd_steps)
        self.mean_field_steps = int(mean_field_steps)
        self.eval_mean_field_steps = int(eval_mean_field_steps)
        self.persistent_chains = int(persistent_chains)
        self.gibbs_steps = int(gibbs_steps)
        self.sample_steps = int(sample_steps)
        self.ais_chains = int(ais_chains)
        self.ais_betas = int(ais_betas)
        if min(self.hidden_units) < 1:
            raise UsageError(f"every hidden layer needs >= 1 unit, got {list(self.hidden_units)}.")
        for name in ("pretrain_cd_steps", "persistent_chains", "gibbs_steps", "sample_steps", "ais_chains"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("pretrain_epochs", "mean_field_steps", "eval_mean_field_steps"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}.")
        # === State and metrics (created in __init__: JAX needs them before fit) ===
        self.seed_generator = keras.random.SeedGenerator(0)
        self.recon_tracker = keras.metrics.Mean(name="recon_error")
        self._log_z = _Memo()
        self._phase = None
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        sizes = self.layer_sizes
        # === Weights: W_l joins layer l - 1 and layer l; b_l is layer l's bias (b_0 visible) ===
        for l in range(1, len(sizes)):
            setattr(self, f"w{l}", self.add_weight(name=f"w{l}", shape=(sizes[l - 1], sizes[l]),
                                                   initializer=keras.initializers.RandomNormal(stddev=0.01)))
        for l, n in enumerate(sizes):
            setattr(self, f"b{l}", self.add_weight(name=f"b{l}", shape=(n,), initializer="zeros"))
        # The modified RBMs' own biases of their bottom layer (RBM l + 1, l >= 1): pretraining only.
        for l in range(1, len(sizes) - 1):
            setattr(self, f"pretrain_b{l}", self.add_weight(name=f"pretrain_b{l}", shape=(sizes[l],),
                                                            initializer="zeros"))
        # === Non-trainable state (saved in .keras) ===
        for l, n in enumerate(sizes):
            setattr(self, f"chains{l}", self.add_weight(name=f"chains{l}", shape=(self.persistent_chains, n),
                                                        initializer="zeros", trainable=False))
        self.chains_ready = self.add_weight(name="chains_ready", shape=(), initializer="zeros", trainable=False)
        self.data_sum = self.add_weight(name="data_sum", shape=(sizes[0],), initializer="zeros", trainable=False)
        self.data_count = self.add_weight(name="data_count", shape=(), initializer="zeros", trainable=False)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_units": list(self.hidden_units),
            "pretrain_epochs": self.pretrain_epochs,
            "pretrain_cd_steps": self.pretrain_cd_steps,
            "mean_field_steps": self.mean_field_steps,
            "eval_mean_field_steps": self.eval_mean_field_steps,
            "persistent_chains": self.persistent_chains,
            "gibbs_steps": self.gibbs_steps,
            "sample_steps": self.sample_steps,
            "ais_chains": self.ais_chains,
            "ais_betas": self.ais_betas,
        })
        return config

    # === Structure ===

    @property
    def layer_sizes(self):
        """(D, n_1, ..., n_L): the visible layer, then the hidden layers."""
        return (self.num_dims,) + self.hidden_units

    @property
    def depth(self):
        """L, the number of hidden layers."""
        return len(self.hidden_units)

    def weight_list(self):
        return [getattr(self, f"w{l}") for l in range(1, self.depth + 1)]

    def bias_list(self):
        return [getattr(self, f"b{l}") for l in range(self.depth + 1)]

    def chain_list(self):
        return [getattr(self, f"chains{l}") for l in range(self.depth + 1)]

    def _flat(self, x):
        return ops.reshape(ops.cast(x, "float32"), (-1, self.num_dims))

    # === Inference ===

    def mean_field(self, x, steps=None):
        """The mean-field posterior's means [mu_1, ..., mu_L] of images or flat visible states."""
        steps = self.mean_field_steps if steps is None else int(steps)
        return [ops.sigmoid(z) for z in mean_field(self._flat(x), self.weight_list(), self.bias_list(), steps)]

    def energy(self, states):
        """E(x) of every layer's states [v, h1, ..., hL] (flat), (batch,)."""
        return energy([ops.cast(s, "float32") for s in states], self.weight_list(), self.bias_list())

    # === Training phases ===

    def phase_at(self, epoch):
        """The phase of a (0-based) epoch: "rbm1", ..., "rbmL" (greedy pretraining) or "joint"."""
        if epoch < self.depth * self.pretrain_epochs:
            return f"rbm{epoch // self.pretrain_epochs + 1}"
        return PHASE_JOINT

    def set_phase(self, phase):
        """Switches the compiled training step to `phase`."""
        valid = [f"rbm{l}" for l in range(1, self.depth + 1)] + [PHASE_JOINT]
        if phase not in valid:
            raise UsageError(f'unknown DBM phase "{phase}"; choose one of {", ".join(valid)}.')
        if phase != self._phase:
            self._phase = phase
            self.train_function = None  # traced again for the new phase
            self.test_function = None
            self._clear_idle_slots(phase)

    def phase_variables(self, phase):
        """The parameters a phase trains: RBM l's weights and its two layers' biases, or the DBM's."""
        if phase == PHASE_JOINT:
            return self.weight_list() + self.bias_list()
        l = int(phase[3:]) - 1
        bottom = self.b0 if l == 0 else getattr(self, f"pretrain_b{l}")
        return [self.weight_list()[l], bottom, self.bias_list()[l + 1]]

    def _clear_idle_slots(self, phase):
        """Zeroes the optimizer's slots (moments) of the parameters `phase` does not train.

        Their gradients are zero in that phase, so with zero moments they stay where the
        previous phase left them (Adam would otherwise move them on by their decaying moments).
        """
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None or not optimizer.built:
            return
        active = {id(v) for v in self.phase_variables(phase)}
        prefixes = tuple(v.path.replace("/", "_") + "_" for v in self.trainable_weights if id(v) not in active)
        for slot in optimizer.variables:
            if slot.name.startswith(prefixes):
                slot.assign(ops.zeros(slot.shape, slot.dtype))

    # === Training ===

    def call(self, inputs, training=False):
        """The energies of the surrogate loss of the current phase, and the reconstruction error.

        With `training`, joint training stores its chains' new states and the batch is added to
        the data statistics; the states never carry gradients.
        """
        x, _ = self.split_inputs(inputs)
        v = self._flat(x)
        if training:
            self.data_sum.assign_add(ops.sum(v, axis=0))
            self.data_count.assign_add(ops.cast(ops.shape(v)[0], "float32"))
        phase = self._phase or self.phase_at(0)
        if phase == PHASE_JOINT:
            return self._joint_terms(v, training)
        return self._pretrain_terms(v, int(phase[3:]) - 1)

    def _joint_terms(self, v, training):
        ws, bs = self.weight_list(), self.bias_list()
        ws_c, bs_c = [ops.stop_gradient(w) for w in ws], [ops.stop_gradient(b) for b in bs]
        mus = [ops.stop_gradient(ops.sigmoid(z)) for z in mean_field(v, ws_c, bs_c, self.mean_field_steps)]
        # The chains: at the first joint update, the batch (cycled) and a draw of its recognition pass.
        m = self.persistent_chains
        rows = ops.mod(ops.arange(m, dtype="int32"), ops.shape(v)[0])
        u0 = keras.random.uniform((m, sum(self.hidden_units)), seed=self.seed_generator)
        off = _offsets(self.hidden_units)
        init = [ops.take(v, rows, axis=0)]
        for l, z in enumerate(recognition_logits(init[0], ws_c, bs_c)):
            init.append(_bernoulli(ops.sigmoid(z), u0[:, off[l]:off[l + 1]]))
        ready = ops.greater(self.chains_ready, 0.5)
        start = [ops.stop_gradient(ops.where(ready, c.value, i)) for c, i in zip(self.chain_list(), init)]
        noise = keras.random.uniform((m, self.gibbs_steps, sum(self.layer_sizes)), seed=self.seed_generator)

        def step(t, s):
            return tuple(gibbs_sweep(list(s), ops.take(noise, t, axis=1), ws_c, bs_c)[0])

        states = list(ops.fori_loop(0, self.gibbs_steps, step, tuple(start)))
        if training:
            for c, s in zip(self.chain_list(), states):
                c.assign(s)
            self.chains_ready.assign(1.0)
        # Rao-Blackwellized model statistics: the even layers by their probabilities given the odd ones.
        stats = list(states)
        for l in range(0, self.depth + 1, 2):
            stats[l] = ops.sigmoid(layer_input(states, ws_c, bs_c, l))
        stats = [ops.stop_gradient(s) for s in stats]
        recon = ops.sigmoid(bs_c[0] + ops.matmul(mus[0], ops.transpose(ws_c[0])))
        return {
            "energy_data": energy([v] + mus, ws, bs),
            "energy_model": energy(stats, ws, bs),
            "recon_error": ops.sum(ops.square(v - recon), axis=-1),
        }

    def _pretrain_terms(self, v, l):
        """RBM l + 1 (layers l and l + 1) of the greedy pretraining, on samples of layer l."""
        ws, bs = self.weight_list(), self.bias_list()
        x = v
        for k in range(l):  # up through the RBMs below (trained), one sample a layer
            cb, _ = rbm_copies(k, self.depth)
            p = ops.sigmoid(ops.stop_gradient(bs[k + 1]) + cb * ops.matmul(x, ops.stop_gradient(ws[k])))
            x = _bernoulli(p, keras.random.uniform(ops.shape(p), seed=self.seed_generator))
        x = ops.stop_gradient(x)
        cb, ct = rbm_copies(l, self.depth)
        w, b_top = ws[l], bs[l + 1]
        b_bottom = bs[0] if l == 0 else getattr(self, f"pretrain_b{l}")
        n = ops.shape(x)[0]
        k = self.pretrain_cd_steps
        noise_top = keras.random.uniform((n, k, ct, self.layer_sizes[l + 1]), seed=self.seed_generator)
        noise_bottom = keras.random.uniform((n, k, cb, self.layer_sizes[l]), seed=self.seed_generator)
        s_data = cb * x
        s_model = ops.stop_gradient(copies_cd_chain(s_data, noise_top, noise_bottom, ops.stop_gradient(w),
                                                    ops.stop_gradient(b_bottom), ops.stop_gradient(b_top)))
        top = ct * ops.sigmoid(b_top + ops.matmul(s_data, w))
        recon = ops.sigmoid(b_bottom + ops.matmul(top, ops.transpose(w)))
        return {
            "energy_data": copies_free_energy(s_data, w, b_bottom, b_top, ct),
            "energy_model": copies_free_energy(s_model, w, b_bottom, b_top, ct),
            "recon_error": ops.stop_gradient(ops.sum(ops.square(x - recon), axis=-1)),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.recon_tracker.update_state(y_pred["recon_error"])
        loss = ops.mean(y_pred["energy_data"]) - ops.mean(y_pred["energy_model"])
        # A pretraining phase leaves the other layers' parameters out of its loss: give them zero
        # gradients (not none), so that every backend updates them alike (TensorFlow skips a None).
        loss = loss + 0.0 * sum(ops.sum(w) for w in self.trainable_weights)
        return backend.scale_loss_for_replicas(self.plus_layer_losses(loss))  # tf.distribute: a replica's share

    def check_data(self, data):
        super().check_data(data)
        if data.num_levels != 2:
            raise DataError(
                f"{data.name}: the DBM has binary visible units, found "
                f"{data.num_levels or 'continuous'} levels; set data.binarize = \"dynamic\" or \"static\"."
            )

    # === Partition function and likelihood ===

    @property
    def odd_units(self):
        """Units in the odd hidden layers (h1, h3, ...): exact log Z enumerates 2^odd_units states."""
        return sum(self.hidden_units[0::2])

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
            method: "exact" (enumerate the odd hidden layers), "ais", or "auto" (exact when the
                odd hidden layers have <= 20 units in all).
            chains: AIS chains (default `ais_chains`).
            betas: AIS betas, a count or an array from 0 to 1 (default `ais_betas`).
            seed: AIS seed.

        The result is kept until the weights change.
        """
        if method == "auto":
            method = "exact" if self.odd_units <= EXACT_MAX_UNITS else "ais"
        if method not in ("exact", "ais"):
            raise UsageError(f'unknown log Z method "{method}"; choose exact, ais or auto.')
        chains = self.ais_chains if chains is None else int(chains)
        betas = self.ais_betas if betas is None else betas
        base = self.base_rate_bias()
        digest = hashlib.sha1()
        for t in self.weight_list() + self.bias_list():
            digest.update(np.ascontiguousarray(backend.to_numpy(t)).tobytes())
        digest.update(base.tobytes())
        betas_key = int(betas) if np.isscalar(betas) else np.asarray(betas, "float32").tobytes()
        key = (digest.hexdigest(), method, chains, betas_key, int(seed))
        if self._log_z.key == key:
            return dict(self._log_z.value)
        if method == "exact":
            if self.odd_units > 30:
                raise UsageError(f"exact log Z enumerates 2^{self.odd_units} odd-layer states; use AIS.")
            fn = self.compiled_fn("log_z", lambda: exact_log_partition(self.weight_list(), self.bias_list()))
            result = {"log_z": float(backend.to_numpy(fn())), "method": "exact"}
        else:
            result = annealed_importance_sampling(self, chains=chains, betas=betas, seed=seed, base_bias=base)
            result["method"] = "ais"
        self._log_z.key, self._log_z.value = key, result
        return dict(result)

    def _check_x(self, x, labels=None):
        if labels is not None:
            raise UsageError("the DBM is not conditional: it takes no labels.")
        x = np.asarray(x, "float32")
        if x.shape[1:] != self.data_shape:
            raise DataError(f"expected images of shape {self.data_shape}, got {x.shape[1:]}.")
        if not np.all((x == 0) | (x == 1)):
            raise DataError("the DBM scores binary images (values 0 or 1); binarize the data first.")
        return x

    def _bound(self, x):
        v = self._flat(x)
        ws, bs = self.weight_list(), self.bias_list()
        return mean_field_bound(v, mean_field(v, ws, bs, self.eval_mean_field_steps), ws, bs)

    def log_prob(self, x, labels=None, batch_size=256, seed=None):
        """The mean-field lower bound on log p(x) in nats (NumPy (N,)), with log Z exact or by AIS.

        Args:
            x: binary images (N,) + input_shape.
            labels: must be None (unconditional).
            batch_size: examples per step.
            seed: the AIS seed (default 0) when log Z is estimated.
        """
        x = self._check_x(x, labels)
        log_z = self.log_partition(seed=0 if seed is None else seed)["log_z"]
        return self.batched(self.compiled_fn("bound", self._bound), [x], batch_size) - log_z

    def exact_log_prob(self, x, batch_size=256):
        """log p(x) exactly (NumPy (N,)): the odd hidden layers enumerated, log Z exact. Small models only."""
        x = self._check_x(x)
        if self.odd_units > EXACT_MAX_UNITS:
            raise UsageError(f"exact log p(v) enumerates 2^{self.odd_units} odd-layer states; at most "
                             f"2^{EXACT_MAX_UNITS}: use log_prob (the mean-field bound).")
        fn = self.compiled_fn("exact_log_p", lambda a: exact_unnormalized_log_prob(
            self._flat(a), self.weight_list(), self.bias_list()))
        return self.batched(fn, [x], batch_size) - self.log_partition(method="exact")["log_z"]

    def evaluate_extra(self, prepared, batch_size=256):
        """log Z and how it was found (AIS: its standard error, chains and betas); mean-field sweeps."""
        out = self.log_z_report()
        out["mean_field_steps"] = self.eval_mean_field_steps
        return out

    # === Sampling ===

    def noise_spec(self, n):
        """The initial visible state's uniforms, then each Gibbs sweep's (every layer's units, v first)."""
        return [("uniform", (n,) + self.data_shape), ("uniform", (n, self.sample_steps, sum(self.layer_sizes)))]

    def _sample(self, u0, u):
        v0 = ops.cast(ops.less(ops.reshape(u0, (-1, self.num_dims)), 0.5), "float32")
        n = ops.shape(v0)[0]
        states = [v0] + [ops.zeros((n, h), "float32") for h in self.hidden_units]
        states = gibbs_chain(states, ops.convert_to_tensor(u, "float32"), self.weight_list(), self.bias_list())
        return ops.reshape(states[0], (-1,) + self.data_shape)

    def sample_from_noise(self, u0, u, labels=None):
        """Binary samples after `sample_steps` Gibbs sweeps from the uniformly random state `u0 < 0.5`."""
        if labels is not None:
            raise UsageError("the DBM is not conditional: it takes no labels.")
        return self.compiled_fn("sample", self._sample)(u0, u)

    # === Export ===

    litert_endpoints = ("log_prob", "sample")

    def export_endpoints(self):
        """log_prob(x) -> (batch,) the mean-field bound in nats (log Z fixed at export); sample(u0, u)."""
        log_z = self.log_partition()["log_z"]
        x_spec = ((None,) + self.data_shape, "float32")
        noise_spec = ((None, self.sample_steps, sum(self.layer_sizes)), "float32")

        def log_prob(x):
            return self._bound(x) - log_z

        def sample(u0, u):
            return self._sample(u0, u)

        return {"log_prob": (log_prob, [x_spec]), "sample": (sample, [x_spec, noise_spec])}
