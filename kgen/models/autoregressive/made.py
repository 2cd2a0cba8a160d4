"""MADE: Masked Autoencoder for Distribution Estimation (Germain et al. 2015).

An MLP over the flattened image whose weight matrices are multiplied by 0/1
masks so that output d depends only on the inputs before d in an order:

    log p(x) = sum_d log p(x_d | x_<d),   p(x_d | x_<d) = f_d(x_<d).

Each unit k of hidden layer l has a degree m_l(k) in [1, D - 1]; the mask
lets unit k see units of the layer below with degree <= m_l(k), and output d
(degree m_0(d), its position in the order) see hidden units of degree
< m_0(d). One forward pass gives all D conditionals, so the likelihood is
exact and costs one network evaluation.

Training with `num_masks > 1` draws one of K masks (connectivities, and
orders with `resample_order`) at every step (connectivity-agnostic and
order-agnostic training). At test time `eval_masks > 1` averages the
probabilities of the first `eval_masks` masks,

    p(x) = (1 / K) sum_k p_k(x),

itself a normalized distribution (a mixture), which `sample` draws from
exactly (one extra uniform per sample picks the mask).

#### References

- Germain, M., Gregor, K., Murray, I. & Larochelle, H. MADE: Masked
  Autoencoder for Distribution Estimation. ICML 2015.
"""

import math

import keras
import numpy as np
from keras import ops

from kgen import backend
from kgen.errors import UsageError
from kgen.layers.masked import MaskedDense, made_degrees
from kgen.models.autoregressive.base import AutoregressiveModel
from kgen.registry import register_model


@register_model("made", family="autoregressive",
                tiny=dict(hidden_units=(32,)))
