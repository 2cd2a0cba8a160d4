"""Flows on the bundled 8x8 digits (17 grey levels): test bits/dim of the discrete data.

Each flow trains from its recipe `configs/<flow>/digits.toml` with
`kgen.train` (the Trainer `kgen train` runs: uniform dequantization drawn
afresh each epoch, the model's own logit step, best checkpoint by
validation loss) and its best checkpoint is scored on the test split by
`kgen.evaluation.evaluate_checkpoint`, the function behind `kgen evaluate`:
the flow's density on one fixed dequantization of the test images, turned
into the NLL of the discrete 17-level data (`kgen.metrics.summarize`,
`kgen.data.preprocess.discrete_nll`). By Jensen's inequality that figure is
an upper bound, in expectation, on the flow's own discrete NLL (the
dequantization bound of Theis et al. 2016), so it compares directly with an
exact discrete model.

The baseline, measured in the same run, is exact: every pixel an
independent categorical over the 17 levels with add-one (Laplace)
smoothing, fitted on the train split. Uniform noise scores log2(17) = 4.09
bits/dim. Autoregressive models' digits figures are quoted beside the flows
only where a results JSON of another run holds them (`bench/results/*.json`
rows with `"dataset": "digits"`), labelled with that file; there are none
when this script finds none.

    KERAS_BACKEND=tensorflow nice -n 10 python bench/flows_digits.py              # the recipes' epochs
    KERAS_BACKEND=tensorflow nice -n 10 python bench/flows_digits.py --epochs 2   # a smoke run
    KERAS_BACKEND=tensorflow nice -n 10 python bench/flows_digits.py --epochs 15 --epochs-for iaf=8

(the last is the run in bench/results: the recipes' 60 epochs shortened to fit a few minutes per
flow on 2 shared cores; the JSON says `"shortened": true` and lists each flow's epochs and steps).

Prints a table and writes bench/results/flows_digits.json.
"""

import argparse
import json
import math
import os
import pathlib
import platform
import tempfile
import time

import numpy as np

FLOWS = ("nice", "real_nvp", "maf", "iaf", "glow", "spline_flow")
AUTOREGRESSIVE = ("nade", "made", "pixel_cnn", "gated_pixel_cnn", "pixel_rnn", "row_lstm", "diagonal_bilstm",
                  "multiscale_pixel_cnn")
RESULTS = pathlib.Path(__file__).parent / "results"


def categorical_baseline(train_levels, test_levels, num_levels, alpha=1.0):
    """Exact test NLL of independent per-pixel categoricals with add-`alpha` smoothing.

    Returns (nats per example, standard error, bits/dim).
    """
    train = train_levels.reshape(len(train_levels), -1)
    test = test_levels.reshape(len(test_levels), -1)
    d = train.shape[1]
    counts = np.stack([(train == k).sum(0) for k in range(num_levels)], 1).astype("float64")  # (D, L)
    probs = (counts + alpha) / (len(train) + alpha * num_levels)
    nll = -np.log(probs[np.arange(d)[None, :], test]).sum(1)
    return float(nll.mean()), float(nll.std(ddof=1) / math.sqrt(len(nll))), float(nll.mean() / (d * math.log(2)))


def digits_baseline():
    """The categorical baseline on the digits test split, as the dict both digits benches report."""
    import kgen
    from kgen.data import preprocess

    train, test = kgen.load_dataset("digits", split="train"), kgen.load_dataset("digits", split="test")
    levels = train.num_levels
    nats, stderr, bpd = categorical_baseline(preprocess.to_levels(train.x, levels),
                                             preprocess.to_levels(test.x, levels), levels)
    return {"name": "independent per-pixel categorical, add-one smoothing, fitted on train",
            "test_bits_per_dim": bpd, "test_nll_nats": nats, "test_nll_stderr": stderr,
            "uniform_bits_per_dim": math.log2(levels)}


def autoregressive_figures(exclude):
    """Digits rows of autoregressive models in other runs' result files (labelled with the file)."""
    found = []
    for path in sorted(RESULTS.glob("*.json")):
        if path.resolve() == pathlib.Path(exclude).resolve():
            continue
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rows = (report.get("rows") or report.get("results") or []) if isinstance(report, dict) else []
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict) or row.get("dataset") != "digits" or row.get("model") not in AUTOREGRESSIVE:
                continue
            bpd = row.get("bits_per_dim", row.get("test_bits_per_dim"))
            if bpd is None:
                continue
            found.append({"model": row["model"], "test_bits_per_dim": float(bpd),
                          "source": f"bench/results/{path.name} (another run, not measured here)",
                          "command": report.get("command")})
    return found


