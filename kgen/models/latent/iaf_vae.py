"""VAE with an inverse autoregressive flow posterior (Kingma et al. 2016).

The encoder of the VAE emits, besides the mean and log-variance of a diagonal
Gaussian, a context vector h. A draw z_0 = mu + sigma_0 * eps, eps ~ N(0, I),
is then carried through T IAF steps, each an autoregressive network (kgen's
one MADE, `kgen.models.flows.conditioners.MADEConditioner`, with h as an
unmasked input of its first layer) that reads [m_t, s_t] off z_{t-1} and h:

    [m_t, s_t] = MADE_t(z_{t-1}, h)
    sigma_t = sigmoid(s_t + b)
    z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t

(the numerically stable update of Kingma et al., Sec. 4 / Alg. 1; b, `gate_bias`,
starts each gate near 1 so each step starts near the identity). m_{t,i} and
s_{t,i} depend only on z_{t-1,<i}, so the Jacobian of a step is triangular with
diagonal sigma_t, and the order of the dimensions is reversed between steps
so that each dimension is transformed after every other one at some step.
The posterior density of the final z_T is then

    log q(z_T|x) = -sum_i (eps_i^2 / 2 + log(2 pi) / 2 + log sigma_0,i) - sum_t sum_i log sigma_t,i,

and the ELBO E_q[log p(x|z_T) + log p(z_T) - log q(z_T|x)] and the
importance-weighted bound (Burda et al. 2016) use it; the KL term is the
one-sample estimate log q(z_T|x) - log p(z_T) (no closed form with a flow).
Everything else (decoder, likelihoods, prior sampling, bound loops, export) is
`kgen.models.latent.vae.VAE`'s: the prior is still N(0, I), so `sample` and
the `decode` / `sample` endpoints are unchanged. `encode` returns the base
Gaussian's (mean, log-variance); `posterior_sample` gives z_T and log q(z_T|x).

#### References

- Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. &
  Welling, M. Improved Variational Inference with Inverse Autoregressive
  Flow. NeurIPS 2016. arXiv:1606.04934.
- Germain, M., Gregor, K., Murray, I. & Larochelle, H. MADE: Masked
  Autoencoder for Distribution Estimation. ICML 2015.
- Burda, Y., Grosse, R. & Salakhutdinov, R. Importance Weighted
  Autoencoders. ICLR 2016.
"""

import math

import numpy as np
from keras import layers, ops

from kgen import backend
from kgen.errors import UsageError
from kgen.models.base import LOG_2PI
from kgen.models.flows.conditioners import MADEConditioner
from kgen.models.latent.vae import VAE
from kgen.registry import register_model


@register_model("iaf_vae", family="latent", conditional=True,
                tiny=dict(latent_dim=2, hidden_units=(16,), flow_steps=2, flow_hidden_units=(8,), context_dim=4))
