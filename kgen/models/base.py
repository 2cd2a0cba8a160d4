"""The base class every kgen model shares, and the model protocol in one place.

What a model may offer is stated here once, as documented default methods and
attributes of `GenerativeModel`; the harness (training, sampling, evaluation,
export, the CLI) asks `model.supports("name")` or reads the attributes, and never
probes a model with `hasattr`. A new model overrides what it offers:

| capability | methods / attributes | who uses it |
| --- | --- | --- |
| sampling (every model) | `noise_spec`, `sample_from_noise` (`sample`, `draw_noise` follow) | `kgen sample`, epoch grids, FID |
| a density | `log_prob` and `log_prob_kind` ("exact", "elbo" or "ais") | `kgen evaluate` (NLL, bits/dim) |
| a latent model's bounds | `score` (ELBO terms, importance-weighted bound) | `kgen evaluate` |
| training | `compile_for_training`, `fit_inputs` | `kgen train` |
| translation (image to image) | `translate`, `translation_panels` | `kgen sample`, epoch figures |
| latent walks | `interpolate`, `latent_arithmetic`, `draw_latents`; InfoGAN's `code_grid` | `kgen sample --interpolate / --code` |
| codes of data (an encoder) | `latent_codes`, `decode_latents`, `traverse` (`LatentWalks`) | `kgen evaluate` (linear probe), `kgen sample --traverse` |
| extra metrics | `evaluate_extra` | `kgen evaluate` |
| token sequences (data kind "sequence") | `decode_sequences` | `kgen sample --out FILE.txt` |
| Markov-chain sampling | `sample_chains` (`MarkovChain`) | `kgen sample --chains / --burn-in / --steps` |
| an AIS-estimated log Z | `configure_ais` | `kgen evaluate --ais-chains / --ais-betas` |
| edits toward a label | `edit` | `kgen sample --edit --label K` |
| a decoder's joint density | `latent_log_joint` (a standard normal prior over `latent_dim`) | `kgen evaluate --ais` (`kgen.metrics.ais`) |
| a 2-D density figure | `draws_density` | epoch figures of 2-D data |
| serving | `export_endpoints`, `litert_endpoints` | `kgen export` |
| labels | `num_classes` / `conditional`, `check_data`, `model_inputs` | every command |
"""

import collections
import contextlib
import math

import keras
import numpy as np

from kgen import backend
from kgen.errors import DataError, UsageError
from kgen.optimizers import make_optimizer


LOG_2PI = math.log(2.0 * math.pi)  # the Gaussian log-density's constant, for every family


class _FunctionCache:
    """Compiled helpers by key. A plain object, not a dict: TensorFlow would track a dict
    attribute and refuse to export a model whose `sample` had been compiled once."""

    def __init__(self):
        self._fns = {}

    def __contains__(self, key):
        return key in self._fns

    def __getitem__(self, key):
        return self._fns[key]

    def __setitem__(self, key, fn):
        self._fns[key] = fn

    def clear(self):
        self._fns.clear()


