"""Semi-supervised GAN with feature matching (Salimans et al. 2016).

The discriminator is a (K+1)-way classifier: the K classes of the data and
"generated". It outputs K logits l_1..l_K; the logit of the fake class is
fixed at l_{K+1} = 0 (the softmax is invariant to a shift of all K+1
logits, so this loses nothing), which gives, with Z(x) = sum_k exp(l_k(x)),

    p(y = k | x, real) = softmax(l(x))_k                       (k <= K)
    D(x) = p(real | x) = Z(x) / (Z(x) + 1) = sigmoid(logsumexp(l(x)))

so the GAN's real/fake logit is logsumexp(l(x)). The discriminator
minimises

    d_loss = supervised_loss + unsupervised_weight * unsupervised_loss
    supervised_loss   = -E_{(x, y) labelled}[log p(y | x, real)]
    unsupervised_loss = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
                      = E_x[softplus(-lse(l(x)))] + E_z[softplus(lse(l(G(z))))]

(the unsupervised term on every training example, the supervised one on the
labelled ones only; unsupervised_weight = 0.5 is the authors' code's 0.5
factor on each unsupervised term). The generator uses feature matching: with
f(x) the discriminator's last hidden layer,

    g_loss = mean_j (E_x f_j(x) - E_z f_j(G(z)))^2,

the squared distance of the feature means of a real and a generated batch
(averaged over features, as in the authors' code).

How labels reach the step: the labelled subset is a fixed set of
`num_labeled` examples (class-balanced, chosen with the fixed `label_seed`,
see `select_labeled`) held by the model itself, as non-trainable weights
saved with it. Each step the discriminator sees a random batch of
`labeled_batch_size` of them beside the step's (unlabelled) batch, as in the
authors' code. `fit` takes `x` (labels in `fit((x, y))` are ignored): no
label beyond the chosen subset can reach training. `kgen train` chooses the
subset from the training split the first time it sees it (`check_data`);
from Python call `model.select_labeled(x, y)` or `model.set_labeled(x, y)`
before `fit`.

The paper's MNIST networks are options (the recipe
configs/semi_supervised_gan/binarized_mnist.toml sets them all; the defaults
keep the older networks, so older checkpoints load):

- `weight_norm`: Salimans & Kingma's weight normalisation,
  w = g v / ||v|| per output unit (`WeightNormDense`), on every dense layer
  of D and on G's output layer. As in the authors' code, D's hidden layers
  keep their scale g fixed (only the class head trains g) and G's output
  layer trains it. With `data_init` (default on) D is initialised from data
  before the first update, as in the authors' code: one pass over the
  labelled subset (Gaussian noise on, drawn from `label_seed`) sets each
  layer's g and b so that its pre-activations have mean 0 and standard
  deviation 1 (the authors used 500 training images; here the labelled
  subset, which every training path has).
- `discriminator_activation = "relu"`, `generator_activation = "softplus"`
  (G: Dense -> BatchNorm without scale -> softplus, as in the paper).
- `latent_distribution = "uniform"`: z ~ U[0, 1)^latent_dim.
- `ema_decay`: an exponential moving average of D's parameters (the
  classifier's) after every step,

      a_t = d_t a_{t-1} + (1 - d_t) p_t,   d_t = min(ema_decay, (1 + t) / (10 + t))

  with t the adversarial step count. `classify` and `evaluate_extra` use the
  averaged classifier (`ema=False` reads the trained one). The authors start
  the average at 0 with d = 0.9999, which only washes out over their 180,000
  steps; the warm-up d_t (TensorFlow's `ExponentialMovingAverage` with
  `num_updates`) makes the average usable after a few hundred steps. The
  average is held in a non-trainable copy of D, saved with the model, so a
  resumed run continues it.

Labelled examples from the test split (`labeled_split = "test"`): data sets
such as binarized_mnist have labels for their test split only. `kgen train`
then draws the labelled subset from `load_dataset(data.name, split="test")`
(located by $KGEN_DATA_DIR or the cache, not `data.dir`), and
`evaluate_extra` on that test split leaves those examples out (it reports
the errors on the rest and `errors_per_10000`).

#### References

- Salimans, T., Goodfellow, I., Zaremba, W., Cheung, V., Radford, A. & Chen,
  X. Improved Techniques for Training GANs. NeurIPS 2016.
- Odena, A. Semi-Supervised Learning with Generative Adversarial Networks.
  2016 (the K+1-class discriminator).
"""

