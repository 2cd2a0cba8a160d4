"""Autoregressive steps: MADE-conditioned affine (MAF/IAF) and rational-quadratic spline transforms."""

import math

from keras import ops

from kgen.models.flows import substrate
from kgen.models.flows.conditioners import CouplingMLP, MADEConditioner, soft_clamp
from kgen.models.flows.steps.base import FlowStep
from kgen.registry import register_layer

# The spline's smallest bin width/height and knot slope (keeps every bin invertible).
MIN_BIN_SIZE = 1e-3
MIN_SLOPE = 1e-3


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
