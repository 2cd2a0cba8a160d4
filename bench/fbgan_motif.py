"""FBGAN: the share of generated sequences with the analyzer's property, with feedback and without.

Two tasks, each trained twice with the same seed, data and steps, feedback on (`feedback_every = 1`)
and off (`feedback_every = 0`, plain WGAN-GP on the data):

- **text**: the bundled recipe `configs/fbgan/text.toml` (16-character windows of kgen's bundled
  corpus) with the built-in analyzer `substring:in` (a window containing "in"), through `kgen.train`;
- **motif**: the synthetic task of the tests: 1024 uniform random sequences of 4 tokens over 4
  symbols, analyzer `motif:1,2` (about 17% of the data holds it).

For each run: the share of 1000 generated sequences (argmax decoding, seed 1) with the property
before training (at initialisation) and after it, the same share in the data, and the per-epoch
`feedback_share` / `buffer_share` curves. Writes `bench/results/fbgan_motif.json`.

    python bench/fbgan_motif.py              # about 5 minutes on 2 shared CPU cores (TensorFlow)
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import keras
import numpy as np

import kgen
from kgen import config as config_lib
from kgen.models.adversarial.fbgan import motif_scores

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def share(model, n=1000):
    tokens = model.sample(n, seed=1)
    return float(np.mean(model.analyze(tokens) > model.threshold))


def text_run(feedback_every, epochs, analyzer):
    sets = [(["model", "feedback_every"], feedback_every), (["model", "analyzer"], analyzer),
            (["train", "epochs"], epochs)]
    config = config_lib.resolve(model="fbgan", dataset="text", overrides=sets)
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model, run_dir, _ = kgen.train(config, run_dir=pathlib.Path(tmp) / "run", verbose=0)
        import csv

        with open(run_dir / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
    data = kgen.load_dataset("text", seq_len=config["data"]["seq_len"]).x
    return {"data_share": float(np.mean(model.analyze(data) > model.threshold)),
            "share_after": share(model),
            "feedback_share": [float(r["feedback_share"]) for r in rows],
            "buffer_share": [float(r["buffer_share"]) for r in rows],
            "seconds": round(time.perf_counter() - start, 1)}


def motif_run(feedback_every, epochs):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).integers(0, 4, (1024, 4))
    model = kgen.build_model("fbgan", input_shape=(4,), num_levels=4, latent_dim=8, hidden_dim=16, num_blocks=0,
                             n_critic=2, buffer_size=64, analyzer="motif:1,2", feedback_every=feedback_every,
                             feedback_samples=256)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.9))
    before = share(model)
    start = time.perf_counter()
    history = model.fit(x, epochs=epochs, batch_size=64, verbose=0).history
    return {"data_share": float(motif_scores(x, (1, 2)).mean()), "share_before": before,
            "share_after": share(model), "feedback_share": history["feedback_share"],
            "buffer_share": history["buffer_share"], "seconds": round(time.perf_counter() - start, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text-epochs", type=int, default=10)
    parser.add_argument("--motif-epochs", type=int, default=8)
    parser.add_argument("--analyzer", default="substring:in", help="the text task's analyzer")
    parser.add_argument("--out", default=str(RESULTS / "fbgan_motif.json"))
    args = parser.parse_args()
    out = {"benchmark": "fbgan_motif", "backend": keras.config.backend(), "machine": machine(),
           "command": " ".join([pathlib.Path(sys.argv[0]).name] + sys.argv[1:]), "tasks": {}}
    out["tasks"]["motif"] = {"analyzer": "motif:1,2", "epochs": args.motif_epochs,
                             "feedback": motif_run(1, args.motif_epochs),
                             "no_feedback": motif_run(0, args.motif_epochs)}
    print("motif", json.dumps({k: v["share_after"] for k, v in out["tasks"]["motif"].items() if isinstance(v, dict)}))
    out["tasks"]["text"] = {"analyzer": args.analyzer, "epochs": args.text_epochs, "recipe": "fbgan/text",
                            "feedback": text_run(1, args.text_epochs, args.analyzer),
                            "no_feedback": text_run(0, args.text_epochs, args.analyzer)}
    out["ratios"] = {task: round(t["feedback"]["share_after"] / max(t["no_feedback"]["share_after"], 1e-9), 3)
                     for task, t in out["tasks"].items()}
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    summary = {task: {"data": t["feedback"]["data_share"], "feedback": t["feedback"]["share_after"],
                      "no_feedback": t["no_feedback"]["share_after"]} for task, t in out["tasks"].items()}
    print(json.dumps(summary), f"-> {path}")


if __name__ == "__main__":
    main()
