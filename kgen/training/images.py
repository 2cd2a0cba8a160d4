"""Sample grids and plots as PNG files."""

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
