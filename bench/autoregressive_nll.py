"""Binarized MNIST test NLL of the autoregressive models against the published numbers.

    KGEN_DATA_DIR=../shared/data python bench/autoregressive_nll.py --models nade,made,pixel_cnn
    KGEN_DATA_DIR=../shared/data python bench/autoregressive_nll.py --models nade --epochs 2 --max-examples 5000
    KGEN_DATA_DIR=../shared/data python bench/autoregressive_nll.py --recipe binarized_mnist_paper --models nade,made,pixel_cnn,pixel_rnn  # GPU

Each model trains from its `configs/<model>/binarized_mnist.toml` recipe (the
CPU-sized ones: about an hour each on 2 cores; `--recipe binarized_mnist_paper`
takes the paper-sized ones, GPU runs, into `--run-dir/<model>_paper`; `--epochs` and
`--max-examples` shorten a run, which then says so in the JSON) into
`--run-dir/<model>`, resuming when a run is already there. The best
checkpoint (lowest validation loss) is scored on the binarized MNIST test
split (all 10,000 images, or the first `--test-examples` of a fixed shuffle:
the split is ordered by class) with the exact `log_prob`. MADE also reports
the single-mask NLL beside its mask ensemble.

Published test NLL in nats (lower is better): NADE 88.33 (Larochelle &
Murray 2011), MADE 86.64 with a 32-mask ensemble and about 88 with one mask
(Germain et al. 2015), PixelCNN 81.30, Row LSTM 80.54, Diagonal BiLSTM 79.20
(van den Oord et al. 2016). Results go to
`bench/results/autoregressive_nll_<backend>.json` with the ratio to the
published figure.
"""

import argparse
import json
import math
import os
import pathlib
import platform
import time

RESULTS = pathlib.Path(__file__).parent / "results"
PUBLISHED = {
    "nade": {"nats": 88.33, "source": "Larochelle & Murray 2011"},
    "made": {"nats": 86.64, "source": "Germain et al. 2015, 32-mask ensemble (about 88 with one mask)"},
    "pixel_cnn": {"nats": 81.30, "source": "van den Oord et al. 2016, PixelCNN"},
    "gated_pixel_cnn": {"nats": 81.30, "source": "PixelCNN 81.30 (the gated paper reports no binarized MNIST figure)"},
    "row_lstm": {"nats": 80.54, "source": "van den Oord et al. 2016, Row LSTM"},
    "diagonal_bilstm": {"nats": 79.20, "source": "van den Oord et al. 2016, Diagonal BiLSTM"},
}


def machine():
    import keras

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "backend": keras.config.backend()}


def run_seconds(run_dir):
    """Training wall time summed over the run's epochs (metrics.csv `seconds`), or None if not logged."""
    import csv

    path = pathlib.Path(run_dir) / "metrics.csv"
    if not path.exists():
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows or any(not r.get("seconds") for r in rows):
        return None
    return round(sum(float(r["seconds"]) for r in rows), 1)


def run_model(name, args):
    import numpy as np

    import kgen
    from kgen import config as config_lib
    from kgen.data.pipeline import Pipeline
    from kgen.metrics import summarize
    from kgen.training.trainer import train

    overrides = []
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    if args.max_examples:
        overrides.append(f"data.max_examples={args.max_examples}")
    overrides += list(args.set or [])
    recipe = config_lib.recipe_path(name, args.recipe)
    if recipe is None:
        raise SystemExit(f"no recipe configs/{name}/{args.recipe}.toml")
    config = config_lib.resolve(config_file=recipe, overrides=overrides)
    run_dir = pathlib.Path(args.run_dir) / (name + args.recipe.removeprefix("binarized_mnist"))
    start = time.time()
    if (run_dir / "last.keras").exists():
        train(None, run_dir=run_dir, resume=True, epochs=config["train"]["epochs"], verbose=args.verbose, log=print)
    else:
        train(config, run_dir=run_dir, verbose=args.verbose, log=print)
    train_seconds = time.time() - start

    model = kgen.load_model(run_dir / "best.keras", compile=False)
    pipeline = Pipeline(config["data"])
    test = pipeline.load("test")
    x = pipeline.prepare(test, seed=0).x
    if args.test_examples:
        x = x[np.random.default_rng(0).permutation(len(x))[: args.test_examples]]
    start = time.time()
    nll = summarize(model.log_prob(x, batch_size=config["evaluate"]["batch_size"]), model.num_dims)
    published = PUBLISHED.get(config["model"]["cell"] if name == "pixel_rnn" else name)
    row = {
        "model": name,
        "recipe": f"configs/{name}/{args.recipe}.toml",
        "epochs": config["train"]["epochs"],
        "train_examples": args.max_examples or 50000,
        "shortened": bool(args.epochs or args.max_examples),
        "overrides": list(args.set or []),
        "train_seconds_this_invocation": round(train_seconds, 1),
        "train_seconds_all_epochs": run_seconds(run_dir),
        "test_examples": int(len(x)),
        "test_nll_nats": nll["nats"],
        "test_nll_stderr": nll["nats_stderr"],
        "bits_per_dim": nll["bits_per_dim"],
        "eval_seconds": round(time.time() - start, 1),
        "published": published,
        "ratio_to_published": nll["nats"] / published["nats"] if published else math.nan,
        "params": model.count_params(),
    }
    if name == "made" and model.eval_masks > 1:
        one = summarize(model.log_prob(x, batch_size=config["evaluate"]["batch_size"], num_masks=1), model.num_dims)
        row["test_nll_nats_one_mask"] = one["nats"]
    print(json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="nade,made,pixel_cnn,gated_pixel_cnn")
    parser.add_argument("--recipe", default="binarized_mnist",
                        help="binarized_mnist (CPU-sized) or binarized_mnist_paper (paper-sized, for a GPU)")
    parser.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs (0: keep)")
    parser.add_argument("--max-examples", type=int, default=0, help="train on the first N images (0: all)")
    parser.add_argument("--test-examples", type=int, default=0, help="score N test images (0: all 10,000)")
    parser.add_argument("--run-dir", default="runs/bench-autoregressive")
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a recipe key (repeatable), e.g. --set model.num_masks=32; recorded in the JSON")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import keras

    rows = [run_model(name, args) for name in args.models.split(",")]
    report = {"benchmark": "autoregressive_binarized_mnist_nll", "rows": rows, "machine": machine()}
    suffix = args.recipe.removeprefix("binarized_mnist")
    out = pathlib.Path(args.out or RESULTS / f"autoregressive_nll_{keras.config.backend()}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
