"""Normalization steps: batch normalization (RealNVP, MAF) and ActNorm (Glow)."""

from keras import ops

from kgen import backend
from kgen.models.flows import substrate
from kgen.models.flows.steps.base import FlowStep, broadcast_like
from kgen.registry import register_layer


@register_layer
class BatchNorm(FlowStep):
    """Batch normalization as a bijector (Dinh et al. 2017, section 3.7).

    Encoding normalizes each feature (the last axis) with the batch's mean
    and variance in training, and with moving averages otherwise, then
    applies a learned scale and shift:

        z = exp(log_gamma) * (h - mean) / sqrt(var + eps) + beta,
        log|det| = sum(log_gamma - 0.5 log(var + eps)) * (positions per feature).

    TFP's `tfb.BatchNormalization` wraps a Keras 2 layer (invisible to a
    Keras 3 model, absent from the JAX substrate), so this step keeps its
    statistics as Keras 3 variables and builds TFP `Shift`/`Scale` bijectors
    from them.

    Args:
        event_shape: shape of one example.
        momentum: moving-average momentum.
        epsilon: variance floor.
    """

    def __init__(self, event_shape, momentum=0.9, epsilon=1e-4, context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        c = (self.event_shape[-1],)
        self.log_gamma = self.add_weight(shape=c, initializer="zeros", name="log_gamma")
        self.beta = self.add_weight(shape=c, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=c, initializer="zeros", trainable=False, name="moving_mean")
        self.moving_var = self.add_weight(shape=c, initializer="ones", trainable=False, name="moving_var")

    def _bijector_with(self, mean, var, like=None):
        tfb = substrate.tfb()
        log_scale = ops.convert_to_tensor(self.log_gamma) - 0.5 * ops.log(var + self.epsilon)
        normalize = tfb.Chain([
            tfb.Shift(ops.convert_to_tensor(self.beta)),
            tfb.Scale(log_scale=broadcast_like(log_scale, like)),
            tfb.Shift(-mean),
        ])
        return tfb.Invert(normalize)

    def bijector(self, context=None, like=None):
        return self._bijector_with(ops.convert_to_tensor(self.moving_mean), ops.convert_to_tensor(self.moving_var),
                                   like)

    def encode(self, h, context=None, training=False):
        if not training:
            b = self.bijector(context, like=h)
            return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=self.event_ndims)
        axes = tuple(range(len(h.shape) - 1))
        mean, var = backend.batch_moments(h, axes)  # tf.distribute: the global batch's
        m = self.momentum
        self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * ops.stop_gradient(mean))
        self.moving_var.assign(m * self.moving_var + (1.0 - m) * ops.stop_gradient(var))
        b = self._bijector_with(mean, var, like=h)
        return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=self.event_ndims)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "epsilon": self.epsilon})
        return config


@register_layer
class ActNorm(FlowStep):
    """Glow's activation normalization with data-dependent initialization.

    `z = (h + bias) * exp(log_scale)` per channel. On the first training
    batch the step sets its offsets so that its output has zero mean and unit
    variance per channel (Kingma & Dhariwal 2018); afterwards they train
    freely. The data-dependent part lives in non-trainable variables (which
    `fit` updates on every backend), the trainable `bias`/`log_scale` start
    at zero on top of it.
    """

    def __init__(self, event_shape, context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        c = (self.event_shape[-1],)
        self.bias = self.add_weight(shape=c, initializer="zeros", name="bias")
        self.log_scale = self.add_weight(shape=c, initializer="zeros", name="log_scale")
        self.init_bias = self.add_weight(shape=c, initializer="zeros", trainable=False, name="init_bias")
        self.init_log_scale = self.add_weight(shape=c, initializer="zeros", trainable=False,
                                              name="init_log_scale")
        self.initialized = self.add_weight(shape=(), initializer="zeros", trainable=False, name="initialized")

    def _bijector_with(self, init_bias, init_log_scale, like=None):
        tfb = substrate.tfb()
        log_scale = init_log_scale + ops.convert_to_tensor(self.log_scale)
        normalize = tfb.Chain([
            tfb.Scale(log_scale=broadcast_like(log_scale, like)),
            tfb.Shift(init_bias + ops.convert_to_tensor(self.bias)),
        ])
        return tfb.Invert(normalize)

    def bijector(self, context=None, like=None):
        return self._bijector_with(ops.convert_to_tensor(self.init_bias),
                                   ops.convert_to_tensor(self.init_log_scale), like)

    def encode(self, h, context=None, training=False):
        if not training:
            b = self.bijector(context, like=h)
            return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=self.event_ndims)
        axes = tuple(range(len(h.shape) - 1))
        h_const = ops.stop_gradient(h)
        mean, var = backend.batch_moments(h_const, axes)  # tf.distribute: the global batch's
        std = ops.sqrt(var + 1e-6)
        done = ops.convert_to_tensor(self.initialized)
        init_bias = done * self.init_bias + (1.0 - done) * (-mean)
        init_log_scale = done * self.init_log_scale + (1.0 - done) * (-ops.log(std))
        self.init_bias.assign(init_bias)
        self.init_log_scale.assign(init_log_scale)
        self.initialized.assign(ops.ones_like(done))
        b = self._bijector_with(init_bias, init_log_scale, like=h)
        return b.inverse(h), b.inverse_log_det_jacobian(h, event_ndims=self.event_ndims)
