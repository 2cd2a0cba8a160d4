"""PPGN and GSN vs the conditional VAE and GAN on digits: sample quality at the same training budget.

    nice -n 10 python bench/ppgn_digits.py --epochs 100 --seeds 3
    nice -n 10 python bench/ppgn_digits.py --epochs 100 --seeds 3 --models cgan,gsn --merge

Both sides train from their bundled recipes on the 8x8 digits train split for the same number of
epochs (the same examples seen, batch 64):

- ppgn (`configs/ppgn/digits.toml`): an MLP DAE prior and an MLP classifier trained beside it;
  each sample is 200 steps of its Langevin-style chain from uniform noise, then R(x_T);
- the conditional VAE (`configs/vae/digits.toml` with `model.conditional = true`): the label at
  the encoder and the decoder; a sample is one decoder pass;
- the conditional GAN (`configs/cgan/digits.toml`): the label at the generator and the
  discriminator; a sample is one generator pass;
- the GSN (`configs/gsn/digits.toml`, unconditional: FID and the class histogram of its
  samples only): walkback DAE training, samples from its Markov chain (the recipe's burn-in).

Scored on the test split with the shipped digits feature classifier
(`saved_models/features-digits.keras`: a domain metric, not Inception FID; it is not the
classifier PPGN's chain climbs, which is PPGN's own):

- `label_accuracy`: the feature classifier's accuracy on `--num-samples` conditional samples
  (an equal number of each class; chance 0.1), median over `--seeds`, what `kgen sample --label K`
  draws; for PPGN also with its condition term off (eps2 = 0: the labels cannot matter; a check
  that the accuracy comes from the condition);
- `fid`: domain FID of as many samples as the test split has images (labels matching the
  split's) against the test split, median over seeds (`kgen evaluate`), with the real-data floor;
- `within_class_distance`: the mean pixel-space L2 distance between two samples of one class (a
  collapse check: the test split's own value is reported beside it);
- wall seconds of training and of drawing the samples (shared CPU: a rough cost).

For the unconditional GSN `label_histogram` is the share of its samples the feature classifier puts
in each class (a mode-coverage check; the test split's is near 0.1 each).

`--models` picks the runs (default all); `--merge` keeps the other models' entries of an existing
results file, so one model can be added without re-running the rest (each entry records its own
budget, seeds and machine in the file's header).

Results: `bench/results/ppgn_digits.json`.
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import tempfile
import time

RESULTS = pathlib.Path(__file__).parent / "results"


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def within_class_distance(x, labels, per_class=50):
    import numpy as np

    out = []
    for c in np.unique(labels):
        a = np.asarray(x[labels == c][:per_class], "float64").reshape(-1, int(np.prod(x.shape[1:])))
        d = np.sqrt(((a[:, None] - a[None]) ** 2).sum(-1))
        out.append(d[np.triu_indices(len(a), 1)].mean())
    return float(np.mean(out))


def score(model, config, seeds, num_samples):
    import numpy as np

    from kgen.data.pipeline import Pipeline
    from kgen.evaluation import sample_metrics
    from kgen.metrics.features import FeatureExtractor

    pipeline = Pipeline(config["data"])
    data = pipeline.load("test")
    runs = [sample_metrics(model, pipeline, data, config["evaluate"], seed=s) for s in seeds]
    classifier = FeatureExtractor("digits")
    labels = np.arange(num_samples) % 10
    accuracy, spread, seconds = [], [], []
    for s in seeds:
        start = time.time()
        samples = model.sample(num_samples, seed=s, labels=labels)
        seconds.append(time.time() - start)
        accuracy.append(float(np.mean(classifier.predict_labels(samples) == labels)))
        spread.append(within_class_distance(samples, labels))
    return {
        "label_accuracy": statistics.median(accuracy),
        "label_accuracy_per_seed": accuracy,
        "label_accuracy_samples": num_samples,
        "within_class_distance": statistics.median(spread),
        "sample_seconds": round(statistics.median(seconds), 2),
        "fid": statistics.median(r["fid"] for r in runs),
        "fid_per_seed": [r["fid"] for r in runs],
        "fid_floor": statistics.median(r["fid_floor"] for r in runs),
        "fid_samples": runs[0]["num_samples"],
    }


def score_unconditional(model, config, seeds, num_samples):
    import numpy as np

    from kgen.data.pipeline import Pipeline
    from kgen.evaluation import sample_metrics
    from kgen.metrics.features import FeatureExtractor

    pipeline = Pipeline(config["data"])
    data = pipeline.load("test")
    runs = [sample_metrics(model, pipeline, data, config["evaluate"], seed=s) for s in seeds]
    start = time.time()
    samples = model.sample(num_samples, seed=seeds[0])
    seconds = time.time() - start
    predicted = FeatureExtractor("digits").predict_labels(samples)
    return {
        "label_histogram": [float(np.mean(predicted == k)) for k in range(10)],
        "label_histogram_samples": num_samples,
        "sample_seconds": round(seconds, 2),
        "fid": statistics.median(r["fid"] for r in runs),
        "fid_per_seed": [r["fid"] for r in runs],
        "fid_floor": statistics.median(r["fid_floor"] for r in runs),
        "fid_samples": runs[0]["num_samples"],
    }


def train_and_score(name, config, tmp, seeds, num_samples, conditional=True):
    from kgen.training.trainer import train

    start = time.time()
    model, _, last = train(config, run_dir=tmp / name, verbose=0)
    seconds = time.time() - start
    print(f"{name} trained in {seconds:.0f} s: {last}", flush=True)
    scores = (score if conditional else score_unconditional)(model, config, seeds, num_samples)
    print(name, scores, flush=True)
    return model, {"train_seconds": round(seconds, 1), "last_metrics": last, **scores}


MODELS = ("ppgn", "conditional_vae", "cgan", "gsn")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--models", default=",".join(MODELS), help=f"Comma-separated, of {', '.join(MODELS)}.")
    parser.add_argument("--merge", action="store_true", help="Keep the other models' entries of --out.")
    parser.add_argument("--out", default=str(RESULTS / "ppgn_digits.json"))
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown --models {', '.join(unknown)}; choose from {', '.join(MODELS)}")

    import keras
    import numpy as np

    import kgen
    from kgen import config as config_lib
    from kgen.metrics.features import FeatureExtractor
    seeds = list(range(args.seeds))
    test = kgen.load_dataset("digits", split="test")
    out = {"benchmark": "ppgn_digits", "backend": keras.config.backend(), "machine": machine(),
           "budget_epochs": args.epochs, "seeds": seeds,
           "command": f"python bench/ppgn_digits.py --epochs {args.epochs} --seeds {args.seeds} "
                      f"--num-samples {args.num_samples}" + (f" --models {args.models}" if models != list(MODELS) else "")
                      + (" --merge" if args.merge else ""),
           "test_split": {"within_class_distance": within_class_distance(test.x, test.y),
                          "feature_classifier_accuracy": float(np.mean(
                              FeatureExtractor("digits").predict_labels(test.x) == test.y))}}
    path = pathlib.Path(args.out)
    if args.merge and path.exists():
        previous = json.loads(path.read_text())
        out = {**{k: v for k, v in previous.items() if k in MODELS}, **out}
        out["commands"] = sorted(set(previous.get("commands", [previous.get("command")]) + [out["command"]]) - {None})
    epochs = [f"train.epochs={args.epochs}"]
    recipes = {
        "ppgn": config_lib.resolve(model="ppgn", dataset="digits", overrides=epochs),
        "conditional_vae": config_lib.resolve(model="vae", dataset="digits", overrides=["model.conditional=true",
                                                                                          *epochs]),
        "cgan": config_lib.resolve(model="cgan", dataset="digits", overrides=epochs),
        "gsn": config_lib.resolve(model="gsn", dataset="digits", overrides=epochs),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for name in models:
            model, entry = train_and_score(name, recipes[name], tmp, seeds, args.num_samples,
                                           conditional=name != "gsn")
            entry.update(budget_epochs=args.epochs, seeds=seeds, backend=keras.config.backend(), machine=machine())
            if name == "ppgn":
                eps2, model.eps2 = model.eps2, 0.0
                model._kgen_fns.clear()
                labels = np.arange(args.num_samples) % 10
                classifier = FeatureExtractor("digits")
                entry["label_accuracy_without_condition"] = float(np.mean(
                    classifier.predict_labels(model.sample(args.num_samples, seed=0, labels=labels)) == labels))
                model.eps2 = eps2
                model._kgen_fns.clear()
                entry["sampler"] = {k: getattr(model, k) for k in ("eps1", "eps2", "eps3", "sample_steps",
                                                                   "final_denoise")}
            out[name] = entry
    ratios = {}
    for base in ("conditional_vae", "cgan"):
        if "ppgn" in out and base in out:
            ratios[f"label_accuracy_ppgn_over_{base}"] = out["ppgn"]["label_accuracy"] / max(
                out[base]["label_accuracy"], 1e-9)
            ratios[f"fid_ppgn_over_{base}"] = out["ppgn"]["fid"] / max(out[base]["fid"], 1e-9)
        if "gsn" in out and base in out:
            ratios[f"fid_gsn_over_{base}"] = out["gsn"]["fid"] / max(out[base]["fid"], 1e-9)
    out["ratios"] = ratios
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(json.dumps(ratios), f"-> {path}")


if __name__ == "__main__":
    main()
