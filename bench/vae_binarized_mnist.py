"""VAE on statically binarized MNIST: test ELBO and IW bound, and training throughput.

    KGEN_DATA_DIR=../shared/data python bench/vae_binarized_mnist.py quality --epochs 200
    KERAS_BACKEND=jax KGEN_DATA_DIR=../shared/data python bench/vae_binarized_mnist.py quality --recipe binarized_mnist_iwae_cpu
    KERAS_BACKEND=jax KGEN_DATA_DIR=../shared/data python bench/vae_binarized_mnist.py quality --recipe binarized_mnist_iwae10_cpu
    KERAS_BACKEND=jax KGEN_DATA_DIR=../shared/data python bench/vae_binarized_mnist.py quality --recipe binarized_mnist_iwae10_full_cpu
    KGEN_DATA_DIR=../shared/data python bench/vae_binarized_mnist.py quality --recipe binarized_mnist_iwae  # GPU
    KGEN_DATA_DIR=../shared/data python bench/vae_binarized_mnist.py throughput --repeats 7

`quality` trains `configs/vae/binarized_mnist.toml` (Burda et al. 2016's
one-stochastic-layer VAE, 784-200-200-50) and reports the test ELBO on all
10,000 test images and the importance-weighted bound with k samples on the
first `--iw-examples` of a fixed shuffle of the test set (default: all
10,000; with k=5000 that is about 2e13 FLOP, some minutes on a CPU). Published reference: 86.76 nats
(k=5000 bound, k=1 training, 3280 epochs, Burda et al. table 1) and 88.71
(appendix, static binarization). Target: IW bound <= 87.5 nats.

`throughput` times kgen's `fit` for the same model on every backend that is
installed, compiled as `kgen train` compiles the recipe (on TensorFlow that
means XLA: the recipe sets `train.xla = "on"`), beside a plain Keras reference
(the same layers, a `tf.GradientTape` train step in a `tf.function`) measured
in the same run: steady-state examples/s over 3 epochs of the 50,000 training
images (some seconds per contender; with a shorter window the fixed cost of a
`fit` call weighs on kgen's figure and not on the reference's bare loop). Two
more contenders keep the comparison fair both ways: the reference compiled
with XLA (`jit_compile=True`), and kgen's TensorFlow `fit` with
`train.xla = "off"` (Keras' default on a CPU-only machine).
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

from throughput_stats import ratio_interval

RESULTS = pathlib.Path(__file__).parent / "results"
PUBLISHED = {"burda2016_table1_vae_k1_iw5000": 86.76, "burda2016_appendix_static_k1": 88.71}


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def quality(args):
    import keras
    import numpy as np

    import kgen
    from kgen import config as config_lib
    from kgen.data.pipeline import Pipeline
    from kgen.metrics import evaluate
    from kgen.training.trainer import train

    recipe = config_lib.recipe_path("vae", args.recipe)
    if recipe is None:
        raise SystemExit(f"no recipe configs/vae/{args.recipe}.toml")
    epochs = args.epochs or config_lib.resolve(config_file=recipe)["train"]["epochs"]
    config = config_lib.resolve(config_file=recipe, overrides=[f"train.epochs={epochs}"])
    run_dir = pathlib.Path(args.run_dir + args.recipe.removeprefix("binarized_mnist"))
    start = time.time()
    if (run_dir / "last.keras").exists():
        model, run_dir, _ = train(None, run_dir=run_dir, resume=True, epochs=epochs, verbose=0, log=print)
    else:
        model, run_dir, _ = train(config, run_dir=run_dir, verbose=0, log=print)
    train_seconds = time.time() - start
    model = kgen.load_model(run_dir / "best.keras", compile=False)
    pipeline = Pipeline(config["data"])
    test = pipeline.load("test")
    prepared = pipeline.prepare(test, seed=0)
    full = evaluate(model, prepared, iw_samples=0, batch_size=1000, seed=0)
    order = np.random.default_rng(0).permutation(len(test))[: args.iw_examples]
    prepared.x, prepared.logdet = prepared.x[order], prepared.logdet[order]
    t0 = time.time()
    iw = evaluate(model, prepared, iw_samples=args.k, batch_size=1000, seed=0)
    result = {
        "benchmark": "vae_binarized_mnist_quality",
        "recipe": f"configs/vae/{args.recipe}.toml",
        "backend": keras.config.backend(),
        "train_samples": config["model"]["train_samples"],
        "epochs": epochs,
        "train_seconds_this_invocation": round(train_seconds, 1),
        "test_elbo_nats": full["elbo"]["nats"],
        "test_elbo_examples": full["examples"],
        "iw_bound_nats": iw["iw_bound"]["nats"],
        "iw_bound_stderr": iw["iw_bound"]["nats_stderr"],
        "iw_k": args.k,
        "iw_examples": iw["examples"],
        "elbo_same_examples_nats": iw["elbo"]["nats"],
        "iw_seconds": round(time.time() - t0, 1),
        "published_nats": PUBLISHED,
        "target_iw_bound_nats": 87.5,
        "machine": machine(),
    }
    return result


# === throughput ===

REFERENCE = r'''
import json, sys, time
import numpy as np
import tensorflow as tf
import keras
from keras import layers

x = np.load(sys.argv[1])["x"]
batch, epochs = int(sys.argv[2]), int(sys.argv[3])
enc = keras.Sequential([keras.Input((784,)), layers.Dense(200, "tanh"), layers.Dense(200, "tanh"), layers.Dense(100)])
dec = keras.Sequential([keras.Input((50,)), layers.Dense(200, "tanh"), layers.Dense(200, "tanh"), layers.Dense(784)])
opt = keras.optimizers.Adam(1e-3)
variables = enc.trainable_variables + dec.trainable_variables

@tf.function(jit_compile=sys.argv[4] == "1")  # argv[4]: XLA
def step(xb):
    with tf.GradientTape() as tape:
        stats = enc(xb)
        mean, logvar = stats[:, :50], stats[:, 50:]
        z = mean + tf.exp(0.5 * logvar) * tf.random.normal(tf.shape(mean))
        logits = dec(z)
        recon = tf.reduce_sum(tf.nn.softplus(logits) - xb * logits, -1)
        kl = 0.5 * tf.reduce_sum(tf.exp(logvar) + mean ** 2 - 1.0 - logvar, -1)
        loss = tf.reduce_mean(recon + kl)
    opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

ds = tf.data.Dataset.from_tensor_slices(x.reshape(len(x), -1)).batch(batch).prefetch(2)
for xb in ds.take(2): step(xb)  # trace and warm up
t = time.perf_counter()
for _ in range(epochs):
    for xb in ds: step(xb)
print(json.dumps({"seconds": time.perf_counter() - t, "examples": epochs * len(x)}))
'''

KGEN = r'''
import json, sys, time
import numpy as np
import keras, kgen
from kgen import config as config_lib
from kgen.training.trainer import compile_model

x = np.load(sys.argv[1])["x"]
batch, epochs = int(sys.argv[2]), int(sys.argv[3])
if keras.config.backend() == "torch":
    import os, torch
    torch.set_num_threads(int(os.environ["KGEN_TORCH_THREADS"]))
model = kgen.build_model("vae", input_shape=(28, 28, 1), num_levels=2, latent_dim=50,
                         hidden_units=(200, 200), activation="tanh", likelihood="bernoulli")
# As `kgen train` compiles the recipe (Adam 1e-3; train.xla = "on": TensorFlow's step through XLA);
# argv[4] = "off" is Keras' default on a CPU-only machine instead.
recipe = config_lib.recipe_path("vae", "binarized_mnist")
overrides = ["train.xla=off"] if sys.argv[4] == "off" else []
compile_model(model, config_lib.resolve(config_file=recipe, overrides=overrides)["train"])
model.fit(x[: 8 * batch], batch_size=batch, epochs=1, verbose=0)  # trace and warm up
t = time.perf_counter()
model.fit(x, batch_size=batch, epochs=epochs, verbose=0, shuffle=False)
print(json.dumps({"seconds": time.perf_counter() - t, "examples": epochs * len(x)}))
'''


def _timed_once(code, backend, data_path, batch, epochs, torch_threads, flag):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", KGEN_TORCH_THREADS=str(torch_threads))
    out = subprocess.run([sys.executable, "-c", code, str(data_path), str(batch), str(epochs), flag],
                         capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["examples"] / r["seconds"]


def throughput(args):
    """Rounds of (reference, reference with XLA, TF, TF without XLA, JAX, PyTorch), one fresh
    process each: load on a shared machine then falls on every contender alike, and the median
    of the rounds is reported."""
    import importlib.util

    import numpy as np

    import kgen

    train = kgen.load_dataset("binarized_mnist", split="train").subset(args.examples)
    data_path = RESULTS / "_throughput_data.npz"
    np.savez(data_path, x=train.x)
    result = {"benchmark": "vae_binarized_mnist_throughput", "batch_size": args.batch_size,
              "epochs": args.epochs, "examples": len(train), "repeats": args.repeats,
              "torch_threads": args.torch_threads, "order": "interleaved rounds", "machine": machine(),
              "backends": {}}
    contenders = {"reference": ("tensorflow", REFERENCE, "0"), "reference_xla": ("tensorflow", REFERENCE, "1")}
    for backend in args.backends.split(","):
        if importlib.util.find_spec(backend) is None:
            result["backends"][backend] = {"error": f"{backend} not installed"}
        else:
            contenders[backend] = (backend, KGEN, "recipe")
            if backend == "tensorflow":
                contenders["tensorflow_no_xla"] = (backend, KGEN, "off")
    rates = {name: [] for name in contenders}
    errors = {}
    try:
        for _ in range(args.repeats):
            for name, (backend, code, flag) in contenders.items():
                if name in errors:
                    continue
                r = _timed_once(code, backend, data_path, args.batch_size, args.epochs, args.torch_threads, flag)
                if isinstance(r, dict):
                    errors[name] = r
                else:
                    rates[name].append(r)
    finally:
        data_path.unlink(missing_ok=True)

    def summary(name):
        if name in errors:
            return errors[name]
        runs = sorted(rates[name])
        return {"examples_per_s_median": runs[len(runs) // 2], "runs": runs}

    reference = summary("reference")
    result["reference_tf_gradienttape"] = reference
    result["reference_tf_gradienttape_xla"] = summary("reference_xla")
    baselines = {"ratio_to_reference": reference, "ratio_to_reference_xla": result["reference_tf_gradienttape_xla"]}
    for name in contenders:
        if name.startswith("reference"):
            continue
        r = summary(name)
        for key, base in baselines.items():
            if "examples_per_s_median" in r and "examples_per_s_median" in base:
                r[key] = r["examples_per_s_median"] / base["examples_per_s_median"]
                r[f"{key}_ci95"] = ratio_interval(r["runs"], base["runs"])
        result["backends"][name] = r
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--recipe", default="binarized_mnist",
                   help="binarized_mnist (the VAE, CPU-sized), binarized_mnist_iwae_cpu / binarized_mnist_iwae10_cpu (IWAE k=5 / k=10, 600 epochs: about 1 / 1.6 hours on JAX, 2 cores), binarized_mnist_iwae10_full_cpu (k=10 on train + valid, 450 epochs: about 2 hours) or binarized_mnist_iwae (IWAE k=50, paper-sized, a GPU run)")
    q.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs (0: keep)")
    q.add_argument("--k", type=int, default=5000)
    q.add_argument("--iw-examples", type=int, default=10000)
    q.add_argument("--run-dir", default="runs/bench-vae-binarized-mnist")
    t = sub.add_parser("throughput")
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--examples", type=int, default=50000)
    t.add_argument("--repeats", type=int, default=5)
    t.add_argument("--torch-threads", type=int, default=1,
                   help="torch.set_num_threads for the PyTorch run (small models on a few shared cores: 1)")
    t.add_argument("--out", default="", help="results file (default bench/results/vae_binarized_mnist_throughput.json)")
    t.add_argument("--backends", default="tensorflow,jax,torch", help="kgen contenders, comma-separated")
    args = parser.parse_args()
    result = quality(args) if args.what == "quality" else throughput(args)
    RESULTS.mkdir(exist_ok=True)
    if getattr(args, "out", ""):
        out = pathlib.Path(args.out)
    else:
        suffix = args.recipe.removeprefix("binarized_mnist") if args.what == "quality" else ""
        out = RESULTS / f"vae_binarized_mnist_{args.what}{suffix}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
