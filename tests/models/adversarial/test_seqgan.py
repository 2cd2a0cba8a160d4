"""SeqGAN: roll-out rewards, the policy gradient, the schedule, text in and out, save/load and resume."""

import keras
import numpy as np
import pytest
from keras import ops

import kgen
from kgen import checkpoint
from kgen import config as config_lib
from kgen.backend import adversarial
from kgen.data.sequences import UNK_TEXT, Oracle
from kgen.errors import DataError, UsageError
from kgen.evaluation import evaluate_checkpoint
from kgen.sampling import sample_to_file

BACKEND = keras.config.backend()
SEQ_LEN = 4
TINY = dict(embedding_dim=8, hidden_dim=8, discriminator_embedding_dim=8, filter_sizes=[2, 3, 20],
            num_filters=[4, 4, 4], rollouts=3, pretrain_epochs=1, discriminator_pretrain_epochs=1,
            adversarial_epochs=1, d_steps=2, k=1)


def tiny_model(vocab=11, **overrides):
    return kgen.build_model("seqgan", input_shape=(SEQ_LEN,), num_levels=vocab, **{**TINY, **overrides})


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def tiny_config(epochs=3, **data):
    sets = [(["model", k], v) for k, v in TINY.items()]
    sets += [(["train", k], v) for k, v in dict(epochs=epochs, batch_size=8, grid_size=4, steps_per_execution=1,
                                                 learning_rate=0.01).items()]
    sets += [(["data", "max_examples"], 64), (["data", "seq_len"], SEQ_LEN), (["data", "valid_fraction"], 0.01)]
    sets += [(["data", k], v) for k, v in data.items()]
    return config_lib.resolve(model="seqgan", dataset=data.get("name", "text"), overrides=sets)


# === Rewards and the estimator ===


def test_rollout_reward_of_a_complete_sequence_is_the_discriminator_output():
    model = tiny_model()
    tokens = np.random.default_rng(0).integers(0, 11, (4, SEQ_LEN)).astype("int32")
    u = np.random.default_rng(1).uniform(size=(3, 4, SEQ_LEN)).astype("float32")
    rewards = numpy(model.rollout_rewards(tokens, u))
    assert rewards.shape == (4, SEQ_LEN) and np.all((rewards > 0) & (rewards < 1))
    d = numpy(ops.sigmoid(model.discriminate(tokens)))
    np.testing.assert_allclose(rewards[:, -1], d, rtol=1e-5)
    # One token left to complete: Q is the mean of D over the roll-outs' last tokens.
    logits = []
    policy = model.rollout_policy
    h, c = policy.initial_state(4)
    inp = policy.start_tokens(4)
    for t in range(SEQ_LEN):
        out, h, c = policy.step(inp, h, c)
        logits.append(out)
        inp = tokens[:, t]
    ds = []
    for n in range(3):
        last = model._draw(logits[-1], u[n, :, -1])
        full = np.concatenate([tokens[:, :-1], numpy(last)[:, None]], axis=1)
        ds.append(numpy(ops.sigmoid(model.discriminate(full))))
    np.testing.assert_allclose(rewards[:, -2], np.mean(ds, axis=0), rtol=1e-5)


def test_policy_gradient_with_a_constant_reward_is_the_scaled_likelihood_gradient():
    model = tiny_model()
    tokens = np.random.default_rng(2).integers(0, 11, (5, SEQ_LEN)).astype("int32")
    variables = model.generator.trainable_variables
    _, mle = adversarial.value_and_grad(lambda: model.mle_loss(tokens), variables)
    c = 0.37
    _, pg = adversarial.value_and_grad(
        lambda: model.policy_gradient_loss(tokens, np.full((5, SEQ_LEN), c, "float32")), variables)
    assert max(float(np.abs(numpy(g)).max()) for g in mle) > 1e-4
    for a, b in zip(pg, mle):
        np.testing.assert_allclose(numpy(a), c * numpy(b), rtol=1e-4, atol=1e-7)
    # A reward on one token only weights that token's score function.
    rewards = np.zeros((5, SEQ_LEN), "float32")
    rewards[:, 0] = 1.0
    _, first = adversarial.value_and_grad(lambda: model.policy_gradient_loss(tokens, rewards), variables)
    _, whole = adversarial.value_and_grad(lambda: -ops.mean(model.token_log_probs(tokens)[:, 0]) / SEQ_LEN,
                                          variables)
    for a, b in zip(first, whole):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-4, atol=1e-7)


