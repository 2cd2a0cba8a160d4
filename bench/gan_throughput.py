"""GAN and DCGAN training throughput: kgen's adversarial step on every backend beside hand-written TensorFlow.

    python bench/gan_throughput.py --models gan,dcgan --epochs 20 --repeats 3 --torch-threads 1

Times `fit` of each model's digits recipe (`configs/gan/digits.toml`: MLP
players 32-256-256-64 with BatchNorm / 64-256-256-1; `configs/dcgan/digits.toml`:
transposed-conv generator 2x2x128 -> 4x4x64 -> 8x8x1 with BatchNorm,
strided-conv discriminator), non-saturating loss, Adam(2e-4, 0.5) per player,
on the bundled digits, on each installed backend.

The reference is the same game written directly against TensorFlow, as a
user would: the *same* generator and discriminator networks (built by kgen,
so the architectures cannot drift apart), two `tf.GradientTape`s and two
Adam optimizers in one `tf.function`, one discriminator and one generator
update per batch, as kgen's step does. It runs twice, with and without XLA
(`jit_compile`), and the faster of the two is the baseline (XLA wins for the
MLP GAN on a CPU, loses for the convolutional DCGAN).

Every contender runs in its own fresh process, in interleaved rounds
(reference, reference+XLA, TF, JAX, PyTorch, then again), so load on a shared
machine falls on all alike; medians over rounds are reported, and
`ratio_to_reference` > 1 means kgen is faster. `--torch-threads 1` sets
PyTorch's intra-op threads (on a small, busy machine its default thread pool
spends milliseconds per tiny matmul on hand-offs).
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys

from throughput_stats import ratio_interval

RESULTS = pathlib.Path(__file__).parent / "results"


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


SETUP = r'''
import json, os, sys, time
import numpy as np
import keras, kgen
from kgen import config as config_lib
from kgen.training.trainer import build_for_data, compile_model

name, data_path = sys.argv[1], sys.argv[2]
batch, epochs, threads = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if threads and keras.config.backend() == "torch":
    import torch
    torch.set_num_threads(threads)
x = np.load(data_path)["x"]
x = x[: (len(x) // batch) * batch]
config = config_lib.resolve(model=name, dataset="digits")
model = build_for_data(config, kgen.load_dataset("digits"))
'''

KGEN = SETUP + r'''
compile_model(model, config["train"])  # as `kgen train` compiles
model.fit(x[: 2 * batch], batch_size=batch, epochs=1, verbose=0)  # trace and warm up
t = time.perf_counter()
model.fit(x, batch_size=batch, epochs=epochs, verbose=0, shuffle=False)
print(json.dumps({"seconds": time.perf_counter() - t, "examples": epochs * len(x)}))
'''

REFERENCE = SETUP + r'''
import tensorflow as tf

jit = os.environ["REFERENCE_XLA"] == "1"
gen, disc, latent = model.generator, model.discriminator, model.latent_dim
flat = model.architecture == "mlp"
d_opt, g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5)

@tf.function(jit_compile=jit)
def step(real):
    n = tf.shape(real)[0]
    if flat:
        real = tf.reshape(real, (n, -1))
    fake = gen(tf.random.normal((n, latent)), training=True)
    if flat:
        fake = tf.reshape(fake, (n, -1))
    with tf.GradientTape() as tape:
        d_loss = tf.reduce_mean(tf.nn.softplus(-disc(real, training=True))) + \
                 tf.reduce_mean(tf.nn.softplus(disc(fake, training=True)))
    d_opt.apply_gradients(zip(tape.gradient(d_loss, disc.trainable_variables), disc.trainable_variables))
    with tf.GradientTape() as tape:
        fake = gen(tf.random.normal((n, latent)), training=True)
        if flat:
            fake = tf.reshape(fake, (n, -1))
        g_loss = tf.reduce_mean(tf.nn.softplus(-disc(fake, training=True)))
    g_opt.apply_gradients(zip(tape.gradient(g_loss, gen.trainable_variables), gen.trainable_variables))
    return d_loss, g_loss

ds = tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True).prefetch(2)
for xb in ds.take(2): step(xb)  # trace and warm up
t = time.perf_counter()
for _ in range(epochs):
    for xb in ds: step(xb)
print(json.dumps({"seconds": time.perf_counter() - t, "examples": epochs * len(x)}))
'''


def _run_once(code, backend, args, model, data_path, xla=False):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", REFERENCE_XLA="1" if xla else "0")
    out = subprocess.run([sys.executable, "-c", code, model, str(data_path), str(args.batch_size), str(args.epochs),
                          str(args.torch_threads)], capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["examples"] / r["seconds"]


def _summary(runs):
    runs = sorted(runs)
    return {"examples_per_s_median": runs[len(runs) // 2], "runs": runs}


def bench_model(model, args, data_path):
    import importlib.util

    contenders = {"reference_tf": (REFERENCE, "tensorflow", False), "reference_tf_xla": (REFERENCE, "tensorflow", True)}
    for backend in ("tensorflow", "jax", "torch"):
        if importlib.util.find_spec(backend) is not None:
            contenders[backend] = (KGEN, backend, False)
    rates = {name: [] for name in contenders}
    errors = {}
    for _ in range(args.repeats):
        for name, (code, backend, xla) in contenders.items():
            if name in errors:
                continue
            r = _run_once(code, backend, args, model, data_path, xla)
            if isinstance(r, dict):
                errors[name] = r
            else:
                rates[name].append(r)
            print(f"  {model:6s} {name:18s} {r if isinstance(r, dict) else round(r)}", flush=True)
    out = {"recipe": f"configs/{model}/digits.toml", "backends": {}}
    refs = {k: _summary(rates[k]) for k in ("reference_tf", "reference_tf_xla") if k not in errors}
    out.update({k: v for k, v in refs.items()})
    out.update({k: errors[k] for k in ("reference_tf", "reference_tf_xla") if k in errors})
    best = max(refs, key=lambda k: refs[k]["examples_per_s_median"]) if refs else None
    out["baseline"] = best
    for name in contenders:
        if name.startswith("reference"):
            continue
        r = errors.get(name) or _summary(rates[name])
        if best and "examples_per_s_median" in r:
            r["ratio_to_reference"] = r["examples_per_s_median"] / refs[best]["examples_per_s_median"]
            r["ratio_to_reference_ci95"] = ratio_interval(r["runs"], refs[best]["runs"])
        out["backends"][name] = r
    return out


def main():
    import numpy as np

    import kgen

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gan,dcgan")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20,
                        help="epochs of the 1,437 training digits timed per run (a window of some seconds: "
                             "shorter ones weigh the fixed cost of a `fit` call, not the step)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=1, help="0: PyTorch's default")
    parser.add_argument("--out", default=None, help="result file (default bench/results/gan_throughput.json)")
    args = parser.parse_args()
    train = kgen.load_dataset("digits", split="train")
    RESULTS.mkdir(exist_ok=True)
    data_path = RESULTS / "_gan_throughput_data.npz"
    np.savez(data_path, x=train.x)
    result = {"benchmark": "gan_throughput", "batch_size": args.batch_size, "epochs": args.epochs,
              "repeats": args.repeats, "examples": len(train), "order": "interleaved rounds",
              "torch_threads": args.torch_threads or "default", "machine": machine(), "models": {}}
    try:
        for model in args.models.split(","):
            result["models"][model] = bench_model(model, args, data_path)
    finally:
        data_path.unlink(missing_ok=True)
    out = pathlib.Path(args.out) if args.out else RESULTS / "gan_throughput.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
