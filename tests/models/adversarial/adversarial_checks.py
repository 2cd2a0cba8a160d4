"""Checks every adversarial model must pass, shared by the per-model test files.

Each takes a compiled model and fit inputs (`x` or `(x, labels)`) of tiny
shapes, so a file stays fast on every backend.
"""

import keras
import numpy as np

import kgen
from kgen import checkpoint


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


def iterations(model):
    opt = model.optimizer
    return (
        int(keras.ops.convert_to_numpy(opt.iterations.value)),
        int(keras.ops.convert_to_numpy(opt.discriminator_optimizer.iterations.value)),
        int(keras.ops.convert_to_numpy(opt.generator_optimizer.iterations.value)),
    )


def moving_stats(model):
    """BatchNorm moving means/variances (and nothing else)."""
    return [v for v in model.non_trainable_variables if "moving_" in v.path]


def fit_and_record(model, inputs, steps=2, batch_size=16):
    """Fits `steps` steps; returns what changed."""
    d_vars, g_vars = model.discriminator_variables(), model.generator_variables()
    before = {
        "d": values(d_vars),
        "g": values(g_vars),
        "bn": values(moving_stats(model)),
        "it": iterations(model),
    }
    n = steps * batch_size
    data = tuple(a[:n] for a in inputs) if isinstance(inputs, tuple) else inputs[:n]
    history = model.fit(data, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return {
        "history": {k: v[-1] for k, v in history.history.items()},
        "d_changed": [not np.array_equal(a, b) for a, b in zip(before["d"], values(d_vars))],
        "g_changed": [not np.array_equal(a, b) for a, b in zip(before["g"], values(g_vars))],
        "bn_changed": [not np.array_equal(a, b) for a, b in zip(before["bn"], values(moving_stats(model)))],
        "it_before": before["it"],
        "it_after": iterations(model),
    }


def check_training(record, steps=2, discriminator_steps=1, extra_metrics=(), has_batch_norm=False):
    """Finite losses, both optimizers advance, both players' weights change, BN stats move."""
    history = record["history"]
    for key in ("d_loss", "g_loss", "loss") + tuple(extra_metrics):
        assert key in history, f"{key} not logged: {sorted(history)}"
        assert np.isfinite(history[key]), f"{key} = {history[key]}"
    it0, it1 = record["it_before"], record["it_after"]
    assert it1[0] - it0[0] == steps, f"adversarial steps {it0} -> {it1}"
    assert it1[1] - it0[1] == steps * discriminator_steps, f"discriminator optimizer {it0} -> {it1}"
    assert it1[2] - it0[2] == steps, f"generator optimizer {it0} -> {it1}"
    assert record["d_changed"] and all(record["d_changed"]), "some discriminator weights did not change"
    assert record["g_changed"] and all(record["g_changed"]), "some generator weights did not change"
    if has_batch_norm:
        assert record["bn_changed"] and all(record["bn_changed"]), "BatchNorm moving statistics did not update"


def check_save_load_resume(model, inputs, path, batch_size=16, labels=None):
    """save_checkpoint -> load_model: same weights, both optimizers' states; a further step continues."""
    checkpoint.save_checkpoint(model, path, {"epoch": 1})
    loaded = kgen.load_model(path)
    assert type(loaded) is type(model)
    opt, lopt = model.optimizer, loaded.optimizer
    assert type(lopt).__name__ == "AdversarialOptimizer"
    for player in ("discriminator_optimizer", "generator_optimizer"):
        saved, restored = getattr(opt, player), getattr(lopt, player)
        assert len(saved.variables) == len(restored.variables) > 1
        for a, b in zip(saved.variables, restored.variables):
            assert a.path == b.path
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value))
    assert iterations(loaded) == iterations(model)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value))
    np.testing.assert_allclose(model.sample(4, seed=3, labels=labels), loaded.sample(4, seed=3, labels=labels),
                               atol=1e-5)
    # The restored optimizers continue: one more step advances both.
    before = iterations(loaded)
    data = tuple(a[:batch_size] for a in inputs) if isinstance(inputs, tuple) else inputs[:batch_size]
    history = loaded.fit(data, batch_size=batch_size, epochs=1, verbose=0)
    after = iterations(loaded)
    assert after[0] == before[0] + 1 and after[2] == before[2] + 1 and after[1] > before[1]
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    return loaded


def check_samples(model, n=5, labels=None):
    samples = model.sample(n, seed=0, labels=labels)
    assert samples.shape == (n,) + model.data_shape
    assert np.all(np.isfinite(samples))
    np.testing.assert_allclose(samples, model.sample(n, seed=0, labels=labels), atol=1e-6)
    assert not np.allclose(samples, model.sample(n, seed=1, labels=labels))
    return samples
