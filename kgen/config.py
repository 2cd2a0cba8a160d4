"""Strict TOML recipes.

A recipe has four tables: `[model]` (`name` plus the model's own
hyper-parameters, checked against its constructor), `[data]`, `[train]` and
`[evaluate]`. Any key that does not exist, at any depth, is an error naming
its full path with a did-you-mean; a wrong type names the key and the type
expected. `--set table.key=value` overrides one key with the same checks.
The resolved config is written to every run folder, and
`kgen train --config <that file>` repeats the run.
"""

import copy
import importlib.resources
import inspect
import math
import pathlib
import tomllib

from kgen.budget import DEFAULT_MAX_PARAMETERS
from kgen.data import toy2d
from kgen.data.pipeline import DATA_DEFAULTS
from kgen.errors import ConfigError, did_you_mean

DEFAULTS = {
    "description": "",
    "model": {"name": "vae", "conditional": False},  # + the model's own arguments
    "data": dict(DATA_DEFAULTS),  # kgen.data.pipeline owns the [data] table
    "train": {
        "epochs": 20,
        "batch_size": 64,
        "optimizer": "adam",  # adam | adamw | sgd | rmsprop
        "learning_rate": 1e-3,
        "lr_schedule": "constant",  # constant | cosine (decays to 0 over train.epochs)
        "clipnorm": 0.0,  # 0: off
        "steps_per_execution": 8,  # steps per compiled call (amortizes Python overhead)
        "xla": "auto",  # TensorFlow's training step through XLA: auto (Keras: on with a GPU) | on | off
        "seed": 0,
        "grid_size": 64,  # samples in each epoch's grid
        "checkpoint_metric": "val_loss",  # "best.keras" keeps the lowest
        "max_parameters": DEFAULT_MAX_PARAMETERS,  # larger models are refused before allocation (kgen.budget)
        "distribute": "off",  # off | data_parallel (kgen.training.distribute)
        "devices": 0,  # data_parallel: devices per process (0: every local GPU, else every CPU device)
    },
    "evaluate": {
        "split": "test",
        "batch_size": 256,
        "iw_samples": 5000,  # k of the importance-weighted bound (latent models)
        "num_samples": 0,  # samples drawn for FID/KID (0: as many as the split has examples)
        "kid_subsets": 100,  # KID: random subsets averaged (Binkowski et al. 2018)
        "kid_subset_size": 1000,  # KID: examples per subset (capped at the smaller set)
        "feature_classifier": "",  # FID/KID feature network (.keras); "": the shipped/cached one for the data set
    },
}

CHOICES = {
    ("data", "binarize"): ("none", "static", "dynamic"),
    ("data", "scale"): ("unit", "symmetric"),
    ("data", "tokens"): ("char", "word"),
    ("train", "optimizer"): ("adam", "adamw", "sgd", "rmsprop"),
    ("train", "lr_schedule"): ("constant", "cosine"),
    ("train", "xla"): ("auto", "on", "off"),
    ("train", "distribute"): ("off", "data_parallel"),
    ("evaluate", "split"): ("train", "valid", "test"),
}

MAX_SEED = 2**32 - 1  # NumPy's and Keras' seeds are unsigned 32-bit

# (lowest, highest, highest included): the values a number key may take; None is unbounded.
RANGES = {
    ("data", "valid_fraction"): (0, 1, False),
    ("data", "test_fraction"): (0, 1, False),
    ("data", "split_seed"): (0, MAX_SEED, True),
    ("data", "max_examples"): (0, None, True),
    ("data", "logit_alpha"): (0, 0.5, False),
    ("data", "max_pixels"): (1, None, True),
    ("data", "seq_len"): (2, None, True),
    ("train", "batch_size"): (1, None, True),
    ("train", "learning_rate"): (0, None, True),
    ("train", "clipnorm"): (0, None, True),
    ("train", "steps_per_execution"): (1, None, True),
    ("train", "seed"): (0, MAX_SEED, True),
    ("train", "grid_size"): (1, None, True),
    ("train", "max_parameters"): (1, None, True),
    ("train", "devices"): (0, None, True),
    ("evaluate", "batch_size"): (1, None, True),
    ("evaluate", "iw_samples"): (0, None, True),
    ("evaluate", "num_samples"): (0, None, True),
    ("evaluate", "kid_subsets"): (1, None, True),
    ("evaluate", "kid_subset_size"): (2, None, True),
}

