"""The one path that builds optimizers from a recipe's `[train]` table.

`kgen train` compiles every model through `GenerativeModel.compile_for_training`,
which calls `make_optimizer` once per optimizer the model has (GANs: one per
player), so a recipe's optimizer, learning rate, schedule and clipping mean the
same thing for every family.
"""

import keras

from kgen.errors import UsageError

ADAM_LIKE = ("adam", "adamw")


def make_optimizer(train_config, steps_per_epoch=None, defaults=None):
    """The recipe's optimizer.

    Args:
        train_config: the `[train]` table (`optimizer`, `learning_rate`, and
            optionally `lr_schedule`, `epochs`, `clipnorm`).
        steps_per_epoch: needed by `lr_schedule = "cosine"`.
        defaults: a model's own Adam/AdamW settings (e.g. GANs' `beta_1 = 0.5`);
            the recipe's learning rate wins over theirs.

    Cosine decay (Loshchilov & Hutter 2017, without restarts) follows the
    optimizer's own step count, which checkpoints keep, so a resumed run goes on
    along the same curve; it reaches 0 after `train.epochs` epochs.
    """
    name = train_config["optimizer"]
    learning_rate = train_config["learning_rate"]
    if train_config.get("lr_schedule", "constant") == "cosine":
        if not steps_per_epoch:
            raise UsageError('train.lr_schedule = "cosine" needs the steps per epoch; train with `kgen train`.')
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=int(train_config["epochs"]) * int(steps_per_epoch)
        )
    kwargs = {}
    if defaults and name in ADAM_LIKE:
        kwargs.update({k: v for k, v in defaults.items() if k != "learning_rate"})
    kwargs["learning_rate"] = learning_rate
    if train_config.get("clipnorm", 0) > 0:
        kwargs["clipnorm"] = train_config["clipnorm"]
    return keras.optimizers.get({"class_name": name, "config": kwargs})
