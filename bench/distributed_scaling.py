"""Data-parallel scaling: training examples per second on 1 and 2 (or more) devices, per backend.

    python bench/distributed_scaling.py --backends jax,tensorflow --devices 1,2 --epochs 3 --max-examples 512

Trains the VAE, DCGAN and PixelCNN digits recipes through `kgen.train` with
`train.distribute = "data_parallel"` and `train.devices = N`, each run in its
own process: JAX sees N devices (`--xla_force_host_platform_device_count=N`
on a CPU, the first N GPUs otherwise), TensorFlow N logical CPU devices (or
GPUs) under `MirroredStrategy`. The figure is the median over epochs after the
first (which compiles) of examples trained / epoch seconds (validation
included, as `metrics.csv` records it); the ratio is to the same backend and
model on one device in the same invocation.

On a CPU the "devices" are simulated and share the machine's cores, so the
ratio measures overhead, not speed-up: report such a run as a correctness run
(the distributed runs finish, with finite losses). The real figure needs a
machine with several GPUs (target: >= 1.8x on 2 GPUs for PixelCNN and DCGAN).
PyTorch runs under `torchrun --nproc-per-node N` (DDP over gloo on a CPU, one
process a device); DCGAN, which has BatchNorm, is refused there (see README),
and recorded so.
"""

import argparse
import json
import os
import pathlib
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

RESULTS = pathlib.Path(__file__).parent / "results"
MODELS = ("vae", "dcgan", "pixel_cnn")

RUN = r'''
import json, sys
spec = json.loads(sys.argv[1])
if spec["backend"] == "tensorflow":
    import tensorflow as tf
    if not tf.config.list_physical_devices("GPU"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * spec["devices"])
import csv, math
from kgen import config as config_lib
from kgen.training.trainer import train
sets = [f"train.epochs={spec['epochs']}", f"data.max_examples={spec['max_examples']}",
        'train.distribute="data_parallel"', f"train.devices={spec['devices']}", "train.grid_size=4"]
config = config_lib.resolve(model=spec["model"], dataset="digits", overrides=sets)
_, run_dir, last = train(config, run_dir=spec["run_dir"], verbose=0, log=lambda s: None)
rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
batch = config["train"]["batch_size"]
examples = spec["max_examples"] // batch * batch
print("RESULT " + json.dumps({"seconds": [float(r["seconds"]) for r in rows], "examples_per_epoch": examples,
                              "batch_size": batch, "finite": all(math.isfinite(v) for v in last.values())}))
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def run_one(backend, model, devices, epochs, max_examples, timeout):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if backend == "jax":
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    with tempfile.TemporaryDirectory() as tmp:
        spec = {"backend": backend, "model": model, "devices": 0 if backend == "torch" else devices,
                "epochs": epochs, "max_examples": max_examples, "run_dir": str(pathlib.Path(tmp) / "run")}
        script = pathlib.Path(tmp) / "run.py"
        script.write_text(RUN)
        args = [sys.executable, str(script), json.dumps(spec)]
        if backend == "torch":  # DDP: one process a device (torchrun)
            env["OMP_NUM_THREADS"] = "1"
            args = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(devices),
                    "--master-addr", "127.0.0.1", "--master-port", str(free_port())] + args[1:]
        start = time.perf_counter()
        try:
            proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        text = (proc.stderr + proc.stdout).splitlines()
        errors = ([line.split("kgen.errors.", 1)[1] for line in text if "kgen.errors." in line]
                  or [line for line in text if line.startswith("Error") or "Error: " in line])
        return {"error": (errors or text or ["?"])[-1][:300]}
    out = json.loads(lines[-1][len("RESULT "):])
    later = out["seconds"][1:] or out["seconds"]
    out["median_epoch_seconds"] = statistics.median(later)
    out["examples_per_second"] = out["examples_per_epoch"] / out["median_epoch_seconds"]
    out["process_seconds"] = round(time.perf_counter() - start, 1)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--devices", default="1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-examples", type=int, default=512)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--out", default=str(RESULTS / "distributed_scaling.json"))
    args = parser.parse_args()
    devices = [int(d) for d in args.devices.split(",")]
    results = {"machine": machine(), "command": " ".join(sys.argv), "epochs": args.epochs,
               "max_examples": args.max_examples, "note": (
                   "simulated CPU devices share the machine's cores: a correctness run, not a speed-up"), "runs": []}
    for backend in args.backends.split(","):
        for model in args.models.split(","):
            base = None
            for n in devices:
                r = run_one(backend, model, n, args.epochs, args.max_examples, args.timeout)
                r.update(backend=backend, model=model, devices=n)
                if n == devices[0] and "examples_per_second" in r:
                    base = r["examples_per_second"]
                if base and "examples_per_second" in r:
                    r["ratio_to_one_device"] = round(r["examples_per_second"] / base, 3)
                results["runs"].append(r)
                shown = (f"{r['examples_per_second']:.0f} examples/s, ratio {r.get('ratio_to_one_device')}"
                         if "examples_per_second" in r else r["error"])
                print(f"{backend:<10} {model:<10} {n} device(s): {shown}", flush=True)
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
