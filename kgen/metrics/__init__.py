"""Likelihood metrics: NLL in nats per example and bits per dimension.

`evaluate` scores a model on a data split. Exact models report `nll`;
latent-variable models report the negative ELBO and the negative
importance-weighted bound (both upper bounds on the NLL: smaller is better),
and say so in `nll_kind`.

Sample quality (models without a likelihood, and any model on request):
`kgen.metrics.fid` (FID, KID), `kgen.metrics.features` (the per-data-set
feature classifiers kgen ships) and `kgen.metrics.inception` (the standard
Inception-v3 FID from local weights); `kgen.evaluation` puts them together.
"""

import math

import numpy as np

from kgen.data import preprocess


def summarize(per_example, num_dims, logdet=None, num_levels=None, continuous=False):
    """Mean NLL (nats) and bits/dim from per-example log-likelihoods.

    For continuous models on dequantized data, converts the density on the
    transformed data to the discrete NLL (subtracting the transform's log-det
    and adding D log L), as the RealNVP and Glow papers report.
    """
    nll = _per_example_nats(per_example, logdet, num_dims, num_levels, continuous)
    mean = float(nll.mean())
    stderr = float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else 0.0
    return {"nats": mean, "nats_stderr": stderr, "bits_per_dim": float(mean / (num_dims * math.log(2.0)))}


def _per_example_nats(log_prob, logdet, num_dims, num_levels, continuous):
    """Per-example NLL in nats of the data (the discrete NLL for continuous models, see `summarize`)."""
    nll = -np.asarray(log_prob, "float64")
    if continuous:
        nll = preprocess.discrete_nll(nll, num_dims, num_levels, 0.0 if logdet is None else logdet)
    return nll


def evaluate(model, prepared, iw_samples=0, batch_size=256, seed=0, continuous=False, progress=None, ais=None,
             per_example=False):
    """Scores `model` on prepared data (see `kgen.data.pipeline`).

    `per_example`: also return the latent models' per-example bounds on log p(x) (nats, in the
    data's units as the summaries are) as `per_example` = {"elbo": array, "iw_bound": array}, for a
    paired comparison of two models on the same examples.

    `ais`: a dict of `kgen.metrics.ais.decoder_ais` arguments (`chains`, `betas`, ...) to add
    the AIS estimate of log p(x) (`ais`) for a model with `latent_log_joint`.

    Returns:
        A dict: `examples`, `nll_kind` ("exact" or "bound"), `nll` and
        `bits_per_dim`, and for latent models `elbo`, `recon`, `kl`,
        `iw_bound` and `iw_samples`, each in nats per example; with `ais`, `ais`
        (the AIS estimate: nats, its standard error over examples, the mean
        per-example spread over chains, chains, betas, leapfrog, accept_rate).
        `nll` is the tightest of the bounds and estimates.
    """
    num_dims = model.num_dims
    num_levels = prepared.source.num_levels
    labels = prepared.y if model.conditional else None
    result = {"examples": int(len(prepared.x))}
    if model.supports("score"):
        terms = model.score(prepared.x, labels, batch_size=batch_size, seed=seed,
                            iw_samples=iw_samples, progress=progress)
        result["nll_kind"] = "bound"
        elbo = summarize(terms["elbo"], num_dims, prepared.logdet, num_levels, continuous)
        result["elbo"] = {"nats": -elbo["nats"], "bits_per_dim": elbo["bits_per_dim"], "nats_stderr": elbo["nats_stderr"]}
        result["recon"] = float(np.mean(terms["recon"]))
        result["kl"] = float(np.mean(terms["kl"]))
        best = elbo
        if per_example:
            result["per_example"] = {"elbo": -_per_example_nats(terms["elbo"], prepared.logdet, num_dims, num_levels,
                                                                continuous)}
        if "iw_bound" in terms:
            if per_example:
                result["per_example"]["iw_bound"] = -_per_example_nats(terms["iw_bound"], prepared.logdet, num_dims,
                                                                       num_levels, continuous)
            iw = summarize(terms["iw_bound"], num_dims, prepared.logdet, num_levels, continuous)
            result["iw_bound"] = {"nats": -iw["nats"], "bits_per_dim": iw["bits_per_dim"],
                                  "nats_stderr": iw["nats_stderr"], "k": int(iw_samples)}
            best = iw
        if ais is not None:
            est = _decoder_ais(model, prepared, labels, seed, continuous, ais, result)
            if est["nats"] < best["nats"]:
                best = est
        result["nll"] = best
    elif ais is not None and not model.supports("log_prob"):  # a decoder with no bound of its own (AVB)
        result["nll_kind"] = "ais"
        result["nll"] = _decoder_ais(model, prepared, labels, seed, continuous, ais, result)
    else:
        logp = model.log_prob(prepared.x, labels, batch_size=batch_size)
        result["nll_kind"] = model.log_prob_kind
        result["nll"] = summarize(logp, num_dims, prepared.logdet, num_levels, continuous)
    return result


def _decoder_ais(model, prepared, labels, seed, continuous, ais, result):
    """Runs `kgen.metrics.ais.decoder_ais`, puts its report in `result["ais"]`, returns its NLL summary."""
    from kgen.metrics.ais import decoder_ais

    run = decoder_ais(model, prepared.x, labels, seed=seed, **ais)
    est = summarize(run["log_prob"], model.num_dims, prepared.logdet, prepared.source.num_levels, continuous)
    result["ais"] = {"nats": -est["nats"], "bits_per_dim": est["bits_per_dim"], "nats_stderr": est["nats_stderr"],
                     "chain_stderr": float(np.nanmean(run["log_prob_stderr"])),
                     **{k: run[k] for k in ("chains", "betas", "leapfrog", "accept_rate")}}
    return est
