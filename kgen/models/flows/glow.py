"""Glow: generative flow with invertible 1x1 convolutions (Kingma & Dhariwal 2018).

A multiscale image flow. Each scale squeezes 2x2 blocks into channels and
then applies K steps of flow, each

    ActNorm -> invertible 1x1 convolution -> affine coupling,

- ActNorm: a per-channel affine map whose offsets are set from the first
  training batch so its outputs have zero mean and unit variance
  (data-dependent initialization), then trained.
- 1x1 convolution: a learned C x C matrix W applied at every pixel,
  LU-parameterized (W = P L (U + diag(s)), TFP's `tfb.ScaleMatvecLU`) so
  log|det| = H W sum log|s| costs O(C).
- Affine coupling: the first half of the channels conditions a scale and
  shift of the second (TFP's `tfb.RealNVP` with a conv conditioner).

Between scales half of the channels are factored out. Their density is
Glow's learned prior N(mu(h), sigma(h)) given the kept half h, written
here as one more affine coupling (the "split prior") before a standard
normal, which is the same model. As in RealNVP, a logit transform is the
first step, so densities and samples are in [0, 1] pixel space; with
`num_classes` every conditioner also sees the one-hot label.

#### References

- Kingma, D. P. & Dhariwal, P. Glow: Generative Flow with Invertible 1x1
  Convolutions. NeurIPS 2018. arXiv:1807.03039.
- Dinh, L., Sohl-Dickstein, J. & Bengio, S. Density estimation using Real
  NVP. ICLR 2017.
"""

from kgen.errors import UsageError
from kgen.models.flows.base import Flow
from kgen.models.flows.steps import ActNorm, ChannelCoupling, InvertibleConv1x1, LogitTransform, MaskedAffineCoupling
from kgen.models.flows.substrate import FLOW_BACKENDS
from kgen.registry import register_model


@register_model("glow", family="flow", conditional=True, backends=FLOW_BACKENDS,
                tiny=dict(num_scales=2, steps_per_scale=1, filters=8))
class Glow(Flow):
    """Glow (Kingma & Dhariwal 2018): ActNorm, invertible 1x1 convolutions, affine couplings, multiscale.

    Args:
        input_shape: `(H, W, C)` images in [0, 1] (dequantized) with H and W
            divisible by `2 ** num_scales`.
        num_levels: grey levels of the data before dequantization, or None.
        num_classes: classes of a class-conditional Glow, or None.
        num_scales: scales L (each starts with a squeeze).
        steps_per_scale: steps of flow K per scale.
        filters: width of the coupling conditioners.
        num_blocks: residual blocks per conditioner.
        split_prior: learn the factored-out half's prior from the kept half.
        logit_alpha: the first step maps x in [0, 1] to
            logit(alpha + (1 - 2 alpha) x); 0 turns it off.
        log_scale_clamp: soft bound on each coupling's |log-scale|.
        seed: seed of the 1x1 convolutions' initial rotations.

    Example:

    >>> import kgen
    >>> flow = kgen.build_model("glow", input_shape=(8, 8, 1), num_levels=17)
    >>> flow.compile(optimizer="adam")
    >>> _ = flow.fit(kgen.load_dataset("digits").x[:128], epochs=1, batch_size=64, verbose=0)
    >>> flow.sample(4, seed=0, temperature=0.7).shape
    (4, 8, 8, 1)
    """

    # The 1x1 convolution's inverse needs a triangular solve (no LiteRT builtin).
    litert_endpoints = ("sample",)

    def __init__(self, input_shape, num_levels=None, num_classes=None, num_scales=2, steps_per_scale=4,
                 filters=32, num_blocks=1, split_prior=True, logit_alpha=0.05, log_scale_clamp=3.0, seed=0,
                 **kwargs):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        if len(self.data_shape) != 3:
            raise UsageError(
                f"Glow takes (H, W, C) images, got shape {self.data_shape}; use real_nvp or maf for vectors."
            )
        # === Config ===
        self.num_scales = int(num_scales)
        self.steps_per_scale = int(steps_per_scale)
        self.filters = int(filters)
        self.num_blocks = int(num_blocks)
        self.split_prior = bool(split_prior)
        self.logit_alpha = float(logit_alpha)
        self.log_scale_clamp = float(log_scale_clamp)
        self.seed = int(seed)
        h, w, _ = self.data_shape
        factor = 2 ** self.num_scales
        if self.num_scales < 1 or h % factor or w % factor:
            raise UsageError(
                f"Glow with num_scales = {self.num_scales} halves H and W {self.num_scales} times: "
                f"{h}x{w} must be divisible by {factor}; lower model.num_scales."
            )
        ctx = self.num_classes or 0

        # === Steps ===
        if self.logit_alpha > 0:
            self.add_step(LogitTransform(self.data_shape, self.logit_alpha, name="logit"))
        for s in range(self.num_scales):
            self.add_op("squeeze")
            for k in range(self.steps_per_scale):
                shape = self.shape_after()
                self.add_step(ActNorm(shape, name=f"actnorm_{s}_{k}"))
                self.add_step(InvertibleConv1x1(shape, seed=self.seed * 1000 + s * 100 + k, name=f"conv1x1_{s}_{k}"))
                self.add_step(ChannelCoupling(shape, self.filters, self.num_blocks, self.log_scale_clamp, ctx,
                                              name=f"coupling_{s}_{k}"))
            if s < self.num_scales - 1:
                if self.split_prior:
                    self.add_step(MaskedAffineCoupling(self.shape_after(), "channel", 0, self.filters,
                                                       self.num_blocks, self.log_scale_clamp, ctx,
                                                       name=f"split_prior_{s}"))
                self.add_op("split")
        self.build()

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_scales": self.num_scales, "steps_per_scale": self.steps_per_scale, "filters": self.filters,
            "num_blocks": self.num_blocks, "split_prior": self.split_prior, "logit_alpha": self.logit_alpha,
            "log_scale_clamp": self.log_scale_clamp, "seed": self.seed,
        })
        return config
