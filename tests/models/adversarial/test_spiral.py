"""SPIRAL: the stroke renderer, the autoregressive action distribution, the A2C estimator, training,
save/load and resume."""

import itertools
import types

import keras
import numpy as np
import pytest
from keras import ops

import kgen
from kgen import config as config_lib
from kgen.backend import adversarial
from kgen.errors import UsageError
from kgen.models.adversarial.spiral import discounted_returns, render_stroke, stroke_strip

TINY = dict(steps=2, grid_size=2, widths=[1.0, 3.0], agent_filters=[4], agent_hidden=8, critic_filters=[4])


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def tiny_model(**overrides):
    return kgen.build_model("spiral", input_shape=(8, 8, 1), **{**TINY, **overrides})


# === The renderer ===


def test_renderer_draws_a_straight_stroke_pixel_exactly():
    # Grid 8 on an 8x8 canvas: grid index = row * 8 + col. Row 3 from col 1 to col 6, control in between.
    start, control, end = 3 * 8 + 1, 3 * 8 + 4, 3 * 8 + 6
    actions = np.array([[start, control, end, 0, 1],   # width 1, pen down
                        [start, control, end, 1, 1],   # width 3
                        [start, control, end, 1, 0]],  # pen up: nothing
                       "int32")
    out = numpy(render_stroke(actions, 8, 8, 8, (1.0, 3.0)))[..., 0]
    thin = np.zeros((8, 8), "float32")
    thin[3, 1:7] = 1.0
    thick = np.zeros((8, 8), "float32")
    thick[2:5, 0:8] = 1.0  # within 1.5 px of the segment (3, 1)-(3, 6): rows 2-4, cols 0-7
    np.testing.assert_array_equal(out[0], thin)
    np.testing.assert_array_equal(out[1], thick)
    np.testing.assert_array_equal(out[2], np.zeros((8, 8)))


def test_renderer_draws_a_curve_through_its_points():
    # 3x3 grid on a 5x5 canvas: positions at pixels 0, 2, 4. A bend from (0, 0) by control (0, 4) to (4, 4):
    # B(1/2) = (0,0)/4 + (0,4)/2 + (4,4)/4 = (1, 3).
    out = numpy(render_stroke(np.array([[0, 2, 8, 0, 1]], "int32"), 5, 5, 3, (1.0,)))[0, ..., 0]
    assert out[0, 0] == 1 and out[4, 4] == 1 and out[1, 3] == 1
    assert out[0, 4] == 0 and out[4, 0] == 0 and out[2, 2] == 0  # the control point is not on the curve


def test_stroke_strip_layout():
    c = np.random.default_rng(0).uniform(size=(2, 3, 4, 4, 1)).astype("float32")
    strip = stroke_strip(c, gap=1, fill=0.5)
    assert strip.shape == (2 * 4 + 1, 3 * 4 + 2)
    np.testing.assert_array_equal(strip[5:9, 10:14], c[1, 2, ..., 0])
    assert np.all(strip[4] == 0.5) and np.all(strip[:, 4] == 0.5)


# === The policy ===


def test_action_distribution_is_normalized_over_every_action():
    model = tiny_model(target_conditional=True)
    sizes = model.action_sizes
    assert sizes == (4, 4, 4, 2, 2)
    every = np.array(list(itertools.product(*[range(s) for s in sizes])), "int32")  # 256 actions
    rng = np.random.default_rng(0)
    obs = np.concatenate([rng.uniform(size=(1, 8, 8, 1)), rng.uniform(size=(1, 8, 8, 1))], -1).astype("float32")
    obs = np.repeat(obs, len(every), axis=0)
    logp, _, _ = model.action_log_prob(obs, np.ones(len(every), "int32"), every)
    logp = numpy(logp)
    assert abs(np.log(np.sum(np.exp(logp.astype("float64"))))) < 1e-4
    assert logp.std() > 1e-4  # not trivially uniform across components


