"""Domain FID on binarized MNIST: BGAN against the straight-through GAN at the same budget.

    KGEN_DATA_DIR=/work/shared/data nice -n 10 python bench/bgan_binarized_mnist.py --architecture mlp --epochs 4

(measured: 349 s in all on 2 CPU cores shared with other jobs, TensorFlow, 3,124 generator updates a
model; every run of this script stays well under 25 minutes at these budgets. Also measured:
`--architecture mlp --epochs 1 --out bench/results/bgan_binarized_mnist_mlp_1epoch.json` and the
recipe's conv players at `--examples 12800 --epochs 1 --out bench/results/bgan_binarized_mnist_conv.json`.)

Trains, from `configs/bgan/binarized_mnist.toml`, the boundary-seeking GAN
(`estimator = "bgan"`: normalized importance weights over M samples per
noise vector, Hjelm et al. 2018) and the baseline the paper compares with,
the same networks and samples trained through a straight-through estimator
(`estimator = "straight_through"`), for the same generator updates, batch
size, M and seed, then scores each one's samples with a domain FID:

- feature network: kgen's small CNN classifier (`kgen.metrics.features.
  build_classifier`), trained here on half of the labelled binarized test
  split (`binarized_mnist_labels.npz`: labels exist for the test split only)
  and checked on the other half; its `features` layer is the feature map.
  A domain metric: not comparable with Inception FIDs from papers.
- reference: `--score-samples` images of the valid split (unused by the GANs).
- each model: `--score-samples` samples per seed (`--seeds`), FID against the
  reference; the untrained generator gives the ceiling end of the scale;
  `--score-samples` train images give the real-data floor at this sample size.

`--examples`, `--epochs` and `--num-samples` shrink the recipe to a CPU
budget (the recipe: 50,000 images, 20 epochs, M = 20); the JSON records the
budget, each model's wall time and the machine. Results:
`bench/results/bgan_binarized_mnist.json`.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=50000, help="training images (recipe: all 50,000)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs over them (recipe: 20)")
    parser.add_argument("--num-samples", type=int, default=None, help="M samples per noise vector (recipe: 20)")
    parser.add_argument("--architecture", choices=("conv", "mlp"), default=None,
                        help="recipe: conv; mlp: the MLP players (256, 256), ~10x cheaper a step on a CPU")
    parser.add_argument("--learning-rate", type=float, default=None, help="both players' Adam rate (recipe: 1e-4)")
    parser.add_argument("--score-samples", type=int, default=5000, help="images per FID set")
    parser.add_argument("--seeds", type=int, default=2, help="sample seeds per model")
    parser.add_argument("--classifier-epochs", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "bgan_binarized_mnist.json"))
    args = parser.parse_args()

    import keras
    import numpy as np

    import kgen
    from kgen import config as config_lib
    from kgen.metrics.features import FEATURES_LAYER, build_classifier
    from kgen.metrics.fid import fid

    data_dir = os.environ.get("KGEN_DATA_DIR")
    if not data_dir:
        raise SystemExit("set KGEN_DATA_DIR to the folder holding binarized_mnist.npz and binarized_mnist_labels.npz")
    start_all = time.time()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)

    # === Data ===
    train = kgen.load_dataset("binarized_mnist", split="train", data_dir=data_dir)
    valid = kgen.load_dataset("binarized_mnist", split="valid", data_dir=data_dir)
    test = kgen.load_dataset("binarized_mnist", split="test", data_dir=data_dir)
    labels = np.load(pathlib.Path(data_dir) / "binarized_mnist_labels.npz")["test"].astype("int32")
    n = args.score_samples

    # === Feature network (trained on half the labelled test split, checked on the other half) ===
    t0 = time.time()
    order = rng.permutation(len(test.x))
    fit_idx, check_idx = order[: len(order) // 2], order[len(order) // 2:]
    classifier = build_classifier(test.shape, 10, seed=0)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    classifier.fit(test.x[fit_idx], labels[fit_idx], batch_size=128, epochs=args.classifier_epochs, verbose=0)
    accuracy = float(np.mean(np.argmax(classifier.predict(test.x[check_idx], verbose=0), -1) == labels[check_idx]))
    extractor = keras.Model(classifier.inputs, classifier.get_layer(FEATURES_LAYER).output)

    def features(x):
        return np.asarray(extractor.predict(np.clip(np.asarray(x, "float32"), 0, 1), batch_size=500, verbose=0),
                          "float64")

    reference = features(valid.x[rng.permutation(len(valid.x))[:n]])
    floor = fid(features(train.x[rng.permutation(len(train.x))[:n]]), reference)
    print(f"feature classifier: accuracy {accuracy:.4f} on {len(check_idx)} held-out test images "
          f"({time.time() - t0:.0f} s); real-data floor FID {floor:.2f}")

    # === The two estimators from one recipe ===
    config = config_lib.resolve(model="bgan", dataset="binarized_mnist")
    hparams = config_lib.model_hparams(config)
    hparams.pop("conditional", None)
    if args.num_samples:
        hparams["num_samples"] = args.num_samples
    if args.architecture:
        hparams["architecture"] = args.architecture
    batch_size = int(config["train"]["batch_size"])
    lr = float(args.learning_rate or config["train"]["learning_rate"])
    x_train = train.x[: args.examples]
    report = {
        "machine": machine(), "backend": keras.config.backend(), "recipe": "configs/bgan/binarized_mnist.toml",
        "model": hparams, "budget": {"examples": len(x_train), "epochs": args.epochs, "batch_size": batch_size,
                                     "generator_updates": args.epochs * (len(x_train) // batch_size),
                                     "learning_rate": lr},
        "features": {"network": "kgen build_classifier, trained on 5000 labelled binarized test images",
                     "held_out_accuracy": accuracy, "classifier_epochs": args.classifier_epochs},
        "score_samples": n, "reference": "valid split", "fid_floor_train_vs_valid": floor, "models": {},
    }

    def scores(model):
        return [fid(features(model.sample(n, seed=s)), reference) for s in range(args.seeds)]

    for estimator in ("bgan", "straight_through"):
        keras.utils.set_random_seed(0)
        model = kgen.build_model("bgan", input_shape=train.shape, num_levels=2, **{**hparams, "estimator": estimator})
        model.compile(discriminator_optimizer=keras.optimizers.Adam(lr, beta_1=0.5),
                      generator_optimizer=keras.optimizers.Adam(lr, beta_1=0.5))
        entry = {"config": {k: v for k, v in model.get_config().items()
                            if k in ("estimator", "num_samples", "architecture", "latent_dim", "generator_units",
                                     "discriminator_units", "generator_filters", "discriminator_filters")}}
        if estimator == "bgan":
            report["models"]["untrained"] = {"fid": scores(model)}
            print(f"untrained generator: FID {np.median(report['models']['untrained']['fid']):.2f}")
        t0 = time.time()
        history = model.fit(x_train, batch_size=batch_size, epochs=args.epochs, verbose=0, shuffle=True)
        entry["train_seconds"] = time.time() - t0
        entry["last_logs"] = {k: float(v[-1]) for k, v in history.history.items()}
        entry["fid"] = scores(model)
        entry["fid_median"] = float(np.median(entry["fid"]))
        report["models"][estimator] = entry
        print(f"{estimator}: FID {entry['fid_median']:.2f} (seeds {[round(v, 2) for v in entry['fid']]}), "
              f"train {entry['train_seconds']:.0f} s, last logs {entry['last_logs']}")

    b, s = report["models"]["bgan"]["fid_median"], report["models"]["straight_through"]["fid_median"]
    report["ratio_bgan_to_straight_through"] = b / s
    report["total_seconds"] = time.time() - start_all
    print(f"FID bgan / straight-through = {b:.2f} / {s:.2f} = {b / s:.3f}; total {report['total_seconds']:.0f} s")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
