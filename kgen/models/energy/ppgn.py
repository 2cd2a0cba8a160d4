"""PPGN: Langevin-style sampling with a learned DAE prior and a classifier (Nguyen et al. 2017), at digits/MNIST scale.

Plug & Play Generative Networks sample an image of class y by following the
gradient of log p(x | y) = log p(x) + log p(y | x) - log p(y) with an
approximate Langevin sampler. The prior's gradient comes from a denoising
autoencoder: for a DAE R trained with Gaussian corruption of std s on the
squared error, R(x) - x ~ s^2 d log p_s(x) / dx, the score of the data
density smoothed by the corruption (Alain & Bengio 2014; exact for the
optimal R: R(x) = E[x0 | x0 + s eps = x], Miyasawa/Tweedie). The "DAE prior"
sampler (the paper's PPGN-x, Sec. 3.1 and Eq. 5, in pixel space) is

    x_{t+1} = x_t + eps1 (R(x_t) - x_t) + eps2 d log p(y | x_t) / dx_t + eps3 N(0, I),

with p(y | x) a classifier (the condition) and eps1, eps2, eps3 the paper's
three terms (prior, condition, noise), each free. Plain Langevin dynamics of
step delta on log p_s(x) + log p(y | x) is the special case
eps1 = delta / (2 s^2), eps2 = delta / 2, eps3 = sqrt(delta); the paper (and
this model's recipes) decouple the three for better samples. Every state is
clipped to the images' range [0, 1] (`clip`). With `final_denoise` the
sample is R(x_T), the DAE's estimate of the clean image behind the last state
(Tweedie's E[x0 | x_T]), not the noisy state itself.

What the sampler is: an *unadjusted* Langevin chain (ULA), as in the paper:
there is no Metropolis-Hastings correction (no MALA), because the DAE gives
only a score estimate, not a log-density the acceptance ratio needs
(R(x) - x is not even guaranteed to be a gradient field); with eps terms of
finite size the chain's samples are approximate. Each chain starts at
uniform noise and `sample` returns its state after `sample_steps` steps.

The model trains, with one loss in `fit`:

- the prior: an MLP DAE that reconstructs x from x + N(0, s^2 I) by the
  squared error summed over pixels (`dae_noise` = s; logged as `recon`);
- the condition: a small MLP classifier trained beside it by cross-entropy on
  the labels (weight `classifier_weight`; logged as `xent`), on inputs
  corrupted by N(0, `classifier_noise`^2 I) so that it also classifies the
  noisy images a chain visits and its input gradient is smooth.

The condition is this model's own classifier, not kgen's feature classifier
(the network behind domain FID and label accuracy in `kgen.metrics`): a
chain that climbs the judge's own log p(y | x) makes adversarial images the
judge accepts, so the judge must stay independent; and a model module does
not reach into the metrics floor. Level data (the 17-level digits) are
treated as intensities in [0, 1]: samples are continuous images in [0, 1].

#### References

- Nguyen, A., Clune, J., Bengio, Y., Dosovitskiy, A. & Yosinski, J. Plug &
  Play Generative Networks: Conditional Iterative Generation of Images in
  Latent Space. CVPR 2017.
- Alain, G. & Bengio, Y. What regularized auto-encoders learn from the
  data-generating distribution. JMLR 15, 2014.
- Vincent, P. A connection between score matching and denoising
  autoencoders. Neural Computation 23(7), 2011.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from kgen import backend
from kgen.backend.adversarial import input_gradient
from kgen.errors import DataError, UsageError
from kgen.models.base import GenerativeModel, MarkovChain
from kgen.registry import register_model

# Sampler steps per compiled call of `sample` (each block's noise is drawn up front: bounded memory).
SAMPLE_BLOCK = 50


@register_model("ppgn", family="energy", conditional=True,
                tiny=dict(hidden_units=(16,), classifier_units=(16,), sample_steps=4))
class PPGN(MarkovChain, GenerativeModel):
    """Plug & Play generative network (Nguyen et al. 2017): a DAE prior and a classifier steer a Langevin sampler.

    No likelihood: `kgen evaluate` reports FID/KID of samples with the split's
    label mix and their label accuracy (kgen's feature classifier), plus the
    DAE's squared error from corrupted inputs and this model's classifier
    accuracy (`evaluate_extra`: in `kgen evaluate --json`).

    Args:
        input_shape: shape of one example, e.g. `(8, 8, 1)`, values in [0, 1].
        num_levels: grey levels of the data (the model treats pixels as
            intensities in [0, 1] either way).
        num_classes: the number of classes y (required: `model.conditional = true`).
        hidden_units: hidden layers of the DAE's encoder (the decoder mirrors
            all but the last); the output is a sigmoid in [0, 1].
        activation: hidden activation of the DAE and the classifier.
        dae_noise: s, the std of the DAE's Gaussian corruption.
        classifier_units: hidden layers of the classifier (MLP).
        classifier_weight: weight of the classifier's cross-entropy in the loss.
        classifier_noise: std of the Gaussian noise on the classifier's
            training inputs (0: clean images only).
        eps1: the prior term's step, on R(x) - x (1: jump to the reconstruction).
        eps2: the condition term's step, on d log p(y | x) / dx.
        eps3: the std of the Gaussian noise added each step (`sample`'s
            `temperature` multiplies it).
        sample_steps: sampler steps from uniform noise.
        clip: clip every state to [0, 1].
        final_denoise: return R(x_T), the DAE's reconstruction of the last
            state (False: the state x_T itself, with its last noise).

    Example:

    >>> import kgen
    >>> data = kgen.load_dataset("digits")
    >>> ppgn = kgen.build_model("ppgn", input_shape=(8, 8, 1), num_levels=17, num_classes=10,
    ...                         hidden_units=(32,), classifier_units=(32,), sample_steps=10)
    >>> ppgn.compile(optimizer="adam")
    >>> _ = ppgn.fit((data.x[:64], data.y[:64]), epochs=1, batch_size=32, verbose=0)
    >>> ppgn.sample(4, seed=0, labels=3).shape
    (4, 8, 8, 1)
    """

    def __init__(
        self,
        input_shape,
        num_levels=None,
        num_classes=None,
        hidden_units=(256, 64),
        activation="relu",
        dae_noise=0.3,
        classifier_units=(256,),
        classifier_weight=1.0,
        classifier_noise=0.3,
        eps1=0.1,
        eps2=0.1,
        eps3=0.1,
        sample_steps=200,
        clip=True,
        final_denoise=True,
        **kwargs,
    ):
        if num_classes is None:
            raise UsageError("ppgn samples class-conditionally: it needs num_classes (a labelled data set and "
                             "model.conditional = true).")
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        for name, value in (("dae_noise", dae_noise), ("classifier_weight", classifier_weight),
                            ("classifier_noise", classifier_noise), ("eps1", eps1), ("eps2", eps2),
                            ("eps3", eps3)):
            if isinstance(value, bool) or not np.isfinite(float(value)) or not float(value) >= 0.0:
                raise UsageError(f"{name} must be a finite number >= 0, got {value}.")
        if not float(dae_noise) > 0:
            raise UsageError(f"dae_noise (the DAE's corruption std) must be > 0, got {dae_noise}.")
        if isinstance(sample_steps, bool) or int(sample_steps) != sample_steps or int(sample_steps) < 1:
            raise UsageError(f"sample_steps must be an integer >= 1, got {sample_steps}.")
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.classifier_units = tuple(int(u) for u in classifier_units)
        if not self.hidden_units or min(self.hidden_units + self.classifier_units) < 1:
            raise UsageError(f"hidden_units (one or more) and classifier_units must be positive sizes, got "
                             f"{list(hidden_units)} and {list(classifier_units)}.")
        self.activation = activation
        self.dae_noise = float(dae_noise)
        self.classifier_weight = float(classifier_weight)
        self.classifier_noise = float(classifier_noise)
        self.eps1, self.eps2, self.eps3 = float(eps1), float(eps2), float(eps3)
        self.sample_steps = int(sample_steps)
        self.clip = bool(clip)
        self.final_denoise = bool(final_denoise)

        # === Layers ===
        self.encoder = [layers.Dense(u, activation=activation, name=f"dae_encoder_{i}")
                        for i, u in enumerate(self.hidden_units)]
        self.decoder = [layers.Dense(u, activation=activation, name=f"dae_decoder_{i}")
                        for i, u in enumerate(self.hidden_units[:-1][::-1])]
        self.decoder_out = layers.Dense(self.num_dims, activation="sigmoid", name="dae_out")
        self.classifier_layers = [layers.Dense(u, activation=activation, name=f"classifier_{i}")
                                  for i, u in enumerate(self.classifier_units)]
        self.classifier_out = layers.Dense(self.num_classes, name="classifier_logits")

        # === State and metrics ===
        self.seed_generator = keras.random.SeedGenerator(0)
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.xent_tracker = keras.metrics.Mean(name="xent")
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        h = keras.KerasTensor((None, self.num_dims))
        for layer in self.encoder + self.decoder:
            h = layer(h)
        self.decoder_out(h)
        h = keras.KerasTensor((None, self.num_dims))
        for layer in self.classifier_layers:
            h = layer(h)
        self.classifier_out(h)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "dae_noise": self.dae_noise,
            "classifier_units": list(self.classifier_units),
            "classifier_weight": self.classifier_weight,
            "classifier_noise": self.classifier_noise,
            "eps1": self.eps1,
            "eps2": self.eps2,
            "eps3": self.eps3,
            "sample_steps": self.sample_steps,
            "clip": self.clip,
            "final_denoise": self.final_denoise,
        })
        return config

    # === The prior and the condition ===

    def _flat(self, x):
        return ops.reshape(ops.cast(x, "float32"), (-1, self.num_dims))

    def reconstruct_flat(self, x):
        """R(x): the DAE's reconstruction of flat images (n, D)."""
        h = x
        for layer in self.encoder + self.decoder:
            h = layer(h)
        return self.decoder_out(h)

    def logits_flat(self, x):
        """The classifier's logits of flat images (n, D)."""
        h = x
        for layer in self.classifier_layers:
            h = layer(h)
        return self.classifier_out(h)

    def log_p_y(self, x, labels):
        """log p(y | x) of flat images (n, D) and labels (n,)."""
        return ops.sum(ops.log_softmax(self.logits_flat(x), axis=-1) * self.one_hot_labels(labels), axis=-1)

    def step(self, x, z, labels, eps1=None, eps2=None, eps3=None):
        """One sampler step from flat images x (n, D) with standard normals z (n, D) (the module's formula).

        The eps terms default to the model's; a zero term is skipped (eps2 = 0: no classifier gradient).
        """
        eps1 = self.eps1 if eps1 is None else float(eps1)
        eps2 = self.eps2 if eps2 is None else float(eps2)
        eps3 = self.eps3 if eps3 is None else float(eps3)
        x = ops.convert_to_tensor(x, "float32")
        new = x
        if eps1:
            new = new + eps1 * (self.reconstruct_flat(x) - x)
        if eps2:
            new = new + eps2 * input_gradient(lambda a: self.log_p_y(a, labels), x)
        if eps3:
            new = new + eps3 * ops.convert_to_tensor(z, "float32")
        if self.clip:
            new = ops.clip(new, 0.0, 1.0)
        return ops.stop_gradient(new)

    def run_sampler(self, x, z, labels):
        """The state after `z.shape[1]` steps from flat images x (n, D); z (n, steps, D) standard normals."""
        labels = ops.convert_to_tensor(labels, "int32")

        def body(t, x):
            return self.step(x, ops.take(z, t, axis=1), labels)

        return ops.fori_loop(0, int(z.shape[1]), body, ops.convert_to_tensor(x, "float32"))

    def finish(self, x):
        """The sample of a chain's last flat state: R(x) with `final_denoise`, else x."""
        return self.reconstruct_flat(x) if self.final_denoise else x

    def chain_images(self, x0, z, labels, finish=True):
        """Images after `z.shape[1]` steps from images x0 (tensors), finished (`finish`) or the raw state."""
        x = self.run_sampler(self._flat(x0), z, labels)
        return ops.reshape(self.finish(x) if finish else x, (-1,) + self.data_shape)

    # === Training ===

    def call(self, inputs, training=False):
        x, labels = self.split_inputs(inputs)
        if labels is None:
            raise UsageError("ppgn trains its classifier on labels: fit it on (x, labels).")
        x = self._flat(x)
        noisy = x + self.dae_noise * keras.random.normal(ops.shape(x), seed=self.seed_generator)
        seen = x
        if self.classifier_noise > 0:
            seen = x + self.classifier_noise * keras.random.normal(ops.shape(x), seed=self.seed_generator)
        return {"recon": ops.sum(ops.square(self.reconstruct_flat(noisy) - x), axis=-1),
                "xent": -self.log_p_y(seen, labels)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.recon_tracker.update_state(y_pred["recon"])
        self.xent_tracker.update_state(y_pred["xent"])
        loss = ops.mean(y_pred["recon"]) + self.classifier_weight * ops.mean(y_pred["xent"])
        return backend.scale_loss_for_replicas(self.plus_layer_losses(loss))

    def check_data(self, data):
        super().check_data(data)
        lo, hi = float(np.min(data.x)), float(np.max(data.x))
        if lo < 0.0 or hi > 1.0:
            raise DataError(f"{data.name}: ppgn samples images in [0, 1], the data span [{lo:.3g}, {hi:.3g}]; "
                            'set data.scale = "unit".')

    # === The model's own outputs ===

    def reconstruct(self, x, batch_size=256):
        """R(x) of images (NumPy, the images' shape)."""
        fn = self.compiled_fn("reconstruct", lambda a: ops.reshape(self.reconstruct_flat(self._flat(a)),
                                                                   (-1,) + self.data_shape))
        return self.batched(fn, [np.asarray(x, "float32")], batch_size)

    def classify(self, x, batch_size=256):
        """The condition's class probabilities p(y | x) of images (NumPy (n, num_classes))."""
        fn = self.compiled_fn("classify", lambda a: ops.softmax(self.logits_flat(self._flat(a)), axis=-1))
        return self.batched(fn, [np.asarray(x, "float32")], batch_size)

    def evaluate_extra(self, prepared, batch_size=256):
        """The DAE's squared error from corrupted inputs (seeded) and the classifier's accuracy on clean data."""
        x = np.asarray(prepared.x, "float32")
        noisy = x + self.dae_noise * np.random.default_rng(0).standard_normal(x.shape).astype("float32")
        recon = self.reconstruct(noisy, batch_size)
        out = {"dae_squared_error": float(np.mean(np.sum((recon - x).reshape(len(x), -1) ** 2, axis=1)))}
        if prepared.y is not None:
            out["classifier_accuracy"] = float(np.mean(self.classify(x, batch_size).argmax(-1) == prepared.y))
        return out

    # === Sampling ===

    def noise_spec(self, n):
        """The chains' uniform starting images, then each step's standard normals."""
        return [("uniform", (n,) + self.data_shape), ("normal", (n, self.sample_steps, self.num_dims))]

    def sample_from_noise(self, x0, z, labels=None):
        """Samples after `z.shape[1]` sampler steps from the images x0 (`final_denoise`: R of the last state),
        conditioned on `labels` (n,)."""
        if labels is None:
            raise UsageError("ppgn samples class-conditionally: pass labels.")
        return self._chain_fn(int(np.shape(z)[1]), True)(
            np.asarray(x0, "float32"), np.asarray(z, "float32"), np.asarray(labels, "int32"))

    def _chain_fn(self, steps, finish):
        return self.compiled_fn(("chain", steps, finish), lambda a, b, l: self.chain_images(a, b, l, finish))

    def sample(self, n, seed=None, labels=None, temperature=1.0, batch_size=256):
        """`n` images of the classes `labels` (default: cycling through the classes) after `sample_steps` steps.

        Chains run in batches of `batch_size`, each from its own child of `seed`: a uniform start,
        then the normals of each block of steps drawn as the block starts (bounded memory); the same
        seed gives the same samples. `temperature` multiplies the noise term eps3.
        """
        labels = self._labels_for(int(n), labels)
        if not float(temperature) >= 0:
            raise UsageError(f"temperature must be >= 0, got {temperature}.")
        outs = []
        for i, child in enumerate(np.random.SeedSequence(seed).spawn(math.ceil(int(n) / batch_size))):
            rows = slice(i * batch_size, min(int(n), (i + 1) * batch_size))
            outs.append(self.run_chains(labels[rows], np.random.default_rng(child), temperature=temperature))
        return np.concatenate(outs)

    def run_chains(self, labels, rng, steps=None, temperature=1.0):
        """One chain per label from a uniform start, `steps` (default `sample_steps`) steps, NumPy noise from
        the Generator `rng`; returns the samples (NumPy: the last states, finished by `final_denoise`)."""
        steps = self.sample_steps if steps is None else int(steps)
        labels = np.asarray(labels, "int32")
        m = len(labels)
        x = rng.uniform(size=(m,) + self.data_shape).astype("float32")
        done = 0
        while done < steps:
            block = min(SAMPLE_BLOCK, steps - done)
            z = rng.standard_normal((m, block, self.num_dims)).astype("float32")
            if temperature != 1.0:
                z = z * np.float32(temperature)
            done += block
            x = backend.to_numpy(self._chain_fn(block, done == steps)(x, z, labels))
        return x

    # === Export ===

    litert_endpoints = ("reconstruct", "classify")

    def export_endpoints(self):
        """reconstruct(x) -> R(x); classify(x) -> p(y | x); sample(x0, z, labels) -> images after
        `sample_steps` steps (SavedModel only: the classifier's input gradient is not a LiteRT builtin)."""
        x_spec = ((None,) + self.data_shape, "float32")
        z_spec = ((None, self.sample_steps, self.num_dims), "float32")
        label_spec = ((None,), "int32")

        def reconstruct(x):
            return ops.reshape(self.reconstruct_flat(self._flat(x)), (-1,) + self.data_shape)

        def classify(x):
            return ops.softmax(self.logits_flat(self._flat(x)), axis=-1)

        def sample(x0, z, labels):
            return self.chain_images(x0, z, labels)

        return {"reconstruct": (reconstruct, [x_spec]), "classify": (classify, [x_spec]),
                "sample": (sample, [x_spec, z_spec, label_spec])}
