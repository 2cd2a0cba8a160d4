"""Log-likelihoods of GANs by AIS (Wu et al. 2017) on digits: the GAN and WGAN-GP recipes under Gaussian observation noise.

    nice -n 10 python bench/gan_decoder_ais.py --models gan,wgan_gp --sigmas 0.05,0.1,0.2

Each model trains from its bundled digits recipe (`configs/<model>/digits.toml`, its own epochs unless
`--epochs`), then `kgen.evaluation.evaluate_checkpoint(..., ais_sigma=S)` estimates
log p(x) = log E_z N(x; G(z), S^2 I) (pixel values in [0, 1]) by AIS: first on `--valid-examples`
examples of the valid split for every S of `--sigmas` (`--valid-betas` betas), then on the whole test
split at the S that scored best on valid (`--test-betas`), as Wu et al. choose S. The figures are log
*densities* of [0, 1] images (larger is better; they can be positive): comparable between the GANs at
one S, not with discrete NLLs. Also recorded: the domain FID of each model's samples (`kgen evaluate`'s
default for a GAN), so the two views of sample quality sit side by side.

Results: `bench/results/gan_decoder_ais.json`.
"""

import argparse
import json
import os
import pathlib
import platform
import tempfile
import time

RESULTS = pathlib.Path(__file__).parent / "results"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="gan,wgan_gp")
    parser.add_argument("--sigmas", default="0.05,0.1,0.2")
    parser.add_argument("--epochs", type=int, default=None, help="Override the recipes' epochs.")
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--valid-examples", type=int, default=60)
    parser.add_argument("--valid-betas", type=int, default=300)
    parser.add_argument("--test-betas", type=int, default=1000)
    parser.add_argument("--out", default=str(RESULTS / "gan_decoder_ais.json"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from kgen import config as config_lib
    from kgen.evaluation import evaluate_checkpoint
    from kgen.training.trainer import train

    sigmas = [float(s) for s in args.sigmas.split(",")]
    out = {"benchmark": "gan_decoder_ais", "backend": keras.config.backend(), "sigmas": sigmas,
           "chains": args.chains, "valid_examples": args.valid_examples, "valid_betas": args.valid_betas,
           "test_betas": args.test_betas, "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
           "command": "python bench/gan_decoder_ais.py " + " ".join(
               [f"--models {args.models}", f"--sigmas {args.sigmas}",
                *([f"--epochs {args.epochs}"] if args.epochs else []), f"--chains {args.chains}",
                f"--valid-examples {args.valid_examples}", f"--valid-betas {args.valid_betas}",
                f"--test-betas {args.test_betas}"]),
           "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            overrides = [f"train.epochs={args.epochs}"] if args.epochs else []
            config = config_lib.resolve(model=name, dataset="digits", overrides=overrides)
            start = time.time()
            _, run_dir, last = train(config, run_dir=pathlib.Path(tmp) / name, verbose=0)
            entry = {"epochs": config["train"]["epochs"], "train_seconds": round(time.time() - start, 1),
                     "last_metrics": last, "valid": {}}
            for sigma in sigmas:
                start = time.time()
                r = evaluate_checkpoint(run_dir / "last.keras", split="valid", max_examples=args.valid_examples,
                                        progress=False, sample_metrics_flag=False, ais_sigma=sigma,
                                        ais_chains=args.chains, ais_betas=args.valid_betas)
                entry["valid"][str(sigma)] = {"log_density": r["ais"]["nats"], "stderr": r["ais"]["nats_stderr"],
                                              "accept_rate": r["ais"]["accept_rate"],
                                              "seconds": round(time.time() - start, 1)}
                print(name, "valid sigma", sigma, entry["valid"][str(sigma)], flush=True)
            best = max(sigmas, key=lambda s: entry["valid"][str(s)]["log_density"])
            start = time.time()
            r = evaluate_checkpoint(run_dir / "last.keras", split="test", progress=False, ais_sigma=best,
                                    ais_chains=args.chains, ais_betas=args.test_betas)
            entry["test"] = {"sigma": best, "log_density": r["ais"]["nats"], "stderr": r["ais"]["nats_stderr"],
                             "chain_stderr": r["ais"]["chain_stderr"], "accept_rate": r["ais"]["accept_rate"],
                             "examples": r["examples"], "fid": r.get("fid"), "fid_floor": r.get("fid_floor"),
                             "seconds": round(time.time() - start, 1)}
            print(name, "test", entry["test"], flush=True)
            out["models"][name] = entry
            path = pathlib.Path(args.out)  # after each model: a cut run keeps what it measured
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out, indent=2, default=float) + "\n")
            print(f"-> {path}")


if __name__ == "__main__":
    main()
