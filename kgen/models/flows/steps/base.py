"""The step protocol (`FlowStep`), order reversal and the 2x2 squeeze.

Invertible steps: Keras 3 layers that build TFP bijectors on demand.

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

from keras import layers, ops

from kgen.models.flows import substrate
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


@register_layer
class Reverse(FlowStep):
    """Reverses the last axis (alternates which half a coupling transforms)."""

    def bijector(self, context=None):
        n = self.event_shape[-1]
        return substrate.tfb().Permute(permutation=list(range(n - 1, -1, -1)), axis=-1)


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
