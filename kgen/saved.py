"""Pretrained checkpoints shipped in `saved_models/`.

Each `<model>-<dataset>.keras` sits beside the recipe that made it,
`<model>-<dataset>.toml` (a copy of the run's resolved config).
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


if __name__ == "__main__":
    import sys

    print(make_pretrained(*sys.argv[1:3], verbose=1))
