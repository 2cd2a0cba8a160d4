"""Feedback GAN: a WGAN-GP sequence generator steered by an external analyzer (Gupta & Zou 2019).

The generator maps z ~ N(0, I) to a softmax over the V tokens at each of the
T positions (the continuous relaxation of Gulrajani et al.'s language
WGAN-GP): a dense layer to (T, hidden), residual blocks of 1-D convolutions,
a 1x1 convolution to V logits and a softmax. The critic reads one-hot real
sequences and the generator's softmax outputs alike: a 1x1 convolution, the
same residual blocks, and one linear score. Training is WGAN-GP (as
`kgen.models.adversarial.wgan_gp`):

    x_hat = a x + (1 - a) G(z),   a ~ U[0, 1], one a per sequence
    d_loss = E[C(G(z))] - E[C(x)] + lambda E[(||grad_x_hat C(x_hat)||_2 - 1)^2]
    g_loss = -E[C(G(z))]

with `n_critic` critic updates per generator update.

**The feedback loop.** The critic's real data is a buffer of `buffer_size`
token sequences, filled from the training data when training starts. After
every `feedback_every` epochs (from epoch `feedback_start` on), the model
generates `feedback_samples` sequences, decodes each position by argmax, and
scores them with an external, non-differentiable *analyzer* (any Python
callable: int array (n, T) -> one bool or score per sequence). The sequences
scoring above `threshold`, highest score first (at most `max_replace`, 0: no
limit), replace the *oldest* entries of the buffer: the buffer is a ring,
`buffer_head` points at its oldest entry, and each admitted sequence is
written there and advances it (the paper's rule). The buffer, its head and
whether it was filled are non-trainable weights of the model, so a checkpoint
keeps them and a resumed run continues the same buffer. `feedback_every = 0`
turns the feedback off: plain WGAN-GP on the data (the paper's baseline).

Each epoch also logs `feedback_share` (the share of that epoch's generated
batch the analyzer accepts), `buffer_share` (the share of the buffer it
accepts) and `replaced` (sequences admitted this epoch).

**Analyzers** are named by `analyzer`:

- `"motif:1,2,3"`: built in; 1 when a sequence contains the token ids
  1, 2, 3 contiguously, else 0 (`motif_analyzer`);
- `"substring:the"`: the same, with the motif spelt in the characters of a
  text model's vocabulary;
- `"package.module:function"`: a user's callable. This imports that module
  and runs its code, but only when feedback first needs the analyzer (never
  when a checkpoint is loaded);
- `""`: none (feedback off; the shares are not logged).

#### References

- Gupta, A. & Zou, J. Feedback GAN for DNA optimizes protein functions.
  Nature Machine Intelligence 1, 105-111 (2019).
- Gulrajani, I., Ahmed, F., Arjovsky, M., Dumoulin, V. & Courville, A.
  Improved Training of Wasserstein GANs. NeurIPS 2017.
"""

import importlib

import keras
import numpy as np
from keras import ops

from kgen.backend import adversarial
from kgen.errors import DataError, UsageError
from kgen.models.adversarial.base import AdversarialModel, TokenSequences
from kgen.models.base import GenerativeModel
from kgen.registry import register_layer, register_model

FEEDBACK_SEED = 20190


# === Analyzers ===


def motif_scores(tokens, motif):
    """1.0 for each sequence (row of `tokens`) that holds `motif` contiguously, else 0.0."""
    tokens = np.asarray(tokens)
    motif = np.asarray(motif, tokens.dtype).reshape(-1)
    if tokens.ndim != 2 or len(motif) == 0 or len(motif) > tokens.shape[1]:
        return np.zeros(len(tokens), "float32")
    windows = np.lib.stride_tricks.sliding_window_view(tokens, len(motif), axis=1)
    return np.all(windows == motif, axis=-1).any(axis=-1).astype("float32")


def motif_analyzer(motif):
    """The built-in analyzer: a callable scoring 1 for sequences that contain `motif` (token ids)."""
    motif = tuple(int(t) for t in motif)

    def analyze(tokens):
        return motif_scores(tokens, motif)

    analyze.motif = motif
    return analyze


