"""Sequence data: the SeqGAN synthetic oracle and text from any UTF-8 file or folder.

Sequences are `Dataset`s of kind "sequence": `x` holds int32 token ids of
shape (N, T), `num_levels` is the vocabulary size, and `vocabulary` (text
only) maps ids to tokens.

**seqgan_oracle** (Yu et al. 2017, section 4): a fixed random LSTM language
model (vocabulary 5000, embedding and hidden size 32) is the "real" data
distribution. Its samples of 20 tokens are the data (10,000 training
sequences, plus 1,000 valid and 2,000 test, each split drawn with its own
seed), and it scores a generator's samples by NLL_oracle, their mean
per-token negative log-likelihood under the oracle (nats). The recurrence
(`Oracle`) is

    i = sigmoid(x W_i + h U_i + b_i)    f = sigmoid(x W_f + h U_f + b_f)
    o = sigmoid(x W_o + h U_o + b_o)    c~ = tanh(x W_c + h U_c + b_c)
    c = f * c_prev + i * c~             h = o * tanh(c)
    p(x_t | x_<t) = softmax(h W_out + b_out)

with x_1 the embedding of token 0 (the start token), h_0 = c_0 = 0 and
x_{t+1} the embedding of the token emitted at step t. The oracle comes from
`data.oracle`: a `.npz` with the 15 arrays named as above (the published
weights, `seqgan_oracle.npz`, are SHA-256 checked: a file with that name that
does not match is refused as corrupted; any other file is a user's own oracle);
when empty, `seqgan_oracle.npz` in `data.dir`, then in `$KGEN_DATA_DIR`; when
none is found, or with `data.oracle = "random"` (or `"random:SEED"`), kgen's
own random oracle: every array N(0, 1) from the seed, as the published one was
initialised. Numbers compare with the paper's only for the published oracle.

**text**: any UTF-8 file or folder of files (`data.path`; empty: the small
corpus bundled with kgen). Tokens are characters (`data.tokens = "char"`) or
whitespace-separated words (`"word"`). The token stream (files joined by a
newline, sorted by path) is cut into non-overlapping windows of
`data.seq_len` tokens, which are split train/valid/test with a fixed seed.
The vocabulary is built from the training windows only: id 0 is `<unk>`
(`UNK`), the others are the training tokens in sorted order. A valid or test
token never seen in training maps to id 0, and decodes as the `<unk>` string
(`UNK_TEXT`, U+FFFD). A model trained on text stores its vocabulary in its
config (so in every checkpoint) and decodes its samples with it.
"""

import dataclasses
import functools
import hashlib
import importlib.resources
import os
import pathlib

import numpy as np

from kgen.data.dataset import Dataset
from kgen.errors import DataError, UsageError

SPLITS = ("train", "valid", "test")

# === The SeqGAN oracle ===

ORACLE_KEYS = ("embedding", "W_i", "U_i", "b_i", "W_f", "U_f", "b_f", "W_o", "U_o", "b_o",
               "W_c", "U_c", "b_c", "W_out", "b_out")
