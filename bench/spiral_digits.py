"""SPIRAL's target-conditional agent on the bundled 8x8 digits: reconstruction error on the test split.

Trains the conditional agent of configs/spiral/digits.toml (model.target_conditional = true) with
compile() + fit() on the training split, then reports the mean per-image squared L2 distance
sum_pixels (canvas - target)^2 of its final canvases to the test images, against two baselines
measured in the same run: the blank canvas, and a random policy (uniform actions over the same
action space, rendered by the same renderer).

    python bench/spiral_digits.py [--epochs 200] [--learning-rate 0.003] [--out bench/results/spiral_digits.json]
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np

import kgen
from kgen import config as config_lib
from kgen.models.adversarial.spiral import render_stroke


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/spiral_digits.json")
    args = parser.parse_args()

    config = config_lib.resolve(model="spiral", dataset="digits",
                                overrides=[(["model", "target_conditional"], True)])
    hparams = config_lib.model_hparams(config)
    hparams.pop("conditional", None)
    lr = args.learning_rate or config["train"]["learning_rate"]
    train = kgen.load_dataset("digits", split="train")
    test = kgen.load_dataset("digits", split="test")
    x_train, x_test = np.asarray(train.x, "float32"), np.asarray(test.x, "float32")

    keras.utils.set_random_seed(args.seed)
    model = kgen.build_model("spiral", input_shape=x_train.shape[1:], **hparams)
    model.compile(generator_optimizer=keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9))

    def error(canvas):
        return np.sum((canvas - x_test) ** 2, axis=(1, 2, 3))

    untrained = error(model.reconstruct(x_test, seed=1))
    start = time.time()
    history = model.fit(x_train, epochs=args.epochs, batch_size=args.batch_size, verbose=2)
    seconds = time.time() - start
    trained = error(model.reconstruct(x_test, seed=1))
    blank = np.sum(x_test ** 2, axis=(1, 2, 3))

    # A random policy: every action component uniform, T strokes, the same renderer.
    rng = np.random.default_rng(args.seed)
    canvas = np.zeros_like(x_test)
    for _ in range(model.steps):
        actions = np.stack([rng.integers(0, s, len(x_test)) for s in model.action_sizes], axis=-1).astype("int32")
        canvas = np.maximum(canvas, np.asarray(keras.ops.convert_to_numpy(
            render_stroke(actions, model.height, model.width, model.grid_size, model.widths))))
    random_policy = error(canvas)

    def stats(e):
        return {"mean": float(e.mean()), "sem": float(e.std(ddof=1) / np.sqrt(len(e)))}

    result = {
        "benchmark": "spiral_digits",
        "metric": "mean per-image squared L2 distance sum_pixels (canvas - target)^2, digits test split",
        "test_images": int(len(x_test)),
        "spiral": stats(trained),
        "untrained_agent": stats(untrained),
        "blank_canvas": stats(blank),
        "random_policy": stats(random_policy),
        "ratio_to_blank": float(trained.mean() / blank.mean()),
        "ratio_to_random_policy": float(trained.mean() / random_policy.mean()),
        "final_train_recon_error": float(history.history["recon_error"][-1]),
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": lr,
        "model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in hparams.items()},
        "train_seconds": round(seconds, 1),
        "backend": keras.config.backend(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "command": f"KERAS_BACKEND={keras.config.backend()} python bench/spiral_digits.py --epochs {args.epochs}",
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
