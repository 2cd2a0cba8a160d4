"""MaskGAN: masks and in-filling, returns, the actor-critic estimator, the schedule, text, save/load, resume."""

import keras
import numpy as np
import pytest
from keras import ops

import kgen
from kgen import checkpoint
from kgen import config as config_lib
from kgen.backend import adversarial
from kgen.errors import DataError, UsageError
from kgen.evaluation import evaluate_checkpoint
from kgen.models.adversarial.maskgan import discounted_returns
from kgen.sampling import sample_to_file

SEQ_LEN = 4
TINY = dict(embedding_dim=8, hidden_dim=8, discriminator_hidden_dim=8, pretrain_epochs=1, adversarial_epochs=1)


def tiny_model(vocab=11, **overrides):
    return kgen.build_model("maskgan", input_shape=(SEQ_LEN,), num_levels=vocab, **{**TINY, **overrides})


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def tiny_config(epochs=2, **data):
    sets = [(["model", k], v) for k, v in TINY.items()]
    sets += [(["train", k], v) for k, v in dict(epochs=epochs, batch_size=8, grid_size=4, steps_per_execution=1,
                                                 learning_rate=0.01).items()]
    sets += [(["data", "max_examples"], 32), (["data", "seq_len"], SEQ_LEN), (["data", "valid_fraction"], 0.01)]
    return config_lib.resolve(model="maskgan", dataset="text", overrides=sets)


# === Masks and in-filling ===


def test_masks_follow_the_strategy():
    u = np.random.default_rng(0).uniform(size=(200, SEQ_LEN)).astype("float32")
    block = numpy(tiny_model(mask_rate=0.75).masks_from_uniforms(u))
    assert np.all(block.sum(1) == 3)
    for row in block:  # one contiguous block of 3
        idx = np.flatnonzero(row)
        assert idx[-1] - idx[0] == 2
    assert len({tuple(r) for r in block}) == SEQ_LEN - 3 + 1  # every start is drawn
    rand = numpy(tiny_model(mask_strategy="random", mask_rate=0.3).masks_from_uniforms(u))
    np.testing.assert_array_equal(rand, (u < 0.3).astype("float32"))
    with pytest.raises(UsageError, match="mask_strategy"):
        tiny_model(mask_strategy="blocks")


def test_visible_tokens_are_copied_and_only_missing_ones_change():
    model = tiny_model()
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 11, (64, SEQ_LEN)).astype("int32")
    mask = (rng.uniform(size=tokens.shape) < 0.5).astype("int32")
    filled = model.infill(tokens, mask, seed=3)
    assert filled.shape == tokens.shape and filled.dtype == np.int32 and filled.min() >= 0 and filled.max() < 11
    np.testing.assert_array_equal(filled[mask == 0], tokens[mask == 0])
    assert np.mean(filled[mask == 1] != tokens[mask == 1]) > 0.5  # random fills of 11 tokens mostly differ
    np.testing.assert_array_equal(filled, model.infill(tokens, mask, seed=3))
    # The fill does not look at the missing tokens' true values: only at the masked input.
    other = np.where(mask == 1, (tokens + 5) % 11, tokens)
    np.testing.assert_array_equal(model.infill(other, mask, seed=3), filled)
    # A prompt stays, the rest is filled.
    out = model.sample(4, seed=2, prompt=[7, 8])
    assert np.all(out[:, :2] == [7, 8])
    with pytest.raises(DataError, match="mask"):
        model.infill(tokens, mask * 2, seed=3)


def test_log_prob_of_the_unconditional_filler_is_normalized():
    model = kgen.build_model("maskgan", input_shape=(3,), num_levels=4, **TINY)
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    assert abs(np.exp(model.log_prob(grid)).sum() - 1.0) < 1e-4
    samples = model.sample(4000, seed=0)
    index = samples @ np.array([16, 4, 1])
    freq = np.bincount(index, minlength=64) / len(index)
    np.testing.assert_allclose(freq, np.exp(model.log_prob(grid)), atol=0.02)  # samples follow log_prob


