"""What every fully visible belief net shares: the pixel likelihood, exact log_prob, sampling.

An autoregressive model factorises an image in a fixed order,

    log p(x) = sum_d log p(x_d | x_<d),

so `log_prob` is exact: one network evaluation gives every conditional. Each
conditional is a Bernoulli (binary data: one logit per dimension) or a
categorical over the `num_levels` grey levels (softmax over L logits); the
target level of a pixel value x in [0, 1] is round(x * (L - 1)).

Sampling inverts each conditional's CDF with one uniform per dimension, so
the same uniforms give the same samples (and `sample(u)` exports without
random ops). Samplers are compiled loops on the backend (`keras.ops.fori_loop`
inside `compiled_fn`), never a Python loop around `predict`.
"""

import keras
import numpy as np
from keras import ops

from kgen import backend
from kgen.data.dataset import validate_array
from kgen.errors import DataError, UsageError
from kgen.models.base import GenerativeModel

LIKELIHOODS = ("bernoulli", "categorical")


def resolve_likelihood(likelihood, num_levels):
    """"auto" -> "bernoulli" for binary data, "categorical" for more levels; checks the choice."""
    if num_levels is None:
        raise UsageError(
            "autoregressive models need discrete pixels (num_levels); binarize the data "
            '(data.binarize = "static") or use a data set with integer levels.'
        )
    if likelihood == "auto":
        return "bernoulli" if num_levels == 2 else "categorical"
    if likelihood not in LIKELIHOODS:
        raise UsageError(f'unknown likelihood "{likelihood}"; choose "auto", "bernoulli" or "categorical".')
    if likelihood == "bernoulli" and num_levels != 2:
        raise UsageError(
            f"a bernoulli likelihood needs binary data, this data has {num_levels} levels; "
            'binarize it (data.binarize) or use likelihood = "categorical".'
        )
    return likelihood


