"""Why kgen's VAE step was slower under XLA on a CPU: the probe behind the README's XLA note.

    KGEN_DATA_DIR=../shared/data python bench/vae_xla_noise_probe.py --repeats 5

The same minimal VAE (784-200-200-50 tanh, Bernoulli decoder, batch 100, Adam 1e-3) trained with
Keras' `fit` on TensorFlow, compiled with XLA (`jit_compile=True`, `steps_per_execution = 8`), four
ways of drawing the reparameterization noise:

- `keras_seedgenerator`: `keras.random.normal(..., seed=SeedGenerator)` (a `tf.random.stateless_normal`
  with TensorFlow's default algorithm on a seed drawn from the generator's state, so checkpoints carry
  the random state and a resumed run repeats the uninterrupted one), as kgen's VAE drew until it moved
  to `kgen.backend.random_normal`, which is `stateless_philox` below;
- `stateless_philox`, `stateless_threefry`: `tf.random.stateless_normal` with that algorithm on the
  same generator's seed;
- `tf_stateful`: `tf.random.normal` (TensorFlow's global stateful generator: not checkpointed).

And `keras_seedgenerator` without XLA, the default on a CPU-only machine. One fresh process per run,
interleaved rounds, 2 epochs of the 50,000 training images each; medians.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys

RESULTS = pathlib.Path(__file__).parent / "results"

PROGRAM = r'''
import json, sys, time
import keras, kgen, tensorflow as tf
from keras import layers, ops
from keras.src.random.seed_generator import draw_seed

noise, xla = sys.argv[1], sys.argv[2] == "1"
x = kgen.load_dataset("binarized_mnist", split="train").x[:50000].reshape(-1, 784)


class VAE(keras.Model):
    def __init__(self):
        super().__init__()
        self.enc = keras.Sequential([layers.Dense(200, "tanh"), layers.Dense(200, "tanh"), layers.Dense(100)])
        self.dec = keras.Sequential([layers.Dense(200, "tanh"), layers.Dense(200, "tanh"), layers.Dense(784)])
        self.seed_generator = keras.random.SeedGenerator(0)

    def call(self, xb):
        xb = ops.cast(xb, "float32")
        stats = self.enc(xb)
        mean, logvar = stats[:, :50], stats[:, 50:]
        if noise == "keras_seedgenerator":
            eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        elif noise == "tf_stateful":
            eps = tf.random.normal(tf.shape(mean))
        else:
            seed = tf.cast(tf.math.floormod(draw_seed(self.seed_generator), tf.int32.max - 1), "int32")
            eps = tf.random.stateless_normal(tf.shape(mean), seed=seed, alg=noise.removeprefix("stateless_"))
        logits = self.dec(mean + ops.exp(0.5 * logvar) * eps)
        recon = ops.sum(ops.softplus(logits) - xb * logits, -1)
        return recon + 0.5 * ops.sum(ops.exp(logvar) + mean ** 2 - 1.0 - logvar, -1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return ops.mean(y_pred)


model = VAE()
model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=8, jit_compile=xla)
model.fit(x[:200], batch_size=100, epochs=1, verbose=0)  # trace and warm up
t = time.perf_counter()
model.fit(x, batch_size=100, epochs=2, verbose=0, shuffle=False)
print(json.dumps({"examples_per_s": 2 * len(x) / (time.perf_counter() - t)}))
'''

VARIANTS = [("keras_seedgenerator", False), ("keras_seedgenerator", True), ("stateless_philox", True),
            ("stateless_threefry", True), ("tf_stateful", True)]


def _name(noise, xla):
    return f"{noise}_xla" if xla else noise


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "vae_xla_noise_probe.json"))
    args = parser.parse_args()
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    runs = {_name(noise, xla): [] for noise, xla in VARIANTS}
    for _ in range(args.repeats):
        for noise, xla in VARIANTS:
            out = subprocess.run([sys.executable, "-c", PROGRAM, noise, "1" if xla else "0"],
                                 capture_output=True, text=True, env=env, timeout=1800, check=True)
            rate = json.loads(out.stdout.strip().splitlines()[-1])["examples_per_s"]
            runs[_name(noise, xla)].append(rate)
            print(f"{noise}{' (XLA)' if xla else ''}: {rate:.0f} examples/s", flush=True)
    result = {"benchmark": "vae_xla_noise_probe", "repeats": args.repeats, "batch_size": 100,
              "steps_per_execution": 8, "cpus": os.cpu_count(),
              "variants": {name: {"examples_per_s_median": sorted(r)[len(r) // 2], "runs": sorted(r)}
                           for name, r in runs.items()}}
    RESULTS.mkdir(exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result["variants"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
