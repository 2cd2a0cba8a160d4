"""AIR's count accuracy and localisation on held-out multi_digits canvases (0-2 digits, 24x24).

    python bench/air_digits.py                 # configs/air/digits.toml, JAX
    python bench/air_digits.py --recipe configs/air/binarized_mnist.toml --epochs 20   # multi_mnist

Trains the recipe (its epochs unless `--epochs`), then reads the test split's canvases with
`AIR.infer` (z_pres_t = 1 while q > 1/2, z_where at its posterior mean) and compares with the data
set's `layout`: count accuracy and the confusion matrix (Eslami et al. 2016 report about 98% on
multi-MNIST after long training), and, on canvases counted right, the distance in pixels between each
true digit box's centre and the nearest inferred window's centre. Also the ELBO and IW bound
(`kgen evaluate`'s numbers). Writes JSON to bench/results/air_digits[_SUFFIX].json.
"""

import argparse
import json
import os
import pathlib
import platform
import tempfile
import time

import numpy as np

RESULTS = pathlib.Path(__file__).parent / "results"
ROOT = pathlib.Path(__file__).resolve().parents[1]


def box_centre_errors(true_boxes, counts, inferred_boxes, inferred_counts):
    """Pixels from each true box's centre to the nearest inferred window's centre, on canvases counted right."""
    out = []
    for tb, c, ib, ic in zip(true_boxes, counts, inferred_boxes, inferred_counts):
        if c != ic or c == 0:
            continue
        t = tb[:c, :2] + tb[:c, 2:] / 2.0  # (top, left) + size / 2: centres (row, col)
        i = ib[:c, :2] + ib[:c, 2:] / 2.0
        d = np.linalg.norm(t[:, None] - i[None], axis=-1)
        out.extend(d.min(axis=1).tolist())
    return np.asarray(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "configs" / "air" / "digits.toml"))
    parser.add_argument("--epochs", type=int, default=0, help="0: the recipe's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--suffix", default="")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import kgen
    from kgen import config as config_lib
    from kgen.data import multi_digits
    from kgen.data.pipeline import Pipeline
    from kgen.evaluation import evaluate_checkpoint

    sets = [f"train.seed={args.seed}"] + ([f"train.epochs={args.epochs}"] if args.epochs else [])
    config = config_lib.resolve(config_file=args.recipe, overrides=sets)
    run_dir = pathlib.Path(args.run_dir or tempfile.mkdtemp()) / "air"
    start = time.time()
    model, run_dir, last = kgen.train(config, run_dir=run_dir, verbose=0, log=lambda m: None)
    train_seconds = time.time() - start

    data = config["data"]
    pipeline = Pipeline(data)
    test = pipeline.load("test")
    prepared = pipeline.prepare(test, seed=0)
    lay = multi_digits.layout(data["name"], "test", data["valid_fraction"], data["test_fraction"],
                              data["split_seed"], data["dir"] or None)
    assert np.array_equal(lay.count, prepared.y)
    start = time.time()
    inferred = model.infer(prepared.x)
    infer_seconds = time.time() - start
    extra = model.evaluate_extra(prepared)["count"]
    errors = box_centre_errors(lay.boxes, lay.count, inferred["boxes"], inferred["count"])
    result = evaluate_checkpoint(run_dir / "last.keras", split="test", iw_samples=args.iw_samples,
                                 progress=False, sample_metrics_flag=False)
    out = {
        "recipe": str(pathlib.Path(args.recipe).resolve().relative_to(ROOT)),
        "data": data["name"], "test_canvases": int(len(test)), "epochs": config["train"]["epochs"],
        "count_accuracy": extra["accuracy"], "confusion_true_by_inferred": extra["confusion"],
        "count_accuracy_by_true_count": [float(np.mean(inferred["count"][lay.count == c] == c)) for c in range(3)],
        "box_centre_error_pixels": {"median": float(np.median(errors)), "mean": float(errors.mean()),
                                    "digits": int(len(errors))} if len(errors) else None,
        "elbo_nats": result["elbo"]["nats"], "iw_bound_nats": result.get("iw_bound", {}).get("nats"),
        "iw_samples": args.iw_samples, "last_epoch_metrics": last,
        "train_seconds": round(train_seconds, 1), "infer_seconds": round(infer_seconds, 2),
        "backend": keras.config.backend(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "command": "python bench/air_digits.py " + " ".join(
            ([f"--recipe {args.recipe}"] if args.recipe != parser.get_default("recipe") else [])
            + ([f"--epochs {args.epochs}"] if args.epochs else []) + ([f"--seed {args.seed}"] if args.seed else [])),
    }
    print(json.dumps(out, indent=2))
    RESULTS.mkdir(exist_ok=True)
    name = "air_digits" + (f"_{args.suffix}" if args.suffix else "") + ".json"
    (RESULTS / name).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
