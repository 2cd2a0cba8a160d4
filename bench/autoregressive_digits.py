"""The shipped digits checkpoints scored on the digits test split, beside a per-pixel baseline.

    python bench/autoregressive_digits.py
    python bench/autoregressive_digits.py --models pixel_cnn,gated_pixel_cnn,vae

Scores each `saved_models/<model>-digits.keras` with
`kgen.evaluation.evaluate_checkpoint` (the function behind `kgen evaluate`)
on the 180 test images of the bundled digits (8x8, 17 levels): exact NLL
for the autoregressive models (the gated PixelCNN given each image's true
label, and, as a check that the label is used, given a wrong one: label + 1
mod 10), the importance-weighted bound for the VAE. Beside them, measured in
the same run, the exact NLL of independent per-pixel categoricals fitted on
the train split (add-one smoothing; `bench/flows_digits.py` uses the same
baseline). Rows carry `"dataset": "digits"`, so `bench/flows_digits.py`
quotes them beside the flows.

Writes bench/results/autoregressive_digits.json.
"""

import argparse
import json
import os
import pathlib
import platform
import time

import numpy as np

from flows_digits import digits_baseline

RESULTS = pathlib.Path(__file__).parent / "results"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="pixel_cnn,gated_pixel_cnn,vae")
    parser.add_argument("--iw-samples", type=int, default=5000, help="k of the VAE's importance-weighted bound")
    parser.add_argument("--out", default=str(RESULTS / "autoregressive_digits.json"))
    args = parser.parse_args()

    import keras

    import kgen
    from kgen import saved
    from kgen.evaluation import evaluate_checkpoint

    test = kgen.load_dataset("digits", split="test")
    baseline = digits_baseline()
    base_nats, base_se, base_bpd = (baseline[k] for k in ("test_nll_nats", "test_nll_stderr", "test_bits_per_dim"))
    rows = []
    for name in args.models.split(","):
        path = saved.pretrained_path(name, "digits")
        start = time.time()
        result = evaluate_checkpoint(path, split="test", iw_samples=args.iw_samples, progress=False)
        nll = result["nll"]
        row = {"model": name, "dataset": "digits", "checkpoint": f"saved_models/{path.name}",
               "nll_kind": result.get("nll_kind"), "test_nll_nats": nll["nats"],
               "test_nll_stderr": nll["nats_stderr"], "bits_per_dim": nll["bits_per_dim"],
               "test_examples": result["examples"], "eval_seconds": round(time.time() - start, 1),
               "ratio_to_baseline": nll["nats"] / base_nats}
        if name == "gated_pixel_cnn":
            model = kgen.load_model(path, compile=False)
            wrong = (np.asarray(test.y) + 1) % model.num_classes
            row["test_nll_nats_wrong_label"] = float(-np.mean(model.log_prob(test.x, labels=wrong)))
        rows.append(row)
        print(f"{name:18s} {nll['nats']:7.2f} +/- {nll['nats_stderr']:.2f} nats  {nll['bits_per_dim']:.3f} bits/dim"
              f"  ({row['nll_kind']})", flush=True)
    print(f"{'baseline':18s} {base_nats:7.2f} +/- {base_se:.2f} nats  {base_bpd:.3f} bits/dim  (per-pixel categorical)")
    report = {
        "benchmark": "autoregressive_digits",
        "command": "python bench/autoregressive_digits.py --models " + args.models,
        "baseline": baseline,
        "rows": rows,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "backend": keras.config.backend()},
    }
    pathlib.Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
