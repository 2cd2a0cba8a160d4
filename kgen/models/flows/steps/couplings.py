"""Coupling steps: half the units transformed by a network of the other half (NICE, RealNVP, Glow)."""

import numpy as np
from keras import ops

from kgen.models.flows import substrate
from kgen.models.flows.conditioners import CouplingConvNet, CouplingMLP, soft_clamp
from kgen.models.flows.steps.base import FlowStep
from kgen.registry import register_layer


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