class MADE(AutoregressiveModel):
    """Masked autoencoder for distribution estimation (Germain et al. 2015): exact likelihood, one pass.

    Args:
        input_shape: shape of one image, e.g. `(28, 28, 1)`.
        num_levels: grey levels (2: binary, Bernoulli outputs; more: a
            softmax over levels per pixel).
        num_classes: unused (MADE is unconditional); must be None.
        hidden_units: units of each hidden layer (one or more).
        num_masks: K masks drawn from during training (1: a fixed mask).
        resample_order: draw a random input order for every mask (order
            agnostic training); False keeps the raster order and resamples
            only the connectivity.
        eval_masks: masks averaged by `log_prob` and `sample` (<= num_masks).
        mask_seed: seed of the masks (part of the model: saved in its config).
        activation: hidden activation.
        likelihood: "auto", "bernoulli" or "categorical".
        direct_connections: add masked direct input -> output weights (an
            autoregressive linear term, as in Germain et al.'s code). Without
            them, output d sees the value just before it only through the
            hidden units of degree m_d - 1: about H / D of them.
        dropout: rate of dropout on every hidden layer during training (0:
            off). It zeroes hidden units, so it adds no connection: the
            model stays autoregressive, and `log_prob` (inference) is exact.

    Example:

    >>> import kgen
    >>> made = kgen.build_model("made", input_shape=(8, 8, 1), num_levels=17, hidden_units=(64,))
    >>> made.compile(optimizer="adam")
    >>> _ = made.fit(kgen.load_dataset("digits").x[:64], epochs=1, verbose=0)
    >>> made.sample(2, seed=0).shape
    (2, 8, 8, 1)
    """

    def __init__(
        self,
        input_shape,
        num_levels=None,
        num_classes=None,
        hidden_units=(500,),
        num_masks=1,
        resample_order=False,
        eval_masks=1,
        mask_seed=0,
        activation="relu",
        likelihood="auto",
        direct_connections=False,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        self.direct_connections = bool(direct_connections)
        self.dropout = float(dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"dropout must lie in [0, 1), got {dropout}.")
        if num_classes is not None:
            raise UsageError("MADE is not conditional; train the gated PixelCNN for class-conditional samples.")
        self.setup_likelihood(likelihood)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        if not self.hidden_units or min(self.hidden_units) < 1:
            raise UsageError(f"MADE needs one or more hidden layers of >= 1 unit, got {list(hidden_units)}.")
        self.num_masks = int(num_masks)
        self.eval_masks = int(eval_masks)
        if self.num_masks < 1 or not 1 <= self.eval_masks <= self.num_masks:
            raise UsageError(
                f"need num_masks >= 1 and 1 <= eval_masks <= num_masks, got {num_masks} and {eval_masks}."
            )
        if self.num_dims < 2:
            raise UsageError("MADE needs at least 2 dimensions.")
        self.resample_order = bool(resample_order)
        self.mask_seed = int(mask_seed)
        self.activation = activation
        self.activation_fn = keras.activations.get(activation)

        # === Masks: degrees of every unit, one row per mask ===
        per_mask = [
            made_degrees(self.num_dims, self.hidden_units, np.random.default_rng([self.mask_seed, k]),
                         self.resample_order)
            for k in range(self.num_masks)
        ]
        self.degrees = [np.stack([m[l] for m in per_mask]) for l in range(len(self.hidden_units) + 1)]

        # === Layers ===
        self.hidden = [MaskedDense(u, name=f"masked_dense_{i}") for i, u in enumerate(self.hidden_units)]
        self.out = MaskedDense(self.num_dims * self.out_per_dim, name="masked_out")
        self.direct = (MaskedDense(self.num_dims * self.out_per_dim, use_bias=False, name="masked_direct")
                       if self.direct_connections else None)
        self.dropouts = ([keras.layers.Dropout(self.dropout, seed=self.mask_seed + i, name=f"dropout_{i}")
                          for i in range(len(self.hidden_units))] if self.dropout > 0 else [])

        # === State ===
        self.seed_generator = keras.random.SeedGenerator(self.mask_seed)
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        size = self.num_dims
        for layer in self.hidden:
            layer.build((None, size))
            size = layer.units
        self.out.build((None, size))
        if self.direct is not None:
            self.direct.build((None, self.num_dims))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "num_masks": self.num_masks,
                "resample_order": self.resample_order,
                "eval_masks": self.eval_masks,
                "mask_seed": self.mask_seed,
                "activation": self.activation,
                "likelihood": self.likelihood,
                "direct_connections": self.direct_connections,
                "dropout": self.dropout,
            }
        )
        return config

    # === Masks ===

    def orders(self):
        """(num_masks, D) NumPy array: the position (1..D) of each flattened dimension in each mask's order."""
        return self.degrees[0].copy()

    def _degrees(self, which):
        """Degree tensors: `which` None -> every mask (K, n); an int tensor () -> one mask (n,), (B,) -> per example."""
        degs = [ops.convert_to_tensor(d, "int32") for d in self.degrees]
        if which is None:
            return degs
        return [ops.take(d, which, axis=0) for d in degs]

    # === Network ===

    def logits_flat(self, x_flat, degrees, training=False):
        """Logits (..., D, P) of the flattened inputs (..., D) under the masks of `degrees`."""
        x_in = h = ops.cast(x_flat, "float32")
        for i, (layer, below, above) in enumerate(zip(self.hidden, degrees[:-1], degrees[1:])):
            conn = ops.cast(ops.expand_dims(above, -2) >= ops.expand_dims(below, -1), "float32")
            h = self.activation_fn(layer(h, conn))
            if training and self.dropouts:
                h = self.dropouts[i](h, training=True)
        out_deg = ops.repeat(degrees[0], self.out_per_dim, axis=-1)
        conn = ops.cast(ops.expand_dims(out_deg, -2) > ops.expand_dims(degrees[-1], -1), "float32")
        out = self.out(h, conn)
        if self.direct is not None:  # output d sees inputs strictly before it in the order
            direct = ops.cast(ops.expand_dims(out_deg, -2) > ops.expand_dims(degrees[0], -1), "float32")
            out = out + self.direct(x_in, direct)
        return ops.reshape(out, tuple(ops.shape(out)[:-1]) + (self.num_dims, self.out_per_dim))

    def call(self, inputs, training=False):
        x, _ = self.split_inputs(inputs)
        if training and self.num_masks > 1:
            which = keras.random.randint((), 0, self.num_masks, seed=self.seed_generator, dtype="int32")
        else:
            which = ops.convert_to_tensor(0, "int32")
        flat = ops.reshape(x, (-1, self.num_dims))
        logits = self.logits_flat(flat, self._degrees(which), training=training)
        return ops.reshape(logits, (-1,) + self.data_shape + (self.out_per_dim,))

    # === Likelihood ===

    def _log_prob_masks(self, x, num_masks):
        """log p(x) under the mixture of the first `num_masks` masks, per example."""
        if num_masks == 1:
            return self.log_likelihood(x, self.call(x, training=False))
        flat = ops.reshape(ops.cast(x, "float32"), (-1, self.num_dims))
        degs = [d[:num_masks] for d in self._degrees(None)]
        stacked = ops.broadcast_to(flat[None], (num_masks,) + tuple(ops.shape(flat)))
        logits = self.logits_flat(stacked, degs)  # (K, B, D, P)
        ll = ops.sum(self.pixel_log_prob(stacked, logits), axis=-1)  # (K, B)
        return ops.logsumexp(ll, axis=0) - math.log(num_masks)

    def log_prob(self, x, labels=None, batch_size=256, seed=None, num_masks=None):
        """Exact log p(x) in nats per example (NumPy).

        Args:
            x: images in [0, 1].
            labels: must be None (MADE is unconditional).
            batch_size: examples per step.
            seed: unused (exact).
            num_masks: masks in the test-time ensemble (default `eval_masks`;
                any number up to `num_masks`).
        """
        k = self.eval_masks if num_masks is None else int(num_masks)
        if not 1 <= k <= self.num_masks:
            raise UsageError(f"num_masks must lie in 1..{self.num_masks} (the masks trained), got {k}.")
        x = self._check_x(x)
        self._labels_for(len(x), labels)
        fn = self.compiled_fn(("log_prob", k), lambda a: self._log_prob_masks(a, k))
        return self.batched(fn, [x], batch_size)

    # === Sampling ===

    def noise_spec(self, n):
        spec = [("uniform", (n,) + self.data_shape)]
        if self.eval_masks > 1:
            spec.append(("uniform", (n,)))  # picks the mask of each sample
        return spec

    def _sample_one_mask(self, u, which, temperature):
        """Compiled loop under mask `which` (int32 scalar): D passes, pass t fixes the value at position t."""
        n = ops.shape(u)[0]
        u_flat = ops.reshape(u, (n, self.num_dims))
        degs = self._degrees(ops.reshape(ops.cast(which, "int32"), ()))
        position = ops.expand_dims(degs[0], 0)
        temp = None if temperature is None else ops.reshape(temperature, (-1, 1, 1))

        def step(t, x):
            new = self.pixel_sample(self.logits_flat(x, degs), u_flat, temp)
            return ops.where(ops.equal(position, t + 1), new, x)

        x = ops.fori_loop(0, self.num_dims, step, ops.zeros_like(u_flat))
        return ops.reshape(x, (-1,) + self.data_shape)

    def _components(self, c):
        return ops.clip(ops.cast(ops.floor(c * self.eval_masks), "int32"), 0, self.eval_masks - 1)

    def _sample_mixture(self, u, c, temperature):
        """One graph for the `eval_masks` mixture: each pass evaluates every mask, each sample reads its own."""
        k = self.eval_masks
        n = ops.shape(u)[0]
        u_flat = ops.reshape(u, (n, self.num_dims))
        which = self._components(c)
        degs = [d[:k] for d in self._degrees(None)]
        pick = ops.one_hot(which, k)  # (n, K)
        position = ops.take(degs[0], which, axis=0)  # (n, D)
        temp = None if temperature is None else ops.reshape(temperature, (-1, 1, 1))

        def step(t, x):
            stacked = ops.broadcast_to(x[None], (k,) + tuple(ops.shape(x)))
            logits = ops.einsum("kbdp,bk->bdp", self.logits_flat(stacked, degs), pick)
            new = self.pixel_sample(logits, u_flat, temp)
            return ops.where(ops.equal(position, t + 1), new, x)

        x = ops.fori_loop(0, self.num_dims, step, ops.zeros_like(u_flat))
        return ops.reshape(x, (-1,) + self.data_shape)

    def sample_from_noise(self, u, c=None, labels=None, temperature=1.0):
        """Samples from pixel uniforms u (n,) + input_shape and, with `eval_masks > 1`, mask uniforms c (n,).

        Sample i uses mask floor(c_i * eval_masks): the samples of each mask
        go through one compiled single-mask loop (batch sizes rounded up to
        powers of two, so few shapes compile).
        """
        self._labels_for(len(u), labels)
        u = np.asarray(u, "float32")
        temp = np.full((len(u),), temperature, "float32")
        fn = self.compiled_fn("sample", self._sample_one_mask)
        if self.eval_masks == 1:
            return backend.to_numpy(fn(u, np.zeros((), "int32"), temp))
        c = np.zeros(len(u), "float32") if c is None else np.asarray(c, "float32")
        which = np.clip(np.floor(c * self.eval_masks).astype("int32"), 0, self.eval_masks - 1)
        out = np.empty_like(u)
        for k in np.unique(which):
            idx = np.flatnonzero(which == k)
            size = 1 << int(np.ceil(np.log2(len(idx))))
            rows = np.concatenate([idx, np.full(size - len(idx), idx[0])])
            out[idx] = backend.to_numpy(fn(u[rows], np.asarray(k, "int32"), temp[rows]))[: len(idx)]
        return out

    # === Export ===

    def export_endpoints(self):
        """log_prob(x) -> nats (the `eval_masks` ensemble); sample(u[, c]) -> images (c: mask uniforms)."""
        x_spec = ((None,) + self.data_shape, "float32")
        k = self.eval_masks

        def log_prob(x):
            return self._log_prob_masks(x, k)

        if k > 1:
            def sample(u, c):
                return self._sample_mixture(u, c, None)

            sample_spec = [x_spec, ((None,), "float32")]
        else:
            def sample(u):
                return self._sample_one_mask(u, ops.zeros((), "int32"), None)

            sample_spec = [x_spec]
        return {"log_prob": (log_prob, [x_spec]), "sample": (sample, sample_spec)}
