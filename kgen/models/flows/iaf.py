"""IAF: the inverse autoregressive flow (Kingma et al. 2016), MAF run the other way.

IAF reads each layer's shift and log-scale off the noise, x_i = z_i exp(s_i(z_<i))
+ t_i(z_<i): sampling takes one MADE pass per layer and the density D passes
(MAF is the reverse; see `maf.py` for the shared math). TFP's
`tfb.MaskedAutoregressiveFlow` inside `tfb.Invert`, with kgen's Keras 3 MADE.

#### References

- Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. &
  Welling, M. Improved Variational Inference with Inverse Autoregressive
  Flow. NeurIPS 2016. arXiv:1606.04934.
"""

from kgen.models.flows.maf import MAF
from kgen.models.flows.substrate import FLOW_BACKENDS
from kgen.registry import register_model


@register_model("iaf", family="flow", conditional=True, backends=FLOW_BACKENDS,
                tiny=dict(num_layers=1, hidden_units=(8,)))
class IAF(MAF):
    """Inverse autoregressive flow (Kingma et al. 2016): one-pass sampling.

    The inverse of MAF: the same arguments (without `batch_norm`), but
    sampling costs one MADE pass per layer and the density D passes.

    Example:

    >>> import kgen
    >>> flow = kgen.build_model("iaf", input_shape=(2,))
    >>> flow.sample(5, seed=0).shape
    (5, 2)
    """

    inverse = True
