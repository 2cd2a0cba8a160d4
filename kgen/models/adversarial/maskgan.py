"""MaskGAN: text generation by filling in the blanks, trained with an actor-critic (Fedus et al. 2018).

A mask m over a sequence x_1..x_T marks the tokens to fill (m_t = 1: missing,
0: visible). The generator is a seq2seq actor: an encoder LSTM reads the masked
sequence (a missing token replaced by the <mask> id V), and a decoder LSTM,
started from the encoder's final state, emits x^_1..x^_T left to right. Its
input at step t is the previous emitted token and the encoder's output at
position t (a position-aligned context in place of the paper's optional
attention). Where x_t is visible the decoder copies it; where it is missing it
samples x^_t ~ G(. | x^_<t, m(x)). The discriminator has the same architecture:
its decoder reads the filled sequence and outputs, per token, the probability
D_t = D(x^_t real | x^_<=t, m(x)). The critic (the value baseline b_t) is a
linear head on the discriminator decoder's state before it reads x^_t (its
input held constant), so b_t depends on x^_<t only; the head predicts one
token's reward, scaled by the discounted count of missing tokens left.

The estimator is REINFORCE with a learned baseline (the paper's eq. 6-7): at
filled positions the reward is r_t = log D_t (0 where visible), the return
R_t = sum_{s>=t} gamma^(s-t) r_s, and with A_t = R_t - b_t held constant

    actor loss  = -sum_t m_t A_t log G(x^_t | x^_<t, m(x)) / sum_t m_t
    critic loss =  sum_t m_t (R_t - b_t)^2 / sum_t m_t
    D loss      =  sum_t m_t [softplus(-l(x)_t) + softplus(l(x^)_t)] / sum_t m_t

(l the discriminator's logits; a constant A makes the actor's gradient A times
the likelihood gradient of the filled tokens, tested). The generator is first
trained by maximum likelihood on in-filling (teacher forcing: the masked-token
NLL) for `pretrain_epochs` (the discriminator and critic meanwhile learn to
judge its fills, one update a batch, so the actor starts against a trained
discriminator and a fitted baseline: with b = 0 every advantage is negative
and the actor pushes down whatever it samples), then `adversarial_epochs`
follow; each adversarial
step fills the batch, makes `d_steps` updates of the discriminator and critic
(one optimizer: the critic's head and the discriminator's body take disjoint
gradients) and one actor update, whose rewards and baselines are those the
discriminator and critic gave the fill in their last update's forward pass.
`adversarial_epochs = 0` is the MLE baseline.
`loss` (and `val_loss`) is always the masked-token NLL per missing token
under teacher forcing, so checkpoints compare across phases; the validation
perplexity is exp(val_loss).

The mask is drawn per example each step: "contiguous" (one block of
round(mask_rate T) tokens at a uniform start) or "random" (each token missing
with probability `mask_rate`). Unconditional samples fill a fully masked
sequence: the decoder then is a language model conditioned on a constant
context, so `log_prob` (the sum of its token log-probabilities) is the exact
log-likelihood of what `sample` draws. `infill` fills given sequences under
given masks; `sample(prompt=...)` keeps a prompt's tokens at the start.

The phases switch as in SeqGAN: the phase is fixed per `fit` call (`fit`
splits a call that spans both), from the epoch it starts at.

Paper-size settings (the official code's IMDB launch example, words,
sequence_length 20, batch 128): 2-layer seq2seq LSTMs of 650 units with
variational dropout and Luong attention for both players, shared embeddings,
is_present_rate 0.5 (mask_rate 0.5), discount about 0.88, Adam at about
1.7e-3 (generator), 6e-5 (discriminator, 8 updates a step: `d_steps = 8`)
and 1e-3 (critic), after MLE pretraining; kgen's recipe is one 64-unit
layer on 24-character windows for a one-minute run.

#### References

- Fedus, W., Goodfellow, I. and Dai, A. M. MaskGAN: Better Text Generation via
  Filling in the ______. ICLR 2018.
- Sutskever, I., Vinyals, O. and Le, Q. V. Sequence to Sequence Learning with
  Neural Networks. NIPS 2014.
"""

import keras
import numpy as np
from keras import ops

