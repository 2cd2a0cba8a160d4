"""NICE: Non-linear Independent Components Estimation (Dinh et al. 2015).

The flow alternates additive couplings, which split x into halves (x0, x1)
and map

    y0 = x0,    y1 = x1 + m(x0),

(unit Jacobian determinant, so volume-preserving) and reverse the order of
the units between couplings so each half is transformed in turn. A final
learned diagonal scaling `z = exp(s) * y` is the only part that changes
volume: log|det| = sum(s). Images are flattened to vectors.

kgen uses a standard normal base density (the paper also used a logistic
one) and TFP's `tfb.RealNVP` with a shift-only conditioner for the
coupling.

#### References

- Dinh, L., Krueger, D. & Bengio, Y. NICE: Non-linear Independent
  Components Estimation. ICLR 2015 workshop. arXiv:1410.8516.
"""

from kgen.errors import UsageError
from kgen.models.flows.base import Flow
from kgen.models.flows.steps import LogitTransform, AffineCoupling, DiagonalScale, Reverse
from kgen.models.flows.substrate import FLOW_BACKENDS
from kgen.registry import register_model


@register_model("nice", family="flow", backends=FLOW_BACKENDS,
                tiny=dict(num_couplings=2, hidden_units=(16,)))
class NICE(Flow):
    """NICE (Dinh et al. 2015): additive couplings and a diagonal scaling.

    Args:
        input_shape: `(D,)` points or `(H, W, C)` images (flattened), D >= 2.
        num_levels: grey levels of the data before dequantization, or None.
        num_classes: must be None (NICE is unconditional).
        num_couplings: additive coupling layers (the paper uses 4).
        hidden_units: widths of each coupling's MLP.
        activation: hidden activation.
        logit_alpha: images only: the first step maps x in [0, 1] to
            logit(alpha + (1 - 2 alpha) x), so densities and samples stay in
            pixel space; 0 turns it off.

    Example:

    >>> import kgen
    >>> flow = kgen.build_model("nice", input_shape=(2,))
    >>> flow.compile(optimizer="adam")
    >>> data = kgen.load_dataset("moons")
    >>> _ = flow.fit(data.x, epochs=1, batch_size=256, verbose=0)
    >>> flow.log_prob(data.x[:3]).shape
    (3,)
    """

    litert_endpoints = ("log_prob", "sample")

    def __init__(self, input_shape, num_levels=None, num_classes=None, num_couplings=4,
                 hidden_units=(64, 64), activation="relu", logit_alpha=0.05, **kwargs):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        if num_classes is not None:
            raise UsageError("NICE is unconditional; use real_nvp or glow for a class-conditional flow.")
        if self.num_dims < 2:
            raise UsageError(f"NICE couples halves of the data: it needs at least 2 dimensions, got {self.num_dims}.")
        # === Config ===
        self.num_couplings = int(num_couplings)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation

        # === Steps ===
        self.logit_alpha = float(logit_alpha)
        if len(self.data_shape) != 1:
            if self.logit_alpha > 0:
                self.add_step(LogitTransform(self.data_shape, self.logit_alpha, name="logit"))
            self.add_op("flatten")
        shape = (self.num_dims,)
        for i in range(self.num_couplings):
            self.add_step(AffineCoupling(shape, self.num_dims // 2, self.hidden_units, additive=True,
                                         activation=activation, name=f"coupling_{i}"))
            self.add_step(Reverse(shape, name=f"reverse_{i}"))
        self.add_step(DiagonalScale(shape, name="scale"))
        self.build()

    def get_config(self):
        config = super().get_config()
        config.update({"num_couplings": self.num_couplings, "hidden_units": list(self.hidden_units),
                       "activation": self.activation, "logit_alpha": self.logit_alpha})
        return config
