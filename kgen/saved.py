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
        model, _, dataset = path.stem.partition("-")
        out.append({"model": model, "dataset": dataset, "file": path.name, "recipe": f"{path.stem}.toml"})
    return out


def pretrained_path(model, dataset=None):
    """The shipped checkpoint for `model` (preferring `digits`)."""
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
