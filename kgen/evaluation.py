"""Evaluation of a checkpoint on a data split (what `kgen evaluate` runs).

Likelihood models get their NLL (exact or a bound, `kgen.metrics.evaluate`).
Models without a likelihood (GANs) get sample-quality metrics instead, and
likelihood models get them too with `sample_metrics=True`
(`kgen evaluate --sample-metrics`), so that a VAE's samples and a GAN's are
scored the same way:

- `fid` and `kid` (mean, std): generated samples against the split, with a
  feature network (`kgen.metrics.features`: a small classifier trained on the
  data set, a *domain* metric, not comparable with Inception FIDs; for 2-D
  point data the points themselves);
- `fid_floor` and `kid_floor`: the same metrics between held-out real data
  (a seeded random subset of the train split, or of the valid split when the
  train split is scored, as many images as there are samples) and the
  split: what a model that samples the data distribution would score at
  this sample size. Read `fid` against it. It is a reference,
  not a bound: FID is biased upwards by an amount that grows with the
  features' spread and shrinks with the sample size, so on small splits a
  model with less diverse samples, or a lucky draw, can land below it;
- `inception`: the standard Inception-v3 FID when `KGEN_INCEPTION_WEIGHTS`
  names local weights, else the reason it was skipped;
- `label_accuracy` (conditional models): how often the feature classifier
  recognises the label a sample was generated for.

A model with an encoder (`latent_codes`: VAEs, autoencoders) gets `linear_probe`:
the test accuracy of a logistic-regression probe fitted on its codes of labelled
training data, beside the same probe on raw pixels (`linear_probe` below).

A model with an `evaluate_extra(prepared, batch_size)` method adds its own
metrics (a dict) to the result; when such a model cannot be scored from
samples (pix2pix needs source images; no feature classifier for the data
set) and sample metrics were not asked for, `sample_metrics_skipped` says why.
"""

import dataclasses

import keras
import numpy as np

from kgen import checkpoint as ckpt
from kgen import config as config_lib
from kgen.data.pipeline import Pipeline
from kgen.errors import TrainingDiverged, UsageError
from kgen.metrics import evaluate
from kgen.metrics import fid as fid_lib


def has_likelihood(model):
    """True when the model scores data (`log_prob` or a latent model's `score`)."""
    return model.has_likelihood


def to_unit(x, data_config):
    """Model-space arrays back to the data's [0, 1] images (undoes logit and scale; clips).

    Points (2-D arrays) only have the scale undone.
    """
    x = np.asarray(x, "float64")
    if data_config.get("scale", "unit") == "symmetric":
        x = (x + 1.0) / 2.0
    alpha = data_config.get("logit_alpha", 0.0)
    if alpha > 0:
        x = (1.0 / (1.0 + np.exp(-x)) - alpha) / (1.0 - 2.0 * alpha)
    if x.ndim == 4:
        x = np.clip(x, 0.0, 1.0)
    return x.astype("float32")


def _matching_labels(y, n, seed):
    """`n` labels with the split's label distribution (a permutation when n == len(y))."""
    rng = np.random.default_rng([seed, 7])
    return rng.choice(np.asarray(y, "int32"), size=n, replace=n > len(y)).astype("int32")


def feature_network(data, path=""):
    """`(features_fn, info)` for a `Dataset`: its classifier's `features` layer, or identity for points."""
    if data.kind == "points":
        return (lambda x: np.asarray(x, "float64").reshape(len(x), -1)), {
            "network": "identity", "dim": int(data.num_dims),
            "note": "2-D points: FID/KID on the coordinates themselves",
        }
    from kgen.metrics.features import FeatureExtractor

    dataset = data.name
    extractor = FeatureExtractor(dataset, path or None)
    info = {"network": extractor.path.name, "dim": extractor.dim,
            "note": "domain metric: penultimate layer of kgen's classifier for this data set, "
                    "not comparable with Inception FID"}
    card = extractor.path.with_suffix(".toml")
    if card.is_file():
        import tomllib

        card = tomllib.loads(card.read_text())
        info["classifier_test_accuracy"] = card.get("test_accuracy")
        if card.get("reference_split"):
            # The classifier was fitted on images of the scored data set's other split(s):
            # FID/KID then use this split, which it never saw, as the real data.
            info["reference_split"] = str(card["reference_split"])
    return extractor, info


