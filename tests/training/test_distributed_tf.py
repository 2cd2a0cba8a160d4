"""`--distribute data_parallel` on TensorFlow: `MirroredStrategy` over 2 logical CPU devices.

Each case runs in a subprocess (logical devices are fixed before TensorFlow
starts) under a hard timeout that kills it with SIGKILL. Noise is fixed (every
draw of `kgen.backend.random_normal` is 0.3) so that one device and two, which
draw different numbers for the same rows, can be compared weight for weight:
what is left to differ is the loss scaling (each replica's loss divided by
`num_replicas_in_sync`), which this regression-tests.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

BACKEND = keras.config.backend()

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute runs on the tensorflow backend only "
                                "(jax: test_distributed_jax.py; torch: refused, test_distributed.py)")

ROOT = pathlib.Path(__file__).resolve().parents[2]

# argv: json {"models", "runs", "tmp", "tag", "fixed_noise"}: trains each model (tiny) for 2 epochs under
# each run's overrides and saves its weights to tmp/<model>-<tag><i>.npz; then, under the strategy, the
# noise two replicas draw from one SeedGenerator and BatchNormalization's moments.
WORKER = textwrap.dedent('''
    import json, os, sys
    spec = json.loads(sys.argv[1])
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    import kgen.backend
    from kgen import config as C
    from kgen.api import get_entry
    from kgen.training import distribute
    from kgen.training.trainer import train

    real_normal = kgen.backend._NORMAL
    kgen.backend._NORMAL = lambda shape, seed: keras.ops.full(shape, 0.3)
    for model in spec["models"]:
        tiny = [f"model.{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}"
                for k, v in get_entry(model).tiny.items()]
        for i, extra in enumerate(spec["runs"]):
            sets = (["train.epochs=2", "train.batch_size=32", "data.max_examples=128", "train.grid_size=4",
                     "train.steps_per_execution=1", 'train.xla="off"'] + tiny + spec["models"][model] + extra)
            folder = os.path.join(spec["tmp"], f"{model}-{spec['tag']}{i}")
            m, _, last = train(C.resolve(model=model, dataset="digits", overrides=sets), run_dir=folder,
                               verbose=0, log=lambda s: None)
            np.savez(folder + ".npz", *[np.asarray(w) for w in m.get_weights()])
            json.dump({k: float(v) for k, v in last.items()}, open(folder + ".json", "w"))
    kgen.backend._NORMAL = real_normal

    if spec["tag"] == "two":
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                                  cross_device_ops=tf.distribute.ReductionToOneDevice())
        with strategy.scope():
            sg = keras.random.SeedGenerator(1)
            bn = keras.layers.BatchNormalization()
            bn.build((None, 3))
        draws = strategy.run(tf.function(lambda: kgen.backend.random_normal((4,), sg)))
        draws = [np.asarray(d) for d in strategy.experimental_local_results(draws)]
        x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32") * [1, 2, 3] + [0, 1, 2]
        halves = lambda ctx: tf.constant(x)[4 * ctx.replica_id_in_sync_group:4 * ctx.replica_id_in_sync_group + 4]
        data = strategy.experimental_distribute_values_from_function(halves)
        moments = lambda h: kgen.backend.batch_moments(h, (0,))
        synced = strategy.experimental_local_results(strategy.run(tf.function(moments), args=(data,)))
        distribute.synchronize_batch_norm(bn)
        bn_out = strategy.experimental_local_results(strategy.run(tf.function(lambda h: bn(h, training=True)),
                                                                  args=(data,)))
        json.dump({"draws": [d.tolist() for d in draws],
                   "moments": [[np.asarray(t).tolist() for t in r] for r in synced],
                   "bn": np.concatenate([np.asarray(t) for t in bn_out]).tolist(),
                   "bn_config": bn.get_config()["synchronized"]},
                  open(os.path.join(spec["tmp"], "checks.json"), "w"))
    print("DONE")
''')

# model -> extra overrides. The GAN's generator BatchNorm is off: with noise fixed every row of a fake
# batch is the same (variance 0: the normalization amplifies round-off). RealNVP keeps its batch norm
# (moments of the global batch) and trains with SGD: some of its weights get gradients of almost 0,
# which Adam turns into steps of the learning rate in a direction set by round-off (the order in which
# the replicas' gradients are summed), 1e-3 apart after one epoch with equal losses.
MODELS = {"vae": [], "gan": ["model.generator_batch_norm=false"], "real_nvp": ['train.optimizer="sgd"']}
DISTRIBUTED = ['train.distribute="data_parallel"', "train.devices=2"]


def _start(tmp, tag, runs):
    spec = {"models": MODELS, "runs": runs, "tmp": str(tmp), "tag": tag}
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A single-device process and a 2-replica one (128 examples, batch 32: every batch whole), at once."""
    tmp = tmp_path_factory.mktemp("distributed_tf")
    procs = [_start(tmp, "single", [[]]), _start(tmp, "two", [DISTRIBUTED])]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=400)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
        pytest.fail("timed out: " + "\n".join(p.communicate()[0][-2000:] for p in procs))
    for p, out in zip(procs, outs):
        assert p.returncode == 0 and "DONE" in out, out[-3000:]
    return tmp


def _load(path):
    data = np.load(path)
    return [data[k] for k in data.files]


@pytest.mark.parametrize("model", list(MODELS))
def test_two_replicas_match_one_device(runs, model):
    """VAE, MLP GAN and RealNVP on 2 replicas end on the single-device weights, and log the same losses
    (before the losses were divided by the replicas, the gradients and logged losses were doubled)."""
    for a, b in zip(_load(runs / f"{model}-single0.npz"), _load(runs / f"{model}-two0.npz")):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    one, two = (json.load(open(runs / f"{model}-{tag}0.json")) for tag in ("single", "two"))
    for key in one:
        if key != "seconds" and not key.startswith("val_"):  # validation drops its partial batch
            assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key


def test_gan_checkpoint_saved_under_the_strategy_reloads(runs):
    import kgen

    model = kgen.load_model(runs / "gan-two0" / "last.keras")
    for a, b in zip(_load(runs / "gan-two0.npz"), model.get_weights()):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_replicas_draw_distinct_noise(runs):
    checks = json.load(open(runs / "checks.json"))
    a, b = (np.asarray(d) for d in checks["draws"])
    assert not np.allclose(a, b)


def test_batch_norm_uses_the_global_batch(runs):
    """kgen.backend.batch_moments and BatchNormalization under the strategy: the moments of all 8 rows,
    though each replica holds 4; the layer's config still says synchronized = False (it loads anywhere)."""
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32") * [1, 2, 3] + [0, 1, 2]
    checks = json.load(open(runs / "checks.json"))
    for mean, var in checks["moments"]:
        np.testing.assert_allclose(mean, x.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(var, x.var(0), rtol=1e-4, atol=1e-6)
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)  # Keras' default epsilon
    np.testing.assert_allclose(checks["bn"], expected, rtol=1e-3, atol=1e-4)
    assert checks["bn_config"] is False
