"""What every adversarial model shares: the one training step and the composite optimizer.

An adversarial model trains two players with two optimizers. The step is
written once, here, in stateful style (`AdversarialModel.adversarial_step`),
and runs on TensorFlow, JAX and PyTorch through the thin adapter in
`kgen.backend.adversarial` (`value_and_grad`, `no_grad`, ...). A model
supplies its networks and its two losses:

    generate(latent, labels, training)                      -> fakes in data space
    discriminator_loss(real, fake, latent, labels, training) -> (loss, logs)
    generator_loss(latent, labels, training)                 -> (loss, logs)

and optionally `draw_latent` (InfoGAN's codes) and `end_step` (BEGAN's k_t).

Both players' optimizers live in one `AdversarialOptimizer`, which is what
`compile()` hands Keras: on JAX `fit` threads only `model.optimizer.variables`
through its compiled state, so that composite's `variables` hold both
optimizers' variables, and it saves to and loads from `.keras` files with
both states.
"""

import math

import keras
import numpy as np
from keras import ops

from kgen import backend
from kgen.backend import adversarial
from kgen.errors import DataError, UsageError
from kgen.models.base import LOG_2PI, GenerativeModel, interpolate_latents
from kgen.optimizers import make_optimizer

OUTPUT_ACTIVATIONS = ("auto", "sigmoid", "tanh", "linear")


# === The composite optimizer ===


