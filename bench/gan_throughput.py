"""GAN training throughput: kgen's adversarial step on every backend beside a hand-written TensorFlow step.

    python bench/gan_throughput.py --epochs 5 --repeats 3

Times `fit` of the GAN in `configs/gan/digits.toml` (MLP generator
32-256-256-64 with BatchNorm, discriminator 64-256-256-1 with LeakyReLU,
non-saturating loss, Adam(2e-4, 0.5) per player) on the bundled digits, on
each installed backend, each in its own process. The reference, measured in
the same run, is the same GAN written directly against TensorFlow: two
`tf.GradientTape`s and two Adam optimizers in one XLA-compiled `tf.function`,
one discriminator and one generator update per batch, as kgen's step does.
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

RESULTS = pathlib.Path(__file__).parent / "results"


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


REFERENCE = r'''
import json, sys, time
import numpy as np
import tensorflow as tf
import keras
from keras import layers

x = np.load(sys.argv[1])["x"].reshape(-1, 64)
batch, epochs = int(sys.argv[2]), int(sys.argv[3])
gen = keras.Sequential([keras.Input((32,)),
                        layers.Dense(256, use_bias=False), layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                        layers.ReLU(),
                        layers.Dense(256, use_bias=False), layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                        layers.ReLU(),
                        layers.Dense(64, "sigmoid")])
disc = keras.Sequential([keras.Input((64,)), layers.Dense(256), layers.LeakyReLU(0.2), layers.Dense(256),
                         layers.LeakyReLU(0.2), layers.Dense(1)])
d_opt, g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5)

@tf.function(jit_compile=True)
def step(real):
    n = tf.shape(real)[0]
    fake = gen(tf.random.normal((n, 32)), training=True)
    with tf.GradientTape() as tape:
        d_loss = tf.reduce_mean(tf.nn.softplus(-disc(real, training=True))) + \
                 tf.reduce_mean(tf.nn.softplus(disc(fake, training=True)))
    d_opt.apply_gradients(zip(tape.gradient(d_loss, disc.trainable_variables), disc.trainable_variables))
    with tf.GradientTape() as tape:
        g_loss = tf.reduce_mean(tf.nn.softplus(-disc(gen(tf.random.normal((n, 32)), training=True), training=True)))
    g_opt.apply_gradients(zip(tape.gradient(g_loss, gen.trainable_variables), gen.trainable_variables))
    return d_loss, g_loss

ds = tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True).prefetch(2)
for xb in ds.take(2): step(xb)  # trace and warm up
t = time.perf_counter()
for _ in range(epochs):
    for xb in ds: step(xb)
print(json.dumps({"seconds": time.perf_counter() - t, "examples": epochs * (len(x) // batch) * batch}))
'''

KGEN = r'''
import json, sys, time
import numpy as np
import keras, kgen
from kgen import config as config_lib
from kgen.training.trainer import build_for_data

x = np.load(sys.argv[1])["x"]
batch, epochs, threads = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if threads and keras.config.backend() == "torch":
    import torch
    torch.set_num_threads(threads)
x = x[: (len(x) // batch) * batch]
config = config_lib.resolve(model="gan", dataset="digits")
model = build_for_data(config, kgen.load_dataset("digits"))
model.compile_for_training(config["train"])  # as `kgen train` compiles
model.fit(x[: 2 * batch], batch_size=batch, epochs=1, verbose=0)  # trace and warm up
t = time.perf_counter()
model.fit(x, batch_size=batch, epochs=epochs, verbose=0, shuffle=False)
print(json.dumps({"seconds": time.perf_counter() - t, "examples": epochs * len(x)}))
'''


def _timed(code, backend, data_path, batch, epochs, repeats, threads=0):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    rates = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code, str(data_path), str(batch), str(epochs), str(threads)],
                             capture_output=True, text=True, env=env, timeout=3600)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rates.append(r["examples"] / r["seconds"])
    rates.sort()
    return {"examples_per_s_median": rates[len(rates) // 2], "runs": rates}


def main():
    import importlib.util

    import numpy as np

    import kgen

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=0, help="0: PyTorch's default")
    args = parser.parse_args()
    train = kgen.load_dataset("digits", split="train")
    RESULTS.mkdir(exist_ok=True)
    data_path = RESULTS / "_gan_throughput_data.npz"
    np.savez(data_path, x=train.x)
    result = {"benchmark": "gan_throughput", "recipe": "configs/gan/digits.toml", "batch_size": args.batch_size,
              "epochs": args.epochs, "examples": len(train), "torch_threads": args.torch_threads or "default",
              "machine": machine(), "backends": {}}
    try:
        reference = _timed(REFERENCE, "tensorflow", data_path, args.batch_size, args.epochs, args.repeats)
        result["reference_tf_two_tapes"] = reference
        for backend in ("tensorflow", "jax", "torch"):
            if importlib.util.find_spec(backend) is None:
                result["backends"][backend] = {"error": f"{backend} not installed"}
                continue
            r = _timed(KGEN, backend, data_path, args.batch_size, args.epochs, args.repeats, args.torch_threads)
            if "examples_per_s_median" in r and "examples_per_s_median" in reference:
                r["ratio_to_reference"] = r["examples_per_s_median"] / reference["examples_per_s_median"]
            result["backends"][backend] = r
    finally:
        data_path.unlink(missing_ok=True)
    out = RESULTS / "gan_throughput.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
