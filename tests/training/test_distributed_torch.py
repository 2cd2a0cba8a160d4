"""`--distribute data_parallel` on PyTorch: DistributedDataParallel, 2 gloo processes under torchrun.

The ranks run in subprocesses under a hard timeout that kills them with
SIGKILL (a collective waiting on a rank that is gone ignores SIGTERM); the
single-device reference trains in this process.
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

from kgen import checkpoint
from kgen import config as config_lib
from kgen.api import get_entry
from kgen.training.trainer import train

BACKEND = keras.config.backend()

pytestmark = pytest.mark.skipif(BACKEND != "torch", reason="DDP runs on the torch backend only "
                                "(jax: test_distributed_jax.py; tensorflow: test_distributed_tf.py)")

ROOT = pathlib.Path(__file__).resolve().parents[2]

# model -> overrides. The MLP GAN's generator BatchNorm is off: BatchNorm is refused under DDP.
MODELS = {"vae": [], "gan": ["model.generator_batch_norm=false"]}

WORKER = textwrap.dedent('''
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    import numpy as np
    from kgen import config as C
    from kgen.training.trainer import train
    spec = json.loads(sys.argv[1])
    rank = int(os.environ["RANK"])
    for model, sets in spec["sets"].items():
        cfg = C.resolve(model=model, dataset="digits", overrides=sets + ['train.distribute="data_parallel"'])
        m, _, _ = train(cfg, run_dir=os.path.join(spec["tmp"], model), verbose=0, log=lambda s: None)
        np.savez(os.path.join(spec["tmp"], f"{model}-rank{rank}.npz"), *[np.asarray(w) for w in m.get_weights()])
    print("DONE")
''')


def _sets(model):
    tiny = [f"model.{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in get_entry(model).tiny.items()]
    return (["train.epochs=2", "train.batch_size=32", "data.max_examples=128", "data.valid_fraction=0.0713",
             "train.grid_size=4"] + tiny + MODELS[model])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    script = tmp / "worker.py"
    script.write_text(WORKER)
    spec = {"sets": {m: _sets(m) for m in MODELS}, "tmp": str(tmp)}
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
            "--master-port", str(_free_port()), str(script), json.dumps(spec)]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("torchrun timed out: " + proc.communicate()[0][-3000:])
    assert proc.returncode == 0 and out.count("DONE") == 2, out[-3000:]
    return tmp


def _load(path):
    data = np.load(path)
    return [data[k] for k in data.files]


@pytest.mark.parametrize("model", list(MODELS))
def test_ranks_agree_and_match_one_device(ranks, model, tmp_path):
    """VAE (DDP wrapper) and GAN (gradients averaged in the adversarial step): both ranks end on the
    same weights, the weights one process training the same global batches ends on."""
    rank0, rank1 = _load(ranks / f"{model}-rank0.npz"), _load(ranks / f"{model}-rank1.npz")
    for a, b in zip(rank0, rank1):
        np.testing.assert_array_equal(a, b)
    single, _, _ = train(config_lib.resolve(model=model, dataset="digits", overrides=_sets(model)),
                         run_dir=tmp_path / "single", verbose=0, log=lambda s: None)
    for a, b in zip(rank0, single.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), atol=1e-6, rtol=0)


def test_only_rank_zero_wrote_the_run_folder(ranks):
    names = sorted(p.name for p in (ranks / "vae").iterdir() if p.name != checkpoint.LOCK_NAME)
    assert names == ["best.keras", "config.toml", "last.keras", "loss.png", "metrics.csv", "samples"], names
