"""AIR: the spatial transformer, the empty canvas, the z_pres gradient estimator, learning to count, round trip."""

import keras
import numpy as np
import pytest

import kgen
from kgen.backend.adversarial import value_and_grad
from kgen.data import multi_digits
from kgen.data.pipeline import Pipeline
from kgen.errors import DataError, UsageError
from kgen.models.latent.air import (affine_sample, bilinear_sample, image_to_window, leave_one_out_mean,
                                    where_to_boxes, window_to_image)


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), "float64")


def _f32(*arrays):
    return [np.asarray(a, "float32") for a in arrays]


def _one_digit_canvases(n, split="train"):
    lay = multi_digits.layout("multi_digits", split)
    x = (lay.x[lay.count == 1][:n] > 0.3).astype("float32")
    return x, lay.boxes[lay.count == 1][:n, 0]


# === The spatial transformer ===


def test_identity_warp_at_scale_one_is_exact():
    rng = np.random.default_rng(0)
    img = rng.uniform(size=(2, 9, 9, 1)).astype("float32")
    zero = np.zeros((2, 3), "float32")
    np.testing.assert_array_equal(_np(image_to_window(img, zero, 9)), img)
    np.testing.assert_array_equal(_np(window_to_image(img, zero, 9, 9)), img)


def test_forward_then_inverse_warp_is_the_identity():
    """window -> canvas -> glimpse gives the window back: exactly on the pixel grid, closely when upsampled."""
    rng = np.random.default_rng(1)
    window = rng.uniform(size=(3, 8, 8, 1)).astype("float32")
    # s = 1/3 of a 24-pixel canvas: the 8-pixel window lands on canvas pixels, shifted by whole pixels
    # (exactly but for float32's rounding of exp(log(1/3)))
    z = np.array([[np.log(1 / 3), 0.0, 0.0], [np.log(1 / 3), 4 / 12, -2 / 12], [np.log(1 / 3), -1 / 12, 5 / 12]],
                 "float32")
    canvas = _np(window_to_image(window, z, 24, 24))
    for i in range(3):  # a shift t moves the window 12 t pixels (half the canvas is 1)
        top, left = 8 + int(round(z[i, 2] * 12)), 8 + int(round(z[i, 1] * 12))
        np.testing.assert_allclose(canvas[i, top:top + 8, left:left + 8], window[i], atol=1e-5)
        assert abs(canvas[i].sum() - window[i].sum()) < 1e-4  # nothing else on the canvas
    np.testing.assert_allclose(_np(image_to_window(canvas.astype("float32"), z, 8)), window, atol=1e-5)
    # s = 2/3: the window is upsampled twice, then read back between canvas pixels. A linear ramp is
    # reproduced exactly in the interior (bilinear interpolation is exact on linear functions) ...
    ramp = (np.add.outer(np.arange(8), 2 * np.arange(8)) / 21.0).astype("float32")[None, :, :, None]
    z2 = np.array([[np.log(2 / 3), 0.1, -0.05]], "float32")
    back = _np(image_to_window(_np(window_to_image(ramp, z2, 24, 24)).astype("float32"), z2, 8))
    np.testing.assert_allclose(back[0, 1:-1, 1:-1], ramp[0, 1:-1, 1:-1], atol=1e-5)
    # ... and a random pattern within interpolation error, not exactly
    rough = _np(image_to_window(_np(window_to_image(window[:1], z2, 24, 24)).astype("float32"), z2, 8))
    err = np.abs(rough - window[:1])[0, 1:-1, 1:-1]
    assert err.mean() < 0.12 and err.max() > 1e-3