def run_flow(name, args, run_root):
    import kgen
    from kgen import config as config_lib
    from kgen.evaluation import evaluate_checkpoint
    from kgen.training.trainer import train

    overrides = [f"train.seed={args.seed}"]
    epochs = args.epochs_for.get(name, args.epochs)
    if epochs:
        overrides.append(f"train.epochs={epochs}")
    config = config_lib.resolve(model=name, dataset="digits", overrides=overrides)
    run_dir = pathlib.Path(run_root) / name
    start = time.perf_counter()
    model, _, last = train(config, run_dir=run_dir, verbose=args.verbose, log=print)
    seconds = time.perf_counter() - start
    test = evaluate_checkpoint(run_dir / "best.keras", split="test", progress=False)
    epochs = config["train"]["epochs"]
    steps_per_epoch = math.ceil(len(kgen.load_dataset("digits", split="train")) / config["train"]["batch_size"])
    return {
        "model": name,
        "recipe": f"configs/{name}/digits.toml",
        "test_bits_per_dim": test["nll"]["bits_per_dim"],
        "test_nll_nats": test["nll"]["nats"],
        "test_nll_stderr": test["nll"]["nats_stderr"],
        "test_examples": test["examples"],
        "best_epoch": int(min(model_history(run_dir), key=lambda r: r["val_loss"])["epoch"]),
        "final_train_loss": float(last["loss"]),
        "epochs": epochs,
        "steps": epochs * steps_per_epoch,
        "batch_size": config["train"]["batch_size"],
        "learning_rate": config["train"]["learning_rate"],
        # kgen.train's wall time: build, compilation, per-epoch validation, sample grids, checkpoints
        "train_seconds": round(seconds, 1),
        "ms_per_step_all_included": round(1000 * seconds / (epochs * steps_per_epoch), 1),
        "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "model_config": {k: v for k, v in config["model"].items()},
    }


def model_history(run_dir):
    import csv

    with open(pathlib.Path(run_dir) / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(FLOWS))
    parser.add_argument("--epochs", type=int, default=0, help="override every recipe's epochs (0: keep)")
    parser.add_argument("--epochs-for", default="", type=lambda s: {k: int(v) for k, v in
                                                                   (kv.split("=") for kv in s.split(",") if kv)},
                        help="per-model epochs, e.g. iaf=8,glow=10 (over --epochs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "flows_digits.json"))
    args = parser.parse_args()

    baseline = digits_baseline()
    base_bpd = baseline["test_bits_per_dim"]
    print(f"{'model':<13} {'test b/d':>8} {'vs base':>7} {'epochs':>6} {'steps':>6} {'train s':>7} "
          f"{'params':>9}")
    print(f"{'categorical':<13} {base_bpd:8.4f} {1.0:7.3f}")

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        run_root = args.run_dir or tmp
        for name in args.models.split(","):
            r = run_flow(name, args, run_root)
            r["ratio_to_baseline"] = r["test_bits_per_dim"] / base_bpd
            results.append(r)
            print(f"{name:<13} {r['test_bits_per_dim']:8.4f} {r['ratio_to_baseline']:7.3f} {r['epochs']:6d} "
                  f"{r['steps']:6d} {r['train_seconds']:7.0f} {r['parameters']:9d}", flush=True)
            write(args, baseline, results, [])  # after every flow: a cut-short run keeps what it measured

    others = autoregressive_figures(args.out)
    for row in others:
        print(f"{row['model']:<13} {row['test_bits_per_dim']:8.4f}   from {row['source']}")

    write(args, baseline, results, others)


def write(args, baseline, results, others):
    """Writes the JSON report (also after each flow, so a cut-short run keeps its rows)."""
    import keras

    from kgen import config as config_lib

    recipe_epochs = {r["model"]: config_lib.resolve(model=r["model"], dataset="digits")["train"]["epochs"]
                     for r in results}
    command = f"KERAS_BACKEND={keras.config.backend()} nice -n 10 python bench/flows_digits.py"
    if args.epochs:
        command += f" --epochs {args.epochs}"
    if args.epochs_for:
        command += " --epochs-for " + ",".join(f"{k}={v}" for k, v in args.epochs_for.items())
    if args.models != ",".join(FLOWS):
        command += f" --models {args.models}"
    payload = {
        "benchmark": "flows_digits",
        "metric": "test bits/dim of the discrete 17-level digits (kgen evaluate; dequantization upper bound "
                  "for flows, exact for the baseline)",
        "command": command,
        "settings": vars(args),
        "recipe_epochs": recipe_epochs,
        "shortened": any(r["epochs"] < recipe_epochs[r["model"]] for r in results),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "backend": keras.config.backend(), "keras": keras.__version__,
                    "load_average_at_end": [round(v, 2) for v in os.getloadavg()]},
        "baseline": baseline,
        "results": results,
        "autoregressive_from_other_runs": others,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
