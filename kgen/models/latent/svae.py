"""Structured variational autoencoder (Johnson et al. 2016): conjugate graphical-model latents, neural likelihoods.

The latent structure is a conjugate exponential-family graphical model with global parameters
theta and local latents; a neural decoder gives the likelihood p(y|x), and a recognition network
gives, per data point (GMM) or per frame (LDS), a Gaussian node potential in natural parameters

    psi(x_n; y_n, phi) = -1/2 x_n' diag(J_n) x_n + h_n' x_n      (J_n > 0, h_n: the network's outputs)

that stands in for the non-conjugate likelihood during local inference. Two latent models (`prior`):

- "gmm": pi ~ Dir(alpha_0), (mu_k, Sigma_k) ~ NIW(m_0, kappa_0, Psi_0, nu_0) for k = 1..K;
  z_n ~ Cat(pi), x_n | z_n ~ N(mu_k, Sigma_k) in R^D. Local inference is mean-field block
  coordinate ascent between q(z_n) and q(x_n) (`mean_field_iters` rounds, unrolled and
  differentiated), each update exact given the other and the potential:
  q(x_n) = N(P^-1 (sum_k r_nk E[Sigma_k^-1 mu_k] + h_n), P^-1), P = sum_k r_nk E[Sigma_k^-1] + diag(J_n);
  log r_nk = E[log pi_k] + E_q(x) E_q(theta)[log N(x_n | mu_k, Sigma_k)] + const.
- "lds": x_1 ~ N(0, I), x_{t+1} = A x_t + w_t, w_t ~ N(0, Q), with (A, Q) ~ MNIW(M_0, K_0, S_0, nu_0)
  (matrix-normal-inverse-Wishart: Q ~ IW(S_0, nu_0), A | Q ~ MN(M_0, Q, K_0^-1)). Local inference
  is exact: q(x_{1:T}) is the Gaussian chain with the expected pairwise potentials
  E_q(theta)[log N(x_{t+1} | A x_t, Q)] and the node potentials, solved by an information-form
  forward filter and an information-form backward pass (the two-filter form of the RTS
  smoother; the expected potentials are not a proper conditional density, so the smoother works
  on potentials throughout). A joint reparameterized sample of x_{1:T} comes from backward
  sampling through the filter.

Both global priors are matrix-normal-inverse-Wishart families (NIW is the one-column case), kept
in the natural (conjugate-update) coordinates (S + M K M', M K, K, nu), Dirichlet as alpha.

**Objective** (per data point, or per sequence for the LDS), with q(theta) held fixed:

    L = E_q(x)[log p(y|x)] - KL(q(z) q(x) || p(z, x | theta) averaged over q(theta))
        - KL(q(theta) || p(theta)) / num_data

The first term is one reparameterized sample; the local KL is closed form (for the LDS: the
node terms' expectation minus the filter's log-normalizer plus the expected log-normalizers of
the prior factors). The network weights (encoder phi, decoder gamma) are trained by the Keras
optimizer through `fit`; the global KL is a constant for them (added, gradient-stopped, so
the logged loss is the negative SVAE bound per example). The global natural parameters eta
are non-trainable weights that each training step moves by the paper's natural-gradient SVI
step (Hoffman et al. 2013),

    eta <- (1 - rho) eta + rho (eta_0 + num_data / |batch| * sum_batch E_q[t(x, z)])

(`global_step_size` rho, `num_data` N: the training set's size; set it to the number of
training examples, or sequences). The step is taken inside the training `call`, from the
local posteriors the batch's loss used, as the RBMs update their chains: no custom
`train_step`, so it runs through `compile()` + `fit()` on every backend.

Evaluation (`score`, `log_prob`): the local bound per example at the posterior-expected
globals (the global KL is a property of the data set, not of an example, and is left out).
The LDS adds `elbo_per_frame` and a frame-prediction error (`frame_prediction_error`).
Sampling: GMM draws z ~ Cat(E[pi]), x ~ N(E[mu_z], E[Sigma_z]), y ~ p(y|x); LDS rolls
x_{t+1} = E[A] x_t + E[Q]^{1/2} eps from x_1 ~ N(0, I) and decodes every frame (a video is
an image strip: one frame a row).

Data: "gmm" takes points (N, D) or images (flattened); "lds" takes sequences as images
(T, W, C) (one frame a row: `bouncing_dot`) or (T, F) arrays. Likelihood: Bernoulli for
binary data, diagonal Gaussian (mean, log-scale per output) otherwise.

#### References

- Johnson, M. J., Duvenaud, D., Wiltschko, A. B., Datta, S. R. & Adams, R. P. Composing
  graphical models with neural networks for structured representations and fast inference.
  NeurIPS 2016. arXiv:1603.06277.
- Hoffman, M. D., Blei, D. M., Wang, C. & Paisley, J. Stochastic variational inference. JMLR 2013.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from kgen import backend
from kgen.errors import DataError, UsageError
from kgen.models.base import LOG_2PI, GenerativeModel
from kgen.models.latent.vae import _erfinv
from kgen.registry import register_model

PRIORS = ("gmm", "lds")
LIKELIHOODS = ("auto", "bernoulli", "gaussian")


# === Special functions (keras.ops has neither digamma nor lgamma) ===


def digamma(x):
    """psi(x) for x > 0: the recurrence up to x + 6, then the asymptotic series (error < 1e-9)."""
    x = ops.convert_to_tensor(x, "float32")
    acc = ops.zeros_like(x)
    for i in range(6):
        acc = acc - 1.0 / (x + i)
    z = x + 6.0
    iz2 = 1.0 / (z * z)
    return acc + ops.log(z) - 0.5 / z - iz2 * (1.0 / 12 - iz2 * (1.0 / 120 - iz2 / 252))


def lgamma(x):
    """log Gamma(x) for x > 0: the recurrence up to x + 6, then Stirling's series."""
    x = ops.convert_to_tensor(x, "float32")
    acc = ops.zeros_like(x)
    for i in range(6):
        acc = acc + ops.log(x + i)
    z = x + 6.0
    iz = 1.0 / z
    iz2 = iz * iz
    series = iz * (1.0 / 12 - iz2 * (1.0 / 360 - iz2 / 1260))
    return (z - 0.5) * ops.log(z) - z + 0.5 * LOG_2PI + series - acc


