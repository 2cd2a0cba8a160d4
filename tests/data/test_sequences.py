"""Sequence data: the SeqGAN oracle (published and kgen's own) and text windows with a vocabulary."""

import math

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen.cli.main import main
from kgen.data import sequences
from kgen.data.sequences import UNK, UNK_TEXT, Oracle, Vocabulary
from kgen.errors import DataError

BACKEND = keras.config.backend()


# === The oracle ===


def test_published_oracle_nll_of_its_own_samples_is_its_entropy_rate(shared_data):
    oracle = Oracle.load(shared_data / "seqgan_oracle.npz")
    assert oracle.published and oracle.vocab_size == 5000 and oracle.hidden == 32
    x = oracle.sample(500, seed=0)
    assert x.shape == (500, 20) and x.dtype == np.int32
    # ../shared/data/README.md: 5.739 nats per token for 2,000 samples; 500 other ones (a fast test) land
    # within ~3 standard errors of it (5.721 here; 2,000 of kgen's draws give 5.749).
    assert abs(oracle.nll(x) - 5.739) < 0.08
    # A uniform guess scores log(5000) = 8.52; the paper's random generator 10.31.
    assert oracle.nll(np.random.default_rng(0).integers(0, 5000, (200, 20))) > 9.0


def test_random_oracle_samples_score_below_uniform():
    oracle = Oracle.random(seed=3)
    x = oracle.sample(300, seed=1)
    nll = oracle.nll(x)
    assert 0.5 < nll < math.log(5000) - 1.0, nll
    # Samples of one oracle are unlikely under another: the NLL measures the right thing.
    assert Oracle.random(seed=4).nll(x) > nll + 1.0
    assert not oracle.published


def test_oracle_log_probs_are_normalized_per_step():
    oracle = Oracle.random(seed=0, vocab_size=7, dim=4)
    # All 7^2 sequences of length 2: their probabilities sum to 1.
    grid = np.stack(np.meshgrid(np.arange(7), np.arange(7), indexing="ij"), -1).reshape(-1, 2)
    total = np.exp(oracle.token_log_probs(grid).sum(axis=1)).sum()
    assert abs(total - 1.0) < 1e-5


def test_a_file_named_like_the_published_oracle_must_be_it(tmp_path):
    own = Oracle.random(seed=1, vocab_size=11, dim=4)
    np.savez(tmp_path / "my_oracle.npz", **own.params)
    assert Oracle.load(tmp_path / "my_oracle.npz").sha256() == own.sha256()  # a user's own oracle is fine
    np.savez(tmp_path / "seqgan_oracle.npz", **own.params)
    with pytest.raises(DataError, match="published SeqGAN oracle but is corrupted"):
        Oracle.load(tmp_path / "seqgan_oracle.npz")
    params = dict(own.params)
    del params["U_f"]
    np.savez(tmp_path / "broken.npz", **params)
    with pytest.raises(DataError, match="missing U_f"):
        Oracle.load(tmp_path / "broken.npz")


