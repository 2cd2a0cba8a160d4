"""Semi-amortized variational autoencoder (Kim et al. 2018), with an optional gated PixelCNN decoder.

An encoder gives the initial local variational parameters lambda_0 = (mu, log sigma^2) of
q(z|x) = N(mu, diag sigma^2); K steps of stochastic variational inference (SVI) then refine
them for this x by gradient ascent on its one-sample ELBO, with momentum and gradient-norm
clipping (the paper's Algorithm 1):

    f(lambda) = -log p(x | mu + sigma * eps_k) + beta * KL(N(mu, sigma^2) || N(0, I))
    g_k = clip(grad_lambda f(lambda_k))              (per example; mu and log sigma^2 each
                                                      clipped to norm `svi_max_grad_norm`)
    v_{k+1} = momentum * v_k - g_k
    lambda_{k+1} = lambda_k + svi_lr * v_{k+1}

and the ELBO at lambda_K (a fresh eps) is the training objective. Three models of the
paper's comparison come from `mode`:

- "vae": the plain VAE (no SVI in training; `svi_steps = 0` gives it in every mode).
- "vae_svi": VAE + SVI. The SVI starts from stop_gradient(lambda_0); the decoder is trained
  on the ELBO at stop_gradient(lambda_K), the encoder by its own ELBO at lambda_0 only (its
  gradient g_0 backpropagated into the encoder alone, as the official code does with
  `train_n2n = 0, train_kl = 0`).
- "sa_vae": semi-amortized. The SVI steps are differentiated end to end: the encoder is
  trained through the K unrolled updates, and the decoder's gradient includes its effect on
  every update (the official code's `acc_param_grads`). kgen unrolls the updates and
  differentiates them with autodiff (second derivatives through the decoder,
  `kgen.backend.adversarial.input_gradient` on every backend), where the paper computes the
  same Hessian-vector products by finite differences.

Steps are per example: the ELBO's gradient for one x does not depend on the batch. The
official code takes steps on the batch-mean loss (lr 1 at batch 50: a step of 1/50 of each
example's gradient) and clips the whole batch's gradient to norm 5; here `svi_lr` is the
per-example step (0.02 is that lr) and the clip is per example (35 ~ 5 sqrt(50) is that
clip when the examples' gradients are of one size), so a step does not depend on the batch.

`kl_warmup_steps` W > 0 anneals beta from 0.1 beta to beta over the first W training steps
(the paper: 0.1 to 1 over 10 epochs), in the SVI objective and in the loss; the step
count is model state, so a resumed run continues the schedule.

Decoders: `decoder = "vae"` is the VAE's (`architecture` MLP or conv); `"pixel_cnn"` is
kgen's gated PixelCNN (`kgen.models.autoregressive.gated_pixel_cnn.GatedPixelCNN`) conditioned
on z: the PixelCNN auto-encoder of van den Oord et al. (2016), z projected by a learned
matrix per gated layer and added to its vertical and horizontal pre-activations. With
that decoder p(x|z) is autoregressive, so it can model x while ignoring z: the posterior
collapses (KL near 0), the known failure SA-VAE was shown to resist; the KL is logged and
scored apart. Sampling from the prior draws z ~ N(0, I) and runs the PixelCNN's cached
sampler; `decode(z)` is the deterministic image with every uniform at 0.5 (each value the
median of its conditional).

Evaluation (`score`, `kgen evaluate`): the ELBO, its reconstruction and KL terms, and the
importance-weighted bound (Burda et al. 2016) all use the refined lambda_K as the proposal,
after `eval_svi_steps` SVI steps at test time (default: `svi_steps`, and 0 for mode "vae",
as the paper's evaluation does). `evaluate_extra` adds the amortized (lambda_0) ELBO and KL,
whose gap to the refined ones is the amortization gap SVI closes.

#### References

- Kim, Y., Wiseman, S., Miller, A. C., Sontag, D. & Rush, A. M. Semi-Amortized
  Variational Autoencoders. ICML 2018. arXiv:1802.02550.
- van den Oord, A., Kalchbrenner, N., Vinyals, O., Espeholt, L., Graves, A. &
  Kavukcuoglu, K. Conditional Image Generation with PixelCNN Decoders. NeurIPS 2016.
- Burda, Y., Grosse, R. & Salakhutdinov, R. Importance Weighted Autoencoders. ICLR 2016.
"""

import math

import keras
import numpy as np
from keras import ops