class GenerativeModel(keras.Model):
    """A generative model over fixed-shape examples.

    Subclasses implement `call()` and `compute_loss()` (so `fit` works
    unchanged on every backend) and `sample_from_noise()`; density models
    implement `log_prob()`.

    Args:
        input_shape: shape of one example, e.g. `(8, 8, 1)` or `(2,)`.
        num_levels: discrete values per pixel (2 for binary data), or None
            for continuous data.
        num_classes: number of label classes for a conditional model, or
            None.
    """

    # What `log_prob` returns: "exact" (autoregressive models, flows, small RBMs), "elbo"
    # (a bound: latent models), "ais" (an estimate through AIS's log Z: RBMs), or None for a
    # model without a density (GANs).
    log_prob_kind = None

    def __init__(self, input_shape, num_levels=None, num_classes=None, **kwargs):
        super().__init__(**kwargs)
        self.data_shape = tuple(int(d) for d in input_shape)
        self.num_levels = None if num_levels is None else int(num_levels)
        self.num_classes = None if num_classes is None else int(num_classes)
        self._kgen_fns = _FunctionCache()

    # === The protocol ===

    def supports(self, capability):
        """True when this model offers `capability`, a protocol method of this class.

        `model.supports("translate")`, `supports("score")`, `supports("interpolate")`, ...:
        a capability is offered when the model's class overrides the default below.
        """
        default = getattr(GenerativeModel, capability, None)
        if not callable(default):
            raise ValueError(f"{capability!r} is not a method of the model protocol (kgen.models.base).")
        return getattr(type(self), capability) is not default

    @property
    def has_likelihood(self):
        """True when the model scores data: `log_prob`, or a latent model's `score`."""
        return self.supports("log_prob") or self.supports("score")

    def compile_for_training(self, train_config, steps_per_epoch=None):
        """Compiles from a recipe's `[train]` table (how `kgen train` compiles every model).

        The default: one optimizer from `kgen.optimizers.make_optimizer` and the
        recipe's steps per execution (`kgen.backend.steps_per_execution`). Models
        with several optimizers (GANs: one per player) override this and build
        each through `make_optimizer` too.
        """
        self.compile(optimizer=make_optimizer(train_config, steps_per_epoch),
                     steps_per_execution=backend.steps_per_execution(train_config.get("steps_per_execution", 1)))

    def fit_inputs(self, x, labels=None, source=None):
        """What `fit` takes from prepared arrays: `x`, or `(x, labels)` for a conditional model.

        Image-to-image models override it: they train on the (source, target) pairs
        of a translation data set (`source` is the source image of each row of `x`).
        """
        return self.model_inputs(x, labels)

    def score(self, x, labels=None, batch_size=256, seed=0, iw_samples=0, progress=None):
        """A latent model's per-example bound terms in nats: `{"elbo", "recon", "kl"[, "iw_bound"]}`.

        `iw_samples` k > 0 adds the importance-weighted bound (Burda et al. 2016).
        """
        raise NotImplementedError(f"{type(self).__name__} has no variational bound to score.")

    def latent_log_joint(self, x, z, labels=None):
        """log p(z) and log p(x|z) per row (tensors (n,)) for aligned rows of x and z (n, latent_dim).

        A model whose prior is the standard normal over `latent_dim` dimensions and whose decoder
        has a likelihood offers it; `kgen.metrics.ais` then estimates log p(x) by AIS (Wu et al. 2017).
        """
        raise NotImplementedError(f"{type(self).__name__} has no decoder density to anneal to.")

    def edit(self, x, labels=None, batch_size=256):
        """Minimal edits of examples toward `labels` (latent_constraints): NumPy, the examples' shape."""
        raise NotImplementedError(f"{type(self).__name__} does not edit examples toward a label.")

    def translate(self, source, direction="a2b", batch_size=256):
        """An image-to-image model's translations of `source` images (NumPy)."""
        raise NotImplementedError(f"{type(self).__name__} does not translate images.")

    def translation_panels(self, source, target=None, direction="a2b", per_row=None):
        """(images, columns) of a source | translated (| target) grid (translation models)."""
        raise NotImplementedError(f"{type(self).__name__} does not translate images.")

    def interpolate(self, z_start, z_end, num_steps=8, method="slerp", labels=None):
        """`num_steps` samples along a path between two latent vectors (models with a latent input)."""
        raise NotImplementedError(f"{type(self).__name__} has no latent space to walk.")

    def latent_arithmetic(self, a, b, c, labels=None):
        """The example decoded (generated) at mean(a) - mean(b) + mean(c) in latent space (Radford et al. 2016)."""
        raise NotImplementedError(f"{type(self).__name__} has no latent space to walk.")

    def draw_latents(self, n, seed=None):
        """`n` latent codes drawn from the model's prior (NumPy), the ends of `kgen sample --interpolate`.

        The default is the first noise array of `draw_noise` (a GAN's z); latent models whose
        codes are not their first noise (categorical codes, an autoencoder's fitted Gaussian)
        override it.
        """
        return self.draw_noise(n, seed)[0]

    def latent_codes(self, x, labels=None, batch_size=256):
        """The codes of examples (NumPy `(n,) + latent_shape`): an encoder's features.

        A VAE's posterior mean, an autoencoder's code. `kgen evaluate` fits a linear probe
        on them where the data have labels; walks between data points start from them.
        """
        raise NotImplementedError(f"{type(self).__name__} has no encoder.")

    def decode_latents(self, z, labels=None, batch_size=256):
        """The decoder's mean examples for codes `z` (NumPy), deterministic."""
        raise NotImplementedError(f"{type(self).__name__} has no decoder of codes.")

    def traverse(self, x=None, dims=None, top_k=8, num_steps=7, span=3.0, base=None, labels=None):
        """A per-dimension traversal grid: one latent dimension swept per row, the others at a base code.

        Returns a `Traversal` (images row by row, the codes, the dimensions, the swept values).
        """
        raise NotImplementedError(f"{type(self).__name__} has no latent dimensions to traverse.")

    def code_grid(self, num_steps=8, code=0, seed=0):
        """Samples with the latent codes swept: categories in rows, one continuous code in columns."""
        raise NotImplementedError(f"{type(self).__name__} has no latent codes to sweep.")

    def evaluate_extra(self, prepared, batch_size=256):
        """Metrics of the model's own (a dict), added to `kgen evaluate`'s result."""
        raise NotImplementedError(f"{type(self).__name__} reports no metrics of its own.")

    def decode_sequences(self, tokens):
        """A sequence model's samples (int token ids `(n, T)`) as text, one string a sequence.

        Offered by models of sequence data (`Dataset.kind == "sequence"`): `kgen sample`
        writes their samples to `.txt`, one decoded sequence a line.
        """
        raise NotImplementedError(f"{type(self).__name__} does not model token sequences.")

    def configure_ais(self, chains=None, betas=None):
        """Sets the annealed-importance-sampling run behind an estimated log Z (`kgen evaluate --ais-*`)."""
        raise NotImplementedError(f"{type(self).__name__} estimates no log Z by AIS.")

    def sample_chains(self, chains, states, burn_in=None, every=1, seed=None, batch_size=256, labels=None):
        """A Markov-chain sampler's states: `(chains, states) + data_shape`, see `MarkovChain`
        (`labels`: one per chain, or one for all, for a conditional sampler)."""
        raise NotImplementedError(f"{type(self).__name__} does not sample by a Markov chain.")

    # A 2-D model whose `log_prob` is cheap draws its density beside data and samples
    # in each epoch's figure (`kgen.figures.write_epoch_figure`).
    draws_density = False

    # === Compile ===

    def compile(self, *args, **kwargs):
        # Keras records jit_compile resolved for the saving backend ("auto" ->
        # True on JAX and TensorFlow); a checkpoint loaded on PyTorch would then
        # turn on torch.compile. Keep the caller's choice so "auto" stays portable.
        self._requested_jit_compile = kwargs.get("jit_compile", "auto")
        super().compile(*args, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None and "jit_compile" in config:
            config["jit_compile"] = getattr(self, "_requested_jit_compile", "auto")
        return config

    def compile_from_config(self, config):
        # Keras skips compile on load when compile() is overridden; do what it would.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)  # so saved slots can load

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_shape": list(self.data_shape),
                "num_levels": self.num_levels,
                "num_classes": self.num_classes,
            }
        )
        return config

    # === Data ===

    @property
    def conditional(self):
        return self.num_classes is not None

    @property
    def num_dims(self):
        return int(np.prod(self.data_shape))

    def split_inputs(self, inputs):
        """`x` or `(x, labels)` -> (x, labels or None)."""
        if isinstance(inputs, (tuple, list)):
            x, labels = inputs
            return x, labels
        if isinstance(inputs, dict):
            return inputs["x"], inputs.get("labels")
        return inputs, None

    def check_data(self, data):
        """Raises `DataError` when a `Dataset` does not fit this model."""
        if data.shape != self.data_shape:
            raise DataError(
                f"{data.name}: examples have shape {data.shape}, the model expects "
                f"{self.data_shape}; train a new model on this data set."
            )
        if self.conditional and data.y is None:
            raise DataError(data.missing_labels("a conditional model"))
        bad = self._label_out_of_range(data.y) if self.conditional else None
        if bad is not None:
            raise DataError(
                f"{data.name}: label {bad} is out of range for a model with {self.num_classes} classes "
                f"(labels must lie in 0..{self.num_classes - 1})."
            )

    def model_inputs(self, x, labels=None):
        """What `fit` and `call` take: `x` or `(x, labels)`."""
        if self.conditional:
            if labels is None:
                raise UsageError(
                    f"{type(self).__name__} is conditional on {self.num_classes} classes: pass labels."
                )
            labels = np.asarray(labels, "int32")
            bad = self._label_out_of_range(labels)
            if bad is not None:
                raise DataError(f"labels must lie in 0..{self.num_classes - 1}, got {bad}.")
            return (x, labels)
        return x

    def plus_layer_losses(self, loss):
        """`loss` plus the losses layers added (`self.losses`: regularizers), as `compute_loss` returns it."""
        losses = self.losses
        return loss + keras.ops.sum(losses) if losses else loss

    def one_hot_labels(self, labels):
        """(batch,) integer labels -> (batch, num_classes) one-hot floats (any leading shape flattened)."""
        return keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(labels, (-1,)), "int32"), self.num_classes)

    def _labels_for(self, n, labels):
        if not self.conditional:
            if labels is not None:
                raise UsageError(f"{type(self).__name__} is not conditional: it takes no labels.")
            return None
        if labels is None:
            return np.arange(n, dtype="int32") % self.num_classes
        labels = np.broadcast_to(np.asarray(labels, "int32"), (n,))
        bad = self._label_out_of_range(labels)
        if bad is not None:
            raise UsageError(f"labels must lie in 0..{self.num_classes - 1}, got {bad}.")
        return labels

    def _label_out_of_range(self, labels):
        """The first offending label (the smallest if any is negative, else the largest), or None."""
        labels = np.asarray(labels)
        if labels.size == 0:
            return None
        if int(labels.min()) < 0:
            return int(labels.min())
        if int(labels.max()) >= self.num_classes:
            return int(labels.max())
        return None

    # === Adding state to a built model ===

    @contextlib.contextmanager
    def adding_state(self):
        """Adds layers or weights to a model its parent's `__init__` already built and locked.

        As Keras' own `quantize` does: the tracker is unlocked for the block, and on PyTorch the
        model's torch parameters are registered again afterwards (Keras registered them when the
        model was built; weights added later would be left out of `parameters()`, so `zero_grad`
        would never clear their gradients). Layers whose sub-layers build in `__init__` should
        create them under their own `keras.name_scope`, so that no two weights share a path.
        """
        self._tracker.unlock()
        try:
            yield
        finally:
            self._tracker.lock()
        backend.track_variables(self)

    # === Compiled helpers ===

    def compiled_fn(self, key, fn, jit_compile=False):
        """`fn` compiled once per model (see `kgen.backend.function`; `jit_compile`: XLA on TensorFlow)."""
        if key not in self._kgen_fns:
            self._kgen_fns[key] = backend.function(self, fn, jit_compile)
        return self._kgen_fns[key]

    def batched(self, fn, arrays, batch_size):
        """Applies `fn` to aligned NumPy arrays in batches; concatenates NumPy outputs."""
        n = len(arrays[0])
        outs = []
        for i in range(0, n, batch_size):
            out = fn(*[a[i : i + batch_size] for a in arrays])
            outs.append(out)
        if isinstance(outs[0], dict):
            return {k: np.concatenate([backend.to_numpy(o[k]) for o in outs]) for k in outs[0]}
        return np.concatenate([backend.to_numpy(o) for o in outs])

    # === Public API ===

    def noise_spec(self, n):
        """Shapes of the noise arrays `sample_from_noise` takes for `n` samples."""
        raise NotImplementedError

    def draw_noise(self, n, seed=None):
        """NumPy noise for `n` samples: standard normal for "normal", U[0,1) for "uniform"."""
        rng = np.random.default_rng(seed)
        out = []
        for kind, shape in self.noise_spec(n):
            if kind == "normal":
                out.append(rng.standard_normal(shape).astype("float32"))
            else:
                out.append(rng.uniform(size=shape).astype("float32"))
        return out

    def sample_from_noise(self, *noise, labels=None):
        """Deterministic map from noise (and labels) to samples."""
        raise NotImplementedError

    def sample(self, n, seed=None, labels=None, temperature=1.0, batch_size=256):
        """Draws `n` samples as a NumPy array in data space ([0, 1] images).

        Args:
            n: number of samples.
            seed: integer seed; the same seed gives the same samples.
            labels: class labels (int or array of `n`) for conditional models;
                default cycles through the classes.
            temperature: scales the latent or base noise (1.0: the model).
            batch_size: samples computed at once.
        """
        labels = self._labels_for(n, labels)
        noise = self.draw_noise(n, seed)
        if temperature != 1.0:
            noise = [z * temperature if kind == "normal" else z
                     for (kind, _), z in zip(self.noise_spec(n), noise)]
        arrays = list(noise) + ([labels] if labels is not None else [])

        def run(*batch):
            if labels is not None:
                return self.sample_from_noise(*batch[:-1], labels=batch[-1])
            return self.sample_from_noise(*batch)

        return self.batched(run, arrays, batch_size)

    def log_prob(self, x, labels=None, batch_size=256, seed=None):
        """Log-likelihood of each example in nats (see `log_prob_kind`)."""
        raise NotImplementedError

    # === Export ===

    # Endpoints that convert to LiteRT with builtin ops only.
    litert_endpoints = ()

    def export_endpoints(self):
        """Serving endpoints: `{name: (fn, [(shape, dtype), ...])}`.

        Each `fn` takes tensors (batch dimension None) and returns a tensor or a
        dict of tensors. Randomness comes in as inputs (noise, uniforms), so the
        exported graphs hold no random ops.
        """
        return {}



