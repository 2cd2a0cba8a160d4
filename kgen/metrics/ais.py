"""Annealed importance sampling of log p(x) for decoder-based models (Wu et al. 2017).

A latent-variable model with prior p(z) and decoder p(x|z) has
p(x) = integral p(z) p(x|z) dz. AIS (Neal 2001) walks from the prior to the
posterior through the unnormalized densities

    f_t(z) = p(z) p(x|z)^beta_t,    0 = beta_0 < beta_1 < ... < beta_T = 1.

Each chain starts at z_0 ~ p(z) (f_0 normalized, so no weight), adds
(beta_t - beta_{t-1}) log p(x|z_{t-1}) to its log weight, then moves z by a
transition that leaves f_t invariant: here one Hamiltonian Monte Carlo step
(`leapfrog` leapfrog steps with a Metropolis accept/reject). Each chain's
weight is an unbiased estimate of p(x), so

    log p(x) ~ log (1/K) sum_k exp(log w_k)

over K chains is a stochastic lower bound (Jensen) that tightens as the
schedule lengthens: for a VAE it sits between the importance-weighted bound
and the true log-likelihood (Wu et al. 2017, "On the quantitative analysis of
decoder-based generative models", Sec. 3-4).

Choices, as in Wu et al.: a sigmoidal schedule beta_t = s(delta (2t/T - 1))
rescaled to [0, 1] (delta = 4), and a step size adapted per chain toward an
acceptance rate of 0.65. Adapting the step size from a chain's own history makes
the transitions depend on the past, a small departure from exact AIS that the
paper also makes; `adapt=False` keeps the step size fixed.

The model offers `latent_log_joint(x, z, labels)` -> (log p(z), log p(x|z)),
per row, and `latent_dim`; `kgen evaluate --ais` reports the mean estimate
beside the ELBO and the importance-weighted bound.

#### References

- Neal, R. M. Annealed importance sampling. Statistics and Computing 11, 2001.
- Wu, Y., Burda, Y., Salakhutdinov, R. & Grosse, R. On the quantitative
  analysis of decoder-based generative models. ICLR 2017.
"""

import math

import numpy as np
from keras import ops

from kgen import backend
from kgen.backend.adversarial import input_gradient
from kgen.errors import UsageError

STEP_BLOCK = 50  # annealing steps per compiled call (the noise of a block is drawn up front)


def sigmoid_schedule(num_betas, delta=4.0):
    """`num_betas` betas from 0 to 1 (both included), dense near both ends (Wu et al. 2017)."""
    if isinstance(num_betas, bool) or not isinstance(num_betas, (int, np.integer)) or num_betas < 2:
        raise UsageError(f"--ais-betas must be an integer >= 2, got {num_betas}.")
    s = 1.0 / (1.0 + np.exp(-delta * np.linspace(-1.0, 1.0, int(num_betas))))
    return ((s - s[0]) / (s[-1] - s[0])).astype("float64")


def _hmc_block(model, leapfrog, target_accept, adapt):
    """The compiled body: a block of annealing steps for rows (x, labels, z)."""

    def log_f(x, labels, z, beta):
        log_prior, log_lik = model.latent_log_joint(x, z, labels)
        return log_prior + beta * log_lik, log_lik

    def grad_log_f(x, labels, z, beta):
        return ops.stop_gradient(input_gradient(lambda a: log_f(x, labels, a, beta)[0], z))

    def run(x, labels, z, log_w, step, accept_avg, betas, momenta, uniforms):
        labels = labels if model.conditional else None

        def body(t, carry):
            z, log_w, step, accept_avg, accepted = carry
            beta_prev, beta = betas[t], betas[t + 1]
            log_p, log_lik = log_f(x, labels, z, beta)
            log_w = log_w + (beta - beta_prev) * log_lik
            # one HMC transition that leaves p(z) p(x|z)^beta invariant
            p0 = momenta[t]
            eps = step[:, None]
            p = p0 + 0.5 * eps * grad_log_f(x, labels, z, beta)
            z_new = z
            for i in range(leapfrog):
                z_new = z_new + eps * p
                scale = 1.0 if i < leapfrog - 1 else 0.5
                p = p + scale * eps * grad_log_f(x, labels, z_new, beta)
            log_p_new, _ = log_f(x, labels, z_new, beta)
            log_ratio = (log_p_new - 0.5 * ops.sum(p * p, axis=-1)) - (log_p - 0.5 * ops.sum(p0 * p0, axis=-1))
            log_ratio = ops.where(ops.isnan(log_ratio), -np.inf, log_ratio)
            accept = ops.less(ops.log(uniforms[t]), log_ratio)
            z = ops.stop_gradient(ops.where(accept[:, None], z_new, z))
            acc = ops.cast(accept, "float32")
            if adapt:
                accept_avg = 0.9 * accept_avg + 0.1 * acc
                step = ops.clip(ops.where(accept_avg > target_accept, step * 1.02, step * 0.98), 1e-4, 0.5)
            return z, ops.stop_gradient(log_w), step, accept_avg, accepted + acc

        init = (z, log_w, step, accept_avg, ops.zeros_like(log_w))
        return ops.fori_loop(0, ops.shape(momenta)[0], body, init)

    return run


