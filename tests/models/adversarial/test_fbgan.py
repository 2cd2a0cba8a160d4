"""FBGAN: the motif analyzer, the replace-the-oldest feedback rule, the gradient penalty, the feedback
effect on a tiny synthetic task, save/load and resume with the buffer."""

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint
from kgen import config as config_lib
from kgen.errors import DataError, UsageError
from kgen.models.adversarial.fbgan import motif_scores, replace_oldest, resolve_analyzer

TINY = dict(latent_dim=4, hidden_dim=8, num_blocks=1, n_critic=2, buffer_size=24, feedback_samples=32,
            analyzer="substring:e", kernel_size=3, threshold=-1.0, max_replace=5)
# threshold -1: every generated sequence qualifies, the best (holding an "e") first, so each epoch's
# feedback replaces exactly 5 buffer entries, and resume must continue the ring where it stood.


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def tiny_config(epochs=2):
    sets = [(["model", k], v) for k, v in TINY.items()]
    sets += [(["train", k], v) for k, v in dict(epochs=epochs, batch_size=8, grid_size=4, steps_per_execution=1,
                                                 learning_rate=0.01).items()]
    sets += [(["data", "max_examples"], 32), (["data", "seq_len"], 6), (["data", "valid_fraction"], 0.05)]
    return config_lib.resolve(model="fbgan", dataset="text", overrides=sets)


# === The analyzer ===


def test_motif_analyzer_on_known_sequences():
    x = np.array([[1, 2, 3, 0, 0],   # at the start
                  [0, 0, 1, 2, 3],   # at the end
                  [1, 2, 0, 3, 1],   # broken
                  [3, 2, 1, 0, 0],   # reversed
                  [1, 1, 2, 3, 3]])  # after a repeat
    np.testing.assert_array_equal(motif_scores(x, (1, 2, 3)), [1, 1, 0, 0, 1])
    analyzer = resolve_analyzer("motif:1,2,3")
    np.testing.assert_array_equal(analyzer(x), [1, 1, 0, 0, 1])
    np.testing.assert_array_equal(motif_scores(x, (1, 2, 3, 0, 0, 0)), [0, 0, 0, 0, 0])  # longer than T
    vocab = {"tokens": ["<unk>", "a", "b", "c"]}
    np.testing.assert_array_equal(resolve_analyzer("substring:abc", vocab)(x), [1, 1, 0, 0, 1])
    assert callable(resolve_analyzer("kgen.models.adversarial.fbgan:motif_scores"))
    assert resolve_analyzer("") is None
    for bad in ("motif:", "motif:a,b", "substring:abz", "nothing", "kgen_no_such_module:f",
                "kgen.models.adversarial.fbgan:no_such_function"):
        with pytest.raises(UsageError):
            resolve_analyzer(bad, vocab)
    with pytest.raises(UsageError, match="vocabulary"):
        resolve_analyzer("substring:abc", None)


# === The feedback rule ===


def test_feedback_replaces_exactly_the_oldest_entries_with_the_best():
    buffer = np.arange(12).reshape(6, 2)          # rows 0..5; the oldest is at head 4
    candidates = np.array([[100, 100], [101, 101], [102, 102], [103, 103], [104, 104]])
    scores = np.array([0.9, 0.2, 0.7, 0.95, 0.6])  # above 0.5: rows 3 (0.95), 0 (0.9), 2 (0.7), 4 (0.6)
    new, head, k = replace_oldest(buffer, 4, candidates, scores, threshold=0.5, max_replace=3)
    assert k == 3 and head == 1
    want = buffer.copy()
    want[4], want[5], want[0] = [103, 103], [100, 100], [102, 102]  # best first, wrapping round the ring
    np.testing.assert_array_equal(new, want)
    np.testing.assert_array_equal(buffer, np.arange(12).reshape(6, 2))  # the input is not modified
    # Nothing above the threshold: nothing changes.
    same, head, k = replace_oldest(buffer, 2, candidates, np.zeros(5), threshold=0.5)
    assert k == 0 and head == 2
    np.testing.assert_array_equal(same, buffer)
    # No limit: every passing candidate, never more than the buffer holds.
    full, head, k = replace_oldest(buffer[:3], 0, candidates, scores, threshold=0.5)
    assert k == 3 and head == 0
    np.testing.assert_array_equal(full, [[103, 103], [100, 100], [102, 102]])