from kgen import backend
from kgen.backend.adversarial import input_gradient
from kgen.errors import UsageError
from kgen.models.autoregressive.gated_pixel_cnn import GatedPixelCNN
from kgen.models.latent.vae import VAE, _logsumexp0
from kgen.registry import register_model

MODES = ("vae", "vae_svi", "sa_vae")
DECODERS = ("vae", "pixel_cnn")
WARMUP_START = 0.1  # beta's first value, as a fraction of beta (the paper's 0.1)


@register_model("sa_vae", family="latent",
                tiny=dict(latent_dim=2, hidden_units=(16,), svi_steps=2, decoder="pixel_cnn", pixel_filters=4,
                          pixel_layers=2, pixel_first_kernel=3, pixel_output_filters=8))
class SAVAE(VAE):
    """Semi-amortized VAE (Kim et al. 2018): the encoder's posterior refined by K differentiable SVI steps.

    `log_prob(x)` is the ELBO at the SVI-refined posterior (a lower bound on log p(x), nats);
    `iw_log_prob(x, k)` the importance-weighted bound with that posterior as the proposal.

    Args:
        input_shape, num_levels, latent_dim, hidden_units, architecture, likelihood,
        beta, activation: as `VAE` (the encoder; and the decoder when `decoder = "vae"`).
        mode: "sa_vae" (end to end through the SVI steps), "vae_svi" (SVI refines the
            posterior for the decoder's update only) or "vae" (no SVI in training).
        svi_steps: SVI steps K in training (0: the plain VAE).
        svi_lr: step size of each SVI update, per example.
        svi_momentum: momentum of the SVI updates (the paper's 0.5).
        svi_max_grad_norm: each example's gradient with respect to mu, and the one with
            respect to log sigma^2, is clipped to this norm (0: no clipping).
        eval_svi_steps: SVI steps at test time (`score`, `log_prob`, `iw_log_prob`,
            `refine`); None: `svi_steps`, or 0 in mode "vae".
        kl_warmup_steps: training steps over which beta rises from 0.1 beta to beta (0: off).
        decoder: "vae" (the VAE's decoder) or "pixel_cnn" (gated PixelCNN conditioned on z).
        pixel_filters, pixel_layers, pixel_first_kernel, pixel_kernel_size,
        pixel_output_filters: the gated PixelCNN decoder's `filters`, `num_layers`,
            `first_kernel`, `kernel_size` and `output_filters`.

    Example:

    >>> import kgen
    >>> model = kgen.build_model("sa_vae", input_shape=(8, 8, 1), num_levels=17, latent_dim=4,
    ...                          hidden_units=(32,), svi_steps=2, decoder="pixel_cnn",
    ...                          pixel_filters=8, pixel_layers=2)
    >>> model.compile(optimizer="adam")
    >>> data = kgen.load_dataset("digits")
    >>> _ = model.fit(data.x[:64], epochs=1, batch_size=32, verbose=0)
    >>> model.sample(2, seed=0).shape
    (2, 8, 8, 1)
    """

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=16, hidden_units=(256, 256),
                 architecture="mlp", likelihood="auto", beta=1.0, activation="relu", train_samples=1,
                 mode="sa_vae", svi_steps=20, svi_lr=0.02, svi_momentum=0.5, svi_max_grad_norm=35.0,
                 eval_svi_steps=None, kl_warmup_steps=0, decoder="vae", pixel_filters=32, pixel_layers=6,
                 pixel_first_kernel=7, pixel_kernel_size=3, pixel_output_filters=64, **kwargs):
        # === Config (read by make_decoder, which VAE.__init__ calls) ===
        if num_classes is not None:
            raise UsageError("sa_vae is unconditional: leave num_classes unset (use vae for a conditional VAE).")
        if int(train_samples) != 1:
            raise UsageError(f"sa_vae trains on the ELBO at the refined posterior: train_samples must be 1, "
                             f"got {train_samples}.")
        if mode not in MODES:
            raise UsageError(f'unknown mode "{mode}"; choose one of {", ".join(MODES)}.')
        if decoder not in DECODERS:
            raise UsageError(f'unknown decoder "{decoder}"; choose "vae" or "pixel_cnn".')
        for key, value in (("svi_steps", svi_steps), ("kl_warmup_steps", kl_warmup_steps)) + (
                (("eval_svi_steps", eval_svi_steps),) if eval_svi_steps is not None else ()):
            if isinstance(value, bool) or int(value) != value or int(value) < 0:
                raise UsageError(f"{key} must be an integer >= 0, got {value}.")
        if not float(svi_lr) > 0 or not 0 <= float(svi_momentum) < 1 or float(svi_max_grad_norm) < 0:
            raise UsageError(f"need svi_lr > 0, 0 <= svi_momentum < 1 and svi_max_grad_norm >= 0; got "
                             f"{svi_lr}, {svi_momentum}, {svi_max_grad_norm}.")
        self.decoder = decoder
        self.pixel_filters = int(pixel_filters)
        self.pixel_layers = int(pixel_layers)
        self.pixel_first_kernel = int(pixel_first_kernel)
        self.pixel_kernel_size = int(pixel_kernel_size)
        self.pixel_output_filters = int(pixel_output_filters)
        super().__init__(input_shape, num_levels, None, latent_dim=latent_dim, hidden_units=hidden_units,
                         architecture=architecture, likelihood=likelihood, beta=beta, activation=activation,
                         train_samples=1, **kwargs)
        self.mode = mode
        self.svi_steps = int(svi_steps)
        self.svi_lr = float(svi_lr)
        self.svi_momentum = float(svi_momentum)
        self.svi_max_grad_norm = float(svi_max_grad_norm)
        self.eval_svi_steps = None if eval_svi_steps is None else int(eval_svi_steps)
        self.kl_warmup_steps = int(kl_warmup_steps)
        # === State ===
        # VAE.__init__ built (and so locked) the model: add the warm-up counter as IAFVAE adds its flow.
        with self.adding_state():
            self.warmup_step = self.add_weight(shape=(), initializer="zeros", dtype="float32", trainable=False,
                                               name="warmup_step")

    def make_decoder(self):
        if self.decoder == "vae":
            return super().make_decoder()
        if self.likelihood == "gaussian":
            raise UsageError('the pixel_cnn decoder models discrete pixels: use likelihood "bernoulli" or '
                             '"categorical" (or decoder = "vae" for continuous data).')
        if len(self.data_shape) != 3:
            raise UsageError(f"the pixel_cnn decoder models images (H, W, C); got input_shape {self.data_shape}.")
        self.pixel_decoder = GatedPixelCNN(
            self.data_shape, self.num_levels, condition_dim=self.latent_dim, filters=self.pixel_filters,
            num_layers=self.pixel_layers, first_kernel=self.pixel_first_kernel, kernel_size=self.pixel_kernel_size,
            output_filters=self.pixel_output_filters, likelihood=self.likelihood, name="pixel_decoder")

    def build_decoder(self):
        if self.decoder == "vae":
            super().build_decoder()
        # The gated PixelCNN builds itself.

    def get_config(self):
        config = super().get_config()
        config.update({
            "mode": self.mode, "svi_steps": self.svi_steps, "svi_lr": self.svi_lr,
            "svi_momentum": self.svi_momentum, "svi_max_grad_norm": self.svi_max_grad_norm,
            "eval_svi_steps": self.eval_svi_steps, "kl_warmup_steps": self.kl_warmup_steps,
            "decoder": self.decoder, "pixel_filters": self.pixel_filters, "pixel_layers": self.pixel_layers,
            "pixel_first_kernel": self.pixel_first_kernel, "pixel_kernel_size": self.pixel_kernel_size,
            "pixel_output_filters": self.pixel_output_filters,
        })
        return config

    # === Decoder ===

    def log_px(self, x, z):
        """log p(x|z) per example (nats): x (batch,) + input_shape, z (batch, latent)."""
        if self.decoder == "vae":
            return self.log_likelihood(x, self.decode_params(z))
        net = self.pixel_decoder
        return net.log_likelihood(x, net.call((x, z)))

    def k_log_likelihood(self, x, labels, z):
        """log p(x|z) for k latents per example: z (k, batch, latent) -> (k, batch)."""
        k, b = ops.shape(z)[0], ops.shape(x)[0]
        z_flat = ops.reshape(z, (-1, self.latent_dim))
        x_rep = ops.reshape(ops.broadcast_to(x[None], (k,) + tuple(ops.shape(x))), (-1,) + self.data_shape)
        return ops.reshape(self.log_px(x_rep, z_flat), (k, b))

    def decode_params(self, z, labels=None):
        if self.decoder == "pixel_cnn":
            raise UsageError("the pixel_cnn decoder's parameters depend on x (autoregressive): use log_px(x, z).")
        return super().decode_params(z, labels)

    def decode(self, z, labels=None):
        """The decoder's image for z: its mean (VAE decoder), or every value the median of its
        conditional in raster order (PixelCNN decoder: the sampler with every uniform at 0.5)."""
        if self.decoder == "vae":
            return super().decode(z, labels)
        u = ops.full((ops.shape(z)[0],) + self.data_shape, 0.5, "float32")
        return self.pixel_decoder._sample_cached(u, z, None, portable=True)

    def _sample(self, z, u, labels=None, portable=False):
        if self.decoder == "vae":
            return super()._sample(z, u, labels)
        return self.pixel_decoder._sample_cached(u, z, None, portable=portable)

    def sample_from_noise(self, z, u, labels=None):
        """Samples from latent noise z ~ N(0, I) and pixel uniforms u ~ U[0, 1)."""
        if self.decoder == "vae":
            return super().sample_from_noise(z, u, labels)
        # XLA on TensorFlow makes the cached sampler's cache writes in place (as GatedPixelCNN compiles it).
        fn = self.compiled_fn("sample", lambda a, b: self._sample(a, b), jit_compile=True)
        return fn(np.asarray(z, "float32"), np.asarray(u, "float32"))

    # === Stochastic variational inference ===

    def negative_elbo(self, x, params, eps, beta=1.0):
        """f(lambda) per example: -log p(x | mu + sigma eps) + beta KL, params = [mu, log sigma^2] (batch, 2 latent)."""
        params = ops.convert_to_tensor(params, "float32")
        mean, logvar = params[:, : self.latent_dim], params[:, self.latent_dim :]
        z = mean + ops.exp(0.5 * logvar) * ops.convert_to_tensor(eps, "float32")
        return -self.log_px(x, z) + beta * self.kl_divergence(mean, logvar)

    def _clip(self, g):
        c = self.svi_max_grad_norm
        if c <= 0:
            return g

        def clip(a):
            norm = ops.sqrt(ops.sum(ops.square(a), axis=-1, keepdims=True) + 1e-12)
            return a * ops.minimum(1.0, c / norm)

        d = self.latent_dim
        return ops.concatenate([clip(g[:, :d]), clip(g[:, d:])], axis=-1)

    def svi(self, x, mean, logvar, eps, steps, beta=1.0, differentiable=True):
        """K SVI steps from (mean, logvar): returns (mean_K, logvar_K, g_0).

        Args:
            x: the examples (batch,) + input_shape.
            mean, logvar: lambda_0, each (batch, latent).
            eps: the steps' noise (at least `steps`, batch, latent).
            steps: K (a Python int).
            beta: the KL weight of the objective.
            differentiable: keep the updates differentiable (SA-VAE: second derivatives
                flow through them); False stops the gradient at every update.

        g_0 is the unclipped gradient of f at lambda_0 (None when K = 0).
        """
        params = ops.concatenate([mean, logvar], axis=-1)
        eps = ops.convert_to_tensor(eps, "float32")
        if not differentiable:
            params = ops.stop_gradient(params)
        velocity = ops.zeros_like(params)
        first = None
        for k in range(int(steps)):
            noise = eps[k]
            g = input_gradient(lambda p, noise=noise: self.negative_elbo(x, p, noise, beta), params)
            if not differentiable:
                g = ops.stop_gradient(g)
            if first is None:
                first = g
            velocity = self.svi_momentum * velocity - self._clip(g)
            params = params + self.svi_lr * velocity
        d = self.latent_dim
        return params[:, :d], params[:, d:], first

    @property
    def test_svi_steps(self):
        """The SVI steps of evaluation (`eval_svi_steps`, default `svi_steps`; 0 in mode "vae")."""
        if self.eval_svi_steps is not None:
            return self.eval_svi_steps
        return 0 if self.mode == "vae" else self.svi_steps

    def _svi_noise(self, rng, n, steps):
        """The SVI steps' noise (n, steps, latent); K = 0 draws nothing (the VAE's draws follow unchanged)."""
        if steps == 0:
            return np.zeros((n, 1, self.latent_dim), "float32")
        return rng.standard_normal((n, steps, self.latent_dim)).astype("float32")

    def _refined(self, x, svi_eps, steps):
        """lambda_K at test time: svi_eps (batch, steps, latent), beta = 1, no gradients kept."""
        mean, logvar = self.encode(x)
        mean, logvar, _ = self.svi(x, mean, logvar, ops.moveaxis(svi_eps, 1, 0), steps, differentiable=False)
        return ops.stop_gradient(mean), ops.stop_gradient(logvar)

    def refine(self, x, steps=None, seed=None, batch_size=256):
        """The posterior parameters after `steps` SVI steps (default `test_svi_steps`): NumPy {"mean", "logvar"}."""
        steps = self.test_svi_steps if steps is None else int(steps)
        x = np.asarray(x, "float32")
        svi_eps = self._svi_noise(np.random.default_rng(seed), len(x), steps)

        def run(a, e):
            mean, logvar = self._refined(a, e, steps)
            return {"mean": mean, "logvar": logvar}

        return self.batched(self.compiled_fn(("refine", steps), run), [x, svi_eps], batch_size)

    # === Training ===

    def _beta_now(self, training):
        """beta, annealed from 0.1 beta over `kl_warmup_steps` training steps (each training call counts one)."""
        if not self.kl_warmup_steps:
            return self.beta
        t = ops.convert_to_tensor(self.warmup_step)
        if training:
            self.warmup_step.assign(t + 1.0)
        frac = ops.minimum(1.0, WARMUP_START + (1.0 - WARMUP_START) * t / float(self.kl_warmup_steps))
        return self.beta * frac

    def call(self, inputs, training=False):
        x, _ = self.split_inputs(inputs)
        mean, logvar = self.encode(x)
        eps = backend.random_normal(ops.shape(mean), self.seed_generator)  # drawn first: K = 0 is the VAE's draw
        steps = self.train_svi_steps
        svi_eps = None
        if steps:
            svi_eps = backend.random_normal(ops.shape(ops.repeat(mean, steps, axis=0)), self.seed_generator)
            svi_eps = ops.reshape(svi_eps, (steps, -1, self.latent_dim))
        return self.objective(x, mean, logvar, eps, svi_eps, self._beta_now(training))

    @property
    def train_svi_steps(self):
        """The SVI steps of a training step: `svi_steps`, 0 in mode "vae"."""
        return 0 if self.mode == "vae" else self.svi_steps

    def objective(self, x, mean, logvar, eps, svi_eps=None, beta=None):
        """The training objective per example from lambda_0 = (mean, logvar) and given noise.

        Args:
            x: the examples.
            mean, logvar: the encoder's lambda_0 (batch, latent).
            eps: the noise of the final ELBO's sample (batch, latent).
            svi_eps: the SVI steps' noise (`train_svi_steps`, batch, latent); None when K = 0.
            beta: the KL weight (default `beta`).

        Returns:
            {"recon", "kl", "objective"}: the reconstruction NLL and KL at lambda_K, and
            recon + beta KL, whose gradient is the mode's (end to end, or stopped at lambda_K
            with the encoder trained on its own ELBO).
        """
        beta = self.beta if beta is None else beta
        eps = ops.convert_to_tensor(eps, "float32")
        steps = self.train_svi_steps
        if steps == 0:
            recon = -self.log_px(x, mean + ops.exp(0.5 * logvar) * eps)
            kl = self.kl_divergence(mean, logvar)
            return {"recon": recon, "kl": kl, "objective": recon + beta * kl}
        end_to_end = self.mode == "sa_vae"
        mean_k, logvar_k, g0 = self.svi(x, mean, logvar, svi_eps, steps, beta, differentiable=end_to_end)
        if not end_to_end:
            mean_k, logvar_k = ops.stop_gradient(mean_k), ops.stop_gradient(logvar_k)
        recon = -self.log_px(x, mean_k + ops.exp(0.5 * logvar_k) * eps)
        kl = self.kl_divergence(mean_k, logvar_k)
        objective = recon + beta * kl
        if not end_to_end:
            # VAE + SVI: the encoder's gradient is its own ELBO's, g_0 d lambda_0 / d phi, and reaches
            # nothing else (g_0 is constant here); the term's value is 0.
            surrogate = ops.sum(ops.stop_gradient(g0) * ops.concatenate([mean, logvar], axis=-1), axis=-1)
            objective = objective + surrogate - ops.stop_gradient(surrogate)
        return {"recon": recon, "kl": kl, "objective": objective}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.recon_tracker.update_state(y_pred["recon"])
        self.kl_tracker.update_state(y_pred["kl"])
        loss = ops.mean(y_pred["objective"])
        return backend.scale_loss_for_replicas(self.plus_layer_losses(loss))  # tf.distribute: a replica's share

    # === Likelihood ===

    def _elbo_at(self, x, mean, logvar, eps):
        ll = self.log_px(x, mean + ops.exp(0.5 * logvar) * eps)
        kl = self.kl_divergence(mean, logvar)
        return {"elbo": ll - kl, "recon": -ll, "kl": kl}

    def elbo_terms(self, x, labels=None, batch_size=256, seed=None, steps=None):
        """Per-example ELBO, reconstruction NLL and KL (nats) at the posterior after `steps` SVI steps
        (default `test_svi_steps`; 0: the encoder's amortized posterior), one z sample each."""
        steps = self.test_svi_steps if steps is None else int(steps)
        x = np.asarray(x, "float32")
        rng = np.random.default_rng(seed)
        eps = rng.standard_normal((len(x), self.latent_dim)).astype("float32")
        svi_eps = self._svi_noise(rng, len(x), steps)

        def run(a, e, s):
            return self._elbo_at(a, *self._refined(a, s, steps), e)

        return self.batched(self.compiled_fn(("elbo", steps), run), [x, eps, svi_eps], batch_size)

    def iw_log_prob(self, x, k=5000, labels=None, batch_size=None, seed=None, progress=None, steps=None):
        """Importance-weighted bound with the SVI-refined posterior q(z; lambda_K) as the proposal, nats.

        Args:
            x: examples.
            k: importance samples (Burda et al. use 5000; Kim et al. 500).
            labels: unused (the model is unconditional).
            batch_size: examples per step (default keeps about 2**16 decoder evaluations a step,
                2**12 for the PixelCNN decoder).
            seed: integer seed for the SVI noise and the samples.
            progress: optional callable(done_examples) for a progress bar.
            steps: SVI steps before weighting (default `test_svi_steps`).
        """
        steps = self.test_svi_steps if steps is None else int(steps)
        x = np.asarray(x, "float32")
        chunk = int(min(k, 512 if self.decoder == "vae" else 128))
        batch_size = batch_size or max(1, (65536 if self.decoder == "vae" else 4096) // chunk)
        rng = np.random.default_rng(seed)
        refine = self.compiled_fn(("refine_params", steps), lambda a, s: self._refined(a, s, steps))
        weigh = self.compiled_fn("iw_at", lambda a, m, v, e: self._iw_at(a, m, v, e))
        out = np.empty(len(x), "float64")
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            mean, logvar = refine(xb, self._svi_noise(rng, len(xb), steps))
            acc = np.full(len(xb), -np.inf)
            done = 0
            while done < k:
                kk = min(chunk, k - done)
                eps = rng.standard_normal((kk, len(xb), self.latent_dim)).astype("float32")
                if kk != chunk:  # keep one compiled shape: pad, then drop
                    eps = np.concatenate([eps, np.zeros((chunk - kk, len(xb), self.latent_dim), "float32")])
                logw = np.asarray(backend.to_numpy(weigh(xb, mean, logvar, eps)), "float64")[:kk]
                acc = np.logaddexp(acc, _logsumexp0(logw))
                done += kk
            out[i : i + len(xb)] = acc - math.log(k)
            if progress:
                progress(i + len(xb))
        return out

    def _iw_at(self, x, mean, logvar, eps):
        ll, log_prior, log_q = self._log_weight_terms(x, None, mean, logvar, eps)
        return ll + log_prior - log_q

    def evaluate_extra(self, prepared, batch_size=256):
        """The amortized posterior's (lambda_0, no SVI) ELBO and KL beside the refined ones of `score`."""
        terms = self.elbo_terms(prepared.x, batch_size=batch_size, seed=0, steps=0)
        return {"amortized_elbo": float(np.mean(terms["elbo"])), "amortized_kl": float(np.mean(terms["kl"])),
                "eval_svi_steps": int(self.test_svi_steps)}

    # === Export ===

    def export_endpoints(self):
        """encode(x) -> {mean, logvar} (the encoder's, before SVI); decode(z) -> image; sample(z, u) -> sample."""
        ends = super().export_endpoints()
        if self.decoder == "vae":
            return ends
        z_spec = ((None, self.latent_dim), "float32")
        x_spec = ((None,) + self.data_shape, "float32")
        ends["decode"] = (lambda z: self.decode(z), [z_spec])
        ends["sample"] = (lambda z, u: self._sample(z, u, portable=True), [z_spec, x_spec])
        return ends
