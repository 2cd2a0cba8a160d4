"""SeqGAN: sequence generative adversarial nets with policy gradient (Yu et al. 2017).

The generator G_theta is an LSTM language model over a vocabulary of V tokens:
starting from a start token, it emits y_1..y_T one at a time,
p(y_t | y_<t) = softmax(W h_t + b). Its samples are discrete, so the
discriminator's verdict cannot be back-propagated through them. SeqGAN treats
G as a stochastic policy and trains it by REINFORCE (the estimator of this
model): the action value of emitting y_t after y_<t is the discriminator's
probability that a sequence is real, estimated by N Monte Carlo roll-outs
that complete the prefix y_1..y_t with a roll-out policy G_beta:

    Q(y_<=t) = 1/N sum_n D(y_<=t, Y^n_{t+1..T}),  Y^n ~ G_beta(. | y_<=t)   (t < T)
    Q(y_<=T) = D(y_1..T)

and the generator's loss is the negative expected reward, whose gradient
(REINFORCE, eq. 7 of the paper, per token):

    g_loss = -1/(B T) sum_{b, t} Q_b,t * log G_theta(y_b,t | y_b,<t)    (Q held constant)

With Q = c constant this is c times the maximum-likelihood loss of the
samples (tested). G_beta is a delayed copy of G_theta: after each generator
update, beta <- r beta + (1 - r) theta (r = `rollout_update_rate`, 0.8 as in
the official code); it starts as a copy of theta when adversarial training
begins. The discriminator is the paper's CNN over token embeddings: one
convolution per window size with max-over-time pooling, a highway layer,
dropout and a logistic output, trained by cross-entropy on real data and
fresh generator samples, with an L2 penalty on its output layer.

Training follows the paper's schedule, by epochs of the trainer (one pass
over the training sequences each):

1. `pretrain_epochs` of maximum likelihood (teacher forcing) for G;
2. `discriminator_pretrain_epochs` of D updates (each batch: `k` updates on
   the real batch against a fresh batch of samples);
3. adversarial epochs: each batch makes `g_steps` policy-gradient updates of
   G on fresh samples with `rollouts` roll-outs each, then `d_steps` times a
   fresh batch of samples on which D makes `k` updates.

The paper's d-steps are passes over 10,000 fresh samples; here they are
batches (as many as the g-steps' batches), which keeps each step's cost
bounded and the schedule resumable. `adversarial_epochs = 0` gives the MLE
baseline: maximum likelihood for every epoch. `loss` (and `val_loss`) is
always the generator's per-token NLL of the data batch (teacher forcing),
so checkpoints compare across phases.

The phase is fixed per `fit` call (`fit` splits a call that spans two
phases), from the epoch `fit` starts at; the trainer fits one epoch a call.

#### References

- Yu, L., Zhang, W., Wang, J. and Yu, Y. SeqGAN: Sequence Generative
  Adversarial Nets with Policy Gradient. AAAI 2017.
- Kim, Y. Convolutional Neural Networks for Sentence Classification. EMNLP 2014.
- Srivastava, R. K., Greff, K. and Schmidhuber, J. Highway Networks. 2015.
"""

import keras
import numpy as np
from keras import ops

from kgen.backend import adversarial
from kgen.errors import DataError, UsageError
from kgen.models.adversarial.base import AdversarialModel, DiscriminatorRate, TokenSequences
from kgen.models.base import GenerativeModel, PhasedFit
from kgen.registry import register_layer, register_model

# The paper's discriminator for the synthetic data (its appendix / official code).
PAPER_FILTER_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
PAPER_NUM_FILTERS = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)
PHASES = ("mle", "discriminator", "adversarial")


# === Networks ===


