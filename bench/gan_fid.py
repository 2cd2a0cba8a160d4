"""Domain FID/KID on digits: DCGAN and WGAN-GP beside the real-data floor and the VAE's samples.

    nice -n 10 python bench/gan_fid.py --epochs 30

Trains DCGAN and WGAN-GP from their bundled recipes (`configs/dcgan/digits.toml`,
`configs/wgan_gp/digits.toml`) for `--epochs` epochs (the recipes say 100),
then scores, on the 180-image test split, with the shipped feature classifier
(`saved_models/features-digits.keras`, a domain metric, not comparable with
Inception FID):

- each GAN's last checkpoint (`kgen evaluate` draws as many samples as the
  split has images);
- the shipped VAE (`saved_models/vae-digits.keras`), the same way;
- the untrained DCGAN generator (the ceiling end of the scale);
- the real-data floor: 180 train images (a random subset per seed) against
  the test split, what a model that samples the data distribution would
  score at this sample size. It is a reference, not a bound: with 180 images
  and 64-d features FID's finite-sample bias is most of the floor, and a
  model with less diverse samples can land below it.

Every model is scored with `--seeds` sample seeds; the JSON holds each value,
the median is printed. The GAN rows on binarized MNIST (against its valid split,
with `saved_models/features-binarized_mnist.keras`) come from
`bench/fashion_mnist_fid.py --dataset binarized_mnist`. Results:
`bench/results/gan_fid.json`.
"""

import argparse
import json
import os
import pathlib
import platform
import tempfile
import time

RESULTS = pathlib.Path(__file__).parent / "results"


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def score(model, config, seeds):
    """Sample metrics of `model` on the test split for each seed."""
    from kgen.data.pipeline import Pipeline
    from kgen.evaluation import sample_metrics

    pipeline = Pipeline(config["data"])
    data = pipeline.load("test")
    runs = [sample_metrics(model, pipeline, data, config["evaluate"], seed=s) for s in seeds]
    keys = ("fid", "fid_floor")
    out = {k: [r[k] for r in runs] for k in keys}
    out["kid"] = [r["kid"]["mean"] for r in runs]
    out["kid_std"] = [r["kid"]["std"] for r in runs]
    out["kid_floor"] = [r["kid_floor"]["mean"] for r in runs]
    out["num_samples"] = runs[0]["num_samples"]
    out["features"] = runs[0]["features"]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30, help="training epochs per GAN (recipes: 100)")
    parser.add_argument("--seeds", type=int, default=3, help="sample seeds per model")
    parser.add_argument("--models", default="dcgan,wgan_gp")
    args = parser.parse_args()

    import keras
    import numpy as np

    import kgen
    from kgen import checkpoint
    from kgen import config as config_lib
    from kgen.saved import pretrained_path
    from kgen.training.trainer import train

    seeds = list(range(args.seeds))
    report = {"machine": machine(), "backend": keras.config.backend(), "epochs": args.epochs,
              "seeds": seeds, "split": "test", "models": {}}

    def record(name, result, extra):
        result.update(extra)
        report["models"][name] = result
        med = {k: float(np.median(result[k])) for k in ("fid", "kid", "fid_floor", "kid_floor")}
        print(f"{name:>16}: FID {med['fid']:8.3f} (runs {', '.join(f'{v:.2f}' for v in result['fid'])})  "
              f"KID {med['kid']:7.3f}   floor FID {med['fid_floor']:.3f} KID {med['kid_floor']:.3f}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            config = config_lib.resolve(model=name, dataset="digits", overrides=[f"train.epochs={args.epochs}"])
            if name == "dcgan":
                hparams = {k: v for k, v in config_lib.model_hparams(config).items() if k != "conditional"}
                untrained = kgen.build_model(name, input_shape=(8, 8, 1), **hparams)
                record("dcgan_untrained", score(untrained, config, seeds), {"epochs": 0})
            start = time.perf_counter()
            _, run_dir, _ = train(config, run_dir=pathlib.Path(tmp) / name, verbose=0, log=lambda *a: None)
            seconds = time.perf_counter() - start
            model = checkpoint.load_model(run_dir / "last.keras", compile=False)
            record(name, score(model, config, seeds),
                   {"epochs": args.epochs, "train_seconds": round(seconds, 1), "checkpoint": "last.keras",
                    "recipe": f"configs/{name}/digits.toml"})
    vae_path = pretrained_path("vae", "digits")
    vae = checkpoint.load_model(vae_path, compile=False)
    record("vae (shipped)", score(vae, checkpoint.read_state(vae_path)["config"], seeds),
           {"checkpoint": "saved_models/vae-digits.keras", "epochs": 60})
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gan_fid.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {RESULTS / 'gan_fid.json'}")


if __name__ == "__main__":
    main()
