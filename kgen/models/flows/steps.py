"""Invertible steps: Keras 3 layers that build TFP bijectors on demand.

Every step owns its weights (conditioner networks, scales, LU factors) as a
Keras layer and builds its TFP bijector inside `encode`/`decode` each time
(never once in `__init__`: TFP caches tensors, and a bijector built in one
traced graph fails in another). Bijectors point in the generative
direction, latent -> data, as in TFP's `TransformedDistribution`:

    decode(z) = b.forward(z)
    encode(h) = (b.inverse(h), b.inverse_log_det_jacobian(h))

so that log p(h) = log p_z(encode(h)[0]) + encode(h)[1]. Steps whose
transform depends on the data they see in training (batch normalization,
ActNorm's data-dependent initialization) override `encode`.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from kgen.models.flows import substrate
from kgen.models.flows.conditioners import (
    CouplingConvNet,
    CouplingMLP,
    MADEConditioner,
    soft_clamp,
)
from kgen.registry import register_layer


def broadcast_like(param, like):
    """`param` broadcast to the shape of `like` (None: unchanged).

    Per-feature scales are broadcast to the full input before they go into
    `tfb.Scale` when a log-det is needed: TFP then sums an elementwise
    log-det instead of scaling a small one by the broadcast count, a
    reduction the LiteRT converter gets wrong (it keeps one element).
    """
    if like is None:
        return param
    return param + ops.zeros_like(like)


class FlowStep(layers.Layer):
    """One invertible map between a data-side `h` and a latent-side `z`.

    Args:
        event_shape: shape of one example at this step, e.g. `(2,)` or
            `(4, 4, 4)`.
        context_dim: size of the one-hot label the step is conditioned on
            (0: unconditional).
    """

    def __init__(self, event_shape, context_dim=0, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)
        self.context_dim = int(context_dim)
        self.built = True

    @property
    def event_ndims(self):
        return len(self.event_shape)

    def bijector(self, context=None):
        """The TFP bijector, latent -> data."""
        raise NotImplementedError

    def encode(self, h, context=None, training=False):
        """Data side -> (latent side, log|det dz/dh| per example)."""
        b = self.bijector(context)
        return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=self.event_ndims)

    def decode(self, z, context=None):
        """Latent side -> data side."""
        return self.bijector(context).forward(z)

    def call(self, h, context=None, training=False):
        return self.encode(h, context, training)

    def get_config(self):
        config = super().get_config()
        config.update({"event_shape": list(self.event_shape), "context_dim": self.context_dim})
        return config


# === Vector steps ===


@register_layer
class Reverse(FlowStep):
    """Reverses the last axis (alternates which half a coupling transforms)."""

    def bijector(self, context=None):
        n = self.event_shape[-1]
        return substrate.tfb().Permute(permutation=list(range(n - 1, -1, -1)), axis=-1)


@register_layer
class AffineCoupling(FlowStep):
    """RealNVP's affine coupling on vectors, `tfb.RealNVP` with an MLP conditioner.

    The first `num_masked` units pass through; the rest become
    `x1 * exp(s(x0)) + t(x0)` (additive: `x1 + t(x0)`, NICE's coupling).

    Args:
        event_shape: `(D,)`.
        num_masked: units that condition the rest.
        hidden_units: conditioner widths.
        additive: NICE's volume-preserving coupling (no scale).
        log_scale_clamp: soft bound on |s| (0: none).
        activation: conditioner activation.
        context_dim: one-hot label size.
    """

    def __init__(self, event_shape, num_masked, hidden_units=(64, 64), additive=False,
                 log_scale_clamp=3.0, activation="relu", context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        self.num_masked = int(num_masked)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.additive = bool(additive)
        self.log_scale_clamp = float(log_scale_clamp)
        self.activation = activation
        d = self.event_shape[-1]
        self.conditioner = CouplingMLP(self.num_masked, d - self.num_masked, 1 if additive else 2,
                                       self.hidden_units, activation, self.context_dim, name="conditioner")

    def bijector(self, context=None):
        def shift_and_log_scale(x0, output_units, **kwargs):  # TFP passes extras; Keras must not see them
            params = self.conditioner(x0, context)
            if self.additive:
                return params[..., 0], None
            return params[..., 0], soft_clamp(params[..., 1], self.log_scale_clamp)

        return substrate.tfb().RealNVP(num_masked=self.num_masked, shift_and_log_scale_fn=shift_and_log_scale)

    def get_config(self):
        config = super().get_config()
        config.update({"num_masked": self.num_masked, "hidden_units": list(self.hidden_units),
                       "additive": self.additive, "log_scale_clamp": self.log_scale_clamp,
                       "activation": self.activation})
        return config


@register_layer
class DiagonalScale(FlowStep):
    """A learned diagonal scaling `h = exp(s) * z` (NICE's last layer)."""

    def __init__(self, event_shape, context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        self.log_scale = self.add_weight(shape=self.event_shape, initializer="zeros", name="log_scale")

    def bijector(self, context=None, like=None):
        return substrate.tfb().Scale(log_scale=broadcast_like(ops.convert_to_tensor(self.log_scale), like))

    def encode(self, h, context=None, training=False):
        b = self.bijector(context, like=h)
        return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=self.event_ndims)


@register_layer
class SplineCoupling(FlowStep):
    """A rational-quadratic spline coupling (Durkan et al. 2019), `tfb.RealNVP(bijector_fn=...)`.

    The transformed half goes through a monotonic rational-quadratic spline
    on [-bound, bound] (identity outside) whose `num_bins` widths, heights
    and inner knot slopes an MLP computes from the conditioning half.

    Args:
        event_shape: `(D,)`.
        num_masked: units that condition the rest.
        num_bins: spline bins.
        bound: the spline acts on [-bound, bound].
        hidden_units: conditioner widths.
        activation: conditioner activation.
        context_dim: one-hot label size.
    """

    def __init__(self, event_shape, num_masked, num_bins=8, bound=4.0, hidden_units=(64, 64),
                 activation="relu", context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        self.num_masked = int(num_masked)
        self.num_bins = int(num_bins)
        self.bound = float(bound)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        d = self.event_shape[-1]
        self.conditioner = CouplingMLP(self.num_masked, d - self.num_masked, 3 * self.num_bins - 1,
                                       self.hidden_units, activation, self.context_dim, name="conditioner")

    def bijector(self, context=None):
        def bijector_fn(x0, input_depth, **kwargs):
            return spline_from_params(self.conditioner(x0, context), self.num_bins, self.bound)

        return substrate.tfb().RealNVP(num_masked=self.num_masked, bijector_fn=bijector_fn)

    def get_config(self):
        config = super().get_config()
        config.update({"num_masked": self.num_masked, "num_bins": self.num_bins, "bound": self.bound,
                       "hidden_units": list(self.hidden_units), "activation": self.activation})
        return config


MIN_BIN_SIZE = 1e-3
MIN_SLOPE = 1e-3


def spline_from_params(params, num_bins, bound):
    """`tfb.RationalQuadraticSpline` from raw (..., units, 3K - 1) parameters."""
    width = 2.0 * bound
    raw_w = params[..., :num_bins]
    raw_h = params[..., num_bins : 2 * num_bins]
    raw_d = params[..., 2 * num_bins :]
    widths = ops.softmax(raw_w, axis=-1) * (width - num_bins * MIN_BIN_SIZE) + MIN_BIN_SIZE
    heights = ops.softmax(raw_h, axis=-1) * (width - num_bins * MIN_BIN_SIZE) + MIN_BIN_SIZE
    # softplus(x + log(e - 1)) = 1 at x = 0: a near-zero network gives the identity.
    slopes = ops.softplus(raw_d + math.log(math.e - 1.0)) + MIN_SLOPE
    return substrate.tfb().RationalQuadraticSpline(
        bin_widths=widths, bin_heights=heights, knot_slopes=slopes, range_min=-bound)


@register_layer
class MaskedAutoregressive(FlowStep):
    """One MAF layer, `tfb.MaskedAutoregressiveFlow` with a Keras 3 MADE.

    MAF (`inverse=False`): x_i = z_i * exp(s_i(x_<i)) + t_i(x_<i); density in
    one pass, sampling in D sequential passes. IAF (`inverse=True`, Kingma
    et al. 2016) is the same bijector inverted: z -> x in one pass (fast
    sampling), density in D passes. With `num_bins > 0` the transform is a
    rational-quadratic spline instead of affine (autoregressive NSF).

    Args:
        event_shape: `(D,)`.
        hidden_units: MADE widths.
        inverse: True for IAF.
        num_bins: 0 for affine; > 0 for a spline with that many bins.
        bound: the spline's interval [-bound, bound].
        log_scale_clamp: soft bound on |s| (affine).
        activation: MADE activation.
        context_dim: one-hot label size.
    """

    # Sequential passes are unrolled (a static graph) up to this many dimensions.
    UNROLL_MAX = 16

    def __init__(self, event_shape, hidden_units=(64, 64), inverse=False, num_bins=0, bound=4.0,
                 log_scale_clamp=3.0, activation="relu", context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.inverse = bool(inverse)
        self.num_bins = int(num_bins)
        self.bound = float(bound)
        self.log_scale_clamp = float(log_scale_clamp)
        self.activation = activation
        num_params = 3 * self.num_bins - 1 if self.num_bins else 2
        self.made = MADEConditioner(self.event_shape[-1], num_params, self.hidden_units, activation,
                                    self.context_dim, name="made")

    def bijector(self, context=None):
        tfb = substrate.tfb()
        unroll = self.event_shape[-1] <= self.UNROLL_MAX
        if self.num_bins:
            def bijector_fn(y, **kwargs):
                return spline_from_params(self.made(y, context), self.num_bins, self.bound)

            maf = tfb.MaskedAutoregressiveFlow(bijector_fn=bijector_fn, unroll_loop=unroll)
        else:
            def shift_and_log_scale(y, **kwargs):
                params = self.made(y, context)
                return params[..., 0], soft_clamp(params[..., 1], self.log_scale_clamp)

            maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=shift_and_log_scale, unroll_loop=unroll)
        return tfb.Invert(maf) if self.inverse else maf

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_units": list(self.hidden_units), "inverse": self.inverse,
                       "num_bins": self.num_bins, "bound": self.bound,
                       "log_scale_clamp": self.log_scale_clamp, "activation": self.activation})
        return config


@register_layer
class BatchNorm(FlowStep):
    """Batch normalization as a bijector (Dinh et al. 2017, section 3.7).

    Encoding normalizes each feature (the last axis) with the batch's mean
    and variance in training, and with moving averages otherwise, then
    applies a learned scale and shift:

        z = exp(log_gamma) * (h - mean) / sqrt(var + eps) + beta,
        log|det| = sum(log_gamma - 0.5 log(var + eps)) * (positions per feature).

    TFP's `tfb.BatchNormalization` wraps a Keras 2 layer (invisible to a
    Keras 3 model, absent from the JAX substrate), so this step keeps its
    statistics as Keras 3 variables and builds TFP `Shift`/`Scale` bijectors
    from them.

    Args:
        event_shape: shape of one example.
        momentum: moving-average momentum.
        epsilon: variance floor.
    """

    def __init__(self, event_shape, momentum=0.9, epsilon=1e-4, context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        c = (self.event_shape[-1],)
        self.log_gamma = self.add_weight(shape=c, initializer="zeros", name="log_gamma")
        self.beta = self.add_weight(shape=c, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=c, initializer="zeros", trainable=False, name="moving_mean")
        self.moving_var = self.add_weight(shape=c, initializer="ones", trainable=False, name="moving_var")

    def _bijector_with(self, mean, var, like=None):
        tfb = substrate.tfb()
        log_scale = ops.convert_to_tensor(self.log_gamma) - 0.5 * ops.log(var + self.epsilon)
        normalize = tfb.Chain([
            tfb.Shift(ops.convert_to_tensor(self.beta)),
            tfb.Scale(log_scale=broadcast_like(log_scale, like)),
            tfb.Shift(-mean),
        ])
        return tfb.Invert(normalize)

    def bijector(self, context=None, like=None):
        return self._bijector_with(ops.convert_to_tensor(self.moving_mean), ops.convert_to_tensor(self.moving_var),
                                   like)

    def encode(self, h, context=None, training=False):
        if not training:
            b = self.bijector(context, like=h)
            return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=self.event_ndims)
        axes = tuple(range(len(h.shape) - 1))
        mean = ops.mean(h, axis=axes)
        var = ops.var(h, axis=axes)
        m = self.momentum
        self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * ops.stop_gradient(mean))
        self.moving_var.assign(m * self.moving_var + (1.0 - m) * ops.stop_gradient(var))
        b = self._bijector_with(mean, var, like=h)
        return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=self.event_ndims)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "epsilon": self.epsilon})
        return config