def test_separable_sampling_equals_the_gather():
    """affine_sample (two interpolation matrices) reads the same values as bilinear_sample (a gather)."""
    rng = np.random.default_rng(2)
    img = rng.uniform(size=(2, 7, 9, 2)).astype("float32")
    scale = np.array([[0.7], [1.6]], "float32")
    sx, sy = np.array([[0.2], [-0.5]], "float32"), np.array([[-0.3], [0.4]], "float32")
    fast = _np(affine_sample(img, scale, sx, sy, 5, 6))
    g5, g6 = (2 * np.arange(5) + 1) / 5 - 1, (2 * np.arange(6) + 1) / 6 - 1
    u = (scale * np.tile(g6, 5)[None] + sx)
    v = (scale * np.repeat(g5, 6)[None] + sy)
    px, py = ((u + 1) * 9 - 1) / 2, ((v + 1) * 7 - 1) / 2
    slow = _np(bilinear_sample(img, *_f32(px, py))).reshape(2, 5, 6, 2)
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    assert np.any(slow == 0) and np.any(slow > 0)  # some points fall outside: zero padding on both


def test_boxes_of_z_where():
    np.testing.assert_allclose(where_to_boxes([[np.log(1 / 3), 0.0, 0.0]], 24, 24), [[8, 8, 8, 8]], atol=1e-9)
    np.testing.assert_allclose(where_to_boxes([[0.0, 0.5, -0.5]], 20, 10), [[-5, 2.5, 20, 10]], atol=1e-9)


# === The model ===


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return kgen.build_model("air", input_shape=(24, 24, 1), num_levels=2, max_objects=2, window_size=8,
                            what_dim=4, lstm_units=32, hidden_units=(32,), baseline_units=(16,), z_pres_prior=0.01,
                            scale_prior_std=0.1)


def test_no_object_leaves_the_background(tiny):
    x, _ = _one_digit_canvases(4)
    n = tiny.max_objects
    u, ew, eh = np.full((4, n), 0.3, "float32"), np.ones((4, n, 3), "float32"), np.ones((4, n, 4), "float32")
    off = tiny.run(x, u, ew, eh, z_pres=np.zeros((4, n), "float32"))
    assert np.all(_np(off["canvas"]) == 0.0)
    eps = tiny.likelihood_floor
    want = (x * np.log(eps) + (1 - x) * np.log(1 - eps)).reshape(4, -1).sum(1)
    np.testing.assert_allclose(_np(off["ll"]), want, rtol=1e-5)
    np.testing.assert_array_equal(_np(off["kl_where"]), 0.0)
    on = tiny.run(x, u, ew, eh, z_pres=np.ones((4, n), "float32"))
    assert _np(on["canvas"]).min() >= 0 and _np(on["canvas"]).max() > 0.01
    # the prior's z_pres chain: once absent, absent
    lo, hi = tiny.z_pres_prior / 2, (1 + tiny.z_pres_prior) / 2  # below rho: present
    z_pres, _, _ = tiny.prior_latents(np.array([[hi, lo], [lo, hi], [lo, lo]], "float32"),
                                      np.zeros((3, 2, 3), "float32"), np.zeros((3, 2, 4), "float32"))
    np.testing.assert_array_equal(_np(z_pres), [[0, 0], [1, 0], [1, 1]])


def _gradients(fn, variables):
    """Gradients of fn() for `variables` (NumPy, flattened into one vector); compiled on JAX, whose eager
    dispatch compiles every op of this two-step network on its own (minutes on a shared CPU)."""
    if keras.config.backend() == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn()

        grads = jax.jit(jax.grad(pure))([v.value for v in variables])
    else:
        _, grads = value_and_grad(fn, variables)
    return np.concatenate([_np(g).ravel() for g in grads])


def _inference_variables(model):
    skip = {id(v) for layer in model.baseline_body + [model.baseline_out] for v in layer.weights}
    return [v for v in model.trainable_variables if id(v) not in skip]