@register_layer
class LSTMPolicy(keras.layers.Layer):
    """An LSTM language model stepped one token at a time (the generator, and its roll-out copy).

    Token id `vocab_size` is the start token. `step(tokens, h, c)` returns the
    next-token logits and the new state. The gates follow the SeqGAN oracle's
    recurrence (`kgen.data.sequences`); weights start N(0, 0.1) as in the
    official generator.
    """

    def __init__(self, vocab_size, embedding_dim=32, hidden_dim=32, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim, self.hidden_dim = int(vocab_size), int(embedding_dim), int(hidden_dim)
        init = keras.initializers.RandomNormal(stddev=0.1)
        v, e, h = self.vocab_size, self.embedding_dim, self.hidden_dim
        self.embedding = self.add_weight(shape=(v + 1, e), initializer=init, name="embedding")
        self.kernel = self.add_weight(shape=(e, 4 * h), initializer=init, name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(h, 4 * h), initializer=init, name="recurrent_kernel")
        self.bias = self.add_weight(shape=(4 * h,), initializer=init, name="bias")
        self.output_kernel = self.add_weight(shape=(h, v), initializer=init, name="output_kernel")
        self.output_bias = self.add_weight(shape=(v,), initializer=init, name="output_bias")
        self.built = True

    def initial_state(self, batch):
        zeros = ops.zeros((batch, self.hidden_dim), "float32")
        return zeros, zeros

    def start_tokens(self, batch):
        return ops.full((batch,), self.vocab_size, "int32")

    def step(self, tokens, h, c):
        x = ops.take(self.embedding, ops.cast(tokens, "int32"), axis=0)
        z = ops.matmul(x, self.kernel) + ops.matmul(h, self.recurrent_kernel) + self.bias
        i, f, o, g = ops.split(z, 4, axis=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return ops.matmul(h, self.output_kernel) + self.output_bias, h, c

    def get_config(self):
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                       "hidden_dim": self.hidden_dim})
        return config


@register_layer
class SequenceCNN(keras.layers.Layer):
    """The discriminator: embeddings, one convolution per window size with max-over-time pooling,
    a highway layer, dropout, and one logit (D(x) = sigmoid(logit))."""

    def __init__(self, vocab_size, seq_len, embedding_dim=64, filter_sizes=PAPER_FILTER_SIZES,
                 num_filters=PAPER_NUM_FILTERS, dropout=0.25, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.seq_len, self.embedding_dim = int(vocab_size), int(seq_len), int(embedding_dim)
        self.filter_sizes = tuple(int(k) for k in filter_sizes)
        self.num_filters = tuple(int(n) for n in num_filters)
        self.dropout_rate = float(dropout)
        self.embed = keras.layers.Embedding(self.vocab_size, self.embedding_dim,
                                            embeddings_initializer=keras.initializers.RandomUniform(-1.0, 1.0))
        self.convs = [keras.layers.Conv1D(n, k, activation="relu", bias_initializer=keras.initializers.Constant(0.1),
                                          kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.1))
                      for k, n in zip(self.filter_sizes, self.num_filters)]
        width = sum(self.num_filters)
        self.transform = keras.layers.Dense(width, activation="sigmoid")
        self.carry = keras.layers.Dense(width, activation="relu")
        # Seeded: its state is then saved with checkpoints (unseeded, PyTorch would draw from its
        # global generator, and a resumed run would not match an uninterrupted one).
        self.drop = keras.layers.Dropout(self.dropout_rate, seed=1)
        self.out = keras.layers.Dense(1)
        self.build((None, self.seq_len))

    def build(self, input_shape):
        self.embed.build((None, self.seq_len))
        for conv in self.convs:
            conv.build((None, self.seq_len, self.embedding_dim))
        width = sum(self.num_filters)
        self.transform.build((None, width))
        self.carry.build((None, width))
        self.out.build((None, width))
        self.built = True

    def call(self, tokens, training=False):
        x = self.embed(ops.cast(tokens, "int32"))
        pooled = ops.concatenate([ops.max(conv(x), axis=1) for conv in self.convs], axis=-1)
        gate = self.transform(pooled)
        highway = gate * self.carry(pooled) + (1.0 - gate) * pooled
        return self.out(self.drop(highway, training=training))[:, 0]

    def get_config(self):
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size, "seq_len": self.seq_len, "embedding_dim": self.embedding_dim,
                       "filter_sizes": list(self.filter_sizes), "num_filters": list(self.num_filters),
                       "dropout": self.dropout_rate})
        return config


