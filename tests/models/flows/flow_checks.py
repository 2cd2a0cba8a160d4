"""Checks every flow test file shares (imported by the test modules beside it).

Flows run on TensorFlow and JAX only; on PyTorch each flow test module is
skipped as a whole with that reason, and `test_flow_backends.py` checks the
clear `BackendError` instead.
"""

import math

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint

BACKEND = keras.config.backend()

needs_tfp = pytest.mark.skipif(
    BACKEND not in ("tensorflow", "jax"),
    reason="TFP flows run on the tensorflow and jax backends; test_flow_backends.py checks the torch error",
)


def to_np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def dequantized_images(n, shape, levels=17, seed=0):
    """Images in (0, 1) made like the pipeline's uniform dequantization."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, levels, (n,) + tuple(shape))
    return ((i + rng.uniform(size=i.shape)) / levels).astype("float32")


def labels_for(model, n, seed=0):
    if not model.conditional:
        return None
    return (np.random.default_rng(seed).integers(0, model.num_classes, n)).astype("int32")


def weights_snapshot(model):
    return {v.path: to_np(v).copy() for v in model.trainable_variables}


def unchanged_weights(before, model):
    """Paths of trainable weights with no element changed since `before`."""
    after = weights_snapshot(model)
    return [path for path, value in before.items() if np.array_equal(value, after[path])]


def train(model, x, labels=None, steps=1, batch_size=None, learning_rate=1e-3):
    """`steps` optimizer steps of `fit` on `x` (one batch a step)."""
    batch_size = batch_size or len(x)
    n = steps * batch_size
    reps = int(math.ceil(n / len(x)))
    xs = np.concatenate([x] * reps)[:n]
    ys = None if labels is None else np.concatenate([labels] * reps)[:n]
    if getattr(model, "optimizer", None) is None:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model.fit(model.model_inputs(xs, ys), batch_size=batch_size, epochs=1, shuffle=False, verbose=0)


def mean_nll(model, x, labels=None):
    return float(-np.mean(model.log_prob(x, labels)))


# === Invertibility and log-det ===


def compiled(fn):
    """`jax.jit` on JAX (op-by-op eager JAX compiles every primitive: slow for a
    first call); TensorFlow runs eagerly."""
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


def assert_invertible(model, x, labels=None, z=None, atol=1e-4):
    """decode(encode(x)) == x, and encode(decode(z)) == z for base noise z."""

    def run(x, z):
        back = model.decode(model.encode(x, labels)[0], labels)
        if z is None:
            return back, None
        return back, model.encode(model.decode(z, labels), labels)[0]

    back, z_back = compiled(run)(x, z)
    np.testing.assert_allclose(to_np(back), x, atol=atol, err_msg="decode(encode(x)) != x")
    if z is not None:
        np.testing.assert_allclose(to_np(z_back), z, atol=atol * 10, err_msg="encode(decode(z)) != z")


def logdet_and_autodiff_jacobian(model, x, labels=None):
    """(the flow's log|det dz/dx|, dz/dx as (n, D, D) from the backend's own autodiff)."""
    n, d = len(x), int(np.prod(x.shape[1:]))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.convert_to_tensor(x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(xt)
            z, logdet = model.encode(xt, labels)
            z = tf.reshape(z, (n, d))
        jac = tape.batch_jacobian(z, xt, experimental_use_pfor=False)
        return to_np(logdet), np.asarray(jac).reshape(n, d, d)
    import jax
    import jax.numpy as jnp

    labs = np.zeros(n, "int32") if labels is None else np.asarray(labels, "int32")

    def z_of(xi, li):
        return jnp.reshape(model.encode(xi[None], li[None] if labels is not None else None)[0], (d,))

    def both(xs, ls):  # one compiled function: op-by-op eager JAX is slow on a first call
        logdet = model.encode(xs, ls if labels is not None else None)[1]
        return logdet, jax.vmap(jax.jacfwd(z_of), in_axes=(0, 0))(xs, ls)

    logdet, jac = jax.jit(both)(jnp.asarray(x), jnp.asarray(labs))
    return to_np(logdet), np.asarray(jac).reshape(n, d, d)


def assert_logdet_matches_autodiff(model, x, labels=None, rtol=1e-3, atol=1e-3):
    """The flow's log|det dz/dx| equals the log-determinant of the autodiff Jacobian."""
    logdet, jac = logdet_and_autodiff_jacobian(model, x, labels)
    sign, want = np.linalg.slogdet(jac.astype("float64"))
    assert np.all(sign != 0), "singular Jacobian"
    np.testing.assert_allclose(logdet, want, rtol=rtol, atol=atol)


# === Normalization, saving ===


def grid_integral(model, bounds=(-8.0, 8.0), resolution=400):
    """Riemann sum of exp(log_prob) of a 2-D flow over a square grid."""
    xs = np.linspace(bounds[0], bounds[1], resolution, dtype="float32")
    gx, gy = np.meshgrid(xs, xs)
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    logp = model.log_prob(pts, batch_size=len(pts))
    cell = (xs[1] - xs[0]) ** 2
    return float(np.exp(logp.astype("float64")).sum() * cell)


def assert_round_trip(model, x, labels, tmp_path):
    """save_checkpoint + kgen.load_model: the same config, every variable (trainable or
    not: moving statistics, ActNorm's initialization) and the same log_prob."""
    path = tmp_path / "flow.keras"
    checkpoint.save_checkpoint(model, path)
    loaded = kgen.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    want = {v.path: to_np(v) for v in model.variables if "optimizer" not in v.path}
    got = {v.path: to_np(v) for v in loaded.variables if "optimizer" not in v.path}
    assert sorted(got) == sorted(want)
    for path_ in want:
        np.testing.assert_array_equal(got[path_], want[path_], err_msg=path_)
    np.testing.assert_allclose(loaded.log_prob(x, labels), model.log_prob(x, labels), rtol=1e-5, atol=1e-4)
    return loaded
