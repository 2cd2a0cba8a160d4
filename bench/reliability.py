"""Kill-at-random and concurrent-command scenarios on real `kgen train` processes (issue 26).

    python bench/reliability.py --kills 10 --epochs 30

1. **SIGKILL loop**: one run of the digits VAE recipe (`--epochs` epochs) is killed at a random moment,
   0-6 s after it holds its run folder (in training, evaluation or a checkpoint write), `--kills` times,
   and resumed with `kgen train --resume` after each kill, until it finishes. Counted:
   kills, resumes that could not load `last.keras` (checkpoints lost, goal 0), and whether the final
   weights equal those of an uninterrupted run of the same recipe (mismatches, goal 0).
2. **Two trains on one folder** (`--seed 1` and `--seed 2`, started together): exactly one may run; the
   other must be refused, and the folder must hold one run's config and checkpoint (goal: 0 mixed folders).
3. **A train and two resumes on one folder**: while the train runs, both resumes must be refused, and
   the train must finish with a loadable checkpoint (goal: 0 lost checkpoints).

Each scenario starts real processes (`python -m kgen.cli.main`), so it measures what a user sees. Writes
JSON (`--out`) with every count, the commands and the machine.
"""

import argparse
import json
import os
import pathlib
import platform
import random
import subprocess
import sys
import tempfile
import time

RESULTS = pathlib.Path(__file__).parent / "results"
BASE = ["train", "--model", "vae", "--dataset", "digits", "--quiet", "--set", "train.grid_size=16"]


def kgen(*args, wait=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "tensorflow"))
    cmd = [sys.executable, "-m", "kgen.cli.main", *args]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def weights(path):
    import kgen
    import numpy as np

    return [np.asarray(w) for w in kgen.load_model(path).get_weights()]


def same_weights(a, b):
    import numpy as np

    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def wait_for_holder(run, proc, timeout=300):
    """Until `proc` holds the run folder's lock (it has loaded its data and built or loaded its model)."""
    lock = run / ".kgen.lock"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if lock.read_text().strip() == str(proc.pid):
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def checkpoint_epoch(run):
    from kgen import checkpoint

    try:
        return checkpoint.read_state(run / "last.keras").get("epoch")
    except Exception:  # noqa: BLE001 (missing or unreadable: reported as None)
        return None


def kill_loop(root, kills, epochs, rng):
    reference = root / "reference"
    done = kgen(*BASE, "--epochs", str(epochs), "--run-dir", str(reference))
    assert done.returncode == 0, done.stderr
    run = root / "killed"
    started, lost, resumes, log = False, 0, 0, []
    for k in range(kills):
        args = [*BASE, "--epochs", str(epochs), "--run-dir", str(run)] + (["--resume"] if started else [])
        proc = kgen(*args, wait=False)
        held = wait_for_holder(run, proc)
        delay = rng.uniform(0.0, 6.0)  # into training, evaluation and checkpoint writes
        time.sleep(delay)
        proc.kill()
        proc.communicate()
        started = started or (run / "config.toml").exists()
        log.append({"kill": k + 1, "after_lock_s": round(delay, 2), "held_lock": held, "exit": proc.returncode,
                    "checkpoint_epoch_after": checkpoint_epoch(run)})
    while resumes < 4:  # resume to the end
        resumes += 1
        result = kgen(*BASE, "--epochs", str(epochs), "--run-dir", str(run), "--resume")
        if result.returncode == 0:
            break
        lost += "corrupted" in result.stderr or "unreadable" in result.stderr or "incomplete" in result.stderr
        log.append({"resume_error": result.stderr.strip().splitlines()[-1:]})
    mismatch = int(not same_weights(weights(reference / "last.keras"), weights(run / "last.keras")))
    return {"kills": kills, "epochs": epochs, "final_resumes": resumes, "checkpoints_lost": lost,
            "kills_after_a_checkpoint": sum(1 for e in log if e.get("checkpoint_epoch_after")),
            "mismatches_with_uninterrupted": mismatch, "log": log}


def two_trains(root, tries):
    mixed, both_ran, refused = 0, 0, 0
    for t in range(tries):
        run = root / f"two-{t}"
        a = kgen(*BASE, "--epochs", "4", "--seed", "1", "--run-dir", str(run), wait=False)
        b = kgen(*BASE, "--epochs", "3", "--seed", "2", "--run-dir", str(run), wait=False)
        ra, rb = a.wait(), b.wait()
        both_ran += ra == 0 and rb == 0
        refused += (ra == 0) != (rb == 0)
        from kgen import checkpoint
        from kgen import config as config_lib

        state = checkpoint.read_state(run / "last.keras")
        recorded = config_lib.resolve(config_file=run / "config.toml")
        mixed += state["config"]["train"]["seed"] != recorded["train"]["seed"]
    return {"tries": tries, "both_ran": both_ran, "one_refused": refused, "mixed_folders": mixed}


def train_and_resumes(root, tries):
    lost, refused, accepted, train_failed = 0, 0, 0, 0
    for t in range(tries):
        run = root / f"resumes-{t}"
        first = kgen(*BASE, "--epochs", "2", "--run-dir", str(run))  # a run to continue
        assert first.returncode == 0, first.stderr
        train = kgen(*BASE, "--epochs", "150", "--run-dir", str(run), "--resume", wait=False)
        wait_for_holder(run, train)
        for _ in range(2):  # while the train holds the folder
            r = kgen(*BASE, "--epochs", "150", "--run-dir", str(run), "--resume")
            refused += r.returncode != 0 and "in use by another kgen process" in r.stderr
            accepted += r.returncode == 0
        train_failed += train.wait() != 0
        try:
            weights(run / "last.keras")
        except Exception:  # noqa: BLE001
            lost += 1
    return {"tries": tries, "resumes_refused": refused, "resumes_accepted": accepted,
            "trains_failed": train_failed, "checkpoints_lost": lost}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "reliability.json"))
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    rng = random.Random(args.seed)
    start = time.time()
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "backend": os.environ["KERAS_BACKEND"]},
        "command": " ".join(["python", "bench/reliability.py", f"--kills {args.kills}",
                             f"--epochs {args.epochs}", f"--tries {args.tries}"]),
    }
    scenarios = {"kill_loop": lambda root: kill_loop(root, args.kills, args.epochs, rng),
                 "two_trains_one_folder": lambda root: two_trains(root, args.tries),
                 "train_and_two_resumes": lambda root: train_and_resumes(root, args.tries)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, scenario in scenarios.items():  # the JSON is written after each, so a crash keeps the rest
            result[name] = scenario(pathlib.Path(tmp))
            result["seconds"] = round(time.time() - start, 1)
            pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "kill_loop"} |
                     {"kill_loop": {k: v for k, v in result["kill_loop"].items() if k != "log"}}, indent=2))


if __name__ == "__main__":
    main()
