"""PPGN vs the conditional VAE on digits: label accuracy of class-conditional samples at the same training budget.

    nice -n 10 python bench/ppgn_digits.py --epochs 100 --seeds 3

Both sides train from their bundled recipes on the 8x8 digits train split for the same number of
epochs (the same examples seen, batch 64):

- ppgn (`configs/ppgn/digits.toml`): an MLP DAE prior and an MLP classifier trained beside it;
  each sample is 200 steps of its Langevin-style chain from uniform noise, then R(x_T);
- the conditional VAE (`configs/vae/digits.toml` with `model.conditional = true`): the label at
  the encoder and the decoder; a sample is one decoder pass.

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--out", default=str(RESULTS / "ppgn_digits.json"))
    args = parser.parse_args()

    import keras
    import numpy as np

    import kgen
    from kgen import config as config_lib
    from kgen.metrics.features import FeatureExtractor
    from kgen.training.trainer import train

    seeds = list(range(args.seeds))
    test = kgen.load_dataset("digits", split="test")
    out = {"benchmark": "ppgn_digits", "backend": keras.config.backend(), "machine": machine(),
           "budget_epochs": args.epochs, "seeds": seeds,
           "command": f"python bench/ppgn_digits.py --epochs {args.epochs} --seeds {args.seeds} "
                      f"--num-samples {args.num_samples}",
           "test_split": {"within_class_distance": within_class_distance(test.x, test.y),
                          "feature_classifier_accuracy": float(np.mean(
                              FeatureExtractor("digits").predict_labels(test.x) == test.y))}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        # === PPGN ===
        ppgn_config = config_lib.resolve(model="ppgn", dataset="digits", overrides=[f"train.epochs={args.epochs}"])
        start = time.time()
        ppgn, _, last = train(ppgn_config, run_dir=tmp / "ppgn", verbose=0)
        seconds = time.time() - start
        print(f"ppgn trained in {seconds:.0f} s: {last}", flush=True)
        scores = score(ppgn, ppgn_config, seeds, args.num_samples)
        eps2, ppgn.eps2 = ppgn.eps2, 0.0
        ppgn._kgen_fns.clear()
        labels = np.arange(args.num_samples) % 10
        classifier = FeatureExtractor("digits")
        scores["label_accuracy_without_condition"] = float(np.mean(
            classifier.predict_labels(ppgn.sample(args.num_samples, seed=0, labels=labels)) == labels))
        ppgn.eps2 = eps2
        ppgn._kgen_fns.clear()
        out["ppgn"] = {"train_seconds": round(seconds, 1), "last_metrics": last,
                       "sampler": {k: getattr(ppgn, k) for k in ("eps1", "eps2", "eps3", "sample_steps",
                                                                 "final_denoise")}, **scores}
        print("ppgn", scores, flush=True)

        # === the conditional VAE, the same epochs ===
        cvae_config = config_lib.resolve(model="vae", dataset="digits", overrides=[
            "model.conditional=true", f"train.epochs={args.epochs}"])
        start = time.time()
        cvae, _, last = train(cvae_config, run_dir=tmp / "cvae", verbose=0)
        seconds = time.time() - start
        print(f"conditional vae trained in {seconds:.0f} s: {last}", flush=True)
        scores = score(cvae, cvae_config, seeds, args.num_samples)
        out["conditional_vae"] = {"train_seconds": round(seconds, 1), "last_metrics": last, **scores}
        print("conditional_vae", scores, flush=True)
    out["ratios"] = {
        "label_accuracy_ppgn_over_cvae": out["ppgn"]["label_accuracy"] / max(out["conditional_vae"]["label_accuracy"],
                                                                              1e-9),
        "fid_ppgn_over_cvae": out["ppgn"]["fid"] / max(out["conditional_vae"]["fid"], 1e-9),
    }
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(json.dumps(out["ratios"]), f"-> {path}")


if __name__ == "__main__":
    main()
