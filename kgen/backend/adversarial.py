"""The per-backend adapter behind the adversarial (two-optimizer) training step.

Keras has no backend-agnostic step that updates two networks with two
optimizers. kgen writes that step once, in stateful style, in
`kgen.models.adversarial.base.AdversarialModel.adversarial_step`, and this
module supplies the few operations that differ per backend. The backend is
chosen once, at import time.

    value_and_grad(loss_fn, variables, has_aux=False)
        -> (loss[, aux]), grads
    input_gradient(fn, x)        d sum(fn(x)) / dx, differentiable again
                                 (WGAN-GP's gradient penalty)
    apply_gradients(optimizer, grads, variables)
    no_grad()                    a context in which no autodiff graph is built
    train_step(model, ...)       what `Model.train_step` runs
    test_step(model, ...)        what `Model.test_step` runs

- **TensorFlow**: a `tf.GradientTape` per `value_and_grad`; `train_step` is
  the model's stateful step (Keras compiles it with `tf.function`). Under a
  `tf.distribute` strategy the gradient is taken of the loss divided by the
  replicas in sync (the optimizer sums the replicas' gradients).
- **PyTorch**: `torch.autograd.grad` on the loss with respect to the player's
  parameters (`v.value`). Unlike `loss.backward()` this neither reads nor
  pollutes the other player's `.grad`, so there is nothing to clear. Under
  DDP (`kgen train --distribute`) it bypasses DDP's gradient hooks, so the
  gradients are averaged over the ranks with `torch.distributed.all_reduce`.
  Optimizer updates run under `torch.no_grad()`.
- **JAX**: Keras' `fit` jit-compiles a *pure* `train_step(state, data)` whose
  state is (trainable, non-trainable, optimizer, metric) values, with the
  variables themselves purged. `train_step` opens one `keras.StatelessScope`
  that maps every one of those variables to its value, runs the same stateful
  step inside it (assignments are recorded by the scope), and returns the
  values the scope holds at the end as the new state. `value_and_grad` is
  `jax.value_and_grad` of a pure function of the player's variable values: it
  runs `loss_fn` in a nested scope that again maps *every* variable (a nested
  scope does not fall through to the outer one) and returns the non-trainable
  values the loss changed (BatchNorm statistics, random seeds) as aux output,
  which are then assigned in the outer scope. Because `fit` threads only
  `model.optimizer.variables`, the model's optimizer must be one composite
  whose `variables` include both players' optimizers'
  (`kgen.models.adversarial.base.AdversarialOptimizer`).
"""

import contextlib
import threading

import keras

# The package, not names from it: the first `import keras` (kgen/backend/__init__.py) registers the
# models, which import this module while the package is still half-initialized.
from kgen import backend as _backend

_BACKEND = keras.config.backend()


def _zeros_for(grads, variables):
    return [g if g is not None else keras.ops.zeros(v.shape, v.dtype) for g, v in zip(grads, variables)]


def _split(out, has_aux):
    if has_aux:
        loss, aux = out
        return loss, aux
    return out, None


def _join(loss, aux, has_aux):
    return (loss, aux) if has_aux else loss


# === TensorFlow ===


def _tf_value_and_grad(loss_fn, variables, has_aux=False):
    import tensorflow as tf

    variables = list(variables)
    with tf.GradientTape() as tape:
        out = loss_fn()
        loss, aux = _split(out, has_aux)
        # tf.distribute sums the replicas' gradients: differentiate each replica's share of the
        # loss (kgen.backend.scale_loss_for_replicas); the loss returned for the logs is unscaled.
        scaled = _backend.scale_loss_for_replicas(loss)
    grads = tape.gradient(scaled, variables)
    return _join(loss, aux, has_aux), _zeros_for(grads, variables)


def _tf_input_gradient(fn, x):
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(fn(x))
    return tape.gradient(y, x)


def _tf_no_grad():
    # Outside a `value_and_grad` nothing is recorded on TensorFlow.
    return contextlib.nullcontext()


def _stateful_train_step(model, data):
    return model.adversarial_step(data)


