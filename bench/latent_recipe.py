"""Trains one latent-model recipe on statically binarized MNIST and scores it on the test split.

    KGEN_DATA_DIR=../shared/data python bench/latent_recipe.py --recipe concrete_vae/binarized_mnist.toml \
        --epochs 300 --iw-samples 1000 --max-examples 2000 --name gumbel_categorical_300

The issue-21 rows (Gumbel-softmax 20x10 categorical and 200 Bernoulli latents against Jang et al.'s
-ELBO 101.5 / 105.0; Concrete at m = 1) are each one recipe run to a budget: this script trains it
(`--set` overrides as on the CLI), keeps the run folder (`--run-dir`: an interrupted run's checkpoints
can be scored later with `kgen evaluate`), evaluates the last checkpoint with `kgen.evaluation`
(ELBO and importance-weighted bound with `--iw-samples`, and whatever else `kgen evaluate` reports for
the model, e.g. the AAE's clustering error, on `--max-examples` test images drawn at random with a
fixed seed, 0: all 10,000) and writes `bench/results/latent_<name>.json` with the budget, the
seconds, the backend and the machine. A run that had to be cut short is scored from its last checkpoint
with `--evaluate-only --run-dir DIR` (same arguments): the JSON then says how many epochs it had
(`epochs_done`, `stopped_early`).
"""

import argparse
import csv
import json
import os
import pathlib
import platform
import tempfile
import time

RESULTS = pathlib.Path(__file__).parent / "results"
ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True, help="A recipe under configs/, e.g. concrete_vae/binarized_mnist.toml.")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE, as `kgen train --set`.")
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--max-examples", type=int, default=0, help="Test examples scored (0: all 10,000).")
    parser.add_argument("--evaluate-only", action="store_true", help="Score the run folder's last checkpoint.")
    parser.add_argument("--run-dir", default=None, help="Keep the run folder here (default: a temporary one).")
    parser.add_argument("--name", required=True, help="Results go to bench/results/latent_<name>.json.")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import kgen
    from kgen import config as config_lib
    from kgen.evaluation import evaluate_checkpoint

    recipe = ROOT / "configs" / args.recipe
    overrides = [f"train.epochs={args.epochs}", *args.overrides]
    config = config_lib.resolve(config_file=recipe, overrides=overrides)
    run_dir = pathlib.Path(args.run_dir or tempfile.mkdtemp()) / args.name
    start = time.time()
    if args.evaluate_only:
        with open(run_dir / "metrics.csv") as f:
            history = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
        last = history[-1]
        train_seconds = sum(float(h.get("seconds", 0)) for h in history)
    else:
        _, run_dir, last = kgen.train(config, run_dir=run_dir, verbose=0, log=print)
        train_seconds = time.time() - start
    epochs_done = int(last.get("epoch", args.epochs))
    start = time.time()
    result = evaluate_checkpoint(run_dir / "last.keras", split="test", iw_samples=args.iw_samples,
                                 max_examples=args.max_examples, progress=False, sample_metrics_flag=False)
    out = {
        "benchmark": f"{args.recipe} on binarized MNIST", "recipe": f"configs/{args.recipe}", "overrides": overrides,
        "epochs_requested": args.epochs, "epochs_done": epochs_done, "stopped_early": epochs_done < args.epochs,
        "backend": keras.config.backend(), "iw_samples": args.iw_samples, "max_examples": args.max_examples,
        "elbo_nats": result.get("elbo", {}).get("nats"), "elbo_stderr": result.get("elbo", {}).get("nats_stderr"),
        "iw_bound_nats": result.get("iw_bound", {}).get("nats"),
        "iw_bound_stderr": result.get("iw_bound", {}).get("nats_stderr"),
        "examples": result.get("examples"), "evaluation": result, "last_epoch_metrics": last, "run_dir": str(run_dir),
        "train_seconds": round(train_seconds, 1), "eval_seconds": round(time.time() - start, 1),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "command": "KGEN_DATA_DIR=../shared/data python bench/latent_recipe.py " + " ".join(
            [f"--recipe {args.recipe}", f"--epochs {args.epochs}", *(f"--set {o}" for o in args.overrides),
             f"--iw-samples {args.iw_samples}", f"--max-examples {args.max_examples}",
             f"--name {args.name}"]),
    }
    print(json.dumps(out, indent=2, default=float))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"latent_{args.name}.json").write_text(json.dumps(out, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
