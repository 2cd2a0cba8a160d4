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

Not reproduced: weight normalisation and the ReLU/softplus details of the
paper's MNIST networks (here LeakyReLU(0.2) in D, ReLU + BatchNorm in G);
the Gaussian noise layers of its discriminator are kept (std 0.3 on the
input, 0.5 on every hidden layer).

#### References

- Salimans, T., Goodfellow, I., Zaremba, W., Cheung, V., Radford, A. & Chen,
  X. Improved Techniques for Training GANs. NeurIPS 2016.
- Odena, A. Semi-Supervised Learning with Generative Adversarial Networks.
  2016 (the K+1-class discriminator).
"""

import keras
import numpy as np
from keras import layers, ops

from kgen.errors import DataError, UsageError
from kgen.models.adversarial import networks
from kgen.models.adversarial.base import AdversarialModel
from kgen.registry import register_model


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


@register_model("semi_supervised_gan", family="adversarial", conditional=False,
                tiny=dict(latent_dim=4, generator_units=(16,), discriminator_units=(16,), num_labeled=10,
                          labeled_batch_size=10))
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
        latent_dim: size of z ~ N(0, I).
        num_label_classes: K, the classes of the data.
        num_labeled: size of the fixed labelled subset (100 in the paper's
            MNIST experiment).
        label_seed: seed that chooses the labelled subset.
        labeled_batch_size: labelled examples in each step (at most
            `num_labeled`; all of them when equal, as in the paper).
        generator_units: the generator's hidden ReLU + BatchNorm layers.
        discriminator_units: the discriminator's hidden LeakyReLU(0.2)
            layers; the last one is the feature-matching layer.
        input_noise: std of the Gaussian noise added to D's input in training.
        hidden_noise: std of the Gaussian noise after each of D's hidden layers.
        unsupervised_weight: weight of the unsupervised term in `d_loss`.
        output_activation: "sigmoid" (images in [0, 1]), "tanh" ([-1, 1]),
            "linear" (points) or "auto".

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
                 unsupervised_weight=0.5, output_activation="auto", **kwargs):
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
        self.num_label_classes = int(num_label_classes)
        self.num_labeled = int(num_labeled)
        self.label_seed = int(label_seed)
        self.labeled_batch_size = int(labeled_batch_size)
        self.generator_units = tuple(int(u) for u in generator_units)
        self.discriminator_units = tuple(int(u) for u in discriminator_units)
        self.input_noise = float(input_noise)
        self.hidden_noise = float(hidden_noise)
        self.unsupervised_weight = float(unsupervised_weight)

        # === Players ===
        self.generator = networks.mlp_generator(self.latent_dim, self.generator_units, self.data_shape,
                                                self.output_activation, batch_norm=True)
        body = [layers.GaussianNoise(self.input_noise, name="input_noise")] if self.input_noise > 0 else []
        for i, u in enumerate(self.discriminator_units):
            if i > 0 and self.hidden_noise > 0:
                body.append(layers.GaussianNoise(self.hidden_noise, name=f"noise_{i}"))
            body += [layers.Dense(u, name=f"dense_{i}"), networks.leaky_relu(f"lrelu_{i}")]
        # The body ends at the last hidden layer: the features that G matches.
        self.discriminator = keras.Sequential(body, name="discriminator")
        self.discriminator.build((None, self.num_dims))
        head = [layers.GaussianNoise(self.hidden_noise, name="noise")] if self.hidden_noise > 0 else []
        self.class_head = keras.Sequential(head + [layers.Dense(self.num_label_classes, name="logits")],
                                           name="class_head")
        self.class_head.build((None, self.discriminator_units[-1]))

        # === The fixed labelled subset (saved with the model) ===
        self.labeled_x = self.add_weight(shape=(self.num_labeled,) + self.data_shape, initializer="zeros",
                                         trainable=False, name="labeled_x")
        self.labeled_y = self.add_weight(shape=(self.num_labeled,), initializer=keras.initializers.Constant(-1),
                                         dtype="int32", trainable=False, name="labeled_y")
        self.built = True

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
        })
        return config

    # === Players ===

    def discriminator_variables(self):
        return list(self.discriminator.trainable_variables) + list(self.class_head.trainable_variables)

    def generate(self, latent, labels=None, training=False):
        return self.generator(ops.cast(latent, "float32"), training=training)

    def features(self, x, training=False):
        """f(x): the discriminator's last hidden layer (the feature-matching layer)."""
        x = ops.reshape(ops.cast(x, "float32"), (ops.shape(x)[0], self.num_dims))
        return self.discriminator(x, training=training)

    def class_logits(self, x, training=False):
        """The K logits l(x); the fake class's logit is 0."""
        return self.class_head(self.features(x, training), training=training)

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

    def fit(self, *args, **kwargs):
        if not self.has_labeled:
            raise UsageError(
                f"choose the {self.num_labeled} labelled examples first: model.select_labeled(x, y) "
                "(class-balanced, fixed by label_seed) or model.set_labeled(x_labeled, y_labeled)."
            )
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

    def classify(self, x, batch_size=256):
        """Predicted classes (NumPy int) of examples x: argmax of the K logits (the fake class excluded)."""
        x = np.asarray(x, "float32")
        if x.shape[1:] != self.data_shape:
            raise UsageError(f"classify expects examples of shape {self.data_shape}, got {x.shape[1:]}.")
        fn = self.compiled_fn("classify", lambda a: ops.argmax(self.class_logits(a, training=False), axis=-1))
        return self.batched(fn, [x], batch_size).astype("int64")

    def evaluate_extra(self, prepared, batch_size=256):
        """Classifier errors on a labelled split (`Prepared` or `Dataset`: anything with `.x`, `.y`).

        Returns:
            `{"classifier": {"errors": int, "examples": int, "error_rate": float}}`.

        Raises:
            DataError: the split has no labels.
        """
        y = getattr(prepared, "y", None)
        if y is None:
            source = getattr(prepared, "source", prepared)
            raise DataError(f"{getattr(source, 'name', 'the data')} has no labels: the classifier's error "
                            "cannot be measured; evaluate on a labelled data set (digits, mnist, .npz with y).")
        y = np.asarray(y).reshape(-1)
        predictions = self.classify(prepared.x, batch_size=batch_size)
        errors = int(np.sum(predictions != y))
        return {"classifier": {"errors": errors, "examples": int(len(y)), "error_rate": errors / max(len(y), 1)}}