from kgen.backend import adversarial
from kgen.errors import DataError, UsageError
from kgen.models.adversarial.base import AdversarialModel, DiscriminatorRate, TokenSequences
from kgen.models.base import GenerativeModel, PhasedFit
from kgen.registry import register_layer, register_model

PHASES = ("mle", "adversarial")
MASK_STRATEGIES = ("contiguous", "random")


# === Networks ===


def _lstm(x, h, c, kernel, recurrent_kernel, bias):
    z = ops.matmul(x, kernel) + ops.matmul(h, recurrent_kernel) + bias
    i, f, o, g = ops.split(z, 4, axis=-1)
    c = ops.sigmoid(f + 1.0) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


@register_layer
class Seq2SeqLSTM(keras.layers.Layer):
    """An encoder LSTM over the masked sequence and a decoder LSTM stepped one token at a time.

    Token ids: 0..V-1 the vocabulary, V the <mask> id, V+1 the decoder's start
    token. `encode(masked)` returns the encoder's outputs (a list of T (B, H)
    tensors) and its final state; `step(tokens, context, h, c)` one decoder
    step, returning `outputs` units of output (V logits for the generator, 1
    for the discriminator) and the new state.
    """

    def __init__(self, vocab_size, outputs, embedding_dim=32, hidden_dim=64, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.outputs = int(vocab_size), int(outputs)
        self.embedding_dim, self.hidden_dim = int(embedding_dim), int(hidden_dim)
        v, e, h = self.vocab_size, self.embedding_dim, self.hidden_dim
        init = keras.initializers.RandomUniform(-0.1, 0.1)
        self.embedding = self.add_weight(shape=(v + 2, e), initializer=init, name="embedding")
        self.enc_kernel = self.add_weight(shape=(e, 4 * h), initializer="glorot_uniform", name="enc_kernel")
        self.enc_recurrent = self.add_weight(shape=(h, 4 * h), initializer="orthogonal", name="enc_recurrent")
        self.enc_bias = self.add_weight(shape=(4 * h,), initializer="zeros", name="enc_bias")
        self.dec_kernel = self.add_weight(shape=(e + h, 4 * h), initializer="glorot_uniform", name="dec_kernel")
        self.dec_recurrent = self.add_weight(shape=(h, 4 * h), initializer="orthogonal", name="dec_recurrent")
        self.dec_bias = self.add_weight(shape=(4 * h,), initializer="zeros", name="dec_bias")
        self.output_kernel = self.add_weight(shape=(h, self.outputs), initializer="glorot_uniform",
                                             name="output_kernel")
        self.output_bias = self.add_weight(shape=(self.outputs,), initializer="zeros", name="output_bias")
        self.built = True

    def embed(self, tokens):
        return ops.take(self.embedding, ops.cast(tokens, "int32"), axis=0)

    def encode(self, masked):
        """The encoder's output at each position (a list of T (B, H)) and its final (h, c)."""
        x = self.embed(masked)
        batch = ops.shape(masked)[0]
        h = c = ops.zeros((batch, self.hidden_dim), "float32")
        outs = []
        for t in range(masked.shape[1]):
            h, c = _lstm(x[:, t], h, c, self.enc_kernel, self.enc_recurrent, self.enc_bias)
            outs.append(h)
        return outs, (h, c)

    def step(self, tokens, context, h, c):
        x = ops.concatenate([self.embed(tokens), context], axis=-1)
        h, c = _lstm(x, h, c, self.dec_kernel, self.dec_recurrent, self.dec_bias)
        return ops.matmul(h, self.output_kernel) + self.output_bias, h, c

    def get_config(self):
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size, "outputs": self.outputs, "embedding_dim": self.embedding_dim,
                       "hidden_dim": self.hidden_dim})
        return config


def discounted_returns(rewards, gamma):
    """R_t = sum_{s>=t} gamma^(s-t) r_s over the last axis of `rewards` (B, T)."""
    rewards = ops.cast(rewards, "float32")
    running = ops.zeros_like(rewards[:, 0])
    out = []
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        out.append(running)
    return ops.stack(out[::-1], axis=1)


# === The model ===


@register_model("maskgan", family="adversarial", tiny_dataset="text",
                tiny=dict(embedding_dim=8, hidden_dim=8, discriminator_hidden_dim=8), tiny_data=dict(seq_len=8))
