"""The `kgen` command: parse, call the library, report.

Every command is a thin wrapper around `kgen`; Keras is imported only after
`--backend` is applied.
"""

import json
import os
import pathlib
import sys

import click

from kgen.export.common import FORMATS as EXPORT_FORMATS  # Keras-free: the backend is still choosable


class KgenGroup(click.Group):
    """Turns kgen's own errors into one line and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as e:  # noqa: BLE001
            from kgen.errors import KgenError

            if ctx.obj and ctx.obj.get("debug"):
                raise
            if isinstance(e, KgenError):
                click.echo(f"Error: {e}", err=True)
                ctx.exit(e.exit_code)
            if isinstance(e, KeyboardInterrupt):
                raise
            click.echo(f"Error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
            ctx.exit(1)


@click.group(cls=KgenGroup)
@click.option("--backend", type=click.Choice(["tensorflow", "jax", "torch"]), default=None,
              help="Keras backend (default: $KERAS_BACKEND, else tensorflow).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="kgen")
@click.pass_context
def main(ctx, backend, debug):
    """kgen: classic deep generative models for Keras 3."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if ctx.invoked_subcommand == "export":
        if backend not in (None, "tensorflow"):
            click.echo(f"note: export runs on the tensorflow backend (a .keras from {backend} loads there).", err=True)
        backend = "tensorflow"
    if backend:
        os.environ["KERAS_BACKEND"] = backend
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        _import_backend_quietly()


def _import_backend_quietly():
    """Imports Keras with file descriptor 2 silenced.

    TensorFlow's C++ runtime logs start-up lines (oneDNN, CUDA probing) to
    stderr before any Python setting applies; `--debug` keeps them.
    """
    if "keras" in sys.modules:
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras

        if keras.config.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # probes CUDA now, quietly
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _echo_json(obj):
    click.echo(json.dumps(obj, indent=2))


# === list ===


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
@click.option("--markdown", is_flag=True, help="Print the model table as Markdown (the README's).")
def list_cmd(as_json, markdown):
    """Models, data sets and bundled recipes."""
    import kgen

    if markdown:
        click.echo(kgen.models_markdown())
        return
    from kgen import config as config_lib
    from kgen.saved import list_pretrained

    info = {
        "models": kgen.list_models(),
        "datasets": kgen.list_datasets(),
        "recipes": config_lib.list_recipes(),
        "pretrained": list_pretrained(),
    }
    if as_json:
        _echo_json(info)
        return
    click.echo("Models:")
    for m in info["models"]:
        cond = "conditional" if m["conditional"] else "-"
        click.echo(f"  {m['name']:<16} {m['family']:<15} {cond:<12} {','.join(m['backends']):<24} {m['summary']}")
    click.echo("\nData sets:")
    for name, desc in info["datasets"].items():
        click.echo(f"  {name:<16} {desc}")
    click.echo("\nRecipes (configs/):")
    for r in info["recipes"]:
        click.echo(f"  {r}")
    click.echo("\nPretrained (saved_models/):")
    for p in info["pretrained"]:
        click.echo(f"  {p['model']:<16} {p['file']}")


# === train ===


@main.command()
@click.option("--model", default=None, help="Model name (default: vae, or the config's).")
@click.option("--dataset", default=None, help="Data set name, .npz file or PNG folder (default: digits).")
@click.option("--config", "config_file", default=None, help="TOML recipe: a path or a bundled name like vae/digits.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. train.epochs=5.")
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--run-dir", default=None, help="Run folder (default: runs/<model>-<data>-<time>).")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--distribute", type=click.Choice(["off", "data_parallel"]), default=None,
              help="Train data-parallel on several devices (jax: also several hosts; tensorflow: one host).")
@click.option("--devices", type=int, default=None,
              help="--distribute: devices per process (default: every local GPU, else every CPU device).")
def train(model, dataset, config_file, overrides, epochs, batch_size, seed, run_dir, resume, quiet, distribute,
          devices):
    """Train a model; writes a run folder with checkpoints, metrics and sample grids."""
    from kgen import config as config_lib
    from kgen.training.trainer import resume_request
    from kgen.training.trainer import train as run_training

    sets = list(overrides)
    if batch_size is not None:
        sets.append(f"train.batch_size={batch_size}")
    if seed is not None:
        sets.append(f"train.seed={seed}")
    if distribute is not None:
        sets.append(f'train.distribute="{distribute}"')
    if devices is not None:
        sets.append(f"train.devices={devices}")
    if resume:  # values given again must match the run's; the trainer names any that differ
        if not run_dir:
            raise click.UsageError("--resume needs --run-dir: the folder of the run to continue.")
        config = resume_request(run_dir, _config_path(config_file), model=model, dataset=dataset, overrides=sets)
    else:
        config = config_lib.resolve(_config_path(config_file), model=model, dataset=dataset, overrides=sets)
    _, run_dir, last = run_training(config, run_dir=run_dir, resume=resume, epochs=epochs,
                                    verbose=0 if quiet else 1, log=click.echo)
    click.echo(f"run folder: {run_dir}  (checkpoint {run_dir / 'last.keras'}, samples in {run_dir / 'samples'})")