# === Image steps ===


def checkerboard_mask(shape, parity):
    h, w, c = shape
    board = (np.arange(h)[:, None] + np.arange(w)[None, :] + parity) % 2
    return np.broadcast_to(board[:, :, None], (h, w, c)).astype("float32")


def channel_mask(shape, parity):
    h, w, c = shape
    mask = (np.arange(c) < c // 2).astype("float32")
    if parity:
        mask = 1.0 - mask
    return np.broadcast_to(mask[None, None, :], (h, w, c)).astype("float32")


@register_layer
class MaskedAffineCoupling(FlowStep):
    """RealNVP's image coupling with a checkerboard or channel-wise mask.

    With a binary mask b, `h = b * z + (1 - b) * (z * exp(s(b * z)) + t(b * z))`;
    since `b * h = b * z`, both directions compute s and t from the
    unchanged part, and the step is the TFP bijector
    `Chain([Shift((1 - b) t), Scale(log_scale=(1 - b) s)])`. The conditioner
    sees the masked image and the mask itself (as in the paper's code).

    Args:
        event_shape: `(H, W, C)`.
        mask: "checkerboard" or "channel".
        parity: 0 or 1, which half is held fixed.
        filters: conditioner width.
        num_blocks: conditioner residual blocks.
        log_scale_clamp: soft bound on |s|.
        context_dim: one-hot label size.
    """

    def __init__(self, event_shape, mask="checkerboard", parity=0, filters=32, num_blocks=1,
                 log_scale_clamp=3.0, context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        if mask not in ("checkerboard", "channel"):
            raise ValueError(f'mask must be "checkerboard" or "channel", got "{mask}"')
        self.mask_type = mask
        self.parity = int(parity)
        self.filters = int(filters)
        self.num_blocks = int(num_blocks)
        self.log_scale_clamp = float(log_scale_clamp)
        make = checkerboard_mask if mask == "checkerboard" else channel_mask
        self.mask = make(self.event_shape, self.parity)
        c = self.event_shape[-1]
        self.conditioner = CouplingConvNet(c + 1, c, 2, self.filters, self.num_blocks, self.context_dim,
                                           name="conditioner")

    def _bijector_from(self, known, context):
        tfb = substrate.tfb()
        b = ops.convert_to_tensor(self.mask, dtype=known.dtype)
        inp = ops.concatenate([known * b, ops.broadcast_to(b[..., :1], ops.shape(known[..., :1]))], axis=-1)
        params = self.conditioner(inp, context)
        shift = params[..., 0] * (1.0 - b)
        log_scale = soft_clamp(params[..., 1], self.log_scale_clamp) * (1.0 - b)
        return tfb.Chain([tfb.Shift(shift), tfb.Scale(log_scale=log_scale)])

    def encode(self, h, context=None, training=False):
        b = self._bijector_from(h, context)
        return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=3)

    def decode(self, z, context=None):
        return self._bijector_from(z, context).forward(z)

    def get_config(self):
        config = super().get_config()
        config.update({"mask": self.mask_type, "parity": self.parity, "filters": self.filters,
                       "num_blocks": self.num_blocks, "log_scale_clamp": self.log_scale_clamp})
        return config


@register_layer
class ChannelCoupling(FlowStep):
    """Glow's affine coupling: `tfb.RealNVP` splitting the channels, conv conditioner.

    The first half of the channels conditions an affine map of the second.

    Args:
        event_shape: `(H, W, C)` with C >= 2.
        filters: conditioner width.
        num_blocks: conditioner residual blocks.
        log_scale_clamp: soft bound on |s|.
        context_dim: one-hot label size.
    """

    def __init__(self, event_shape, filters=32, num_blocks=1, log_scale_clamp=3.0, context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        self.filters = int(filters)
        self.num_blocks = int(num_blocks)
        self.log_scale_clamp = float(log_scale_clamp)
        c = self.event_shape[-1]
        self.num_masked = c // 2
        self.conditioner = CouplingConvNet(self.num_masked, c - self.num_masked, 2, self.filters,
                                           self.num_blocks, self.context_dim, name="conditioner")

    def bijector(self, context=None):
        def shift_and_log_scale(x0, output_units, **kwargs):
            params = self.conditioner(x0, context)
            return params[..., 0], soft_clamp(params[..., 1], self.log_scale_clamp)

        return substrate.tfb().RealNVP(num_masked=self.num_masked, shift_and_log_scale_fn=shift_and_log_scale)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "num_blocks": self.num_blocks,
                       "log_scale_clamp": self.log_scale_clamp})
        return config


