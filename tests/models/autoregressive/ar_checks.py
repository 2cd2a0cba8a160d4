"""Checks every autoregressive model must pass (imported by the test modules beside it)."""

import itertools

import keras
import numpy as np

BACKEND = keras.config.backend()


def all_images(shape, num_levels):
    """Every image of `shape` with `num_levels` levels, as floats in [0, 1]."""
    dims = int(np.prod(shape))
    grid = np.array(list(itertools.product(range(num_levels), repeat=dims)), "float32")
    return grid.reshape((-1,) + tuple(shape)) / (num_levels - 1)


def assert_normalized(model, atol=1e-4, labels=None):
    """sum over every configuration of exp(log_prob) is 1 (for one label / condition, if given)."""
    x = all_images(model.data_shape, model.num_levels)
    if labels is not None:
        labels = np.broadcast_to(np.asarray(labels), (len(x),) + np.shape(labels)).copy()
    total = float(np.exp(model.log_prob(x, labels=labels, batch_size=len(x)).astype("float64")).sum())
    assert abs(total - 1.0) < atol, f"sum of p(x) over all {len(x)} images is {total}"
    return total


def _inputs(model, x, labels):
    if not model.conditional:
        return x
    if labels is None:
        labels = np.zeros(len(x), "int32") if model.num_classes else np.ones((len(x), model.condition_dim), "float32")
    return (x, np.broadcast_to(labels, (len(x),) + np.shape(labels)[1:]).copy())


def flat_logits(model, x, labels=None):
    """The model's logits as a NumPy array (batch, D, P), through one compiled function."""
    fn = model.compiled_fn("test_logits", lambda *a: model.call(a if len(a) > 1 else a[0], training=False))
    inputs = _inputs(model, x, labels)
    out = keras.ops.convert_to_numpy(fn(*inputs) if isinstance(inputs, tuple) else fn(inputs))
    return out.reshape(len(x), model.num_dims, -1)


def assert_autoregressive_by_perturbation(model, x, rank, atol=1e-5, labels=None):
    """Changing dimension j leaves every output i with rank[i] <= rank[j] unchanged.

    `rank` (D,) is each flattened dimension's position in the model's order.
    Every perturbed copy goes through the model in one batch. Also checks that
    some later output does change, so the check has power.
    """
    n, d = len(x), model.num_dims
    step = 1.0 / (model.num_levels - 1)
    flat = x.reshape(n, d)
    batch = np.repeat(flat[None], d + 1, axis=0)  # copy 0 unchanged, copy j+1 moves dimension j
    for j in range(d):
        col = batch[j + 1, :, j]
        batch[j + 1, :, j] = np.where(col >= 0.5, col - step, col + step)
    if labels is not None:
        labels = np.tile(np.asarray(labels), (d + 1,) + (1,) * (np.ndim(labels) - 1))
    out = flat_logits(model, batch.reshape((-1,) + model.data_shape), labels).reshape(d + 1, n, d, -1)
    moved_any = False
    for j in range(d):
        diff = np.abs(out[j + 1] - out[0]).max(axis=(0, 2))  # per output dimension
        seen = rank <= rank[j]
        assert diff[seen].max() < atol, (
            f"output(s) {np.flatnonzero(seen & (diff >= atol)).tolist()} change when input {j} "
            f"(rank {rank[j]}) changes"
        )
        moved_any |= bool((diff[~seen] > atol).any())
    assert moved_any, "no output depends on any earlier input: the check has no power"


def jacobian(model, x, labels=None):
    """d logits[b, i, :].sum() / d x[b, j] for a batch of one: (D, D), by the backend's autodiff."""
    d = model.num_dims
    inputs = _inputs(model, x, labels)
    extra = inputs[1:] if isinstance(inputs, tuple) else ()

    def f(inp):
        out = model((inp,) + extra if extra else inp, training=False)
        return keras.ops.sum(keras.ops.reshape(out, (d, -1)), axis=-1)

    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = f(xt)
        jac = tape.jacobian(y, xt)
    elif BACKEND == "jax":
        import jax

        jac = jax.jit(jax.jacrev(f))(keras.ops.convert_to_tensor(x))
    else:
        import torch

        jac = torch.autograd.functional.jacobian(f, torch.as_tensor(x))
    return np.asarray(keras.ops.convert_to_numpy(jac)).reshape(d, d)