class MaskGAN(PhasedFit, TokenSequences, DiscriminatorRate, AdversarialModel):
    """MaskGAN (Fedus et al. 2018): a seq2seq in-filling generator trained by actor-critic against a
    per-token discriminator.

    Logs `loss` (= `nll`: the masked-token NLL per missing token, teacher
    forcing, nats), `d_loss` (the discriminator's cross-entropy at missing
    positions), `g_loss` (MLE or actor loss of the phase), `critic_loss` and
    `reward` (mean log D of the filled tokens).

    Args:
        input_shape: `(T,)`, tokens per sequence.
        num_levels: the vocabulary size V.
        num_classes: must be None.
        vocabulary: a text data set's vocabulary (`Vocabulary.get_config()`),
            set from the data by `kgen train`; it decodes samples to text.
        embedding_dim, hidden_dim: the generator's sizes.
        discriminator_hidden_dim: the discriminator's LSTM size (its
            embedding size is `embedding_dim`).
        mask_strategy: "contiguous" (one missing block) or "random".
        mask_rate: the share of missing tokens (0.5 in the paper's runs).
        gamma: the discount of the returns (0.99).
        pretrain_epochs: maximum-likelihood (in-filling) epochs.
        adversarial_epochs: actor-critic epochs after them; 0 trains by
            maximum likelihood throughout (the MLE baseline).
        d_steps: discriminator (and critic) updates per adversarial step.
        discriminator_learning_rate: the discriminator's and critic's Adam
            rate; the generator's is `train.learning_rate`.
        actor_learning_rate: the generator's rate from the first adversarial
            epoch on (set on its optimizer when the phase begins; None keeps
            `train.learning_rate`). REINFORCE steps at the MLE rate wreck a
            pretrained filler within an epoch (measured: bench/maskgan_text.py).

    Example:

    >>> import kgen
    >>> train = kgen.load_dataset("text", seq_len=16)
    >>> model = kgen.build_model("maskgan", input_shape=(16,), num_levels=train.num_levels,
    ...                          hidden_dim=16, discriminator_hidden_dim=16, pretrain_epochs=1,
    ...                          adversarial_epochs=1)
    >>> model.compile()
    >>> _ = model.fit(train.x[:128], epochs=2, batch_size=64, verbose=0)  # 1 MLE epoch, 1 adversarial
    >>> model.sample(2, seed=0).shape
    (2, 16)
    """

    metric_names = ("d_loss", "g_loss", "critic_loss", "nll", "reward")
    optimizer_defaults = {"learning_rate": 0.005}
    log_prob_kind = "exact"

    def __init__(self, input_shape, num_levels=None, num_classes=None, vocabulary=None, embedding_dim=32,
                 hidden_dim=64, discriminator_hidden_dim=64, mask_strategy="contiguous", mask_rate=0.5, gamma=0.99,
                 pretrain_epochs=10, adversarial_epochs=5, d_steps=1, discriminator_learning_rate=1e-3,
                 actor_learning_rate=None, **kwargs):
        kwargs.pop("latent_dim", None)
        kwargs.pop("output_activation", None)
        if num_classes is not None:
            raise UsageError("MaskGAN is unconditional: it takes no labels.")
        if len(tuple(input_shape)) != 1 or num_levels is None or int(num_levels) < 2:
            raise DataError(f"MaskGAN models token sequences: input_shape (T,) and num_levels (the vocabulary "
                            f"size), got {tuple(input_shape)} and {num_levels}; use text data.")
        super().__init__(input_shape, num_levels, None, latent_dim=1, output_activation="linear", **kwargs)
        self.seq_len, self.vocab_size = self.data_shape[0], self.num_levels
        if mask_strategy not in MASK_STRATEGIES:
            raise UsageError(f'unknown mask_strategy "{mask_strategy}"; choose one of {", ".join(MASK_STRATEGIES)}.')
        if not 0.0 < float(mask_rate) <= 1.0:
            raise UsageError(f"mask_rate must lie in (0, 1], got {mask_rate}.")
        if not 0.0 <= float(gamma) <= 1.0:
            raise UsageError(f"gamma must lie in [0, 1], got {gamma}.")
        if int(d_steps) < 1:
            raise UsageError(f"d_steps must be at least 1, got {d_steps}.")
        for name, value in (("pretrain_epochs", pretrain_epochs), ("adversarial_epochs", adversarial_epochs)):
            if int(value) < 0:
                raise UsageError(f"{name} must be 0 or more, got {value}.")
        self.vocabulary = None if vocabulary is None else dict(vocabulary)
        if self.vocabulary is not None and len(self.vocabulary.get("tokens", ())) != self.vocab_size:
            raise DataError(f"the vocabulary has {len(self.vocabulary.get('tokens', ()))} tokens, the model "
                            f"{self.vocab_size}.")
        self.embedding_dim, self.hidden_dim = int(embedding_dim), int(hidden_dim)
        self.discriminator_hidden_dim = int(discriminator_hidden_dim)
        self.mask_strategy, self.mask_rate, self.gamma = mask_strategy, float(mask_rate), float(gamma)
        self.pretrain_epochs, self.adversarial_epochs = int(pretrain_epochs), int(adversarial_epochs)
        self.d_steps = int(d_steps)
        self.discriminator_learning_rate = float(discriminator_learning_rate)
        self.actor_learning_rate = None if actor_learning_rate is None else float(actor_learning_rate)
        # === Networks ===
        self.generator = Seq2SeqLSTM(self.vocab_size, self.vocab_size, self.embedding_dim, self.hidden_dim,
                                     name="generator")
        self.discriminator = Seq2SeqLSTM(self.vocab_size, 1, self.embedding_dim, self.discriminator_hidden_dim,
                                         name="discriminator")
        self.critic = keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(-np.log(2.0)),
                                         name="critic")
        self.critic.build((None, self.discriminator_hidden_dim))
        self._phase = None
        self.built = True

    def get_config(self):
        config = super().get_config()
        for key in ("latent_dim", "output_activation"):
            config.pop(key, None)
        config.update({
            "vocabulary": self.vocabulary, "embedding_dim": self.embedding_dim, "hidden_dim": self.hidden_dim,
            "discriminator_hidden_dim": self.discriminator_hidden_dim, "mask_strategy": self.mask_strategy,
            "mask_rate": self.mask_rate, "gamma": self.gamma, "pretrain_epochs": self.pretrain_epochs,
            "adversarial_epochs": self.adversarial_epochs, "d_steps": self.d_steps,
            "discriminator_learning_rate": self.discriminator_learning_rate,
            "actor_learning_rate": self.actor_learning_rate,
        })
        return config

    # Not a latent-variable GAN: no latent walks.
    interpolate = GenerativeModel.interpolate

    def discriminator_variables(self):
        """The discriminator's body and the critic's head: one optimizer, disjoint gradients."""
        return list(self.discriminator.trainable_variables) + list(self.critic.trainable_variables)

    # Data: `TokenSequences` (sequence data, the stored vocabulary, decoding).

    # === Masks ===

    def masks_from_uniforms(self, u):
        """Masks (B, T) float32, 1 = missing, from uniforms (B, T) in [0, 1): "random" misses token t when
        u_t < mask_rate; "contiguous" misses round(mask_rate T) tokens from start floor(u_0 (T - L + 1))."""
        u = ops.cast(u, "float32")
        if self.mask_strategy == "random":
            return ops.cast(u < self.mask_rate, "float32")
        length = max(1, int(round(self.mask_rate * self.seq_len)))
        start = ops.minimum(ops.floor(u[:, :1] * (self.seq_len - length + 1)), self.seq_len - length)
        t = ops.arange(self.seq_len, dtype="float32")[None, :]
        return ops.cast((t >= start) & (t < start + length), "float32")

    def draw_masks(self, batch):
        return self.masks_from_uniforms(self._uniforms(batch))

    def _uniforms(self, batch):
        return keras.random.uniform((batch, self.seq_len), seed=self.seed_generator)

    def masked_input(self, tokens, mask):
        """The encoder's input: tokens with the missing ones replaced by the <mask> id V."""
        return ops.where(ops.cast(mask, "float32") > 0.5, self.vocab_size, ops.cast(tokens, "int32"))

    # === The generator ===

    def token_log_probs(self, tokens, mask):
        """log G(x_t | x_<t, m(x)) of each token under teacher forcing, (B, T)."""
        tokens = ops.cast(tokens, "int32")
        net = self.generator
        context, (h, c) = net.encode(self.masked_input(tokens, mask))
        inp = ops.full((ops.shape(tokens)[0],), self.vocab_size + 1, "int32")
        out = []
        for t in range(self.seq_len):
            logits, h, c = net.step(inp, context[t], h, c)
            logp = ops.log_softmax(logits, axis=-1)
            out.append(ops.sum(logp * ops.one_hot(tokens[:, t], self.vocab_size), axis=-1))
            inp = tokens[:, t]
        return ops.stack(out, axis=1)

    def _draw(self, logits, u):
        """The token whose CDF interval holds the uniform u (inverse-CDF sampling), int32."""
        probs = ops.softmax(logits, axis=-1)
        cdf = ops.cumsum(probs, axis=-1)
        below = ops.cast(cdf < ops.cast(u, "float32")[:, None] * cdf[:, -1:], "int32")
        return ops.minimum(ops.sum(below, axis=-1), self.vocab_size - 1)

    def fill(self, tokens, mask, uniforms):
        """In-fills (B, T): visible tokens copied, missing ones drawn with the uniforms (B, T), int32."""
        tokens = ops.cast(tokens, "int32")
        missing = ops.cast(mask, "float32") > 0.5
        uniforms = ops.cast(uniforms, "float32")
        net = self.generator
        context, (h, c) = net.encode(self.masked_input(tokens, mask))
        inp = ops.full((ops.shape(tokens)[0],), self.vocab_size + 1, "int32")
        out = []
        for t in range(self.seq_len):
            logits, h, c = net.step(inp, context[t], h, c)
            inp = ops.where(missing[:, t], self._draw(logits, uniforms[:, t]), tokens[:, t])
            out.append(inp)
        return ops.stack(out, axis=1)

    def masked_mean(self, values, mask):
        mask = ops.cast(mask, "float32")
        return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)

    def mle_loss(self, tokens, mask):
        """The in-filling MLE loss: NLL per missing token (nats) under teacher forcing."""
        return -self.masked_mean(self.token_log_probs(tokens, mask), mask)

    def actor_loss(self, filled, mask, advantages):
        """REINFORCE with a baseline: -sum m_t A_t log G(x^_t | ...) / sum m_t, A held constant."""
        advantages = ops.stop_gradient(ops.cast(advantages, "float32"))
        return -self.masked_mean(self.token_log_probs(filled, mask) * advantages, mask)

    # === Discriminator and critic ===

    def discriminate(self, tokens, mask):
        """(logits (B, T) that each token is real, the decoder's state before reading it (B, T, H))."""
        tokens = ops.cast(tokens, "int32")
        net = self.discriminator
        context, (h, c) = net.encode(self.masked_input(tokens, mask))
        logits, states = [], []
        for t in range(self.seq_len):
            states.append(h)
            logit, h, c = net.step(tokens[:, t], context[t], h, c)
            logits.append(logit[:, 0])
        return ops.stack(logits, axis=1), ops.stack(states, axis=1)

    def baselines(self, states, mask):
        """The critic's value estimate b_t (B, T): a per-token reward v_t, from a linear head on the
        discriminator's states (held constant), times the discounted count of missing tokens from t on
        (known from the mask), so the head works at the scale of one reward (it starts at log 1/2)."""
        per_token = self.critic(ops.stop_gradient(states))[..., 0]
        return per_token * discounted_returns(mask, self.gamma)

    def rewards(self, logits, mask):
        """r_t = log D(x^_t) where missing, 0 where visible."""
        return -ops.softplus(-logits) * ops.cast(mask, "float32")

    def critic_loss(self, returns, baselines, mask):
        return self.masked_mean(ops.square(ops.stop_gradient(returns) - baselines), mask)

    def discriminator_loss(self, real, fake, mask, labels=None, training=True):
        """Cross-entropy of real vs filled tokens at missing positions: `(loss, logs)`."""
        real_logits, _ = self.discriminate(real, mask)
        fake_logits, _ = self.discriminate(fake, mask)
        loss = self.masked_mean(ops.softplus(-real_logits) + ops.softplus(fake_logits), mask)
        return loss, {}

    # === Schedule ===

    def phase_at(self, epoch):
        """The training phase of a (0-based) epoch: "mle" or "adversarial"."""
        if self.adversarial_epochs == 0 or epoch < self.pretrain_epochs:
            return "mle"
        return "adversarial"

    def set_phase(self, phase):
        """Switches the compiled training step to `phase`."""
        if phase not in PHASES:
            raise UsageError(f'unknown MaskGAN phase "{phase}"; choose one of {", ".join(PHASES)}.')
        if phase == "adversarial" and self.actor_learning_rate is not None and self.optimizer is not None:
            self.optimizer.generator_optimizer.learning_rate.assign(self.actor_learning_rate)
        if phase != self._phase:
            self._phase = phase
            self.train_function = None  # traced again for the new phase
            self.test_function = None

    # === Steps ===

    def _update_discriminator_and_critic(self, real, fake, mask, d_vars):
        """One update of the discriminator (cross-entropy) and the critic (squared error of the returns
        of the fill's rewards): their logs, with the rewards and advantages of the fill."""
        def d_loss_fn():
            real_logits, _ = self.discriminate(real, mask)
            fake_logits, states = self.discriminate(fake, mask)
            d_loss = self.masked_mean(ops.softplus(-real_logits) + ops.softplus(fake_logits), mask)
            rewards = ops.stop_gradient(self.rewards(fake_logits, mask))
            returns = discounted_returns(rewards, self.gamma)
            baselines = self.baselines(states, mask)
            c_loss = self.critic_loss(returns, baselines, mask)
            return d_loss + c_loss, {"d_loss": d_loss, "critic_loss": c_loss, "rewards": rewards,
                                     "advantages": ops.stop_gradient(returns - baselines)}

        (_, d_logs), grads = adversarial.value_and_grad(d_loss_fn, d_vars, has_aux=True)
        adversarial.apply_gradients(self.optimizer.discriminator_optimizer, grads, d_vars)
        return d_logs

    def adversarial_step(self, data):
        real, _ = self.unpack_batch(data)
        batch = ops.shape(real)[0]
        opt = self.optimizer
        g_vars, d_vars = self.generator_variables(), self.discriminator_variables()
        phase = self._phase or self.phase_at(0)
        with adversarial.no_grad():
            mask = self.draw_masks(batch)
        logs = {}
        if phase == "mle":
            nll, grads = adversarial.value_and_grad(lambda: self.mle_loss(real, mask), g_vars)
            adversarial.apply_gradients(opt.generator_optimizer, grads, g_vars)
            logs.update(g_loss=nll, nll=nll)
            if self.adversarial_epochs > 0:  # the discriminator and critic learn the MLE filler's fills
                with adversarial.no_grad():
                    fake = ops.stop_gradient(self.fill(real, mask, self._uniforms(batch)))
                d_logs = self._update_discriminator_and_critic(real, fake, mask, d_vars)
                logs.update(d_loss=d_logs["d_loss"], critic_loss=d_logs["critic_loss"])
        else:
            with adversarial.no_grad():
                fake = ops.stop_gradient(self.fill(real, mask, self._uniforms(batch)))
            for _ in range(self.d_steps):
                d_logs = self._update_discriminator_and_critic(real, fake, mask, d_vars)
            # The actor's rewards and baselines: the discriminator and critic as they judged this fill.
            rewards, advantages = d_logs.pop("rewards"), d_logs.pop("advantages")
            g_loss, grads = adversarial.value_and_grad(lambda: self.actor_loss(fake, mask, advantages), g_vars)
            adversarial.apply_gradients(opt.generator_optimizer, grads, g_vars)
            with adversarial.no_grad():
                logs.update(d_logs, g_loss=g_loss, reward=self.masked_mean(rewards, mask),
                            nll=self.mle_loss(real, mask))
        with adversarial.no_grad():
            opt.iterations.assign_add(1)
        return self._record(logs)

    def evaluation_step(self, data):
        """Validation: the masked-token NLL (`val_loss`; the validation perplexity is its exp)."""
        real, _ = self.unpack_batch(data)
        batch = ops.shape(real)[0]
        mask = self.draw_masks(batch)
        return self._record({"nll": self.mle_loss(real, mask)})

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

    # === Sampling, in-filling, likelihood ===

    def noise_spec(self, n):
        return [("uniform", (n, self.seq_len))]

    def sample_from_noise(self, u, labels=None):
        """Unconditional samples (int32 NumPy): fully masked sequences filled with uniforms `u` (n, T)."""
        fn = self.compiled_fn("sample", lambda u: self._fill_all(u))
        return fn(np.asarray(u, "float32"))

    def _fill_all(self, u):
        batch = ops.shape(u)[0]
        return self.fill(ops.zeros((batch, self.seq_len), "int32"), ops.ones((batch, self.seq_len), "float32"), u)

    def sample(self, n, seed=None, labels=None, temperature=1.0, batch_size=256, prompt=None):
        """`n` token sequences (int32, (n, T)): in-fills of fully masked sequences, or of sequences
        that start with `prompt` (token ids, at most T) and are missing the rest."""
        if temperature != 1.0:
            raise UsageError("MaskGAN samples at temperature 1 only.")
        if prompt is None:
            return super().sample(n, seed=seed, labels=labels, batch_size=batch_size).astype("int32")
        prompt = np.asarray(prompt).reshape(-1).astype("int32")
        if len(prompt) > self.seq_len:
            raise UsageError(f"the prompt has {len(prompt)} tokens, more than the model's {self.seq_len}.")
        tokens = np.zeros((n, self.seq_len), "int32")
        tokens[:, :len(prompt)] = prompt
        mask = np.ones((n, self.seq_len), "int32")
        mask[:, :len(prompt)] = 0
        return self.infill(tokens, mask, seed=seed, batch_size=batch_size)

    def infill(self, tokens, mask, seed=None, batch_size=256):
        """Fills the missing tokens (`mask` 1) of `tokens` (n, T); visible ones are copied. int32 (n, T)."""
        from kgen.data.sequences import check_tokens

        tokens = check_tokens(tokens, self.vocab_size, type(self).__name__).astype("int32")
        mask = np.broadcast_to(np.asarray(mask), tokens.shape)
        if not np.all((mask == 0) | (mask == 1)):
            raise DataError("the mask must hold 0 (visible) or 1 (missing) per token.")
        u = np.random.default_rng(seed).uniform(size=tokens.shape).astype("float32")
        fn = self.compiled_fn("infill", lambda t, m, u: self.fill(t, m, u))
        return self.batched(fn, [tokens, mask.astype("float32"), u], batch_size).astype("int32")

    def log_prob(self, x, labels=None, batch_size=256, seed=None):
        """log G(x) of each sequence in nats: exact for unconditional samples (all tokens missing)."""
        from kgen.data.sequences import check_tokens

        x = check_tokens(x, self.vocab_size, type(self).__name__).astype("int32")
        fn = self.compiled_fn("log_prob", lambda t: ops.sum(self.token_log_probs(t, ops.ones_like(t)), axis=1))
        return self.batched(fn, [x], batch_size)

    def masked_nll(self, x, seed=0, batch_size=256):
        """The NLL per missing token (teacher forcing) under masks drawn with `seed` by the model's
        strategy: (nats, tokens scored)."""
        from kgen.data.sequences import check_tokens

        x = check_tokens(x, self.vocab_size, type(self).__name__).astype("int32")
        u = np.random.default_rng(seed).uniform(size=x.shape).astype("float32")
        mask = np.asarray(ops.convert_to_numpy(self.masks_from_uniforms(u)), "float32")
        fn = self.compiled_fn("masked_logp", lambda t, m: ops.sum(self.token_log_probs(t, m) * m, axis=1))
        total = float(np.sum(self.batched(fn, [x, mask], batch_size)))
        return -total / max(float(mask.sum()), 1.0), int(mask.sum())

    def evaluate_extra(self, prepared, batch_size=256):
        """The masked-token NLL (and its perplexity) under the model's masks; the per-token NLL of the
        unconditional in-filler."""
        nll, count = self.masked_nll(prepared.x, seed=0, batch_size=batch_size)
        logp = self.log_prob(prepared.x, batch_size=batch_size)
        return {"masked_nll_per_token": nll, "masked_perplexity": float(np.exp(nll)), "masked_tokens": count,
                "nll_per_token": float(-np.mean(logp) / self.seq_len)}

    # === Export ===

    litert_endpoints = ("sample", "infill")

    def export_endpoints(self):
        """sample(uniforms (n, T)) -> tokens int32; infill(tokens int32, mask int32 (1 missing), uniforms)."""
        def sample(u):
            return self._fill_all(u)

        def infill(tokens, mask, u):
            return self.fill(tokens, ops.cast(mask, "float32"), u)

        spec = (None, self.seq_len)
        return {"sample": (sample, [(spec, "float32")]),
                "infill": (infill, [(spec, "int32"), (spec, "int32"), (spec, "float32")])}