@register_layer
class ActNorm(FlowStep):
    """Glow's activation normalization with data-dependent initialization.

    `z = (h + bias) * exp(log_scale)` per channel. On the first training
    batch the step sets its offsets so that its output has zero mean and unit
    variance per channel (Kingma & Dhariwal 2018); afterwards they train
    freely. The data-dependent part lives in non-trainable variables (which
    `fit` updates on every backend), the trainable `bias`/`log_scale` start
    at zero on top of it.
    """

    def __init__(self, event_shape, context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        c = (self.event_shape[-1],)
        self.bias = self.add_weight(shape=c, initializer="zeros", name="bias")
        self.log_scale = self.add_weight(shape=c, initializer="zeros", name="log_scale")
        self.init_bias = self.add_weight(shape=c, initializer="zeros", trainable=False, name="init_bias")
        self.init_log_scale = self.add_weight(shape=c, initializer="zeros", trainable=False,
                                              name="init_log_scale")
        self.initialized = self.add_weight(shape=(), initializer="zeros", trainable=False, name="initialized")

    def _bijector_with(self, init_bias, init_log_scale, like=None):
        tfb = substrate.tfb()
        log_scale = init_log_scale + ops.convert_to_tensor(self.log_scale)
        normalize = tfb.Chain([
            tfb.Scale(log_scale=broadcast_like(log_scale, like)),
            tfb.Shift(init_bias + ops.convert_to_tensor(self.bias)),
        ])
        return tfb.Invert(normalize)

    def bijector(self, context=None, like=None):
        return self._bijector_with(ops.convert_to_tensor(self.init_bias),
                                   ops.convert_to_tensor(self.init_log_scale), like)

    def encode(self, h, context=None, training=False):
        if not training:
            b = self.bijector(context, like=h)
            return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=self.event_ndims)
        axes = tuple(range(len(h.shape) - 1))
        h_const = ops.stop_gradient(h)
        mean = ops.mean(h_const, axis=axes)
        std = ops.sqrt(ops.var(h_const, axis=axes) + 1e-6)
        done = ops.convert_to_tensor(self.initialized)
        init_bias = done * self.init_bias + (1.0 - done) * (-mean)
        init_log_scale = done * self.init_log_scale + (1.0 - done) * (-ops.log(std))
        self.init_bias.assign(init_bias)
        self.init_log_scale.assign(init_log_scale)
        self.initialized.assign(ops.ones_like(done))
        b = self._bijector_with(init_bias, init_log_scale, like=h)
        return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=self.event_ndims)