def resolve_analyzer(spec, vocabulary=None):
    """The callable an `analyzer` key names (see the module docstring); None for "".

    A dotted "package.module:function" imports that module: it runs user code.
    """
    if spec is None or spec == "":
        return None
    if callable(spec):
        return spec
    kind, sep, arg = str(spec).partition(":")
    if kind == "motif":
        try:
            ids = [int(t) for t in arg.split(",") if t.strip()]
        except ValueError:
            raise UsageError(f'analyzer "{spec}": a motif is token ids separated by commas, e.g. "motif:1,2,3".') from None
        if not ids:
            raise UsageError(f'analyzer "{spec}" names no motif; e.g. "motif:1,2,3".')
        return motif_analyzer(ids)
    if kind == "substring":
        if vocabulary is None:
            raise UsageError(f'analyzer "{spec}" spells its motif in characters, but the model has no text '
                             'vocabulary; use "motif:ID,ID,..." with token ids.')
        index = {t: i for i, t in enumerate(vocabulary["tokens"])}
        missing = sorted({c for c in arg if c not in index})
        if not arg or missing:
            raise UsageError(f'analyzer "{spec}": {"characters " + repr("".join(missing)) if missing else "nothing"} '
                             "not in the model's vocabulary.")
        return motif_analyzer([index[c] for c in arg])
    if sep and kind and arg:
        try:
            module = importlib.import_module(kind)
        except ImportError as e:
            raise UsageError(f'analyzer "{spec}": cannot import {kind} ({e}).') from None
        fn = getattr(module, arg, None)
        if not callable(fn):
            raise UsageError(f'analyzer "{spec}": {kind} has no callable named {arg}.')
        return fn
    raise UsageError(f'unknown analyzer "{spec}"; use "motif:1,2,3", "substring:TEXT" or '
                     '"package.module:function".')


def replace_oldest(buffer, head, candidates, scores, threshold, max_replace=0):
    """The feedback rule: candidates scoring above `threshold`, best first, overwrite the oldest entries.

    Args:
        buffer: (N, T) sequences, a ring whose oldest entry is at `head`.
        head: index of the oldest entry.
        candidates: (n, T) generated sequences; scores: (n,) their scores.
        threshold: admit scores strictly above it.
        max_replace: admit at most this many (0: no limit; never more than N).

    Returns:
        (new buffer, new head, number replaced).
    """
    buffer = np.array(buffer, copy=True)
    scores = np.asarray(scores, "float64").reshape(-1)
    keep = np.flatnonzero(scores > threshold)
    order = keep[np.argsort(-scores[keep], kind="stable")]
    limit = len(buffer) if not max_replace else min(int(max_replace), len(buffer))
    chosen = np.asarray(candidates)[order[:limit]]
    k = len(chosen)
    positions = (int(head) + np.arange(k)) % len(buffer)
    buffer[positions] = chosen
    return buffer, (int(head) + k) % len(buffer), k


# === Networks ===


@register_layer
class ResidualBlock1D(keras.layers.Layer):
    """x + 0.3 * conv(relu(conv(relu(x)))) (the language WGAN-GP's residual block, 'same' padding)."""

    def __init__(self, channels, kernel_size=5, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.kernel_size = int(channels), int(kernel_size)
        self.conv1 = keras.layers.Conv1D(self.channels, self.kernel_size, padding="same", name="conv1")
        self.conv2 = keras.layers.Conv1D(self.channels, self.kernel_size, padding="same", name="conv2")

    def build(self, input_shape):
        self.conv1.build(input_shape)
        self.conv2.build(input_shape)
        self.built = True

    def call(self, x):
        h = self.conv1(ops.relu(x))
        h = self.conv2(ops.relu(h))
        return x + 0.3 * h

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "kernel_size": self.kernel_size})
        return config