# === Markov-chain sampling (RBMs and the other chain samplers) ===


def chain_schedule(chains, states, burn_in, every):
    """The step counts (1-based) at which a chain's `states` states are recorded: `burn_in`,
    `burn_in + every`, ...; validates the `sample_chains` arguments (one-line UsageErrors)."""
    for name, value, low in (("chains", chains, 1), ("states", states, 1), ("every", every, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise UsageError(f"{name} must be an integer >= {low}, got {value}.")
    if isinstance(burn_in, bool) or not isinstance(burn_in, (int, np.integer)) or burn_in < 1:
        raise UsageError(f"--burn-in must be a number of steps >= 1, got {burn_in}.")
    return [int(burn_in) + k * int(every) for k in range(int(states))]


class MarkovChain:
    """`sample_chains` for a model whose `sample` runs a Markov chain of `sample_steps` steps.

    Mix in before `GenerativeModel`. The model's `noise_spec(n)` must give the chain's start
    first, then arrays `(n, sample_steps, ...)` holding one slice per step, and its
    `sample_from_noise` must run as many steps as those arrays hold (the RBMs', PPGN's). A
    chain's state after t steps is then the sample of the first t slices of the same noise, so
    the recorded states of one chain are states of one trajectory.
    """

    def sample_chains(self, chains, states, burn_in=None, every=1, seed=None, batch_size=256, labels=None):
        """`chains` chains from random starts; each records `states` states, after `burn_in`
        steps (default: the model's `sample_steps`) and then every `every` steps. A conditional
        sampler takes `labels` (one per chain, or one for all; default: cycling through the classes).

        Returns NumPy `(chains, states) + data_shape` (the samples' space, as `sample`).
        """
        steps = chain_schedule(chains, states, self.sample_steps if burn_in is None else burn_in, every)
        labels = self._labels_for(int(chains), labels)
        saved = self.sample_steps
        self.sample_steps = steps[-1]
        try:
            start, *per_step = self.draw_noise(int(chains), seed)
        finally:
            self.sample_steps = saved
        out = []
        for t in steps:
            noise = [start] + [a[:, :t] for a in per_step]
            if labels is None:
                out.append(self.batched(lambda *batch: self.sample_from_noise(*batch), noise, batch_size))
            else:
                out.append(self.batched(lambda *batch: self.sample_from_noise(*batch[:-1], labels=batch[-1]),
                                        noise + [labels], batch_size))
        return np.stack(out, axis=1)


class PhasedFit:
    """`fit` split into one Keras `fit` call per training phase (SeqGAN, MaskGAN, latent constraints, DBM).

    Mix in before the model's base class. The model gives `phase_at(epoch)`, the phase of a 0-based
    epoch, and `set_phase(phase)`, which switches its compiled step; each call covers the run of
    epochs that share a phase, so a resumed run enters the right phase at any epoch.
    """

    def fit(self, x=None, y=None, epochs=1, initial_epoch=0, **kwargs):
        """`keras.Model.fit`, split into one call per training phase."""
        epochs, start = int(epochs), int(initial_epoch)
        if start >= epochs:
            return super().fit(x, y, epochs=epochs, initial_epoch=start, **kwargs)
        history = None
        while start < epochs:
            phase = self.phase_at(start)
            end = start + 1
            while end < epochs and self.phase_at(end) == phase:
                end += 1
            self.set_phase(phase)
            history = super().fit(x, y, epochs=end, initial_epoch=start, **kwargs)
            start = end
        return history


# === Latent walks (every family with a latent space) ===


def interpolate_latents(z_start, z_end, num_steps=8, method="slerp"):
    """`num_steps` latents from `z_start` to `z_end`, spherical ("slerp") or "linear".

    Both ends are included; the latents are flattened, so the result is `(num_steps, size)`.
    """
    a = np.asarray(z_start, "float64").reshape(-1)
    b = np.asarray(z_end, "float64").reshape(-1)
    if a.shape != b.shape:
        raise UsageError(f"the two ends of a walk must have one shape, got {a.size} and {b.size} values.")
    if isinstance(num_steps, bool) or int(num_steps) < 2:
        raise UsageError(f"a walk needs at least 2 steps, got {num_steps}.")
    t = np.linspace(0.0, 1.0, int(num_steps))[:, None]
    if method == "linear":
        return ((1 - t) * a + t * b).astype("float32")
    if method != "slerp":
        raise UsageError(f'unknown interpolation "{method}"; choose "slerp" or "linear".')
    cos = np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:  # (anti)parallel within rounding: linear is exact enough
        return ((1 - t) * a + t * b).astype("float32")
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype("float32")


Traversal = collections.namedtuple("Traversal", ["images", "codes", "dims", "values"])
Traversal.__doc__ = """A traversal grid: `images` (rows * columns, ...) row by row, `codes` (rows, columns) + latent
shape, `dims` (the latent dimension of each row), `values` (rows, columns) (the swept values)."""


class LatentWalks:
    """Latent walks for every model with an encoder and a decoder (the VAE family, autoencoders).

    Mix in before `GenerativeModel` (`class VAE(LatentWalks, GenerativeModel)`): the model then
    offers `latent_codes`, `decode_latents`, `interpolate`, `latent_arithmetic` and `traverse`
    (`supports(...)` is true for each). It supplies:

    - `latent_shape`: the shape of one code (a tuple);
    - `code_of(x, labels)`: the code of a batch (tensors; a VAE's posterior mean);
    - `decode(z, labels)`: the decoder's mean examples (tensors);
    - optionally `latent_location()`: the prior's centre and scale per dimension (default
      0 and 1: a standard-normal prior), `latent_activity(x, labels)`: how much each
      dimension is used (default: the variance of the codes of `x`), `traversal_codes(...)`,
      `draw_latents(n, seed)`, `walk_methods` (the paths it offers, the default first).

    A traversal (Higgins et al. 2017) sweeps one dimension per row over
    centre + v * scale, v in linspace(-span, span, num_steps) (prior standard deviations),
    with every other dimension at the base code; rows are the `top_k` most active
    dimensions (`latent_activity` over `x`; in index order when no data are given and the
    model needs data to rank).
    """

    walk_methods = ("slerp", "linear")  # the paths `interpolate` offers, its default first

    def _walk_labels(self, n, labels, what):
        if not self.conditional:
            if labels is not None:
                raise UsageError(f"{type(self).__name__} is not conditional: it takes no labels.")
            return np.zeros(n, "int32")
        if labels is None:
            raise UsageError(f"{type(self).__name__} is conditional on {self.num_classes} classes: "
                             f"pass labels to {what} (kgen sample --label).")
        return self._labels_for(n, labels)

    def latent_codes(self, x, labels=None, batch_size=256):
        """The code of each example (NumPy `(n,) + latent_shape`): see `code_of`."""
        x = np.asarray(x, "float32")
        labs = self._walk_labels(len(x), labels, "encode")
        fn = self.compiled_fn("latent_codes", lambda a, l: self.code_of(a, l if self.conditional else None))
        return self.batched(fn, [x, labs], batch_size)

    def decode_latents(self, z, labels=None, batch_size=256):
        """The decoder's mean examples for codes `z` (NumPy, `(n,) + latent_shape` or flattened)."""
        z = np.asarray(z, "float32").reshape((-1,) + tuple(self.latent_shape))
        labs = self._walk_labels(len(z), labels, "decode")
        fn = self.compiled_fn("decode_latents", lambda a, l: self.decode(a, l if self.conditional else None))
        return self.batched(fn, [z, labs], batch_size)

    def interpolate(self, z_start, z_end, num_steps=8, method=None, labels=None):
        """Decoded examples along a path from code `z_start` to code `z_end`, both ends included.

        Args:
            z_start, z_end: codes (`latent_shape`): prior draws (`draw_latents`) or the
                codes of two examples (`latent_codes`).
            num_steps: points on the path.
            method: "slerp" or "linear"; None: the model's default (`walk_methods[0]`).
            labels: one label for a conditional model.

        Returns:
            A NumPy array `(num_steps,) + input_shape`.
        """
        method = method or self.walk_methods[0]
        if method not in self.walk_methods:
            raise UsageError(f'{type(self).__name__} walks its codes by {" or ".join(self.walk_methods)}, '
                             f'not "{method}".')
        z = interpolate_latents(z_start, z_end, num_steps, method)
        return self.decode_latents(z, labels)

    def latent_arithmetic(self, a, b, c, labels=None):
        """The example decoded at mean(a) - mean(b) + mean(c) (each a code or a group of codes)."""
        size = int(np.prod(self.latent_shape))
        a, b, c = (np.asarray(v, "float32").reshape(-1, size) for v in (a, b, c))
        z = a.mean(axis=0) - b.mean(axis=0) + c.mean(axis=0)
        return self.decode_latents(z[None], None if labels is None else np.asarray(labels).reshape(-1)[:1])[0]

    @property
    def traversal_units(self):
        """How many rows a traversal can have: the latent dimensions (Concrete VAE: its variables)."""
        return int(np.prod(self.latent_shape))

    def latent_location(self):
        """(centre, scale) of the prior per dimension, each `latent_shape`: N(0, I) by default."""
        shape = tuple(self.latent_shape)
        return np.zeros(shape, "float32"), np.ones(shape, "float32")

    def latent_activity(self, x=None, labels=None):
        """How much each latent dimension is used (`latent_shape`), or None without data.

        The default: the variance of the codes of `x` over the examples (Burda et al.'s
        activity statistic for a VAE's posterior means).
        """
        if x is None:
            return None
        return np.var(self.latent_codes(x, labels), axis=0)

    def traversal_codes(self, base, dims, num_steps=7, span=3.0):
        """Codes of a traversal grid `(len(dims), num_steps) + latent_shape` and the values swept.

        Row r is `base` with dimension `dims[r]` (a flat index) set to centre + v * scale,
        v in linspace(-span, span, num_steps).
        """
        centre, scale = (np.asarray(a, "float32").reshape(-1) for a in self.latent_location())
        v = np.linspace(-float(span), float(span), int(num_steps), dtype="float32")
        codes = np.repeat(np.repeat(np.asarray(base, "float32").reshape(1, 1, -1), len(dims), 0), len(v), 1)
        values = np.empty((len(dims), len(v)), "float32")
        for r, d in enumerate(dims):
            values[r] = centre[d] + v * scale[d]
            codes[r, :, d] = values[r]
        return codes.reshape((len(dims), len(v)) + tuple(self.latent_shape)), values

    def traverse(self, x=None, dims=None, top_k=8, num_steps=7, span=3.0, base=None, labels=None):
        """A per-dimension traversal grid (see the class docstring).

        Args:
            x: examples that rank the dimensions by `latent_activity` (and whose first code
                is the base when `base` is None); None: the prior's centre is the base and
                dimensions go in index order unless the model ranks them without data.
            dims: the dimensions (flat indices) of the rows; default the `top_k` most active.
            top_k: rows when `dims` is None.
            num_steps: columns (values swept).
            span: the sweep's half-width in prior standard deviations.
            base: the code every other dimension keeps (`latent_shape`).
            labels: one label for a conditional model (used for `x` and the decoder).

        Returns:
            A `Traversal`: images `(rows * num_steps,) + input_shape`, row by row.
        """
        size = self.traversal_units
        if isinstance(num_steps, bool) or int(num_steps) < 2:
            raise UsageError(f"a traversal needs at least 2 values a row, got {num_steps}.")
        if not float(span) > 0:
            raise UsageError(f"the traversal span must be > 0 (prior standard deviations), got {span}.")
        label_row = None if labels is None else np.asarray(labels).reshape(-1)[:1]
        if dims is None:
            if isinstance(top_k, bool) or int(top_k) < 1:
                raise UsageError(f"top_k must be a positive number of rows, got {top_k}.")
            xl = None if (x is None or label_row is None) else np.repeat(label_row, len(x))
            activity = self.latent_activity(x, xl)
            order = np.arange(size) if activity is None else np.argsort(-np.asarray(activity).reshape(-1), kind="stable")
            dims = order[: min(int(top_k), size)]
        dims = [int(d) for d in np.asarray(dims).reshape(-1)]
        bad = [d for d in dims if not 0 <= d < size]
        if bad:
            raise UsageError(f"latent dimension {bad[0]} is out of range: the codes have {size} dimensions.")
        if base is None:
            base = (self.latent_codes(np.asarray(x)[:1], label_row)[0] if x is not None
                    else self.latent_location()[0])
        codes, values = self.traversal_codes(base, dims, num_steps, span)
        flat = codes.reshape((-1,) + tuple(self.latent_shape))
        images = self.decode_latents(flat, None if label_row is None else np.repeat(label_row, len(flat)))
        return Traversal(images, codes, np.asarray(dims), values)
