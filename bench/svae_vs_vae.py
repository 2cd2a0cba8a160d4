"""Structured VAE (GMM and LDS latents) against kgen's plain VAE of the same size, on pinwheel and bouncing_dot.

    python bench/svae_vs_vae.py                       # both parts, the recipes' epochs
    python bench/svae_vs_vae.py --part pinwheel --pinwheel-epochs 30

Pinwheel: `configs/svae/pinwheel.toml` (GMM prior, K = 10, 2-D latents, 50-unit tanh networks,
Gaussian likelihood) and a `vae` with the same networks (latent_dim 2, hidden_units [50], tanh,
Gaussian likelihood), trained on the same 5000 points for the same epochs, batch and learning rate;
both scored on 2000 test points by `kgen.evaluation.evaluate_checkpoint` (the ELBO, nats a point;
the SVAE's is its local bound at E[theta]).

bouncing_dot: `configs/svae/bouncing_dot.toml` (LDS prior, 4-D state a frame) and a `vae` on the
whole video (latent_dim 4, hidden_units [50], tanh, Bernoulli), same epochs; held-out ELBO per frame.
Frame prediction (the SVAE's `frame_prediction_error`: filter the first 10 frames, roll E[A]
forward, decode) is compared with two baselines the VAE cannot beat without dynamics: repeating the
last given frame, and each pixel's mean over the training frames. The plain VAE has no dynamics to
roll forward, so it has no frame-prediction figure.

Writes bench/results/svae_vs_vae.json (or --out).
"""

import argparse
import json
import os
import pathlib
import platform
import tempfile
import time

RESULTS = pathlib.Path(__file__).parent / "results"
ROOT = pathlib.Path(__file__).resolve().parents[1]


def train_and_score(config, run_dir, split="test", max_examples=0):
    import kgen
    from kgen.evaluation import evaluate_checkpoint

    start = time.time()
    _, run_dir, last = kgen.train(config, run_dir=run_dir, verbose=0, log=lambda m: None)
    seconds = time.time() - start
    result = evaluate_checkpoint(run_dir / "last.keras", split=split, iw_samples=0, max_examples=max_examples,
                                 progress=False, sample_metrics_flag=False)
    return result, last, round(seconds, 1), run_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("both", "pinwheel", "bouncing_dot"), default="both")
    parser.add_argument("--pinwheel-epochs", type=int, default=None, help="Default: the recipe's.")
    parser.add_argument("--bouncing-epochs", type=int, default=None, help="Default: the recipe's.")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    import kgen
    from kgen import config as config_lib

    root = pathlib.Path(tempfile.mkdtemp())
    out = {"backend": keras.config.backend(), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores "
                                                         "(shared)", "python": platform.python_version()}
    if args.part in ("both", "pinwheel"):
        recipe = ROOT / "configs" / "svae" / "pinwheel.toml"
        sets = [] if args.pinwheel_epochs is None else [f"train.epochs={args.pinwheel_epochs}"]
        svae_cfg = config_lib.resolve(config_file=recipe, overrides=sets)
        t = svae_cfg["train"]
        vae_cfg = config_lib.resolve(model="vae", dataset="pinwheel", overrides=[
            "model.latent_dim=2", "model.hidden_units=[50]", "model.activation=tanh", "model.likelihood=gaussian",
            f"train.epochs={t['epochs']}", f"train.batch_size={t['batch_size']}",
            f"train.learning_rate={t['learning_rate']}", f"data.max_examples={svae_cfg['data']['max_examples']}",
            "train.grid_size=1000"])
        part = {"train_examples": svae_cfg["data"]["max_examples"], "test_examples": 2000, "epochs": t["epochs"]}
        for name, cfg in (("svae", svae_cfg), ("vae", vae_cfg)):
            res, last, seconds, run_dir = train_and_score(cfg, root / f"pinwheel-{name}", max_examples=2000)
            part[name] = {"elbo_nats": res["elbo"]["nats"], "elbo_stderr": res["elbo"]["nats_stderr"],
                          "recon": res["recon"], "kl": res["kl"], "train_seconds": seconds,
                          "last_epoch_metrics": last}
            if name == "svae":
                part[name]["clusters_used"] = res.get("clusters_used")
                part[name]["recipe"] = str(recipe.relative_to(ROOT))
            print(name, "pinwheel", part[name], flush=True)
        part["elbo_gain_nats"] = part["svae"]["elbo_nats"] - part["vae"]["elbo_nats"]
        out["pinwheel"] = part
    if args.part in ("both", "bouncing_dot"):
        recipe = ROOT / "configs" / "svae" / "bouncing_dot.toml"
        sets = [] if args.bouncing_epochs is None else [f"train.epochs={args.bouncing_epochs}"]
        svae_cfg = config_lib.resolve(config_file=recipe, overrides=sets)
        t = svae_cfg["train"]
        vae_cfg = config_lib.resolve(model="vae", dataset="bouncing_dot", overrides=[
            "model.latent_dim=4", "model.hidden_units=[50]", "model.activation=tanh", "model.likelihood=bernoulli",
            "model.architecture=mlp", f"train.epochs={t['epochs']}", f"train.batch_size={t['batch_size']}",
            f"train.learning_rate={t['learning_rate']}", "train.grid_size=16"])
        test = kgen.load_dataset("bouncing_dot", split="test").x
        train_x = kgen.load_dataset("bouncing_dot", split="train").x
        frames = test.shape[1]
        part = {"frames": frames, "test_videos": len(test), "epochs": t["epochs"]}
        for name, cfg in (("svae", svae_cfg), ("vae", vae_cfg)):
            res, last, seconds, run_dir = train_and_score(cfg, root / f"bouncing-{name}")
            part[name] = {"elbo_nats_per_video": res["elbo"]["nats"], "elbo_nats_per_frame": res["elbo"]["nats"] / frames,
                          "train_seconds": seconds, "last_epoch_metrics": last}
            if name == "svae":
                part[name]["frame_prediction_mse"] = res["frame_prediction_mse"]
                part[name]["frame_prediction_prefix"] = prefix = res["frame_prediction_prefix"]
                part[name]["recipe"] = str(recipe.relative_to(ROOT))
            print(name, "bouncing_dot", part[name], flush=True)
        future = test[:, prefix:]
        part["baselines"] = {
            "repeat_last_frame_mse": float(np.mean((test[:, prefix - 1 : prefix] - future) ** 2)),
            "pixel_mean_mse": float(np.mean((train_x.mean(axis=(0, 1), keepdims=True) - future) ** 2)),
        }
        part["elbo_per_frame_gain_nats"] = part["svae"]["elbo_nats_per_frame"] - part["vae"]["elbo_nats_per_frame"]
        out["bouncing_dot"] = part
    path = pathlib.Path(args.out) if args.out else RESULTS / "svae_vs_vae.json"
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