def _generator(latent_dim, seq_len, vocab_size, hidden_dim, num_blocks, kernel_size):
    stack = [keras.layers.Dense(seq_len * hidden_dim, name="dense"),
             keras.layers.Reshape((seq_len, hidden_dim), name="reshape")]
    stack += [ResidualBlock1D(hidden_dim, kernel_size, name=f"block_{i}") for i in range(num_blocks)]
    stack += [keras.layers.Conv1D(vocab_size, 1, name="logits"), keras.layers.Softmax(axis=-1, name="softmax")]
    model = keras.Sequential(stack, name="generator")
    model.build((None, latent_dim))
    return model


def _critic(seq_len, vocab_size, hidden_dim, num_blocks, kernel_size):
    stack = [keras.layers.Conv1D(hidden_dim, 1, name="embed")]
    stack += [ResidualBlock1D(hidden_dim, kernel_size, name=f"block_{i}") for i in range(num_blocks)]
    # No output bias: it cancels out of E C(x) - E C(G(z)) and the penalty.
    stack += [keras.layers.Flatten(name="flatten"), keras.layers.Dense(1, use_bias=False, name="score")]
    model = keras.Sequential(stack, name="critic")
    model.build((None, seq_len, vocab_size))
    return model


# === The model ===


@register_model("fbgan", family="adversarial", tiny_dataset="text",
                tiny=dict(latent_dim=4, hidden_dim=8, num_blocks=1, n_critic=2, buffer_size=32,
                          feedback_samples=16))
