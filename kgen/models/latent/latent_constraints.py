"""Latent constraints (Engel, Hoffman & Roberts 2018): conditional generation from an unconditional VAE.

A VAE is trained first, without labels; it is then frozen. Post hoc, in its
latent space, critics learn which codes decode to realistic examples (and to
examples of a class), and an actor learns to move prior draws a short way into
those regions. Sampling is z ~ p(z) -> z' = G(z, y) -> x ~ p(x|z'); an edit of
an example x toward class y is the decoder mean at G(E[q(z|x)], y). The VAE's
weights never change while the constraints train.

Networks (the paper's Sec. 3 and appendix):

- the realism critic D(z, y) (ReLU MLP on [z, one-hot y]) tells codes of data
  from prior draws and from the actor's outputs:
  L_D = E_q[softplus(-D(z, y_x))] + E_p[softplus(D(z, y))] + E_p[softplus(D(G(z, y), y))],
  with z ~ q(z|x) for a data example x of label y_x ("real"), z ~ p(z) with a
  uniformly drawn label y ("fake");
- the attribute critic C(z), a classifier of the label from z ~ q(z|x),
  trained by cross-entropy on the encoded labelled training data;
- the actor G(z, y): the paper's gated residual MLP, whose last layer gives a
  proposal dz and gate logits; z' = (1 - g) * z + g * dz, g = sigmoid(logits);
  it minimises
  L_G = E_p[softplus(-D(G(z, y), y)) + attribute_weight * CE(C(G(z, y)), y)
        + dist_weight * L_dist(G(z, y), z)],
  L_dist(z', z) = mean_d log(1 + (z'_d - z_d)^2) / sigma_z^2,
  the paper's distance penalty: it keeps z' near z, scaled by sigma_z^2, the
  average variance of the encoder's posterior over the training data (a
  running mean over the training batches, stored with the model);
- the judge J(x), a classifier on pixels trained on the labelled training
  data beside the critics, stored in the checkpoint: `evaluate_extra` reports
  the label accuracy of conditional samples by it (`kgen evaluate` also
  reports it by kgen's feature classifier of the data set, where one exists).
  Nothing the actor learns from depends on it.

Without labels (`num_classes` None: `model.conditional = false`) only the
realism constraint is learned: G(z) moves prior draws to where the aggregate
posterior q(z) has mass, the paper's remedy for a VAE whose prior samples are
poor.

The VAE: `vae` names a trained `vae` checkpoint (`--set model.vae=PATH`, or a
checkpoint shipped in `saved_models/`, e.g. "vae-digits"); it is loaded, must
be unconditional and fit the data, and is frozen from the start. With `vae`
empty the model builds its own VAE (`vae_latent_dim`, `vae_hidden_units`,
`vae_likelihood`, `vae_beta`) and trains it for the first `vae_epochs` epochs
of `fit` (phase "vae": the negative ELBO, on the generator's optimizer), then
trains the constraints (phase "constraints") with the VAE frozen. The phase
is fixed per `fit` call from the epoch it starts at (`fit` splits a call that
spans both). Checkpoints hold the VAE, so they load without the VAE's file.

#### References

- Engel, J., Hoffman, M. & Roberts, A. Latent Constraints: Learning to
  Generate Conditionally from Unconditional Generative Models. ICLR 2018.
  arXiv:1711.05772.
- Kingma, D. P. & Welling, M. Auto-Encoding Variational Bayes. ICLR 2014.
"""

import importlib.resources
import pathlib
import zipfile

import keras
import numpy as np
from keras import layers, ops

from kgen import backend
from kgen.backend import adversarial
from kgen.errors import UsageError
from kgen.models.adversarial.base import AdversarialModel
from kgen.models.base import PhasedFit
from kgen.models.latent.vae import VAE
from kgen.registry import register_model

PHASES = ("vae", "constraints")