def test_seqgan_oracle_data_set_from_a_file_or_a_seed(tmp_path, monkeypatch):
    monkeypatch.delenv("KGEN_DATA_DIR", raising=False)
    own = Oracle.random(seed=2, vocab_size=13, dim=4)
    np.savez(tmp_path / "own.npz", **own.params)
    valid = kgen.load_dataset("seqgan_oracle", split="valid", oracle=str(tmp_path / "own.npz"))
    assert valid.kind == "sequence" and valid.shape == (20,) and valid.num_levels == 13 and len(valid) == 1000
    assert valid.oracle.sha256() == own.sha256() and valid.x.max() < 13
    again = kgen.load_dataset("seqgan_oracle", split="valid", oracle=str(tmp_path / "own.npz"))
    np.testing.assert_array_equal(valid.x, again.x)  # a fixed seed per split
    test = kgen.load_dataset("seqgan_oracle", split="test", oracle=str(tmp_path / "own.npz"))
    assert not np.array_equal(test.x[:100], valid.x[:100])
    # No file anywhere: kgen's own random oracle (seed 0), and "random:SEED" picks another.
    default = sequences.resolve_oracle("")
    assert default.source == "kgen's random oracle (seed 0)" and default.vocab_size == 5000
    assert sequences.resolve_oracle("random:5").source.endswith("(seed 5)")
    # Found through $KGEN_DATA_DIR as seqgan_oracle.npz (here: a wrong one, refused).
    np.savez(tmp_path / "seqgan_oracle.npz", **own.params)
    monkeypatch.setenv("KGEN_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="corrupted"):
        kgen.load_dataset("seqgan_oracle", split="valid")


# === Text ===


def test_vocabulary_round_trip_and_unknown_tokens():
    vocab = Vocabulary.build(list("hello world"), "char")
    assert vocab.tokens[UNK] == "<unk>" and len(vocab) == 1 + len(set("hello world"))
    ids = vocab.encode("hello world")
    assert UNK not in ids and vocab.decode(ids) == "hello world"
    unknown = vocab.encode("hex")  # "x" never seen
    assert unknown[-1] == UNK and vocab.decode(unknown) == "he" + UNK_TEXT
    assert Vocabulary.from_config(vocab.get_config()) == vocab
    words = Vocabulary.build("the cat saw the dog".split(), "word")
    assert words.decode(words.encode("the dog saw a cat")) == f"the dog saw {UNK_TEXT} cat"


def test_text_data_from_the_bundled_corpus():
    train = kgen.load_dataset("text", split="train", seq_len=16)
    test = kgen.load_dataset("text", split="test", seq_len=16)
    assert train.kind == "sequence" and train.x.dtype == np.int32 and train.shape == (16,)
    assert train.num_levels == len(train.vocabulary) and train.x.max() < train.num_levels
    assert test.vocabulary == train.vocabulary  # built from the train split, used for every split
    text = sequences.read_corpus("")[0]
    assert train.vocabulary.decode(train.x[0]) in text
    assert len(train) + len(test) + len(kgen.load_dataset("text", split="valid", seq_len=16)) == len(text) // 16


def test_text_tokens_only_in_valid_or_test_become_unk(tmp_path):
    # 60 windows of "ab"-text and one window with "z": wherever "z" lands outside train, it is <unk>.
    (tmp_path / "a.txt").write_text("abab" * 60 + "zzzz", encoding="utf-8")
    splits = {s: kgen.load_dataset("text", split=s, path=str(tmp_path / "a.txt"), seq_len=4, split_seed=s_seed)
              for s, s_seed in (("train", 0), ("valid", 0), ("test", 0))}
    vocab = splits["train"].vocabulary
    z_in_train = "z" in vocab.tokens
    held = np.concatenate([splits["valid"].x, splits["test"].x])
    if not z_in_train:
        assert (held == UNK).any() and vocab.decode(held[(held == UNK).any(axis=1)][0]) == UNK_TEXT * 4
    else:
        assert not (held == UNK).any()


def test_text_folder_and_word_level(tmp_path):
    (tmp_path / "one.txt").write_text("the cat sat on the mat " * 10, encoding="utf-8")
    (tmp_path / "two.txt").write_text("a dog sat on a log " * 10, encoding="utf-8")
    (tmp_path / ".hidden").write_bytes(b"\x00\x01")  # hidden files are skipped
    ds = kgen.load_dataset("text", split="train", path=str(tmp_path), tokens="word", seq_len=5)
    assert set(ds.vocabulary.tokens) <= {"<unk>", "the", "cat", "sat", "on", "mat", "a", "dog", "log"}
    assert len(ds.vocabulary.decode(ds.x[0]).split()) == 5


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"   \n\n", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    (b"caf\xe9 au lait", "not UTF-8"),
])
def test_empty_or_binary_text_is_a_one_line_error(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        kgen.load_dataset("text", path=str(path))
    assert "\n" not in str(info.value)


def test_cli_names_a_binary_text_file_in_one_line(tmp_path):
    path = tmp_path / "bad.bin"
    path.write_bytes(b"\x00\xff" * 10)
    result = CliRunner().invoke(main, ["--backend", BACKEND, "train", "--model", "seqgan", "--dataset", "text",
                                       "--set", f'data.path="{path}"', "--run-dir", str(tmp_path / "run")],
                                catch_exceptions=False)
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "binary file" in lines[-1] and str(path) in lines[-1]
