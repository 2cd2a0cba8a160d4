"""Sample grids and plots as PNG files: the ground floor every other part draws with.

Models never draw: they give arrays (samples, `log_prob` on a grid, translation
panels) and the functions here turn them into PNGs. This module imports nothing
of kgen's, so models, training and sampling can all use it.
"""

import math
import struct
import zlib

import numpy as np


def encode_png(pixels):
    """uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> PNG bytes (no dependencies)."""
    pixels = np.asarray(pixels, "uint8")
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    h, w = pixels.shape[:2]
    color = {2: 0, 3: {3: 2, 4: 6}.get(pixels.shape[-1] if pixels.ndim == 3 else 0)}[pixels.ndim]
    if color is None:
        raise ValueError(f"cannot write an image of shape {pixels.shape} as PNG")
    rows = pixels.reshape(h, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def image_grid(images, columns=None, pad=1, upscale=None):
    """Tiles (N, H, W, C) images in [0, 1] into one uint8 grid image."""
    images = np.clip(np.asarray(images, "float32"), 0.0, 1.0)
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, c), "float32") * 0.5
    for i in range(n):
        r, col = divmod(i, columns)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        grid[y0 : y0 + h, x0 : x0 + w] = images[i]
    if upscale is None:
        upscale = max(1, 256 // grid.shape[0])
    grid = np.repeat(np.repeat(grid, upscale, 0), upscale, 1)
    return (grid * 255 + 0.5).astype("uint8")


def write_grid(path, images, columns=None):
    with open(path, "wb") as f:
        f.write(encode_png(image_grid(images, columns)))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_points(path, samples, data=None, title=None, bounds=None):
    """Scatter of 2-D samples beside a histogram of the data."""
    plt = _pyplot()
    samples = np.asarray(samples)
    panels = 2 if data is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 4), squeeze=False)
    if bounds is None:
        ref = data if data is not None else samples
        lo, hi = np.percentile(ref, 0.5, axis=0), np.percentile(ref, 99.5, axis=0)
        span = (hi - lo) * 0.15
        bounds = [(lo[0] - span[0], hi[0] + span[0]), (lo[1] - span[1], hi[1] + span[1])]
    if data is not None:
        axes[0, 0].hist2d(data[:, 0], data[:, 1], bins=100, range=bounds, cmap="viridis")
        axes[0, 0].set_title("data")
    ax = axes[0, -1]
    ax.hist2d(samples[:, 0], samples[:, 1], bins=100, range=bounds, cmap="viridis")
    ax.set_title(title or "model samples")
    for a in axes[0]:
        a.set_xticks([])
        a.set_yticks([])
        a.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_loss_plot(path, history):
    """One panel per logged metric, validation beside training. `history`: list of dicts."""
    plt = _pyplot()
    keys = [k for k in history[0] if k not in ("epoch", "seconds") and not k.startswith("val_")]
    cols = min(3, len(keys))
    rows = int(math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    epochs = [row["epoch"] for row in history]
    for ax, key in zip(axes.flat, keys):
        ax.plot(epochs, [row.get(key, np.nan) for row in history], label="train")
        if any(f"val_{key}" in row for row in history):
            ax.plot(epochs, [row.get(f"val_{key}", np.nan) for row in history], label="valid")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend()
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# === Figures of a model ===


def density_grid(model, bounds, resolution=200, labels=None):
    """exp(log_prob) of a 2-D density model on a `resolution`^2 grid over `bounds`.

    A conditional model gives p(x | labels), or with `labels` None the
    average of p(x | k) over the classes (a uniform label prior).
    """
    (x0, x1), (y0, y1) = bounds
    xs = np.linspace(x0, x1, resolution, dtype="float32")
    ys = np.linspace(y0, y1, resolution, dtype="float32")
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    if not model.conditional:
        density = np.exp(model.log_prob(pts, batch_size=8192))
    else:
        classes = range(model.num_classes) if labels is None else [labels]
        density = np.mean([np.exp(model.log_prob(pts, np.full(len(pts), k, "int32"), batch_size=8192))
                           for k in classes], axis=0)
    return xs, ys, density.reshape(resolution, resolution)


def write_density_figure(model, path, data, samples=None, resolution=200):
    """PNG: histogram of the data | model density | model samples."""
    plt = _pyplot()
    lo, hi = np.percentile(data, 0.5, axis=0), np.percentile(data, 99.5, axis=0)
    span = (hi - lo) * 0.15
    bounds = [(float(lo[0] - span[0]), float(hi[0] + span[0])), (float(lo[1] - span[1]), float(hi[1] + span[1]))]
    xs, ys, density = density_grid(model, bounds, resolution)
    panels = 3 if samples is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 4))
    axes[0].hist2d(data[:, 0], data[:, 1], bins=100, range=bounds, cmap="viridis")
    axes[0].set_title("data")
    axes[1].imshow(density, origin="lower", extent=[*bounds[0], *bounds[1]], cmap="viridis", aspect="auto")
    axes[1].set_title("model density")
    if samples is not None:
        samples = np.asarray(samples)
        axes[2].hist2d(samples[:, 0], samples[:, 1], bins=100, range=bounds, cmap="viridis")
        axes[2].set_title("model samples")
    for a in axes:
        a.set_xticks([])
        a.set_yticks([])
        a.set_xlim(*bounds[0])
        a.set_ylim(*bounds[1])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_epoch_figure(path, model, samples, data=None, scale="unit", title=None):
    """The figure of one epoch's samples, as the data's kind asks.

    2-D data and a model that `draws_density`: data | density | samples. Other
    vector data: samples (first two coordinates) beside the data. Images: a grid
    (`scale = "symmetric"` samples in [-1, 1] are mapped back to [0, 1]).
    """
    samples = np.asarray(samples)
    x = None if data is None else np.asarray(data.x)
    if samples.ndim == 2:
        if model.draws_density and samples.shape[1] == 2 and x is not None:
            write_density_figure(model, path, x, samples)
        else:
            write_points(path, samples[:, :2], None if x is None else x[:, :2], title=title)
        return path
    if scale == "symmetric":
        samples = (samples + 1.0) / 2.0
    write_grid(path, samples)
    return path


def write_translation_figure(path, model, prepared, n, scale="unit", direction="a2b"):
    """PNG grid of source | translated (| target when paired) for the first `n` rows of `prepared`."""
    n = min(int(n), len(prepared.x))
    paired = bool(getattr(prepared.source, "paired", False))
    source, target = prepared.x_source[:n], (prepared.x[:n] if paired else None)
    if direction == "b2a":
        source, target = prepared.x[:n], (prepared.x_source[:n] if paired else None)
    panels, columns = model.translation_panels(source, target, direction)
    if scale == "symmetric":
        panels = (panels + 1.0) / 2.0
    write_grid(path, panels, columns=columns)
    return path