def assert_autoregressive_by_gradients(model, rank, seed=0, labels=None):
    """Output i has zero gradient with respect to every input j with rank[j] >= rank[i].

    The input is random in (0.1, 0.9) (not a grid image: ReLUs at exactly 0
    would hide dependencies).
    """
    x = np.random.default_rng(seed).uniform(0.1, 0.9, (1,) + model.data_shape).astype("float32")
    jac = jacobian(model, x, labels)
    forbidden = rank[None, :] >= rank[:, None]  # [i, j]
    bad = np.argwhere(forbidden & (np.abs(jac) > 0))
    assert len(bad) == 0, f"outputs depend on later inputs (output, input): {bad[:5].tolist()}"
    assert np.abs(jac[~forbidden]).max() > 0, "no output depends on any input: the check has no power"
    return jac


def assert_samples_valid(model, n=3):
    s = model.sample(n, seed=3)  # conditional models: default labels
    assert s.shape == (n,) + model.data_shape
    assert s.dtype == np.float32
    levels = s * (model.num_levels - 1)
    assert np.allclose(levels, np.round(levels), atol=1e-5)
    assert s.min() >= 0.0 and s.max() <= 1.0
    np.testing.assert_array_equal(s, model.sample(n, seed=3))
    return s


def assert_sampler_consistent(model, n=6, labels=None, **options):
    """Each sampled value is the inverse CDF of its uniform under the conditionals of one forward pass.

    `call()` on the finished sample gives every p(x_d | x_<d) at once; drawing
    every value again from those with the same uniforms must reproduce the
    sample, whatever incremental computation the sampler used.
    """
    u = model.draw_noise(n, seed=11)[0]
    extra = {} if labels is None else {"labels": labels}
    s = keras.ops.convert_to_numpy(model.sample_from_noise(u, **extra, **options))
    logits = flat_logits(model, s, labels).reshape(s.shape + (-1,))
    again = keras.ops.convert_to_numpy(model.pixel_sample(keras.ops.convert_to_tensor(logits),
                                                          keras.ops.convert_to_tensor(u)))
    np.testing.assert_array_equal(again, s)
    return s


def assert_export_endpoints_match(model, x):
    """The export endpoints (`log_prob(x)`, `sample(u)`) give what the Keras model gives."""
    ends = model.export_endpoints()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ends["log_prob"][0](x)), model.log_prob(x),
                               rtol=1e-5, atol=1e-5)
    u = model.draw_noise(3, seed=0)[0]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ends["sample"][0](u)),
                                  np.asarray(model.sample_from_noise(u)))


def assert_round_trip(model, x, tmp_path, labels=None):
    from kgen import checkpoint

    path = tmp_path / "model.keras"
    checkpoint.save_checkpoint(model, path)
    loaded = checkpoint.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.log_prob(x, labels), model.log_prob(x, labels), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(loaded.sample(2, seed=5), model.sample(2, seed=5))
    return loaded


def assert_loss_falls(model, x, epochs=4, batch_size=32, **fit_kwargs):
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    hist = model.fit(x, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=False, **fit_kwargs)
    loss = hist.history["loss"]
    assert np.all(np.isfinite(loss))
    assert loss[-1] < loss[0], f"loss did not fall: {loss}"
    return loss


def digits_binary(n=64, shape=None):
    """Binarized digits (threshold 0.5), optionally cropped to `shape` (h, w)."""
    import kgen

    x = kgen.load_dataset("digits").x[:n]
    x = (x > 0.5).astype("float32")
    if shape is not None:
        x = x[:, : shape[0], : shape[1]]
    return x


def digits_levels(n=64, num_levels=17, shape=None):
    import kgen

    x = kgen.load_dataset("digits").x[:n]
    if num_levels != 17:
        x = np.round(x * (num_levels - 1)) / (num_levels - 1)
    if shape is not None:
        x = x[:, : shape[0], : shape[1]]
    return x.astype("float32")
