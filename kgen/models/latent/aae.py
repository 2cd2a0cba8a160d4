"""Adversarial autoencoder (Makhzani et al. 2016): an autoencoder whose codes are matched to a prior by a GAN.

An encoder q(z|x) (deterministic, or Gaussian through the reparameterisation)
and a decoder x_hat = G(z) are trained to reconstruct; a discriminator D on the
latent space tells codes drawn from the prior p(z) from codes of data, and the
encoder, as the GAN's generator, learns to fool it, so that the aggregated
posterior q(z) = E_x[q(z|x)] matches p(z) and decoding a prior draw gives a
sample. Each training step has the paper's phases (Sec. 2):

1. reconstruction: the encoder and the decoder minimise the reconstruction
   loss (mean binary cross-entropy per dimension for images in [0, 1], half
   the mean squared error for points);
2. regularisation: the discriminator minimises
   E_p[softplus(-D(z))] + E_x[softplus(D(E(x)))], then the encoder minimises
   `adversary_weight` * E_x[softplus(-D(E(x)))] (the non-saturating loss);
3. (`num_labeled` > 0, categorical prior) semi-supervised: the encoder's
   cluster head minimises the cross-entropy of a batch of the fixed labelled
   examples (Sec. 5).

Priors (`prior`):

- "gaussian": z ~ N(0, I).
- "mixture": a mixture of `num_modes` Gaussians with means equally spaced on
  a circle of radius `mode_radius` in the first two latent dimensions and
  standard deviation `mode_std` (the paper's 10 modes in 2-D, Fig. 4). With
  `num_classes` (a conditional model) the label is an input of the
  discriminator, both on the prior's side (a draw from the label's mode) and
  on the data's (the example's label): the codes of each class are pushed
  into their own mode (Sec. 2.3, Fig. 4b), and `sample(labels=...)` decodes
  draws of the label's mode.
- "categorical": the code is a softmax y over `num_clusters` classes and a
  style z; two adversaries match y to a uniform one-hot categorical and z to
  N(0, I) (unsupervised clustering, Sec. 6). The decoder sees [y, z].

`kgen evaluate` reports the clustering error where the split has labels
(categorical prior: the cluster is argmax y; mixture prior: the nearest
mode), each cluster assigned its majority label (`clustering_error`; in the JSON of
`kgen evaluate --json`).
The networks are the GANs' MLPs (`kgen.models.adversarial.networks`); the
two players' optimizers are the GANs' (`AdversarialOptimizer`, one step
for every backend through `kgen.backend.adversarial`): the generator's
optimizer updates the autoencoder in the reconstruction phase and the
encoder in the regularisation phase. With `adversary_weight = 0` the step is
an autoencoder's (the discriminator still trains, on its own weights).

#### References

- Makhzani, A., Shlens, J., Jaitly, N., Goodfellow, I. & Frey, B.
  Adversarial Autoencoders. ICLR 2016 workshop. arXiv:1511.05644.
"""

import keras
import numpy as np
from keras import ops

from kgen.backend import adversarial
from kgen.errors import DataError, UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel
from kgen.models.adversarial.semi_supervised_gan import select_labeled
from kgen.registry import register_model

PRIORS = ("gaussian", "mixture", "categorical")
ENCODERS = ("deterministic", "gaussian")
RECONSTRUCTIONS = ("auto", "bce", "mse")


def mixture_means(num_modes, latent_dim, radius):
    """(num_modes, latent_dim) means equally spaced on a circle of `radius` in the first two dimensions."""
    angles = 2.0 * np.pi * np.arange(num_modes) / num_modes
    means = np.zeros((num_modes, latent_dim), "float32")
    means[:, 0], means[:, 1] = radius * np.cos(angles), radius * np.sin(angles)
    return means


