"""The flows' Keras 3 conditioners: MADE's autoregressive property, on every backend."""

import keras
import numpy as np
import pytest

from kgen.layers.masked import made_degrees, made_masks
from kgen.models.flows.conditioners import CouplingMLP, MADEConditioner


def _outputs(layer, x, context=None):
    return np.asarray(keras.ops.convert_to_numpy(layer(x, context)))


@pytest.mark.parametrize("hidden", [(16,), (12, 12)])
def test_made_output_i_depends_only_on_inputs_before_i(hidden):
    """Perturb input j: only outputs of dimensions > j may change (Karpathy's check, by differences)."""
    d = 5
    made = MADEConditioner(d, num_params=2, hidden_units=hidden)
    made.set_weights([np.random.default_rng(i).standard_normal(w.shape).astype("float32")
                      for i, w in enumerate(made.get_weights())])
    x = np.random.default_rng(0).standard_normal((1, d)).astype("float32")
    base = _outputs(made, x)
    assert base.shape == (1, d, 2)
    for j in range(d):
        xp = x.copy()
        xp[0, j] += 1.0
        changed = np.any(np.abs(_outputs(made, xp) - base) > 1e-6, axis=-1)[0]
        assert not changed[: j + 1].any(), f"input {j} reaches outputs {np.flatnonzero(changed[: j + 1])}"
        assert changed[j + 1 :].all(), f"input {j} should reach every later output"


def test_made_context_reaches_every_output():
    made = MADEConditioner(3, num_params=2, hidden_units=(8,), context_dim=4)
    made.set_weights([np.random.default_rng(i).standard_normal(w.shape).astype("float32")
                      for i, w in enumerate(made.get_weights())])
    x = np.zeros((1, 3), "float32")
    a = _outputs(made, x, np.eye(4, dtype="float32")[:1])
    b = _outputs(made, x, np.eye(4, dtype="float32")[1:2])
    assert np.all(np.abs(a - b)[0, 1:] > 1e-6)  # the first output has no hidden input ... except context


def test_made_masks_have_no_dead_hidden_units():
    masks = made_masks(made_degrees(4, (6, 6)), 2)
    for m in masks[:-1]:
        assert m.sum(axis=0).min() > 0


def test_coupling_mlp_starts_near_zero_not_at_zero():
    mlp = CouplingMLP(1, 1, 2, (16,))
    out = _outputs(mlp, np.ones((4, 1), "float32"))
    assert out.shape == (4, 1, 2)
    assert 0 < np.abs(out).max() < 0.1