# === The model ===


@register_model("seqgan", family="adversarial", tiny_dataset="text",
                tiny=dict(embedding_dim=8, hidden_dim=8, discriminator_embedding_dim=8, filter_sizes=(2, 3),
                          num_filters=(4, 4), rollouts=2), tiny_data=dict(seq_len=8))
class SeqGAN(PhasedFit, TokenSequences, DiscriminatorRate, AdversarialModel):
    """SeqGAN (Yu et al. 2017): an LSTM generator trained by policy gradient with Monte Carlo roll-outs.

    Logs `loss` (the generator's per-token NLL of the data batch, nats),
    `nll` (the same), `d_loss` (discriminator cross-entropy), `g_loss`
    (MLE or policy-gradient loss of the phase) and `reward` (mean roll-out
    reward of the generator's samples).

    Args:
        input_shape: `(T,)`, tokens per sequence.
        num_levels: the vocabulary size V.
        num_classes: must be None.
        vocabulary: a text data set's vocabulary (`Vocabulary.get_config()`),
            set from the data by `kgen train`; it decodes samples to text.
        embedding_dim, hidden_dim: the generator's sizes (32, 32 for the oracle).
        discriminator_embedding_dim: the discriminator's embedding size (64).
        filter_sizes, num_filters: the discriminator's window sizes and
            filters per size (the paper's; sizes longer than T are dropped).
        dropout: the discriminator's dropout rate (0.25: keep 0.75).
        l2_reg: L2 penalty on the discriminator's output layer (0.2).
        rollouts: Monte Carlo roll-outs per prefix (16).
        rollout_update_rate: r of the delayed roll-out copy (0.8).
        pretrain_epochs: maximum-likelihood epochs before the discriminator's.
        discriminator_pretrain_epochs: discriminator-only epochs.
        adversarial_epochs: adversarial epochs; 0 trains by maximum
            likelihood throughout (the paper's MLE baseline).
        g_steps, d_steps, k: generator updates per step; fresh sample
            batches for the discriminator per step; its updates per batch.
        discriminator_learning_rate: the discriminator's Adam rate (1e-4);
            the generator's is `train.learning_rate`.

    Example:

    >>> import kgen
    >>> train = kgen.load_dataset("text", seq_len=16)
    >>> model = kgen.build_model("seqgan", input_shape=(16,), num_levels=train.num_levels,
    ...                          filter_sizes=(2, 3), num_filters=(8, 8), adversarial_epochs=1,
    ...                          pretrain_epochs=1, discriminator_pretrain_epochs=0, rollouts=2)
    >>> model.compile()
    >>> _ = model.fit(train.x, epochs=2, batch_size=64, verbose=0)  # 1 MLE epoch, 1 adversarial
    >>> model.sample(2, seed=0).shape
    (2, 16)
    """

    metric_names = ("d_loss", "g_loss", "nll", "reward")
    optimizer_defaults = {"learning_rate": 0.01}
    sequence_data_hint = "seqgan_oracle or text"
    log_prob_kind = "exact"

    def __init__(self, input_shape, num_levels=None, num_classes=None, vocabulary=None, embedding_dim=32,
                 hidden_dim=32, discriminator_embedding_dim=64, filter_sizes=PAPER_FILTER_SIZES,
                 num_filters=PAPER_NUM_FILTERS, dropout=0.25, l2_reg=0.2, rollouts=16, rollout_update_rate=0.8,
                 pretrain_epochs=80, discriminator_pretrain_epochs=50, adversarial_epochs=50, g_steps=1, d_steps=5,
                 k=3, discriminator_learning_rate=1e-4, **kwargs):
        kwargs.pop("latent_dim", None)
        kwargs.pop("output_activation", None)
        if num_classes is not None:
            raise UsageError("SeqGAN is unconditional: it takes no labels.")
        if len(tuple(input_shape)) != 1 or num_levels is None or int(num_levels) < 2:
            raise DataError(f"SeqGAN models token sequences: input_shape (T,) and num_levels (the vocabulary "
                            f"size), got {tuple(input_shape)} and {num_levels}; use seqgan_oracle or text data.")
        super().__init__(input_shape, num_levels, None, latent_dim=1, output_activation="linear", **kwargs)
        self.seq_len, self.vocab_size = self.data_shape[0], self.num_levels
        if len(filter_sizes) != len(num_filters):
            raise UsageError(f"filter_sizes and num_filters must have one entry each, got {len(filter_sizes)} "
                             f"and {len(num_filters)}.")
        for name, value in (("rollouts", rollouts), ("g_steps", g_steps), ("d_steps", d_steps), ("k", k)):
            if int(value) < 1:
                raise UsageError(f"{name} must be at least 1, got {value}.")
        for name, value in (("pretrain_epochs", pretrain_epochs), ("adversarial_epochs", adversarial_epochs),
                            ("discriminator_pretrain_epochs", discriminator_pretrain_epochs)):
            if int(value) < 0:
                raise UsageError(f"{name} must be 0 or more, got {value}.")
        if not 0.0 <= float(rollout_update_rate) <= 1.0:
            raise UsageError(f"rollout_update_rate must lie in [0, 1], got {rollout_update_rate}.")
        self.vocabulary = None if vocabulary is None else dict(vocabulary)
        if self.vocabulary is not None and len(self.vocabulary.get("tokens", ())) != self.vocab_size:
            raise DataError(f"the vocabulary has {len(self.vocabulary.get('tokens', ()))} tokens, the model "
                            f"{self.vocab_size}.")
        self.embedding_dim, self.hidden_dim = int(embedding_dim), int(hidden_dim)
        self.discriminator_embedding_dim = int(discriminator_embedding_dim)
        self.filter_sizes = tuple(int(s) for s in filter_sizes)
        self.num_filters = tuple(int(n) for n in num_filters)
        self.dropout, self.l2_reg = float(dropout), float(l2_reg)
        self.rollouts, self.rollout_update_rate = int(rollouts), float(rollout_update_rate)
        self.pretrain_epochs, self.discriminator_pretrain_epochs = int(pretrain_epochs), int(discriminator_pretrain_epochs)
        self.adversarial_epochs = int(adversarial_epochs)
        self.g_steps, self.d_steps, self.k = int(g_steps), int(d_steps), int(k)
        self.discriminator_learning_rate = float(discriminator_learning_rate)
        # === Networks ===
        used = [(s, n) for s, n in zip(self.filter_sizes, self.num_filters) if s <= self.seq_len]
        if not used:
            raise UsageError(f"every discriminator filter size {self.filter_sizes} is longer than the "
                             f"{self.seq_len}-token sequences; add smaller ones.")
        self.generator = LSTMPolicy(self.vocab_size, self.embedding_dim, self.hidden_dim, name="generator")
        self.rollout_policy = LSTMPolicy(self.vocab_size, self.embedding_dim, self.hidden_dim, name="rollout_policy",
                                         trainable=False)
        self.discriminator = SequenceCNN(self.vocab_size, self.seq_len, self.discriminator_embedding_dim,
                                         [s for s, _ in used], [n for _, n in used], self.dropout,
                                         name="discriminator")
        # 1 once the roll-out policy has been copied from the generator (adversarial training began).
        self.rollout_ready = self.add_weight(shape=(), initializer="zeros", trainable=False, name="rollout_ready")
        self._phase = None
        self.built = True

    def get_config(self):
        config = super().get_config()
        for key in ("latent_dim", "output_activation"):
            config.pop(key, None)
        config.update({
            "vocabulary": self.vocabulary, "embedding_dim": self.embedding_dim, "hidden_dim": self.hidden_dim,
            "discriminator_embedding_dim": self.discriminator_embedding_dim,
            "filter_sizes": list(self.filter_sizes), "num_filters": list(self.num_filters),
            "dropout": self.dropout, "l2_reg": self.l2_reg, "rollouts": self.rollouts,
            "rollout_update_rate": self.rollout_update_rate, "pretrain_epochs": self.pretrain_epochs,
            "discriminator_pretrain_epochs": self.discriminator_pretrain_epochs,
            "adversarial_epochs": self.adversarial_epochs, "g_steps": self.g_steps, "d_steps": self.d_steps,
            "k": self.k, "discriminator_learning_rate": self.discriminator_learning_rate,
        })
        return config

    # Not a latent-variable GAN: no latent walks (the protocol's defaults, so supports() says no).
    interpolate = GenerativeModel.interpolate

    # Data: `TokenSequences` (sequence data, the stored vocabulary, decoding).

    # === The generator ===

    def token_log_probs(self, tokens, policy=None):
        """log G(y_t | y_<t) of each token under teacher forcing, (B, T)."""
        policy = policy or self.generator
        tokens = ops.cast(tokens, "int32")
        batch = ops.shape(tokens)[0]
        h, c = policy.initial_state(batch)
        inp = policy.start_tokens(batch)
        out = []
        for t in range(self.seq_len):
            logits, h, c = policy.step(inp, h, c)
            logp = ops.log_softmax(logits, axis=-1)
            out.append(ops.sum(logp * ops.one_hot(tokens[:, t], self.vocab_size), axis=-1))
            inp = tokens[:, t]
        return ops.stack(out, axis=1)

    def _draw(self, logits, u):
        """The token whose CDF interval holds the uniform u (inverse-CDF sampling), int32."""
        u = ops.cast(u, "float32")
        probs = ops.softmax(logits, axis=-1)
        cdf = ops.cumsum(probs, axis=-1)
        below = ops.cast(cdf < u[:, None] * cdf[:, -1:], "int32")
        return ops.minimum(ops.sum(below, axis=-1), self.vocab_size - 1)

    def generate_tokens(self, uniforms, policy=None):
        """Sequences (B, T) int32 from uniforms (B, T) in [0, 1): deterministic given the uniforms."""
        policy = policy or self.generator
        uniforms = ops.cast(uniforms, "float32")
        batch = ops.shape(uniforms)[0]
        h, c = policy.initial_state(batch)
        inp = policy.start_tokens(batch)
        out = []
        for t in range(self.seq_len):
            logits, h, c = policy.step(inp, h, c)
            inp = self._draw(logits, uniforms[:, t])
            out.append(inp)
        return ops.stack(out, axis=1)

    def _uniforms(self, batch, length=None):
        return keras.random.uniform((batch, length or self.seq_len), seed=self.seed_generator)

    def mle_loss(self, tokens):
        """The maximum-likelihood loss: per-token NLL (nats) under teacher forcing."""
        return -ops.mean(self.token_log_probs(tokens))

    def policy_gradient_loss(self, tokens, rewards):
        """REINFORCE: -mean_{b,t} Q_b,t log G(y_b,t | y_b,<t), rewards held constant."""
        return -ops.mean(self.token_log_probs(tokens) * ops.stop_gradient(ops.cast(rewards, "float32")))

    # === Rewards ===

    def discriminate(self, tokens, training=False):
        """D's logit per sequence (D(x) = sigmoid(logit))."""
        return self.discriminator(tokens, training=training)

    def rollout_rewards(self, tokens, uniforms=None):
        """Q of every prefix of `tokens` (B, T): the mean of D over `rollouts` completions by the
        roll-out policy for t < T, and D(tokens) itself for t = T. `uniforms` (R, B, T) fixes the
        completions' randomness (default: drawn from the model's seed generator)."""
        policy, r = self.rollout_policy, self.rollouts
        tokens = ops.cast(tokens, "int32")
        batch = ops.shape(tokens)[0]
        if uniforms is None:
            uniforms = ops.reshape(self._uniforms(r * batch), (r, batch, self.seq_len))
        uniforms = ops.reshape(ops.cast(uniforms, "float32"), (r * batch, self.seq_len))
        # The roll-out policy's state after each given prefix (teacher forcing), computed once.
        h, c = policy.initial_state(batch)
        inp = policy.start_tokens(batch)
        states = []
        for t in range(self.seq_len):
            logits, h, c = policy.step(inp, h, c)
            states.append((logits, h, c))
            inp = tokens[:, t]
        repeated = ops.tile(tokens, (r, 1))
        rewards = []
        for given in range(1, self.seq_len):
            logits, h, c = (ops.tile(s, (r, 1)) for s in states[given])
            completion = []
            for t in range(given, self.seq_len):
                if t > given:
                    logits, h, c = policy.step(completion[-1], h, c)
                completion.append(self._draw(logits, uniforms[:, t]))
            full = ops.concatenate([repeated[:, :given], ops.stack(completion, axis=1)], axis=1)
            d = ops.sigmoid(self.discriminate(full, training=False))
            rewards.append(ops.mean(ops.reshape(d, (r, batch)), axis=0))
        rewards.append(ops.sigmoid(self.discriminate(tokens, training=False)))
        return ops.stop_gradient(ops.stack(rewards, axis=1))

    def update_rollout_policy(self):
        """beta <- r beta + (1 - r) theta (the delayed copy)."""
        rate = self.rollout_update_rate
        for b, g in zip(self.rollout_policy.weights, self.generator.weights):
            b.assign(rate * b + (1.0 - rate) * g)

    def copy_rollout_policy(self):
        """beta <- theta, once, when adversarial training begins (eager)."""
        for b, g in zip(self.rollout_policy.weights, self.generator.weights):
            b.assign(ops.copy(g.value))  # a buffer of its own (JAX donates each variable's buffer to the step)
        self.rollout_ready.assign(1.0)

    # === Losses ===

    def discriminator_loss(self, real, fake, latent=None, labels=None, training=True):
        real_logits = self.discriminate(real, training=training)
        fake_logits = self.discriminate(fake, training=training)
        loss = ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))
        out = self.discriminator.out
        loss = loss + self.l2_reg * 0.5 * (ops.sum(ops.square(out.kernel)) + ops.sum(ops.square(out.bias)))
        return loss, {}

    # === Schedule ===

    def phase_at(self, epoch):
        """The training phase of a (0-based) epoch: "mle", "discriminator" or "adversarial"."""
        if self.adversarial_epochs == 0 or epoch < self.pretrain_epochs:
            return "mle"
        if epoch < self.pretrain_epochs + self.discriminator_pretrain_epochs:
            return "discriminator"
        return "adversarial"

    def set_phase(self, phase):
        """Switches the compiled training step to `phase` (and copies G into G_beta on entering adversarial)."""
        if phase not in PHASES:
            raise UsageError(f'unknown SeqGAN phase "{phase}"; choose one of {", ".join(PHASES)}.')
        if phase == "adversarial" and float(keras.ops.convert_to_numpy(self.rollout_ready)) == 0.0:
            self.copy_rollout_policy()
        if phase != self._phase:
            self._phase = phase
            self.train_function = None  # traced again for the new phase
            self.test_function = None

    # === Steps ===

    def _d_update(self, real, fake):
        opt = self.optimizer.discriminator_optimizer
        (d_loss, _), grads = adversarial.value_and_grad(
            lambda: self.discriminator_loss(real, fake, training=True), self.discriminator_variables(), has_aux=True)
        adversarial.apply_gradients(opt, grads, self.discriminator_variables())
        return d_loss

    def _sample_batch(self, batch):
        with adversarial.no_grad():
            return ops.stop_gradient(self.generate_tokens(self._uniforms(batch)))

    def adversarial_step(self, data):
        real, _ = self.unpack_batch(data)
        batch = ops.shape(real)[0]
        opt = self.optimizer
        g_vars = self.generator_variables()
        phase = self._phase or self.phase_at(0)
        logs = {}
        if phase == "mle":
            nll, grads = adversarial.value_and_grad(lambda: self.mle_loss(real), g_vars)
            adversarial.apply_gradients(opt.generator_optimizer, grads, g_vars)
            logs.update(g_loss=nll, nll=nll)
        else:
            if phase == "adversarial":
                for _ in range(self.g_steps):
                    fake = self._sample_batch(batch)
                    with adversarial.no_grad():
                        rewards = self.rollout_rewards(fake)
                    g_loss, grads = adversarial.value_and_grad(lambda: self.policy_gradient_loss(fake, rewards),
                                                               g_vars)
                    adversarial.apply_gradients(opt.generator_optimizer, grads, g_vars)
                    with adversarial.no_grad():
                        self.update_rollout_policy()
                logs.update(g_loss=g_loss, reward=ops.mean(rewards))
            for _ in range(self.d_steps if phase == "adversarial" else 1):
                fake = self._sample_batch(batch)
                for _ in range(self.k):
                    d_loss = self._d_update(real, fake)
            logs["d_loss"] = d_loss
            with adversarial.no_grad():
                logs["nll"] = self.mle_loss(real)
        with adversarial.no_grad():
            opt.iterations.assign_add(1)
        return self._record(logs)

    def evaluation_step(self, data):
        real, _ = self.unpack_batch(data)
        fake = self.generate_tokens(self._uniforms(ops.shape(real)[0]))
        d_loss, _ = self.discriminator_loss(real, fake, training=False)
        return self._record({"nll": self.mle_loss(real), "d_loss": d_loss})

    def _record(self, logs):
        with adversarial.no_grad():
            logs = {k: ops.stop_gradient(ops.cast(v, "float32")) for k, v in logs.items()}
            for name, tracker in self.trackers.items():
                if name in logs:
                    tracker.update_state(logs[name])
            if getattr(self, "_loss_tracker", None) is not None:
                self._loss_tracker.update_state(logs["nll"])
            return {m.name: m.result() for m in self.metrics}

    # Compile: `DiscriminatorRate` (G at the recipe's rate, D at `discriminator_learning_rate`).

    # === Sampling, likelihood ===

    def noise_spec(self, n):
        return [("uniform", (n, self.seq_len))]

    def sample_from_noise(self, u, labels=None):
        """Token sequences (int32 NumPy) for uniforms `u` (n, T)."""
        fn = self.compiled_fn("sample", lambda u: self.generate_tokens(u))
        return fn(np.asarray(u, "float32"))

    def sample(self, n, seed=None, labels=None, temperature=1.0, batch_size=256):
        """`n` token sequences (int32, (n, T)); `temperature` != 1 divides the logits by it."""
        if temperature != 1.0:
            raise UsageError("SeqGAN samples at temperature 1 only.")
        return super().sample(n, seed=seed, labels=labels, batch_size=batch_size).astype("int32")

    def log_prob(self, x, labels=None, batch_size=256, seed=None):
        """log G(x) of each sequence in nats (exact: the sum of its tokens' log-probabilities)."""
        from kgen.data.sequences import check_tokens

        x = check_tokens(x, self.vocab_size, type(self).__name__).astype("int32")
        fn = self.compiled_fn("log_prob", lambda t: ops.sum(self.token_log_probs(t), axis=1))
        return self.batched(fn, [x], batch_size)

    def evaluate_extra(self, prepared, batch_size=256):
        """NLL_oracle of 10,000 samples (seqgan_oracle data); the per-token NLL of the data (text)."""
        source = prepared.source
        out = {}
        oracle = getattr(source, "oracle", None)
        if oracle is not None:
            samples = self.sample(10000, seed=0, batch_size=batch_size)
            out["nll_oracle"] = oracle.nll(samples)
            out["nll_oracle_samples"] = 10000
            out["oracle"] = oracle.source + (" (published)" if oracle.published else "")
        logp = self.log_prob(prepared.x, batch_size=batch_size)
        out["nll_per_token"] = float(-np.mean(logp) / self.seq_len)
        return out

    # === Export ===

    litert_endpoints = ("sample", "log_prob")

    def export_endpoints(self):
        """sample(uniforms (n, T)) -> tokens int32; log_prob(tokens int32 (n, T)) -> nats per sequence."""
        def sample(u):
            return self.generate_tokens(u)

        def log_prob(tokens):
            return ops.sum(self.token_log_probs(tokens), axis=1)

        return {"sample": (sample, [((None, self.seq_len), "float32")]),
                "log_prob": (log_prob, [((None, self.seq_len), "int32")])}
