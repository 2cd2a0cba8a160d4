"""The one place kgen imports TensorFlow Probability.

TFP has a substrate per array library: the TensorFlow one
(`tensorflow_probability`) and a JAX one
(`tensorflow_probability.substrates.jax`) with the same API on `jax.numpy`
arrays. Flows pick the substrate that matches the running Keras backend, so
the Keras 3 conditioner layers and the bijectors exchange native tensors.
There is no PyTorch substrate: on torch every flow raises `BackendError`
when it is built (importing the module is fine).

TFP is imported lazily, on the first flow built, so `import kgen.models`
costs nothing extra and works on every backend.
"""

import functools
import warnings

import numpy as np

from kgen import backend

FLOW_BACKENDS = ("tensorflow", "jax")


def require_flow_backend(what):
    """Raises `kgen.errors.BackendError` unless the backend has a TFP substrate."""
    backend.require(FLOW_BACKENDS, what)


@functools.lru_cache(maxsize=None)
def _load(backend_name):
    if backend_name == "jax":
        from tensorflow_probability.substrates import jax as tfp

        _fix_jax_spline()
    else:
        import tensorflow_probability as tfp
    return tfp


class _StaticShapes:
    """TFP's JAX `tf` namespace with `shape`, `rank` and `broadcast_dynamic_shape`
    returning static NumPy values."""

    def __init__(self, tf):
        self._tf = tf

    def __getattr__(self, name):
        return getattr(self._tf, name)

    @staticmethod
    def shape(input, out_type=None, name=None):  # noqa: A002 (TF's signature)
        return np.asarray(np.shape(input), dtype=out_type or np.int32)

    @staticmethod
    def rank(input, name=None):  # noqa: A002
        return np.int32(np.ndim(input))

    @staticmethod
    def broadcast_dynamic_shape(shape_x, shape_y):
        shape = np.broadcast_shapes(tuple(int(d) for d in shape_x), tuple(int(d) for d in shape_y))
        return np.asarray(shape, dtype=np.int32)

    # The spline asks for int64 bin indices, which JAX (without x64) truncates to
    # int32 with a warning at every trace; ask for what JAX gives.
    def zeros(self, shape, dtype=None, name=None):
        return self._tf.zeros(shape, dtype=self._int32_if_int64(dtype))

    def searchsorted(self, sorted_sequence, values, side="left", out_type=None, name=None):
        return self._tf.searchsorted(sorted_sequence, values, side=side, out_type=self._int32_if_int64(out_type))

    def _int32_if_int64(self, dtype):
        import jax

        if dtype is None or jax.config.jax_enable_x64:
            return dtype
        return self._tf.int32 if np.dtype(getattr(dtype, "as_numpy_dtype", dtype)) == np.int64 else dtype


def _fix_jax_spline():
    """Works around TFP's JAX substrate under current JAX's `jax.jit`.

    TFP's JAX backend answers `tf.shape`, `tf.rank`, `tf.zeros` and
    `tf.broadcast_dynamic_shape` with JAX arrays, and current JAX stages
    every array created inside `jax.jit` as a tracer; code that then uses
    such a value as a shape fails with "Shapes must be 1D sequences of
    concrete values". Of the bijectors kgen uses, `tfb.RationalQuadraticSpline`
    is hit (knot padding and broadcasting); `tfb.ScaleMatvecLU` is too, so
    Glow's 1x1 convolution is built from `Permute` and two
    `ScaleMatvecTriL` instead (see `steps.InvertibleConv1x1`). JAX shapes are
    always static, so the spline module alone gets a `tf` whose shape
    functions return NumPy values and a knot padding with static paddings.
    The fix is installed only when the bug shows, so a fixed TFP runs as
    shipped.
    """
    import jax
    import jax.numpy as jnp
    from tensorflow_probability.substrates.jax.bijectors import rational_quadratic_spline as rqs

    def probe():
        spline = rqs.RationalQuadraticSpline(jnp.ones((3, 2)), jnp.ones((3, 2)), jnp.ones((3, 1)), range_min=-1.0)
        with warnings.catch_warnings():  # the spline asks for int64 bin indices; JAX gives int32
            warnings.simplefilter("ignore", UserWarning)
            jax.jit(spline.inverse)(jnp.zeros((3,)))
            jax.jit(spline.forward)(jnp.zeros((3,)))

    try:
        probe()
        return
    except (TypeError, jax.errors.ConcretizationTypeError):
        pass

    def _padded(t, lhs, rhs=None):
        lead = [(0, 0)] * (t.ndim - 1)
        result = jnp.pad(t, lead + [(1, 0)], constant_values=jnp.asarray(lhs, t.dtype))
        if rhs is not None:
            result = jnp.pad(result, lead + [(0, 1)], constant_values=jnp.asarray(rhs, t.dtype))
        return result

    rqs.tf = _StaticShapes(rqs.tf)
    rqs._padded = _padded
    probe()  # raises if the fix does not hold


def tfp():
    """The TFP module for the active backend."""
    require_flow_backend("TensorFlow Probability flows")
    return _load(backend.name())


def tfb():
    """`tfp.bijectors` for the active backend."""
    return tfp().bijectors


def tfd():
    """`tfp.distributions` for the active backend."""
    return tfp().distributions