def test_log_prob_is_normalized_over_every_sequence():
    model = kgen.build_model("seqgan", input_shape=(3,), num_levels=4, **{**TINY, "filter_sizes": [2], "num_filters": [4]})
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    assert abs(np.exp(model.log_prob(grid)).sum() - 1.0) < 1e-4
    with pytest.raises(DataError, match="token ids must lie in 0..3"):
        model.log_prob(grid + 1)


def test_samples_follow_the_seed_and_the_uniforms():
    model = tiny_model()
    a = model.sample(6, seed=3)
    assert a.shape == (6, SEQ_LEN) and a.dtype == np.int32 and a.min() >= 0 and a.max() < 11
    np.testing.assert_array_equal(a, model.sample(6, seed=3))
    assert not np.array_equal(a, model.sample(6, seed=4))
    # u near 0 picks the first token whose probability is not 0: always token 0.
    assert np.all(numpy(model.sample_from_noise(np.zeros((2, SEQ_LEN), "float32"))) == 0)


def test_delayed_rollout_copy():
    model = tiny_model()
    model.copy_rollout_policy()
    for b, g in zip(model.rollout_policy.weights, model.generator.weights):
        np.testing.assert_array_equal(numpy(b), numpy(g))
    old = [numpy(b) for b in model.rollout_policy.weights]
    for g in model.generator.weights:
        g.assign(g + 1.0)
    model.update_rollout_policy()
    for b, o, g in zip(model.rollout_policy.weights, old, model.generator.weights):
        np.testing.assert_allclose(numpy(b), 0.8 * o + 0.2 * numpy(g), rtol=1e-5)
    assert not model.rollout_policy.trainable_weights


def test_schedule_and_mle_only_mode():
    model = tiny_model(pretrain_epochs=2, discriminator_pretrain_epochs=1, adversarial_epochs=3)
    assert [model.phase_at(e) for e in range(7)] == ["mle"] * 2 + ["discriminator"] + ["adversarial"] * 4
    mle = tiny_model(adversarial_epochs=0)
    assert {mle.phase_at(e) for e in range(10)} == {"mle"}
    with pytest.raises(UsageError, match="rollouts must be at least 1"):
        tiny_model(rollouts=0)
    with pytest.raises(DataError, match="token sequences"):
        kgen.build_model("seqgan", input_shape=(8, 8, 1), num_levels=17)


# === Through the harness: text in the checkpoint, samples as text, save/load, resume ===


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model, run_dir, last = kgen.train(tiny_config(), run_dir=tmp_path_factory.mktemp("seqgan") / "run", verbose=0)
    return model, run_dir, last


def test_each_phase_trains_its_players(run):
    """1 MLE epoch, 1 discriminator epoch, 1 adversarial epoch of 8 batches each (64 examples, batch 8)."""
    model, run_dir, last = run
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4
    assert np.isfinite(list(last.values())).all() and last["d_loss"] > 0 and 0 < last["reward"] < 1
    # The generator's NLL (loss = nll, nats per token) falls below the uniform guess's log V.
    assert last["loss"] < np.log(model.vocab_size) - 0.1, (last, np.log(model.vocab_size))
    g_opt, d_opt = model.optimizer.generator_optimizer, model.optimizer.discriminator_optimizer
    assert int(numpy(g_opt.iterations)) == 8 + 8  # the MLE epoch, then one policy-gradient update a batch
    assert int(numpy(d_opt.iterations)) == 8 * 1 + 8 * 2 * 1  # k a batch; d_steps x k when adversarial
    assert int(numpy(model.optimizer.iterations)) == 24
    assert float(numpy(model.rollout_ready)) == 1.0
    gap = [np.abs(numpy(b) - numpy(g)).max() for b, g in zip(model.rollout_policy.weights, model.generator.weights)]
    assert 0 < max(gap)  # a delayed copy: behind the generator, not equal to it