class IAFVAE(VAE):
    """VAE whose posterior is a diagonal Gaussian carried through T IAF steps (Kingma et al. 2016).

    `log_prob(x)` is the ELBO (one sample, the flow's log-determinant included), a
    lower bound on log p(x) in nats; `iw_log_prob(x, k)` is the importance-weighted
    bound with the flow posterior as the proposal.

    Args:
        input_shape, num_levels, num_classes, latent_dim, hidden_units,
        architecture, likelihood, beta, activation, train_samples: as `VAE`.
        flow_steps: IAF steps T (0: the diagonal-Gaussian VAE).
        flow_hidden_units: hidden widths of each step's MADE.
        context_dim: size of the context h the encoder emits for the flow.
        gate_bias: b in sigma_t = sigmoid(s_t + b): each step starts near
            the identity (Kingma et al. start s "sufficiently positive").

    Example:

    >>> import kgen
    >>> vae = kgen.build_model("iaf_vae", input_shape=(8, 8, 1), num_levels=17, latent_dim=8,
    ...                        flow_steps=2, flow_hidden_units=(32,), context_dim=16)
    >>> vae.compile(optimizer="adam")
    >>> data = kgen.load_dataset("digits")
    >>> _ = vae.fit(data.x, epochs=1, batch_size=64, verbose=0)
    >>> vae.sample(4, seed=0).shape
    (4, 8, 8, 1)
    """

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=16, hidden_units=(256, 256),
                 architecture="mlp", likelihood="auto", beta=1.0, activation="relu", train_samples=1,
                 flow_steps=2, flow_hidden_units=(256, 256), context_dim=64, gate_bias=2.0, **kwargs):
        super().__init__(input_shape, num_levels, num_classes, latent_dim=latent_dim, hidden_units=hidden_units,
                         architecture=architecture, likelihood=likelihood, beta=beta, activation=activation,
                         train_samples=train_samples, **kwargs)
        # === Config ===
        if int(flow_steps) < 0 or int(context_dim) < 1:
            raise UsageError(f"need flow_steps >= 0 and context_dim >= 1, got {flow_steps} and {context_dim}.")
        self.flow_steps = int(flow_steps)
        self.flow_hidden_units = tuple(int(u) for u in flow_hidden_units)
        self.context_dim = int(context_dim)
        self.gate_bias = float(gate_bias)

        # === Layers ===
        # VAE.__init__ built (and so locked) the model: add the flow's layers to it.
        with self.adding_state():
            self.context_out = layers.Dense(self.context_dim, activation=activation, name="context_out")
            self.context_out.build((None, self._features_dim()))
            self.flow = [MADEConditioner(self.latent_dim, 2, self.flow_hidden_units, activation=activation,
                                         context_dim=self.context_dim, name=f"iaf_{t}")
                         for t in range(self.flow_steps)]

    def _features_dim(self):
        cond = self.num_classes or 0
        if self.architecture == "conv":
            return int(np.prod(self.base_shape)) + cond
        return self.hidden_units[-1] if self.hidden_units else self.num_dims + cond

    def get_config(self):
        config = super().get_config()
        config.update({"flow_steps": self.flow_steps, "flow_hidden_units": list(self.flow_hidden_units),
                       "context_dim": self.context_dim, "gate_bias": self.gate_bias})
        return config

    # === The posterior ===

    def posterior_params(self, x, labels=None):
        """(mean, log-variance, context h) of q(z|x): the base Gaussian and the flow's context."""
        h = self.encoder_features(x, labels)
        stats = self.encoder_out(h)
        return stats[:, : self.latent_dim], stats[:, self.latent_dim :], self.context_out(h)

    def flow_forward(self, z, context):
        """The T IAF steps: z_0 (..., batch, latent) -> (z_T, sum_t sum_i log sigma_t,i (..., batch))."""
        log_det = ops.zeros(ops.shape(z)[:-1])
        for t, made in enumerate(self.flow):
            if t:
                z = ops.flip(z, axis=-1)  # reverse the order between steps
            params = made(z, context)
            m, s = params[..., 0], params[..., 1] + self.gate_bias
            sigma = ops.sigmoid(s)
            z = sigma * z + (1.0 - sigma) * m
            log_det = log_det - ops.sum(ops.softplus(-s), axis=-1)  # log sigmoid(s) = -softplus(-s)
        return z, log_det

    def posterior_sample(self, x, labels, eps, params=None):
        """z_T ~ q(z|x) from base noise eps (k, batch, latent), and log q(z_T|x) (k, batch).

        `params`: the `posterior_params` of x when already computed.
        """
        mean, logvar, h = params if params is not None else self.posterior_params(x, labels)
        eps = ops.convert_to_tensor(eps, "float32")
        z0 = mean[None] + ops.exp(0.5 * logvar)[None] * eps
        z, log_det = self.flow_forward(z0, h[None])
        log_q = -0.5 * ops.sum(ops.square(eps) + LOG_2PI + logvar[None], axis=-1) - log_det
        return z, log_q

    def _flow_terms(self, x, labels, eps, params=None):
        """log p(x|z_T), log p(z_T), log q(z_T|x) for eps (k, batch, latent) -> (k, batch) each."""
        z, log_q = self.posterior_sample(x, labels, eps, params)
        log_prior = -0.5 * ops.sum(ops.square(z) + LOG_2PI, axis=-1)
        return self.k_log_likelihood(x, labels, z), log_prior, log_q

    # === Training ===

    def call(self, inputs, training=False):
        x, labels = self.split_inputs(inputs)
        params = self.posterior_params(x, labels)
        k = self.train_samples
        # One (k * batch, latent) draw, read as k samples per example (as the VAE).
        eps = backend.random_normal(ops.shape(ops.repeat(params[0], k, axis=0)), self.seed_generator)
        eps = ops.reshape(eps, (k, -1, self.latent_dim))
        ll, log_prior, log_q = self._flow_terms(x, labels, eps, params)
        if k > 1:
            iw = ops.logsumexp(ll + log_prior - log_q, axis=0) - math.log(k)
            return {"recon": -ops.mean(ll, axis=0), "kl": ops.mean(log_q - log_prior, axis=0), "iw_bound": iw}
        return {"recon": -ll[0], "kl": (log_q - log_prior)[0]}

    # === Likelihood (the VAE's loops call these) ===

    def _elbo_terms(self, x, labels, eps):
        ll, log_prior, log_q = self._flow_terms(x, labels, eps[None])
        kl = (log_q - log_prior)[0]
        return {"elbo": ll[0] - kl, "recon": -ll[0], "kl": kl}

    def _iw_chunk(self, x, labels, eps):
        ll, log_prior, log_q = self._flow_terms(x, labels, eps)
        return ll + log_prior - log_q

    def code_of(self, x, labels=None):
        """The code of x for latent walks: z_T at the base mean (eps = 0)."""
        mean, _, h = self.posterior_params(x, labels)
        return self.flow_forward(mean, h)[0]

    def reconstruct(self, x, labels=None, batch_size=256):
        """Decoder means at z_T from the base mean (eps = 0): the model's reconstructions."""
        x = np.asarray(x, "float32")
        labs = self._labels_array(x, labels)

        def run(a, l):
            lab = l if self.conditional else None
            mean, _, h = self.posterior_params(a, lab)
            return self.decode(self.flow_forward(mean, h)[0], lab)

        return self.batched(self.compiled_fn("reconstruct", run), [x, labs], batch_size)
