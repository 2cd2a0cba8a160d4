"""MAF and IAF: masked autoregressive and inverse autoregressive flows.

An autoregressive affine layer with a MADE conditioner (Germain et al.
2015) computes, for each dimension i,

    x_i = z_i * exp(s_i(x_<i)) + t_i(x_<i)            (MAF)
    log|det dz/dx| = -sum_i s_i(x_<i).

MAF (Papamakarios et al. 2017) reads (s, t) off the data, so the density
of x takes one MADE pass and sampling takes D sequential passes. IAF
(Kingma et al. 2016) reads them off the noise, x_i = z_i exp(s_i(z_<i)) +
t_i(z_<i): sampling takes one pass and the density D passes. Both are
TFP's `tfb.MaskedAutoregressiveFlow` (IAF inside `tfb.Invert`) with a Keras
3 MADE; layers are separated by order reversals, and MAF may interleave
batch normalization (as in the paper). Images are flattened.

#### References

- Papamakarios, G., Pavlakou, T. & Murray, I. Masked Autoregressive Flow for
  Density Estimation. NeurIPS 2017. arXiv:1705.07057.
- Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. &
  Welling, M. Improved Variational Inference with Inverse Autoregressive
  Flow. NeurIPS 2016. arXiv:1606.04934.
- Germain, M., Gregor, K., Murray, I. & Larochelle, H. MADE: Masked
  Autoencoder for Distribution Estimation. ICML 2015.
"""

from kgen.errors import UsageError
from kgen.models.flows.base import Flow
from kgen.models.flows.steps import LogitTransform, BatchNorm, MaskedAutoregressive, Reverse
from kgen.models.flows.substrate import FLOW_BACKENDS
from kgen.registry import register_model


@register_model("maf", family="flow", conditional=True, backends=FLOW_BACKENDS,
                tiny=dict(num_layers=1, hidden_units=(16,)))
class MAF(Flow):
    """Masked autoregressive flow (Papamakarios et al. 2017): one-pass density.

    Args:
        input_shape: `(D,)` vectors or `(H, W, C)` images (flattened).
        num_levels: grey levels of the data before dequantization, or None.
        num_classes: classes of a class-conditional flow (the label feeds
            every MADE), or None.
        num_layers: autoregressive layers.
        hidden_units: widths of each MADE.
        batch_norm: batch normalization between layers.
        log_scale_clamp: soft bound on |log-scale|.
        activation: MADE activation.
        logit_alpha: images only: the first step maps x in [0, 1] to
            logit(alpha + (1 - 2 alpha) x), so densities and samples stay in
            pixel space; 0 turns it off.

    Example:

    >>> import kgen
    >>> flow = kgen.build_model("maf", input_shape=(2,))
    >>> flow.compile(optimizer="adam")
    >>> _ = flow.fit(kgen.load_dataset("8gaussians").x, epochs=1, batch_size=256, verbose=0)
    >>> flow.sample(5, seed=0).shape
    (5, 2)
    """

    inverse = False
    litert_endpoints = ("log_prob", "sample")

    def __init__(self, input_shape, num_levels=None, num_classes=None, num_layers=5, hidden_units=(64, 64),
                 batch_norm=False, log_scale_clamp=3.0, activation="relu", logit_alpha=0.05, **kwargs):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        self.num_layers = int(num_layers)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.batch_norm = bool(batch_norm)
        self.log_scale_clamp = float(log_scale_clamp)
        self.activation = activation
        if self.batch_norm and self.inverse:
            raise UsageError("IAF takes no batch_norm: its statistics would come from noise, not data.")

        # === Steps ===
        self.logit_alpha = float(logit_alpha)
        if len(self.data_shape) != 1:
            if self.logit_alpha > 0:
                self.add_step(LogitTransform(self.data_shape, self.logit_alpha, name="logit"))
            self.add_op("flatten")
        shape = (self.num_dims,)
        for i in range(self.num_layers):
            self.add_step(MaskedAutoregressive(shape, self.hidden_units, inverse=self.inverse,
                                               log_scale_clamp=self.log_scale_clamp, activation=activation,
                                               context_dim=self.num_classes or 0, name=f"made_{i}"))
            if self.batch_norm and i < self.num_layers - 1:
                self.add_step(BatchNorm(shape, name=f"batch_norm_{i}"))
            self.add_step(Reverse(shape, name=f"reverse_{i}"))
        self.build()

    def get_config(self):
        config = super().get_config()
        config.update({"num_layers": self.num_layers, "hidden_units": list(self.hidden_units),
                       "batch_norm": self.batch_norm, "log_scale_clamp": self.log_scale_clamp,
                       "activation": self.activation, "logit_alpha": self.logit_alpha})
        return config