# The command-line options that set a key, named in its error.
FLAGS = {("train", "batch_size"): "--batch-size", ("train", "seed"): "--seed", ("train", "epochs"): "--epochs",
         ("train", "devices"): "--devices"}

# Filled in from the data set, never set in a recipe.
DERIVED_MODEL_ARGS = ("self", "input_shape", "num_levels", "num_classes", "vocabulary", "kwargs", "args", "name")


def configs_root():
    return importlib.resources.files("kgen.configs")


def recipe_path(model, dataset):
    """The bundled recipe for a model on a data set, or None."""
    path = configs_root().joinpath(model, f"{dataset}.toml")
    return pathlib.Path(str(path)) if path.is_file() else None


def list_recipes():
    root = pathlib.Path(str(configs_root()))
    return sorted(f"{p.parent.name}/{p.stem}" for p in root.glob("*/*.toml"))


def _is_points(data_name):
    return str(data_name) in toy2d.GENERATORS


def _type_name(value):
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _check_type(path, value, default):
    if default is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"config key {path}: expected {_type_name(default)}, got {value!r}.")
    return value


def model_defaults(model_name):
    """The recipe-settable hyper-parameters of a model and their defaults."""
    from kgen.api import get_entry  # the facade: it imports every model

    cls = get_entry(model_name).cls
    out = {}
    for pname, param in inspect.signature(cls.__init__).parameters.items():
        if pname in DERIVED_MODEL_ARGS or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        default = param.default
        if isinstance(default, tuple):
            default = list(default)
        out[pname] = None if default is inspect.Parameter.empty else default
    return out


def _merge(base, update, schema, prefix):
    for key, value in update.items():
        path = f"{prefix}{key}"
        if key not in schema:
            raise ConfigError(
                f"unknown config key {path}.{did_you_mean(key, schema)} "
                f"Keys here: {', '.join(sorted(schema))}."
            )
        default = schema[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {path}: expected a table, got {value!r}.")
            _merge(base[key], value, default, path + ".")
        else:
            value = _check_type(path, value, default)
            choices = CHOICES.get(tuple(path.split(".")))
            if choices and value not in choices:
                raise ConfigError(
                    f"config key {path}: {value!r} is not one of {', '.join(choices)}."
                    f"{did_you_mean(value, choices)}"
                )
            _check_range(path, value, default)
            base[key] = value


def _range_text(lo, hi, hi_included):
    if hi is None:
        return f">= {lo}"
    return f"in [{lo}, {hi}{']' if hi_included else ')'}"


def _check_range(path, value, default):
    """Raises `ConfigError` for a number outside its key's `RANGES` (NaN and Inf included)."""
    key = tuple(path.split("."))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    where = f"config key {path}" + (f" ({FLAGS[key]})" if key in FLAGS else "")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}; set a number, "
                          f"e.g. --set {path}={default!r}.")
    if key not in RANGES:
        return
    lo, hi, hi_included = RANGES[key]
    if value < lo or (hi is not None and (value > hi or (value == hi and not hi_included))):
        kind = "an integer" if isinstance(default, int) else "a number"
        raise ConfigError(f"{where}: expected {kind} "
                          f"{_range_text(lo, hi, hi_included)}, got {value!r}; e.g. --set {path}={default!r}.")


def check(config):
    """Raises `ConfigError` where keys are valid alone but not together (run after every merge)."""
    data = config.get("data", {})
    valid, test = data.get("valid_fraction", 0.0), data.get("test_fraction", 0.0)
    if valid + test >= 1:
        raise ConfigError(f"config keys data.valid_fraction ({valid!r}) + data.test_fraction ({test!r}) = "
                          f"{valid + test:g} leave no training examples; expected a sum below 1, "
                          "e.g. --set data.valid_fraction=0.1 --set data.test_fraction=0.1.")
    return config


