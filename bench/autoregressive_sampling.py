"""Sampling speed of the autoregressive models: per-pixel predict loop vs compiled loop vs cached sampler.

    python bench/autoregressive_sampling.py                      # 64 images of 28x28, every method
    python bench/autoregressive_sampling.py --n 16 --models pixel_cnn,pixel_rnn --methods compiled,cached
    python bench/autoregressive_sampling.py --models pixel_rnn_row_lstm   # the Row LSTM's three methods
    KERAS_BACKEND=jax python bench/autoregressive_sampling.py

Every model is built with the architecture of its `configs/<model>/binarized_mnist.toml`
recipe (untrained weights: speed does not depend on them) for 28x28 binary images,
and draws `--n` samples from the same uniforms with each method:

- `predict_loop`: the baseline the issue rules out: a Python loop over the 784
  pixels, each step a `predict_on_batch` of the whole image and a NumPy
  inverse-CDF draw of one pixel;
- `compiled`: kgen's naive sampler, the same 784 full passes inside one compiled
  `fori_loop` on the backend (`sampler="naive"`);
- `cached`: kgen's incremental sampler, each step computing every layer at the
  one pixel being sampled (PixelCNN, gated PixelCNN, both PixelRNN cells;
  `sampler="cached"`);
- for the multiscale parallel PixelCNN, `compiled` is its own sampler: the 7x7
  base value by value, then 3 parallel groups per 2x upscaling (49 + 6 steps).

MADE and NADE have one compiled sampler each (`compiled`). `pixel_rnn` (the
recipe's Diagonal BiLSTM) and `pixel_rnn_row_lstm` (the same recipe with
`cell = "row_lstm"`) are not in the default list: their naive loops take minutes
on a CPU. The script checks
that every method returns the same samples, and writes the median seconds of
`--repeats` runs (`--heavy-repeats` for the minutes-long ones), after one
warm-up run that compiles, the ratio to the
predict loop measured in the same run, and the machine to
`bench/results/autoregressive_sampling_<backend>.json`.
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import time

RESULTS = pathlib.Path(__file__).parent / "results"
MODELS = ("pixel_cnn", "gated_pixel_cnn", "multiscale_pixel_cnn", "made", "nade")
METHODS = ("predict_loop", "compiled", "cached")


def machine():
    import keras

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "backend": keras.config.backend(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    try:
        import tensorflow as tf

        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception:  # noqa: BLE001 (informational only)
        pass
    return info


def build(name, size):
    import kgen
    from kgen import config as config_lib

    overrides = {}
    if name == "pixel_rnn_row_lstm":
        name, overrides = "pixel_rnn", {"cell": "row_lstm", "sampler": "cached"}
    config = config_lib.resolve(model=name, dataset="binarized_mnist")
    hparams = {**config_lib.model_hparams(config), **overrides}
    hparams.pop("conditional", None)
    return kgen.build_model(name, input_shape=(size, size, 1), num_levels=2, **hparams)


def predict_loop(model, u):
    """The per-pixel Python loop around predict: what kgen's samplers replace.

    Values go in the model's order (raster order, or the multiscale model's
    groups, one value at a time).
    """
    import numpy as np

    x = np.zeros_like(u)
    n, h, w, c = u.shape
    order = np.argsort(model.ranks(), kind="stable") if hasattr(model, "ranks") else np.arange(h * w * c)
    for flat in order:
        i, j, ch = np.unravel_index(flat, (h, w, c))
        logits = np.asarray(model.predict_on_batch(x))[:, i, j, ch]  # (n, P)
        if logits.shape[-1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            x[:, i, j, ch] = (u[:, i, j, ch] < p1).astype("float32")
        else:
            p = np.exp(logits - logits.max(-1, keepdims=True))
            cdf = np.cumsum(p / p.sum(-1, keepdims=True), -1)
            level = (cdf[:, :-1] < u[:, i, j, ch, None]).sum(-1)
            x[:, i, j, ch] = level / (logits.shape[-1] - 1)
    return x


def run_method(model, method, u):
    import keras
    import numpy as np

    if method == "predict_loop":
        return predict_loop(model, u)
    if getattr(model, "has_cached_sampler", False):
        out = model.sample_from_noise(u, sampler="naive" if method == "compiled" else "cached")
    else:
        out = model.sample_from_noise(u)
    return np.asarray(keras.ops.convert_to_numpy(out))


def timed(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--n", type=int, default=64, help="samples (one batch)")
    parser.add_argument("--size", type=int, default=28, help="image height and width")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the cached sampler and MADE/NADE")
    parser.add_argument("--heavy-repeats", type=int, default=1,
                        help="timed runs of the predict loop and the naive compiled loop of the conv models")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import keras
    import numpy as np

    rows = []
    for name in args.models.split(","):
        model = build(name, args.size)
        u = model.draw_noise(args.n, seed=0)[0]
        # MADE and NADE have one (compiled) sampler; MADE samples under mask 0 here (c = None).
        cached = getattr(model, "has_cached_sampler", False)
        methods = [m for m in args.methods.split(",") if m != "cached" or cached]
        results, reference = {}, None
        for method in methods:
            heavy = method == "predict_loop" or (method == "compiled" and (cached or name == "pixel_rnn"))
            repeats = args.heavy_repeats if heavy else args.repeats
            if method != "predict_loop":
                start = time.perf_counter()
                run_method(model, method, u)  # compiles
                compile_seconds = time.perf_counter() - start
            else:
                compile_seconds = 0.0
            out, times = timed(lambda: run_method(model, method, u), repeats)
            same = None
            if reference is None:
                reference = out
            else:
                same = bool(np.array_equal(out, reference))
            results[method] = {"median_seconds": statistics.median(times), "runs": times,
                               "first_call_seconds": compile_seconds, "same_samples_as_first_method": same}
            print(f"{name:16s} {method:13s} {statistics.median(times):9.3f} s  (first call {compile_seconds:.2f} s)"
                  + ("" if same is None else f"  same samples: {same}"), flush=True)
        base = results.get("predict_loop", {}).get("median_seconds")
        for method, r in results.items():
            r["speedup_vs_predict_loop"] = None if base is None else base / r["median_seconds"]
        if "compiled" in results and "cached" in results:
            results["cached"]["speedup_vs_compiled"] = (results["compiled"]["median_seconds"]
                                                        / results["cached"]["median_seconds"])
        rows.append({"model": name, "params": model.count_params(), "results": results})
    report = {
        "benchmark": "autoregressive_sampling",
        "what": f"{args.n} samples of {args.size}x{args.size} binary images, binarized_mnist recipe architectures",
        "baseline": "predict_loop (Python loop over pixels around predict_on_batch)",
        "rows": rows,
        "machine": machine(),
    }
    out = pathlib.Path(args.out or RESULTS / f"autoregressive_sampling_{keras.config.backend()}.json")
    if out.exists():  # a re-run of some models replaces their rows and keeps the others
        old = json.loads(out.read_text())
        if old.get("what") == report["what"]:
            ran = {r["model"] for r in rows}
            report["rows"] = [r for r in old.get("rows", []) if r["model"] not in ran] + rows
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