# === Rewards, returns and the estimator ===


def test_discounted_returns_match_numpy():
    rng = np.random.default_rng(4)
    r = rng.normal(size=(3, 7)).astype("float32")
    want = np.zeros_like(r)
    for t in range(7):
        want[:, t] = sum(0.9 ** (s - t) * r[:, s] for s in range(t, 7))
    np.testing.assert_allclose(numpy(discounted_returns(r, 0.9)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(numpy(discounted_returns(r, 0.0)), r, rtol=1e-6)


def test_rewards_are_log_d_at_missing_positions():
    model = tiny_model()
    tokens = np.random.default_rng(5).integers(0, 11, (4, SEQ_LEN)).astype("int32")
    mask = np.zeros((4, SEQ_LEN), "float32")
    mask[:, 1:4] = 1
    logits, states = model.discriminate(tokens, mask)
    r = numpy(model.rewards(logits, mask))
    np.testing.assert_allclose(r[:, 1:], np.log(1 / (1 + np.exp(-numpy(logits)[:, 1:]))), rtol=1e-5)
    assert np.all(r[:, :1] == 0)
    # The critic's state at t has not read token t: changing x_t leaves b_t, changes b_t+1.
    changed = tokens.copy()
    changed[:, 2] = (changed[:, 2] + 1) % 11
    b0 = numpy(model.baselines(states, mask))
    b1 = numpy(model.baselines(model.discriminate(changed, mask)[1], mask))
    np.testing.assert_allclose(b0[:, :3], b1[:, :3], rtol=1e-6)
    assert np.abs(b0[:, 3] - b1[:, 3]).max() > 0


def test_actor_gradient_with_a_constant_advantage_is_the_scaled_likelihood_gradient():
    model = tiny_model()
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 11, (5, SEQ_LEN)).astype("int32")
    mask = (rng.uniform(size=tokens.shape) < 0.5).astype("float32")
    variables = model.generator.trainable_variables
    _, mle = adversarial.value_and_grad(lambda: model.mle_loss(tokens, mask), variables)
    c = -0.37
    _, pg = adversarial.value_and_grad(
        lambda: model.actor_loss(tokens, mask, np.full(tokens.shape, c, "float32")), variables)
    assert max(float(np.abs(numpy(g)).max()) for g in mle) > 1e-4
    for a, b in zip(pg, mle):
        np.testing.assert_allclose(numpy(a), c * numpy(b), rtol=1e-4, atol=1e-7)
    # Advantages at visible positions do not count.
    noisy = np.where(mask > 0, c, 100.0).astype("float32")
    _, pg2 = adversarial.value_and_grad(lambda: model.actor_loss(tokens, mask, noisy), variables)
    for a, b in zip(pg2, pg):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-4, atol=1e-7)


def _descend(model, loss_fn, variables, steps=30, lr=0.05):
    """Adam steps on `loss_fn` (eager): (the first loss, the last)."""
    opt = keras.optimizers.Adam(lr)
    first = None
    for _ in range(steps):
        loss, grads = adversarial.value_and_grad(loss_fn, variables)
        adversarial.apply_gradients(opt, grads, variables)
        first = float(numpy(loss)) if first is None else first
    return first, float(numpy(loss_fn()))


def test_critic_and_discriminator_losses_fall():
    model = tiny_model()
    rng = np.random.default_rng(6)
    real = rng.integers(0, 5, (16, SEQ_LEN)).astype("int32")  # real tokens lie in 0..4
    fake = rng.integers(5, 11, (16, SEQ_LEN)).astype("int32")  # fills in 5..10
    mask = np.zeros((16, SEQ_LEN), "float32")
    mask[:, 1:4] = 1
    fake = np.where(mask > 0, fake, real).astype("int32")
    returns = discounted_returns(np.where(mask > 0, -0.5, 0.0).astype("float32"), 0.99)
    states = model.discriminate(fake, mask)[1]
    before, after = _descend(model, lambda: model.critic_loss(returns, model.baselines(states, mask), mask),
                             model.critic.trainable_variables)
    assert after < 0.25 * before
    before, after = _descend(model, lambda: model.discriminator_loss(real, fake, mask)[0],
                             model.discriminator.trainable_variables, steps=10)
    assert after < 0.5 * before and before > 1.0


