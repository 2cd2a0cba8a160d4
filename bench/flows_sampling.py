"""Flow sampling speed: IAF against MAF, and Glow's throughput.

1. IAF vs MAF. For the same dimension D and the same MADE conditioners
   (layers, widths), MAF samples by inverting each autoregressive layer one
   dimension at a time (D sequential MADE passes a layer) and IAF in one
   pass a layer. Both are built with the MAF digits recipe's architecture
   (`configs/maf/digits.toml`: 5 layers of MADE 512-512, on 8x8x1 = 64
   dimensions, logit step included; MAF without its batch norm, which IAF
   cannot have, so that the two differ only in direction). The figure is
   the ratio of median times to map a batch of base noise to data.
2. Glow's sampling throughput (images/s) at batch 64, with the
   architecture of its digits recipe (`configs/glow/digits.toml`).

Weights are the freshly initialized ones: sampling costs the same work
whatever the weights. Each timing maps a fixed batch of noise through the
compiled decoder and waits for the result (a copy to NumPy); the first
calls (tracing, compilation) are warm-up and not counted; the figure is the
median of `--repeats` calls.

    KERAS_BACKEND=tensorflow nice -n 10 python bench/flows_sampling.py
    KERAS_BACKEND=jax nice -n 10 python bench/flows_sampling.py

Each backend's run is stored under its name in bench/results/flows_sampling.json
(the other backends' entries are kept).
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import time

import numpy as np

RESULTS = pathlib.Path(__file__).parent / "results"


def time_sampling(flow, batch, repeats, warmup, seed=0):
    """Median and all wall times (s) of `flow.sample_from_noise` on one batch of noise."""
    z = np.random.default_rng(seed).standard_normal((batch,) + flow.data_shape).astype("float32")
    for _ in range(warmup):
        np.asarray(flow.sample_from_noise(z))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(flow.sample_from_noise(z))
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def recipe_model(name, dataset, drop=()):
    import kgen
    from kgen import config as config_lib
    from kgen.training.trainer import build_for_data

    config = config_lib.resolve(model=name, dataset=dataset)
    for key in drop:
        config["model"].pop(key, None)
    return build_for_data(config, kgen.load_dataset(dataset, split="valid")), config["model"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "flows_sampling.json"))
    args = parser.parse_args()

    import keras

    import kgen
    from kgen import config as config_lib

    keras.utils.set_random_seed(0)
    backend = keras.config.backend()
    maf_config = config_lib.resolve(model="maf", dataset="digits")["model"]
    shared = {k: maf_config[k] for k in ("num_layers", "hidden_units", "logit_alpha")}
    digits_shape = kgen.load_dataset("digits", split="valid").shape
    rows = {}
    for name in ("maf", "iaf"):
        flow = kgen.build_model(name, input_shape=digits_shape, num_levels=17, **shared)
        median, times = time_sampling(flow, args.batch_size, args.repeats, args.warmup)
        rows[name] = {"median_seconds": median, "min_seconds": min(times), "max_seconds": max(times),
                      "images_per_second": args.batch_size / median,
                      "parameters": int(sum(np.prod(v.shape) for v in flow.trainable_variables))}
        print(f"{name}: {1000 * median:9.2f} ms per batch of {args.batch_size} "
              f"({rows[name]['images_per_second']:.1f} images/s)", flush=True)
    ratio = rows["maf"]["median_seconds"] / rows["iaf"]["median_seconds"]
    print(f"MAF / IAF sampling time: {ratio:.1f}x (D = {int(np.prod(digits_shape))})")

    glow, glow_config = recipe_model("glow", "digits")
    median, times = time_sampling(glow, args.batch_size, args.repeats, args.warmup)
    glow_row = {"recipe": "configs/glow/digits.toml", "model_config": glow_config, "batch_size": args.batch_size,
                "median_seconds": median, "min_seconds": min(times), "max_seconds": max(times),
                "images_per_second": args.batch_size / median,
                "parameters": int(sum(np.prod(v.shape) for v in glow.trainable_variables))}
    print(f"glow: {1000 * median:9.2f} ms per batch of {args.batch_size} "
          f"({glow_row['images_per_second']:.1f} images/s)")

    run = {
        "command": f"KERAS_BACKEND={backend} nice -n 10 python bench/flows_sampling.py "
                   f"--batch-size {args.batch_size} --repeats {args.repeats} --warmup {args.warmup}",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(), "backend": backend,
                    "keras": keras.__version__, "load_average_at_end": [round(v, 2) for v in os.getloadavg()]},
        "iaf_vs_maf": {
            "architecture": dict(shared, input_shape=list(digits_shape), batch_norm=False,
                                 source="configs/maf/digits.toml without batch norm"),
            "dimensions": int(np.prod(digits_shape)),
            "batch_size": args.batch_size,
            "maf": rows["maf"], "iaf": rows["iaf"],
            "maf_over_iaf_time_ratio": ratio,
        },
        "glow": glow_row,
        "timing": f"median of {args.repeats} calls after {args.warmup} warm-up calls, fixed noise, "
                  "result copied to NumPy; freshly initialized weights",
    }
    out = pathlib.Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    report.setdefault("benchmark", "flows_sampling")
    report.setdefault("runs", {})[backend] = run
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
