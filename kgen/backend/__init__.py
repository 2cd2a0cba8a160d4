"""The one place that knows which Keras backend runs and talks to it directly.

Model code uses `keras.ops`; what cannot be written with `keras.ops` alone
(converting to NumPy, checking that a family supports the backend, the
adversarial two-optimizer step of later families) lives here, dispatched once
at import time.
"""

import functools
import os

import keras
import numpy as np

from kgen.errors import BackendError

SUPPORTED = ("tensorflow", "jax", "torch")


def name():
    """The active Keras backend: "tensorflow", "jax" or "torch"."""
    return keras.config.backend()


def select(backend_name):
    """Chooses the backend for this process; must run before Keras is imported.

    Used by the CLI's `--backend`. Raises if Keras is already running another
    backend, since Keras cannot switch after import.
    """
    if backend_name not in SUPPORTED:
        raise BackendError(f'unknown backend "{backend_name}"; choose one of {", ".join(SUPPORTED)}.')
    os.environ["KERAS_BACKEND"] = backend_name
    if name() != backend_name:
        raise BackendError(
            f"Keras already runs the {name()} backend in this process; set "
            f"KERAS_BACKEND={backend_name} before importing keras."
        )


def require(supported, what):
    """Raises a clear error when the active backend is not in `supported`."""
    if name() not in supported:
        raise BackendError(
            f"{what} runs on the {' and '.join(supported)} backend"
            f"{'s' if len(supported) > 1 else ''}, not on {name()}. "
            f"Run with `kgen --backend {supported[0]} ...` or KERAS_BACKEND={supported[0]}."
        )


def steps_per_execution(requested):
    """Training steps per compiled call: Keras runs PyTorch one step per call and refuses more."""
    return 1 if name() == "torch" else int(requested)


def to_numpy(x):
    """Any backend tensor (or nested list of them) to a NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def track_variables(layer):
    """PyTorch: registers a built layer's weights again as its torch parameters (else: nothing).

    Keras registers them once, when the layer is built, in a dict keyed by each weight's path;
    weights added afterwards (`GenerativeModel.adding_state`) need this, as after Keras' `quantize`.
    """
    if name() == "torch":
        layer._track_variables()


# === Random numbers in training steps ===
#
# Keras' `keras.random.normal` on TensorFlow is `tf.random.stateless_normal`
# with the default algorithm, which XLA on a CPU runs far slower than a named
# one (bench/vae_xla_noise_probe.py: a minimal VAE's XLA step 1.6x faster with
# Philox). Philox is also what TensorFlow picks on a CPU without XLA, so
# runs without XLA draw exactly the numbers Keras would; the seed comes from the
# same `SeedGenerator`, so checkpoints still carry the random state.


def _tf_normal(shape, seed):
    import tensorflow as tf

    if not isinstance(seed, keras.random.SeedGenerator):
        return keras.random.normal(shape, seed=seed)
    seed = seed.next()
    if seed.dtype != tf.int32:  # as Keras does: stateless ops take int32 seeds under XLA
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), "int32")
    replica = _tf_replica_id()
    if replica is not None:  # tf.distribute: each replica draws its own noise for its rows
        seed = seed + tf.stack([tf.constant(0, "int32"), tf.cast(replica, "int32") * 1_000_003])
    return tf.random.stateless_normal(shape, seed=seed, alg="philox")


def _tf_replica_id():
    """This replica's id inside a `tf.distribute` step with several replicas, else None."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context.replica_id_in_sync_group


def _keras_normal(shape, seed):
    return keras.random.normal(shape, seed=seed)