def clustering_error(labels, clusters):
    """Error of a clustering as a classifier: each cluster is given the majority label of its members.

    Makhzani et al. (2016, Sec. 6) label each cluster with the label of its most confident
    validation example; the majority label is the usual (and less noisy) choice.

    Returns:
        `{"errors", "examples", "error_rate", "clusters_used"}` (clusters with at least one member).
    """
    labels, clusters = np.asarray(labels).reshape(-1), np.asarray(clusters).reshape(-1)
    errors = 0
    used = np.unique(clusters)
    for c in used:
        members = labels[clusters == c]
        errors += int(len(members) - np.bincount(members).max())
    return {"errors": errors, "examples": int(len(labels)), "error_rate": errors / max(len(labels), 1),
            "clusters_used": int(len(used))}


@register_model("aae", family="latent", conditional=True,
                tiny=dict(latent_dim=2, encoder_units=(16,), decoder_units=(16,), discriminator_units=(16,)))
class AAE(AdversarialModel):
    """Adversarial autoencoder (Makhzani et al. 2016): a discriminator matches the codes to a prior.

    Logs `recon` (the reconstruction loss), `d_loss`, `g_loss` (the encoder's
    adversarial loss) and the discriminator's mean probability of "prior" on
    prior draws (`d_real`) and on codes of data (`d_fake`); with labelled
    examples also `supervised` (their cross-entropy).

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: labels fed to the discriminator (mixture prior only: the
            codes of class c go to mode c), or None.
        latent_dim: size of z (the style code with the categorical prior).
        encoder_units: the encoder's hidden LeakyReLU(0.2) layers.
        decoder_units: the decoder's hidden ReLU layers.
        discriminator_units: each discriminator's hidden LeakyReLU(0.2) layers.
        prior: "gaussian", "mixture" or "categorical".
        num_modes: the mixture's modes (with `num_classes`: equal to it).
        mode_radius: radius of the circle of the mixture's means.
        mode_std: standard deviation of each mixture component.
        num_clusters: classes of the categorical code.
        encoder: "deterministic" or "gaussian" (z = mu + sigma * eps).
        adversary_weight: weight of the encoder's adversarial loss (0: an
            autoencoder).
        reconstruction: "bce", "mse" or "auto" (bce for images, mse for points).
        num_labeled: labelled examples of the semi-supervised variant
            (categorical prior; 0: unsupervised).
        label_seed: the seed that chooses the labelled examples.
        labeled_batch_size: labelled examples in each step's supervised phase.
        output_activation: the decoder's last activation ("auto": sigmoid
            for images, linear for points).

    Example:

    >>> import kgen
    >>> aae = kgen.build_model("aae", input_shape=(8, 8, 1), latent_dim=2, prior="mixture",
    ...                        encoder_units=(64,), decoder_units=(64,), discriminator_units=(64,))
    >>> aae.compile()
    >>> x = kgen.load_dataset("digits").x
    >>> _ = aae.fit(x, epochs=1, batch_size=64, verbose=0)
    >>> aae.encode(x[:4]).shape, aae.sample(4, seed=0).shape
    ((4, 2), (4, 8, 8, 1))
    """

    generator_loss_takes_real = True

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=8, encoder_units=(1000, 1000),
                 decoder_units=(1000, 1000), discriminator_units=(1000, 1000), prior="gaussian", num_modes=10,
                 mode_radius=4.0, mode_std=0.5, num_clusters=16, encoder="deterministic", adversary_weight=1.0,
                 reconstruction="auto", num_labeled=0, label_seed=0, labeled_batch_size=100,
                 output_activation="auto", **kwargs):
        # === Config ===
        if prior not in PRIORS:
            raise UsageError(f'unknown prior "{prior}"; choose one of {", ".join(PRIORS)}.')
        if encoder not in ENCODERS:
            raise UsageError(f'unknown encoder "{encoder}"; choose one of {", ".join(ENCODERS)}.')
        if reconstruction not in RECONSTRUCTIONS:
            raise UsageError(f'unknown reconstruction "{reconstruction}"; choose one of {", ".join(RECONSTRUCTIONS)}.')
        if num_classes is not None and prior != "mixture":
            raise UsageError("only the mixture prior takes labels (num_classes: class c's codes go to mode c); "
                             "drop num_classes, or use prior = \"mixture\".")
        if num_classes is not None:
            num_modes = num_classes
        if prior == "mixture" and (int(latent_dim) < 2 or int(num_modes) < 2):
            raise UsageError(f"the mixture prior needs latent_dim >= 2 and num_modes >= 2, got {latent_dim} "
                             f"and {num_modes}.")
        if prior == "categorical" and int(num_clusters) < 2:
            raise UsageError(f"the categorical prior needs num_clusters >= 2, got {num_clusters}.")
        if int(num_labeled) and prior != "categorical":
            raise UsageError("labelled examples (num_labeled > 0) need the categorical prior (the cluster head "
                             "is the classifier).")
        if int(num_labeled) < 0 or float(adversary_weight) < 0:
            raise UsageError(f"need num_labeled >= 0 and adversary_weight >= 0, got {num_labeled} and "
                             f"{adversary_weight}.")
        self.metric_names = ("d_loss", "g_loss", "recon", "d_real", "d_fake") + (
            ("supervised",) if int(num_labeled) else ())
        super().__init__(input_shape, num_levels, num_classes, latent_dim, output_activation, **kwargs)
        if reconstruction == "auto":
            reconstruction = "bce" if self.output_activation == "sigmoid" else "mse"
        if reconstruction == "bce" and self.output_activation != "sigmoid":
            raise UsageError("the bce reconstruction needs a sigmoid output (images in [0, 1]); "
                             "use reconstruction = \"mse\".")
        self.encoder_units = tuple(int(u) for u in encoder_units)
        self.decoder_units = tuple(int(u) for u in decoder_units)
        self.discriminator_units = tuple(int(u) for u in discriminator_units)
        self.prior = prior
        self.num_modes = int(num_modes)
        self.mode_radius = float(mode_radius)
        self.mode_std = float(mode_std)
        self.num_clusters = int(num_clusters)
        self.encoder_kind = encoder
        self.adversary_weight = float(adversary_weight)
        self.reconstruction = reconstruction
        self.num_labeled = int(num_labeled)
        self.label_seed = int(label_seed)
        self.labeled_batch_size = int(labeled_batch_size)
        self.clusters = self.num_clusters if prior == "categorical" else 0
        self.means = mixture_means(self.num_modes, self.latent_dim, self.mode_radius)

        # === Networks: (encoder, decoder) against the discriminator(s) ===
        outputs = self.latent_dim * (2 if encoder == "gaussian" else 1) + self.clusters
        self.encoder = networks.mlp_discriminator(self.num_dims, self.encoder_units, outputs=outputs,
                                                  name="encoder")
        self.generator = networks.mlp_generator(self.latent_dim + self.clusters, self.decoder_units,
                                                self.data_shape, self.output_activation, name="decoder")
        self.discriminator = networks.mlp_discriminator(self.latent_dim + (self.num_classes or 0),
                                                        self.discriminator_units)
        self.cluster_discriminator = None
        if self.clusters:
            self.cluster_discriminator = networks.mlp_discriminator(self.clusters, self.discriminator_units,
                                                                    name="cluster_discriminator")
        if self.num_labeled:
            # The fixed labelled subset, saved with the model (chosen by `select_labeled`).
            self.labeled_x = self.add_weight(shape=(self.num_labeled,) + self.data_shape, initializer="zeros",
                                             trainable=False, name="labeled_x")
            self.labeled_y = self.add_weight(shape=(self.num_labeled,), initializer=keras.initializers.Constant(-1),
                                             dtype="int32", trainable=False, name="labeled_y")
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder_units": list(self.encoder_units),
            "decoder_units": list(self.decoder_units),
            "discriminator_units": list(self.discriminator_units),
            "prior": self.prior,
            "num_modes": self.num_modes,
            "mode_radius": self.mode_radius,
            "mode_std": self.mode_std,
            "num_clusters": self.num_clusters,
            "encoder": self.encoder_kind,
            "adversary_weight": self.adversary_weight,
            "reconstruction": self.reconstruction,
            "num_labeled": self.num_labeled,
            "label_seed": self.label_seed,
            "labeled_batch_size": self.labeled_batch_size,
        })
        return config

    # === Players ===

    def discriminator_variables(self):
        extra = self.cluster_discriminator.trainable_variables if self.clusters else []
        return list(self.discriminator.trainable_variables) + list(extra)

    def generator_variables(self):
        """The autoencoder: the encoder's and the decoder's variables (one player, one optimizer)."""
        return list(self.encoder.trainable_variables) + list(self.generator.trainable_variables)

    def _flat(self, x):
        return ops.reshape(ops.cast(x, "float32"), (ops.shape(x)[0], self.num_dims))

    def encode_parts(self, x, training=False):
        """(z, cluster logits or None): z is E(x), or mu + sigma * eps for the gaussian encoder in training."""
        out = self.encoder(self._flat(x), training=training)
        logits = out[:, self.latent_dim * (2 if self.encoder_kind == "gaussian" else 1):] if self.clusters else None
        z = out[:, :self.latent_dim]
        if self.encoder_kind == "gaussian" and training:
            log_scale = ops.clip(out[:, self.latent_dim:2 * self.latent_dim], -7.0, 3.0)
            z = z + ops.exp(log_scale) * keras.random.normal(ops.shape(z), seed=self.seed_generator)
        return z, logits

    def decoder_input(self, z, cluster_probs=None):
        return z if cluster_probs is None else ops.concatenate([cluster_probs, z], axis=-1)

    def generate(self, latent, labels=None, training=False):
        """The decoder on a code: z, or [y, z] (one-hot or softmax y first) with the categorical prior."""
        return self.generator(ops.cast(latent, "float32"), training=training)

    def reconstruction_loss(self, x, training=True):
        z, logits = self.encode_parts(x, training)
        y = None if logits is None else ops.softmax(logits, axis=-1)
        x_hat = self.generate(self.decoder_input(z, y), training=training)
        x = ops.cast(x, "float32")
        if self.reconstruction == "bce":
            p = ops.clip(x_hat, 1e-7, 1.0 - 1e-7)
            per_dim = -(x * ops.log(p) + (1.0 - x) * ops.log(1.0 - p))
        else:
            per_dim = 0.5 * ops.square(x - x_hat)
        return ops.mean(per_dim)

    # === The prior ===

    def prior_from_noise(self, eps, u, labels=None):
        """Prior draws from normal noise eps (n, latent_dim) and uniforms u: (n,) for the mixture's mode,
        (n, num_clusters) for the categorical's class (Gumbel-max on a uniform prior: the largest u)."""
        eps, u = ops.convert_to_tensor(eps, "float32"), ops.convert_to_tensor(u, "float32")
        if self.prior == "gaussian":
            return eps
        if self.prior == "mixture":
            if self.conditional and labels is not None:
                mode = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"), self.num_modes)
            else:
                mode = ops.one_hot(ops.cast(ops.minimum(ops.floor(u * self.num_modes), self.num_modes - 1), "int32"),
                                   self.num_modes)
            return ops.matmul(mode, ops.convert_to_tensor(self.means)) + self.mode_std * eps
        y = ops.cast(u >= ops.max(u, axis=-1, keepdims=True), "float32")
        return self.decoder_input(eps, y)

    def draw_latent(self, batch, labels=None):
        """Prior draws for a training step (decoder inputs: [y, z] with the categorical prior)."""
        eps = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        u_shape = (batch, self.clusters) if self.clusters else (batch,)
        u = keras.random.uniform(u_shape, seed=self.seed_generator)
        return self.prior_from_noise(eps, u, labels)

    # === Adversaries ===

    def _discriminate(self, z, labels, training):
        if self.conditional:
            z = ops.concatenate([z, self.one_hot(labels)], axis=-1)
        return self.discriminator(z, training=training)[:, 0]

    def _adversary_logits(self, code, labels, training):
        """Logits of "prior" for decoder inputs `code`: [style] or [style, cluster] adversaries."""
        if not self.clusters:
            return [self._discriminate(code, labels, training)]
        y, z = code[:, :self.clusters], code[:, self.clusters:]
        return [self._discriminate(z, labels, training), self.cluster_discriminator(y, training=training)[:, 0]]

    def data_codes(self, x, training=True):
        """Codes of data as the adversaries see them: z, or [softmax y, z]."""
        z, logits = self.encode_parts(x, training)
        return self.decoder_input(z, None if logits is None else ops.softmax(logits, axis=-1))

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        """The adversaries tell prior draws (`latent`) from codes of data (`fake`)."""
        prior_logits = self._adversary_logits(latent, labels, training)
        code_logits = self._adversary_logits(fake, labels, training)
        loss = sum(ops.mean(ops.softplus(-p)) + ops.mean(ops.softplus(c)) for p, c in zip(prior_logits, code_logits))
        return loss, {"d_real": ops.mean(ops.sigmoid(prior_logits[0])), "d_fake": ops.mean(ops.sigmoid(code_logits[0]))}

    def generator_loss(self, latent, labels=None, training=True, real=None):
        """The encoder's non-saturating loss: codes of `real` should look like prior draws."""
        logits = self._adversary_logits(self.data_codes(real, training), labels, training)
        return sum(ops.mean(ops.softplus(-c)) for c in logits), {}

    def supervised_loss(self, training=True):
        """Cross-entropy of the cluster head on a random batch of the labelled examples."""
        n = min(self.labeled_batch_size, self.num_labeled)
        pick = ops.argsort(keras.random.uniform((self.num_labeled,), seed=self.seed_generator))[:n]
        x, y = ops.take(self.labeled_x, pick, axis=0), ops.take(self.labeled_y, pick, axis=0)
        _, logits = self.encode_parts(x, training)
        return -ops.mean(ops.sum(ops.log_softmax(logits, axis=-1) * ops.one_hot(y, self.clusters), axis=-1))

    # === Training: the paper's phases in one step ===

    def adversarial_step(self, data):
        real, labels = self.unpack_batch(data)
        batch = ops.shape(real)[0]
        opt = self.optimizer
        ae_vars, d_vars = self.generator_variables(), self.discriminator_variables()
        logs = {}

        # 1. Reconstruction: the encoder and the decoder.
        recon, grads = adversarial.value_and_grad(lambda: self.reconstruction_loss(real), ae_vars)
        adversarial.apply_gradients(opt.generator_optimizer, grads, ae_vars)
        logs["recon"] = recon

        # 2a. Regularisation, the adversaries: prior draws against codes of data.
        with adversarial.no_grad():
            latent = self.draw_latent(batch, labels)
            codes = ops.stop_gradient(self.data_codes(real))
        (d_loss, d_logs), grads = adversarial.value_and_grad(
            lambda: self.discriminator_loss(real, codes, latent, labels), d_vars, has_aux=True)
        adversarial.apply_gradients(opt.discriminator_optimizer, grads, d_vars)
        logs.update(d_loss=d_loss, **d_logs)

        # 2b. Regularisation, the encoder as the generator.
        enc_vars = list(self.encoder.trainable_variables)
        if self.adversary_weight > 0:
            def g_loss_fn():
                g_loss, _ = self.generator_loss(latent, labels, real=real)
                return self.adversary_weight * g_loss, g_loss

            (_, g_loss), grads = adversarial.value_and_grad(g_loss_fn, enc_vars, has_aux=True)
            adversarial.apply_gradients(opt.generator_optimizer, grads, enc_vars)
        else:
            with adversarial.no_grad():
                g_loss, _ = self.generator_loss(latent, labels, real=real)
        logs["g_loss"] = g_loss

        # 3. Semi-supervised: the cluster head on the labelled examples.
        if self.num_labeled:
            supervised, grads = adversarial.value_and_grad(self.supervised_loss, enc_vars)
            adversarial.apply_gradients(opt.generator_optimizer, grads, enc_vars)
            logs["supervised"] = supervised
        with adversarial.no_grad():
            opt.iterations.assign_add(1)
        return self._record(logs)

    def evaluation_step(self, data):
        real, labels = self.unpack_batch(data)
        latent = self.draw_latent(ops.shape(real)[0], labels)
        d_loss, d_logs = self.discriminator_loss(real, self.data_codes(real, False), latent, labels, training=False)
        g_loss, _ = self.generator_loss(latent, labels, training=False, real=real)
        logs = {"recon": self.reconstruction_loss(real, training=False), "d_loss": d_loss, "g_loss": g_loss, **d_logs}
        if self.num_labeled:
            logs["supervised"] = self.supervised_loss(training=False)
        return self._record(logs)

    # === Labelled examples (semi-supervised) ===

    def select_labeled(self, x, y, seed=None):
        """Chooses `num_labeled` class-balanced labelled examples of (x, y) (with `label_seed`) and stores them."""
        y = np.asarray(y).reshape(-1)
        idx = select_labeled(y, self.num_labeled, self.num_clusters, self.label_seed if seed is None else seed)
        self.labeled_x.assign(np.asarray(x, "float32")[idx])
        self.labeled_y.assign(y[idx].astype("int32"))

    @property
    def has_labeled(self):
        return bool(self.num_labeled) and int(np.min(keras.ops.convert_to_numpy(self.labeled_y))) >= 0

    def check_data(self, data):
        """Also chooses the labelled examples from the training split the first time (`kgen train`)."""
        super().check_data(data)
        if not self.num_labeled or self.has_labeled or data.split != "train":
            return
        if data.y is None:
            raise DataError(f"{data.name} has no labels: the semi-supervised AAE needs {self.num_labeled} "
                            "labelled training examples; set model.num_labeled = 0 or use a labelled data set.")
        if int(data.y.max()) >= self.num_clusters:
            raise DataError(f"{data.name}: label {int(data.y.max())} is out of range for num_clusters = "
                            f"{self.num_clusters} (the cluster head classifies); set model.num_clusters.")
        # The model sees data as the pipeline scales it: [-1, 1] for a tanh decoder.
        self.select_labeled(data.x * 2.0 - 1.0 if self.output_activation == "tanh" else data.x, data.y)

    def fit(self, *args, **kwargs):
        if self.num_labeled and not self.has_labeled:
            raise UsageError(f"choose the {self.num_labeled} labelled examples first: model.select_labeled(x, y).")
        return super().fit(*args, **kwargs)

    # === Inference ===

    def _check_x(self, x, what):
        x = np.asarray(x, "float32")
        if x.shape[1:] != self.data_shape:
            raise UsageError(f"{what} expects examples of shape {self.data_shape}, got {x.shape[1:]}.")
        return x

    def encode(self, x, batch_size=256):
        """Codes as NumPy: z (n, latent_dim) (the mean for the gaussian encoder; the style with the categorical
        prior, whose clusters `cluster` gives)."""
        x = self._check_x(x, "encode")
        fn = self.compiled_fn("encode", lambda a: self.encode_parts(a, training=False)[0])
        return self.batched(fn, [x], batch_size)

    def cluster(self, x, batch_size=256):
        """The cluster of each example: argmax y (categorical prior) or the nearest mode (mixture prior)."""
        x = self._check_x(x, "cluster")
        if self.prior == "gaussian":
            raise UsageError("the gaussian prior has no clusters; use prior = \"categorical\" or \"mixture\".")
        if self.prior == "categorical":
            fn = self.compiled_fn("cluster", lambda a: ops.argmax(self.encode_parts(a, training=False)[1], axis=-1))
            return self.batched(fn, [x], batch_size).astype("int64")
        z = self.encode(x, batch_size)
        return np.argmin(((z[:, None, :] - self.means[None]) ** 2).sum(-1), axis=1)

    def reconstruct(self, x, batch_size=256):
        """The decoder at the codes of x (NumPy, data space)."""
        x = self._check_x(x, "reconstruct")
        fn = self.compiled_fn("reconstruct", lambda a: self.generate(self.data_codes(a, training=False)))
        return self.batched(fn, [x], batch_size)

    def evaluate_extra(self, prepared, batch_size=256):
        """Clustering error on a labelled split (categorical and mixture priors; `clustering_error`).

        Returns:
            `{"clustering": {"errors", "examples", "error_rate", "clusters_used"}}`, or `{}` for the
            gaussian prior or a split without labels.
        """
        y = getattr(prepared, "y", None)
        if self.prior == "gaussian" or y is None:
            return {}
        return {"clustering": clustering_error(np.asarray(y).reshape(-1), self.cluster(prepared.x, batch_size))}

    # === Sampling ===

    def noise_spec(self, n):
        u_shape = (n, self.clusters) if self.clusters else (n,)
        return [("normal", (n, self.latent_dim)), ("uniform", u_shape)]

    def _sample(self, eps, u, labels=None):
        return self.generate(self.prior_from_noise(eps, u, labels))

    def sample_from_noise(self, eps, u, labels=None):
        """Decoded prior draws from normal noise and uniforms (`prior_from_noise`)."""
        if self.conditional:
            if labels is None:
                raise UsageError("this AAE is conditional: pass labels (the mode of each sample).")
            return self.compiled_fn("sample", self._sample)(eps, u, np.asarray(labels, "int32"))
        return self.compiled_fn("sample", lambda e, v: self._sample(e, v))(eps, u)

    def latent_codes(self, x, labels=None, batch_size=256):
        """Codes of examples, the decoder's inputs: z, or [softmax y, z] with the categorical prior
        (`kgen evaluate`'s linear probe reads them)."""
        x = self._check_x(x, "latent_codes")
        fn = self.compiled_fn("latent_codes", lambda a: self.data_codes(a, training=False))
        return self.batched(fn, [x], batch_size)

    def decode_latents(self, z, labels=None, batch_size=256):
        """The decoder at codes z (NumPy), as `generate_numpy`."""
        return self.generate_numpy(z, batch_size=batch_size)

    def generate_numpy(self, z, labels=None, batch_size=256):
        """The decoder at codes z (n, latent_dim [+ num_clusters]) as NumPy: what `interpolate` and
        `latent_arithmetic` (the GANs') decode."""
        fn = self.compiled_fn("decode", lambda a: self.generate(a))
        return self.batched(fn, [np.asarray(z, "float32")], batch_size)

    # === Export ===

    litert_endpoints = ("decode", "sample", "encode")

    def export_endpoints(self):
        """decode(code) -> examples; sample(eps, u[, labels]) -> decoded prior draws; encode(x) -> z."""
        code_spec = ((None, self.latent_dim + self.clusters), "float32")
        noise = [(shape, "float32") for _, shape in
                 ((k, (None,) + tuple(s[1:])) for k, s in self.noise_spec(1))]

        def decode(code):
            return self.generate(code)

        def encode(x):
            return self.encode_parts(x, training=False)[0]

        if self.conditional:
            def sample(eps, u, labels):
                return self._sample(eps, u, labels)

            sample_specs = noise + [((None,), "int32")]
        else:
            def sample(eps, u):
                return self._sample(eps, u)

            sample_specs = noise
        return {"decode": (decode, [code_spec]), "sample": (sample, sample_specs),
                "encode": (encode, [((None,) + self.data_shape, "float32")])}