class FBGAN(TokenSequences, AdversarialModel):
    """Feedback GAN (Gupta & Zou 2019): a WGAN-GP sequence generator whose critic's data an analyzer steers.

    Args:
        input_shape: `(T,)`, tokens per sequence.
        num_levels: the vocabulary size V.
        num_classes: must be None.
        vocabulary: a text data set's vocabulary (set from the data by
            `kgen train`); decodes samples and spells "substring:" motifs.
        latent_dim: size of z ~ N(0, I) (128 in the paper).
        hidden_dim: channels of the residual blocks (512 in the paper).
        num_blocks: residual blocks in each network (5 in the paper).
        kernel_size: the blocks' convolution width (5).
        gradient_penalty_weight: lambda (10).
        n_critic: critic updates per generator update (10 in the paper).
        buffer_size: sequences in the critic's real-data buffer.
        analyzer: the analyzer's key (module docstring); `""` for none.
        threshold: sequences scoring strictly above it enter the buffer.
        feedback_every: epochs between feedback rounds (0: no feedback).
        feedback_start: epochs of plain WGAN-GP before the first round.
        feedback_samples: sequences generated and scored each round.
        max_replace: most sequences admitted per round (0: no limit).

    Example:

    >>> import numpy as np, kgen
    >>> x = np.random.default_rng(0).integers(0, 4, (256, 8))
    >>> model = kgen.build_model("fbgan", input_shape=(8,), num_levels=4, latent_dim=8, hidden_dim=16,
    ...                          num_blocks=1, buffer_size=128, analyzer="motif:1,2,3")
    >>> model.compile()
    >>> _ = model.fit(x, epochs=1, batch_size=32, verbose=0)
    >>> model.sample(2, seed=0).shape
    (2, 8)
    """

    optimizer_defaults = {"learning_rate": 1e-4, "beta_1": 0.5, "beta_2": 0.9}
    metric_names = ("d_loss", "g_loss", "w_distance", "gradient_penalty")

    def __init__(self, input_shape, num_levels=None, num_classes=None, vocabulary=None, latent_dim=128,
                 hidden_dim=64, num_blocks=2, kernel_size=5, gradient_penalty_weight=10.0, n_critic=10,
                 buffer_size=512, analyzer="motif:1,2,3", threshold=0.5, feedback_every=1, feedback_start=0,
                 feedback_samples=256, max_replace=0, **kwargs):
        kwargs.pop("output_activation", None)
        if num_classes is not None:
            raise UsageError("FBGAN is unconditional: it takes no labels.")
        if len(tuple(input_shape)) != 1 or num_levels is None or int(num_levels) < 2:
            raise DataError(f"FBGAN models token sequences: input_shape (T,) and num_levels (the vocabulary size), "
                            f"got {tuple(input_shape)} and {num_levels}; use text data.")
        super().__init__(input_shape, num_levels, None, latent_dim=latent_dim, output_activation="linear", **kwargs)
        for name, value, low in (("hidden_dim", hidden_dim, 1), ("num_blocks", num_blocks, 0),
                                 ("kernel_size", kernel_size, 1), ("n_critic", n_critic, 1),
                                 ("buffer_size", buffer_size, 1), ("feedback_every", feedback_every, 0),
                                 ("feedback_start", feedback_start, 0), ("feedback_samples", feedback_samples, 1),
                                 ("max_replace", max_replace, 0)):
            if int(value) < low:
                raise UsageError(f"{name} must be at least {low}, got {value}.")
        if callable(analyzer):
            raise UsageError("FBGAN names its analyzer by a key (saved with the model): pass "
                             '"package.module:function" for your own callable.')
        self.seq_len, self.vocab_size = self.data_shape[0], self.num_levels
        self.vocabulary = None if vocabulary is None else dict(vocabulary)
        self.hidden_dim, self.num_blocks, self.kernel_size = int(hidden_dim), int(num_blocks), int(kernel_size)
        self.gradient_penalty_weight = float(gradient_penalty_weight)
        self.n_critic = self.discriminator_steps = int(n_critic)
        self.buffer_size = int(buffer_size)
        self.analyzer = str(analyzer or "")
        self.threshold = float(threshold)
        self.feedback_every, self.feedback_start = int(feedback_every), int(feedback_start)
        self.feedback_samples, self.max_replace = int(feedback_samples), int(max_replace)
        self._analyzer_fn = None  # resolved (imported) when feedback first needs it

        # === Players ===
        self.generator = _generator(self.latent_dim, self.seq_len, self.vocab_size, self.hidden_dim,
                                    self.num_blocks, self.kernel_size)
        self.discriminator = _critic(self.seq_len, self.vocab_size, self.hidden_dim, self.num_blocks,
                                     self.kernel_size)
        # === The real-data buffer (state: checkpoints keep it) ===
        self.buffer = self.add_weight(shape=(self.buffer_size, self.seq_len), initializer="zeros", dtype="int32",
                                      trainable=False, name="buffer")
        self.buffer_head = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False,
                                           name="buffer_head")
        self.buffer_ready = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False,
                                            name="buffer_ready")
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.pop("output_activation", None)
        config.update({
            "vocabulary": self.vocabulary, "hidden_dim": self.hidden_dim, "num_blocks": self.num_blocks,
            "kernel_size": self.kernel_size, "gradient_penalty_weight": self.gradient_penalty_weight,
            "n_critic": self.n_critic, "buffer_size": self.buffer_size, "analyzer": self.analyzer,
            "threshold": self.threshold, "feedback_every": self.feedback_every,
            "feedback_start": self.feedback_start, "feedback_samples": self.feedback_samples,
            "max_replace": self.max_replace,
        })
        return config

    # Latent walks would decode to token sequences; not offered (the protocol's defaults).
    interpolate = GenerativeModel.interpolate
    latent_arithmetic = GenerativeModel.latent_arithmetic

    # === Data ===

    def unpack_batch(self, data):
        """Token batches -> one-hot (B, T, V) real examples."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, (tuple, list)):
            x = x[0]
        return ops.one_hot(ops.cast(x, "int32"), self.vocab_size), None

    # === Networks ===

    def generate(self, latent, labels=None, training=False):
        """z -> a softmax over the tokens at each position, (B, T, V)."""
        return self.generator(ops.cast(latent, "float32"), training=training)

    def critic(self, x, training=False):
        """C(x) for one-hot or softmax sequences (B, T, V): one real number per sequence."""
        return self.discriminator(ops.cast(x, "float32"), training=training)[:, 0]

    def generate_tokens(self, latent):
        """Discrete sequences: the argmax of each position's softmax (first on ties), int32 (B, T).

        Written as the smallest index holding the maximum: TensorFlow's argmax lowers to a
        bitwise op that LiteRT has no builtin for.
        """
        probs = self.generate(latent)
        top = ops.max(probs, axis=-1, keepdims=True)
        index = ops.cast(ops.arange(self.vocab_size), "int32")
        return ops.min(ops.where(probs >= top, index, self.vocab_size), axis=-1)

    # === Losses ===

    def draw_alpha(self, batch):
        return keras.random.uniform((batch, 1, 1), seed=self.seed_generator)

    def gradient_penalty(self, real, fake, alpha=None, critic=None):
        """lambda * mean_i (||grad C(x_hat_i)||_2 - 1)^2, x_hat_i = a_i real_i + (1 - a_i) fake_i (norm over T x V)."""
        real, fake = ops.cast(real, "float32"), ops.cast(fake, "float32")
        alpha = self.draw_alpha(ops.shape(real)[0]) if alpha is None else ops.cast(alpha, "float32")
        critic = critic or (lambda v: self.critic(v, training=True))
        grads = adversarial.input_gradient(critic, alpha * real + (1.0 - alpha) * fake)
        grads = ops.reshape(grads, (ops.shape(grads)[0], -1))
        norms = ops.sqrt(ops.sum(ops.square(grads), axis=-1) + 1e-12)
        return self.gradient_penalty_weight * ops.mean(ops.square(norms - 1.0))

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        w_distance = ops.mean(self.critic(real, training=training)) - ops.mean(self.critic(fake, training=training))
        penalty = self.gradient_penalty(real, fake)
        return penalty - w_distance, {"w_distance": w_distance, "gradient_penalty": penalty}

    def generator_loss(self, latent, labels=None, training=True):
        return -ops.mean(self.critic(self.generate(latent, training=training), training=training)), {}

    # === Training: the critic reads the buffer ===

    def adversarial_step(self, data):
        """One WGAN-GP step whose real batch is drawn (uniformly, with replacement) from the buffer."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, (tuple, list)):
            x = x[0]
        batch = ops.shape(x)[0]
        rows = keras.random.randint((batch,), 0, self.buffer_size, seed=self.seed_generator)
        return super().adversarial_step(ops.take(self.buffer, rows, axis=0))

    def fill_buffer(self, x):
        """Fills the buffer from data: the first `buffer_size` rows of `x` (repeated when fewer); head at 0.

        `x` is an int array (N, T), or a tf.data pipeline of such batches (read until the buffer is full).
        """
        if isinstance(x, (tuple, list)):
            x = x[0]
        if hasattr(x, "as_numpy_iterator"):
            rows, count = [], 0
            for batch in x.as_numpy_iterator():
                batch = batch[0] if isinstance(batch, (tuple, list)) else batch
                rows.append(np.asarray(batch))
                count += len(rows[-1])
                if count >= self.buffer_size:
                    break
            x = np.concatenate(rows) if rows else np.zeros((0, self.seq_len))
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.seq_len or len(x) == 0:
            raise DataError(f"FBGAN fills its buffer with token sequences (N, {self.seq_len}); got shape {x.shape}.")
        if np.any(x < 0) or np.any(x >= self.vocab_size) or np.any(x != np.round(x)):
            raise DataError(f"FBGAN's data must be token ids in [0, {self.vocab_size}).")
        self.buffer.assign(np.resize(x.astype("int32"), (self.buffer_size, self.seq_len)))
        self.buffer_head.assign(np.asarray(0, "int32"))
        self.buffer_ready.assign(np.asarray(1, "int32"))

    def buffer_state(self):
        """(buffer (N, T) int32, head) as NumPy."""
        return (np.asarray(ops.convert_to_numpy(self.buffer.value)),
                int(ops.convert_to_numpy(self.buffer_head.value)))

    def analyze(self, tokens):
        """The analyzer's score of each sequence, float NumPy (n,). Resolving a dotted key runs user code."""
        if self._analyzer_fn is None:
            self._analyzer_fn = resolve_analyzer(self.analyzer, self.vocabulary)
        if self._analyzer_fn is None:
            raise UsageError("FBGAN has no analyzer (analyzer = \"\"); name one, e.g. \"motif:1,2,3\".")
        tokens = np.asarray(tokens, "int32")
        scores = np.asarray(self._analyzer_fn(tokens), "float64").reshape(-1)
        if len(scores) != len(tokens):
            raise UsageError(f"the analyzer {self.analyzer} returned {len(scores)} scores for {len(tokens)} sequences.")
        return scores

    def feedback(self, tokens, scores=None):
        """One feedback round on `tokens` (n, T): the ones scoring above the threshold replace the oldest
        buffer entries (`replace_oldest`). Returns the number replaced."""
        scores = self.analyze(tokens) if scores is None else np.asarray(scores, "float64")
        buffer, head = self.buffer_state()
        buffer, head, k = replace_oldest(buffer, head, tokens, scores, self.threshold, self.max_replace)
        self.buffer.assign(buffer)
        self.buffer_head.assign(np.asarray(head, "int32"))
        return k

    def feedback_due(self, epoch):
        """Whether a feedback round follows the (0-based) epoch."""
        done = epoch + 1
        return self.feedback_every > 0 and done > self.feedback_start and \
            (done - self.feedback_start) % self.feedback_every == 0

    def end_epoch(self, epoch):
        """After an epoch: generate and score a batch (seeded by the epoch); feed it back when due."""
        if not self.analyzer:
            return {}
        tokens = self.sample(self.feedback_samples, seed=[FEEDBACK_SEED, int(epoch)])
        scores = self.analyze(tokens)
        replaced = self.feedback(tokens, scores) if self.feedback_due(epoch) else 0
        buffer, _ = self.buffer_state()
        return {"feedback_share": float(np.mean(scores > self.threshold)),
                "buffer_share": float(np.mean(self.analyze(buffer) > self.threshold)),
                "replaced": float(replaced)}

    def fit(self, x=None, y=None, epochs=1, initial_epoch=0, **kwargs):
        """`keras.Model.fit`, one epoch a call, with the feedback round after each epoch where due.

        The buffer is filled from `x` the first time (a checkpoint's buffer is kept on resume). The
        returned History also holds `feedback_share`, `buffer_share` and `replaced` per epoch.
        """
        epochs, start = int(epochs), int(initial_epoch)
        if int(ops.convert_to_numpy(self.buffer_ready.value)) == 0:
            self.fill_buffer(x)
        if start >= epochs:
            return super().fit(x, y, epochs=epochs, initial_epoch=start, **kwargs)
        merged = None
        for epoch in range(start, epochs):
            history = super().fit(x, y, epochs=epoch + 1, initial_epoch=epoch, **kwargs)
            for key, value in self.end_epoch(epoch).items():
                history.history.setdefault(key, []).append(value)
            if merged is None:
                merged = history
            else:
                for key, values in history.history.items():
                    merged.history.setdefault(key, []).extend(values)
                merged.epoch.extend(history.epoch)
        return merged

    # === Sampling ===

    def noise_spec(self, n):
        return [("normal", (n, self.latent_dim))]

    def sample_from_noise(self, z, labels=None):
        """Token sequences (int32 NumPy (n, T)): the argmax at each position for latents z."""
        fn = self.compiled_fn("sample", lambda z: self.generate_tokens(z))
        return fn(np.asarray(z, "float32"))

    def sample(self, n, seed=None, labels=None, temperature=1.0, batch_size=256):
        """`n` token sequences (int32, (n, T)), each position's argmax; `temperature` scales z."""
        return super().sample(n, seed=seed, labels=labels, temperature=temperature,
                              batch_size=batch_size).astype("int32")

    # === Export ===

    litert_endpoints = ("sample", "generate")

    def export_endpoints(self):
        """sample(z) -> tokens int32 (n, T); generate(z) -> softmax (n, T, V)."""
        z_spec = ((None, self.latent_dim), "float32")

        def sample(z):
            return self.generate_tokens(z)

        def generate(z):
            return self.generate(z)

        return {"sample": (sample, [z_spec]), "generate": (generate, [z_spec])}