def _lu_pivot(a):
    """LU with partial pivoting: a[perm] = L @ U (NumPy, for initialization)."""
    a = np.array(a, "float64")
    n = a.shape[0]
    perm = np.arange(n)
    lower = np.eye(n)
    for k in range(n):
        p = k + int(np.argmax(np.abs(a[k:, k])))
        if p != k:
            a[[k, p]] = a[[p, k]]
            perm[[k, p]] = perm[[p, k]]
            lower[[k, p], :k] = lower[[p, k], :k]
        for i in range(k + 1, n):
            lower[i, k] = a[i, k] / a[k, k]
            a[i, k:] -= lower[i, k] * a[k, k:]
    return perm, lower, np.triu(a)


@register_layer
class InvertibleConv1x1(FlowStep):
    """Glow's invertible 1x1 convolution, LU-parameterized.

    W = P L (U + diag(sign(s) exp(log|s|))) applied to the channels of every
    pixel, initialized from a random rotation: the permutation P and
    sign(s) are frozen; the strictly lower L (unit diagonal), strictly upper
    U and log|s| train, and log|det W| = sum log|s| per pixel (O(C)).

    The bijector is `Chain([Permute(P), ScaleMatvecTriL(L),
    ScaleMatvecTriL(U^T, adjoint=True)])`: the same map as TFP's
    `ScaleMatvecLU`, which fails under `jax.jit` on TFP's JAX substrate
    (see `kgen.models.flows.substrate`).

    Args:
        event_shape: `(H, W, C)`.
        seed: seed of the initial rotation.
    """

    def __init__(self, event_shape, seed=0, context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        self.seed = int(seed)
        c = self.event_shape[-1]
        rng = np.random.default_rng(self.seed)
        q, _ = np.linalg.qr(rng.standard_normal((c, c)))
        rows, lower, upper = _lu_pivot(q)  # q[rows] = lower @ upper
        diag = np.diag(upper)
        const = keras.initializers.Constant
        self.lower = self.add_weight(shape=(c, c), initializer=const(np.tril(lower, -1)), name="lower")
        self.upper = self.add_weight(shape=(c, c), initializer=const(np.triu(upper, 1)), name="upper")
        self.log_abs_diag = self.add_weight(shape=(c,), initializer=const(np.log(np.abs(diag))), name="log_abs_diag")
        self.sign_diag = self.add_weight(shape=(c,), initializer=const(np.sign(diag)), trainable=False,
                                         name="sign_diag")
        # Permute(p) gives y = (L U z)[p]; p = argsort(rows) makes W = q at initialization.
        self.permutation = self.add_weight(shape=(c,), dtype="int32", initializer=const(np.argsort(rows)),
                                           trainable=False, name="permutation")

    def factors(self):
        """(P as an index vector, unit-lower L, upper U with diagonal s)."""
        c = self.event_shape[-1]
        strict = np.tril(np.ones((c, c), "float32"), -1)
        eye = np.eye(c, dtype="float32")
        lower = ops.convert_to_tensor(self.lower) * strict + eye
        diag = ops.convert_to_tensor(self.sign_diag) * ops.exp(ops.convert_to_tensor(self.log_abs_diag))
        upper = ops.convert_to_tensor(self.upper) * strict.T + diag * eye
        return ops.convert_to_tensor(self.permutation), lower, upper

    def weight_matrix(self):
        """W, so that the step maps z to h = W z at every pixel."""
        perm, lower, upper = self.factors()
        return ops.take(ops.matmul(lower, upper), perm, axis=0)

    def bijector(self, context=None):
        tfb = substrate.tfb()
        perm, lower, upper = self.factors()
        return tfb.Chain([
            tfb.Permute(perm, axis=-1),
            tfb.ScaleMatvecTriL(scale_tril=lower),
            tfb.ScaleMatvecTriL(scale_tril=ops.transpose(upper), adjoint=True),
        ])

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


@register_layer
class LogitTransform(FlowStep):
    """Data in [0, 1] <-> logit space: `h = (sigmoid(z) - alpha) / (1 - 2 alpha)`.

    The RealNVP/Glow preprocessing as the flow's first step, so that the
    model's density and samples live in [0, 1] pixel space and its log-det
    counts in the likelihood.

    Args:
        event_shape: shape of one example.
        alpha: squeezes [0, 1] into [alpha, 1 - alpha] before the logit.
    """

    def __init__(self, event_shape, alpha=0.05, context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        self.alpha = float(alpha)

    def bijector(self, context=None):
        tfb = substrate.tfb()
        a = self.alpha
        return tfb.Chain([tfb.Scale(1.0 / (1.0 - 2.0 * a)), tfb.Shift(-a), tfb.Sigmoid()])

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


def squeeze2x2(h):
    """(B, H, W, C) -> (B, H/2, W/2, 4C), each 2x2 block to channels."""
    _, hh, ww, c = h.shape
    h = ops.reshape(h, (-1, hh // 2, 2, ww // 2, 2, c))
    h = ops.transpose(h, (0, 1, 3, 2, 4, 5))
    return ops.reshape(h, (-1, hh // 2, ww // 2, 4 * c))


def unsqueeze2x2(h):
    """The inverse of `squeeze2x2`."""
    _, hh, ww, c = h.shape
    h = ops.reshape(h, (-1, hh, ww, 2, 2, c // 4))
    h = ops.transpose(h, (0, 1, 3, 2, 4, 5))
    return ops.reshape(h, (-1, 2 * hh, 2 * ww, c // 4))