def sample_quality(samples, reference, held_out, features, kid_subsets=100, kid_subset_size=1000, seed=0):
    """FID/KID of `samples` against `reference`, beside the floor of `held_out` real data.

    All three are arrays in data space ([0, 1] images or points); `features`
    maps such an array to `(N, D)` features.

    KID subsets hold at most half of the smaller set, so that its std over
    subsets says something even for small splits (a subset of a whole set
    would repeat it exactly; the estimate is unbiased at any subset size).
    """
    f_ref, f_gen, f_held = features(reference), features(samples), features(held_out)
    size = min(int(kid_subset_size), max(2, min(len(f_ref), len(f_gen), len(f_held)) // 2))

    def kid(a):
        mean, std = fid_lib.kid(a, f_ref, num_subsets=kid_subsets, subset_size=size, seed=seed)
        return {"mean": mean, "std": std, "subset_size": size, "subsets": int(kid_subsets)}

    return {
        "fid": fid_lib.fid(f_gen, f_ref),
        "kid": kid(f_gen),
        "fid_floor": fid_lib.fid(f_held, f_ref),
        "kid_floor": kid(f_held),
    }


def _inception(samples, reference, held_out):
    from kgen.metrics import inception

    path, reason = inception.inception_status()
    if path is None:
        return {"skipped": reason}
    if samples.ndim != 4:
        return {"skipped": "skipped: Inception FID is for images, not points"}
    net = inception.InceptionFeatures(path)
    f_ref = net(reference)
    return {"fid": fid_lib.fid(net(samples), f_ref), "fid_floor": fid_lib.fid(net(held_out), f_ref),
            "weights": str(path)}


def sample_metrics(model, pipeline, data, eval_config, num_samples=None, seed=0):
    """Sample-quality metrics of `model` against the `Dataset` split `data` (see the module docstring).

    When the feature classifier's card names a `reference_split` (binarized MNIST's classifier
    is fitted on half of its test split), that split replaces `data` as the real data.
    """
    features, info = feature_network(data, eval_config.get("feature_classifier", ""))
    scored_split = data.split
    if info.get("reference_split") and info["reference_split"] != data.split:
        data = Pipeline(dict(pipeline.config, max_examples=0)).load(info["reference_split"])
    n_ref = len(data)
    n = int(num_samples or eval_config.get("num_samples", 0) or n_ref)
    if n < 2:
        raise UsageError(f"FID/KID need at least 2 samples, got evaluate.num_samples = {n}.")
    # The floor's real data: the train split in full (data.max_examples limits training only),
    # or the valid split when the train split is the one scored.
    floor_split = "valid" if data.split == "train" else "train"
    train = Pipeline(dict(pipeline.config, max_examples=0)).load(floor_split)
    if train.shape != data.shape:
        raise UsageError(f"the {floor_split} split's examples have shape {train.shape}, "
                         f"the scored split {data.shape}.")
    pick = np.sort(np.random.default_rng([seed, 11]).choice(len(train), min(n, len(train)), replace=False))
    held_out = dataclasses.replace(train, x=train.x[pick], y=None if train.y is None else train.y[pick])
    cfg = pipeline.config
    reference = to_unit(pipeline.prepare(data, seed=seed).x, cfg)
    held = to_unit(pipeline.prepare(held_out, seed=seed).x, cfg)
    labels = _matching_labels(data.y, n, seed) if model.conditional else None
    samples = to_unit(model.sample(n, seed=seed, labels=labels, batch_size=eval_config["batch_size"]), cfg)
    if not np.all(np.isfinite(samples)):
        raise TrainingDiverged(f"{type(model).__name__} generated NaN or Inf samples; the checkpoint has diverged.")
    result = sample_quality(samples, reference, held, features,
                            kid_subsets=eval_config.get("kid_subsets", 100),
                            kid_subset_size=eval_config.get("kid_subset_size", 1000), seed=seed)
    result["num_samples"] = n
    result["floor_examples"] = int(len(held))
    result["floor_split"] = floor_split
    result["reference_split"] = data.split
    if data.split != scored_split:
        result["reference_note"] = (f"the feature classifier was fitted on {data.name}'s {scored_split} split, "
                                    f"so the real data is its {data.split} split")
    result["features"] = info
    if labels is not None and hasattr(features, "predict_labels"):
        result["label_accuracy"] = float(np.mean(features.predict_labels(samples) == labels))
    result["inception"] = _inception(samples, reference, held)
    return result


PROBE_FIT_EXAMPLES = 10000  # at most this many labelled examples fit the probe (a seeded subset)


def linear_probe(model, pipeline, data, prepared, batch_size=256, seed=0):
    """A logistic-regression probe on the model's codes (`latent_codes`) and, the baseline, on pixels.

    The probe is fitted on the labelled train split (at most `PROBE_FIT_EXAMPLES`, a seeded
    subset) and scored on `data`, the split being evaluated. When the train split has no
    labels (binarized MNIST: only its test split has them) or is the split scored, it is
    fitted on a random half (seeded) of the scored split and scored on the other half;
    `fit_on` says which. Returns `{"accuracy", "pixel_accuracy", "chance", "fit_on", "fit_examples",
    "test_examples", "code_size"}`, or `{"skipped": reason}` (no labels; a conditional model,
    whose codes are computed given the label).
    """
    from kgen.metrics.linear_probe import probe_accuracy

    if model.conditional:
        return {"skipped": "a conditional model encodes x given its label: a probe of its codes would read "
                           "the label it was given"}
    if data.y is None:
        return {"skipped": data.missing_labels("a linear probe")}
    train = None
    if data.split != "train":
        train = Pipeline(dict(pipeline.config, max_examples=0)).load("train")
        if train.y is None:
            train = None
    if train is not None:
        if len(train) > PROBE_FIT_EXAMPLES:
            pick = np.sort(np.random.default_rng([seed, 13]).choice(len(train), PROBE_FIT_EXAMPLES, replace=False))
            train = dataclasses.replace(train, x=train.x[pick], y=train.y[pick])
        fit = pipeline.prepare(train, seed=seed)
        fit_x, fit_y, test_x, test_y = fit.x, train.y, prepared.x, data.y
        fit_on = "train split"
    else:
        if len(data) < 4:
            return {"skipped": f"{len(data)} labelled examples are too few to fit and score a probe"}
        # Two random halves (seeded): splits can be sorted by label (binarized MNIST's test split is).
        order = np.random.default_rng([seed, 17]).permutation(len(data))
        fit, test = np.sort(order[: len(data) // 2]), np.sort(order[len(data) // 2 :])
        fit_x, fit_y, test_x, test_y = prepared.x[fit], data.y[fit], prepared.x[test], data.y[test]
        fit_on = (f"a random half of the {data.split} split (scored on the other half"
                  + ("; the train split has no labels)" if data.split != "train" else ")"))
    num_classes = int(data.num_classes or max(np.max(fit_y), np.max(test_y)) + 1)
    codes_fit = model.latent_codes(fit_x, batch_size=batch_size)
    codes_test = model.latent_codes(test_x, batch_size=batch_size)
    return {
        "accuracy": probe_accuracy(codes_fit, fit_y, codes_test, test_y, num_classes),
        "pixel_accuracy": probe_accuracy(fit_x, fit_y, test_x, test_y, num_classes),
        "chance": 1.0 / num_classes,
        "fit_on": fit_on,
        "fit_examples": int(len(fit_y)),
        "test_examples": int(len(test_y)),
        "code_size": int(np.prod(codes_fit.shape[1:])),
    }


def probe_lines(result):
    """Human-readable lines for the linear probe in an `evaluate_checkpoint` result (none if absent)."""
    probe = result.get("linear_probe")
    if not probe:
        return []
    if "skipped" in probe:
        return [f"  linear probe skipped: {probe['skipped']}"]
    return [f"  linear probe (logistic regression, test accuracy): codes {probe['accuracy']:.4f} "
            f"({probe['code_size']} features), pixels {probe['pixel_accuracy']:.4f}, chance {probe['chance']:.3f}; "
            f"fitted on {probe['fit_examples']} examples of the {probe['fit_on']}"]


def check_recorded_data(name, checkpoint, instead):
    """Raises `UsageError` unless `name`, a data set a checkpoint records, is a built-in data set.

    A checkpoint's stored state is data, not an instruction: a path in it
    (a `.npz`, a PNG folder, "/") is read only when the user names it again,
    so a file from elsewhere cannot make kgen read what it points at.
    `instead` says what the user can do (e.g. "pass --dataset PATH").
    """
    from kgen.data import DATASETS

    if str(name) in DATASETS:
        return
    shown = str(name) if len(str(name)) <= 120 else str(name)[:117] + "..."
    raise UsageError(f"{checkpoint} records the data set {shown!r}, which is not a built-in data set; kgen reads "
                     f"a file or folder only when you name it: {instead}.")


def _sets_data_key(overrides, key):
    """True when one of the `--set` items sets data.<key>."""
    for item in overrides:
        keys, _ = config_lib.parse_set(item) if isinstance(item, str) else item
        if list(keys) == ["data", key]:
            return True
    return False


def _names_data(overrides):
    """True when one of the `--set` items sets data.name."""
    for item in overrides:
        keys, _ = config_lib.parse_set(item) if isinstance(item, str) else item
        if list(keys) == ["data", "name"]:
            return True
    return False


def evaluate_checkpoint(path, dataset=None, split="test", iw_samples=None, max_examples=0,
                        overrides=(), progress=True, sample_metrics_flag=None, num_samples=None,
                        ais_chains=None, ais_betas=None, ais=False, ais_sigma=None, per_example=False):
    """Scores a checkpoint with the preprocessing it was trained with.

    Args:
        sample_metrics_flag: compute FID/KID from samples; None means only for
            models without a likelihood (GANs).
        num_samples: samples for FID/KID (default `evaluate.num_samples`, 0:
            the size of the split).
        ais_chains, ais_betas: the AIS run behind an estimated log Z (energy
            models: `configure_ais`); default the model's. For a model with
            `latent_log_joint` (the VAEs) they, or `ais=True`, add the AIS
            estimate of log p(x) of Wu et al. 2017 (`kgen.metrics.ais`;
            defaults 16 chains, 1000 betas).
        ais_sigma: a GAN's Gaussian observation noise (pixel values in
            [0, 1]) for that AIS estimate (`GaussianObservation`); implies `ais`.
        per_example: add the per-example bounds (`kgen.metrics.evaluate`), for
            paired comparisons of checkpoints on the same examples.

    Returns the dict of `kgen.metrics.evaluate` (likelihood models) and/or
    the sample metrics (`fid`, `kid`, `fid_floor`, `kid_floor`, ...), plus
    `model`, `dataset`, `split`, `examples` and `checkpoint`.

    The data set the checkpoint records is read only when it is a built-in
    one; a path recorded there must be passed again as `dataset`
    (`check_recorded_data`).

    Raises:
        UsageError: a negative `max_examples` or `iw_samples`, or a recorded
            data set that is a path the caller did not name.
    """
    if isinstance(max_examples, bool) or not isinstance(max_examples, (int, np.integer)) or max_examples < 0:
        raise UsageError(f"--max-examples must be 0 (every example) or a positive count, got {max_examples}.")
    if iw_samples is not None and (isinstance(iw_samples, bool) or not isinstance(iw_samples, (int, np.integer))
                                   or iw_samples < 0):
        raise UsageError(f"--iw-samples must be 0 (no importance-weighted bound) or a positive k, got {iw_samples}; "
                         "k = 5000 is the usual choice.")
    model = ckpt.load_model(path, compile=False)
    decoder_ais = None
    if ais_sigma is not None:
        if not hasattr(model, "observation_std"):
            raise UsageError(f"--ais-sigma sets the Gaussian observation noise of a GAN's generator (gan, dcgan, "
                             f"cgan, wgan_gp); {model.registered_name} has none to set: drop it.")
        if isinstance(ais_sigma, bool) or not isinstance(ais_sigma, (int, float)) or not 0 < ais_sigma < 10:
            raise UsageError(f"--ais-sigma must be a standard deviation in (0, 10) pixel units ([0, 1] images), "
                             f"got {ais_sigma}; Wu et al. (2017) pick it on the valid split (about 0.01-0.1).")
        model.observation_std = float(ais_sigma)
        ais = True
    if ais or ais_chains is not None or ais_betas is not None:
        if getattr(model, "observation_std", 0.0) is None:
            raise UsageError(f"{model.registered_name} has no likelihood: AIS needs a Gaussian observation model "
                             "p(x|z) = N(G(z), sigma^2 I); pass --ais-sigma S (pixel values in [0, 1]; Wu et al. "
                             "2017 pick sigma on the valid split: score `--split valid` at a few values).")
        if model.supports("latent_log_joint"):
            decoder_ais = {"chains": 16 if ais_chains is None else ais_chains,
                           "betas": 1000 if ais_betas is None else ais_betas}
        elif model.supports("configure_ais"):
            model.configure_ais(chains=ais_chains, betas=ais_betas)
        else:
            raise UsageError(f"{model.registered_name} estimates nothing by AIS (energy models' log Z, the VAEs' "
                             "log p(x)): drop --ais/--ais-chains/--ais-betas.")
    config = ckpt.read_state(path).get("config")
    if config is None:  # a plain .keras file: the model's default recipe
        config = config_lib.resolve(model=model.registered_name, dataset=dataset)
    elif not (dataset or _names_data(overrides)):
        check_recorded_data(config.get("data", {}).get("name"), path,
                            "pass --dataset with that path (or a built-in name) to score it")
    if config is not None:  # sequence data: a file a checkpoint records (text, an oracle) is read only when named
        for key in ("path", "oracle"):
            value = str(config.get("data", {}).get(key) or "")
            if value and not value.startswith("random") and not _sets_data_key(overrides, key):
                raise UsageError(f"{path} records data.{key} = {value[:120]!r}; kgen reads a file only when you "
                                 f"name it: pass --set data.{key}=PATH again to score it.")
    sets = list(overrides)
    if dataset:
        sets.insert(0, (["data", "name"], dataset))
    config = config_lib.apply_overrides(config, sets)
    pipeline = Pipeline(config["data"])
    data = pipeline.load(split)
    if max_examples:  # a fixed random choice: a split stored sorted by class stays representative
        data = data.subset(max_examples, seed=0)
    model.check_data(data)
    prepared = pipeline.prepare(data, seed=0)
    eval_config = config["evaluate"]
    likelihood = has_likelihood(model) or decoder_ais is not None
    explicit = sample_metrics_flag is not None
    if not explicit:
        sample_metrics_flag = not has_likelihood(model)
    result = {"examples": int(len(data))}
    if likelihood:
        k = eval_config["iw_samples"] if iw_samples is None else iw_samples
        if model.log_prob_kind != "elbo":
            k = 0
        bar = keras.utils.Progbar(len(data), unit_name="example") if progress and k else None
        if decoder_ais is not None and progress:
            decoder_ais["progress"] = keras.utils.Progbar(len(data), unit_name="example (AIS)").update
        result = evaluate(
            model, prepared,
            iw_samples=k,
            batch_size=eval_config["batch_size"],
            seed=0,
            continuous=pipeline.continuous,
            progress=bar.update if bar else None,
            ais=decoder_ais,
            per_example=per_example,
        )
    else:
        result["nll_kind"] = "none"
    if sample_metrics_flag:
        try:
            result.update(sample_metrics(model, pipeline, data, eval_config, num_samples=num_samples))
        except UsageError as e:
            # A model that reports its own metrics (pix2pix: no unconditional samples; a data set
            # with no feature classifier) still gets them, with the reason FID/KID are missing.
            if explicit or not model.supports("evaluate_extra"):
                raise
            result["sample_metrics_skipped"] = str(e)
    if model.supports("evaluate_extra"):
        result.update(model.evaluate_extra(prepared, eval_config["batch_size"]))
    if model.supports("latent_codes"):  # a model with an encoder: how linearly its codes give the labels
        result["linear_probe"] = linear_probe(model, pipeline, data, prepared, eval_config["batch_size"])
    if "ais" in result and getattr(model, "observation_std", None) is not None:
        result["ais"]["observation_std"] = model.observation_std  # a log density of [0, 1] images, not a discrete NLL
    result.update({"model": model.registered_name, "dataset": data.name, "split": split, "checkpoint": str(path)})
    return result


def sample_metrics_lines(result):
    """Human-readable lines for the sample metrics in an `evaluate_checkpoint` result (none if absent)."""
    if "sample_metrics_skipped" in result:
        return [f"  FID/KID skipped: {result['sample_metrics_skipped']}"]
    if "fid" not in result:
        return []
    kid, floor = result["kid"], result["kid_floor"]
    lines = [
        f"  samples: {result['num_samples']}, features: {result['features']['network']} "
        f"({result['features']['note']})",
        f"  FID: {result['fid']:.4g}   (real-data floor: {result['fid_floor']:.4g}, "
        f"{result['floor_examples']} held-out {result.get('floor_split', 'train')} examples)",
        f"  KID: {kid['mean']:.4g} +/- {kid['std']:.2g}   (floor: {floor['mean']:.4g} +/- {floor['std']:.2g})",
    ]
    if "reference_note" in result:
        lines.append(f"  real data: {result['reference_note']}")
    if "label_accuracy" in result:
        lines.append(f"  label accuracy of conditional samples: {result['label_accuracy']:.3f}")
    inception = result.get("inception", {})
    if "fid" in inception:
        lines.append(f"  Inception FID: {inception['fid']:.4g}   (floor: {inception['fid_floor']:.4g})")
    elif "skipped" in inception:
        lines.append(f"  Inception FID {inception['skipped']}")
    return lines