class AutoregressiveModel(GenerativeModel):
    """Base class of the autoregressive models: likelihood, loss, log_prob, sample, export.

    Subclasses set `self.likelihood` (via `setup_likelihood`), implement
    `call(inputs)` returning logits of shape `(batch,) + data_shape + (P,)`
    (P = 1 for Bernoulli, `num_levels` for categorical) and
    `_sample(u, labels, temperature)` (a compiled-loop sampler).
    """

    log_prob_kind = "exact"

    def setup_likelihood(self, likelihood):
        self.likelihood = resolve_likelihood(likelihood, self.num_levels)
        self.out_per_dim = 1 if self.likelihood == "bernoulli" else self.num_levels

    # === Pixel likelihood ===

    def levels(self, x):
        """Integer level of each value in [0, 1]."""
        return ops.cast(ops.round(ops.cast(x, "float32") * (self.num_levels - 1)), "int32")

    def pixel_log_prob(self, x, logits):
        """log p(x_d | x_<d) for every dimension; logits (..., P), x (...)."""
        x = ops.cast(x, "float32")
        if self.likelihood == "bernoulli":
            t = ops.cast(self.levels(x), "float32")
            logits = logits[..., 0]
            return t * logits - ops.softplus(logits)
        logp = ops.log_softmax(logits, axis=-1)
        return ops.sum(logp * ops.one_hot(self.levels(x), self.num_levels), axis=-1)

    def log_likelihood(self, x, logits):
        """log p(x) per example (nats)."""
        ll = self.pixel_log_prob(x, logits)
        return ops.sum(ops.reshape(ll, (ops.shape(ll)[0], -1)), axis=-1)

    def pixel_sample(self, logits, u, temperature=None):
        """Inverse-CDF sample of every dimension: values in [0, 1] with u's shape.

        `temperature` (broadcastable to u) divides the logits: < 1 sharper, > 1 flatter.
        """
        if temperature is not None:
            logits = logits / ops.cast(temperature, logits.dtype)
        if self.likelihood == "bernoulli":
            return ops.cast(u < ops.sigmoid(logits[..., 0]), "float32")
        cdf = ops.cumsum(ops.softmax(logits, axis=-1), axis=-1)
        level = ops.sum(ops.cast(cdf[..., :-1] < u[..., None], "float32"), axis=-1)
        return level / (self.num_levels - 1)

    # === Training ===

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        images, _ = self.split_inputs(x)
        loss = -ops.mean(self.log_likelihood(images, y_pred))
        return backend.scale_loss_for_replicas(self.plus_layer_losses(loss))  # tf.distribute: a replica's share

    def check_data(self, data):
        super().check_data(data)
        if data.num_levels != self.num_levels:
            raise DataError(
                f"{data.name}: pixels take {data.num_levels or 'continuous'} levels, the model "
                f"expects {self.num_levels}; "
                + ('set data.binarize = "static" or "dynamic".' if self.num_levels == 2 else "train a new model.")
            )

    # === Likelihood ===

    def _check_x(self, x):
        x = validate_array(x, "log_prob input").astype("float32")
        if tuple(x.shape[1:]) != self.data_shape:
            raise DataError(f"log_prob: examples have shape {tuple(x.shape[1:])}, the model expects {self.data_shape}.")
        if x.min() < 0.0 or x.max() > 1.0:
            raise DataError(f"log_prob: pixel values must lie in [0, 1], found [{x.min():.3g}, {x.max():.3g}].")
        return x

    def _labels_array(self, n, labels):
        if self.conditional:
            if labels is None:
                raise UsageError(f"{type(self).__name__} is conditional: pass labels to score data.")
            return np.broadcast_to(np.asarray(labels, "int32"), (n,)).copy()
        return np.zeros(n, "int32")

    def _log_prob(self, x, labels):
        inputs = (x, labels) if self.conditional else x
        return self.log_likelihood(x, self.call(inputs, training=False))

    def log_prob(self, x, labels=None, batch_size=256, seed=None):
        """Exact log p(x) of each example in nats (NumPy, shape (N,)).

        Args:
            x: images (N,) + input_shape with values in [0, 1].
            labels: class labels (N,) for a conditional model.
            batch_size: examples per step.
            seed: unused (the likelihood is exact); kept for a common signature.
        """
        x = self._check_x(x)
        labs = self._labels_array(len(x), labels)
        fn = self.compiled_fn("log_prob", self._log_prob)
        return self.batched(fn, [x, labs], batch_size)

    # === Sampling ===

    def noise_spec(self, n):
        return [("uniform", (n,) + self.data_shape)]

    def _export_sample(self, u, labels):
        """The sampler of the exported `sample(u)` endpoint (ops every export format has)."""
        return self._sample(u, labels, None)

    def _sample_naive(self, u, labels, temperature):
        """Raster-order sampler: D steps, each a forward pass over the whole image; step t fixes value t.

        Values after t hold whatever the last pass drew; the masks keep them
        out of every conditional that matters, and step t' > t never changes
        value t again.
        """
        u = ops.convert_to_tensor(u, "float32")
        position = ops.reshape(ops.arange(self.num_dims, dtype="int32"), (1,) + self.data_shape)
        temp = None if temperature is None else ops.reshape(temperature, (-1,) + (1,) * (len(self.data_shape) + 1))

        def step(t, x):
            inputs = (x, labels) if self.conditional else x
            new = self.pixel_sample(self.call(inputs, training=False), u, temp)
            return ops.where(ops.equal(position, t), new, x)

        return ops.fori_loop(0, self.num_dims, step, ops.zeros_like(u))

    def sample_from_noise(self, u, labels=None, temperature=1.0):
        """Deterministic samples from one uniform per dimension, u of shape (n,) + input_shape."""
        u = np.asarray(u, "float32")
        labels = np.zeros(len(u), "int32") if labels is None else np.asarray(labels, "int32")
        temp = np.full((len(u),), temperature, "float32")
        return self.compiled_fn("sample", self._sample)(u, labels, temp)

    def sample(self, n, seed=None, labels=None, temperature=1.0, batch_size=256, progress=False, **options):
        """Draws `n` samples as a NumPy array of images in [0, 1].

        Args:
            n: number of samples.
            seed: integer seed; the same seed gives the same samples.
            labels: class labels (int or array of `n`) for conditional models;
                default cycles through the classes.
            temperature: divides every conditional's logits (1.0: the model;
                < 1 sharper, > 1 more diverse).
            batch_size: samples computed at once (one compiled loop each).
            progress: show a progress bar over the batches.
            **options: passed to `sample_from_noise` (e.g. `sampler="naive"`).
        """
        if temperature <= 0:
            raise UsageError(f"temperature must be > 0, got {temperature}.")
        labels = self._labels_for(n, labels)
        noise = self.draw_noise(n, seed)
        bar = keras.utils.Progbar(n, unit_name="sample") if progress else None
        outs = []
        for i in range(0, n, batch_size):
            batch = [z[i : i + batch_size] for z in noise]
            labs = None if labels is None else labels[i : i + batch_size]
            out = self.sample_from_noise(*batch, labels=labs, temperature=temperature, **options)
            outs.append(backend.to_numpy(out))
            if bar is not None:
                bar.update(min(n, i + batch_size))
        return np.concatenate(outs)

    # === Export ===

    # Both convert with TFLite builtins only (the sampler's loop is a WHILE op).
    litert_endpoints = ("log_prob", "sample")

    def export_endpoints(self):
        """log_prob(x) -> (batch,) nats; sample(u) -> images, u uniform of the image's shape.

        Conditional models take `labels` (int32, (batch,)) as the last input of each.
        """
        x_spec = ((None,) + self.data_shape, "float32")
        label_spec = [((None,), "int32")] if self.conditional else []

        def log_prob(x, *labels):
            lab = labels[0] if labels else None
            return self._log_prob(x, lab)

        def sample(u, *labels):
            lab = labels[0] if labels else ops.zeros(ops.shape(u)[:1], "int32")
            return self._export_sample(u, lab)

        return {
            "log_prob": (log_prob, [x_spec] + label_spec),
            "sample": (sample, [x_spec] + label_spec),
        }