def torch_rank_world():
    """(rank, world size) of a torch.distributed process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _torch_normal(shape, seed):
    # Under DDP rank r trains the r-th block of each global batch: it draws the global batch's noise
    # (the same on every rank, from the same seed state) and keeps its block, so the ranks draw
    # distinct noise and together the numbers one device would.
    rank, world = torch_rank_world()
    if world == 1 or not isinstance(seed, keras.random.SeedGenerator) or not len(shape):
        return keras.random.normal(shape, seed=seed)
    rows = int(shape[0])
    full = keras.random.normal((rows * world, *shape[1:]), seed=seed)
    return full[rank * rows:(rank + 1) * rows]


def random_normal(shape, seed):
    """Standard normal noise of `shape` for a training step, drawn from `seed` (a `SeedGenerator`).

    `keras.random.normal(shape, seed=seed)` on JAX and PyTorch; on TensorFlow the
    same stateless draw with the Philox algorithm named, which XLA runs fast.
    Under data parallelism the replicas draw distinct noise: TensorFlow folds
    the replica id into the seed; a PyTorch DDP rank keeps its rows' block of
    the global batch's draw (JAX's `keras.distribution` draws for the global
    batch anyway).
    """
    return _NORMAL(shape, seed)


_NORMAL = {"tensorflow": _tf_normal, "torch": _torch_normal}.get(name(), _keras_normal)


# === Losses under data parallelism ===
#
# tf.distribute sums the replicas' gradients, so a replica's loss must be its
# share: the mean over its rows divided by the replicas in sync (as Keras' own
# `Loss` classes do). `keras.distribution` (JAX) computes one global loss, and
# PyTorch has no distribution in Keras: nothing to scale there.


def _tf_replicas():
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def replicas_in_sync():
    """Replicas whose gradients a `tf.distribute` strategy sums (1 outside one, and on JAX and PyTorch)."""
    return _tf_replicas() if name() == "tensorflow" else 1


def scale_loss_for_replicas(loss):
    """A model's loss as the strategy's gradient sum needs it: `loss / replicas_in_sync()`.

    Every kgen `compute_loss` returns this; Keras' TensorFlow trainer logs the
    loss multiplied back (`unscale_loss_for_distribution`), so logs are unscaled.
    """
    replicas = replicas_in_sync()
    if replicas == 1:
        return loss
    return keras.ops.multiply(loss, keras.ops.cast(1.0 / replicas, loss.dtype))


def batch_moments(x, axes):
    """Mean and variance of `x` over `axes`, over the global batch under a `tf.distribute` strategy.

    Outside a strategy (and on JAX, whose `keras.distribution` computes on the
    global batch anyway, and PyTorch) `ops.mean` and `ops.var`; inside one with
    several replicas, the moments of the global batch from all-reduced sums
    (as `BatchNormalization(synchronized=True)` computes them, in two passes).
    """
    if name() == "tensorflow" and _tf_replica_id() is not None:
        return _tf_synchronized_moments(x, axes)
    return keras.ops.mean(x, axis=axes), keras.ops.var(x, axis=axes)


def _tf_synchronized_moments(x, axes):
    # Two passes, as `ops.var` computes it (mean, then the mean squared deviation): Keras' one-pass
    # E[x^2] - E[x]^2 loses digits to cancellation when the variance is small beside the mean.
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    total = functools.partial(context.all_reduce, tf.distribute.ReduceOp.SUM)
    count = total(tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), list(axes))), x.dtype))
    mean = total(tf.reduce_sum(x, axis=axes)) / count
    var = total(tf.reduce_sum(tf.square(x - mean), axis=axes)) / count
    return mean, var


# === One epoch of in-memory data for `fit` ===
#
# The trainer calls `fit` once per epoch (each epoch gets its own permutation
# and, with dynamic binarization, its own draw). On TensorFlow, Keras feeds
# NumPy arrays through a tf.data pipeline that autotunes, and deleting an
# autotuned iterator (which ends every `fit`) can block until the autotuner's
# next wake-up, whose sleep doubles from 10 ms (wake-ups ~10.2 and ~20.5 s after
# the iterator was made). bench/tf_data_iterator_release_probe.py: with that
# feed, 5 of 8 epochs of the k = 10 IWAE recipe waited 4-10 s after their last
# callback and took ~20.7 s instead of ~12.5 s; with this one, none did.


def _tf_batches(inputs, batch_size):
    import tensorflow as tf

    def floatx(a):  # as Keras' own pipeline does: floats arrive in floatx
        a = np.asarray(a)
        return a.astype(keras.config.floatx()) if np.issubdtype(a.dtype, np.floating) else a

    inputs = tuple(map(floatx, inputs)) if isinstance(inputs, tuple) else floatx(inputs)
    options = tf.data.Options()
    options.autotune.enabled = False
    # A 1-tuple element: Keras reads it as x alone (a tuple of arrays stays one multi-part x).
    return tf.data.Dataset.from_tensor_slices((inputs,)).batch(batch_size).prefetch(2).with_options(options)


def fit_data(inputs, batch_size):
    """`fit` keyword arguments for one pass over `inputs` (an array or a tuple of arrays), in order.

    TensorFlow: `x` a tf.data pipeline (batches in order, the last one partial,
    two prefetched) with tf.data's autotuning off, so `fit` returns when its
    data ends. JAX and PyTorch: the arrays and `batch_size`, as Keras takes them.
    """
    if name() != "tensorflow":
        return {"x": inputs, "batch_size": batch_size}
    return {"x": _tf_batches(inputs, batch_size)}


def validation_data(inputs, batch_size):
    """`fit` keyword arguments that evaluate `inputs` after each epoch, as `fit_data` feeds them."""
    if name() != "tensorflow":
        return {"validation_data": (inputs,), "validation_batch_size": batch_size}
    return {"validation_data": _tf_batches(inputs, batch_size)}


# === Compiled inference functions ===
#
# `fit` compiles the training step on every backend; evaluation and sampling
# loops (log-likelihood bounds, autoregressive samplers) compile through here.


def _tf_function(model, fn, jit_compile=False):
    import tensorflow as tf

    return tf.function(fn, reduce_retracing=True, jit_compile=jit_compile or None)


def _jax_function(model, fn, jit_compile=False):
    import jax

    variables = list(model.variables)

    def pure(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    jitted = jax.jit(pure)
    return lambda *args: jitted([v.value for v in variables], *args)


def _torch_function(model, fn, jit_compile=False):
    import torch

    def run(*args):
        with torch.no_grad():
            return fn(*[keras.ops.convert_to_tensor(a) for a in args])

    return run


_FUNCTION = {"tensorflow": _tf_function, "jax": _jax_function, "torch": _torch_function}[name()]


def function(model, fn, jit_compile=False):
    """Compiles `fn(*tensors)` that reads `model`'s variables, for inference.

    TensorFlow: `tf.function`, through XLA when `jit_compile` (worth it for
    loops of small in-place updates, such as cached autoregressive samplers:
    without XLA every `slice_update` copies the whole tensor). JAX: `jax.jit`
    of a pure function of the variables' current values (so the result
    follows training). PyTorch: eager under `no_grad`. `fn` must not create
    variables or draw random numbers: pass noise in as an argument.
    """
    return _FUNCTION(model, fn, jit_compile)
