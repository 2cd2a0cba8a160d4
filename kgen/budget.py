"""A parameter budget: a model too large to hold is refused before its weights take memory.

Every Keras layer makes its weights through `Layer.add_weight(shape=...)`, which knows the shape
before it allocates anything. Inside `parameter_budget(limit)`, each such call adds its shape's size
to a count, and the call that would take the count past `limit` raises `ParameterBudgetError`
instead of allocating: `model.hidden_units = [40000, 40000]` is refused in a second with the weight
that broke the budget and the key to change, not by the allocator tens of seconds and 20 GB later.

Two callers:

- `kgen train` builds the recipe's model under `train.max_parameters` (`DEFAULT_MAX_PARAMETERS`).
- `kgen.load_model` builds a checkpoint's model under the number of values its archive stores
  (`stored_parameters`): a `.keras` file whose config asks for more weights than it holds is
  corrupted or crafted, and is refused before the model exists.

The count covers layer weights (what `model.count_params()` and the saved weights hold); optimizer
slots (Adam: two more of each) and activations come on top, so the memory a training run needs is
about 16 bytes a parameter in float32, plus activations.

    >>> import keras
    >>> with parameter_budget(1000):
    ...     keras.layers.Dense(10).build((None, 8))  # 90 values: within the budget
    >>> try:
    ...     with parameter_budget(1000, sizes={"model.hidden_units": [4000]}):
    ...         keras.layers.Dense(4000, name="hidden").build((None, 8))
    ... except ParameterBudgetError as e:
    ...     print(str(e).split(";")[0])
    the model needs more than 1,000 parameters (weight 'hidden/kernel' of shape (8, 4000) alone holds 32,000
"""

import contextlib
import math
import threading

from keras.src.layers.layer import Layer  # the class behind `keras.layers.Layer`

from kgen.errors import ConfigError

DEFAULT_MAX_PARAMETERS = 250_000_000  # 1 GB of float32 weights, ~4 GB to train with Adam

_state = threading.local()  # the budgets in force on this thread, innermost last
_keras_add_weight = Layer.add_weight


class ParameterBudgetError(ConfigError):
    """A model's weights would pass the parameter budget; raised before the weight is allocated."""


class _Budget:
    def __init__(self, limit, sizes, raise_hint):
        self.limit = int(limit)
        self.sizes = dict(sizes or {})
        self.raise_hint = raise_hint
        self.count = 0

    def charge(self, layer, shape, name):
        size = math.prod(int(d) for d in shape)
        self.count += size
        if self.count <= self.limit:
            return
        what = "/".join(part for part in (getattr(layer, "name", None), name) if part)
        keys = _keys_for(shape, self.sizes)
        change = f"lower the sizes that make it ({', '.join(keys)})" if keys else "lower the model's sizes"
        raise ParameterBudgetError(
            f"the model needs more than {self.limit:,} parameters (weight '{what}' of shape "
            f"{tuple(int(d) for d in shape)} alone holds {size:,}; about {_gigabytes(self.count)} GB of "
            f"float32 weights so far, about 4 times that to train); {change}, or {self.raise_hint}."
        )


def _gigabytes(count):
    return f"{4 * count / 1e9:.1f}"


def _keys_for(shape, sizes):
    """The size keys most likely behind `shape`'s largest dimension, named in the error.

    A weight's largest dimension is a size key's value or a small multiple of it (2 x latent_dim for a
    mean and a scale, levels x pixels for an output layer, classes + features for a one-hot input):
    the keys whose value comes closest to it from below.
    """
    largest = max((int(d) for d in shape), default=0)
    scores = {}
    for key, value in sizes.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and 1 < v <= largest]
        if ints:
            scores[key] = max(ints) / largest
    best = max(scores.values(), default=0.0)
    if best < 1e-3:
        return []
    return [f"{key} = {list(sizes[key]) if isinstance(sizes[key], (list, tuple)) else sizes[key]}"
            for key, score in scores.items() if score == best]


def _budgeted_add_weight(self, *args, shape=None, name=None, **kwargs):
    budgets = getattr(_state, "budgets", None)
    if budgets:
        weight_shape = shape if shape is not None else (args[0] if args and not isinstance(args[0], str) else ())
        try:
            dims = tuple(int(d) for d in (weight_shape or ()))
        except (TypeError, ValueError):
            dims = None  # an odd shape: Keras reports it
        if dims is not None:
            for budget in budgets:
                budget.charge(self, dims, name)
    return _keras_add_weight(self, *args, shape=shape, name=name, **kwargs)


_budgeted_add_weight.__doc__ = _keras_add_weight.__doc__
_budgeted_add_weight.__wrapped__ = _keras_add_weight
Layer.add_weight = _budgeted_add_weight  # a no-op wrapper unless a budget is in force on this thread


@contextlib.contextmanager
def parameter_budget(limit, sizes=None, raise_hint=None):
    """Refuses, before allocation, any weight that takes this block's parameter count past `limit`.

    Args:
        limit: the most parameters (layer weights' values) the block may create.
        sizes: `{"model.hidden_units": [40000, 40000], ...}`: the config's size keys; those whose
            values appear in the offending weight's shape are named in the error as the keys to lower.
        raise_hint: how a user raises the limit, ending the error.
    """
    budget = _Budget(limit, sizes, raise_hint or f"raise train.max_parameters (now {int(limit):,})")
    stack = getattr(_state, "budgets", None)
    if stack is None:
        stack = _state.budgets = []
    stack.append(budget)
    try:
        yield budget
    finally:
        stack.remove(budget)


def stored_parameters(weights_file):
    """The number of values a Keras weights file (`model.weights.h5`, open or a path) stores.

    Reads dataset shapes from the HDF5 headers only: no weight data is read.
    """
    import h5py

    total = 0

    def visit(_, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += math.prod(int(d) for d in obj.shape)

    with h5py.File(weights_file, "r") as f:
        f.visititems(visit)
    return total
