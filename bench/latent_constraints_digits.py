"""Latent constraints vs the conditional VAE on digits, at the same training budget.

    nice -n 10 python bench/latent_constraints_digits.py --vae-epochs 60 --constraint-epochs 40

Both sides train from the bundled recipes on the 8x8 digits train split, the same number of epochs:

- latent_constraints (`configs/latent_constraints/digits.toml` with `model.vae = ""`): its own
  unconditional VAE (16-d latent, 256-256 MLP, categorical decoder: the `vae` recipe's) for
  `--vae-epochs` epochs, then the critics and the actor for `--constraint-epochs` epochs on the
  frozen VAE;
- the conditional VAE (`configs/vae/digits.toml` with `model.conditional = true`): the same
  VAE given the label at the encoder and decoder, for `--vae-epochs + --constraint-epochs` epochs.

Scored on the test split with the shipped digits feature classifier
(`saved_models/features-digits.keras`, a domain metric, not Inception FID):

- `label_accuracy`: the classifier's accuracy on `--num-samples` conditional samples
  (an equal number of each class; chance 0.1), what `kgen sample --label K` draws;
- `fid`: domain FID of as many samples as the test split has images (labels matching the
  split's) against the test split, median over `--seeds` (`kgen evaluate --sample-metrics`),
  with the real-data floor (held-out train images against the test split);
- `edit_accuracy`: test digits moved toward another label each (a random other class),
  classified: latent constraints' `edit` (the decoder mean at G(E[q(z|x)], y')); the conditional
  VAE's analogue, the decoder mean at (E[q(z|x, y)], y');
- `fid_vs_train`: domain FID of the `--num-samples` conditional samples (equal classes) against the
  whole train split (1,437 images): more samples than `fid`, so less of its finite-sample bias; comparable
  between the models here (same sizes), not with `fid`;
- `latent_constraints_vae_alone`: the frozen VAE's own prior samples (no actor), `fid_vs_train` the
  same way: what the realism constraint changes;
- `conditional_vae_best`: the conditional VAE's checkpoint with the best validation loss (its recipe
  keeps it as `best.keras`; at this budget the last one overfits), scored the same way;
- wall seconds of each side's training (shared CPU: a rough cost, not a speed benchmark).

Results: `bench/results/latent_constraints_digits.json`.
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


def unconditional_fid(model, config, seeds, num_samples):
    """FID of an unconditional model's samples (the frozen VAE alone) against the train split."""
    import numpy as np

    from kgen.data.pipeline import Pipeline
    from kgen.metrics.features import FeatureExtractor
    from kgen.metrics.fid import fid

    pipeline = Pipeline(dict(config["data"], max_examples=0))
    classifier = FeatureExtractor("digits")
    train_features = classifier(pipeline.prepare(pipeline.load("train"), seed=0).x)
    values = [fid(classifier(model.sample(num_samples, seed=s)), train_features) for s in seeds]
    labels = np.arange(num_samples) % 10
    accuracy = float(np.mean(classifier.predict_labels(model.sample(num_samples, seed=0)) == labels))
    return {"fid_vs_train": statistics.median(values), "fid_vs_train_per_seed": values,
            "label_accuracy_of_arbitrary_labels": accuracy}


