"""How sure a throughput ratio is: a bootstrap interval for the ratio of two medians.

Throughput on a small shared machine is noisy (on the 2-core CPU these benchmarks
run on, single runs of the same program spread over +/- 10%), so a ratio of
medians alone can land either side of 1.0 from one invocation to the next. The
throughput benchmarks report beside it the interval that resampling the runs
gives (each side's runs drawn with replacement, the ratio of the two medians
recomputed, the central `level` share of those ratios kept). An interval that
straddles 1.0 says the two are at parity within what the runs can tell apart.

    python bench/throughput_stats.py bench/results/vae_binarized_mnist_throughput.json
"""

import json
import sys

import numpy as np


def ratio_interval(runs, reference_runs, level=0.95, draws=10000, seed=0):
    """Bootstrap percentile interval of median(runs) / median(reference_runs)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(runs, float), np.asarray(reference_runs, float)
    ratios = (np.median(rng.choice(a, (draws, len(a))), axis=1)
              / np.median(rng.choice(b, (draws, len(b))), axis=1))
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _print_intervals(path):
    """The intervals of every ratio in a throughput result file (VAE or GAN layout)."""
    result = json.loads(open(path).read())
    sections = [result] if "reference_tf_gradienttape" in result else list(result.get("models", {}).values())
    for section in sections:
        ref = section.get("reference_tf_gradienttape") or section.get(section.get("baseline") or "", {})
        for name, r in section.get("backends", {}).items():
            if "runs" in r and "runs" in ref:
                lo, hi = ratio_interval(r["runs"], ref["runs"])
                print(f"{section.get('recipe', '')} {name}: ratio {r['ratio_to_reference']:.3f}, 95% interval {lo:.3f}-{hi:.3f}")


if __name__ == "__main__":
    _print_intervals(sys.argv[1])
