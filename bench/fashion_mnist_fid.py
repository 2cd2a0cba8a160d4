"""Sample quality per CPU budget on Fashion-MNIST: domain FID/KID of GANs, the VAE, a flow and PixelCNN.

    nice -n 5 python bench/fashion_mnist_fid.py --budget-seconds 180 --num-samples 2000
    python bench/fashion_mnist_fid.py --models vae,pixel_cnn --merge      # add rows to the JSON
    KGEN_DATA_DIR=/work/shared/data python bench/fashion_mnist_fid.py --dataset binarized_mnist \\
        --models gan,dcgan,wgan_gp,began,cgan,info_gan,bigan                # the GAN rows on binarized MNIST

Every model trains from its bundled recipe (`configs/<model>/fashion_mnist.toml`)
for the same wall-clock budget (`--budget-seconds`), stopped mid-epoch when it
is spent. The clock starts when the first compiled call returns: building the
model and tracing and compiling its step (with that call's `steps_per_execution`
steps) are timed apart as `warmup_seconds`; no validation or sample grids run.
`--epochs` caps the epochs as well (a quick check: `--epochs 1 --max-examples 500`).
Each model is then scored with `kgen.evaluation.sample_metrics`, the code behind
`kgen evaluate --sample-metrics`:

- `fid`, `kid`: `--num-samples` samples (the same N for every model, one sample
  seed) against the whole test split (10,000 images), in the features of kgen's
  Fashion-MNIST classifier (`saved_models/features-fashion_mnist.keras`). A
  *domain* metric: it ranks models on this data set only; Inception FIDs in
  papers are not comparable with it;
- `fid_floor`, `kid_floor`: N real training images scored the same way, what a
  model that samples the data distribution scores at this N (FID's finite-sample
  bias is part of every figure; compare rows at the same N only);
- `label_accuracy` (cgan): how often the classifier names the class a sample was
  drawn for;
- `train_seconds`, `epochs_trained` (fractional), `sample_seconds` (drawing the
  N samples; PixelCNN draws with its cached incremental sampler);
- the VAE also gets `decoder_means`: FID/KID of E[x|z] for z from the prior,
  beside its true samples (pixels drawn from the decoder's 256-way softmax);
- `binary_draws` (`--binary-draws`, on by default for binarized MNIST): FID/KID of
  Bernoulli draws with the samples' grey levels as probabilities. A GAN's grey
  samples against binary data are far apart in any feature space; the draws are
  the binary images its samples stand for, as a Bernoulli decoder's are.

`dcgan_untrained` (the DCGAN recipe's generator before any step) marks the
ceiling end of the scale. The JSON (`bench/results/fashion_mnist_fid.json`, or
`fashion_mnist_fid_<dataset>.json` for another `--dataset`) is written after
every model, so a cut run keeps what it measured; `--merge` adds to it.
binarized MNIST's classifier was fitted on its test split, so its FID/KID use the
valid split as the real data (`reference_split` in each row).
"""

import argparse
import json
import math
import os
import pathlib
import platform
import time

RESULTS = pathlib.Path(__file__).parent / "results"
MODELS = ("gan", "dcgan", "wgan_gp", "began", "cgan", "info_gan", "bigan", "vae", "real_nvp", "pixel_cnn")
UNTRAINED = "dcgan_untrained"


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "note": "2-core x86-64 VM, shared with other jobs (load_average per row)"}


def recipe_config(name, dataset, args):
    """The model's fashion_mnist recipe (another `dataset` replaces its data.name), with the bench's sizes."""
    from kgen import config as config_lib

    path = config_lib.recipe_path(name, "fashion_mnist")
    overrides = [f"data.max_examples={args.max_examples}"]
    if dataset != "fashion_mnist":
        overrides.append(f"data.name={dataset}")
    if args.feature_classifier:
        overrides.append(f"evaluate.feature_classifier={args.feature_classifier}")
    return config_lib.resolve(config_file=path, overrides=overrides), pathlib.Path(str(path))


def make_deadline(budget_seconds):
    import keras

    class Deadline(keras.callbacks.Callback):
        """Stops `fit` at the first step that ends `budget_seconds` after the warm-up; counts steps.

        The clock starts when the first compiled call (tracing, compilation and its
        `steps_per_execution` steps) returns: that warm-up is timed apart.
        """

        def __init__(self):
            super().__init__()
            self.created = time.perf_counter()
            self.start = None
            self.steps = 0  # steps finished before this fit call
            self.last = 0  # steps of the current fit call

        def on_train_begin(self, logs=None):
            self.last = 0

        def on_train_batch_end(self, batch, logs=None):
            self.last = batch + 1
            if self.start is None:
                self.start = time.perf_counter()
            if self.spent:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            self.steps += self.last

        @property
        def spent(self):
            return (budget_seconds is not None and self.start is not None
                    and time.perf_counter() - self.start >= budget_seconds)

    return Deadline()


