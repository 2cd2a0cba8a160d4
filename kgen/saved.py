"""Pretrained checkpoints shipped in `saved_models/`.

Each `<model>-<dataset>.keras` sits beside the recipe that made it,
`<model>-<dataset>.toml` (a copy of the run's resolved config). Checkpoints
behind a README figure also carry `<model>-<dataset>.json`: the commands that
trained and scored them, and the figure they score, on the whole split and on
a fixed slice of it (the slice is what the tests check).

    python -m kgen.saved MODEL [DATASET]            # train the bundled recipe and ship its best checkpoint
    python -m kgen.saved --from-run RUN_DIR --command "kgen train ..."   # ship a finished run, and score it
"""

import importlib.resources
import pathlib

from kgen.errors import UsageError, did_you_mean


def _root():
    return pathlib.Path(str(importlib.resources.files("kgen.saved_models")))


def list_pretrained():
    out = []
    for path in sorted(_root().glob("*.keras")):
        if path.stem.startswith("features-"):  # FID/KID feature classifiers (kgen.metrics.features)
            continue
        model, _, dataset = path.stem.partition("-")
        out.append({"model": model, "dataset": dataset, "file": path.name, "recipe": f"{path.stem}.toml"})
    return out


def pretrained_path(model, dataset=None):
    """The shipped checkpoint for `model` (preferring `digits`); `pixelcnn` means `pixel_cnn`."""
    from kgen.api import canonical_name

    model = canonical_name(model)
    entries = [p for p in list_pretrained() if p["model"] == model]
    if dataset:
        entries = [p for p in entries if p["dataset"] == dataset]
    if not entries:
        names = sorted({p["model"] for p in list_pretrained()})
        raise UsageError(
            f'no pretrained checkpoint ships for "{model}".{did_you_mean(model, names)} '
            f"Shipped: {', '.join(names) or 'none'}. Train one with `kgen train --model {model}` "
            "and pass --checkpoint."
        )
    entries.sort(key=lambda p: p["dataset"] != "digits")
    return _root() / entries[0]["file"]


def make_pretrained(model, dataset="digits", dest=None, verbose=0):
    """Trains the bundled recipe `configs/<model>/<dataset>.toml` and ships its best checkpoint.

    Writes `<model>-<dataset>.keras` (weights and config, no optimizer state)
    and `<model>-<dataset>.toml` (the resolved recipe) into `dest`
    (default: this package's `saved_models/`). Run it as
    `python -m kgen.saved MODEL [DATASET]`.
    """
    import tempfile

    from kgen import checkpoint, config as config_lib
    from kgen.training.trainer import train

    recipe = config_lib.recipe_path(model, dataset)
    if recipe is None:
        raise UsageError(f"no bundled recipe configs/{model}/{dataset}.toml.")
    config = config_lib.resolve(config_file=recipe)
    dest = pathlib.Path(dest) if dest else _root()
    with tempfile.TemporaryDirectory() as tmp:
        _, run_dir, _ = train(config, run_dir=pathlib.Path(tmp) / "run", verbose=verbose)
        best = checkpoint.load_model(run_dir / "best.keras", compile=False)
        state = checkpoint.read_state(run_dir / "best.keras")
        state["recipe"] = f"configs/{model}/{dataset}.toml"
        checkpoint.save_checkpoint(best, dest / f"{model}-{dataset}.keras", state)
        (dest / f"{model}-{dataset}.toml").write_text((run_dir / "config.toml").read_text())
    return dest / f"{model}-{dataset}.keras"


SLICE_EXAMPLES = 1000  # the fixed slice (`kgen evaluate --max-examples 1000`) that the tests score


def measured_path(path):
    """The `.json` of measured figures beside a shipped checkpoint (it may not exist)."""
    return pathlib.Path(path).with_suffix(".json")


def ship_run(run_dir, command, dest=None, split="test", iw_samples=None, slice_examples=SLICE_EXAMPLES):
    """Ships the best checkpoint of a finished run and records what it scores.

    Writes `<model>-<dataset>.keras` (weights and config, no optimizer
    state), `<model>-<dataset>.toml` (the run's resolved recipe) and
    `<model>-<dataset>.json`: `command` (the one that trained the run), the
    `kgen evaluate` commands that reproduce the figures, and their results on
    the whole `split` and on its fixed slice of `slice_examples`.
    """
    import json
    import platform
    import time

    import keras

    from kgen import checkpoint
    from kgen.evaluation import evaluate_checkpoint

    run_dir = pathlib.Path(run_dir)
    best = checkpoint.load_model(run_dir / "best.keras", compile=False)
    state = checkpoint.read_state(run_dir / "best.keras")
    config_text = (run_dir / "config.toml").read_text()
    import tomllib

    config = tomllib.loads(config_text)
    model, dataset = config["model"]["name"], config["data"]["name"]
    dest = pathlib.Path(dest) if dest else _root()
    out = dest / f"{model}-{dataset}.keras"
    state["recipe"] = f"{model}-{dataset}.toml"
    checkpoint.save_checkpoint(best, out, state)
    out.with_suffix(".toml").write_text(config_text)

    def score(max_examples):
        start = time.perf_counter()
        result = evaluate_checkpoint(out, split=split, iw_samples=iw_samples, max_examples=max_examples,
                                     progress=False)
        keep = {k: result[k] for k in ("examples", "nll_kind", "nll", "elbo", "iw_bound") if k in result}
        keep["seconds"] = round(time.perf_counter() - start, 1)
        return keep

    base = f"kgen evaluate --checkpoint saved_models/{out.name} --dataset {dataset} --split {split}"
    base += f" --iw-samples {iw_samples}" if iw_samples else ""
    record = {
        "checkpoint": out.name,
        "train_command": command,
        "epochs": state.get("epoch"),
        "best_epoch": state.get("best_epoch"),
        "whole_split": {"command": base + " --json", **score(0)},
        "slice": {"command": base + f" --max-examples {slice_examples} --json", **score(slice_examples)},
        "backend": keras.config.backend(),
        "keras_version": keras.__version__,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
    }
    measured_path(out).write_text(json.dumps(record, indent=1) + "\n")
    return out, record


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description="Ship a pretrained checkpoint into saved_models/.")
    parser.add_argument("model", nargs="?", help="train configs/MODEL/DATASET.toml and ship its best checkpoint")
    parser.add_argument("dataset", nargs="?", default="digits")
    parser.add_argument("--from-run", help="ship this finished run folder instead of training")
    parser.add_argument("--command", default="", help="the command that trained --from-run (recorded)")
    parser.add_argument("--iw-samples", type=int, default=None, help="k of the IW bound to record (latent models)")
    parser.add_argument("--dest", default=None)
    args = parser.parse_args(argv)
    if args.from_run:
        if not args.command:
            parser.error("--from-run needs --command: the command that trained the run, to record.")
        out, record = ship_run(args.from_run, args.command, dest=args.dest, iw_samples=args.iw_samples)
        print(out)
        print({k: record[k] for k in ("whole_split", "slice")})
    elif args.model:
        print(make_pretrained(args.model, args.dataset, dest=args.dest, verbose=1))
    else:
        parser.error("name a MODEL (and DATASET), or --from-run RUN_DIR.")


if __name__ == "__main__":
    main()