@pytest.mark.parametrize("estimator", ["reinforce", "nvil"])
def test_z_pres_gradient_matches_exact_enumeration(estimator):
    """With z_where/z_what noise fixed, E_q[ELBO] is a sum over the 3 z_pres paths of N = 2 steps: its
    autodiff gradient is the known answer; the estimator averaged over stratified uniforms must match it."""
    keras.utils.set_random_seed(3)
    model = kgen.build_model("air", input_shape=(8, 8, 1), num_levels=2, max_objects=2, window_size=4,
                             what_dim=2, lstm_units=8, hidden_units=(8,), baseline_units=(4,), estimator=estimator)
    x1 = (kgen.load_dataset("digits").x[5:6] > 0.3).astype("float32")
    rng = np.random.default_rng(0)
    ew1, eh1 = rng.standard_normal((1, 2, 3)).astype("float32"), rng.standard_normal((1, 2, 2)).astype("float32")
    g = 48  # a g x g grid of (u_1, u_2): every path gets its probability's share of rows, to 1/g
    u = np.stack(np.meshgrid((np.arange(g) + 0.5) / g, (np.arange(g) + 0.5) / g), -1).reshape(-1, 2)
    m = len(u)
    x, ew, eh = np.repeat(x1, m, 0), np.repeat(ew1, m, 0), np.repeat(eh1, m, 0)
    variables = _inference_variables(model)
    paths = np.array([[0, 0], [1, 0], [1, 1]], "float32")

    def exact():
        out = model.run(np.repeat(x1, 3, 0), np.zeros((3, 2), "float32"), np.repeat(ew1, 3, 0),
                        np.repeat(eh1, 3, 0), z_pres=paths)
        elbo, _, _ = model.objective(out)
        q1, q2 = out["q_pres"][:, 0], out["q_pres"][:, 1]
        prob = keras.ops.stack([1 - q1[0], q1[1] * (1 - q2[1]), q1[2] * q2[2]])
        return -keras.ops.sum(prob * elbo)

    def estimate(score=True):
        out = model.run(x, u.astype("float32"), ew, eh)
        baseline = model.baseline(x) if estimator == "nvil" else None
        elbo, surrogate, _ = model.objective(out, baseline)
        return -keras.ops.mean(surrogate if score else elbo)

    want, got, pathwise = (_gradients(fn, variables) for fn in (exact, estimate, lambda: estimate(False)))
    assert np.linalg.norm(want) > 1e-2
    assert np.linalg.norm(got - want) < 0.06 * np.linalg.norm(want), (np.linalg.norm(got - want), np.linalg.norm(want))
    # without the score-function term the gradient is wrong: the test can tell
    assert np.linalg.norm(pathwise - want) > 0.2 * np.linalg.norm(want)


def test_leave_one_out_mean():
    v = np.array([[1.0, 5.0], [2.0, 7.0], [6.0, 9.0]], "float32")
    mask = np.array([[1, 1], [1, 0], [1, 0]], "float32")
    np.testing.assert_allclose(_np(leave_one_out_mean(v, mask)), [[4, 0], [3.5, 5], [1.5, 5]], atol=1e-6)


def test_count_posterior_moves_toward_one_on_one_digit_canvases():
    """A few score-function steps move q(n = 1) toward 1 on one-digit canvases (and toward 0 on empty ones).

    One object at most: the count is z_pres_1, whose only gradient is the NVIL estimator's; the prior
    window covers most of the canvas, so an object pays off before z_where has learnt to find digits
    (the full recipe's counting of 0-2 digits with N = 3 is measured in bench/air_digits.py).
    """
    keras.utils.set_random_seed(0)
    model = kgen.build_model("air", input_shape=(24, 24, 1), max_objects=1, window_size=8, what_dim=4,
                             lstm_units=16, hidden_units=(32,), baseline_units=(16,), z_pres_prior=0.01,
                             scale_prior=0.9, scale_prior_std=0.1)
    one, _ = _one_digit_canvases(128)
    empty = np.zeros_like(one)
    before, before_empty = (model.infer(a)["q_pres"][:, 0].mean() for a in (one, empty))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(np.concatenate([one, empty]), epochs=4, batch_size=32, verbose=0)
    after = model.infer(one)["q_pres"][:, 0].mean()
    assert after > max(0.9, before + 0.2), (before, after)
    assert np.mean(model.infer(one)["count"] == 1) > 0.9
    after_empty = model.infer(empty)["q_pres"][:, 0].mean()
    assert after_empty < before_empty - 0.15, (before_empty, after_empty)


