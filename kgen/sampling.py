"""Sampling to files: PNG grids and `.npz` arrays."""

import pathlib

import numpy as np

from kgen.errors import UsageError


def sample_to_file(checkpoint=None, model=None, n=64, seed=None, label=None, temperature=1.0, out="samples.png"):
    """Samples a checkpoint (or the pretrained `model`) into `out` (.png or .npz)."""
    from kgen import checkpoint as ckpt
    from kgen.saved import pretrained_path
    from kgen.training import images

    out = pathlib.Path(out)
    if out.suffix not in (".png", ".npz"):
        raise UsageError(f"--out must end in .png (a grid) or .npz (arrays), got {out.name}.")
    path = checkpoint or pretrained_path(model)
    net = ckpt.load_model(path, compile=False)
    state = ckpt.read_state(path)
    if label is not None and not net.conditional:
        raise UsageError(f"{type(net).__name__} in {path} is not conditional: drop --label.")
    labels = None if label is None else np.full(n, label, "int32")
    samples = net.sample(n, seed=seed, labels=labels, temperature=temperature)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        extra = {} if labels is None else {"y": labels}
        np.savez(out, x=samples, **extra)
        return out
    if samples.ndim == 2:
        images.write_points(out, samples[:, :2])
    else:
        if state.get("config", {}).get("data", {}).get("scale") == "symmetric":
            samples = (samples + 1.0) / 2.0
        images.write_grid(out, samples)
    return out
