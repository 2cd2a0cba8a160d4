"""RealNVP: real-valued non-volume preserving flows (Dinh et al. 2017).

An affine coupling keeps the units selected by a binary mask b and
transforms the others with a scale and shift computed from the kept ones:

    y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x)),
    log|det dy/dx| = sum((1 - b) * s(b * x)).

The Jacobian is triangular, so the log-det is a sum, and both directions
cost one network pass. Successive couplings alternate the mask.

Vector data (`(D,)`: 2-D toys, tabular data) use halves of the vector
(TFP's `tfb.RealNVP`) with an MLP, reversing the order between couplings.
Images (`(H, W, C)`) use the paper's multiscale architecture: at each scale,
three couplings with checkerboard masks, a squeeze (2x2 blocks to
channels), three with channel-wise masks, then half of the channels are
factored out to the latent; the last scale has four checkerboard couplings
(`couplings_per_scale` = 3; the last scale has one more).
A logit transform (`logit_alpha`) maps [0, 1] pixels to the real line as
the first step, and batch normalization (`batch_norm`, section 3.7) may
follow every coupling. With `num_classes`, every conditioner also sees the
one-hot label (a class-conditional flow: `kgen sample --label K`).

#### References

- Dinh, L., Sohl-Dickstein, J. & Bengio, S. Density estimation using Real
  NVP. ICLR 2017. arXiv:1605.08803.
"""

from kgen.errors import UsageError
from kgen.models.flows.base import Flow
from kgen.models.flows.steps import AffineCoupling, BatchNorm, LogitTransform, MaskedAffineCoupling, Reverse
from kgen.models.flows.substrate import FLOW_BACKENDS
from kgen.registry import register_model


@register_model("real_nvp", family="flow", conditional=True, backends=FLOW_BACKENDS,
                tiny=dict(num_scales=2, couplings_per_scale=1, filters=8, hidden_units=(16,)))
class RealNVP(Flow):
    """RealNVP (Dinh et al. 2017): affine couplings; vector and multiscale image variants.

    Args:
        input_shape: `(D,)` vectors (D >= 2) or `(H, W, C)` images in [0, 1]
            (dequantized) with H and W divisible by `2 ** (num_scales - 1)`.
        num_levels: grey levels of the data before dequantization, or None.
        num_classes: classes of a class-conditional flow, or None.
        num_couplings: coupling layers (vector variant).
        hidden_units: widths of each coupling's MLP (vector variant).
        num_scales: scales of the multiscale image variant.
        couplings_per_scale: couplings of each mask type per scale (the
            paper's 3; the last scale has one more checkerboard coupling).
        filters: width of the conv conditioners (image variant).
        num_blocks: residual blocks per conv conditioner (image variant).
        logit_alpha: the image variant's first step maps x in [0, 1] to
            logit(alpha + (1 - 2 alpha) x); 0 turns it off (then feed
            logit-space data, `data.logit_alpha`).
        batch_norm: a batch-normalization bijector after every coupling.
        log_scale_clamp: soft bound on each coupling's |log-scale|.
        activation: hidden activation of the MLPs.

    Example:

    >>> import kgen
    >>> flow = kgen.build_model("real_nvp", input_shape=(2,))
    >>> flow.compile(optimizer="adam")
    >>> _ = flow.fit(kgen.load_dataset("moons").x, epochs=1, batch_size=256, verbose=0)
    >>> flow.sample(5, seed=0).shape
    (5, 2)
    """

    def __init__(self, input_shape, num_levels=None, num_classes=None, num_couplings=8,
                 hidden_units=(64, 64), num_scales=2, couplings_per_scale=3, filters=32, num_blocks=1, logit_alpha=0.05,
                 batch_norm=False, log_scale_clamp=3.0, activation="relu", **kwargs):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        self.num_couplings = int(num_couplings)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.num_scales = int(num_scales)
        self.couplings_per_scale = int(couplings_per_scale)
        self.filters = int(filters)
        self.num_blocks = int(num_blocks)
        self.logit_alpha = float(logit_alpha)
        self.batch_norm = bool(batch_norm)
        self.log_scale_clamp = float(log_scale_clamp)
        self.activation = activation
        ctx = self.num_classes or 0

        # === Steps ===
        if len(self.data_shape) == 1:
            self._vector_steps(ctx)
        elif len(self.data_shape) == 3:
            self._image_steps(ctx)
        else:
            raise UsageError(f"RealNVP takes (D,) vectors or (H, W, C) images, got shape {self.data_shape}.")
        self.build()

    def _vector_steps(self, ctx):
        d = self.data_shape[0]
        if d < 2:
            raise UsageError(f"RealNVP couples halves of the data: it needs at least 2 dimensions, got {d}.")
        for i in range(self.num_couplings):
            self.add_step(AffineCoupling(self.data_shape, d // 2, self.hidden_units,
                                         log_scale_clamp=self.log_scale_clamp, activation=self.activation,
                                         context_dim=ctx, name=f"coupling_{i}"))
            if self.batch_norm:
                self.add_step(BatchNorm(self.data_shape, name=f"batch_norm_{i}"))
            self.add_step(Reverse(self.data_shape, name=f"reverse_{i}"))

    def _image_steps(self, ctx):
        h, w, _ = self.data_shape
        factor = 2 ** (self.num_scales - 1)
        if self.num_scales < 1 or h % factor or w % factor:
            raise UsageError(
                f"RealNVP with num_scales = {self.num_scales} halves H and W {self.num_scales - 1} times: "
                f"{h}x{w} must be divisible by {factor}; lower model.num_scales."
            )
        if self.logit_alpha > 0:
            self.add_step(LogitTransform(self.data_shape, self.logit_alpha, name="logit"))
        count = 0

        def coupling(mask, parity):
            nonlocal count
            shape = self.shape_after()
            self.add_step(MaskedAffineCoupling(shape, mask, parity, self.filters, self.num_blocks,
                                               self.log_scale_clamp, ctx, name=f"coupling_{count}"))
            if self.batch_norm:
                self.add_step(BatchNorm(shape, name=f"batch_norm_{count}"))
            count += 1

        k = self.couplings_per_scale
        for _ in range(self.num_scales - 1):
            for i in range(k):
                coupling("checkerboard", i % 2)
            self.add_op("squeeze")
            for i in range(k):
                coupling("channel", i % 2)
            self.add_op("split")
        for i in range(k + 1):
            coupling("checkerboard", i % 2)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_couplings": self.num_couplings, "hidden_units": list(self.hidden_units),
            "num_scales": self.num_scales, "couplings_per_scale": self.couplings_per_scale,
            "filters": self.filters, "num_blocks": self.num_blocks,
            "logit_alpha": self.logit_alpha, "batch_norm": self.batch_norm,
            "log_scale_clamp": self.log_scale_clamp, "activation": self.activation,
        })
        return config