def score(model, config, seeds, num_samples, edit_fn):
    import numpy as np

    from kgen.data.pipeline import Pipeline
    from kgen.evaluation import sample_metrics
    from kgen.metrics.features import FeatureExtractor
    from kgen.metrics.fid import fid

    pipeline = Pipeline(config["data"])
    data = pipeline.load("test")
    runs = [sample_metrics(model, pipeline, data, config["evaluate"], seed=s) for s in seeds]
    classifier = FeatureExtractor("digits")
    labels = np.arange(num_samples) % 10
    train_features = classifier(pipeline.prepare(Pipeline(dict(pipeline.config, max_examples=0)).load("train"),
                                                 seed=0).x)
    accuracy, fid_train = [], []
    for s in seeds:
        samples = model.sample(num_samples, seed=s, labels=labels)
        accuracy.append(float(np.mean(classifier.predict_labels(samples) == labels)))
        fid_train.append(fid(classifier(samples), train_features))
    prepared = pipeline.prepare(data, seed=0)
    y = np.asarray(prepared.y, "int32")
    targets = (y + np.random.default_rng(0).integers(1, 10, len(y))) % 10
    edits = np.clip(edit_fn(prepared.x, y, targets), 0.0, 1.0)
    return {
        "label_accuracy": statistics.median(accuracy),
        "label_accuracy_per_seed": accuracy,
        "label_accuracy_samples": num_samples,
        "fid": statistics.median(r["fid"] for r in runs),
        "fid_per_seed": [r["fid"] for r in runs],
        "fid_floor": statistics.median(r["fid_floor"] for r in runs),
        "fid_samples": runs[0]["num_samples"],
        "fid_vs_train": statistics.median(fid_train),
        "fid_vs_train_per_seed": fid_train,
        "edit_accuracy": float(np.mean(classifier.predict_labels(edits) == targets)),
        "edit_examples": int(len(y)),
        "kgen_evaluate_label_accuracy": statistics.median(r["label_accuracy"] for r in runs),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vae-epochs", type=int, default=60)
    parser.add_argument("--constraint-epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--out", default=str(RESULTS / "latent_constraints_digits.json"))
    args = parser.parse_args()

    import keras

    from kgen import config as config_lib
    from kgen.checkpoint import load_model, read_state
    from kgen.training.trainer import train

    total = args.vae_epochs + args.constraint_epochs
    seeds = list(range(args.seeds))
    out = {"benchmark": "latent_constraints_digits", "backend": keras.config.backend(), "machine": machine(),
           "budget_epochs": total, "vae_epochs": args.vae_epochs, "constraint_epochs": args.constraint_epochs,
           "seeds": seeds, "command": f"python bench/latent_constraints_digits.py --vae-epochs {args.vae_epochs} "
                                      f"--constraint-epochs {args.constraint_epochs} --seeds {args.seeds} "
                                      f"--num-samples {args.num_samples}"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        # === latent constraints: the model's own VAE, then the constraints ===
        lc_config = config_lib.resolve(model="latent_constraints", dataset="digits", overrides=[
            'model.vae=""', f"model.vae_epochs={args.vae_epochs}", f"train.epochs={total}"])
        start = time.time()
        lc, _, last = train(lc_config, run_dir=tmp / "lc", verbose=0)
        seconds = time.time() - start
        print(f"latent_constraints trained in {seconds:.0f} s: {last}", flush=True)
        lc_scores = score(lc, lc_config, seeds, args.num_samples, lambda x, y, t: lc.edit(x, t))
        out["latent_constraints"] = {"train_seconds": round(seconds, 1), "last_metrics": last,
                                     "vae_likelihood": lc.vae.likelihood, **lc_scores}
        print("latent_constraints", lc_scores, flush=True)
        out["latent_constraints_vae_alone"] = unconditional_fid(lc.vae, lc_config, seeds, args.num_samples)
        print("its VAE alone", out["latent_constraints_vae_alone"], flush=True)

        # === the conditional VAE, the same epochs ===
        cvae_config = config_lib.resolve(model="vae", dataset="digits", overrides=[
            "model.conditional=true", f"train.epochs={total}"])
        start = time.time()
        cvae, _, last = train(cvae_config, run_dir=tmp / "cvae", verbose=0)
        seconds = time.time() - start
        print(f"conditional vae trained in {seconds:.0f} s: {last}", flush=True)

        def cvae_edit(x, y, targets):
            return cvae.decode_latents(cvae.latent_codes(x, y), targets)

        cvae_scores = score(cvae, cvae_config, seeds, args.num_samples, cvae_edit)
        out["conditional_vae"] = {"train_seconds": round(seconds, 1), "last_metrics": last, **cvae_scores}
        print("conditional_vae", cvae_scores, flush=True)
        # the recipe's own pick: the checkpoint with the best validation loss (the last one overfits)
        best = load_model(tmp / "cvae" / "best.keras", compile=False)
        best_epoch = read_state(tmp / "cvae" / "best.keras").get("epoch")

        def best_edit(x, y, targets):
            return best.decode_latents(best.latent_codes(x, y), targets)

        out["conditional_vae_best"] = {"epoch": best_epoch, **score(best, cvae_config, seeds, args.num_samples,
                                                                    best_edit)}
        print("conditional_vae_best", out["conditional_vae_best"], flush=True)
    out["ratios"] = {
        "label_accuracy_lc_over_cvae": out["latent_constraints"]["label_accuracy"]
        / max(out["conditional_vae"]["label_accuracy"], 1e-9),
        "fid_lc_over_cvae": out["latent_constraints"]["fid"] / max(out["conditional_vae"]["fid"], 1e-9),
        "fid_vs_train_lc_over_cvae": out["latent_constraints"]["fid_vs_train"]
        / max(out["conditional_vae"]["fid_vs_train"], 1e-9),
        "fid_vs_train_lc_over_cvae_best": out["latent_constraints"]["fid_vs_train"]
        / max(out["conditional_vae_best"]["fid_vs_train"], 1e-9),
    }
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(json.dumps(out["ratios"]), f"-> {path}")


if __name__ == "__main__":
    main()