ORACLE_FILE = "seqgan_oracle.npz"
# SHA-256 of the published oracle's 15 float32 arrays concatenated in ORACLE_KEYS order
# (the official release's save/target_params_py3.pkl; ../shared/data/README.md).
PUBLISHED_ORACLE_SHA256 = "1095de918aba7a2668fd85b4c9e5fbcc39747ce5b70207ce4a8ec814355151a5"
ORACLE_SIZES = {"train": 10000, "valid": 1000, "test": 2000}
ORACLE_SEQ_LEN = 20
ORACLE_VOCAB = 5000
ORACLE_DIM = 32


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _log_softmax(logits):
    logits = logits - logits.max(axis=-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


class Oracle:
    """The SeqGAN oracle LSTM in NumPy (the recurrence is in the module docstring).

    Args:
        params: the 15 arrays by name (`ORACLE_KEYS`).
        source: where they came from (shown in logs): a path or "random (seed N)".

    Example:

    >>> oracle = Oracle.random(seed=0, vocab_size=50, dim=8)
    >>> x = oracle.sample(100, seed=1, length=10)
    >>> x.shape, bool(oracle.nll(x) < np.log(50))
    ((100, 10), True)
    """

    def __init__(self, params, source="arrays"):
        missing = [k for k in ORACLE_KEYS if k not in params]
        if missing:
            raise DataError(f"{source}: an oracle needs the arrays {', '.join(ORACLE_KEYS)}; "
                            f"missing {', '.join(missing)}.")
        self.params = {k: np.asarray(params[k], "float32") for k in ORACLE_KEYS}
        self.source = str(source)
        p = self.params
        vocab, emb = p["embedding"].shape if p["embedding"].ndim == 2 else (0, 0)
        hidden = p["b_i"].shape[0] if p["b_i"].ndim == 1 else 0
        shapes = {"embedding": (vocab, emb), "W_out": (hidden, vocab), "b_out": (vocab,)}
        for gate in "ifoc":
            shapes.update({f"W_{gate}": (emb, hidden), f"U_{gate}": (hidden, hidden), f"b_{gate}": (hidden,)})
        bad = [f"{k} {p[k].shape} (expected {shapes[k]})" for k in ORACLE_KEYS if p[k].shape != shapes[k]]
        if bad or vocab < 2 or hidden < 1:
            raise DataError(f"{source}: the oracle's arrays do not fit together: {'; '.join(bad) or 'empty'}.")
        if not all(np.all(np.isfinite(a)) for a in p.values()):
            raise DataError(f"{source}: the oracle's arrays hold NaN or Inf.")
        self.vocab_size, self.hidden = int(vocab), int(hidden)
        # The four gates' input and recurrent weights side by side: one matmul a step.
        self._w = np.concatenate([p[f"W_{g}"] for g in "ifoc"], axis=1)
        self._u = np.concatenate([p[f"U_{g}"] for g in "ifoc"], axis=1)
        self._b = np.concatenate([p[f"b_{g}"] for g in "ifoc"])

    @classmethod
    def random(cls, seed=0, vocab_size=ORACLE_VOCAB, dim=ORACLE_DIM):
        """kgen's own oracle: every array N(0, 1) from `seed` (as the published one was initialised)."""
        rng = np.random.default_rng([int(seed), 20170204])
        shapes = {"embedding": (vocab_size, dim), "W_out": (dim, vocab_size), "b_out": (vocab_size,)}
        for g in "ifoc":
            shapes.update({f"W_{g}": (dim, dim), f"U_{g}": (dim, dim), f"b_{g}": (dim,)})
        params = {k: rng.standard_normal(shapes[k]).astype("float32") for k in ORACLE_KEYS}
        return cls(params, source=f"kgen's random oracle (seed {int(seed)})")

    @classmethod
    def load(cls, path):
        """An oracle from a `.npz`; a file named `seqgan_oracle.npz` must be the published one."""
        path = pathlib.Path(path).expanduser()
        if not path.is_file():
            raise DataError(f"oracle file {path} does not exist; pass the published seqgan_oracle.npz, "
                            "your own .npz with the arrays " + ", ".join(ORACLE_KEYS) + ", or data.oracle = \"random\".")
        try:
            with np.load(path, allow_pickle=False) as f:
                params = {k: f[k] for k in f.files}
        except Exception as e:  # noqa: BLE001 (zip, pickle and format errors)
            raise DataError(f"oracle file {path} is corrupted or not a .npz ({type(e).__name__}: {e}).") from None
        oracle = cls(params, source=str(path))
        if path.name == ORACLE_FILE and oracle.sha256() != PUBLISHED_ORACLE_SHA256:
            raise DataError(
                f"{path} is named like the published SeqGAN oracle but is corrupted or not it (SHA-256 "
                f"{oracle.sha256()[:12]}..., expected {PUBLISHED_ORACLE_SHA256[:12]}...); restore the "
                "original file, or rename your own oracle."
            )
        return oracle

    def sha256(self):
        digest = hashlib.sha256()
        for k in ORACLE_KEYS:
            digest.update(np.ascontiguousarray(self.params[k], "float32").tobytes())
        return digest.hexdigest()

    @property
    def published(self):
        return self.sha256() == PUBLISHED_ORACLE_SHA256

    def _step(self, tokens, h, c):
        z = self.params["embedding"][tokens] @ self._w + h @ self._u + self._b
        n = self.hidden
        i, f, o = _sigmoid(z[:, :n]), _sigmoid(z[:, n:2 * n]), _sigmoid(z[:, 2 * n:3 * n])
        c = f * c + i * np.tanh(z[:, 3 * n:])
        h = o * np.tanh(c)
        return h, c, h @ self.params["W_out"] + self.params["b_out"]

    def sample(self, n, seed=0, length=ORACLE_SEQ_LEN, batch_size=1000):
        """`n` sequences of `length` tokens (int32), drawn with `seed` by inverse-CDF sampling."""
        rng = np.random.default_rng(seed)
        out = np.empty((int(n), int(length)), "int32")
        for lo in range(0, int(n), batch_size):
            m = min(batch_size, int(n) - lo)
            tokens = np.zeros(m, "int64")
            h = np.zeros((m, self.hidden), "float32")
            c = np.zeros_like(h)
            u = rng.random((m, int(length)))
            for t in range(int(length)):
                h, c, logits = self._step(tokens, h, c)
                cdf = np.cumsum(np.exp(logits - logits.max(axis=-1, keepdims=True)), axis=-1)
                tokens = np.minimum((cdf < u[:, t:t + 1] * cdf[:, -1:]).sum(axis=-1), self.vocab_size - 1)
                out[lo:lo + m, t] = tokens
        return out

    def token_log_probs(self, sequences, batch_size=1000):
        """log p_oracle(x_t | x_<t) of each token, (N, T) float64."""
        x = check_tokens(sequences, self.vocab_size, "oracle_nll")
        out = np.empty(x.shape, "float64")
        for lo in range(0, len(x), batch_size):
            batch = x[lo:lo + batch_size]
            tokens = np.zeros(len(batch), "int64")
            h = np.zeros((len(batch), self.hidden), "float32")
            c = np.zeros_like(h)
            for t in range(x.shape[1]):
                h, c, logits = self._step(tokens, h, c)
                logp = _log_softmax(logits)
                out[lo:lo + len(batch), t] = logp[np.arange(len(batch)), batch[:, t]]
                tokens = batch[:, t]
        return out

    def nll(self, sequences):
        """NLL_oracle: the mean over sequences and positions of -log p_oracle(x_t | x_<t), nats per token."""
        return float(-self.token_log_probs(sequences).mean())


def check_tokens(sequences, vocab_size, what):
    """(N, T) integer token ids in 0..vocab_size-1, as int64; else a one-line `DataError`."""
    x = np.asarray(sequences)
    if x.ndim != 2 or x.size == 0:
        raise DataError(f"{what}: expected (N, T) token sequences, got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.integer):
        if not (np.issubdtype(x.dtype, np.floating) and np.all(x == np.round(x))):
            raise DataError(f"{what}: expected integer token ids, got dtype {x.dtype}.")
    if x.min() < 0 or x.max() >= vocab_size:
        raise DataError(f"{what}: token ids must lie in 0..{vocab_size - 1}, found {int(x.min())}..{int(x.max())}.")
    return x.astype("int64")


def oracle_nll(sequences, oracle):
    """NLL_oracle of `sequences` (nats per token) under `oracle` (an `Oracle`)."""
    return oracle.nll(sequences)


def _data_dirs(data_dir):
    return [(pathlib.Path(d).expanduser(), what) for d, what in
            ((data_dir, "data.dir"), (os.environ.get("KGEN_DATA_DIR"), "$KGEN_DATA_DIR")) if d]


def resolve_oracle(oracle="", data_dir=None):
    """The `Oracle` that `data.oracle` names (see the module docstring)."""
    spec = str(oracle or "")
    if spec == "random" or spec.startswith("random:"):
        seed = spec.partition(":")[2] or "0"
        if not seed.isdigit():
            raise UsageError(f'data.oracle = "{spec}": expected "random" or "random:SEED" with an integer seed.')
        return _cached_random(int(seed))
    if spec:
        return _cached_file(str(pathlib.Path(spec).expanduser().resolve()))
    for folder, _ in _data_dirs(data_dir):
        if (folder / ORACLE_FILE).is_file():
            return _cached_file(str((folder / ORACLE_FILE).resolve()))
    return _cached_random(0)


@functools.lru_cache(maxsize=4)
def _cached_random(seed):
    return Oracle.random(seed)


def _cached_file(path):
    stat = pathlib.Path(path).stat() if pathlib.Path(path).exists() else None
    return _cached_file_at(path, None if stat is None else (stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=4)
def _cached_file_at(path, _stamp):
    return Oracle.load(path)


@functools.lru_cache(maxsize=8)
def _oracle_split(oracle, split, split_seed):
    return oracle.sample(ORACLE_SIZES[split], seed=[int(split_seed), SPLITS.index(split), 2017])


def load_seqgan_oracle(split="train", oracle="", data_dir=None, split_seed=0, log=None, **_):
    """The SeqGAN synthetic data: sequences of 20 tokens sampled from the oracle (`data.oracle`)."""
    if split not in SPLITS:
        raise UsageError(f'unknown split "{split}"; choose one of {", ".join(SPLITS)}.')
    model = resolve_oracle(oracle, data_dir)
    if log is not None:
        log(f"seqgan_oracle: oracle {model.source}" + (" (the published weights)" if model.published else ""))
    x = _oracle_split(model, split, int(split_seed))
    ds = Dataset("seqgan_oracle", split, x.copy(), None, kind="sequence", num_levels=model.vocab_size)
    ds.oracle = model
    return ds


# === Text ===

UNK = 0  # the id of unknown tokens
UNK_TOKEN = "<unk>"  # its name in the vocabulary
UNK_TEXT = "\ufffd"  # what it decodes to (U+FFFD, the replacement character)
TOKEN_LEVELS = ("char", "word")
BUNDLED_CORPUS = "files/text_corpus.txt"


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Token <-> id maps of a text data set; id 0 is `<unk>`.

    Args:
        tokens: every token in id order, `tokens[0] == "<unk>"`.
        level: "char" (decoded without separator) or "word" (joined by spaces).

    Example:

    >>> v = Vocabulary.build("abcab", "char")
    >>> v.encode("cabz"), v.decode(v.encode("cabz"))
    ([3, 1, 2, 0], 'cab\\ufffd')
    """

    tokens: tuple
    level: str = "char"

    @classmethod
    def build(cls, tokens, level="char"):
        return cls((UNK_TOKEN,) + tuple(sorted(set(tokens) - {UNK_TOKEN})), level)

    @functools.cached_property
    def index(self):
        return {t: i for i, t in enumerate(self.tokens) if i != UNK}

    def __len__(self):
        return len(self.tokens)

    def encode(self, tokens):
        """Token strings -> ids (unknown tokens -> 0)."""
        if isinstance(tokens, str):
            tokens = tokenize(tokens, self.level)
        return [self.index.get(t, UNK) for t in tokens]

    def decode(self, ids):
        """Ids -> text (`<unk>` as U+FFFD; words joined by spaces)."""
        words = [UNK_TEXT if int(i) == UNK else self.tokens[int(i)] for i in np.asarray(ids).reshape(-1)]
        return ("" if self.level == "char" else " ").join(words)

    def get_config(self):
        return {"tokens": list(self.tokens), "level": self.level}

    @classmethod
    def from_config(cls, config):
        if config is None:
            return None
        tokens = tuple(config["tokens"])
        if not tokens or tokens[0] != UNK_TOKEN or config.get("level") not in TOKEN_LEVELS:
            raise DataError("a stored vocabulary must start with <unk> and name its level (char or word).")
        return cls(tokens, config["level"])


def tokenize(text, level):
    if level == "char":
        return list(text)
    if level == "word":
        return text.split()
    raise UsageError(f'unknown data.tokens "{level}"; choose one of {", ".join(TOKEN_LEVELS)}.')


def _read_text(path):
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise DataError(f"{path} is a binary file, not UTF-8 text; pass a text file or a folder of them.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}); "
                        "convert it to UTF-8 first (iconv -t utf-8).") from None


def read_corpus(path=""):
    """The text of a file, of a folder's files (sorted, hidden ones skipped, joined by a newline), or
    of the bundled corpus when `path` is empty. Empty or binary input is a one-line `DataError`."""
    if not path:
        return importlib.resources.files("kgen.data").joinpath(BUNDLED_CORPUS).read_text("utf-8"), "bundled corpus"
    p = pathlib.Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not any(
            part.startswith(".") for part in f.relative_to(p).parts))
        if not files:
            raise DataError(f"{p} holds no files; expected UTF-8 text files.")
        text = "\n".join(_read_text(f) for f in files)
    elif p.is_file():
        text = _read_text(p)
    else:
        raise DataError(f"text file or folder {p} does not exist.")
    if not text.strip():
        raise DataError(f"{p} is empty: no text to train on.")
    return text, str(p)


@functools.lru_cache(maxsize=4)
def _text_windows(path, stamp, level, seq_len, valid_fraction, test_fraction, split_seed):
    from kgen.data.loaders import split_indices

    text, source = read_corpus(path)
    tokens = tokenize(text, level)
    n = len(tokens) // seq_len
    if n < 3:
        raise DataError(f"{source}: {len(tokens)} {level} tokens make {n} windows of data.seq_len = {seq_len}; "
                        "at least 3 are needed (train, valid, test): use more text or a shorter data.seq_len.")
    windows = np.asarray(tokens[:n * seq_len], dtype=object).reshape(n, seq_len)
    parts = {s: windows[split_indices(n, s, valid_fraction, test_fraction, split_seed)] for s in SPLITS}
    vocab = Vocabulary.build(parts["train"].reshape(-1).tolist(), level)
    encoded = {s: np.asarray([vocab.encode(list(w)) for w in parts[s]], "int32").reshape(-1, seq_len)
               for s in SPLITS}
    return source, vocab, encoded


def _stamp(path):
    if not path:
        return None
    p = pathlib.Path(path).expanduser()
    try:
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())
    except OSError:
        return None


def load_text(split="train", path="", tokens="char", seq_len=64, valid_fraction=0.1, test_fraction=0.1,
              split_seed=0, **_):
    """Fixed-length token windows of a UTF-8 text (see the module docstring)."""
    if split not in SPLITS:
        raise UsageError(f'unknown split "{split}"; choose one of {", ".join(SPLITS)}.')
    if tokens not in TOKEN_LEVELS:
        raise UsageError(f'unknown data.tokens "{tokens}"; choose one of {", ".join(TOKEN_LEVELS)}.')
    if int(seq_len) < 2:
        raise UsageError(f"data.seq_len must be at least 2 tokens, got {seq_len}.")
    source, vocab, encoded = _text_windows(str(path or ""), _stamp(path), tokens, int(seq_len), float(valid_fraction),
                                           float(test_fraction), int(split_seed))
    x = encoded[split]
    if len(x) == 0:
        raise DataError(f"{source}: the {split} split is empty; use more text, a shorter data.seq_len or "
                        "other data.valid_fraction / data.test_fraction.")
    ds = Dataset("text", split, x.copy(), None, kind="sequence", num_levels=len(vocab))
    ds.vocabulary = vocab
    return ds