def _stateful_test_step(model, data):
    with no_grad():
        return model.evaluation_step(data)


# === PyTorch ===


def _torch_value_and_grad(loss_fn, variables, has_aux=False):
    import torch

    variables = list(variables)
    with torch.enable_grad():
        out = loss_fn()
        loss, aux = _split(out, has_aux)
        params = [v.value for v in variables]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    loss = loss.detach()
    if has_aux:
        aux = keras.tree.map_structure(lambda t: t.detach() if hasattr(t, "detach") else t, aux)
    grads = _zeros_for(list(grads), variables)
    _, world = _backend.torch_rank_world()
    if world > 1:  # DDP (kgen.training.distribute): autograd.grad bypasses DDP's hooks; average here
        import torch.distributed as dist

        for g in grads:
            dist.all_reduce(g, op=dist.ReduceOp.AVG if dist.get_backend() == "nccl" else dist.ReduceOp.SUM)
        if dist.get_backend() != "nccl":  # gloo has no AVG
            grads = [g / world for g in grads]
    return _join(loss, aux, has_aux), grads


def _torch_input_gradient(fn, x):
    import torch

    with torch.enable_grad():
        x = keras.ops.convert_to_tensor(x)
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        y = fn(x).sum()
        # create_graph: the result stays differentiable (double backprop).
        (grad,) = torch.autograd.grad(y, x, create_graph=True)
    return grad


def _torch_no_grad():
    import torch

    return torch.no_grad()


# === JAX ===

_state = threading.local()