def test_trains_through_the_harness_with_the_vocabulary(run):
    model, run_dir, last = run
    train = kgen.load_dataset("text", seq_len=SEQ_LEN)
    assert model.vocabulary == train.vocabulary.get_config()
    loaded = checkpoint.load_model(run_dir / "last.keras")
    assert loaded.vocabulary == model.vocabulary  # stored in the checkpoint, restored on load
    np.testing.assert_array_equal(loaded.sample(4, seed=1), model.sample(4, seed=1))
    np.testing.assert_allclose(loaded.log_prob(train.x[:8]), model.log_prob(train.x[:8]), rtol=1e-5)
    text = loaded.decode_sequences(train.x[:2])
    assert text == [train.vocabulary.decode(row) for row in train.x[:2]] and UNK_TEXT not in text[0]


def test_sample_writes_decoded_text(run, tmp_path):
    model, run_dir, _ = run
    out = sample_to_file(checkpoint=run_dir / "last.keras", n=5, seed=2, out=tmp_path / "s.txt")
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 6
    assert lines[:5] == [t.replace("\n", " ") for t in model.decode_sequences(model.sample(5, seed=2))]
    with pytest.raises(UsageError, match="FILE.txt"):
        sample_to_file(checkpoint=run_dir / "last.keras", n=5, out=tmp_path / "s.png")


def test_evaluate_reports_the_per_token_nll(run):
    _, run_dir, _ = run
    result = evaluate_checkpoint(run_dir / "last.keras", progress=False)
    assert result["nll_kind"] == "exact"
    np.testing.assert_allclose(result["nll_per_token"], result["nll"]["nats"] / SEQ_LEN, rtol=1e-5)


def test_resume_matches_an_uninterrupted_run(run, tmp_path):
    model, _, _ = run
    keras.utils.set_random_seed(0)
    kgen.train(tiny_config(epochs=2), run_dir=tmp_path / "run", verbose=0)  # stops before the adversarial epoch
    resumed, _, _ = kgen.train(run_dir=tmp_path / "run", resume=True, epochs=3, verbose=0)
    for a, b in zip(model.weights, resumed.weights):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-5, atol=1e-6, err_msg=a.path)
    for a, b in zip(model.optimizer.variables, resumed.optimizer.variables):
        if "iteration" in a.path:
            assert int(numpy(a)) == int(numpy(b)), a.path


def test_evaluate_reports_nll_oracle(tmp_path):
    """`kgen evaluate`'s extra metrics on seqgan_oracle data: NLL_oracle of the model's samples."""
    from kgen.data.pipeline import Pipeline

    oracle = Oracle.random(seed=1, vocab_size=9, dim=4)
    np.savez(tmp_path / "own.npz", **oracle.params)
    pipeline = Pipeline({"name": "seqgan_oracle", "oracle": str(tmp_path / "own.npz")})
    prepared = pipeline.prepare(pipeline.load("test").subset(50), seed=0)
    model = kgen.build_model("seqgan", input_shape=(20,), num_levels=9, **TINY)  # filters up to 20 tokens
    model.check_data(prepared.source)
    result = model.evaluate_extra(prepared)
    assert result["nll_oracle_samples"] == 10000 and result["oracle"] == str(tmp_path / "own.npz")
    samples = model.sample(10000, seed=0)
    assert result["nll_oracle"] == pytest.approx(oracle.nll(samples))
    # An untrained generator is near uniform: worse than the oracle on its own samples.
    assert oracle.nll(oracle.sample(500, seed=0)) < result["nll_oracle"]
    np.testing.assert_allclose(result["nll_per_token"], -model.log_prob(prepared.x).mean() / 20, rtol=1e-5)