def train_for_budget(config, budget_seconds, max_epochs):
    """Builds and trains `config`'s model until the budget (or `max_epochs`) is spent.

    The trainer's epoch loop (kgen.training.trainer) without its run folder:
    the same data order, preprocessing and seeds, no validation or sample grid.
    Returns (model, info).
    """
    import keras
    import numpy as np

    from kgen import backend, checkpoint
    from kgen.data.pipeline import Pipeline
    from kgen.errors import TrainingDiverged
    from kgen.training.callbacks import NaNGuard
    from kgen.training.trainer import build_for_data, compile_model, fit_inputs

    c = config["train"]
    seed, batch_size = c["seed"], c["batch_size"]
    keras.utils.set_random_seed(seed)
    pipeline = Pipeline(config["data"])
    data = pipeline.load("train")
    steps_per_epoch = math.ceil(len(data) / batch_size)
    clock = make_deadline(budget_seconds)
    model = compile_model(build_for_data(config, data), c, steps_per_epoch)
    for sg in checkpoint.seed_generators(model):
        sg.state.assign(np.asarray([seed, 0], dtype=sg.state.dtype))
    model.check_data(data)
    epoch = 0
    while not clock.spent and (max_epochs is None or epoch < max_epochs):
        prepared = pipeline.prepare(data, epoch=epoch, seed=seed)
        perm = np.random.default_rng([seed, epoch, 5]).permutation(len(data))
        guard = NaNGuard()
        model.fit(**backend.fit_data(fit_inputs(model, prepared, perm), batch_size), epochs=1,
                  shuffle=False, verbose=0, callbacks=[guard, clock])
        if guard.bad is not None:
            raise TrainingDiverged(f"diverged in epoch {epoch + 1}: {guard.bad}")
        epoch += 1
    end = time.perf_counter()
    start = clock.start or end
    steps = min(clock.steps, epoch * steps_per_epoch)  # steps_per_execution may overshoot the last
    return model, {"train_seconds": round(end - start, 1), "warmup_seconds": round(start - clock.created, 1),
                   "steps": int(steps),
                   "epochs_trained": round(steps / steps_per_epoch, 3), "train_examples": len(data),
                   "batch_size": batch_size, "params": int(model.count_params())}


class _Timed:
    """A model whose `sample` is timed (what `sample_metrics` reads: `conditional` and `sample`)."""

    def __init__(self, model, sample_fn=None):
        self.model = model
        self.conditional = model.conditional
        self.sample_fn = sample_fn or model.sample
        self.seconds = 0.0

    def sample(self, n, **kwargs):
        start = time.perf_counter()
        out = self.sample_fn(n, **kwargs)
        self.seconds += time.perf_counter() - start
        return out


def decoder_means(model):
    """A VAE's `sample` replaced by its decoder means E[x|z], z from the prior."""
    import numpy as np

    def sample(n, seed=None, labels=None, batch_size=256):
        z = np.random.default_rng([seed or 0, 3]).standard_normal((n, model.latent_dim)).astype("float32")
        return np.concatenate([np.asarray(model.decode(z[i:i + batch_size])) for i in range(0, n, batch_size)])

    return sample


def binary_draws(model, data_config):
    """`model.sample` replaced by Bernoulli draws with its samples' [0, 1] grey levels as probabilities."""
    import numpy as np

    from kgen.evaluation import to_unit

    def sample(n, seed=None, labels=None, batch_size=256):
        unit = to_unit(model.sample(n, seed=seed, labels=labels, batch_size=batch_size), data_config)
        draws = (np.random.default_rng([seed or 0, 5]).uniform(size=unit.shape) < unit).astype("float32")
        return draws * 2.0 - 1.0 if data_config.get("scale", "unit") == "symmetric" else draws  # model space

    return sample