def test_the_models_feedback_updates_its_buffer_state():
    model = kgen.build_model("fbgan", input_shape=(3,), num_levels=4, latent_dim=2, hidden_dim=4, num_blocks=0,
                             buffer_size=4, analyzer="motif:1,2")
    model.fill_buffer(np.zeros((2, 3), "int32"))  # fewer rows than the buffer: repeated
    buffer, head = model.buffer_state()
    assert head == 0 and buffer.shape == (4, 3) and not buffer.any()
    tokens = np.array([[1, 2, 0], [3, 3, 3], [0, 1, 2]])
    assert model.feedback(tokens) == 2                      # both score 1.0; stable order
    buffer, head = model.buffer_state()
    np.testing.assert_array_equal(buffer, [[1, 2, 0], [0, 1, 2], [0, 0, 0], [0, 0, 0]])
    assert head == 2
    assert model.feedback(tokens) == 2
    assert model.feedback(tokens[1:]) == 1                  # the ring wraps: the oldest is row 0 again
    buffer, head = model.buffer_state()
    np.testing.assert_array_equal(buffer, [[0, 1, 2], [0, 1, 2], [1, 2, 0], [0, 1, 2]])
    assert head == 1
    assert model.feedback_due(0) and model.feedback_due(5)
    model.feedback_every, model.feedback_start = 2, 1
    assert [model.feedback_due(e) for e in range(6)] == [False, False, True, False, True, False]


# === The gradient penalty ===


def test_penalty_of_a_linear_critic_is_analytic():
    """Without residual blocks the critic is linear in its (T, V) input: C(x) = sum(G * x) + c, whose
    gradient G is the same everywhere, so the penalty is lambda (||G||_F - 1)^2 whatever alpha."""
    seq_len, vocab = 3, 4
    model = kgen.build_model("fbgan", input_shape=(seq_len,), num_levels=vocab, latent_dim=2, hidden_dim=5,
                             num_blocks=0, gradient_penalty_weight=7.0)
    embed = model.discriminator.get_layer("embed")
    score = model.discriminator.get_layer("score")
    k, d = numpy(embed.kernel)[0], numpy(score.kernel)[:, 0]             # (V, H), (T * H,)
    grad = np.einsum("vh,th->tv", k.astype("float64"), d.reshape(seq_len, -1).astype("float64"))
    want = 7.0 * (np.sqrt(np.sum(grad ** 2)) - 1.0) ** 2
    rng = np.random.default_rng(0)
    real = np.eye(vocab, dtype="float32")[rng.integers(0, vocab, (5, seq_len))]
    fake = rng.dirichlet(np.ones(vocab), (5, seq_len)).astype("float32")
    for alpha in (None, np.full((5, 1, 1), 0.3, "float32")):
        got = float(numpy(model.gradient_penalty(real, fake, alpha=alpha)))
        np.testing.assert_allclose(got, want, rtol=1e-4)
    # The critic's own value: sum(G * x) plus a constant.
    c = numpy(model.critic(real)) - np.einsum("btv,tv->b", real, grad)
    np.testing.assert_allclose(c, c[0], atol=1e-4)


# === The feedback effect ===


def _motif_run(feedback_every):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).integers(0, 4, (1024, 4))
    model = kgen.build_model("fbgan", input_shape=(4,), num_levels=4, latent_dim=8, hidden_dim=16, num_blocks=0,
                             n_critic=2, buffer_size=64, analyzer="motif:1,2", feedback_every=feedback_every,
                             feedback_samples=256)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.9))
    history = model.fit(x, epochs=8, batch_size=64, verbose=0)
    return float(motif_scores(model.sample(1000, seed=1), (1, 2)).mean()), history.history