def test_sampled_actions_follow_the_uniforms():
    model = tiny_model()
    z = model.agent.state(np.zeros((2, 8, 8, 1), "float32"), np.zeros(2, "int32"))
    low = numpy(model.agent.act(z, np.zeros((2, 5), "float32")))
    high = numpy(model.agent.act(z, np.full((2, 5), 0.999999, "float32")))
    np.testing.assert_array_equal(low, 0)
    np.testing.assert_array_equal(high, np.array(model.action_sizes)[None].repeat(2, 0) - 1)


# === The estimator ===


def test_returns_match_numpy():
    rewards = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    want = np.zeros_like(rewards)
    running = np.zeros(3, "float32")
    for t in reversed(range(4)):
        running = rewards[:, t] + 0.9 * running
        want[:, t] = running
    np.testing.assert_allclose(numpy(discounted_returns(ops.convert_to_tensor(rewards), 0.9)), want, rtol=1e-5)
    model = tiny_model(steps=3, gamma=0.5)
    np.testing.assert_allclose(numpy(model.returns(ops.convert_to_tensor(np.array([2.0, -1.0], "float32")))),
                               [[0.5, 1.0, 2.0], [-0.25, -0.5, -1.0]], rtol=1e-6)


def test_a2c_gradient_with_constant_advantage_is_the_scaled_likelihood_gradient():
    model = tiny_model(target_conditional=True, steps=3)
    rng = np.random.default_rng(2)
    targets = rng.uniform(size=(4, 8, 8, 1)).astype("float32")
    canvases, actions, _ = model.play(rng.uniform(size=(4, 3, 5)).astype("float32"), targets)
    obs, steps, acts = model._flat(canvases, actions, targets)
    variables = model.agent.trainable_variables

    def mean_log_lik():
        return ops.mean(model.action_log_prob(obs, steps, acts)[0])

    _, ll = adversarial.value_and_grad(mean_log_lik, variables)
    c = 0.37
    _, pg = adversarial.value_and_grad(
        lambda: model.policy_loss(canvases, actions, np.full((4, 3), c, "float32"), targets), variables)
    assert max(float(np.abs(numpy(g)).max()) for g in ll) > 1e-4
    for a, b in zip(pg, ll):
        np.testing.assert_allclose(numpy(a), -c * numpy(b), rtol=1e-4, atol=1e-7)
    # The A2C loss with the value head at the return: its policy part has advantage R - V.
    returns = np.full((4, 3), 0.5, "float32")
    loss, logs = model.a2c_loss(canvases, actions, returns, targets)
    _, _, value = model.action_log_prob(obs, steps, acts)
    v = numpy(value).reshape(3, 4).T
    np.testing.assert_allclose(float(numpy(logs["value_loss"])), 0.5 * np.mean((0.5 - v) ** 2), rtol=1e-5)


# === Training ===


def _targets():
    digits = kgen.load_dataset("digits").x
    return np.asarray(digits[:32], "float32")


def test_conditional_reconstruction_error_falls():
    keras.utils.set_random_seed(0)
    model = tiny_model(target_conditional=True, steps=3, grid_size=3, agent_hidden=32, agent_filters=[8])
    model.compile(generator_optimizer=keras.optimizers.Adam(3e-3))
    x = _targets()
    before = np.mean(np.sum((model.reconstruct(x, seed=0) - x) ** 2, axis=(1, 2, 3)))
    model.fit(x, epochs=30, batch_size=32, verbose=0, shuffle=False)
    after = np.mean(np.sum((model.reconstruct(x, seed=0) - x) ** 2, axis=(1, 2, 3)))
    assert after < 0.9 * before, (before, after)
    assert int(numpy(model.optimizer.generator_optimizer.iterations)) == 30


