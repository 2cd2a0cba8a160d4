"""Evaluation of a checkpoint on a data split (what `kgen evaluate` runs)."""

import keras

from kgen import checkpoint as ckpt
from kgen import config as config_lib
from kgen.data.pipeline import Pipeline
from kgen.metrics import evaluate


def evaluate_checkpoint(path, dataset=None, split="test", iw_samples=None, max_examples=0,
                        overrides=(), progress=True):
    """Scores a checkpoint with the preprocessing it was trained with.

    Returns the dict of `kgen.metrics.evaluate` plus `model`, `dataset`,
    `split` and `checkpoint`.
    """
    model = ckpt.load_model(path, compile=False)
    config = ckpt.read_state(path).get("config")
    if config is None:  # a plain .keras file: the model's default recipe
        config = config_lib.resolve(model=model.registered_name, dataset=dataset)
    sets = list(overrides)
    if dataset:
        sets.insert(0, (["data", "name"], dataset))
    config = config_lib.apply_overrides(config, sets)
    pipeline = Pipeline(config["data"])
    data = pipeline.load(split)
    if max_examples:
        data = data.subset(max_examples)
    model.check_data(data)
    prepared = pipeline.prepare(data, seed=0)
    k = config["evaluate"]["iw_samples"] if iw_samples is None else iw_samples
    if model.log_prob_kind != "elbo":
        k = 0
    bar = keras.utils.Progbar(len(data), unit_name="example") if progress and k else None
    result = evaluate(
        model, prepared,
        iw_samples=k,
        batch_size=config["evaluate"]["batch_size"],
        seed=0,
        continuous=pipeline.continuous,
        progress=bar.update if bar else None,
    )
    result.update({"model": model.registered_name, "dataset": data.name, "split": split, "checkpoint": str(path)})
    return result