def _relu_mlp(input_dim, units, outputs, name):
    """[Dense -> ReLU]* -> Dense(outputs), built for `input_dim` inputs."""
    stack = [layers.Dense(int(u), activation="relu", name=f"dense_{i}") for i, u in enumerate(units)]
    stack.append(layers.Dense(int(outputs), name="out"))
    model = keras.Sequential(stack, name=name)
    model.build((None, int(input_dim)))
    return model


def _shipped(name):
    """`saved_models/<name>.keras` of the installed package, or None (e.g. "vae-digits")."""
    root = pathlib.Path(str(importlib.resources.files("kgen.saved_models")))
    path = root / f"{name}.keras"
    return path if name and "/" not in name and path.is_file() else None


def load_vae(path):
    """The trained, unconditional `vae` of a checkpoint path (or of a shipped checkpoint's name, "vae-digits").

    Loaded with `keras.saving.load_model` (safe mode; kgen's classes are registered with
    Keras when kgen is imported), its config built under the count of values its archive
    stores, as `kgen.load_model` does: a model may not import the checkpoint module (the
    layer above it), and the harness builds a model from its recipe's keys alone.
    """
    given = str(path)
    where = pathlib.Path(given).expanduser()
    if not where.exists() and _shipped(given) is not None:
        where = _shipped(given)
    if where.is_dir() and (where / "last.keras").is_file():
        where = where / "last.keras"
    if not where.is_file():
        raise UsageError(
            f"model.vae: {given} does not exist; pass the .keras checkpoint of a trained vae "
            "(kgen train --model vae), a shipped one (vae-digits), or leave model.vae empty to train "
            "one first (model.vae_epochs)."
        )
    if where.suffix.lower() != ".keras":
        raise UsageError(f"model.vae: {given} is not a .keras checkpoint; kgen loads only .keras files.")
    # Imported here: kgen.budget imports Keras, whose import registers kgen's models (this module
    # among them), so a module-level import is circular when kgen.budget is imported first.
    from kgen.budget import parameter_budget, stored_parameters

    try:
        with zipfile.ZipFile(where) as zf, zf.open("model.weights.h5") as f:
            stored = stored_parameters(f)
        with parameter_budget(stored + 64, raise_hint="the file is corrupted or crafted"):
            vae = keras.saving.load_model(where, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 (Keras and h5py raise many types on bad files)
        raise UsageError(f"model.vae: {given} is corrupted or not a kgen checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}).") from None
    name = getattr(vae, "registered_name", type(vae).__name__)
    if type(vae) is not VAE:
        raise UsageError(f"model.vae: {given} holds a {name} checkpoint, not a vae; latent constraints act on "
                         "the Gaussian latent space of a plain VAE.")
    if vae.conditional:
        raise UsageError(f"model.vae: {given} is a conditional vae; latent constraints condition an "
                         "unconditional one (train it with model.conditional = false).")
    return vae


@register_model("latent_constraints", family="latent", conditional=True,
                tiny=dict(vae="", vae_latent_dim=2, vae_hidden_units=(16,), vae_epochs=0, actor_units=(16,),
                          critic_units=(16,), judge_units=(16,)))
class LatentConstraints(PhasedFit, AdversarialModel):
    """Latent constraints (Engel et al. 2018): critics and a gated actor on a frozen VAE's latent space.

    Logs, phase "vae": `recon` and `kl` (the VAE's ELBO terms, nats); phase
    "constraints": `d_loss` (both critics and the judge), `g_loss` (the actor's
    whole loss), `d_real` / `d_prior` / `d_actor` (the realism critic's mean
    probability of "data" on codes of data, prior draws and actor outputs),
    `attribute_loss` (the attribute critic's cross-entropy on codes of data),
    `actor_attribute` (its cross-entropy on the actor's outputs for their
    labels), `distance` (the mean L_dist) and `shift` (mean |z' - z|).
    `loss` is the phase's objective: the negative ELBO, then d_loss + g_loss.

    Args:
        input_shape: shape of one example (the VAE's).
        num_levels: grey levels of the data (the VAE's likelihood).
        num_classes: labels of the attribute constraint, or None (realism only).
        vae: a trained `vae` checkpoint (path, or a shipped checkpoint's name
            such as "vae-digits"); "" builds and trains the model's own VAE.
            (A loaded model passes the VAE's serialized config here.)
        vae_latent_dim, vae_hidden_units, vae_likelihood, vae_beta: the
            model's own VAE (`vae` empty): latent size, MLP layers, decoder
            likelihood, KL weight.
        vae_epochs: epochs of the VAE stage before the constraints (`vae`
            empty); 0 with a given VAE.
        actor_units: hidden ReLU layers of the actor G (paper: 4 x 2048).
        critic_units: hidden ReLU layers of each critic (paper: 4 x 2048).
        judge_units: hidden ReLU layers of the pixel judge.
        dist_weight: lambda_dist, the weight of the distance penalty.
        attribute_weight: weight of the attribute critic's term in the actor's loss.

    Example:

    >>> import kgen
    >>> lc = kgen.build_model("latent_constraints", input_shape=(8, 8, 1), num_levels=17, num_classes=10,
    ...                       vae_latent_dim=4, vae_hidden_units=(64,), vae_epochs=1,
    ...                       actor_units=(64,), critic_units=(64,), judge_units=(64,))
    >>> lc.compile()
    >>> data = kgen.load_dataset("digits")
    >>> _ = lc.fit((data.x, data.y), epochs=2, batch_size=64, verbose=0)
    >>> lc.sample(4, seed=0, labels=3).shape, lc.edit(data.x[:2], labels=[1, 2]).shape
    ((4, 8, 8, 1), (2, 8, 8, 1))
    """

    optimizer_defaults = {"learning_rate": 1e-3, "beta_1": 0.5}
    metric_names = ("d_loss", "g_loss", "recon", "kl", "d_real", "d_prior", "d_actor", "attribute_loss",
                    "actor_attribute", "judge_loss", "distance", "shift")

    def __init__(self, input_shape, num_levels=None, num_classes=None, vae="", vae_latent_dim=16,
                 vae_hidden_units=(256, 256), vae_likelihood="auto", vae_beta=1.0, vae_epochs=0,
                 actor_units=(2048, 2048, 2048, 2048), critic_units=(2048, 2048, 2048, 2048), judge_units=(256,),
                 dist_weight=0.1, attribute_weight=1.0, **kwargs):
        for key in ("latent_dim", "output_activation"):  # AdversarialModel's, fixed by the VAE here
            kwargs.pop(key, None)
        # === Config ===
        if int(vae_epochs) < 0:
            raise UsageError(f"model.vae_epochs must be >= 0, got {vae_epochs}.")
        if float(dist_weight) < 0 or float(attribute_weight) < 0:
            raise UsageError(f"model.dist_weight and model.attribute_weight must be >= 0, got {dist_weight} and "
                             f"{attribute_weight}.")
        if isinstance(vae, VAE):
            own = False
        elif isinstance(vae, dict):  # a loaded checkpoint: the VAE's config; its weights load with ours
            own = True
            vae = keras.saving.deserialize_keras_object(vae)
        elif isinstance(vae, str) and vae.strip():
            own = False
            vae = load_vae(vae.strip())
        elif isinstance(vae, str):
            own = True
            vae = VAE(input_shape, num_levels, None, latent_dim=vae_latent_dim, hidden_units=vae_hidden_units,
                      likelihood=vae_likelihood, beta=vae_beta, name="vae")
        else:
            raise UsageError(f"model.vae must be a checkpoint path or empty, got {type(vae).__name__}.")
        if not own:
            vae_epochs = 0  # a given VAE is trained already, and stays frozen
        if vae.conditional:
            raise UsageError("latent constraints condition an unconditional VAE; this one is conditional.")
        if tuple(vae.data_shape) != tuple(int(d) for d in input_shape) or vae.num_levels != (
                None if num_levels is None else int(num_levels)):
            raise UsageError(
                f"model.vae models examples of shape {vae.data_shape} with {vae.num_levels} levels, the data has "
                f"{tuple(input_shape)} with {num_levels}; use a VAE trained on this data set."
            )
        super().__init__(input_shape, num_levels, num_classes, latent_dim=vae.latent_dim, **kwargs)
        self.vae = vae
        self.vae.trainable = int(vae_epochs) > 0
        self.vae_latent_dim = int(vae.latent_dim)
        self.vae_hidden_units = tuple(int(u) for u in vae.hidden_units)
        self.vae_likelihood = vae.likelihood
        self.vae_beta = float(vae.beta)
        self.vae_epochs = int(vae_epochs)
        self.actor_units = tuple(int(u) for u in actor_units)
        self.critic_units = tuple(int(u) for u in critic_units)
        self.judge_units = tuple(int(u) for u in judge_units)
        self.dist_weight = float(dist_weight)
        self.attribute_weight = float(attribute_weight)
        self._phase = None

        # === Critics, actor and judge ===
        cond = self.num_classes or 0
        size = self.latent_dim
        self.actor = _relu_mlp(size + cond, self.actor_units, 2 * size, "actor")
        self.critic = _relu_mlp(size + cond, self.critic_units, 1, "realism_critic")
        self.attribute_critic = _relu_mlp(size, self.critic_units, cond, "attribute_critic") if cond else None
        self.judge = _relu_mlp(self.num_dims, self.judge_units, cond, "judge") if cond else None
        # sum and count of the batch means of the posterior variance: sigma_z^2 = sum / count
        self.posterior_variance_stats = self.add_weight(shape=(2,), initializer="zeros", trainable=False,
                                                        name="posterior_variance_stats")
        self.built = True

    def get_config(self):
        config = super().get_config()
        for key in ("latent_dim", "output_activation"):
            config.pop(key, None)
        config.update({
            "vae": keras.saving.serialize_keras_object(self.vae),
            "vae_latent_dim": self.vae_latent_dim,
            "vae_hidden_units": list(self.vae_hidden_units),
            "vae_likelihood": self.vae_likelihood,
            "vae_beta": self.vae_beta,
            "vae_epochs": self.vae_epochs,
            "actor_units": list(self.actor_units),
            "critic_units": list(self.critic_units),
            "judge_units": list(self.judge_units),
            "dist_weight": self.dist_weight,
            "attribute_weight": self.attribute_weight,
        })
        return config

    def compile_for_training(self, train_config, steps_per_epoch=None):
        """The adversarial pair's compile (`AdversarialModel`); refuses a run that ends inside the model's own
        VAE stage (`train.epochs` < `vae_epochs`). `train.epochs` = `vae_epochs` is a VAE-only stage: resuming
        it with more epochs (`kgen train --resume RUN --epochs N`) trains the constraints."""
        epochs = int(train_config.get("epochs", 0) or 0)
        if self.vae_epochs and epochs and epochs < self.vae_epochs:
            raise UsageError(
                f"train.epochs ({epochs}) must exceed model.vae_epochs ({self.vae_epochs}): the first "
                f"{self.vae_epochs} epochs train the model's own VAE, the rest the constraints; e.g. "
                f"--set train.epochs={self.vae_epochs + 40}, or give a trained VAE (--set model.vae=PATH)."
            )
        super().compile_for_training(train_config, steps_per_epoch)

    # === Players ===

    def discriminator_variables(self):
        """The critics' and the judge's variables (one optimizer)."""
        out = list(self.critic.trainable_variables)
        for net in (self.attribute_critic, self.judge):
            if net is not None:
                out += list(net.trainable_variables)
        return out

    def actor_variables(self):
        return list(self.actor.trainable_variables)

    def generator_variables(self):
        """The actor's variables, and the model's own VAE's while it trains (phase "vae")."""
        return self.actor_variables() + (list(self.vae.trainable_variables) if self.vae_epochs else [])

    # === The actor and the critics ===

    def _with_labels(self, z, labels):
        if not self.conditional:
            return z
        return ops.concatenate([z, self.one_hot(labels)], axis=-1)

    def transform(self, z, labels=None, training=False):
        """The actor: z' = (1 - g) * z + g * dz, with [dz, gate logits] = MLP([z, one-hot y])."""
        z = ops.cast(z, "float32")
        out = self.actor(self._with_labels(z, labels), training=training)
        dz, gates = out[:, : self.latent_dim], ops.sigmoid(out[:, self.latent_dim:])
        return (1.0 - gates) * z + gates * dz

    def realism_logits(self, z, labels=None, training=False):
        return self.critic(self._with_labels(ops.cast(z, "float32"), labels), training=training)[:, 0]

    def _cross_entropy(self, logits, labels):
        return -ops.mean(ops.sum(ops.log_softmax(logits, axis=-1) * self.one_hot(labels), axis=-1))

    @property
    def posterior_variance(self):
        """sigma_z^2: the mean posterior variance over the training batches seen (1 before any)."""
        stats = self.posterior_variance_stats
        return ops.where(stats[1] > 0, stats[0] / ops.maximum(stats[1], 1.0), 1.0)

    def distance_penalty(self, z_new, z):
        """The paper's L_dist(z', z) = mean_d log(1 + (z' - z)^2) / sigma_z^2, per example."""
        return ops.mean(ops.log1p(ops.square(z_new - z)), axis=-1) / self.posterior_variance

    def _random_labels(self, batch):
        u = keras.random.uniform((batch,), seed=self.seed_generator)
        return ops.cast(ops.minimum(ops.floor(u * self.num_classes), self.num_classes - 1), "int32")

    def call(self, inputs, training=False):
        """`model(x)` or `model((x, labels))`: the edits of x (the decoder mean at G(E[q(z|x)], y))."""
        x, labels = self.split_inputs(inputs)
        return self.vae.decode(self.transform(self.vae.encode(x)[0], labels if self.conditional else None, training))

    def generate(self, latent, labels=None, training=False):
        """Decoder means at the actor's outputs for prior draws `latent`."""
        return self.vae.decode(self.transform(latent, labels, training), None)

    # === Losses ===

    def critic_loss(self, x, labels, z_real, z_prior, z_actor, y_fake, training=True):
        """The realism critic (data vs prior draws and actor outputs), the attribute critic and the judge."""
        d_real = self.realism_logits(z_real, labels, training)
        d_prior = self.realism_logits(z_prior, y_fake, training)
        d_actor = self.realism_logits(z_actor, y_fake, training)
        loss = ops.mean(ops.softplus(-d_real)) + ops.mean(ops.softplus(d_prior)) + ops.mean(ops.softplus(d_actor))
        logs = {"d_real": ops.mean(ops.sigmoid(d_real)), "d_prior": ops.mean(ops.sigmoid(d_prior)),
                "d_actor": ops.mean(ops.sigmoid(d_actor))}
        if self.conditional:
            attribute = self._cross_entropy(self.attribute_critic(z_real, training=training), labels)
            flat = ops.reshape(ops.cast(x, "float32"), (-1, self.num_dims))
            judge = self._cross_entropy(self.judge(flat, training=training), labels)
            loss = loss + attribute + judge
            logs.update(attribute_loss=attribute, judge_loss=judge)
        return loss, logs

    def actor_loss(self, z, labels, training=True):
        """softplus(-D(z', y)) + attribute_weight * CE(C(z'), y) + dist_weight * L_dist(z', z), z' = G(z, y)."""
        z_new = self.transform(z, labels, training)
        realism = ops.mean(ops.softplus(-self.realism_logits(z_new, labels, training)))
        distance = ops.mean(self.distance_penalty(z_new, z))
        loss = realism + self.dist_weight * distance
        logs = {"distance": distance, "shift": ops.mean(ops.abs(z_new - z))}
        if self.conditional:
            attribute = self._cross_entropy(self.attribute_critic(z_new, training=training), labels)
            loss = loss + self.attribute_weight * attribute
            logs["actor_attribute"] = attribute
        return loss, logs

    def vae_loss(self, x, training=True):
        """The VAE's negative ELBO (with its beta), batch mean; and its terms."""
        out = self.vae(x, training=training)
        return ops.mean(out["recon"] + self.vae.beta * out["kl"]), {"recon": ops.mean(out["recon"]),
                                                                     "kl": ops.mean(out["kl"])}

    def _codes(self, real, labels, batch):
        """Codes of data z ~ q(z|x), prior draws, their labels and the actor's outputs (no gradients)."""
        mean, logvar = self.vae.encode(real)
        eps = backend.random_normal(ops.shape(mean), self.seed_generator)
        z_real = mean + ops.exp(0.5 * logvar) * eps
        z_prior = backend.random_normal((batch, self.latent_dim), self.seed_generator)
        y_fake = self._random_labels(batch) if self.conditional else None
        z_actor = self.transform(z_prior, y_fake)
        return [ops.stop_gradient(a) for a in (z_real, z_prior, z_actor)] + [y_fake, ops.mean(ops.exp(logvar))]

    # === Schedule ===

    def phase_at(self, epoch):
        """The training phase of a (0-based) epoch: "vae" for the first `vae_epochs`, then "constraints"."""
        return "vae" if epoch < self.vae_epochs else "constraints"

    def set_phase(self, phase):
        if phase not in PHASES:
            raise UsageError(f'unknown phase "{phase}"; choose one of {", ".join(PHASES)}.')
        if phase != self._phase:
            self._phase = phase
            self.train_function = None  # traced again for the new phase
            self.test_function = None

    # === Steps ===

    def adversarial_step(self, data):
        real, labels = self.unpack_batch(data)
        batch = ops.shape(real)[0]
        opt = self.optimizer
        if (self._phase or self.phase_at(0)) == "vae":
            vae_vars = list(self.vae.trainable_variables)
            (loss, logs), grads = adversarial.value_and_grad(lambda: self.vae_loss(real), vae_vars, has_aux=True)
            adversarial.apply_gradients(opt.generator_optimizer, grads, vae_vars)
            logs["loss"] = loss
        else:
            with adversarial.no_grad():
                z_real, z_prior, z_actor, y_fake, variance = self._codes(real, labels, batch)
                stats = self.posterior_variance_stats
                self.posterior_variance_stats.assign(stats + ops.stack([ops.cast(variance, "float32"), 1.0]))
            d_vars = self.discriminator_variables()
            (d_loss, d_logs), grads = adversarial.value_and_grad(
                lambda: self.critic_loss(real, labels, z_real, z_prior, z_actor, y_fake), d_vars, has_aux=True)
            adversarial.apply_gradients(opt.discriminator_optimizer, grads, d_vars)

            with adversarial.no_grad():
                z = backend.random_normal((batch, self.latent_dim), self.seed_generator)
                y = self._random_labels(batch) if self.conditional else None
            g_vars = self.actor_variables()
            (g_loss, g_logs), grads = adversarial.value_and_grad(lambda: self.actor_loss(z, y), g_vars, has_aux=True)
            adversarial.apply_gradients(opt.generator_optimizer, grads, g_vars)
            logs = {"d_loss": d_loss, "g_loss": g_loss, "loss": d_loss + g_loss, **d_logs, **g_logs}
        with adversarial.no_grad():
            opt.iterations.assign_add(1)
        return self._record(logs)

    def evaluation_step(self, data):
        real, labels = self.unpack_batch(data)
        batch = ops.shape(real)[0]
        if (self._phase or self.phase_at(0)) == "vae":
            loss, logs = self.vae_loss(real, training=False)
            logs["loss"] = loss
            return self._record(logs)
        z_real, z_prior, z_actor, y_fake, _ = self._codes(real, labels, batch)
        d_loss, d_logs = self.critic_loss(real, labels, z_real, z_prior, z_actor, y_fake, training=False)
        g_loss, g_logs = self.actor_loss(z_prior, y_fake, training=False)
        return self._record({"d_loss": d_loss, "g_loss": g_loss, "loss": d_loss + g_loss, **d_logs, **g_logs})

    def _record(self, logs):
        with adversarial.no_grad():
            logs = {k: ops.stop_gradient(ops.cast(v, "float32")) for k, v in logs.items()}
            for name, tracker in self.trackers.items():
                if name in logs:
                    tracker.update_state(logs[name])
            if getattr(self, "_loss_tracker", None) is not None:
                self._loss_tracker.update_state(logs["loss"])
            # the phase's own logs: the other phase's trackers would report zeros
            return {m.name: m.result() for m in self.metrics if m.name in logs}

    # === Data ===

    def check_data(self, data):
        super().check_data(data)
        self.vae.check_data(data)

    # === Sampling and edits ===

    def noise_spec(self, n):
        return [("normal", (n, self.latent_dim)), ("uniform", (n,) + self.data_shape)]

    def _sample(self, z, u, labels=None):
        return self.vae._sample(self.transform(z, labels), u)

    def sample_from_noise(self, z, u, labels=None):
        """Samples x ~ p(x | G(z, y)) from prior draws z and pixel uniforms u (and labels)."""
        z, u = np.asarray(z, "float32"), np.asarray(u, "float32")
        if self.conditional:
            if labels is None:
                raise UsageError("LatentConstraints is conditional: pass labels (the class of each sample).")
            return self.compiled_fn("sample", self._sample)(z, u, np.asarray(labels, "int32"))
        return self.compiled_fn("sample", lambda a, b: self._sample(a, b))(z, u)

    def _numpy_labels(self, n, labels):
        if not self.conditional:
            if labels is not None:
                raise UsageError("this LatentConstraints model has no attribute constraint: it takes no labels.")
            return np.zeros(n, "int32")
        if labels is None:
            raise UsageError(f"pass labels (0..{self.num_classes - 1}): the class to move each code toward.")
        return self._labels_for(n, labels)

    def transform_latents(self, z, labels=None, batch_size=256):
        """The actor's outputs G(z, y) for codes z (NumPy)."""
        z = np.asarray(z, "float32").reshape(-1, self.latent_dim)
        labs = self._numpy_labels(len(z), labels)
        fn = self.compiled_fn("transform", lambda a, l: self.transform(a, l if self.conditional else None))
        return self.batched(fn, [z, labs], batch_size)

    def _check_x(self, x):
        x = np.asarray(x, "float32")
        if x.shape[1:] != self.data_shape:
            raise UsageError(f"expected examples of shape {self.data_shape}, got {x.shape[1:]}.")
        return x

    def edit(self, x, labels=None, batch_size=256):
        """Minimal edits of examples toward labels: the decoder mean at G(E[q(z|x)], y) (NumPy).

        Args:
            x: examples `(n,) + input_shape`.
            labels: the class to move each example toward (an int, or one per example);
                none for a realism-only model (its edit moves x toward realistic codes).
        """
        x = self._check_x(x)
        labs = self._numpy_labels(len(x), labels)

        def run(a, l):
            return self.vae.decode(self.transform(self.vae.encode(a)[0], l if self.conditional else None))

        return self.batched(self.compiled_fn("edit", run), [x, labs], batch_size)

    def reconstruct(self, x, batch_size=256):
        """The frozen VAE's reconstructions: the decoder mean at E[q(z|x)] (NumPy)."""
        return self.vae.reconstruct(self._check_x(x), batch_size=batch_size)

    def generate_numpy(self, z, labels=None, batch_size=256):
        """Decoder means at G(z, y) for codes z: what `interpolate` and `latent_arithmetic` decode."""
        z = np.asarray(z, "float32").reshape(-1, self.latent_dim)
        labs = self._numpy_labels(len(z), labels)
        fn = self.compiled_fn("generate", lambda a, l: self.generate(a, l if self.conditional else None))
        return self.batched(fn, [z, labs], batch_size)

    def judge_labels(self, x, batch_size=256):
        """The pixel judge's predicted class of each example (conditional models)."""
        if not self.conditional:
            raise UsageError("this LatentConstraints model has no labels, so no judge.")
        x = self._check_x(x)
        fn = self.compiled_fn("judge", lambda a: ops.argmax(self.judge(ops.reshape(a, (-1, self.num_dims))), -1))
        return self.batched(fn, [x], batch_size).astype("int32")

    def evaluate_extra(self, prepared, batch_size=256):
        """The judge's label accuracy: of conditional samples, of edits toward other labels, of the split itself.

        Returns `{"judge": {"sample_label_accuracy", "edit_label_accuracy", "data_accuracy",
        "edit_shift", "sample_shift"}}` (shifts: mean |z' - z| of the actor); `{}` without labels.
        """
        y = getattr(prepared, "y", None)
        if not self.conditional or y is None:
            return {}
        y = np.asarray(y, "int32").reshape(-1)
        x = np.asarray(prepared.x, "float32")
        rng = np.random.default_rng(0)
        labels = rng.permutation(y)
        samples = self.sample(len(x), seed=0, labels=labels, batch_size=batch_size)
        targets = (y + rng.integers(1, self.num_classes, len(y))) % self.num_classes  # another label each
        edits = self.edit(x, targets, batch_size)
        z = self.draw_latents(len(x), seed=0)
        codes = self.vae.latent_codes(x)
        return {"judge": {
            "sample_label_accuracy": float(np.mean(self.judge_labels(samples, batch_size) == labels)),
            "edit_label_accuracy": float(np.mean(self.judge_labels(edits, batch_size) == targets)),
            "data_accuracy": float(np.mean(self.judge_labels(x, batch_size) == y)),
            "sample_shift": float(np.mean(np.abs(self.transform_latents(z, labels) - z))),
            "edit_shift": float(np.mean(np.abs(self.transform_latents(codes, targets) - codes))),
            "examples": int(len(x)),
        }}

    # === Export ===

    litert_endpoints = ("sample", "decode", "encode", "transform", "edit")

    def export_endpoints(self):
        """sample(z, u[, labels]) -> samples; decode(z) -> mean image; encode(x) -> posterior mean;
        transform(z[, labels]) -> G(z, y); edit(x[, labels]) -> the edited mean image."""
        x_spec = ((None,) + self.data_shape, "float32")
        z_spec = ((None, self.latent_dim), "float32")
        label_spec = [((None,), "int32")] if self.conditional else []

        def lab(labels):
            return labels[0] if labels else None

        def sample(z, u, *labels):
            return self._sample(z, u, lab(labels))

        def decode(z):
            return self.vae.decode(z)

        def encode(x):
            return self.vae.encode(x)[0]

        def transform(z, *labels):
            return self.transform(z, lab(labels))

        def edit(x, *labels):
            return self.vae.decode(self.transform(self.vae.encode(x)[0], lab(labels)))

        return {
            "sample": (sample, [z_spec, x_spec] + label_spec),
            "decode": (decode, [z_spec]),
            "encode": (encode, [x_spec]),
            "transform": (transform, [z_spec] + label_spec),
            "edit": (edit, [x_spec] + label_spec),
        }
