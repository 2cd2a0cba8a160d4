"""Mode coverage on the 8-Gaussians ring and the 25-Gaussian grid: GAN (two losses), WGAN-GP, BEGAN.

    python bench/gan_toy_modes.py --steps 3000 --datasets 8gaussians,25gaussians

The standard toy test of mode collapse (Metz et al. 2017; Srivastava et al.
2017, VEEGAN): after training, draw 2500 samples and report

- modes covered: modes (of 8 or 25) with at least 20 samples within 3
  standard deviations of their centre;
- high-quality fraction: samples within 3 standard deviations of the nearest
  centre.

The baseline in the same run is 2500 points of the data itself (every mode,
about 99% high quality). All models share MLP players of 3 x 256 units and
z in R^2, and train for the same number of generator steps with batch 256
on the TensorFlow backend (or KERAS_BACKEND): the GANs with Adam(2e-4, 0.5),
WGAN-GP with its paper settings (Adam(1e-4, 0, 0.9), lambda 10, n_critic 5),
BEGAN with an MLP autoencoder discriminator (gamma 0.5) and a 1-D code: its
discriminator's bottleneck is the latent size, and a 2-D bottleneck on 2-D data
lets the autoencoder learn the identity, which reconstructs every point and
gives the generator no signal (measured: 0 of 8 modes with latent_dim 2).

`--models` re-runs some models only; their rows replace those in an existing
results file of the same steps, batch size and backend.
"""

import argparse
import json
import os
import pathlib
import platform
import time

RESULTS = pathlib.Path(__file__).parent / "results"


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def mode_stats(samples, dataset="8gaussians"):
    import numpy as np

    from kgen.data import toy2d

    centers, std = {"8gaussians": (toy2d.eight_gaussians_centers(), toy2d.EIGHT_GAUSSIANS_STD),
                    "25gaussians": (toy2d.grid25_centers(), toy2d.GRID25_STD)}[dataset]
    dist = np.linalg.norm(samples[:, None, :] - centers[None], axis=-1)
    nearest, d = dist.argmin(1), dist.min(1)
    good = d < 3 * std
    counts = np.bincount(nearest[good], minlength=len(centers))
    return {"modes_covered": int((counts >= 20).sum()), "high_quality_fraction": float(good.mean()),
            "samples_per_mode": counts.tolist()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="generator steps per model")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", default="8gaussians,25gaussians")
    parser.add_argument("--models", default="gan_non_saturating,gan_minimax,wgan_gp,began")
    parser.add_argument("--out", default=None, help="results file (default bench/results/gan_toy_modes.json)")
    args = parser.parse_args()

    import keras

    import kgen

    units = (256, 256, 256)
    builders = {
        "gan_non_saturating": lambda: kgen.build_model("gan", input_shape=(2,), latent_dim=2, generator_units=units,
                                                       discriminator_units=units, loss="non_saturating"),
        "gan_minimax": lambda: kgen.build_model("gan", input_shape=(2,), latent_dim=2, generator_units=units,
                                                discriminator_units=units, loss="minimax"),
        "wgan_gp": lambda: kgen.build_model("wgan_gp", input_shape=(2,), architecture="mlp", latent_dim=2,
                                            generator_units=units, critic_units=units),
        "began": lambda: kgen.build_model("began", input_shape=(2,), architecture="mlp", latent_dim=1,
                                          hidden_units=units),
    }
    names = args.models.split(",")
    result = {"benchmark": "gan_toy_modes", "steps": args.steps, "batch_size": args.batch_size,
              "backend": keras.config.backend(), "machine": machine(), "datasets": {}}
    out = pathlib.Path(args.out) if args.out else RESULTS / "gan_toy_modes.json"
    if out.exists():  # keep the other models' rows of the same setting
        old = json.loads(out.read_text())
        if all(old.get(k) == result[k] for k in ("steps", "batch_size", "backend")):
            result["datasets"] = old.get("datasets", {})
    for dataset in args.datasets.split(","):
        data = kgen.load_dataset(dataset).x
        entry = result["datasets"].get(dataset, {"models": {}})
        entry["baseline_data"] = mode_stats(kgen.load_dataset(dataset, split="test").x[:2500], dataset)
        print(dataset, "data", json.dumps(entry["baseline_data"]), flush=True)
        steps_per_epoch = len(data) // args.batch_size
        epochs = max(1, round(args.steps / steps_per_epoch))
        for name in names:
            keras.utils.set_random_seed(args.seed)
            model = builders[name]()
            model.compile()
            t = time.perf_counter()
            history = model.fit(data, batch_size=args.batch_size, epochs=epochs, verbose=0).history
            stats = mode_stats(model.sample(2500, seed=args.seed), dataset)
            stats.update({"train_seconds": round(time.perf_counter() - t, 1),
                          "generator_steps": int(model.optimizer.generator_optimizer.iterations.numpy()),
                          "final": {k: float(v[-1]) for k, v in history.items()}})
            entry["models"][name] = stats
            print(dataset, name, json.dumps({k: v for k, v in stats.items() if k != "final"}), flush=True)
        result["datasets"][dataset] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
