"""Domain FID/KID of latent models' samples on binarized MNIST, from their run folders.

    KGEN_DATA_DIR=../shared/data python bench/latent_fid.py --num-samples 10000 \
        aae_16_clusters_25=/work/runs/aae_16_clusters_25 gumbel_categorical_400=/work/runs/gumbel_categorical_400

Scores each run's `best.keras` with `kgen.evaluation.sample_metrics` and the shipped binarized-MNIST
feature classifier (`saved_models/features-binarized_mnist.keras`, fitted on half of the labelled test
split, so the real data is the valid split: 10,000 images; the floor is 10,000 train images against
it). These are domain metrics, not comparable with Inception FID.

Samples from models that decode to Bernoulli means (the AAE's decoder outputs pixel probabilities)
are grey, while binarized MNIST is binary; such a model is also scored on Bernoulli draws from its
means (`binarized`), the sample its own Bernoulli reconstruction loss defines. Models that sample
binary pixels themselves (the Gumbel-softmax VAEs) are scored once. JSON:
`bench/results/latent_fid_binarized_mnist.json` (merged by name with an existing file).
"""

import argparse
import json
import os
import pathlib
import platform
import time

RESULTS = pathlib.Path(__file__).parent / "results"


class BernoulliDraws:
    """A model whose samples are Bernoulli draws from another model's (grey) samples."""

    def __init__(self, model):
        self.model, self.conditional = model, model.conditional

    def sample(self, n, seed=0, labels=None, batch_size=256):
        import numpy as np

        means = np.asarray(self.model.sample(n, seed=seed, labels=labels, batch_size=batch_size))
        return (np.random.default_rng([seed, 5]).uniform(size=means.shape) < means).astype("float32")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    parser.add_argument("--num-samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "latent_fid_binarized_mnist.json"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    import kgen
    from kgen import config as config_lib
    from kgen.data.pipeline import Pipeline
    from kgen.evaluation import sample_metrics

    out_path = pathlib.Path(args.out)
    out = json.loads(out_path.read_text()) if out_path.is_file() else {"rows": {}}
    out.update({"benchmark": "domain FID/KID of latent models' samples on binarized MNIST",
                "num_samples": args.num_samples, "seed": args.seed, "backend": keras.config.backend(),
                "machine": {"platform": platform.platform(), "processor": platform.processor(),
                            "cpus": os.cpu_count()},
                "note": "kgen's binarized-MNIST feature classifier; real data: the valid split; "
                        "domain metrics, not comparable with Inception FID"})
    for spec in args.runs:
        name, _, run_dir = spec.partition("=")
        run_dir = pathlib.Path(run_dir)
        config = config_lib.resolve(config_file=run_dir / "config.toml")
        model = kgen.load_model(run_dir / "best.keras", compile=False)
        pipeline = Pipeline(config["data"])
        data = pipeline.load("test")
        row = {"run_dir": str(run_dir), "model": config["model"]["name"]}
        start = time.time()
        probe = np.asarray(model.sample(64, seed=args.seed))
        grey = bool(np.any((probe > 0.01) & (probe < 0.99)))
        variants = {"samples": model, "binarized": BernoulliDraws(model)} if grey else {"samples": model}
        for label, sampler in variants.items():
            r = sample_metrics(sampler, pipeline, data, config["evaluate"], num_samples=args.num_samples,
                               seed=args.seed)
            row[label] = {"fid": r["fid"], "kid": r["kid"]["mean"], "kid_std": r["kid"]["std"],
                          "fid_floor": r["fid_floor"], "kid_floor": r["kid_floor"]["mean"],
                          "reference_split": r["reference_split"], "floor_split": r["floor_split"]}
            print(name, label, {k: round(v, 3) if isinstance(v, float) else v for k, v in row[label].items()},
                  flush=True)
        row["grey_samples"] = grey
        row["seconds"] = round(time.time() - start, 1)
        out["rows"][name] = row
        out_path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