def _schema_for(model_name):
    schema = copy.deepcopy(DEFAULTS)
    schema["model"].update(model_defaults(model_name))
    return schema


def parse_set(item):
    """"a.b=value" -> (["a", "b"], value); the value is read as TOML, else as a string."""
    if "=" not in item:
        raise ConfigError(f'--set expects KEY=VALUE (e.g. train.epochs=5), got "{item}".')
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def _nest(keys, value):
    out = value
    for k in reversed(keys):
        out = {k: out}
    return out


def load_toml(path):
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a TOML text file (its bytes are not UTF-8 text: a binary "
                          "file?); pass a .toml recipe.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}.") from None


def canonical_model(name):
    """The registered name of a model (`pixelcnn` -> `pixel_cnn`)."""
    from kgen.api import canonical_name

    return canonical_name(name)


def resolve(config_file=None, model=None, dataset=None, overrides=(), use_recipe=True):
    """Builds the full, checked config.

    Precedence, lowest first: kgen defaults, the recipe (`config_file`, or the
    bundled `configs/<model>/<dataset>.toml`), `model`/`dataset` arguments,
    then each `overrides` item ("table.key=value").
    """
    layers = []
    if config_file:
        layers.append(load_toml(config_file))
    sets = [parse_set(s) if isinstance(s, str) else s for s in overrides]
    model_name = model
    data_name = dataset
    for layer in layers:
        model_name = model_name or layer.get("model", {}).get("name")
        data_name = data_name or layer.get("data", {}).get("name")
    for keys, value in sets:
        if keys == ["model", "name"]:
            model_name = value
        if keys == ["data", "name"]:
            data_name = value
    model_name = canonical_model(model_name or DEFAULTS["model"]["name"])
    data_name = data_name or DEFAULTS["data"]["name"]
    if not config_file and use_recipe:
        recipe = recipe_path(model_name, data_name)
        if recipe is None and not _is_points(data_name):  # image data: the digits recipe fits best
            recipe = recipe_path(model_name, "digits")
        if recipe is not None:
            layers.append(load_toml(recipe))
    schema = _schema_for(model_name)
    config = copy.deepcopy(schema)
    for layer in layers:
        _merge(config, layer, schema, "")
    _merge(config, {"model": {"name": model_name}, "data": {"name": data_name}}, schema, "")
    for keys, value in sets:
        _merge(config, _nest(keys, value), schema, "")
    return check(config)


def model_hparams(config):
    """The `[model]` table without `name`: keyword arguments for the model."""
    return {k: (tuple(v) if isinstance(v, list) else v)
            for k, v in config["model"].items() if k != "name" and v is not None}


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def dumps(config):
    """Writes a resolved config as TOML (scalars, lists, one level of tables)."""
    lines = []
    for key, value in config.items():
        if not isinstance(value, dict) and value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in config.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None)
    return "\n".join(lines) + "\n"


def differences(a, b, ignore=()):
    """`[(dotted key, value in a, value in b)]` for every key whose value differs (tables flattened)."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) or isinstance(y, dict):
            inner = differences(x if isinstance(x, dict) else {}, y if isinstance(y, dict) else {})
            out += [(f"{key}.{k}", vx, vy) for k, vx, vy in inner if f"{key}.{k}" not in ignore]
        elif x != y and key not in ignore:
            out.append((key, x, y))
    return out


def apply_overrides(config, overrides):
    """Applies "table.key=value" items to a resolved config, with the same checks."""
    config = copy.deepcopy(config)
    schema = _schema_for(config["model"]["name"])
    for item in overrides:
        keys, value = parse_set(item) if isinstance(item, str) else item
        _merge(config, _nest(keys, value), schema, "")
    return check(config)
