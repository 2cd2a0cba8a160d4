"""Checks every flow test file shares (imported by the test modules beside it).

`VECTOR_CASES` names the small 2-D flows that every standard check runs on
(`test_flow_standard_checks.py`, parametrized over them): trainable weights
that one step changes, a falling loss, invertibility, log-det against the
autodiff Jacobian, a density that integrates to one, the `.keras` round
trip. `trained_case(name)` trains each once per test session; the model
files beside this one use the same trained flow for their own checks.

Flows run on TensorFlow and JAX only; on PyTorch each flow test module is
skipped as a whole with that reason, and `test_flow_backends.py` checks the
clear `BackendError` instead.
"""

import dataclasses
import functools
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


# === Training scaffolding ===


def train_and_record(flow, x, labels=None, steps=40, batch_size=None, learning_rate=3e-3):
    """Weights before and after one step, mean NLL before and after `steps` more.

    Returns a dict: `flow`, `x`, `y`, `unchanged` (trainable weights the first
    step left untouched), `nll0` and `nll1`.
    """
    before = weights_snapshot(flow)
    nll0 = mean_nll(flow, x, labels)
    train(flow, x, labels, steps=1, batch_size=batch_size, learning_rate=learning_rate)
    unchanged = unchanged_weights(before, flow)
    train(flow, x, labels, steps=steps, batch_size=batch_size, learning_rate=learning_rate)
    return {"flow": flow, "x": x, "y": labels, "unchanged": unchanged, "nll0": nll0,
            "nll1": mean_nll(flow, x, labels)}


@dataclasses.dataclass(frozen=True)
class VectorCase:
    """A small flow on 256 points of a 2-D toy density, and what its checks expect.

    Args:
        model: registered model name.
        dataset: toy data set (its first 256 training points).
        hparams: the model's arguments, as (name, value) pairs.
        steps: training steps after the first (batch 64, Adam 3e-3).
        min_drop: nats the mean training NLL must fall.
        num_weights: the exact number of trainable weights (None: at least `min_weights`).
        min_weights: the least number of trainable weights when `num_weights` is None.
        z: base points to decode and encode back (None: 16 standard normal points).
    """

    model: str
    dataset: str
    hparams: tuple
    steps: int = 40
    min_drop: float = 0.2
    num_weights: int = None
    min_weights: int = 1
    z: tuple = None

    def base_points(self):
        if self.z is None:
            return np.random.default_rng(1).standard_normal((16, 2)).astype("float32")
        return np.asarray(self.z, "float32")


VECTOR_CASES = {
    # MADE: 3 layers x (2 hidden + 1 output) masked dense layers x (kernel, bias)
    "maf": VectorCase("maf", "8gaussians", (("num_layers", 3), ("hidden_units", (32, 32))), num_weights=3 * 6),
    "iaf": VectorCase("iaf", "8gaussians", (("num_layers", 3), ("hidden_units", (32, 32))), num_weights=3 * 6),
    # 4 coupling MLPs of 3 dense layers, and the diagonal scaling
    "nice": VectorCase("nice", "moons", (("num_couplings", 4), ("hidden_units", (32, 32))), num_weights=4 * 6 + 1),
    # 2 spline MLPs of 2 dense layers; z has points outside the spline interval (identity tails)
    "spline_flow": VectorCase("spline_flow", "checkerboard",
                              (("num_layers", 2), ("num_bins", 6), ("hidden_units", (32,))),
                              steps=30, min_drop=0.1, num_weights=2 * 4,
                              z=((0.3, -1.2), (5.0, -6.0), (-4.5, 0.1), (0.0, 0.0))),
    # with batch norm, whose moving statistics are not trainable
    "real_nvp": VectorCase("real_nvp", "moons",
                           (("num_couplings", 4), ("hidden_units", (32, 32)), ("batch_norm", True)),
                           min_weights=4 * 6),
}


@functools.cache
def trained_case(name):
    """`train_and_record` of `VECTOR_CASES[name]`, once per session (seeded here, so
    the result does not depend on which test asked first)."""
    case = VECTOR_CASES[name]
    keras.utils.set_random_seed(0)
    x = kgen.load_dataset(case.dataset).x[:256]
    flow = kgen.build_model(case.model, input_shape=(2,), **dict(case.hparams))
    result = train_and_record(flow, x, steps=case.steps, batch_size=64, learning_rate=3e-3)
    result["case"] = case
    return result


# === The standard checks (each raises AssertionError when it fails) ===


def check_weights_all_train(result):
    """The flow has the trainable weights its case expects, and one step changes every one."""
    case, flow = result["case"], result["flow"]
    if case.num_weights is not None:
        assert len(flow.trainable_weights) == case.num_weights, len(flow.trainable_weights)
    else:
        assert len(flow.trainable_weights) >= case.min_weights, len(flow.trainable_weights)
    assert result["unchanged"] == [], f"the first step left these weights unchanged: {result['unchanged']}"


def check_loss_falls(result, min_drop=None):
    min_drop = result["case"].min_drop if min_drop is None else min_drop
    assert result["nll1"] < result["nll0"] - min_drop, (result["nll0"], result["nll1"])


def check_invertible(result):
    assert_invertible(result["flow"], result["x"][:16], result["y"], z=result["case"].base_points())


def check_logdet(result):
    assert_logdet_matches_autodiff(result["flow"], result["x"][:4])


def check_normalized(result, tolerance=0.01):
    integral = grid_integral(result["flow"])
    assert abs(integral - 1.0) < tolerance, integral