def mv_digamma(a, d):
    """sum_{i=1..d} psi(a + (1 - i) / 2)."""
    return sum(digamma(a + 0.5 * (1 - i)) for i in range(1, d + 1))


def mv_lgamma(a, d):
    """log of the multivariate Gamma function Gamma_d(a)."""
    return 0.25 * d * (d - 1) * math.log(math.pi) + sum(lgamma(a + 0.5 * (1 - i)) for i in range(1, d + 1))


# === Linear algebra on batches of small matrices ===


def _t(a):
    return ops.swapaxes(a, -1, -2)


def _sym(a):
    return 0.5 * (a + _t(a))


def _logdet(a):
    """log|a| of symmetric positive-definite matrices (..., D, D)."""
    chol = ops.cholesky(_sym(a))
    return 2.0 * ops.sum(ops.log(ops.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def _mv(a, v):
    """a @ v for matrices (..., D, E) and vectors (..., E)."""
    return ops.squeeze(ops.matmul(a, ops.expand_dims(v, -1)), -1)


def _quad(a, v):
    """v' a v per batch element."""
    return ops.sum(v * _mv(a, v), axis=-1)


def _diag(v):
    """(..., D) -> (..., D, D) diagonal matrices."""
    d = ops.shape(v)[-1]
    return ops.expand_dims(v, -1) * ops.eye(d, dtype=v.dtype)


# === Matrix-normal-inverse-Wishart families (NIW: one column) ===
#
# Natural coordinates (the ones the conjugate update adds statistics to):
#   a = S + M K M',  b = M K,  k = K,  nu      (M: D x p, K: p x p, S: D x D)
# with Q ~ IW(S, nu) and A | Q ~ MN(M, Q, K^-1). The statistics of one observed pair
# (input u in R^p, output v in R^D) are (v v', v u', u u', 1); a Gaussian's are the case
# p = 1, u = 1 (mean mu = the one column of A, covariance Sigma = Q).


def mniw_standard(a, b, k):
    """(M, S, K) from the natural coordinates."""
    k_inv = ops.inv(_sym(k))
    m = ops.matmul(b, k_inv)
    s = _sym(a - ops.matmul(m, _t(b)))
    return m, s, k_inv


def mniw_expectations(a, b, k, nu):
    """Expected statistics under MNIW: E[Q^-1], E[Q^-1 A], E[A' Q^-1 A], E[log|Q^-1|]."""
    d = a.shape[-1]
    m, s, k_inv = mniw_standard(a, b, k)
    s_inv = ops.inv(s)
    nu_ = ops.expand_dims(ops.expand_dims(nu, -1), -1)
    e_j = nu_ * s_inv
    e_jm = ops.matmul(e_j, m)
    e_mjm = d * k_inv + ops.matmul(_t(m), e_jm)
    e_logdet = mv_digamma(0.5 * nu, d) + d * math.log(2.0) - _logdet(s)
    return _sym(e_j), e_jm, _sym(e_mjm), e_logdet


def mniw_kl(q, p):
    """KL(MNIW q || MNIW p), each a tuple of natural coordinates (a, b, k, nu)."""
    d = q[0].shape[-1]
    cols = q[1].shape[-1]
    m, s, k_inv = mniw_standard(*q[:3])
    m0, s0, _ = mniw_standard(*p[:3])
    k, nu = q[2], q[3]
    k0, nu0 = p[2], p[3]
    s_inv = ops.inv(s)
    tr = lambda x: ops.sum(ops.diagonal(x, axis1=-2, axis2=-1), axis=-1)  # noqa: E731
    # The inverse-Wishart part: KL of the Wisharts of the precision Q^-1.
    kl_w = (-0.5 * nu0 * (_logdet(s0) - _logdet(s)) + 0.5 * nu * (tr(ops.matmul(s0, s_inv)) - d)
            + mv_lgamma(0.5 * nu0, d) - mv_lgamma(0.5 * nu, d) + 0.5 * (nu - nu0) * mv_digamma(0.5 * nu, d))
    dm = m - m0
    quad = tr(ops.matmul(k0, ops.matmul(_t(dm), ops.matmul(s_inv, dm))))
    kl_mn = 0.5 * (d * tr(ops.matmul(k0, k_inv)) - d * cols + nu * quad + d * (_logdet(k) - _logdet(k0)))
    return kl_w + kl_mn


def dirichlet_kl(alpha, alpha0):
    """KL(Dir(alpha) || Dir(alpha0)) over the last axis."""
    total = ops.sum(alpha, axis=-1)
    return (lgamma(total) - ops.sum(lgamma(alpha), axis=-1) - lgamma(ops.sum(alpha0, axis=-1))
            + ops.sum(lgamma(alpha0), axis=-1)
            + ops.sum((alpha - alpha0) * (digamma(alpha) - digamma(total)[..., None]), axis=-1))


# === Local inference: the GMM's mean field ===


def gmm_mean_field(h, j, expected, log_pi, iters):
    """Mean-field q(z) q(x) for a batch of node potentials under expected GMM parameters.

    Args:
        h, j: node potentials (B, D) (j > 0: the diagonal precision).
        expected: (E[Sigma_k^-1] (K, D, D), E[Sigma_k^-1 mu_k] (K, D), E[mu_k' Sigma_k^-1 mu_k] (K,),
            E[log|Sigma_k^-1|] (K,)).
        log_pi: E[log pi_k] (K,).
        iters: rounds of (q(x), q(z)) updates; one last q(x) update follows.

    Returns:
        dict: `r` (B, K) responsibilities, `mean` (B, D), `cov` (B, D, D) of q(x), and `kl`
        (B,): KL(q(z) q(x) || p(z, x | theta)) averaged over q(theta).
    """
    e_j, e_h, e_mjm, e_logdet = expected
    d = h.shape[-1]
    r = ops.zeros_like(h[:, :1]) + ops.softmax(log_pi)[None]

    def x_update(r):
        prec = ops.einsum("bk,kij->bij", r, e_j) + _diag(j)
        cov = _sym(ops.inv(prec))
        mean = _mv(cov, ops.matmul(r, e_h) + h)
        return prec, cov, mean

    def expected_loglik(cov, mean):
        exx = cov + ops.expand_dims(mean, -1) * ops.expand_dims(mean, -2)
        return (0.5 * e_logdet[None] - 0.5 * d * LOG_2PI - 0.5 * ops.einsum("kij,bij->bk", e_j, exx)
                + ops.matmul(mean, _t(e_h)) - 0.5 * e_mjm[None])

    for _ in range(int(iters)):
        _, cov, mean = x_update(r)
        r = ops.softmax(log_pi[None] + expected_loglik(cov, mean), axis=-1)
    prec, cov, mean = x_update(r)
    ell = expected_loglik(cov, mean)
    log_r = ops.log(ops.maximum(r, 1e-30))
    kl_z = ops.sum(r * (log_r - log_pi[None]), axis=-1)
    neg_entropy = -0.5 * d * (1.0 + LOG_2PI) + 0.5 * _logdet(prec)
    kl = kl_z + neg_entropy - ops.sum(r * ell, axis=-1)
    return {"r": r, "mean": mean, "cov": cov, "prec": prec, "kl": kl}


# === Local inference: the LDS's message passing ===


def lds_posterior(h, j, pair, init):
    """Exact q(x_{1:T}) of a Gaussian chain with node potentials (h, j) and pairwise potentials.

    Args:
        h, j: node potentials (B, T, D) (j: diagonal precisions).
        pair: (J11, J12, J22), each (D, D): the pairwise potential
            -1/2 [x_t; x_{t+1}]' [[J11, J12], [J12', J22]] [x_t; x_{t+1}] of every transition
            (for x_{t+1} ~ N(A x_t, Q): J11 = A'Q^-1 A, J12 = -A'Q^-1, J22 = Q^-1; the SVAE uses
            their expectations under q(A, Q)).
        init: (J0 (D, D), h0 (D,)): the potential of x_1 (N(mu0, Sigma0): Sigma0^-1, Sigma0^-1 mu0).

    Returns:
        dict: smoothed `mean` (B, T, D), `cov` (B, T, D, D), `cross` (B, T-1, D, D) = E[x_{t+1} x_t'],
        `log_z` (B,) the log-normalizer of the unnormalized chain, and the filter's `filt_prec`,
        `filt_h` (lists of T tensors) for `lds_sample`.
    """
    j11, j12, j22 = pair
    j21 = _t(j12)
    j0, h0 = init
    steps = h.shape[1]
    d = h.shape[-1]
    zero_mat = ops.zeros_like(_diag(j[:, 0]))  # (B, D, D)
    prec_p = zero_mat + j0[None]
    h_p = ops.zeros_like(h[:, 0]) + h0[None]
    log_z = ops.zeros_like(h[:, 0, 0])
    filt_prec, filt_h = [], []
    for t in range(steps):  # forward: information-form filter
        prec_f = prec_p + _diag(j[:, t])
        h_f = h_p + h[:, t]
        filt_prec.append(prec_f)
        filt_h.append(h_f)
        if t < steps - 1:
            p = _sym(prec_f + j11[None])
            p_inv = _sym(ops.inv(p))
            log_z = log_z + 0.5 * d * LOG_2PI - 0.5 * _logdet(p) + 0.5 * _quad(p_inv, h_f)
            prec_p = _sym(j22[None] - ops.matmul(j21[None], ops.matmul(p_inv, j12[None])))
            h_p = -_mv(ops.matmul(j21[None], p_inv), h_f)
    last_cov = _sym(ops.inv(filt_prec[-1]))
    log_z = log_z + 0.5 * d * LOG_2PI - 0.5 * _logdet(filt_prec[-1]) + 0.5 * _quad(last_cov, filt_h[-1])
    means = [None] * steps
    covs = [None] * steps
    cross = [None] * (steps - 1)
    covs[-1] = last_cov
    means[-1] = _mv(last_cov, filt_h[-1])
    prec_b = zero_mat  # backward message into x_{t+1} from the future
    h_b = ops.zeros_like(h[:, 0])
    for t in range(steps - 2, -1, -1):  # backward: information-form smoother (two-filter form)
        prec_n = prec_b + _diag(j[:, t + 1])  # x_{t+1}'s node and future, without its past
        h_n = h_b + h[:, t + 1]
        r_inv = _sym(ops.inv(_sym(j22[None] + prec_n)))
        prec_b = _sym(j11[None] - ops.matmul(j12[None], ops.matmul(r_inv, j21[None])))
        h_b = -_mv(ops.matmul(j12[None], r_inv), h_n)
        # The pair (x_t, x_{t+1}): its joint precision and linear term, inverted as one block.
        top = ops.concatenate([filt_prec[t] + j11[None], zero_mat + j12[None]], axis=-1)
        bottom = ops.concatenate([zero_mat + j21[None], j22[None] + prec_n], axis=-1)
        joint_cov = _sym(ops.inv(_sym(ops.concatenate([top, bottom], axis=-2))))
        joint_mean = _mv(joint_cov, ops.concatenate([filt_h[t], h_n], axis=-1))
        covs[t] = joint_cov[:, :d, :d]
        means[t] = joint_mean[:, :d]
        cross[t] = joint_cov[:, d:, :d] + ops.expand_dims(means[t + 1], -1) * ops.expand_dims(means[t], -2)
    out = {"mean": ops.stack(means, axis=1), "cov": ops.stack(covs, axis=1), "log_z": log_z,
           "filt_prec": filt_prec, "filt_h": filt_h}
    out["cross"] = ops.stack(cross, axis=1) if cross else ops.expand_dims(zero_mat, 1)[:, :0]
    return out


def lds_sample(post, pair, eps):
    """A joint reparameterized sample of x_{1:T} from q (backward sampling through the filter).

    eps: standard normal noise (B, T, D). x_T ~ N(mean_T, cov_T); then x_t | x_{t+1} has
    precision P_t = filt_prec_t + J11 and linear term filt_h_t - J12 x_{t+1}.
    """
    j11, j12, _ = pair
    steps = eps.shape[1]
    x = post["mean"][:, -1] + _mv(ops.cholesky(post["cov"][:, -1]), eps[:, -1])
    out = [x]
    for t in range(steps - 2, -1, -1):
        cov = _sym(ops.inv(_sym(post["filt_prec"][t] + j11[None])))
        mean = _mv(cov, post["filt_h"][t] - _mv(j12, x))
        x = mean + _mv(ops.cholesky(cov), eps[:, t])
        out.append(x)
    return ops.stack(out[::-1], axis=1)


def lds_local_kl(post, h, j, e_logdet, init_log_norm):
    """KL(q(x) || p(x | theta) averaged over q(theta)) per sequence.

    = E_q[sum_t node potential] - log Z + log-normalizer of x_1's prior
      + (T - 1) (D/2 log 2 pi - 1/2 E[log|Q^-1|]).
    """
    steps, d = h.shape[1], h.shape[-1]
    second = ops.square(post["mean"]) + ops.diagonal(post["cov"], axis1=-2, axis2=-1)
    node = ops.sum(-0.5 * j * second + h * post["mean"], axis=(1, 2))
    pair_norm = (steps - 1) * (0.5 * d * LOG_2PI - 0.5 * e_logdet)
    return node - post["log_z"] + init_log_norm + pair_norm


def _dense_stack(units, activation, name):
    return [layers.Dense(u, activation=activation, name=f"{name}_dense_{i}") for i, u in enumerate(units)]


@register_model("svae", family="latent",
                tiny=dict(prior="gmm", latent_dim=2, num_components=3, hidden_units=(8,), mean_field_iters=2,
                          num_data=64),
                tiny_dataset="pinwheel")
class SVAE(GenerativeModel):
    """Structured VAE (Johnson et al. 2016): a conjugate GMM or LDS over the latents, neural likelihood and recognition.

    `log_prob(x)` is the local SVAE bound per example (nats; a lower bound on log p(x) at the
    posterior-expected global parameters, the global KL left out).

    Args:
        input_shape: points (D,), or for the LDS sequences (T, W, C) / (T, F) (one frame a row).
        num_levels: 2 for binary data (Bernoulli likelihood), None for continuous data.
        num_classes: must be None (unconditional).
        prior: "gmm" (mixture of Gaussians over x_n) or "lds" (linear dynamical system over x_1..T).
        latent_dim: D, the dimension of x_n (or of each x_t).
        num_components: K, the GMM's clusters (unused by the LDS).
        hidden_units: widths of the recognition network's hidden layers (the decoder's reversed).
        activation: the hidden layers' activation.
        likelihood: "auto" (Bernoulli for binary data, else Gaussian), "bernoulli" or "gaussian".
        mean_field_iters: the GMM's rounds of q(x) / q(z) updates per local inference.
        global_step_size: rho of the natural-gradient SVI step on the global parameters.
        num_data: N, training examples (GMM) or sequences (LDS): scales the batch's statistics
            by N / |batch| in the SVI step and the global KL by 1/N.
        prior_concentration: the Dirichlet's alpha_0 per cluster (GMM).
        prior_kappa: kappa_0 (GMM: the NIW's mean precision scale) or K_0 = kappa_0 I (LDS).
        init_scale: the spread of the GMM's initial cluster means (symmetry breaking); the LDS's
            dynamics start at A = init_scale * I when init_scale < 1, else 0.99 I.
        predict_prefix: frames given to the LDS frame prediction (default T // 2).
        seed: the seed of the initial global parameters.

    Example:

    >>> import kgen
    >>> model = kgen.build_model("svae", input_shape=(2,), prior="gmm", latent_dim=2, num_components=4,
    ...                          hidden_units=(16,), num_data=256)
    >>> model.compile(optimizer="adam")
    >>> data = kgen.load_dataset("pinwheel", num_examples=256)
    >>> _ = model.fit(data.x, epochs=1, batch_size=64, verbose=0)
    >>> model.sample(3, seed=0).shape
    (3, 2)
    """

    log_prob_kind = "elbo"

    def __init__(self, input_shape, num_levels=None, num_classes=None, prior="gmm", latent_dim=2,
                 num_components=10, hidden_units=(50,), activation="tanh", likelihood="auto", mean_field_iters=10,
                 global_step_size=0.1, num_data=1000, prior_concentration=1.0, prior_kappa=0.1, init_scale=2.0,
                 predict_prefix=None, seed=0, **kwargs):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        if num_classes is not None:
            raise UsageError("svae is unconditional: leave num_classes unset.")
        if prior not in PRIORS:
            raise UsageError(f'unknown prior "{prior}"; choose "gmm" or "lds".')
        if likelihood not in LIKELIHOODS:
            raise UsageError(f'unknown likelihood "{likelihood}"; choose "auto", "bernoulli" or "gaussian".')
        if likelihood == "auto":
            likelihood = "bernoulli" if self.num_levels == 2 else "gaussian"
        if likelihood == "bernoulli" and self.num_levels != 2:
            raise UsageError(f"the Bernoulli likelihood models binary data; this data has "
                             f"{self.num_levels or 'continuous'} levels: use likelihood = \"gaussian\".")
        for key, value, low in (("latent_dim", latent_dim, 1), ("num_components", num_components, 1),
                                ("mean_field_iters", mean_field_iters, 0), ("num_data", num_data, 1)):
            if isinstance(value, bool) or int(value) != value or int(value) < low:
                raise UsageError(f"{key} must be an integer >= {low}, got {value}.")
        if not 0 < float(global_step_size) <= 1:
            raise UsageError(f"global_step_size must lie in (0, 1], got {global_step_size}.")
        if not float(prior_concentration) > 0 or not float(prior_kappa) > 0 or not float(init_scale) > 0:
            raise UsageError("prior_concentration, prior_kappa and init_scale must be > 0.")
        if prior == "lds":
            if len(self.data_shape) not in (2, 3) or self.data_shape[0] < 2:
                raise UsageError(f"the LDS prior models sequences (T, W, C) or (T, F) with T >= 2 frames, got "
                                 f"input_shape {self.data_shape}.")
            self.num_frames = self.data_shape[0]
            self.frame_dim = int(np.prod(self.data_shape[1:]))
        else:
            self.num_frames = 1
            self.frame_dim = self.num_dims
        if predict_prefix is not None and not 1 <= int(predict_prefix) < self.num_frames:
            raise UsageError(f"predict_prefix must lie in 1..{self.num_frames - 1}, got {predict_prefix}.")
        self.prior = prior
        self.latent_dim = int(latent_dim)
        self.num_components = int(num_components)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.likelihood = likelihood
        self.mean_field_iters = int(mean_field_iters)
        self.global_step_size = float(global_step_size)
        self.num_data = int(num_data)
        self.prior_concentration = float(prior_concentration)
        self.prior_kappa = float(prior_kappa)
        self.init_scale = float(init_scale)
        self.predict_prefix = None if predict_prefix is None else int(predict_prefix)
        self.seed = int(seed)
        self.out_per_dim = 1 if likelihood == "bernoulli" else 2

        # === Layers ===
        self.encoder_body = _dense_stack(self.hidden_units, activation, "encoder")
        self.encoder_out = layers.Dense(2 * self.latent_dim, name="encoder_out")
        self.decoder_body = _dense_stack(self.hidden_units[::-1], activation, "decoder")
        self.decoder_out = layers.Dense(self.frame_dim * self.out_per_dim, name="decoder_out")

        # === Global parameters (natural coordinates; non-trainable, moved by the SVI step) ===
        prior_np, init_np = self._global_values()
        self._prior_np = prior_np
        names = ("global_a", "global_b", "global_k", "global_nu") + (("global_alpha",) if prior == "gmm" else ())
        self.global_vars = [
            self.add_weight(shape=value.shape, initializer=keras.initializers.Constant(value), trainable=False,
                            name=name, dtype="float32")
            for name, value in zip(names, init_np)
        ]

        # === State and metrics ===
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.global_kl_tracker = keras.metrics.Mean(name="global_kl")
        self.build()

    def _global_values(self):
        """NumPy (prior, initial posterior) natural coordinates of the global parameters."""
        d = self.latent_dim
        nu0 = d + 2.0
        s0 = (nu0 - d - 1.0) * np.eye(d)  # E[Sigma] = I under the prior
        if self.prior == "gmm":
            k = self.num_components
            kappa0 = self.prior_kappa
            prior = (np.broadcast_to(s0, (k, d, d)), np.zeros((k, d, 1)), np.full((k, 1, 1), kappa0),
                     np.full((k,), nu0), np.full((k,), self.prior_concentration))
            # The initial posterior: the prior after one pseudo-observation at a random mean per cluster.
            means = np.random.default_rng(self.seed).normal(0.0, self.init_scale, (k, d, 1))
            init = (prior[0] + means @ means.transpose(0, 2, 1), prior[1] + means, prior[2] + 1.0, prior[3] + 1.0,
                    prior[4] + 1.0)
        else:
            k0 = self.prior_kappa * np.eye(d)
            prior = (s0, np.zeros((d, d)), k0, np.asarray(nu0))
            a_init = (self.init_scale if self.init_scale < 1 else 0.99) * np.eye(d)
            k_init = k0 + np.eye(d)
            init = (s0 + a_init @ k_init @ a_init.T, a_init @ k_init, k_init, np.asarray(nu0 + 1.0))
        cast = lambda arrs: tuple(np.array(a, "float32") for a in arrs)  # noqa: E731
        return cast(prior), cast(init)

    def build(self, input_shape=None):
        if self.built:
            return
        h = keras.KerasTensor((None, self.frame_dim))
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
        config.update({
            "prior": self.prior, "latent_dim": self.latent_dim, "num_components": self.num_components,
            "hidden_units": list(self.hidden_units), "activation": self.activation, "likelihood": self.likelihood,
            "mean_field_iters": self.mean_field_iters, "global_step_size": self.global_step_size,
            "num_data": self.num_data, "prior_concentration": self.prior_concentration,
            "prior_kappa": self.prior_kappa, "init_scale": self.init_scale, "predict_prefix": self.predict_prefix,
            "seed": self.seed,
        })
        return config

    def check_data(self, data):
        super().check_data(data)
        if self.likelihood == "bernoulli" and data.num_levels != 2:
            raise DataError(f"{data.name}: the Bernoulli likelihood needs binary data, found "
                            f"{data.num_levels or 'continuous'} levels.")

    # === Networks ===

    def potentials(self, x):
        """The recognition network's node potentials (h, J) per frame: (B, T, D) each (GMM: T = 1)."""
        f = ops.reshape(ops.cast(x, "float32"), (-1, self.frame_dim))
        for layer in self.encoder_body:
            f = layer(f)
        out = self.encoder_out(f)
        mean, logvar = out[:, : self.latent_dim], ops.clip(out[:, self.latent_dim :], -8.0, 8.0)
        j = ops.exp(-logvar)
        shape = (-1, self.num_frames, self.latent_dim)
        return ops.reshape(mean * j, shape), ops.reshape(j, shape)

    def decode_params(self, z):
        """p(y|x) parameters for latents (B, T, D) (GMM: (B, D)): logits, or (mean, log-scale), data-shaped."""
        f = ops.reshape(z, (-1, self.latent_dim))
        for layer in self.decoder_body:
            f = layer(f)
        out = ops.reshape(self.decoder_out(f), (-1,) + self.data_shape + (self.out_per_dim,))
        if self.likelihood == "bernoulli":
            return out[..., 0]
        return out[..., 0], ops.clip(out[..., 1], -7.0, 5.0)

    def decode(self, z):
        """The decoder's mean data for latents (data-shaped: [0, 1] probabilities for binary data)."""
        params = self.decode_params(z)
        return ops.sigmoid(params) if self.likelihood == "bernoulli" else params[0]

    def log_likelihood(self, x, params):
        """log p(y|x) per example, summed over every dimension (and frame)."""
        x = ops.cast(x, "float32")
        if self.likelihood == "bernoulli":
            ll = x * params - ops.softplus(params)
        else:
            mean, log_scale = params
            ll = -0.5 * (LOG_2PI + 2.0 * log_scale + ops.square((x - mean) * ops.exp(-log_scale)))
        return ops.sum(ops.reshape(ll, (ops.shape(ll)[0], -1)), axis=-1)

    # === Global parameters ===

    def global_params(self):
        """The current natural coordinates (tensors): (a, b, k, nu[, alpha])."""
        return tuple(ops.stop_gradient(ops.convert_to_tensor(v)) for v in self.global_vars)

    def prior_params(self):
        return tuple(ops.convert_to_tensor(a) for a in self._prior_np)

    def expected_params(self, params=None):
        """E_q(theta) of the statistics local inference needs.

        GMM: ((E[Sigma^-1] (K, D, D), E[Sigma^-1 mu] (K, D), E[mu' Sigma^-1 mu] (K,), E[log|Sigma^-1|] (K,)),
        E[log pi] (K,)). LDS: ((J11, J12, J22), E[log|Q^-1|]) of the expected transition potential.
        """
        params = self.global_params() if params is None else params
        e_j, e_jm, e_mjm, e_logdet = mniw_expectations(*params[:4])
        if self.prior == "gmm":
            alpha = params[4]
            log_pi = digamma(alpha) - digamma(ops.sum(alpha))
            return (e_j, e_jm[..., 0], e_mjm[..., 0, 0], e_logdet), log_pi
        return (e_mjm, -_t(e_jm), e_j), e_logdet

    def global_kl(self, params=None):
        """KL(q(theta) || p(theta)), nats (a scalar)."""
        params = self.global_params() if params is None else params
        prior = self.prior_params()
        kl = ops.sum(mniw_kl(params[:4], prior[:4]))
        if self.prior == "gmm":
            kl = kl + dirichlet_kl(params[4], prior[4])
        return kl

    def point_params(self):
        """Posterior means as NumPy: GMM {"weights", "means", "covs"}; LDS {"A", "Q"}."""
        a, b, k, nu = (backend.to_numpy(v).astype("float64") for v in self.global_vars[:4])
        m = b @ np.linalg.inv(k)
        s = a - m @ np.swapaxes(b, -1, -2)
        q = s / (nu[..., None, None] - self.latent_dim - 1.0) if np.ndim(nu) else s / (nu - self.latent_dim - 1.0)
        if self.prior == "gmm":
            alpha = backend.to_numpy(self.global_vars[4]).astype("float64")
            return {"weights": alpha / alpha.sum(), "means": m[..., 0], "covs": q}
        return {"A": m, "Q": q}

    def expected_stats(self, local):
        """The batch's expected sufficient statistics, in the natural coordinates' order."""
        if self.prior == "gmm":
            r, mean, cov = local["r"], local["mean"], local["cov"]
            exx = cov + ops.expand_dims(mean, -1) * ops.expand_dims(mean, -2)
            counts = ops.sum(r, axis=0)
            return (ops.einsum("bk,bij->kij", r, exx), ops.expand_dims(ops.matmul(_t(r), mean), -1),
                    counts[:, None, None], counts, counts)
        mean, cov, cross = local["mean"], local["cov"], local["cross"]
        exx = cov + ops.expand_dims(mean, -1) * ops.expand_dims(mean, -2)  # (B, T, D, D)
        n = ops.cast(ops.shape(mean)[0] * (self.num_frames - 1), "float32")
        return (ops.sum(exx[:, 1:], axis=(0, 1)), ops.sum(cross, axis=(0, 1)), ops.sum(exx[:, :-1], axis=(0, 1)), n)

    def natural_step(self, stats, batch_size, rho=None):
        """The SVI step eta <- (1 - rho) eta + rho (eta_0 + N / |batch| * stats); returns the new values."""
        rho = self.global_step_size if rho is None else float(rho)
        scale = float(self.num_data) / ops.cast(batch_size, "float32")
        return [(1.0 - rho) * v + rho * (p + scale * ops.stop_gradient(s))
                for v, p, s in zip(self.global_params(), self.prior_params(), stats)]

    def update_globals(self, stats, batch_size, rho=None):
        for var, value in zip(self.global_vars, self.natural_step(stats, batch_size, rho)):
            var.assign(value)

    # === Local inference ===

    def local_inference(self, h, j):
        """q(local latents) for potentials (B, T, D): a dict with `mean`, `cov`, `kl` (and GMM `r`, LDS `cross`)."""
        if self.prior == "gmm":
            expected, log_pi = self.expected_params()
            return gmm_mean_field(h[:, 0], j[:, 0], expected, log_pi, self.mean_field_iters)
        pair, e_logdet = self.expected_params()
        d = self.latent_dim
        post = lds_posterior(h, j, pair, (ops.eye(d), ops.zeros((d,))))
        post["kl"] = lds_local_kl(post, h, j, e_logdet, 0.5 * d * LOG_2PI)
        post["pair"] = pair
        return post

    def sample_local(self, local, eps):
        """A reparameterized sample of the latents: (B, D) for the GMM, (B, T, D) for the LDS."""
        if self.prior == "gmm":
            return local["mean"] + _mv(ops.cholesky(local["cov"]), eps[:, 0])
        return lds_sample(local, local["pair"], eps)

    def bound_terms(self, x, eps):
        """Per-example {"elbo", "recon", "kl"} (local bound, nats) and the local posterior, from noise eps (B, T, D)."""
        h, j = self.potentials(x)
        local = self.local_inference(h, j)
        z = self.sample_local(local, eps)
        recon = -self.log_likelihood(x, self.decode_params(z))
        return {"elbo": -(recon + local["kl"]), "recon": recon, "kl": local["kl"]}, local

    # === Training ===

    def call(self, inputs, training=False):
        """The local bound's terms; with `training`, the natural-gradient step on the globals too."""
        x, _ = self.split_inputs(inputs)
        eps = backend.random_normal((ops.shape(x)[0], self.num_frames, self.latent_dim), self.seed_generator)
        terms, local = self.bound_terms(x, eps)
        terms["global_kl"] = ops.zeros_like(terms["kl"]) + self.global_kl()
        if training:
            self.update_globals(self.expected_stats(local), ops.shape(x)[0])
        return terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.recon_tracker.update_state(y_pred["recon"])
        self.kl_tracker.update_state(y_pred["kl"])
        self.global_kl_tracker.update_state(y_pred["global_kl"])
        loss = -ops.mean(y_pred["elbo"]) + ops.stop_gradient(ops.mean(y_pred["global_kl"])) / float(self.num_data)
        return backend.scale_loss_for_replicas(self.plus_layer_losses(loss))

    # === Likelihood ===

    def elbo_terms(self, x, batch_size=256, seed=None):
        """Per-example local bound, reconstruction NLL and local KL (nats), one latent sample each."""
        x = np.asarray(x, "float32")
        eps = np.random.default_rng(seed).standard_normal(
            (len(x), self.num_frames, self.latent_dim)).astype("float32")
        fn = self.compiled_fn("elbo", lambda a, e: self.bound_terms(a, e)[0])
        return self.batched(fn, [x, eps], batch_size)

    def log_prob(self, x, labels=None, batch_size=256, seed=None):
        """The local SVAE bound of each example (nats): a lower bound on log p(x) at E[theta]."""
        return self.elbo_terms(x, batch_size, seed)["elbo"]

    def score(self, x, labels=None, batch_size=256, seed=None, iw_samples=0, progress=None):
        """Evaluation terms per example: elbo, recon, kl (no importance-weighted bound: iw_samples is ignored)."""
        return self.elbo_terms(x, batch_size, seed)

    def evaluate_extra(self, prepared, batch_size=256):
        """GMM: clusters in use; LDS: the bound per frame and the frame-prediction error."""
        point = self.point_params()
        if self.prior == "gmm":
            return {"clusters_used": int(np.sum(point["weights"] > 0.01)),
                    "global_kl": float(backend.to_numpy(self.global_kl()))}
        terms = self.elbo_terms(prepared.x, batch_size, seed=0)
        out = {"elbo_per_frame": float(np.mean(terms["elbo"]) / self.num_frames)}
        out.update(self.frame_prediction_error(prepared.x, batch_size=batch_size))
        return out

    # === Frame prediction (LDS) ===

    @property
    def prefix_frames(self):
        return self.predict_prefix or self.num_frames // 2

    def _predict(self, x, prefix):
        h, j = self.potentials(x)
        pair, _ = self.expected_params()
        d = self.latent_dim
        post = lds_posterior(h[:, :prefix], j[:, :prefix], pair, (ops.eye(d), ops.zeros((d,))))
        a = mniw_standard(*self.global_params()[:3])[0]  # E[A]
        z = post["mean"][:, -1]
        future = []
        for _ in range(self.num_frames - prefix):
            z = _mv(a, z)
            future.append(z)
        rest = ops.stack(future, axis=1)
        # Decode the whole video (the decoder is per frame) and keep the predicted frames.
        z_all = ops.concatenate([post["mean"], rest], axis=1)
        return self.decode(z_all)[:, prefix:]

    def predict_frames(self, x, prefix=None, batch_size=256):
        """The LDS's predictions of frames prefix..T-1 of each sequence, given its first `prefix` frames.

        Infers q(x_{1:prefix}) by the filter from the first `prefix` frames only, rolls the
        posterior mean of the last given frame forward with E[A], and decodes each step's
        latent to the decoder's mean frame. Returns NumPy (n, T - prefix) + frame shape.
        """
        if self.prior != "lds":
            raise UsageError("frame prediction needs the LDS prior (model.prior = \"lds\").")
        prefix = self.prefix_frames if prefix is None else int(prefix)
        if not 1 <= prefix < self.num_frames:
            raise UsageError(f"prefix must lie in 1..{self.num_frames - 1}, got {prefix}.")
        fn = self.compiled_fn(("predict", prefix), lambda a: self._predict(a, prefix))
        return self.batched(fn, [np.asarray(x, "float32")], batch_size)

    def frame_prediction_error(self, x, prefix=None, batch_size=256):
        """{"frame_prediction_mse", "frame_prediction_prefix"}: the mean squared error per pixel between
        `predict_frames` and the true frames prefix..T-1 (a held-out measure of the learned dynamics)."""
        prefix = self.prefix_frames if prefix is None else int(prefix)
        pred = self.predict_frames(x, prefix, batch_size)
        truth = np.asarray(x, "float32")[:, prefix:]
        return {"frame_prediction_mse": float(np.mean((pred - truth) ** 2)), "frame_prediction_prefix": prefix}

    # === Sampling ===

    def noise_spec(self, n):
        out_noise = ("uniform", (n,) + self.data_shape)
        if self.prior == "gmm":
            return [("uniform", (n,)), ("normal", (n, self.latent_dim)), out_noise]
        return [("normal", (n, self.num_frames, self.latent_dim)), out_noise]

    def _point_tensors(self):
        """Posterior-mean global parameters as tensors (for sampling)."""
        params = self.global_params()
        m, s, _ = mniw_standard(*params[:3])
        nu = params[3]
        dof = nu - self.latent_dim - 1.0
        if self.prior == "gmm":
            alpha = params[4]
            return alpha / ops.sum(alpha), m[..., 0], s / dof[:, None, None]
        return m, s / dof

    def latents_from_noise(self, *noise):
        """Latents of the generative model from its noise: GMM (B, D), LDS (B, T, D)."""
        if self.prior == "gmm":
            u, eps = noise
            weights, means, covs = self._point_tensors()
            cdf = ops.cumsum(weights)
            k = ops.sum(ops.cast(cdf[None, :-1] < ops.expand_dims(u, -1), "int32"), axis=-1)
            one_hot = ops.one_hot(k, self.num_components)
            mean = ops.matmul(one_hot, means)
            chol = ops.einsum("bk,kij->bij", one_hot, ops.cholesky(covs))
            return mean + _mv(chol, eps)
        (eps,) = noise
        a, q = self._point_tensors()
        chol = ops.cholesky(q)
        z = eps[:, 0]
        out = [z]
        for t in range(1, self.num_frames):
            z = ops.matmul(z, _t(a)) + ops.matmul(eps[:, t], _t(chol))
            out.append(z)
        return ops.stack(out, axis=1)

    def _sample(self, *noise):
        *latent_noise, u = noise
        params = self.decode_params(self.latents_from_noise(*latent_noise))
        if self.likelihood == "bernoulli":
            return ops.cast(u < ops.sigmoid(params), "float32")
        mean, log_scale = params
        # Gaussian noise from the uniform by the probit (no random ops in exported graphs).
        g = ops.sqrt(2.0) * _erfinv(ops.clip(2.0 * u - 1.0, -0.999999, 0.999999))
        return mean + ops.exp(log_scale) * g

    def sample_from_noise(self, *noise, labels=None):
        """Samples of the generative model from its noise (`noise_spec`)."""
        return self.compiled_fn("sample", self._sample)(*[np.asarray(a, "float32") for a in noise])

    # === Export ===

    def export_endpoints(self):
        """decode(z) -> mean data; sample(noise..., u) -> sample; encode(x) -> the recognition potentials {h, J}."""
        x_spec = ((None,) + self.data_shape, "float32")
        z_shape = (None, self.latent_dim) if self.prior == "gmm" else (None, self.num_frames, self.latent_dim)
        noise_specs = [((None,) + tuple(shape[1:]), "float32") for _, shape in self.noise_spec(1)]

        def encode(x):
            h, j = self.potentials(x)
            return {"h": h, "J": j}

        return {
            "encode": (encode, [x_spec]),
            "decode": (lambda z: self.decode(z), [(z_shape, "float32")]),
            "sample": (lambda *noise: self._sample(*noise), noise_specs),
        }
