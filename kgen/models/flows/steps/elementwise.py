"""Elementwise steps: NICE's diagonal scaling and the logit transform of image data."""

from keras import ops

from kgen.models.flows import substrate
from kgen.models.flows.steps.base import FlowStep, broadcast_like
from kgen.registry import register_layer


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