def decoder_ais(model, x, labels=None, chains=16, betas=1000, leapfrog=10, step_size=0.05, target_accept=0.65,
                adapt=True, seed=0, batch_size=None, progress=None):
    """AIS estimates of log p(x) (nats, NumPy (N,)) for a model with `latent_log_joint`.

    Args:
        model: a latent-variable model with a standard normal prior over `latent_dim` dims.
        x: examples, as the model scores them (prepared data).
        labels: labels for a conditional model.
        chains: AIS chains per example (K).
        betas: intermediate distributions, with the ends (T + 1), sigmoidal schedule.
        leapfrog: leapfrog steps of each HMC transition.
        step_size: the initial HMC step size.
        target_accept: the acceptance rate the per-chain step size adapts toward.
        adapt: adapt the step size (else keep `step_size`).
        seed: the seed of the chains' starts, momenta and accept draws.
        batch_size: examples per compiled call (default: about 1024 chain rows).
        progress: optional callable(done_examples).

    Returns a dict: `log_prob` (N,), `log_prob_stderr` (N,) (the delta-method spread of the log of the
    mean weight over chains), `accept_rate` (the mean HMC acceptance), `chains`, `betas`, `leapfrog`.
    """
    for name, value, low in (("--ais-chains", chains, 1), ("leapfrog", leapfrog, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise UsageError(f"{name} must be an integer >= {low}, got {value}.")
    schedule = sigmoid_schedule(betas)
    x = np.asarray(x, "float32")
    labels = np.zeros(len(x), "int32") if labels is None else np.asarray(labels, "int32")
    d = int(model.latent_dim)
    batch_size = batch_size or max(1, 1024 // chains)
    fn = model.compiled_fn(("decoder_ais", int(leapfrog), float(target_accept), bool(adapt)),
                           _hmc_block(model, int(leapfrog), float(target_accept), bool(adapt)))
    rng = np.random.default_rng(seed)
    log_prob = np.empty(len(x), "float64")
    stderr = np.empty(len(x), "float64")
    accepted = 0.0
    for i in range(0, len(x), batch_size):
        xb, lb = x[i:i + batch_size], labels[i:i + batch_size]
        rows = len(xb) * chains
        x_rep = np.repeat(xb, chains, axis=0)  # row r is example r // chains
        l_rep = np.repeat(lb, chains, axis=0)
        z = rng.standard_normal((rows, d)).astype("float32")
        log_w = np.zeros(rows, "float32")
        step = np.full(rows, step_size, "float32")
        accept_avg = np.full(rows, target_accept, "float32")
        for start in range(0, len(schedule) - 1, STEP_BLOCK):
            b = schedule[start:start + STEP_BLOCK + 1].astype("float32")
            s = len(b) - 1
            momenta = rng.standard_normal((s, rows, d)).astype("float32")
            uniforms = rng.uniform(size=(s, rows)).astype("float32")
            z, log_w, step, accept_avg, acc = fn(x_rep, l_rep, z, log_w, step, accept_avg, b, momenta, uniforms)
            accepted += float(np.sum(backend.to_numpy(acc)))
        lw = backend.to_numpy(log_w).astype("float64").reshape(len(xb), chains)
        top = lw.max(axis=1, keepdims=True)
        w = np.exp(lw - top)
        mean = w.mean(axis=1)
        log_prob[i:i + len(xb)] = np.log(mean) + top[:, 0]
        # delta method: sd(log mean w) ~ sd(w) / (sqrt(K) mean w)
        stderr[i:i + len(xb)] = (w.std(axis=1, ddof=1) / (math.sqrt(chains) * mean)) if chains > 1 else np.nan
        if progress:
            progress(i + len(xb))
    steps = (len(schedule) - 1) * len(x) * chains
    return {"log_prob": log_prob, "log_prob_stderr": stderr, "accept_rate": accepted / steps,
            "chains": int(chains), "betas": int(len(schedule)), "leapfrog": int(leapfrog)}