import keras
import numpy as np
from keras import layers, ops

from kgen.backend import adversarial
from kgen.errors import DataError, UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel
from kgen.registry import register_layer, register_model

DISCRIMINATOR_ACTIVATIONS = ("leaky_relu", "relu")
GENERATOR_ACTIVATIONS = ("relu", "softplus")
LATENT_DISTRIBUTIONS = ("normal", "uniform")
LABELED_SPLITS = ("train", "test")


# === The K+1 formulation (pure functions of the K logits) ===


def real_logit(logits):
    """The real/fake logit of a K+1 classifier whose fake logit is 0: logsumexp of the K logits."""
    return ops.logsumexp(logits, axis=-1)


def supervised_loss(logits, labels):
    """-E log p(y | x, real): the K-way cross-entropy (the fake class drops out of p(y | x, real))."""
    logits, labels = ops.convert_to_tensor(logits), ops.cast(labels, "int32")
    picked = ops.sum(ops.multiply(logits, ops.one_hot(labels, ops.shape(logits)[-1])), axis=-1)
    return ops.mean(real_logit(logits) - picked)


def unsupervised_loss(real_logits, fake_logits):
    """-E log D(x) - E log(1 - D(G(z))) with D = sigmoid(logsumexp(l))."""
    return ops.mean(ops.softplus(-real_logit(real_logits))) + ops.mean(ops.softplus(real_logit(fake_logits)))


def feature_matching_loss(real_features, fake_features):
    """mean_j (mean_batch f_j(real) - mean_batch f_j(fake))^2."""
    return ops.mean(ops.square(ops.mean(real_features, axis=0) - ops.mean(fake_features, axis=0)))


def select_labeled(labels, num_labeled, num_classes, seed=0):
    """Indices of a class-balanced labelled subset, fixed by `seed`.

    Walks one seeded permutation of the examples and keeps, for each class c,
    the first `num_labeled // num_classes` examples of class c (the first
    `num_labeled % num_classes` classes get one more). Sorted indices.

    Raises:
        DataError: a class has too few examples.
    """
    labels = np.asarray(labels).reshape(-1)
    per_class = [num_labeled // num_classes + (1 if c < num_labeled % num_classes else 0)
                 for c in range(num_classes)]
    order = np.random.default_rng(seed).permutation(len(labels))
    chosen = []
    for c, k in enumerate(per_class):
        idx = order[labels[order] == c][:k]
        if len(idx) < k:
            raise DataError(
                f"class {c} has {len(idx)} labelled examples, {k} needed for num_labeled = {num_labeled} "
                f"balanced over {num_classes} classes; lower model.num_labeled."
            )
        chosen.append(idx)
    return np.sort(np.concatenate(chosen)).astype("int64")


# === Weight normalisation (Salimans & Kingma 2016) ===


@register_layer
class WeightNormDense(layers.Layer):
    """A dense layer with weight normalisation: y = act(x W + b), W[:, j] = g_j v[:, j] / ||v[:, j]||.

    The direction v and the scale g are separate weights (`kernel`,
    `scale`); `trainable_scale=False` keeps g fixed (it is then set only by a
    data-dependent initialisation, `data_init`).

    Args:
        units: output units.
        activation: a Keras activation (name) or None.
        use_bias: whether to add b.
        trainable_scale: whether the optimizer trains g.
        kernel_stddev: std of the N(0, s) draw of v. Only v's direction
            enters W, but its norm sets how far one optimizer step turns it
            (Adam's steps have a fixed size), so it acts as a learning-rate
            factor: the authors' D draws v ~ N(0, 0.1).
    """

    def __init__(self, units, activation=None, use_bias=True, trainable_scale=True, kernel_stddev=0.05, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.trainable_scale = bool(trainable_scale)
        self.kernel_stddev = float(kernel_stddev)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.kernel = self.add_weight(shape=(fan_in, self.units), name="kernel",
                                      initializer=keras.initializers.RandomNormal(stddev=self.kernel_stddev))
        self.scale = self.add_weight(shape=(self.units,), name="scale", initializer="ones",
                                     trainable=self.trainable_scale)
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros") if self.use_bias else None
        self.built = True

    def normalized_kernel(self):
        """W = g v / ||v|| (norm over the input axis, one per output unit)."""
        v = ops.convert_to_tensor(self.kernel)
        return v * (self.scale / ops.sqrt(ops.sum(ops.square(v), axis=0) + 1e-12))

    def preactivation(self, x):
        out = ops.matmul(x, self.normalized_kernel())
        return out + self.bias if self.use_bias else out

    def call(self, x):
        return self.activation(self.preactivation(x))

    def data_init(self, x, eps=1e-8):
        """Sets g and b so that the pre-activations of batch `x` (NumPy) have mean 0 and std 1; returns them."""
        pre = np.asarray(x, "float64") @ keras.ops.convert_to_numpy(self.normalized_kernel()).astype("float64")
        mean, std = pre.mean(axis=0), pre.std(axis=0) + eps
        self.scale.assign((keras.ops.convert_to_numpy(self.scale.value) / std).astype("float32"))
        if self.use_bias:
            self.bias.assign((-mean / std).astype("float32"))
        return ((pre - mean) / std).astype("float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "activation": keras.activations.serialize(self.activation),
                       "use_bias": self.use_bias, "trainable_scale": self.trainable_scale,
                       "kernel_stddev": self.kernel_stddev})
        return config