def test_schedule_and_errors():
    model = tiny_model(pretrain_epochs=2, adversarial_epochs=3)
    assert [model.phase_at(e) for e in range(6)] == ["mle"] * 2 + ["adversarial"] * 4
    assert {tiny_model(adversarial_epochs=0).phase_at(e) for e in range(10)} == {"mle"}
    with pytest.raises(UsageError, match="mask_rate"):
        tiny_model(mask_rate=0.0)
    with pytest.raises(DataError, match="token sequences"):
        kgen.build_model("maskgan", input_shape=(8, 8, 1), num_levels=17)


# === Through the harness ===


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model, run_dir, last = kgen.train(tiny_config(), run_dir=tmp_path_factory.mktemp("maskgan") / "run", verbose=0)
    return model, run_dir, last


def test_each_phase_trains_its_players(run):
    """1 MLE epoch, 1 adversarial epoch of 4 batches each (32 examples, batch 8)."""
    model, run_dir, last = run
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3
    assert np.isfinite(list(last.values())).all() and last["d_loss"] > 0 and last["reward"] < 0
    g_opt, d_opt = model.optimizer.generator_optimizer, model.optimizer.discriminator_optimizer
    batches = int(numpy(model.optimizer.iterations)) // 2
    assert batches >= 3
    assert int(numpy(g_opt.iterations)) == 2 * batches  # MLE, then one actor update a batch
    assert int(numpy(d_opt.iterations)) == 2 * batches  # D and critic judge the MLE filler's fills too


def test_save_load_and_text(run, tmp_path):
    model, run_dir, _ = run
    train = kgen.load_dataset("text", seq_len=SEQ_LEN)
    assert model.vocabulary == train.vocabulary.get_config()
    loaded = checkpoint.load_model(run_dir / "last.keras")
    assert loaded.vocabulary == model.vocabulary
    np.testing.assert_array_equal(loaded.sample(4, seed=1), model.sample(4, seed=1))
    mask = np.zeros((8, SEQ_LEN), "int32")
    mask[:, 1:3] = 1
    np.testing.assert_array_equal(loaded.infill(train.x[:8], mask, seed=0), model.infill(train.x[:8], mask, seed=0))
    np.testing.assert_allclose(loaded.log_prob(train.x[:8]), model.log_prob(train.x[:8]), rtol=1e-5)
    out = sample_to_file(checkpoint=run_dir / "last.keras", n=5, seed=2, out=tmp_path / "s.txt")
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[:5] == [t.replace("\n", " ") for t in model.decode_sequences(model.sample(5, seed=2))]


def test_evaluate_reports_the_masked_token_nll(run):
    model, run_dir, _ = run
    result = evaluate_checkpoint(run_dir / "last.keras", progress=False)
    assert result["nll_kind"] == "exact"
    np.testing.assert_allclose(result["nll_per_token"], result["nll"]["nats"] / SEQ_LEN, rtol=1e-5)
    assert result["masked_perplexity"] == pytest.approx(np.exp(result["masked_nll_per_token"]))
    assert 0 < result["masked_nll_per_token"] < np.log(model.vocab_size) + 1


def test_resume_across_the_phase_boundary_matches_an_uninterrupted_run(run, tmp_path):
    model, _, _ = run
    keras.utils.set_random_seed(0)
    kgen.train(tiny_config(epochs=1), run_dir=tmp_path / "run", verbose=0)  # stops after the MLE epoch
    resumed, _, _ = kgen.train(run_dir=tmp_path / "run", resume=True, epochs=2, verbose=0)
    for a, b in zip(model.weights, resumed.weights):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-5, atol=1e-6, err_msg=a.path)
    for a, b in zip(model.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-5, atol=1e-6, err_msg=a.path)