def test_unconditional_trains_both_players_and_samples_by_seed():
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile()
    history = model.fit(_targets(), epochs=2, batch_size=16, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert int(numpy(model.optimizer.generator_optimizer.iterations)) == 4
    assert int(numpy(model.optimizer.discriminator_optimizer.iterations)) == 4
    s = model.sample(3, seed=1)
    assert s.shape == (3, 8, 8, 1) and set(np.unique(s)) <= {0.0, 1.0}
    np.testing.assert_array_equal(s, model.sample(3, seed=1))
    strokes = model.sample_strokes(3, seed=1)
    np.testing.assert_array_equal(strokes[:, -1], s)
    assert np.all(np.diff(strokes, axis=1) >= 0)  # strokes only add paint
    with pytest.raises(UsageError, match="target-conditional"):
        model.reconstruct(_targets()[:2])


def tiny_config(epochs):
    sets = [(["model", k], v) for k, v in dict(TINY, target_conditional=True).items()]
    sets += [(["train", k], v) for k, v in dict(epochs=epochs, batch_size=16, grid_size=4,
                                                 steps_per_execution=1).items()]
    sets += [(["data", "max_examples"], 48)]
    return config_lib.resolve(model="spiral", dataset="digits", overrides=sets)


def test_save_load_and_resume_match_an_uninterrupted_run(tmp_path):
    keras.utils.set_random_seed(0)
    full, run_dir, _ = kgen.train(tiny_config(2), run_dir=tmp_path / "full", verbose=0)
    loaded = keras.saving.load_model(run_dir / "last.keras")
    x = _targets()[:4]
    np.testing.assert_array_equal(loaded.reconstruct(x, seed=3), full.reconstruct(x, seed=3))
    extra = loaded.evaluate_extra(types.SimpleNamespace(x=x))  # what `kgen evaluate` adds
    want = np.mean(np.sum((loaded.reconstruct(x, seed=0) - x) ** 2, axis=(1, 2, 3)))
    assert extra["recon_error"] == pytest.approx(want, rel=1e-5)
    assert extra["recon_error_blank"] == pytest.approx(np.mean(np.sum(x ** 2, axis=(1, 2, 3))), rel=1e-5)
    keras.utils.set_random_seed(0)
    kgen.train(tiny_config(1), run_dir=tmp_path / "part", verbose=0)
    resumed, _, _ = kgen.train(run_dir=tmp_path / "part", resume=True, epochs=2, verbose=0)
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-5, atol=1e-6, err_msg=a.path)
    assert int(numpy(resumed.optimizer.generator_optimizer.iterations)) == int(
        numpy(full.optimizer.generator_optimizer.iterations)) > 0


def test_kgen_sample_writes_each_sample_with_its_strokes(tmp_path):
    """`kgen sample` on a SPIRAL checkpoint: the .npz holds the final canvases and the stroke sequences,
    the .png a strip per sample (columns: the canvas after each stroke)."""
    from click.testing import CliRunner

    from kgen import checkpoint
    from kgen.cli.main import main
    from kgen.figures import image_grid

    model = tiny_model()
    path = tmp_path / "spiral.keras"
    checkpoint.save_checkpoint(model, path, {"config": config_lib.resolve(model="spiral", dataset="digits")})
    out = tmp_path / "s.npz"
    result = CliRunner().invoke(main, ["sample", "--checkpoint", str(path), "-n", "3", "--seed", "1",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as f:
        x, strokes = f["x"], f["strokes"]
    assert strokes.shape == (3, 2, 8, 8, 1) and x.shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(x, strokes[:, -1])
    np.testing.assert_array_equal(strokes, model.sample_strokes(3, seed=1))
    png = tmp_path / "s.png"
    result = CliRunner().invoke(main, ["sample", "--checkpoint", str(path), "-n", "3", "--seed", "1",
                                       "--out", str(png)])
    assert result.exit_code == 0, result.output
    import struct
    data = png.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    grid = image_grid(strokes.reshape((-1, 8, 8, 1)), 2)
    assert (height, width) == grid.shape[:2]