def test_feedback_raises_the_share_of_sequences_with_the_motif():
    """Uniform random sequences of 4 tokens over 4 symbols hold the motif (1, 2) about 17% of the time.
    Feedback fills the critic's buffer with generated sequences that hold it, and the generator follows
    (measured on TensorFlow: 0.54 with feedback, 0.18 without, same seed and steps)."""
    with_feedback, hist_on = _motif_run(1)
    without, hist_off = _motif_run(0)
    assert hist_on["buffer_share"][-1] > 0.9 and sum(hist_on["replaced"]) > 64
    assert max(hist_off["replaced"]) == 0 and abs(hist_off["buffer_share"][-1] - hist_off["buffer_share"][0]) == 0
    assert without < 0.3
    assert with_feedback > without + 0.15, (with_feedback, without)


# === Save, load, resume ===


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    keras.utils.set_random_seed(0)
    run_dir = tmp_path_factory.mktemp("fbgan") / "run"
    model, _, last = kgen.train(tiny_config(epochs=2), run_dir=run_dir, verbose=0)
    return model, run_dir, last


def test_trains_through_the_harness_and_logs_the_feedback(run):
    model, run_dir, last = run
    for key in ("d_loss", "g_loss", "w_distance", "gradient_penalty", "feedback_share", "buffer_share", "replaced"):
        assert key in last and np.isfinite(last[key]), (key, last)
    assert model.vocabulary is not None and len(model.decode_sequences(model.sample(2, seed=0))) == 2
    buffer, _ = model.buffer_state()
    assert buffer.shape == (24, 6) and buffer.any()


def test_data_with_another_vocabulary_is_refused(run):
    """Same vocabulary size, other tokens (another text): ids would mean other characters."""
    import dataclasses

    from kgen.data.pipeline import Pipeline
    from kgen.data.sequences import Vocabulary

    model, run_dir, _ = run
    data = Pipeline(tiny_config()["data"]).load("train")
    model.check_data(data)  # the data it was trained on
    tokens = data.vocabulary.tokens
    other = dataclasses.replace(data, vocabulary=Vocabulary((tokens[0],) + tuple(reversed(tokens[1:])),
                                                            data.vocabulary.level))
    with pytest.raises(DataError, match="vocabulary differs"):
        model.check_data(other)


def test_save_load_keeps_the_buffer(run, tmp_path):
    model, _, _ = run
    checkpoint.save_checkpoint(model, tmp_path / "m.keras", {"epoch": 2})
    loaded = kgen.load_model(tmp_path / "m.keras")
    for got, want in zip(loaded.buffer_state(), model.buffer_state()):
        np.testing.assert_array_equal(got, want)
    assert int(numpy(loaded.buffer_ready)) == 1 and loaded.analyzer == "substring:e"
    np.testing.assert_array_equal(loaded.sample(5, seed=2), model.sample(5, seed=2))
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(numpy(a), numpy(b), err_msg=a.path)


def test_resume_matches_an_uninterrupted_run(run, tmp_path):
    model, run_dir, _ = run
    replaced = [row["replaced"] for row in metric_rows(run_dir)]
    assert replaced == [5.0, 5.0], replaced
    assert int(numpy(model.buffer_head)) == 10
    keras.utils.set_random_seed(0)
    kgen.train(tiny_config(epochs=1), run_dir=tmp_path / "run", verbose=0)
    resumed, _, _ = kgen.train(run_dir=tmp_path / "run", resume=True, epochs=2, verbose=0)
    for got, want in zip(resumed.buffer_state(), model.buffer_state()):
        np.testing.assert_array_equal(got, want)
    for a, b in zip(model.weights, resumed.weights):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-5, atol=1e-6, err_msg=a.path)


def metric_rows(run_dir):
    import csv

    with open(run_dir / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def test_usage_errors():
    with pytest.raises(UsageError):
        kgen.build_model("fbgan", input_shape=(4,), num_levels=4, num_classes=2)
    with pytest.raises(UsageError):
        kgen.build_model("fbgan", input_shape=(4,), num_levels=4, feedback_every=-1)
    with pytest.raises(UsageError, match="key"):
        kgen.build_model("fbgan", input_shape=(4,), num_levels=4, analyzer=lambda t: t)
    with pytest.raises(DataError):
        kgen.build_model("fbgan", input_shape=(4, 4), num_levels=4)