def test_evaluate_extra_reports_count_accuracy(tiny):
    pipeline = Pipeline({"name": "multi_digits", "binarize": "static"})
    prepared = pipeline.prepare(pipeline.load("valid").subset(60), seed=0)
    result = tiny.evaluate_extra(prepared)["count"]
    counts = tiny.infer(prepared.x)["count"]
    assert result["examples"] == 60
    assert result["accuracy"] == pytest.approx(np.mean(counts == prepared.y))
    confusion = np.array(result["confusion"])
    assert confusion.sum() == 60 and np.trace(confusion) == np.sum(counts == prepared.y)
    np.testing.assert_array_equal(confusion.sum(1)[:3], np.bincount(prepared.y, minlength=3))
    # digits' labels are classes, not counts: no accuracy there
    plain = Pipeline({"name": "digits", "binarize": "static"})
    other = plain.prepare(plain.load("valid").subset(10), seed=0)
    assert "accuracy" not in kgen.build_model("air", input_shape=(8, 8, 1), max_objects=1, window_size=4,
                                              lstm_units=4, hidden_units=(4,)).evaluate_extra(other)["count"]


def test_bounds_and_sampling(tiny):
    x, _ = _one_digit_canvases(6, "valid")
    terms = tiny.score(x, seed=0, iw_samples=20)
    np.testing.assert_allclose(terms["elbo"], -terms["recon"] - terms["kl"], rtol=1e-5)
    assert np.all(terms["kl"] >= 0)
    # the IW bound is at least the single-sample ELBO on average (same model, many more samples)
    assert terms["iw_bound"].mean() > tiny.log_prob(x, seed=1).mean() - 1.0
    samples = tiny.sample(5, seed=2)
    assert samples.shape == (5, 24, 24, 1) and set(np.unique(samples)) <= {0.0, 1.0}
    np.testing.assert_array_equal(samples, tiny.sample(5, seed=2))
    none = tiny.sample_from_noise(np.ones((2, 2), "float32"), np.zeros((2, 2, 3), "float32"),
                                  np.zeros((2, 2, 4), "float32"), np.full((2, 24, 24, 1), 0.5, "float32"))
    assert np.all(_np(none) == 0)  # no object sampled: the background, where u > eps everywhere


def test_round_trip(tiny, tmp_path):
    x, _ = _one_digit_canvases(8, "valid")
    path = tmp_path / "air.keras"
    tiny.save(path)
    loaded = keras.saving.load_model(path)
    a, b = tiny.infer(x), loaded.infer(x)
    for key in ("q_pres", "z_where", "canvas"):
        np.testing.assert_allclose(a[key], b[key], atol=1e-5)
    np.testing.assert_allclose(tiny.sample(3, seed=4), loaded.sample(3, seed=4))
    assert loaded.get_config()["estimator"] == "nvil"


def test_bad_arguments_and_data():
    with pytest.raises(UsageError, match="estimator"):
        kgen.build_model("air", input_shape=(8, 8, 1), estimator="gumbel")
    with pytest.raises(UsageError, match="binar"):
        kgen.build_model("air", input_shape=(8, 8, 1), num_levels=17)
    with pytest.raises(UsageError, match="z_pres_prior"):
        kgen.build_model("air", input_shape=(8, 8, 1), z_pres_prior=1.0)
    model = kgen.build_model("air", input_shape=(24, 24, 1), max_objects=1, window_size=4, lstm_units=4,
                             hidden_units=(4,))
    with pytest.raises(DataError, match="binarize"):
        model.check_data(kgen.load_dataset("multi_digits", "valid"))
