"""The base class of the normalizing flows.

A flow is an invertible map f from data x to a latent z with a standard
normal density, so the change of variables gives the exact likelihood

    log p(x) = log N(f(x); 0, I) + log |det df/dx|.

A kgen flow is a list of `FlowStep` layers (Keras 3 layers that own the
conditioner networks and build TFP bijectors on demand), applied in order to
encode and in reverse to decode. Multiscale image flows add two
volume-preserving operations between steps: "squeeze" (2x2 blocks to
channels) and "split" (factor half of the channels out to the latent).
The latent z always has the data's shape: the factored-out parts are
flattened and concatenated in a fixed order.
"""


import numpy as np
from keras import ops

from kgen import backend
from kgen.errors import UsageError
from kgen.models.base import LOG_2PI, GenerativeModel
from kgen.models.flows import substrate
from kgen.models.flows.steps import squeeze2x2, unsqueeze2x2



class Flow(GenerativeModel):
    """A normalizing flow: exact `log_prob`, one-pass `sample_from_noise`.

    Subclasses call `add_step` (and `add_op("squeeze" | "split" |
    "flatten")`) in `__init__`, in the encoding order. Runs on TensorFlow
    and JAX (TFP's substrates); building one on PyTorch raises
    `kgen.errors.BackendError`.

    `call(x)` returns log p(x) per example and `compute_loss` its negative
    mean, so `fit` trains by maximum likelihood on every supported backend.
    """

    log_prob_kind = "exact"
    draws_density = True  # 2-D data: the epoch figure shows the density (kgen.figures)
    litert_endpoints = ("log_prob", "sample")

    def __init__(self, input_shape, num_levels=None, num_classes=None, **kwargs):
        substrate.require_flow_backend(f"{type(self).__name__} (a TensorFlow Probability flow)")
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        self.steps = []
        # The encoding order: ("step", i), ("squeeze",), ("split",), ("flatten",).
        self._flow_plan = []

    def add_step(self, step):
        """Appends a `FlowStep` (encoding order); returns it."""
        self._flow_plan.append(("step", len(self.steps)))
        self.steps.append(step)
        return step

    def add_op(self, op):
        """Appends "squeeze" (2x2 blocks to channels), "split" (factor out the
        second half of the channels) or "flatten" (images to vectors)."""
        if op not in ("squeeze", "split", "flatten"):
            raise ValueError(f"unknown flow op {op!r}")
        self._flow_plan.append((op,))

    def shape_after(self):
        """The event shape the next step added would see."""
        return self._factor_shapes()[-1]

    def build(self, input_shape=None):
        self.built = True

    # === The transform ===

    def context(self, labels):
        """One-hot labels (the conditioners' context), or None."""
        if not self.conditional or labels is None:
            return None
        return self.one_hot_labels(labels)

    def encode(self, x, labels=None, training=False):
        """Data -> (z with the data's shape, log|det dz/dx| per example)."""
        ctx = self.context(labels)
        h = ops.cast(x, "float32")
        logdet = 0.0
        factored = []
        for op in self._flow_plan:
            if op[0] == "step":
                h, ld = self.steps[op[1]].encode(h, ctx, training)
                logdet = logdet + ld
            elif op[0] == "squeeze":
                h = squeeze2x2(h)
            elif op[0] == "flatten":
                h = ops.reshape(h, (-1, self.num_dims))
            else:  # split
                c = h.shape[-1] // 2
                factored.append(h[..., c:])
                h = h[..., :c]
        z = self._join(factored + [h])
        zero = ops.sum(ops.zeros_like(ops.reshape(z, (-1, self.num_dims))[:, :1]), axis=-1)
        return z, logdet + zero  # (batch,) even when every step is volume-preserving

    def decode(self, z, labels=None):
        """Latent (data-shaped) -> data."""
        ctx = self.context(labels)
        parts = self._unjoin(ops.cast(z, "float32"))
        h = parts.pop()
        for op in reversed(self._flow_plan):
            if op[0] == "step":
                h = self.steps[op[1]].decode(h, ctx)
            elif op[0] == "squeeze":
                h = unsqueeze2x2(h)
            elif op[0] == "flatten":
                h = ops.reshape(h, (-1,) + self.data_shape)
            else:
                h = ops.concatenate([h, parts.pop()], axis=-1)
        return h

    def _factor_shapes(self):
        """Shapes of the latent parts `encode` factors out, in order, then the last."""
        shape = self.data_shape
        shapes = []
        for op in self._flow_plan:
            if op[0] == "squeeze":
                shape = (shape[0] // 2, shape[1] // 2, shape[2] * 4)
            elif op[0] == "flatten":
                shape = (self.num_dims,)
            elif op[0] == "split":
                c = shape[-1] // 2
                if c == 0:
                    raise ValueError(f"cannot split {shape[-1]} channel(s) in half; squeeze first")
                shapes.append(shape[:-1] + (shape[-1] - c,))
                shape = shape[:-1] + (c,)
        return shapes + [shape]

    def _join(self, parts):
        if len(parts) == 1:
            return ops.reshape(parts[0], (-1,) + self.data_shape)
        flat = [ops.reshape(p, (-1, int(np.prod(p.shape[1:])))) for p in parts]
        return ops.reshape(ops.concatenate(flat, axis=-1), (-1,) + self.data_shape)

    def _unjoin(self, z):
        shapes = self._factor_shapes()
        if len(shapes) == 1:
            return [ops.reshape(z, (-1,) + shapes[0])]
        flat = ops.reshape(z, (-1, self.num_dims))
        parts, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            parts.append(ops.reshape(flat[:, start : start + size], (-1,) + shape))
            start += size
        return parts

    def base_log_prob(self, z):
        """Standard normal log-density of each (data-shaped) latent."""
        flat = ops.reshape(z, (-1, self.num_dims))
        return -0.5 * ops.sum(ops.square(flat), axis=-1) - 0.5 * self.num_dims * LOG_2PI

    def _log_prob(self, x, labels=None, training=False):
        z, logdet = self.encode(x, labels, training)
        return self.base_log_prob(z) + logdet

    # === Training ===

    def call(self, inputs, training=False):
        x, labels = self.split_inputs(inputs)
        return self._log_prob(x, labels, training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = -ops.mean(y_pred)
        return backend.scale_loss_for_replicas(self.plus_layer_losses(loss))  # tf.distribute: a replica's share

    # === Likelihood ===

    def _labels_array(self, n, labels):
        if self.conditional:
            if labels is None:
                raise UsageError(f"{type(self).__name__} is conditional: pass labels to score data.")
            return np.broadcast_to(np.asarray(labels, "int32"), (n,))
        return np.zeros(n, "int32")

    def log_prob(self, x, labels=None, batch_size=256, seed=None):
        """Exact log-density of each example in nats, on the data the model sees.

        For dequantized (and logit-transformed) images, `kgen.metrics.summarize`
        converts this density to the discrete NLL and bits/dim.
        """
        x = np.asarray(x, "float32")
        labs = self._labels_array(len(x), labels)
        fn = self.compiled_fn("log_prob", lambda a, l: self._log_prob(a, l if self.conditional else None))
        return self.batched(fn, [x, labs], batch_size)

    def distribution(self, labels=None):
        """The model as a TFP `TransformedDistribution` (vector flows without
        data-dependent steps only; `labels` a tensor for conditional flows)."""
        if any(op[0] != "step" for op in self._flow_plan):
            raise UsageError(f"{type(self).__name__} reshapes its data: use log_prob and sample.")
        tfd, tfb = substrate.tfd(), substrate.tfb()
        ctx = self.context(labels)
        # Chain applies its last bijector first: decoding runs the steps last to first.
        chain = tfb.Chain([s.bijector(ctx) for s in self.steps])
        base = tfd.Independent(tfd.Normal(ops.zeros(self.data_shape), 1.0),
                               reinterpreted_batch_ndims=len(self.data_shape))
        return tfd.TransformedDistribution(base, chain)

    # === Sampling ===

    def noise_spec(self, n):
        return [("normal", (n,) + self.data_shape)]

    def sample_from_noise(self, z, labels=None):
        """Maps base noise z ~ N(0, I) (data-shaped) through the inverse flow."""
        if labels is None:
            labels = np.zeros(len(z), "int32")
        fn = self.compiled_fn("sample", lambda a, l: self.decode(a, l if self.conditional else None))
        return fn(z, labels)

    # === Export ===

    def export_endpoints(self):
        """log_prob(x) -> nats per example; sample(z) -> data. Conditional flows take labels last."""
        x_spec = ((None,) + self.data_shape, "float32")
        label_spec = [((None,), "int32")] if self.conditional else []

        def log_prob(x, *labels):
            return self._log_prob(x, *labels)

        def sample(z, *labels):
            return self.decode(z, *labels)

        return {"log_prob": (log_prob, [x_spec] + label_spec), "sample": (sample, [x_spec] + label_spec)}
