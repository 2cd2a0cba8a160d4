"""Sampling to files: PNG grids and `.npz` arrays.

Files are written whole (`kgen.export.outputs.replacing_file`): a failure
(a full disk) leaves a previous file at `out` as it was.
"""

import math
import pathlib

import numpy as np

from kgen.config import MAX_SEED
from kgen.errors import UsageError
from kgen.export.outputs import replacing_file



def check_sample_args(n, seed, temperature):
    """Raises `UsageError` for a sample count, seed or temperature kgen cannot use."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UsageError(f"-n must be a positive number of samples, got {n}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or not 0 <= seed <= MAX_SEED):
        raise UsageError(f"--seed must be an integer from 0 to {MAX_SEED}, got {seed}; "
                         "omit it for fresh randomness.")
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        t = math.nan
    if not (math.isfinite(t) and t > 0):
        raise UsageError(f"--temperature must be a finite number above 0, got {temperature}; "
                         "1 samples the model as trained, lower values are sharper.")


def sample_to_file(checkpoint=None, model=None, n=64, seed=None, label=None, temperature=1.0, out="samples.png",
                   interpolate=None, code=None, traverse=None, top_k=8, span=3.0, from_data=False,
                   chains=None, burn_in=None, every=None, edit=False):
    """Samples a checkpoint (or the pretrained `model`) into `out` (.png or .npz).

    `interpolate=STEPS` (GANs and latent models) writes latent walks instead:
    `max(1, n // STEPS)` rows, each STEPS images along the model's path (slerp for
    Gaussian latents) between two prior draws, or with `from_data` between the codes
    of two test examples of the data set the checkpoint records.
    `code=I` (InfoGAN) writes the code grid: categories in rows, continuous
    code I swept from -1 to 1 in columns.
    `traverse=STEPS` (latent models) writes a traversal grid: the `top_k` most active
    latent dimensions in rows (ranked on test examples of the recorded data set; in
    index order when there are none), each swept over STEPS values from -span to span
    prior standard deviations around the code of a test example (`seed` picks which;
    the prior's centre without data); the `.npz` gets the row dimensions as `dims`.
    A painting agent (SPIRAL, `sample_strokes`) writes each sample as a strip of its canvas
    after every stroke (.png), or the final canvases as `x` and the sequences as `strokes` (.npz).
    Markov-chain samplers (`sample_chains`): `burn_in` sets the steps before a state is
    taken (default: the model's `sample_steps`); `chains=C` writes a chain-progress grid
    instead, C chains in rows, each with `n // C` states in columns taken `every` steps
    apart (default 1) after the burn-in.
    """
    from kgen import checkpoint as ckpt
    from kgen import figures
    from kgen.saved import pretrained_path

    out = pathlib.Path(out)
    if out.suffix not in (".png", ".npz", ".txt"):
        raise UsageError(f"--out must end in .png (a grid), .npz (arrays) or .txt (sequence models' text), "
                         f"got {out.name}.")
    check_sample_args(n, seed, temperature)
    path = checkpoint or pretrained_path(model)
    net = ckpt.load_model(path, compile=False)
    state = ckpt.read_state(path)
    if label is not None and not net.conditional:
        raise UsageError(f"{type(net).__name__} in {path} is not conditional: drop --label.")
    if net.supports("translate"):  # image-to-image models translate the test split instead
        return translations_to_file(net, state, path, n, seed, out)
    if net.supports("decode_sequences") or out.suffix == ".txt":  # token sequences: text, one a line
        return sequences_to_file(net, n, seed, temperature, out, interpolate, code)
    if edit:
        return edits_to_file(net, state, path, n, seed, label, out)
    labels = None if label is None else np.full(n, label, "int32")
    columns = None
    extra = {}
    chain_args = {"--chains": chains, "--burn-in": burn_in, "--steps": every}
    given = [flag for flag, value in chain_args.items() if value is not None]
    if given and not net.supports("sample_chains"):
        raise UsageError(f"{type(net).__name__} does not sample by a Markov chain: drop {', '.join(given)}.")
    if given and (traverse is not None or interpolate is not None or code is not None):
        raise UsageError(f"{', '.join(given)} set a Markov chain's sampling; --traverse, --interpolate and --code "
                         "are latent models' grids.")
    if every is not None and chains is None:
        raise UsageError("--steps spaces the states taken along each of --chains chains; add --chains C.")
    if chains is not None:
        states = max(1, n // chains) if isinstance(chains, (int, np.integer)) and chains > 0 else 0
        grid = net.sample_chains(chains, states, burn_in=burn_in, every=1 if every is None else every, seed=seed,
                                 labels=label)
        samples, columns = grid.reshape((-1,) + grid.shape[2:]), grid.shape[1]
        if net.conditional:  # each chain's label on each of its states
            labels = np.repeat(net._labels_for(chains, label), columns)
    elif burn_in is not None:
        samples = net.sample_chains(n, 1, burn_in=burn_in, seed=seed, labels=label)[:, 0]
        if net.conditional:
            labels = net._labels_for(n, label)
    elif traverse is not None:
        if interpolate is not None or code is not None:
            raise UsageError("pass one of --traverse, --interpolate or --code.")
        samples, columns, extra = _traversal_figure(net, state, path, seed, label, traverse, top_k, span)
        labels = None if label is None else np.full(len(samples), label, "int32")
    elif interpolate is not None or code is not None:
        examples = _recorded_examples(state, path, required="--from-data") if from_data else None
        samples, columns, labels = _latent_figure(net, n, seed, label, interpolate, code, examples)
    else:
        if from_data:
            raise UsageError("--from-data chooses the ends of --interpolate walks; add --interpolate STEPS.")
        if hasattr(net, "sample_strokes"):  # a painting agent (SPIRAL): each sample with its strokes
            strokes = net.sample_strokes(n, seed=seed)
            samples, extra["strokes"] = strokes[:, -1], strokes
            if out.suffix == ".png":  # a strip a sample: its canvas after each stroke, the last one the sample
                samples, columns = strokes.reshape((-1,) + strokes.shape[2:]), strokes.shape[1]
        else:
            samples = net.sample(n, seed=seed, labels=labels, temperature=temperature)
    with replacing_file(out) as tmp:
        if out.suffix == ".npz":
            if labels is not None:
                extra["y"] = labels
            np.savez(tmp, x=samples, **extra)
        elif samples.ndim == 2:
            figures.write_points(tmp, samples[:, :2])
        else:
            if state.get("config", {}).get("data", {}).get("scale") == "symmetric":
                samples = (samples + 1.0) / 2.0
            figures.write_grid(tmp, samples, columns)
    return out


def _latent_figure(net, n, seed, label, interpolate, code, examples=None):
    """(images, grid columns, labels or None) of latent walks or of InfoGAN's code grid.

    `examples`: walk between the codes of these (random ones with `seed`) instead of prior draws.
    """
    name = type(net).__name__
    if interpolate is not None and code is not None:
        raise UsageError("pass --interpolate or --code, not both.")
    if examples is not None and code is not None:
        raise UsageError("--from-data chooses the ends of --interpolate walks, not of --code grids.")
    if code is not None:
        if not net.supports("code_grid"):
            raise UsageError(f"--code varies InfoGAN's latent codes; {name} has none.")
        steps = 8
        return net.code_grid(num_steps=steps, code=code, seed=0 if seed is None else seed), steps, None
    if not net.supports("interpolate"):
        raise UsageError(f"--interpolate walks a latent space; {name} has no `interpolate`.")
    if interpolate < 2:
        raise UsageError(f"--interpolate needs at least 2 steps, got {interpolate}.")
    rows = max(1, n // interpolate)
    if examples is not None:
        if not net.supports("latent_codes"):
            raise UsageError(f"--from-data walks between the codes of examples; {name} has no encoder.")
        if len(examples) < 2:
            raise UsageError("--from-data needs at least 2 test examples.")
        pick = np.random.default_rng(seed).choice(len(examples), 2 * rows, replace=2 * rows > len(examples))
        ends = net.latent_codes(examples[pick], None if label is None else np.full(2 * rows, label, "int32"))
    else:
        ends = net.draw_latents(2 * rows, seed)
    walks = [net.interpolate(ends[2 * r], ends[2 * r + 1], num_steps=interpolate,
                             labels=None if label is None else label) for r in range(rows)]
    labels = None if label is None else np.full(rows * interpolate, label, "int32")
    return np.concatenate(walks), interpolate, labels


def _traversal_figure(net, state, path, seed, label, steps, top_k, span):
    """(images, grid columns, {"dims": ...}) of a latent model's traversal grid (see `sample_to_file`)."""
    name = type(net).__name__
    if not net.supports("traverse"):
        raise UsageError(f"--traverse sweeps a latent model's code dimensions; {name} has no `traverse`.")
    if steps < 2:
        raise UsageError(f"--traverse needs at least 2 values a row, got {steps}.")
    if top_k < 1:
        raise UsageError(f"--top-k must be a positive number of rows, got {top_k}.")
    if not (math.isfinite(span) and span > 0):
        raise UsageError(f"--span must be a finite number above 0 (prior standard deviations), got {span}.")
    x = _recorded_examples(state, path)
    if x is not None and seed is not None:  # the base code is the first example's: the seed picks it
        x = np.roll(x, -int(np.random.default_rng(seed).integers(len(x))), axis=0)
    grid = net.traverse(x=x, top_k=top_k, num_steps=steps, span=span,
                        labels=None if label is None else np.array([label], "int32"))
    return grid.images, len(grid.images) // len(grid.dims), {"dims": grid.dims, "values": grid.values}


TRAVERSAL_EXAMPLES = 1000  # test examples that rank a traversal's dimensions


def _recorded_examples(state, path, required=None):
    """Prepared test examples of the built-in data set a checkpoint records (the first
    `TRAVERSAL_EXAMPLES`), or None when it records none or a path (`required`: an option that
    needs them, which makes that a `UsageError`)."""
    from kgen.data import DATASETS
    from kgen.data.pipeline import Pipeline

    config = state.get("config") or {}
    name = config.get("data", {}).get("name")
    if name is None or str(name) not in DATASETS:
        if required:
            raise UsageError(f"{required} needs the test examples of the data set {path} was trained on, and "
                             f"it records {'none' if name is None else 'a file, not a built-in data set'}; "
                             "call model.latent_codes(x) and model.interpolate from Python instead.")
        return None
    pipeline = Pipeline(config["data"])
    return pipeline.prepare(pipeline.load("test").subset(TRAVERSAL_EXAMPLES, seed=0), seed=0).x


def translations_to_file(net, state, path, n, seed, out):
    """Translates `n` test-split sources of a checkpoint's data (random ones with `seed`, else the first).

    A `.png` gets rows of source | translated (| target, when the data are
    paired); a `.npz` gets `source`, `x` (the translations) and `target`.
    """
    import dataclasses

    from kgen import figures
    from kgen.data.pipeline import Pipeline
    from kgen.evaluation import check_recorded_data

    config = state.get("config")
    if not config:
        raise UsageError(f"{path} records no training data set, so kgen cannot tell what to translate; "
                         "call model.translate(images) from Python instead.")
    check_recorded_data(config["data"]["name"], path, "call model.translate(images) from Python instead")
    pipeline = Pipeline(config["data"])
    prepared = pipeline.prepare(pipeline.load("test"), seed=0)
    n = min(n, len(prepared.x))
    idx = np.arange(n) if seed is None else np.sort(np.random.default_rng(seed).choice(len(prepared.x), n, False))
    prepared = dataclasses.replace(prepared, x=prepared.x[idx], x_source=prepared.x_source[idx])
    with replacing_file(out) as tmp:
        if out.suffix == ".npz":
            extra = {"target": prepared.x} if prepared.source.paired else {}
            np.savez(tmp, source=prepared.x_source, x=net.translate(prepared.x_source), **extra)
        else:
            figures.write_translation_figure(tmp, net, prepared, n, scale=config["data"]["scale"])
    return out


def edits_to_file(net, state, path, n, seed, label, out):
    """Edits `n` test examples of a checkpoint's data (random ones with `seed`, else the first) toward
    `label`: a `.png` of rows source | edit, or a `.npz` with `source`, `x` (the edits) and `y`."""
    from kgen import figures

    if not net.supports("edit"):
        raise UsageError(f"--edit moves examples toward a label (latent_constraints); {type(net).__name__} "
                         "does not edit.")
    if label is None and net.conditional:
        raise UsageError("--edit needs --label K: the class to move the examples toward.")
    x = _recorded_examples(state, path, required="--edit")
    n = min(n, len(x))
    idx = np.arange(n) if seed is None else np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
    source, labels = x[idx], (None if label is None else np.full(n, label, "int32"))
    edited = net.edit(source, labels=labels)
    with replacing_file(out) as tmp:
        if out.suffix == ".npz":
            np.savez(tmp, source=source, x=edited, **({} if labels is None else {"y": labels}))
        else:
            pairs = np.stack([source, edited], axis=1).reshape((-1,) + source.shape[1:])
            if state.get("config", {}).get("data", {}).get("scale") == "symmetric":
                pairs = (pairs + 1.0) / 2.0
            figures.write_grid(tmp, pairs, 2)
    return out


def sequences_to_file(net, n, seed, temperature, out, interpolate=None, code=None):
    """Samples of a sequence model: `.txt` (one decoded sequence a line) or `.npz` (token ids, key `x`)."""
    name = type(net).__name__
    if not net.supports("decode_sequences"):
        raise UsageError(f"--out {out.name}: .txt is for models of token sequences; {name} makes "
                         "images or points: use .png or .npz.")
    if out.suffix == ".png" or interpolate is not None or code is not None:
        raise UsageError(f"{name} generates token sequences: pass --out FILE.txt (decoded text, one sequence "
                         "a line) or FILE.npz (token ids), without --interpolate / --code.")
    samples = net.sample(n, seed=seed, temperature=temperature)
    with replacing_file(out) as tmp:
        if out.suffix == ".npz":
            np.savez(tmp, x=samples)
        else:
            text = "".join(line.replace("\n", " ") + "\n" for line in net.decode_sequences(samples))
            pathlib.Path(tmp).write_text(text, encoding="utf-8")
    return out
