"""`--distribute data_parallel` on JAX: `keras.distribution.DataParallel` over simulated devices and processes.

Each case runs in a subprocess (the device count and the process group are
fixed when JAX starts) under a hard timeout that kills it with SIGKILL: a
collective waiting on a peer that is gone ignores SIGTERM.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import kgen
from kgen import checkpoint

BACKEND = keras.config.backend()

pytestmark = pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution runs on the jax backend only "
                                "(tensorflow: test_distributed_tf.py; torch: refused, test_distributed.py)")

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Trains `models` (tiny sizes, plus each one's own overrides) for 2 epochs under each of `runs` (lists of
# config overrides), in order, and saves each run's weights to `tmp/<model>-<tag><i>.npz`.
# A process trains under one distribution setting (Keras' global distribution state), or several that all
# distribute.
WORKER = textwrap.dedent('''
    import json, os, sys
    spec = json.loads(sys.argv[1])
    import numpy as np
    from kgen import config as C
    from kgen.api import get_entry
    from kgen.training.trainer import train

    for model, own in spec["models"].items():
        tiny = [f"model.{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}"
                for k, v in get_entry(model).tiny.items()] + own
        for i, extra in enumerate(spec["runs"]):
            # 128 validation examples: whole batches too (a partial one is dropped under distribution,
            # and with it a noise draw, so a plain run would continue from another seed state).
            sets = ["train.epochs=2", "train.batch_size=32", f"data.max_examples={spec['examples']}",
                    "data.valid_fraction=0.0713", "train.grid_size=4", "train.steps_per_execution=1"] + tiny + extra
            cfg = C.resolve(model=model, dataset="digits", overrides=sets)
            folder = os.path.join(spec["tmp"], f"{model}-{spec['tag']}{i}")
            m, _, last = train(cfg, run_dir=folder, verbose=0, log=lambda s: None)
            assert np.isfinite(last["loss"]), last
            np.savez(folder + ".npz", *[np.asarray(w) for w in m.get_weights()])
            if spec.get("resume") and i == len(spec["runs"]) - 1:  # the last setting again: 1 epoch, resumed to 2
                cut = folder + "-cut"
                train(C.resolve(model=model, dataset="digits", overrides=sets + ["train.epochs=1"]), run_dir=cut,
                      verbose=0, log=lambda s: None)
                m, _, _ = train(None, run_dir=cut, resume=True, epochs=2, verbose=0, log=lambda s: None)
                np.savez(cut + ".npz", *[np.asarray(w) for w in m.get_weights()])
    print("DONE")
''')
DISTRIBUTED = ['train.distribute="data_parallel"', "train.devices=2"]
ONE_DEVICE = ['train.distribute="data_parallel"', "train.devices=1"]


def _env(**extra):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _run(args, env, timeout):
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # a hung collective ignores SIGTERM
        out, _ = proc.communicate()
        pytest.fail(f"timed out after {timeout} s:\n{out[-3000:]}")
    return proc.returncode, out


def _start(tmp_path, tag, models, examples, runs, resume=False):
    spec = {"models": models, "examples": examples, "runs": runs, "tmp": str(tmp_path), "tag": tag, "resume": resume}
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)],
                            env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait(procs, timeout):
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)  # a hung collective ignores SIGTERM
        pytest.fail(f"timed out after {timeout} s: " + "\n".join(p.communicate()[0][-2000:] for p in procs))
    for p, out in zip(procs, outs):
        assert p.returncode == 0 and "DONE" in out, out[-3000:]


def _max_diff(a, b):
    a, b = np.load(a), np.load(b)
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a.files)


# model -> its own overrides. RealNVP's batch norm is off: its shift gets a gradient of almost 0, which
# Adam turns into steps of the learning rate in a direction set by round-off (3e-4 apart after 2 epochs
# with equal losses); the MLP GAN keeps its generator BatchNorm (global-batch statistics on JAX).
MODELS = {"vae": [], "gan": [], "real_nvp": ["model.batch_norm=false"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process trains single-device, one on 2 devices (256 examples, batch 32: every batch whole), one
    on 1 then 2 distributed devices with 200 examples (8 left over each epoch), then 1 epoch resumed to 2;
    all three at once."""
    tmp = tmp_path_factory.mktemp("distributed")
    _wait([_start(tmp, "single", MODELS, 256, [[]]), _start(tmp, "two", MODELS, 256, [DISTRIBUTED]),
           _start(tmp, "uneven", {"vae": []}, 200, [ONE_DEVICE, DISTRIBUTED], resume=True)],
          timeout=400)
    return tmp


@pytest.mark.parametrize("model", list(MODELS))
def test_two_devices_match_one_device(runs, model):
    """VAE, MLP GAN and RealNVP: 2 epochs on 2 simulated devices end on the single-device weights."""
    assert _max_diff(runs / f"{model}-single0.npz", runs / f"{model}-two0.npz") < 1e-6


def test_uneven_data_set_drops_the_partial_batch(runs):
    """200 examples at batch 32 leave 8: dropped each epoch on 2 devices as on 1 (a plain run would
    fail to split them: IndivisibleError), and the weights agree."""
    assert _max_diff(runs / "vae-uneven0.npz", runs / "vae-uneven1.npz") < 1e-6


def test_resume_under_distribution_equals_an_uninterrupted_run(runs):
    """2 devices: 1 epoch, then --resume to 2 (the model loaded under the distribution) ends where 2
    uninterrupted epochs end."""
    assert _max_diff(runs / "vae-uneven1.npz", runs / "vae-uneven1-cut.npz") < 1e-6


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_write_one_run_folder_that_reloads(tmp_path):
    """2 local processes (gloo on 127.0.0.1), one CPU device each: the VAE trains, only process 0 writes
    the run folder, and its checkpoint reloads on one device with the weights both processes ended on."""
    run_dir = tmp_path / "run"
    port = _free_port()
    worker = textwrap.dedent('''
        import sys, numpy as np
        from kgen import config as C
        from kgen.training.trainer import train
        sets = ["train.epochs=2", "train.batch_size=32", "data.max_examples=200", "train.grid_size=4",
                "model.latent_dim=2", "model.hidden_units=[16]", 'train.distribute="data_parallel"']
        model, _, _ = train(C.resolve(model="vae", dataset="digits", overrides=sets), run_dir=sys.argv[1],
                            verbose=0, log=lambda s: None)
        np.savez(sys.argv[2], *[np.asarray(w) for w in model.get_weights()])
        print("DONE")
    ''')
    procs = []
    for pid in range(2):
        env = _env(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}", KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                   KERAS_DISTRIBUTION_PROCESS_ID=str(pid))
        procs.append(subprocess.Popen([sys.executable, "-c", worker, str(run_dir), str(tmp_path / f"w{pid}.npz")],
                                      env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=120)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
        pytest.fail("two-process run timed out: " + "\n".join(p.communicate()[0][-2000:] for p in procs))
    for p, out in zip(procs, outs):
        assert p.returncode == 0 and "DONE" in out, out[-3000:]
    names = sorted(p.name for p in run_dir.iterdir() if p.name != checkpoint.LOCK_NAME)
    assert names == ["best.keras", "config.toml", "last.keras", "loss.png", "metrics.csv", "samples"], names
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]  # no other process left a temporary
    w0, w1 = (np.load(tmp_path / f"w{pid}.npz") for pid in range(2))
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])

    reloaded = kgen.load_model(run_dir / "last.keras")  # this process: one device, no distribution
    for key, w in zip(w0.files, reloaded.get_weights()):
        np.testing.assert_array_equal(w0[key], np.asarray(w))