def ema_decay_at(decay, step):
    """The moving average's decay at adversarial step `step` (>= 1): min(decay, (1 + t) / (10 + t))."""
    return ops.minimum(ops.cast(decay, "float32"), (1.0 + step) / (10.0 + step))


@register_model("semi_supervised_gan", family="adversarial", conditional=False,
                tiny=dict(latent_dim=4, generator_units=(16,), discriminator_units=(16,), num_labeled=10,
                          labeled_batch_size=10, weight_norm=True, discriminator_activation="relu",
                          generator_activation="softplus", latent_distribution="uniform", ema_decay=0.999))
class SemiSupervisedGAN(AdversarialModel):
    """Semi-supervised GAN (Salimans et al. 2016): a K+1-way discriminator learns from a few labels, G matches features.

    Logs `d_loss`, `g_loss` (feature matching), `supervised_loss`,
    `unsupervised_loss`, `labeled_error` (the classifier's error on the
    step's labelled batch), and D's mean probability of "real" on real
    (`d_real`) and generated (`d_fake`) batches. `classify(x)` predicts
    classes; `evaluate_extra(prepared)` counts test errors.

    Args:
        input_shape: shape of one example: `(H, W, C)` images or `(D,)` points.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: must be None: the generator is unconditional (the K
            classes of the discriminator are `num_label_classes`).
        latent_dim: size of z (N(0, I) or U[0, 1), `latent_distribution`).
        num_label_classes: K, the classes of the data.
        num_labeled: size of the fixed labelled subset (100 in the paper's
            MNIST experiment).
        label_seed: seed that chooses the labelled subset.
        labeled_batch_size: labelled examples in each step (at most
            `num_labeled`; all of them when equal, as in the paper).
        generator_units: the generator's hidden Dense + BatchNorm layers.
        discriminator_units: the discriminator's hidden layers; the last one
            is the feature-matching layer.
        input_noise: std of the Gaussian noise added to D's input in training.
        hidden_noise: std of the Gaussian noise after each of D's hidden layers.
        unsupervised_weight: weight of the unsupervised term in `d_loss`.
        output_activation: "sigmoid" (images in [0, 1]), "tanh" ([-1, 1]),
            "linear" (points) or "auto".
        weight_norm: weight-normalised dense layers in D and G's output
            layer (the paper's networks).
        data_init: with `weight_norm`, initialise D's g and b from the
            labelled subset before the first update.
        discriminator_activation: "leaky_relu" (slope 0.2) or "relu" (paper).
        generator_activation: "relu" (Dense -> BatchNorm -> ReLU) or
            "softplus" (Dense -> BatchNorm without scale -> softplus, paper).
        latent_distribution: "normal" (z ~ N(0, I)) or "uniform" (z ~ U[0, 1),
            paper).
        ema_decay: decay of the moving average of D's parameters used for
            testing (0: none; the paper's code 0.9999).
        labeled_split: where `kgen train` draws the labelled subset: "train"
            (the training split's labels) or "test" (a data set labelled on its
            test split only, binarized_mnist; `evaluate_extra` then leaves
            those examples out).

    Example:

    >>> import kgen
    >>> data = kgen.load_dataset("digits")
    >>> ssgan = kgen.build_model("semi_supervised_gan", input_shape=(8, 8, 1), num_labeled=100)
    >>> _ = ssgan.select_labeled(data.x, data.y)  # 10 per class, fixed by label_seed
    >>> ssgan.compile()
    >>> _ = ssgan.fit(data.x, epochs=1, batch_size=100, verbose=0)
    >>> ssgan.classify(data.x[:4]).shape
    (4,)
    """

    metric_names = ("d_loss", "g_loss", "supervised_loss", "unsupervised_loss", "labeled_error", "d_real", "d_fake")
    generator_loss_takes_real = True
    # Salimans et al.'s MNIST run: Adam(3e-4, beta_1 = 0.5).
    optimizer_defaults = {"learning_rate": 3e-4, "beta_1": 0.5}

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=100, num_label_classes=10,
                 num_labeled=100, label_seed=0, labeled_batch_size=100, generator_units=(500, 500),
                 discriminator_units=(1000, 500, 250, 250, 250), input_noise=0.3, hidden_noise=0.5,
                 unsupervised_weight=0.5, output_activation="auto", weight_norm=False, data_init=True,
                 discriminator_activation="leaky_relu", generator_activation="relu", latent_distribution="normal",
                 ema_decay=0.0, labeled_split="train", **kwargs):
        if num_classes is not None:
            raise UsageError(
                "the semi-supervised GAN's generator is unconditional; give the number of classes as "
                "num_label_classes, not num_classes."
            )
        super().__init__(input_shape, num_levels, None, latent_dim, output_activation, **kwargs)
        if int(num_label_classes) < 2:
            raise UsageError(f"num_label_classes must be at least 2, got {num_label_classes}.")
        if int(num_labeled) < int(num_label_classes):
            raise UsageError(
                f"num_labeled ({num_labeled}) must be at least num_label_classes ({num_label_classes}): "
                "the labelled subset holds every class."
            )
        if int(labeled_batch_size) < 1:
            raise UsageError(f"labeled_batch_size must be at least 1, got {labeled_batch_size}.")
        if not discriminator_units:
            raise UsageError("discriminator_units needs at least one layer (the feature-matching layer).")
        for key, value, allowed in (("discriminator_activation", discriminator_activation, DISCRIMINATOR_ACTIVATIONS),
                                    ("generator_activation", generator_activation, GENERATOR_ACTIVATIONS),
                                    ("latent_distribution", latent_distribution, LATENT_DISTRIBUTIONS),
                                    ("labeled_split", labeled_split, LABELED_SPLITS)):
            if value not in allowed:
                raise UsageError(f'unknown {key} "{value}"; choose one of {", ".join(allowed)}.')
        if not 0.0 <= float(ema_decay) < 1.0:
            raise UsageError(f"ema_decay must lie in [0, 1) (0: no moving average), got {ema_decay}.")
        self.num_label_classes = int(num_label_classes)
        self.num_labeled = int(num_labeled)
        self.label_seed = int(label_seed)
        self.labeled_batch_size = int(labeled_batch_size)
        self.generator_units = tuple(int(u) for u in generator_units)
        self.discriminator_units = tuple(int(u) for u in discriminator_units)
        self.input_noise = float(input_noise)
        self.hidden_noise = float(hidden_noise)
        self.unsupervised_weight = float(unsupervised_weight)
        self.weight_norm = bool(weight_norm)
        self.data_init = bool(data_init)
        self.discriminator_activation = discriminator_activation
        self.generator_activation = generator_activation
        self.latent_distribution = latent_distribution
        self.ema_decay = float(ema_decay)
        self.labeled_split = labeled_split

        # === Players ===
        if self.generator_activation == "relu" and not self.weight_norm:
            self.generator = networks.mlp_generator(self.latent_dim, self.generator_units, self.data_shape,
                                                    self.output_activation, batch_norm=True)
        else:
            self.generator = self._paper_generator()
        # The body ends at the last hidden layer: the features that G matches.
        self.discriminator, self.class_head = self._discriminator_stacks("")
        if self.ema_decay > 0:
            # The moving average: a non-trainable copy of D (saved with the model).
            self.ema_discriminator, self.ema_class_head = self._discriminator_stacks("ema_", trainable=False)
        if self.weight_norm and self.data_init:
            # 1 once D has been initialised from data (saved: a resumed run does not redo it).
            self.data_initialized = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False,
                                                    name="data_initialized")

        # === The fixed labelled subset (saved with the model) ===
        self.labeled_x = self.add_weight(shape=(self.num_labeled,) + self.data_shape, initializer="zeros",
                                         trainable=False, name="labeled_x")
        self.labeled_y = self.add_weight(shape=(self.num_labeled,), initializer=keras.initializers.Constant(-1),
                                         dtype="int32", trainable=False, name="labeled_y")
        if self.labeled_split == "test":
            # Indices of the labelled examples in the test split (left out by evaluate_extra).
            self.labeled_index = self.add_weight(shape=(self.num_labeled,), initializer=keras.initializers.Constant(-1),
                                                 dtype="int32", trainable=False, name="labeled_index")
        self.built = True

    def _dense(self, units, name, trainable_scale=False, activation=None, kernel_stddev=0.1):
        if self.weight_norm:
            # v's scale as in the authors' code: N(0, 0.1) in D; about Glorot's (std ~0.04) in G's output layer.
            return WeightNormDense(units, activation=activation, trainable_scale=trainable_scale,
                                   kernel_stddev=kernel_stddev, name=name)
        return layers.Dense(units, activation=activation, name=name)

    def _discriminator_stacks(self, prefix, trainable=True):
        """(body, class head): built Sequentials, named `{prefix}discriminator` and `{prefix}class_head`."""
        body = [layers.GaussianNoise(self.input_noise, name="input_noise")] if self.input_noise > 0 else []
        for i, u in enumerate(self.discriminator_units):
            if i > 0 and self.hidden_noise > 0:
                body.append(layers.GaussianNoise(self.hidden_noise, name=f"noise_{i}"))
            body.append(self._dense(u, f"dense_{i}"))
            body.append(networks.leaky_relu(f"lrelu_{i}") if self.discriminator_activation == "leaky_relu"
                        else layers.ReLU(name=f"relu_{i}"))
        discriminator = keras.Sequential(body, name=f"{prefix}discriminator")
        discriminator.build((None, self.num_dims))
        head = [layers.GaussianNoise(self.hidden_noise, name="noise")] if self.hidden_noise > 0 else []
        # The authors' code trains g of the class head only.
        class_head = keras.Sequential(head + [self._dense(self.num_label_classes, "logits", trainable_scale=True)],
                                      name=f"{prefix}class_head")
        class_head.build((None, self.discriminator_units[-1]))
        if not trainable:
            discriminator.trainable = False
            class_head.trainable = False
        return discriminator, class_head

    def _paper_generator(self):
        """z -> [Dense -> BatchNorm -> activation]* -> (weight-normalised) Dense -> output activation -> reshape."""
        act = self.generator_activation
        stack = []
        for i, u in enumerate(self.generator_units):
            stack += [layers.Dense(u, use_bias=False, name=f"dense_{i}"),
                      # The paper's batch norm in G has a shift but no scale (the next layer's weights scale).
                      layers.BatchNormalization(momentum=0.9, epsilon=1e-5, scale=act == "relu", name=f"norm_{i}"),
                      layers.Activation(act, name=f"{act}_{i}")]
        stack.append(self._dense(self.num_dims, "out", trainable_scale=True, activation=self.output_activation,
                                 kernel_stddev=0.04))
        stack.append(layers.Reshape(self.data_shape, name="reshape"))
        generator = keras.Sequential(stack, name="generator")
        generator.build((None, self.latent_dim))
        return generator

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_label_classes": self.num_label_classes,
            "num_labeled": self.num_labeled,
            "label_seed": self.label_seed,
            "labeled_batch_size": self.labeled_batch_size,
            "generator_units": list(self.generator_units),
            "discriminator_units": list(self.discriminator_units),
            "input_noise": self.input_noise,
            "hidden_noise": self.hidden_noise,
            "unsupervised_weight": self.unsupervised_weight,
            "weight_norm": self.weight_norm,
            "data_init": self.data_init,
            "discriminator_activation": self.discriminator_activation,
            "generator_activation": self.generator_activation,
            "latent_distribution": self.latent_distribution,
            "ema_decay": self.ema_decay,
            "labeled_split": self.labeled_split,
        })
        return config

    # === Players ===

    def discriminator_variables(self):
        return list(self.discriminator.trainable_variables) + list(self.class_head.trainable_variables)

    def draw_latent(self, batch):
        """z ~ N(0, I) or U[0, 1) (`latent_distribution`), drawn with the model's seed generator."""
        if self.latent_distribution == "uniform":
            return keras.random.uniform((batch, self.latent_dim), seed=self.seed_generator)
        return super().draw_latent(batch)

    def noise_spec(self, n):
        return [(self.latent_distribution, (n, self.latent_dim))]

    def generate(self, latent, labels=None, training=False):
        return self.generator(ops.cast(latent, "float32"), training=training)

    def features(self, x, training=False, ema=False):
        """f(x): the discriminator's last hidden layer (the feature-matching layer); `ema`: the averaged D's."""
        x = ops.reshape(ops.cast(x, "float32"), (ops.shape(x)[0], self.num_dims))
        return (self.ema_discriminator if ema else self.discriminator)(x, training=training)

    def class_logits(self, x, training=False, ema=False):
        """The K logits l(x); the fake class's logit is 0. `ema`: the moving average's (needs `ema_decay`)."""
        head = self.ema_class_head if ema else self.class_head
        return head(self.features(x, training, ema), training=training)

    # === Moving average and data-dependent initialisation ===

    @property
    def has_ema(self):
        return self.ema_decay > 0

    def ema_pairs(self):
        """(D's variable, its average) for every weight of D (the scales g that D does not train included)."""
        pairs = []
        for src_stack, dst_stack in ((self.discriminator, self.ema_discriminator),
                                     (self.class_head, self.ema_class_head)):
            for src_layer, dst_layer in zip(src_stack.layers, dst_stack.layers):
                by_name = {v.name: v for v in dst_layer.weights}
                pairs += [(v, by_name[v.name]) for v in src_layer.weights]
        return pairs

    def update_ema(self, step):
        """a <- d a + (1 - d) p for D's trained weights, d = `ema_decay_at(ema_decay, step)`.

        The scales g that D does not train change only in `initialize_from_data`, which copies them.
        """
        decay = ema_decay_at(self.ema_decay, ops.cast(step, "float32"))
        with adversarial.no_grad():
            for src, dst in self.ema_pairs():
                if src.trainable:
                    value = ops.stop_gradient(ops.convert_to_tensor(src))
                    dst.assign(decay * dst + (1.0 - decay) * value)

    def reset_ema(self):
        """Sets the moving average to D's current weights."""
        for src, dst in self.ema_pairs():
            dst.assign(np.array(keras.ops.convert_to_numpy(src.value)))  # a copy: JAX must not share buffers

    def end_step(self, logs, training):
        if training and self.has_ema:
            self.update_ema(self.optimizer.iterations)
        return logs

    def initialize_from_data(self, x=None, seed=None):
        """Data-dependent initialisation of the weight-normalised D (Salimans & Kingma 2016).

        One pass of `x` (default: the labelled subset) through D with its
        Gaussian noise on (drawn with `seed`, default `label_seed`): each
        layer's g and b are set so that its pre-activations have mean 0 and
        std 1 on that batch. Resets the moving average to the result.
        """
        if not self.weight_norm:
            raise UsageError("initialize_from_data needs weight_norm = true.")
        x = np.asarray(keras.ops.convert_to_numpy(self.labeled_x.value) if x is None else x, "float32")
        h = x.reshape(len(x), self.num_dims)
        rng = np.random.default_rng(self.label_seed if seed is None else int(seed))
        for layer in list(self.discriminator.layers) + list(self.class_head.layers):
            if isinstance(layer, layers.GaussianNoise):
                h = h + rng.normal(0.0, layer.stddev, h.shape).astype("float32")
            elif isinstance(layer, WeightNormDense):
                h = np.asarray(keras.ops.convert_to_numpy(layer.activation(layer.data_init(h))), "float32")
            else:
                h = np.asarray(keras.ops.convert_to_numpy(layer(h)), "float32")
        if self.has_ema:
            self.reset_ema()
        if hasattr(self, "data_initialized"):
            self.data_initialized.assign(1)

    def discriminate(self, x, training=False):
        """The real/fake logit logsumexp(l(x)) per example (D(x) = sigmoid of it)."""
        return real_logit(self.class_logits(x, training))

    # === The labelled subset ===

    @property
    def has_labeled(self):
        """Whether the labelled subset has been chosen (`select_labeled` / `set_labeled`)."""
        return bool(np.min(keras.ops.convert_to_numpy(self.labeled_y.value)) >= 0)

    def set_labeled(self, x, y):
        """Stores exactly these `num_labeled` labelled examples (in the space `fit` sees)."""
        x = np.asarray(x, "float32")
        y = np.asarray(y).reshape(-1)
        if x.shape != (self.num_labeled,) + self.data_shape or y.shape != (self.num_labeled,):
            raise UsageError(
                f"set_labeled expects {self.num_labeled} examples of shape {self.data_shape} and "
                f"{self.num_labeled} labels, got {x.shape} and {y.shape}; change model.num_labeled to match."
            )
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= self.num_label_classes:
            raise DataError(f"labels must be integers in 0..{self.num_label_classes - 1}; "
                            f"got {y.dtype} in [{y.min()}, {y.max()}].")
        self.labeled_x.assign(x)
        self.labeled_y.assign(y.astype("int32"))

    def select_labeled(self, x, y, seed=None):
        """Chooses the class-balanced labelled subset of (x, y) with `label_seed` and stores it.

        Only the chosen examples' labels are kept; returns their indices.
        """
        x = np.asarray(x)
        y = np.asarray(y).reshape(-1)
        if len(x) != len(y):
            raise UsageError(f"select_labeled got {len(x)} examples and {len(y)} labels.")
        if y.size and (y.min() < 0 or y.max() >= self.num_label_classes):
            raise DataError(f"labels must lie in 0..{self.num_label_classes - 1} (num_label_classes), "
                            f"found [{y.min()}, {y.max()}]; set model.num_label_classes.")
        idx = select_labeled(y, self.num_labeled, self.num_label_classes,
                             self.label_seed if seed is None else int(seed))
        self.set_labeled(x[idx], y[idx])
        return idx

    def check_data(self, data):
        """Also chooses the labelled subset from the training split the first time (`kgen train`)."""
        super().check_data(data)
        if self.labeled_split == "test":
            if data.split == "train" and not self.has_labeled:
                self._labels_from_test_split(data)
            return
        if data.y is None:
            if data.split == "train" and not self.has_labeled:
                raise DataError(
                    f"{data.name} has no labels: the semi-supervised GAN needs {self.num_labeled} labelled "
                    "training examples. Train on a labelled data set (digits; mnist with "
                    "data.binarize = \"static\" if keras' mnist.npz is on this machine; a .npz with keys x "
                    "and y)."
                )
            return
        if int(data.y.max()) >= self.num_label_classes:
            raise DataError(f"{data.name}: label {int(data.y.max())} is out of range for "
                            f"num_label_classes = {self.num_label_classes}; set model.num_label_classes.")
        if data.split == "train" and not self.has_labeled:
            # The model sees data as the pipeline scales it: [-1, 1] for a tanh generator.
            x = data.x * 2.0 - 1.0 if self.output_activation == "tanh" else data.x
            self.select_labeled(x, data.y)

    def _labels_from_test_split(self, data):
        """`labeled_split = "test"`: draws the labelled subset from the data set's test split."""
        from kgen.data import load_dataset

        test = load_dataset(data.name, split="test")
        if test.y is None:
            raise DataError(f"{data.name}: model.labeled_split = \"test\" but its test split has no labels.")
        if test.shape != self.data_shape:
            raise DataError(f"{data.name}: test examples of shape {test.shape}, the model's are {self.data_shape}.")
        x = test.x * 2.0 - 1.0 if self.output_activation == "tanh" else test.x
        idx = self.select_labeled(x, test.y)
        self.labeled_index.assign(idx.astype("int32"))
        return idx

    def fit(self, *args, **kwargs):
        if not self.has_labeled:
            raise UsageError(
                f"choose the {self.num_labeled} labelled examples first: model.select_labeled(x, y) "
                "(class-balanced, fixed by label_seed) or model.set_labeled(x_labeled, y_labeled)."
            )
        if hasattr(self, "data_initialized") and int(keras.ops.convert_to_numpy(self.data_initialized.value)) == 0:
            self.initialize_from_data()
        return super().fit(*args, **kwargs)

    # === Losses ===

    def labeled_batch(self):
        """A random batch of the labelled subset (without repeats): (x, y)."""
        size = min(self.labeled_batch_size, self.num_labeled)
        idx = keras.random.shuffle(ops.arange(self.num_labeled, dtype="int32"), seed=self.seed_generator)[:size]
        return ops.take(self.labeled_x, idx, axis=0), ops.take(self.labeled_y, idx, axis=0)

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        x_lab, y_lab = self.labeled_batch()
        lab_logits = self.class_logits(x_lab, training)
        real_logits = self.class_logits(real, training)
        fake_logits = self.class_logits(fake, training)
        sup = supervised_loss(lab_logits, y_lab)
        unsup = unsupervised_loss(real_logits, fake_logits)
        wrong = ops.cast(ops.not_equal(ops.cast(ops.argmax(lab_logits, axis=-1), "int32"), y_lab), "float32")
        logs = {
            "supervised_loss": sup,
            "unsupervised_loss": unsup,
            "labeled_error": ops.mean(wrong),
            "d_real": ops.mean(ops.sigmoid(real_logit(real_logits))),
            "d_fake": ops.mean(ops.sigmoid(real_logit(fake_logits))),
        }
        return sup + self.unsupervised_weight * unsup, logs

    def generator_loss(self, latent, labels=None, training=True, real=None):
        if real is None:
            raise UsageError("feature matching needs the step's real batch: generator_loss(..., real=x).")
        fake_features = self.features(self.generate(latent, training=training), training)
        real_features = ops.stop_gradient(self.features(real, training))
        return feature_matching_loss(real_features, fake_features), {}

    # === Classifier ===

    def classify(self, x, batch_size=256, ema=None):
        """Predicted classes (NumPy int) of examples x: argmax of the K logits (the fake class excluded).

        `ema`: use the moving average of D (default: whenever the model keeps one).
        """
        x = np.asarray(x, "float32")
        if x.shape[1:] != self.data_shape:
            raise UsageError(f"classify expects examples of shape {self.data_shape}, got {x.shape[1:]}.")
        ema = self.has_ema if ema is None else bool(ema)
        if ema and not self.has_ema:
            raise UsageError("this model keeps no moving average of D (ema_decay = 0); classify with ema=False.")
        fn = self.compiled_fn("classify_ema" if ema else "classify",
                              lambda a: ops.argmax(self.class_logits(a, training=False, ema=ema), axis=-1))
        return self.batched(fn, [x], batch_size).astype("int64")

    def labeled_test_indices(self, x):
        """Indices of the labelled subset in test examples `x` when it was drawn from them, else None."""
        if self.labeled_split != "test" or not self.has_labeled:
            return None
        idx = keras.ops.convert_to_numpy(self.labeled_index.value).astype("int64")
        if idx.min() < 0 or idx.max() >= len(x):
            return None
        stored = keras.ops.convert_to_numpy(self.labeled_x.value)
        return idx if np.allclose(np.asarray(x[idx], "float32"), stored, atol=1e-5) else None

    def evaluate_extra(self, prepared, batch_size=256, ema=None):
        """Classifier errors on a labelled split (`Prepared` or `Dataset`: anything with `.x`, `.y`).

        With `labeled_split = "test"`, the labelled examples are left out when
        `prepared` holds them (the test split they came from).

        Returns:
            `{"classifier": {"errors": int, "examples": int, "error_rate": float, "errors_per_10000": float,
            "labelled_left_out": int, "moving_average": bool}}`.

        Raises:
            DataError: the split has no labels.
        """
        y = getattr(prepared, "y", None)
        if y is None:
            source = getattr(prepared, "source", prepared)
            raise DataError(f"{getattr(source, 'name', 'the data')} has no labels: the classifier's error "
                            "cannot be measured; evaluate on a labelled data set (digits, mnist, .npz with y).")
        y = np.asarray(y).reshape(-1)
        x = np.asarray(prepared.x)
        keep = np.ones(len(y), bool)
        left_out = self.labeled_test_indices(x)
        if left_out is not None:
            keep[left_out] = False
        ema = self.has_ema if ema is None else bool(ema)
        predictions = self.classify(x[keep], batch_size=batch_size, ema=ema)
        errors = int(np.sum(predictions != y[keep]))
        n = int(keep.sum())
        return {"classifier": {"errors": errors, "examples": n, "error_rate": errors / max(n, 1),
                               "errors_per_10000": 10000.0 * errors / max(n, 1),
                               "labelled_left_out": int(len(y) - n), "moving_average": ema}}