def _config_path(config_file):
    if not config_file:
        return None
    path = pathlib.Path(config_file)
    if path.suffix == ".toml" or path.exists():
        return path
    from kgen import config as config_lib

    bundled = config_lib.configs_root().joinpath(f"{config_file}.toml")
    if bundled.is_file():
        return pathlib.Path(str(bundled))
    from kgen.errors import ConfigError, did_you_mean

    raise ConfigError(f'no config file or bundled recipe "{config_file}".'
                      f"{did_you_mean(config_file, config_lib.list_recipes())} See `kgen list`.")


# === sample ===


@main.command()
@click.option("--checkpoint", default=None, help="A .keras checkpoint (or a run folder).")
@click.option("--model", default=None, help="Use the pretrained checkpoint shipped for this model.")
@click.option("-n", "num", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--label", type=int, default=None, help="Class label (conditional models).")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--out", default="samples.png", show_default=True,
              help="FILE.png (grid), FILE.npz (arrays), or FILE.txt (sequence models: one decoded sequence a line).")
@click.option("--interpolate", "steps", type=int, default=None, metavar="STEPS",
              help="GANs and latent models: latent walks, rows of STEPS images between two prior draws.")
@click.option("--from-data", is_flag=True,
              help="--interpolate: walk between the codes of two test examples (latent models) instead.")
@click.option("--code", type=int, default=None, metavar="I",
              help="InfoGAN: categories in rows, continuous code I swept from -1 to 1 in columns.")
@click.option("--traverse", "traverse_steps", type=int, default=None, metavar="STEPS",
              help="Latent models: one latent dimension a row (the most active), swept over STEPS values.")
@click.option("--top-k", type=int, default=8, show_default=True, help="--traverse: rows (latent dimensions).")
@click.option("--span", type=float, default=3.0, show_default=True,
              help="--traverse: sweep from -SPAN to SPAN prior standard deviations.")
@click.option("--burn-in", type=int, default=None, metavar="B",
              help="Markov-chain samplers (RBM): Gibbs steps before a state is taken (default: the model's).")
@click.option("--chains", type=int, default=None, metavar="C",
              help="Markov-chain samplers: a chain-progress grid, C chains in rows, n // C states in columns.")
@click.option("--steps", "every", type=int, default=None, metavar="S",
              help="--chains: Gibbs steps between the states taken along a chain (default 1).")
@click.option("--edit", is_flag=True,
              help="latent_constraints: edit N test examples toward --label K (rows: source | edit).")
def sample(checkpoint, model, num, seed, label, temperature, out, steps, from_data, code, traverse_steps, top_k,
           span, burn_in, chains, every, edit):
    """Draw samples from a checkpoint or a shipped pretrained model."""
    from kgen.sampling import sample_to_file

    if bool(checkpoint) == bool(model):
        raise click.UsageError("pass exactly one of --checkpoint PATH or --model NAME.")
    if num <= 0:
        raise click.UsageError("-n must be positive.")
    path = sample_to_file(checkpoint=checkpoint, model=model, n=num, seed=seed, label=label,
                          temperature=temperature, out=out, interpolate=steps, code=code,
                          traverse=traverse_steps, top_k=top_k, span=span, from_data=from_data,
                          chains=chains, burn_in=burn_in, every=every, edit=edit)
    what = (f"edits toward label {label}" if edit else "a traversal grid" if traverse_steps is not None
            else "latent walks" if steps
            else "a code grid" if code is not None else f"{chains} chains' progress" if chains
            else f"{num} samples")
    click.echo(f"wrote {what} to {path}")


# === evaluate ===


@main.command()
@click.option("--checkpoint", required=True, help="A .keras checkpoint (or a run folder).")
@click.option("--dataset", default=None, help="Data set (default: the one the model was trained on).")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True)
@click.option("--iw-samples", type=int, default=None, help="k of the importance-weighted bound (latent models).")
@click.option("--max-examples", type=int, default=0, help="Score N examples of the split, a fixed random choice (0: all).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a data/evaluate key.")
@click.option("--sample-metrics/--no-sample-metrics", default=None,
              help="FID/KID of samples vs the split (default: only for models without a likelihood).")
@click.option("--num-samples", type=int, default=None, help="Samples for FID/KID (default: the split's size).")
@click.option("--ais", is_flag=True,
              help="VAEs: add the AIS estimate of log p(x) (Wu et al. 2017; GANs: see --ais-sigma); energy models: AIS "
                   "beside an exact log Z.")
@click.option("--ais-chains", type=int, default=None,
              help="AIS chains (energy models' log Z: default the model's; VAEs: 16 per example).")
@click.option("--ais-betas", type=int, default=None,
              help="AIS intermediate distributions (energy models: default the model's, 14,500 as in Salakhutdinov "
                   "& Murray 2008; VAEs: 1000, sigmoidal).")