def _jax_step_variables():
    """Every variable mapped by the enclosing adversarial step, or None outside one."""
    stack = getattr(_state, "variables", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def _jax_step_context(variables):
    if not hasattr(_state, "variables"):
        _state.variables = []
    _state.variables.append(variables)
    try:
        yield
    finally:
        _state.variables.pop()


def _unique(variables):
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _jax_value_and_grad(loss_fn, variables, has_aux=False):
    import jax

    targets = list(variables)
    target_ids = {id(v) for v in targets}
    everything = _jax_step_variables()
    others = [] if everything is None else [v for v in everything if id(v) not in target_ids]
    # Read in the enclosing scope: the values the step has reached so far.
    target_values = [v.value for v in targets]
    other_values = [v.value for v in others]

    def pure(values):
        mapping = list(zip(targets, values)) + list(zip(others, other_values))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            out = loss_fn()
        loss, aux = _split(out, True) if has_aux else (out, None)
        updates = []
        for v, old in zip(others, other_values):
            new = scope.get_current_value(v)
            updates.append(None if new is None or new is old else new)
        return loss, (aux, updates)

    (loss, (aux, updates)), grads = jax.value_and_grad(pure, has_aux=True)(target_values)
    for v, new in zip(others, updates):
        if new is not None:
            v.assign(new)  # recorded by the enclosing StatelessScope
    return _join(loss, aux, has_aux), list(grads)


def _jax_input_gradient(fn, x):
    import jax
    import jax.numpy as jnp

    everything = _jax_step_variables()
    # Inside a step, `fn` runs in a nested scope that maps every variable to
    # its current value (read here, in the enclosing scope): whatever `fn`
    # assigns stays inside and no inner tracer leaks out.
    values = None if everything is None else [(v, v.value) for v in everything]

    def total(xx):
        if values is None:
            return jnp.sum(fn(xx))
        with keras.StatelessScope(state_mapping=values):
            return jnp.sum(fn(xx))

    return jax.grad(total)(jnp.asarray(x))


def _jax_no_grad():
    # Gradients exist only inside `jax.value_and_grad`; nothing to switch off.
    return contextlib.nullcontext()


def _state_values(scope, variables, values):
    out = []
    for v, old in zip(variables, values):
        new = scope.get_current_value(v)
        out.append(old if new is None else new)
    return out


def _jax_train_step(model, state, data):
    trainable, non_trainable, optimizer_values, metric_values = state
    groups = [
        (model.trainable_variables, trainable),
        (model.non_trainable_variables, non_trainable),
        (model.optimizer.variables, optimizer_values),
        (model.metrics_variables, metric_values),
    ]
    mapping = [pair for variables, values in groups for pair in zip(variables, values)]
    everything = _unique([v for v, _ in mapping])
    with keras.StatelessScope(state_mapping=mapping) as scope, _jax_step_context(everything):
        logs = model.adversarial_step(data)
    new_state = tuple(_state_values(scope, variables, values) for variables, values in groups)
    return logs, new_state


def _jax_test_step(model, state, data):
    trainable, non_trainable, metric_values = state
    groups = [
        (model.trainable_variables, trainable),
        (model.non_trainable_variables, non_trainable),
        (model.metrics_variables, metric_values),
    ]
    mapping = [pair for variables, values in groups for pair in zip(variables, values)]
    everything = _unique([v for v, _ in mapping])
    with keras.StatelessScope(state_mapping=mapping) as scope, _jax_step_context(everything):
        logs = model.evaluation_step(data)
    new_state = tuple(_state_values(scope, variables, values) for variables, values in groups)
    return logs, new_state


# === Dispatch (once, at import time) ===

if _BACKEND == "tensorflow":
    _value_and_grad, _input_gradient, _no_grad = _tf_value_and_grad, _tf_input_gradient, _tf_no_grad
    _train_step, _test_step = _stateful_train_step, _stateful_test_step
elif _BACKEND == "torch":
    _value_and_grad, _input_gradient, _no_grad = _torch_value_and_grad, _torch_input_gradient, _torch_no_grad
    _train_step, _test_step = _stateful_train_step, _stateful_test_step
elif _BACKEND == "jax":
    _value_and_grad, _input_gradient, _no_grad = _jax_value_and_grad, _jax_input_gradient, _jax_no_grad
    _train_step, _test_step = _jax_train_step, _jax_test_step
else:  # pragma: no cover (kgen.backend.SUPPORTED)
    raise ImportError(f"kgen's adversarial models do not support the {_BACKEND} backend")


def value_and_grad(loss_fn, variables, has_aux=False):
    """Evaluates `loss_fn()` and its gradient with respect to `variables`.

    Args:
        loss_fn: a function of no arguments that reads the variables and returns
            a scalar loss, or `(loss, aux)` when `has_aux`.
        variables: the Keras variables to differentiate (one player's).
        has_aux: whether `loss_fn` returns `(loss, aux)`.

    Returns:
        `(loss, grads)` or `((loss, aux), grads)`; `grads` is a list aligned
        with `variables` (zeros where the loss does not depend on a variable).
        Non-trainable state the loss changed (BatchNorm statistics, seeds) is
        kept on every backend.
    """
    return _value_and_grad(loss_fn, variables, has_aux)


def input_gradient(fn, x):
    """The gradient of `sum(fn(x))` with respect to the tensor `x`.

    Inside a `value_and_grad` loss the result is itself differentiable with
    respect to the variables `fn` reads (double backpropagation), as the
    WGAN-GP gradient penalty needs. When `fn` maps examples independently,
    row `i` of the result is the gradient of `fn(x)[i]` with respect to `x[i]`.
    """
    return _input_gradient(fn, x)


def no_grad():
    """A context in which no autodiff graph is recorded (PyTorch: `torch.no_grad`).

    Use it around work outside a loss function (generating fakes for the
    discriminator's step, metric updates). Inside a loss function use
    `keras.ops.stop_gradient`.
    """
    return _no_grad()


def apply_gradients(optimizer, grads, variables):
    """`optimizer.apply(grads, variables)`, outside any autodiff graph."""
    with _no_grad():
        optimizer.apply(list(grads), list(variables))


def train_step(model, *args):
    """`Model.train_step` for an adversarial model: runs `model.adversarial_step(data)`.

    TensorFlow and PyTorch call it with `(data)`; JAX with `(state, data)`,
    and it returns `(logs, new_state)` there.
    """
    return _train_step(model, *args)


def test_step(model, *args):
    """`Model.test_step`: runs `model.evaluation_step(data)` (no updates but metrics)."""
    return _test_step(model, *args)