def score(model, config, num_samples, seed, sample_fn=None):
    """`sample_metrics` of `model` on the recipe's evaluation split, with the sampling time."""
    from kgen.data.pipeline import Pipeline
    from kgen.evaluation import sample_metrics

    pipeline = Pipeline(config["data"])
    data = pipeline.load(config["evaluate"]["split"])
    timed = _Timed(model, sample_fn)
    start = time.perf_counter()
    r = sample_metrics(timed, pipeline, data, config["evaluate"], num_samples=num_samples, seed=seed)
    out = {"fid": r["fid"], "kid": r["kid"]["mean"], "kid_std": r["kid"]["std"],
           "fid_floor": r["fid_floor"], "kid_floor": r["kid_floor"]["mean"],
           "sample_seconds": round(timed.seconds, 1), "score_seconds": round(time.perf_counter() - start, 1),
           "num_samples": r["num_samples"], "reference_split": r["reference_split"],
           "reference_examples": len(data if r["reference_split"] == data.split else
                                     Pipeline(dict(pipeline.config, max_examples=0)).load(r["reference_split"])),
           "floor_split": r["floor_split"], "features": r["features"]}
    if "label_accuracy" in r:
        out["label_accuracy"] = r["label_accuracy"]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join((UNTRAINED,) + MODELS),
                        help=f"comma-separated, from {', '.join((UNTRAINED,) + MODELS)}")
    parser.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist, or binarized_mnist (GAN rows)")
    parser.add_argument("--budget-seconds", type=float, default=180.0, help="training wall clock per model")
    parser.add_argument("--epochs", type=int, default=None, help="also stop after this many epochs")
    parser.add_argument("--max-examples", type=int, default=0, help="train on the first N images (0: all)")
    parser.add_argument("--num-samples", type=int, default=2000, help="samples scored per model")
    parser.add_argument("--seed", type=int, default=0, help="the sample seed")
    parser.add_argument("--feature-classifier", default="", help="a .keras feature classifier (default: shipped)")
    parser.add_argument("--out", default="", help="JSON path (default bench/results/fashion_mnist_fid[_DATASET].json)")
    parser.add_argument("--merge", action="store_true", help="add to (replace same-named rows in) the JSON")
    parser.add_argument("--binary-draws", action=argparse.BooleanOptionalAction, default=None,
                        help="also score Bernoulli draws from the grey samples (default: on for binarized_mnist)")
    args = parser.parse_args()

    import keras

    import kgen
    from kgen import config as config_lib

    if args.binary_draws is None:
        args.binary_draws = args.dataset == "binarized_mnist"
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set((UNTRAINED,) + MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join((UNTRAINED,) + MODELS)}")
    suffix = "" if args.dataset == "fashion_mnist" else f"_{args.dataset}"
    out = pathlib.Path(args.out) if args.out else RESULTS / f"fashion_mnist_fid{suffix}.json"
    settings = {"dataset": args.dataset, "binary_draws": args.binary_draws, "budget_seconds": args.budget_seconds,
                "max_epochs": args.epochs,
                "max_examples": args.max_examples, "num_samples": args.num_samples, "sample_seed": args.seed,
                "backend": keras.config.backend()}
    report = {"benchmark": "fashion_mnist_fid", "machine": machine(), **settings,
              "budget": "the same training wall clock for every model, stopped mid-epoch; the build and the "
                        "first compiled call (tracing, compilation) are timed apart as warmup_seconds; "
                        "no validation or sample grids",
              "metric_note": "domain FID/KID in the features of kgen's classifier for this data set: "
                             "they rank models here, they are not comparable with Inception FIDs in papers",
              "models": {}}
    if args.merge and out.is_file():
        old = json.loads(out.read_text())
        differs = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if differs:
            print(f"note: merging rows measured with other settings: {differs}")
            report["merged_settings_differ"] = {k: v[0] for k, v in differs.items()}
        report["models"] = old.get("models", {})

    def write():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")

    print(f"{args.dataset}: {args.budget_seconds:g} s per model, N = {args.num_samples}, "
          f"backend {settings['backend']} -> {out}", flush=True)
    for name in names:
        load = os.getloadavg()[0]
        if name == UNTRAINED:
            config, path = recipe_config("dcgan", args.dataset, args)
            hparams = {k: v for k, v in config_lib.model_hparams(config).items() if k != "conditional"}
            keras.utils.set_random_seed(config["train"]["seed"])
            model = kgen.build_model("dcgan", input_shape=(28, 28, 1), **hparams)
            row = {"recipe": str(path.relative_to(path.parents[2])), "train_seconds": 0.0, "epochs_trained": 0}
        else:
            config, path = recipe_config(name, args.dataset, args)
            try:
                model, row = train_for_budget(config, args.budget_seconds, args.epochs)
            except Exception as e:  # noqa: BLE001 (a diverged or failing model is a row, not the end)
                report["models"][name] = {"error": f"{type(e).__name__}: {e}"}
                print(f"{name:>16}: failed: {type(e).__name__}: {e}", flush=True)
                write()
                continue
            row = {"recipe": str(path.relative_to(path.parents[2])), **row}
        row.update(score(model, config, args.num_samples, args.seed))
        if name == "vae":
            means = score(model, config, args.num_samples, args.seed, sample_fn=decoder_means(model))
            row["decoder_means"] = {k: means[k] for k in ("fid", "kid", "kid_std", "sample_seconds")}
        if args.binary_draws and name not in ("vae", "pixel_cnn"):  # those two sample pixels themselves
            draws = score(model, config, args.num_samples, args.seed, sample_fn=binary_draws(model, config["data"]))
            row["binary_draws"] = {k: draws[k] for k in ("fid", "kid", "kid_std")}
        row["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        report["models"][name] = row
        write()
        extra = f"  label acc {row['label_accuracy']:.3f}" if "label_accuracy" in row else ""
        if "decoder_means" in row:
            extra += f"  decoder means FID {row['decoder_means']['fid']:.2f}"
        if "binary_draws" in row:
            extra += f"  binary draws FID {row['binary_draws']['fid']:.2f}"
        print(f"{name:>16}: FID {row['fid']:8.2f}  KID {row['kid']:7.4f}  (floor FID {row['fid_floor']:.2f} "
              f"KID {row['kid_floor']:.4f})  {row.get('epochs_trained', 0):.2f} epochs in "
              f"{row['train_seconds']:.0f} s, sampling {row['sample_seconds']:.1f} s{extra}", flush=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