@keras.saving.register_keras_serializable(package="kgen")
class AdversarialOptimizer(keras.optimizers.Optimizer):
    """One optimizer object that holds the discriminator's and the generator's.

    `variables` lists its own step counter, then every variable of the
    discriminator's optimizer, then the generator's, so that JAX's `fit`
    threads both states. Each player's optimizer saves under its own path of
    the `.keras` file (`optimizer/discriminator_optimizer/...`,
    `optimizer/generator_optimizer/...`). `iterations` counts adversarial
    steps; each player's optimizer counts its own updates (a WGAN critic
    makes `n_critic` per step).

    Args:
        discriminator_optimizer: a Keras optimizer (or its name / config).
        generator_optimizer: a Keras optimizer (or its name / config); must be
            a different object from `discriminator_optimizer`.
        name: the optimizer's name.

    Example:

    >>> import keras
    >>> opt = AdversarialOptimizer(keras.optimizers.Adam(2e-4, beta_1=0.5),
    ...                            keras.optimizers.Adam(2e-4, beta_1=0.5))
    >>> model.compile(optimizer=opt)  # doctest: +SKIP
    """

    def __init__(self, discriminator_optimizer="adam", generator_optimizer="adam", name="adversarial_optimizer",
                 **kwargs):
        kwargs.pop("learning_rate", None)
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        d_opt = keras.optimizers.get(discriminator_optimizer)
        g_opt = keras.optimizers.get(generator_optimizer)
        if d_opt is g_opt:
            raise UsageError("the discriminator and the generator need two optimizer objects, got the same one twice.")
        self.discriminator_optimizer = d_opt
        self.generator_optimizer = g_opt

    @property
    def players(self):
        return {"discriminator": self.discriminator_optimizer, "generator": self.generator_optimizer}

    def build_players(self, discriminator_variables, generator_variables):
        """Builds each player's optimizer on that player's trainable variables."""
        if self.built:
            return
        self.discriminator_optimizer.build(list(discriminator_variables))
        self.generator_optimizer.build(list(generator_variables))
        self.built = True

    def build(self, var_list):
        if self.built:
            return
        raise ValueError(
            "AdversarialOptimizer is built per player by the model's compile() "
            "(build_players(discriminator_variables, generator_variables))."
        )

    @property
    def variables(self):
        return self._variables[:] + self.discriminator_optimizer.variables + self.generator_optimizer.variables

    @property
    def learning_rate(self):
        raise AttributeError(
            "an AdversarialOptimizer has no single learning rate; use "
            "optimizer.discriminator_optimizer.learning_rate or optimizer.generator_optimizer.learning_rate."
        )

    @learning_rate.setter
    def learning_rate(self, value):
        raise AttributeError(
            "set the learning rate on optimizer.discriminator_optimizer or optimizer.generator_optimizer."
        )

    def apply(self, grads, trainable_variables=None):
        raise ValueError(
            "an AdversarialOptimizer does not apply gradients itself: apply them with "
            "optimizer.discriminator_optimizer or optimizer.generator_optimizer."
        )

    def finalize_variable_values(self, var_list):
        for opt in (self.discriminator_optimizer, self.generator_optimizer):
            if opt.built:
                opt.finalize_variable_values(opt._trainable_variables)

    # Each player's optimizer is an attribute and saves its own variables
    # under its own path; this object saves only its own counter.

    def save_own_variables(self, store):
        for i, variable in enumerate(self._variables):
            store[str(i)] = keras.ops.convert_to_numpy(variable.value)

    def load_own_variables(self, store):
        if len(store.keys()) != len(self._variables):
            raise ValueError(
                f"the checkpoint's adversarial optimizer has {len(store.keys())} variables, "
                f"expected {len(self._variables)}."
            )
        for i, variable in enumerate(self._variables):
            variable.assign(store[str(i)])

    def get_config(self):
        return {
            "name": self.name,
            "discriminator_optimizer": keras.saving.serialize_keras_object(self.discriminator_optimizer),
            "generator_optimizer": keras.saving.serialize_keras_object(self.generator_optimizer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("discriminator_optimizer", "generator_optimizer"):
            config[key] = keras.saving.deserialize_keras_object(config[key], custom_objects=custom_objects)
        return cls(**config)


def _fresh_optimizer(spec):
    """A new optimizer from a name, a config dict or an optimizer (copied, unbuilt)."""
    if isinstance(spec, keras.optimizers.Optimizer):
        return spec.__class__.from_config(spec.get_config())
    return keras.optimizers.get(spec)


# === A decoder density for AIS (Wu et al. 2017) ===


class GaussianObservation:
    """Mixin: a generator read as a decoder p(x|z) = N(x; G(z), sigma^2 I), for `kgen evaluate --ais-sigma`.

    A GAN has no likelihood. Wu et al. (2017) give its generator one by adding Gaussian observation
    noise of a chosen standard deviation sigma (picked on validation data) and estimate
    log p(x) = log E_{z ~ N(0, I)} N(x; G(z), sigma^2 I) by annealed importance sampling
    (`kgen.metrics.ais`). sigma and the density are in pixel values in [0, 1] whatever the
    generator's output scale (a "tanh" generator's [-1, 1] images are halved), so the figures
    are log densities of [0, 1] images: comparable across GANs at one sigma, not with the
    discrete NLLs of likelihood models. For models whose noise is z ~ N(0, I) of `latent_dim`
    dimensions and whose output is an image or a point: GAN, DCGAN, cGAN, WGAN-GP.
    """

    # sigma in [0, 1] pixel units; None until `kgen evaluate --ais-sigma` (or the caller) sets it.
    observation_std = None

    def latent_log_joint(self, x, z, labels=None):
        """log p(z) (standard normal) and log N(x; G(z), sigma^2 I) per row, on the [0, 1] scale."""
        if self.observation_std is None:
            raise UsageError(f"{type(self).__name__} has no likelihood: set its Gaussian observation noise "
                             "(`kgen evaluate --ais-sigma S`) to estimate log p(x) by AIS.")
        sigma = float(self.observation_std)
        half = 2.0 if self.output_activation == "tanh" else 1.0  # [-1, 1] outputs: the [0, 1] residual is half
        x = ops.cast(x, "float32")
        mean = self.generate(z, labels, training=False)
        residual = ops.reshape(x - mean, (ops.shape(x)[0], -1)) / half
        d = float(self.num_dims)
        log_lik = (-0.5 * ops.sum(ops.square(residual), axis=-1) / sigma ** 2
                   - d * math.log(sigma) - 0.5 * d * LOG_2PI)
        log_prior = -0.5 * ops.sum(ops.square(z) + LOG_2PI, axis=-1)
        return log_prior, log_lik


# === Token sequences (SeqGAN, MaskGAN, FBGAN) ===


class TokenSequences:
    """Mixin: token-sequence data and the vocabulary the model stores (`self.vocabulary`, a
    `Vocabulary` config or None) for models over `vocab_size` tokens."""

    # What the wrong-data error suggests.
    sequence_data_hint = "text"

    def check_data(self, data):
        if data.kind != "sequence":
            raise DataError(f"{data.name}: {type(self).__name__} models token sequences, not {data.kind} data; "
                            f"use {self.sequence_data_hint}.")
        super().check_data(data)
        if data.num_levels != self.vocab_size:
            raise DataError(f"{data.name}: a vocabulary of {data.num_levels} tokens, the model has "
                            f"{self.vocab_size}; train a new model on this data set.")
        vocab = getattr(data, "vocabulary", None)
        if vocab is not None and self.vocabulary is not None and list(vocab.tokens) != list(self.vocabulary["tokens"]):
            raise DataError(f"{data.name}: its vocabulary differs from the one the model was trained with "
                            "(another text or data.tokens / data.seq_len / split); use the same data.")

    def unpack_batch(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, (tuple, list)):
            x = x[0]
        return ops.cast(x, "int32"), None

    def decode_sequences(self, tokens):
        """Token ids (N, T) -> one string per sequence: text through the stored vocabulary, else the ids."""
        return decode_tokens(tokens, self.vocabulary)


def decode_tokens(tokens, vocabulary):
    """Token ids (N, T) -> one string per sequence: text through `vocabulary` (a config), else the ids."""
    tokens = np.asarray(tokens).reshape(len(tokens), -1)
    if vocabulary is None:
        return [" ".join(str(int(t)) for t in row) for row in tokens]
    from kgen.data.sequences import Vocabulary

    vocab = Vocabulary.from_config(vocabulary)
    return [vocab.decode(row) for row in tokens]


# === The sequence GANs' two learning rates ===


class DiscriminatorRate:
    """Mixin (SeqGAN, MaskGAN): the generator trains with the recipe's optimizer (`train.learning_rate`,
    `train.clipnorm`), the discriminator with the same optimizer at the model's
    `discriminator_learning_rate`, unclipped; both at constant rates."""

    def compile_for_training(self, train_config, steps_per_epoch=None):
        if train_config.get("lr_schedule", "constant") != "constant":
            raise UsageError(f"{type(self).__name__} trains at constant learning rates; remove train.lr_schedule "
                             '(or "constant").')
        d_config = dict(train_config, learning_rate=self.discriminator_learning_rate, clipnorm=0.0)
        self.compile(discriminator_optimizer=make_optimizer(d_config, defaults=self.optimizer_defaults),
                     generator_optimizer=make_optimizer(train_config, defaults=self.optimizer_defaults),
                     steps_per_execution=backend.steps_per_execution(train_config.get("steps_per_execution", 1)))

    def default_optimizer(self):
        return keras.optimizers.Adam(**self.optimizer_defaults)

    def compile(self, optimizer=None, discriminator_optimizer=None, generator_optimizer=None, **kwargs):
        """As `AdversarialModel.compile`; by default Adam(`optimizer_defaults`) for G and
        Adam(`discriminator_learning_rate`) for D."""
        if optimizer is None and discriminator_optimizer is None:
            discriminator_optimizer = keras.optimizers.Adam(self.discriminator_learning_rate)
        super().compile(optimizer=optimizer, discriminator_optimizer=discriminator_optimizer,
                        generator_optimizer=generator_optimizer, **kwargs)


# === The model base ===


class AdversarialModel(GenerativeModel):
    """Base class of kgen's GANs: a generator, a discriminator, one adversarial step.

    Subclasses build `self.generator` and `self.discriminator` (Keras layers)
    in `__init__` and implement `generate`, `discriminator_loss` and
    `generator_loss`. Training is `model.compile()` then `model.fit(x)` (or
    `fit((x, labels))` for a conditional model) on every backend.

    Each step makes `discriminator_steps` discriminator updates, each on the
    step's real batch and a fresh batch of fakes, then one generator update on
    fresh latents. The losses of both players (`d_loss`, `g_loss`) and the
    model's own terms are logged as Keras metrics; `loss` is
    `d_loss + g_loss`, kept for Keras' and the harness's bookkeeping: a GAN's
    losses do not measure sample quality.

    Args:
        input_shape: shape of one example, `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: label classes of a conditional model, or None.
        latent_dim: size of the generator's noise z ~ N(0, I).
        output_activation: the generator's last activation: "sigmoid" for
            images in [0, 1], "tanh" for images scaled to [-1, 1]
            (`data.scale = "symmetric"`), "linear" for points, or "auto"
            ("sigmoid" for images, "linear" for points).
    """

    # Discriminator (critic) updates per generator update.
    discriminator_steps = 1
    # Adam settings for both players when a recipe does not choose
    # (Radford et al. 2016: learning rate 2e-4, beta_1 0.5).
    optimizer_defaults = {"learning_rate": 2e-4, "beta_1": 0.5}
    # Keras metrics logged each step (besides `loss`).
    metric_names = ("d_loss", "g_loss")
    # Whether `generator_loss` also takes the step's real batch (`real=`):
    # feature matching (semi-supervised GAN) and BiGAN's encoder need it.
    generator_loss_takes_real = False

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=64, output_activation="auto",
                 **kwargs):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise UsageError(
                f'unknown output_activation "{output_activation}"; choose one of {", ".join(OUTPUT_ACTIVATIONS)}.'
            )
        if output_activation == "auto":
            output_activation = "sigmoid" if len(self.data_shape) == 3 else "linear"
        self.latent_dim = int(latent_dim)
        self.output_activation = output_activation
        # === State and metrics (created in __init__: JAX needs them before fit) ===
        self.seed_generator = keras.random.SeedGenerator(0)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}

    def get_config(self):
        config = super().get_config()
        config.update({"latent_dim": self.latent_dim, "output_activation": self.output_activation})
        return config

    # === Players (override as needed) ===

    def discriminator_variables(self):
        """The variables the discriminator's optimizer updates."""
        return list(self.discriminator.trainable_variables)

    def generator_variables(self):
        """The variables the generator's optimizer updates."""
        return list(self.generator.trainable_variables)

    def one_hot(self, labels):
        return self.one_hot_labels(labels)

    def draw_latent(self, batch):
        """Latents for `batch` fakes, drawn with the model's seed generator."""
        return backend.random_normal((batch, self.latent_dim), self.seed_generator)

    def generate(self, latent, labels=None, training=False):
        """The generator: latents (and labels) -> examples in data space."""
        raise NotImplementedError

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        """The discriminator's loss on a real and a fake batch: `(loss, logs)`."""
        raise NotImplementedError

    def generator_loss(self, latent, labels=None, training=True):
        """The generator's loss on fakes generated from `latent`: `(loss, logs)`."""
        raise NotImplementedError

    def end_step(self, logs, training):
        """Runs after both players' updates (state such as BEGAN's k_t); returns the logs."""
        return logs

    def call(self, inputs, training=False):
        """`model(z)` or `model((z, labels))`: generated examples."""
        if self.conditional:
            z, labels = inputs
            return self.generate(z, labels, training=training)
        return self.generate(inputs, training=training)

    # === Compile ===

    def default_optimizer(self):
        return keras.optimizers.Adam(**self.optimizer_defaults)

    def compile(self, optimizer=None, discriminator_optimizer=None, generator_optimizer=None, loss=None,
                metrics=None, **kwargs):
        """Compiles with one optimizer per player.

        Args:
            optimizer: an `AdversarialOptimizer`, or an optimizer (name,
                config or instance) copied for each player not given below.
            discriminator_optimizer: the discriminator's optimizer.
            generator_optimizer: the generator's optimizer.
            **kwargs: other `keras.Model.compile` arguments (`jit_compile`,
                `run_eagerly`, `steps_per_execution`, ...). GANs define their
                own losses, so `loss` and `metrics` are refused.

        With nothing given, both players get `Adam(**optimizer_defaults)`.
        """
        if loss is not None or metrics:
            raise UsageError(f"{type(self).__name__} defines its own losses and metrics; compile without loss/metrics.")
        if isinstance(optimizer, AdversarialOptimizer):
            if discriminator_optimizer is not None or generator_optimizer is not None:
                raise UsageError("pass either an AdversarialOptimizer or per-player optimizers, not both.")
            composite = optimizer
        else:
            def pick(spec):
                if spec is not None:
                    return _fresh_optimizer(spec) if spec is optimizer else spec
                if optimizer is not None:
                    return _fresh_optimizer(optimizer)
                return self.default_optimizer()

            d_opt, g_opt = pick(discriminator_optimizer), pick(generator_optimizer)
            if d_opt is g_opt:
                g_opt = _fresh_optimizer(g_opt)
            composite = AdversarialOptimizer(d_opt, g_opt)
        super().compile(optimizer=composite, **kwargs)
        composite.build_players(self.discriminator_variables(), self.generator_variables())

    def compile_for_training(self, train_config, steps_per_epoch=None):
        """Compiles from a recipe's `[train]` table (called by `kgen train`).

        Both players get `train.optimizer` at `train.learning_rate` (and
        `train.clipnorm`) from `kgen.optimizers.make_optimizer`; Adam and AdamW
        take the model's other `optimizer_defaults` (e.g. beta_1 = 0.5).
        """
        if train_config.get("lr_schedule", "constant") != "constant":
            raise UsageError(
                f"{type(self).__name__} trains its players at a constant learning rate; "
                'remove train.lr_schedule (or set it to "constant").'
            )

        def make():
            return make_optimizer(train_config, defaults=self.optimizer_defaults)

        steps = backend.steps_per_execution(train_config.get("steps_per_execution", 1))
        self.compile(discriminator_optimizer=make(), generator_optimizer=make(), steps_per_execution=steps)

    # === Training ===

    def unpack_batch(self, data):
        """A `fit` batch -> (real examples, labels or None)."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        labels = y
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise UsageError("expected x or (x, labels) batches.")
            x, labels = x
        elif isinstance(x, dict):
            x, labels = x["x"], x.get("labels")
        if self.conditional and labels is None:
            raise UsageError(
                f"{type(self).__name__} is conditional on {self.num_classes} classes: fit it on (x, labels)."
            )
        if not self.conditional:
            labels = None
        return ops.cast(x, "float32"), labels

    def train_step(self, *args):
        return adversarial.train_step(self, *args)

    def test_step(self, *args):
        return adversarial.test_step(self, *args)

    def adversarial_step(self, data):
        """One training step of both players, written once for every backend."""
        real, labels = self.unpack_batch(data)
        batch = ops.shape(real)[0]
        opt = self.optimizer
        d_vars, g_vars = self.discriminator_variables(), self.generator_variables()

        for _ in range(self.discriminator_steps):
            with adversarial.no_grad():
                latent = self.draw_latent(batch)
                # map_structure: `generate` may return several tensors (CycleGAN's two translations).
                fake = keras.tree.map_structure(ops.stop_gradient, self.generate(latent, labels, training=True))

            def d_loss_fn(fake=fake, latent=latent):
                return self.discriminator_loss(real, fake, latent, labels, training=True)

            (d_loss, d_logs), grads = adversarial.value_and_grad(d_loss_fn, d_vars, has_aux=True)
            adversarial.apply_gradients(opt.discriminator_optimizer, grads, d_vars)

        latent = self.draw_latent(batch)

        extra = {"real": real} if self.generator_loss_takes_real else {}

        def g_loss_fn():
            return self.generator_loss(latent, labels, training=True, **extra)

        (g_loss, g_logs), grads = adversarial.value_and_grad(g_loss_fn, g_vars, has_aux=True)
        adversarial.apply_gradients(opt.generator_optimizer, grads, g_vars)
        with adversarial.no_grad():
            opt.iterations.assign_add(1)
        logs = {"d_loss": d_loss, "g_loss": g_loss, **d_logs, **g_logs}
        return self._record(self.end_step(logs, training=True))

    def evaluation_step(self, data):
        """Both players' losses on a batch, without updates (validation)."""
        real, labels = self.unpack_batch(data)
        batch = ops.shape(real)[0]
        latent = self.draw_latent(batch)
        fake = self.generate(latent, labels, training=False)
        d_loss, d_logs = self.discriminator_loss(real, fake, latent, labels, training=False)
        extra = {"real": real} if self.generator_loss_takes_real else {}
        g_loss, g_logs = self.generator_loss(self.draw_latent(batch), labels, training=False, **extra)
        logs = {"d_loss": d_loss, "g_loss": g_loss, **d_logs, **g_logs}
        return self._record(self.end_step(logs, training=False))

    def _record(self, logs):
        with adversarial.no_grad():
            logs = {k: ops.stop_gradient(ops.cast(v, "float32")) for k, v in logs.items()}
            for name, tracker in self.trackers.items():
                if name in logs:
                    tracker.update_state(logs[name])
            if getattr(self, "_loss_tracker", None) is not None:
                self._loss_tracker.update_state(logs["d_loss"] + logs["g_loss"])
            return {m.name: m.result() for m in self.metrics}

    # === Sampling ===

    def noise_spec(self, n):
        return [("normal", (n, self.latent_dim))]

    def sample_from_noise(self, z, labels=None):
        """Generated examples (NumPy) for latents z (and labels, conditional models)."""
        if self.conditional:
            if labels is None:
                raise UsageError(f"{type(self).__name__} is conditional: pass labels.")
            fn = self.compiled_fn("generate", lambda z, l: self.generate(z, l, training=False))
            return fn(np.asarray(z, "float32"), np.asarray(labels, "int32"))
        fn = self.compiled_fn("generate", lambda z: self.generate(z, training=False))
        return fn(np.asarray(z, "float32"))

    def generate_numpy(self, z, labels=None, batch_size=256):
        """`sample_from_noise` over any number of latents, as one NumPy array."""
        z = np.asarray(z, "float32")
        if self.conditional:
            labels = np.broadcast_to(np.asarray(labels, "int32"), (len(z),))
            return self.batched(lambda a, b: self.sample_from_noise(a, labels=b), [z, labels], batch_size)
        return self.batched(self.sample_from_noise, [z], batch_size)

    def interpolate(self, z_start, z_end, num_steps=8, method="slerp", labels=None):
        """Examples generated along a path from `z_start` to `z_end`.

        Args:
            z_start, z_end: latent vectors of shape `(latent_dim,)`.
            num_steps: points on the path, both ends included.
            method: "slerp" (spherical, White 2016; stays where Gaussian
                latents have their mass) or "linear".
            labels: one label (or one per step) for a conditional model.

        Returns:
            A NumPy array `(num_steps,) + input_shape`.
        """
        z = interpolate_latents(z_start, z_end, num_steps, method)
        return self.generate_numpy(z, labels)

    def latent_arithmetic(self, a, b, c, labels=None):
        """The example generated at mean(a) - mean(b) + mean(c) (Radford et al. 2016).

        Each argument is a latent `(latent_dim,)` or a group `(k, latent_dim)`
        that is averaged first ("smiling woman" - "neutral woman" + "neutral
        man" with three exemplars each in the DCGAN paper).
        """
        def mean(v):
            v = np.asarray(v, "float32")
            return v.reshape(-1, v.shape[-1]).mean(axis=0)

        z = (mean(a) - mean(b) + mean(c))[None]
        return self.generate_numpy(z, None if labels is None else np.asarray(labels).reshape(-1)[:1])[0]

    # === Export ===

    litert_endpoints = ("generate",)

    def export_endpoints(self):
        """generate(z[, labels]) -> examples in data space."""
        z_spec = ((None, self.latent_dim), "float32")
        if self.conditional:
            def generate(z, labels):
                return self.generate(z, labels, training=False)

            return {"generate": (generate, [z_spec, ((None,), "int32")])}

        def generate(z):
            return self.generate(z, training=False)

        return {"generate": (generate, [z_spec])}

