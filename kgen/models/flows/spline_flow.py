"""Neural spline flows (Durkan et al. 2019).

Each layer maps every transformed unit through a monotonic
rational-quadratic spline on [-B, B] (identity outside, so the tails stay
Gaussian), with K bins whose widths, heights and inner knot derivatives a
network computes. The spline is far more flexible per layer than an affine
map yet keeps an analytic inverse and log-det. Two architectures:

- "coupling" (RQ-NSF (C)): half of the units condition a spline of the
  other half, TFP's `tfb.RealNVP(bijector_fn=...)` with an MLP; one pass
  each way.
- "autoregressive" (RQ-NSF (AR)): every unit's spline is conditioned on
  the previous units, `tfb.MaskedAutoregressiveFlow(bijector_fn=...)` with
  a MADE; one-pass density, D-pass sampling.

Splines are TFP's `tfb.RationalQuadraticSpline`. Layers are separated by
order reversals; images are flattened.

#### References

- Durkan, C., Bekasov, A., Murray, I. & Papamakarios, G. Neural Spline
  Flows. NeurIPS 2019. arXiv:1906.04032.
- Gregory, J. A. & Delbourgo, R. Piecewise rational quadratic interpolation
  to monotonic data. IMA J. Numer. Anal. 1982.
"""

from kgen.errors import UsageError
from kgen.models.flows.base import Flow
from kgen.models.flows.steps import LogitTransform, MaskedAutoregressive, Reverse, SplineCoupling
from kgen.models.flows.substrate import FLOW_BACKENDS
from kgen.registry import register_model

ARCHITECTURES = ("coupling", "autoregressive")


@register_model("spline_flow", family="flow", conditional=True, backends=FLOW_BACKENDS,
                tiny=dict(num_layers=1, num_bins=4, hidden_units=(8,)))
class SplineFlow(Flow):
    """Neural spline flow (Durkan et al. 2019): rational-quadratic spline layers.

    Args:
        input_shape: `(D,)` vectors (D >= 2) or `(H, W, C)` images (flattened).
        num_levels: grey levels of the data before dequantization, or None.
        num_classes: classes of a class-conditional flow, or None.
        num_layers: spline layers.
        num_bins: bins K of each spline.
        bound: splines act on [-bound, bound]; the identity outside.
        hidden_units: widths of each conditioner.
        architecture: "coupling" or "autoregressive".
        activation: hidden activation.
        logit_alpha: images only: the first step maps x in [0, 1] to
            logit(alpha + (1 - 2 alpha) x), so densities and samples stay in
            pixel space; 0 turns it off.

    Example:

    >>> import kgen
    >>> flow = kgen.build_model("spline_flow", input_shape=(2,), num_bins=8)
    >>> flow.compile(optimizer="adam")
    >>> _ = flow.fit(kgen.load_dataset("checkerboard").x, epochs=1, batch_size=256, verbose=0)
    >>> flow.log_prob([[0.5, 0.5]]).shape
    (1,)
    """

    # TFP's spline finds bins with tf.searchsorted, which LiteRT has no builtin for.
    litert_endpoints = ()

    def __init__(self, input_shape, num_levels=None, num_classes=None, num_layers=4, num_bins=8, bound=4.0,
                 hidden_units=(64, 64), architecture="coupling", activation="relu", logit_alpha=0.05,
                 **kwargs):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        if architecture not in ARCHITECTURES:
            raise UsageError(f'unknown architecture "{architecture}"; choose one of {", ".join(ARCHITECTURES)}.')
        if architecture == "coupling" and self.num_dims < 2:
            raise UsageError(
                'a coupling spline flow needs at least 2 dimensions; use architecture = "autoregressive".'
            )
        if int(num_bins) < 2:
            raise UsageError(f"num_bins must be at least 2, got {num_bins}.")
        # === Config ===
        self.num_layers = int(num_layers)
        self.num_bins = int(num_bins)
        self.bound = float(bound)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.architecture = architecture
        self.activation = activation
        ctx = self.num_classes or 0

        # === Steps ===
        self.logit_alpha = float(logit_alpha)
        if len(self.data_shape) != 1:
            if self.logit_alpha > 0:
                self.add_step(LogitTransform(self.data_shape, self.logit_alpha, name="logit"))
            self.add_op("flatten")
        shape = (self.num_dims,)
        for i in range(self.num_layers):
            if architecture == "coupling":
                step = SplineCoupling(shape, self.num_dims // 2, self.num_bins, self.bound, self.hidden_units,
                                      activation, ctx, name=f"spline_{i}")
            else:
                step = MaskedAutoregressive(shape, self.hidden_units, num_bins=self.num_bins, bound=self.bound,
                                            activation=activation, context_dim=ctx, name=f"spline_{i}")
            self.add_step(step)
            self.add_step(Reverse(shape, name=f"reverse_{i}"))
        self.build()

    def get_config(self):
        config = super().get_config()
        config.update({"num_layers": self.num_layers, "num_bins": self.num_bins, "bound": self.bound,
                       "hidden_units": list(self.hidden_units), "architecture": self.architecture,
                       "activation": self.activation, "logit_alpha": self.logit_alpha})
        return config