@click.option("--ais-sigma", type=float, default=None,
              help="GANs (gan, dcgan, cgan, wgan_gp): AIS estimate of log p(x) under Gaussian observation noise of "
                   "this standard deviation on [0, 1] pixels (Wu et al. 2017); pick it on --split valid.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
def evaluate(checkpoint, dataset, split, iw_samples, max_examples, overrides, sample_metrics, num_samples, ais,
             ais_chains, ais_betas, ais_sigma, as_json):
    """Score a checkpoint: NLL (exact or bound) in nats and bits/dim; FID/KID for GANs."""
    from kgen.evaluation import evaluate_checkpoint, probe_lines, sample_metrics_lines

    result = evaluate_checkpoint(checkpoint, dataset=dataset, split=split, iw_samples=iw_samples,
                                 max_examples=max_examples, overrides=overrides, progress=not as_json,
                                 sample_metrics_flag=sample_metrics, num_samples=num_samples,
                                 ais_chains=ais_chains, ais_betas=ais_betas, ais=ais, ais_sigma=ais_sigma)
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['model']} on {result['dataset']} ({result['split']}, {result['examples']} examples)")
    for line in sample_metrics_lines(result) + probe_lines(result):
        click.echo(line)
    if "reconstruction_nll" in result:  # an autoencoder's (no likelihood of its own)
        corrupted = result.get("reconstruction_nll_corrupted")
        click.echo(f"  reconstruction NLL: {result['reconstruction_nll']:.3f} nats"
                   + (f" (from corrupted inputs: {corrupted:.3f})" if corrupted is not None else ""))
    if "nll" not in result:
        return
    kind = {"exact": "exact", "ais": "AIS estimate"}.get(result["nll_kind"], "upper bound")
    click.echo(f"  NLL ({kind}): {result['nll']['nats']:.3f} nats  {result['nll']['bits_per_dim']:.4f} bits/dim")
    if "log_z" in result:  # an energy model's partition function (AIS: its spread over chains)
        spread = f" +/- {result['log_z_stderr']:.3f}" if result.get("log_z_stderr") is not None else ""
        how = (f" (AIS: {result['ais_chains']} chains, {result['ais_betas']} betas)"
               if result.get("log_z_method") == "ais" else " (exact)")
        click.echo(f"  log Z: {result['log_z']:.3f}{spread}{how}")
        if "ais_log_z" in result:  # the AIS estimate beside an exact log Z
            click.echo(f"  log Z (AIS: {result['ais_chains']} chains, {result['ais_betas']} betas): "
                       f"{result['ais_log_z']:.3f} +/- {result['ais_log_z_stderr']:.3f}")
    if "nll_per_token" in result:  # sequence models
        click.echo(f"  NLL per token: {result['nll_per_token']:.4f} nats")
    if "nll_oracle" in result:
        click.echo(f"  NLL_oracle of {result['nll_oracle_samples']} samples: {result['nll_oracle']:.4f} nats per token "
                   f"(oracle: {result['oracle']})")
    if "elbo" in result:
        click.echo(f"  ELBO: {result['elbo']['nats']:.3f} nats (recon {result['recon']:.3f}, KL {result['kl']:.3f})")
    if "iw_bound" in result:
        click.echo(f"  IW bound (k={result['iw_bound']['k']}): {result['iw_bound']['nats']:.3f} nats "
                   f"{result['iw_bound']['bits_per_dim']:.4f} bits/dim")
    if "ais" in result:
        a = result["ais"]
        click.echo(f"  AIS log p(x) ({a['chains']} chains, {a['betas']} betas, HMC accept {a['accept_rate']:.2f}): "
                   f"{a['nats']:.3f} nats +/- {a['nats_stderr']:.3f} over examples, "
                   f"+/- {a['chain_stderr']:.3f} over chains (mean per example)")
        if "observation_std" in a:
            click.echo(f"  (a log density of [0, 1] images under Gaussian observation noise sigma = "
                       f"{a['observation_std']:g}: compare GANs at one sigma, not with discrete NLLs)")


# === export ===


@main.command()
@click.option("--checkpoint", required=True, help="A .keras checkpoint (or a run folder).")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True)
@click.option("--out", required=True, help="Output folder (saved_model, onnx) or .tflite file (litert).")
@click.option("--overwrite", is_flag=True, help="Replace a previous export in a non-empty --out folder, whole.")
def export(checkpoint, fmt, out, overwrite):
    """Export serving endpoints (SavedModel, LiteRT, ONNX) from a checkpoint.

    The export is written beside --out and renamed into place when complete:
    a failed export leaves nothing half-written. A non-empty --out folder is
    refused unless --overwrite; a run folder always is.
    """
    import kgen
    from kgen.export import export as run_export
    from kgen.export.outputs import check_folder_target

    if fmt != "litert":  # before the checkpoint loads
        check_folder_target(out, overwrite, what=f"{fmt} export")
    model = kgen.load_model(checkpoint, compile=False)
    written = run_export(model, fmt, out, overwrite=overwrite)
    click.echo(f"exported {', '.join(written['endpoints'])} to {written['path']}")


if __name__ == "__main__":
    sys.exit(main())
