"""Semi-supervised GAN with 100 labels: test errors beside a classifier trained on the 100 labels alone.

    python bench/ssgan_100_labels.py --seeds 0 1 --epochs 40

Salimans et al. (2016) report 93 +- 6.5 test errors (of 10,000) on MNIST with
100 labels (10 per class). This script trains `semi_supervised_gan` on the
training split with a fixed, class-balanced subset of 100 labelled examples
(chosen by the seed), and, as the baseline in the same run, a classifier of
exactly the discriminator's architecture (same layers, same Gaussian noise,
same Adam settings) trained on the same 100 labelled examples alone, for
the same number of updates as the GAN's discriminator. Both count errors on
the test split; mean and spread (sample standard deviation) over seeds.

Data set, in order of preference (the first one that has labels here):

1. `binarized_mnist` (the task's data set), if its file holds labels;
2. keras' `mnist` with static binarization, if `mnist.npz` is cached;
3. the bundled `digits` (8x8, 1437 train / 180 test, labelled).

The JSON records which one ran and why.
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


def binarized_mnist_file():
    for d in (os.environ.get("KGEN_DATA_DIR"), "/work/shared/data"):
        if d and (pathlib.Path(d) / "binarized_mnist.npz").is_file():
            return pathlib.Path(d) / "binarized_mnist.npz"
    return None


def choose_data():
    """(train Dataset, test Dataset, note) for the first labelled candidate."""
    import numpy as np

    import kgen
    from kgen.data import preprocess

    notes = []
    path = binarized_mnist_file()
    if path is not None:
        with np.load(path, allow_pickle=False) as f:
            keys = sorted(f.files)
        label_keys = [k for k in keys if "label" in k or k.startswith("y")]
        notes.append(f"{path} has keys {keys}: {'labels ' + str(label_keys) if label_keys else 'no labels'}.")
    else:
        notes.append("binarized_mnist.npz not found.")
    keras_mnist = pathlib.Path(os.environ.get("KERAS_HOME", pathlib.Path.home() / ".keras")) / "datasets" / "mnist.npz"
    if keras_mnist.is_file():
        train = kgen.load_dataset("mnist", split="train")
        test = kgen.load_dataset("mnist", split="test")
        for ds, salt in ((train, 0), (test, 2)):
            ds.x = preprocess.binarize(ds.x, np.random.default_rng([0, salt, 1]))
            ds.num_levels = 2
        notes.append(f"used keras mnist ({keras_mnist}) with static binarization: the labelled MNIST.")
        return train, test, " ".join(notes)
    notes.append(f"no labelled MNIST on this machine ({keras_mnist} missing, no network): ran on the bundled "
                 "8x8 digits instead (100 labels of 1437 training examples; 180 test examples).")
    return kgen.load_dataset("digits", split="train"), kgen.load_dataset("digits", split="test"), " ".join(notes)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=40, help="passes over the training split")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--num-labeled", type=int, default=100)
    parser.add_argument("--out", default=str(RESULTS / "ssgan_100_labels.json"))
    args = parser.parse_args()

    import keras
    import numpy as np

    from kgen.models.adversarial import SemiSupervisedGAN

    train, test, note = choose_data()
    small = train.x.shape[1] * train.x.shape[2] <= 64
    hparams = dict(latent_dim=32 if small else 100, num_label_classes=10, num_labeled=args.num_labeled,
                   labeled_batch_size=args.num_labeled,
                   generator_units=(256, 256) if small else (500, 500),
                   discriminator_units=(256, 128, 128) if small else (1000, 500, 250, 250, 250))
    steps_per_epoch = int(np.ceil(len(train) / args.batch_size))
    runs = []
    start = time.time()
    for seed in args.seeds:
        # --- the semi-supervised GAN ---
        keras.utils.set_random_seed(seed)
        model = SemiSupervisedGAN(train.shape, label_seed=seed, **hparams)
        idx = model.select_labeled(train.x, train.y)
        model.compile()
        t0 = time.time()
        perm_rng = np.random.default_rng(seed)
        for epoch in range(args.epochs):
            model.fit(train.x[perm_rng.permutation(len(train))], batch_size=args.batch_size, epochs=1,
                      shuffle=False, verbose=0)
        gan_time = time.time() - t0
        gan = model.evaluate_extra(test)["classifier"]
        d_updates = int(keras.ops.convert_to_numpy(model.optimizer.discriminator_optimizer.iterations.value))

        # --- the baseline: the same discriminator architecture on the 100 labels alone ---
        keras.utils.set_random_seed(seed)
        twin = SemiSupervisedGAN(train.shape, label_seed=seed, **hparams)
        inputs = keras.Input(train.shape)
        flat = keras.layers.Reshape((int(np.prod(train.shape)),))(inputs)
        classifier = keras.Model(inputs, twin.class_head(twin.discriminator(flat)))
        classifier.compile(optimizer=keras.optimizers.Adam(**SemiSupervisedGAN.optimizer_defaults),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x_lab, y_lab = train.x[idx], train.y[idx]
        t0 = time.time()
        # Full-batch updates on the labelled examples (each pass in a fresh order), as many as the
        # GAN's discriminator made: one Keras epoch over the passes laid end to end.
        order = np.concatenate([np.random.default_rng([seed, i]).permutation(len(idx)) for i in range(d_updates)])
        classifier.fit(x_lab[order], y_lab[order], batch_size=len(idx), epochs=1, shuffle=False, verbose=0)
        base_time = time.time() - t0
        predictions = np.argmax(classifier.predict(test.x, batch_size=256, verbose=0), axis=-1)
        base_errors = int(np.sum(predictions != test.y))
        run = {"seed": seed, "labelled_per_class": np.bincount(y_lab, minlength=10).tolist(),
               "ssgan_test_errors": gan["errors"], "baseline_test_errors": base_errors,
               "test_examples": gan["examples"], "discriminator_updates": d_updates,
               "ssgan_seconds": round(gan_time, 1), "baseline_seconds": round(base_time, 1)}
        print(json.dumps(run))
        runs.append(run)

    def summary(key):
        v = np.array([r[key] for r in runs], "float64")
        return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
                "min": int(v.min()), "max": int(v.max())}

    gan_s, base_s = summary("ssgan_test_errors"), summary("baseline_test_errors")
    result = {
        "benchmark": "semi-supervised GAN (feature matching) with 100 labels: test errors",
        "dataset": train.name,
        "data_note": note,
        "test_examples": runs[0]["test_examples"],
        "num_labeled": args.num_labeled,
        "seeds": args.seeds,
        "ssgan_test_errors": gan_s,
        "baseline_test_errors": base_s,
        "ratio_ssgan_to_baseline_errors": gan_s["mean"] / base_s["mean"] if base_s["mean"] else None,
        "runs": runs,
        "budget": {"epochs": args.epochs, "batch_size": args.batch_size, "steps_per_epoch": steps_per_epoch,
                   "total_seconds": round(time.time() - start, 1),
                   "note": "a small CPU budget (nice -n 10, 2 shared cores); the paper trains for 300 epochs "
                           "of MNIST"},
        "model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in hparams.items()},
        "baseline": "same discriminator layers (Gaussian noise included) + K-way head, softmax cross-entropy "
                    "on the labelled examples only, Adam(3e-4, beta_1 0.5), one full-batch update per "
                    "discriminator update of the GAN",
        "reference": "Salimans et al. 2016, MNIST 100 labels: 93 +- 6.5 errors of 10,000 (permutation-invariant, "
                     "feature matching, 300 epochs)",
        "backend": keras.backend.backend(),
        "machine": machine(),
        "command": f"nice -n 10 python bench/ssgan_100_labels.py --seeds {' '.join(map(str, args.seeds))} "
                   f"--epochs {args.epochs}",
    }
    print(json.dumps({k: result[k] for k in ("dataset", "ssgan_test_errors", "baseline_test_errors",
                                             "ratio_ssgan_to_baseline_errors", "test_examples")}, indent=1))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
