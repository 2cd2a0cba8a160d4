"""Flows on 2-D toy densities: test NLL minus the true entropy (nats).

For data from a density p, a model q's expected test NLL is
H(p) + KL(p || q) >= H(p), so NLL - H(p) measures how far the flow is from
the truth (0 is perfect; the Monte Carlo error of the test set is reported
as a standard error). The true entropies:

- checkerboard: uniform on 8 squares of side 2, H = log 32 = 3.4657 nats;
- 8gaussians: a mixture of 8 isotropic Gaussians (kgen.data.toy2d), H by
  Monte Carlo over 10^6 samples of the exact mixture log-density, computed
  in the same run.

Each flow trains on fresh samples every step (the usual protocol for toy
densities; no overfitting) with Adam and a cosine learning-rate decay, then
is scored on the kgen test split (`--test-size` points). A moment-matched
Gaussian is scored too, as a floor any flow should beat. Targets (issue 4):
spline flow and MAF within 0.05 nats on 8gaussians, 0.10 on checkerboard.

    KERAS_BACKEND=jax python bench/flows_toy2d.py                 # the full run (~15 min, 2 cores)
    KERAS_BACKEND=jax python bench/flows_toy2d.py --steps 300     # a smoke run

Prints a table and writes bench/results/flows_toy2d.json.
"""

import argparse
import json
import math
import os
import pathlib
import platform
import time

import numpy as np

TARGETS = {("8gaussians", "spline_flow"): 0.05, ("8gaussians", "maf"): 0.05,
           ("checkerboard", "spline_flow"): 0.10, ("checkerboard", "maf"): 0.10}

MODELS = {
    "real_nvp": dict(num_couplings=8, hidden_units=(128, 128)),
    "maf": dict(num_layers=10, hidden_units=(256, 256)),
    "spline_flow": dict(num_layers=4, num_bins=16, bound=5.0, hidden_units=(128, 128)),
}


def true_entropy(name, samples=1_000_000, seed=123):
    """(H, standard error) of a toy density in nats."""
    from kgen.data import toy2d

    if name == "checkerboard":
        return math.log(32.0), 0.0
    if name == "8gaussians":
        rng = np.random.default_rng(seed)
        x = toy2d.eight_gaussians(samples, rng).astype("float64")
        centers = toy2d.eight_gaussians_centers()
        var = toy2d.EIGHT_GAUSSIANS_STD**2
        d2 = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
        log_comp = -d2 / (2 * var) - math.log(2 * math.pi * var) - math.log(len(centers))
        m = log_comp.max(1)
        logp = m + np.log(np.exp(log_comp - m[:, None]).sum(1))
        return float(-logp.mean()), float(logp.std(ddof=1) / math.sqrt(samples))
    raise ValueError(f"no true entropy for {name}")


def gaussian_nll(train, test):
    """NLL of a Gaussian with the training data's mean and covariance."""
    mean, cov = train.mean(0), np.cov(train.T)
    diff = test - mean
    inv = np.linalg.inv(cov)
    logdet = np.linalg.slogdet(cov)[1]
    nll = 0.5 * (np.einsum("ni,ij,nj->n", diff, inv, diff) + logdet + 2 * math.log(2 * math.pi))
    return float(nll.mean())


def run_one(dataset, model_name, args):
    import keras

    import kgen
    from kgen.data import toy2d

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng([args.seed, 17])
    train = toy2d.GENERATORS[dataset](args.steps * args.batch_size, rng)
    test = kgen.load_dataset(dataset, split="test", num_examples=args.test_size).x
    flow = kgen.build_model(model_name, input_shape=(2,), **MODELS[model_name])
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, args.steps, alpha=0.01)
    flow.compile(optimizer=keras.optimizers.Adam(schedule))
    start = time.perf_counter()
    hist = flow.fit(train, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=args.verbose)
    seconds = time.perf_counter() - start
    logp = flow.log_prob(test, batch_size=4096).astype("float64")
    return {
        "test_nll": float(-logp.mean()),
        "test_nll_stderr": float(logp.std(ddof=1) / math.sqrt(len(logp))),
        "final_train_loss": float(hist.history["loss"][-1]),
        "train_seconds": round(seconds, 1),
        "ms_per_step": round(1000 * seconds / args.steps, 1),
        "parameters": int(sum(np.prod(v.shape) for v in flow.trainable_variables)),
        "hparams": {k: list(v) if isinstance(v, tuple) else v for k, v in MODELS[model_name].items()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="8gaussians,checkerboard")
    parser.add_argument("--models", default="real_nvp,maf,spline_flow")
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--test-size", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "flows_toy2d.json"))
    args = parser.parse_args()

    import keras

    import kgen
    from kgen.data import toy2d

    results = []
    print(f"{'dataset':<13} {'model':<12} {'test NLL':>9} {'+-':>6} {'entropy':>8} {'gap':>7} "
          f"{'target':>6}  {'ms/step':>7}")
    for dataset in args.datasets.split(","):
        entropy, entropy_se = true_entropy(dataset)
        rng = np.random.default_rng([args.seed, 18])
        test = kgen.load_dataset(dataset, split="test", num_examples=args.test_size).x.astype("float64")
        floor = gaussian_nll(toy2d.GENERATORS[dataset](100_000, rng).astype("float64"), test)
        print(f"{dataset:<13} {'gaussian':<12} {floor:9.4f} {'':>6} {entropy:8.4f} {floor - entropy:7.4f}")
        for model_name in args.models.split(","):
            r = run_one(dataset, model_name, args)
            gap = r["test_nll"] - entropy
            target = TARGETS.get((dataset, model_name))
            r.update({"dataset": dataset, "model": model_name, "true_entropy": entropy,
                      "true_entropy_stderr": entropy_se, "gap_nats": gap, "gaussian_baseline_nll": floor,
                      "gap_ratio_vs_gaussian": gap / (floor - entropy), "target_gap_nats": target,
                      "meets_target": None if target is None else bool(gap <= target)})
            results.append(r)
            flag = "" if target is None else ("ok" if gap <= target else "MISS")
            print(f"{dataset:<13} {model_name:<12} {r['test_nll']:9.4f} {r['test_nll_stderr']:6.4f} "
                  f"{entropy:8.4f} {gap:7.4f} {target if target else '':>6}  {r['ms_per_step']:7.1f} {flag}",
                  flush=True)

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "flows_toy2d",
        "command": "KERAS_BACKEND=%s python bench/flows_toy2d.py --steps %d --batch-size %d"
                   % (keras.config.backend(), args.steps, args.batch_size),
        "settings": vars(args),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "backend": keras.config.backend(), "keras": keras.__version__,
                    "load_average_at_end": [round(v, 2) for v in os.getloadavg()]},
        "results": results,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
