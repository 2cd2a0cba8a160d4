"""SeqGAN vs its MLE baseline on the synthetic oracle benchmark (Yu et al. 2017, Table 1).

Both generators start from one maximum-likelihood pretraining of the paper's
generator (LSTM 32/32) on 10,000 sequences of the oracle. Then, from that same
starting point:

- MLE: more maximum-likelihood epochs (the paper's MLE baseline);
- SeqGAN: discriminator pretraining, then adversarial epochs (policy gradient
  with Monte Carlo roll-outs, the paper's g-steps / d-steps / k).

NLL_oracle (nats per token, 10,000 samples, as `kgen evaluate` reports it) is
measured after pretraining and after every later epoch for both. Published
(Yu et al. 2017, their oracle, ~80 MLE epochs and 200 adversarial batches):
random 10.310, MLE 9.038, SeqGAN 8.736. The budget here is set by the flags and
written to the JSON with the machine and the times; a CPU run is far shorter
than the paper's, so read the numbers with it.

    python bench/seqgan_oracle.py --oracle ../shared/data/seqgan_oracle.npz \
        --pretrain-epochs 10 --d-epochs 2 --adv-epochs 3 --adv-batches 8

Writes bench/results/seqgan_oracle.json.
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kgen  # noqa: E402
from kgen import checkpoint  # noqa: E402
from kgen import config as config_lib  # noqa: E402
from kgen.training.trainer import compile_model  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
PUBLISHED = {"random": 10.310, "mle": 9.038, "scheduled_sampling": 8.985, "pg_bleu": 8.946, "seqgan": 8.736}


def nll_oracle(model, oracle, n, seed=0):
    return oracle.nll(model.sample(n, seed=seed, batch_size=1000))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--oracle", default=str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
                                          / "seqgan_oracle.npz"))
    p.add_argument("--pretrain-epochs", type=int, default=10)
    p.add_argument("--d-epochs", type=int, default=2, help="discriminator pretraining epochs (of --adv-batches)")
    p.add_argument("--adv-epochs", type=int, default=3)
    p.add_argument("--adv-batches", type=int, default=8, help="batches in each discriminator / adversarial epoch")
    p.add_argument("--rollouts", type=int, default=16)
    p.add_argument("--samples", type=int, default=10000, help="samples scored by NLL_oracle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "seqgan_oracle.json"))
    args = p.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    config = config_lib.resolve(model="seqgan", dataset="seqgan_oracle", overrides=[
        (["data", "oracle"], args.oracle), (["model", "rollouts"], args.rollouts),
        (["model", "pretrain_epochs"], args.pretrain_epochs), (["model", "discriminator_pretrain_epochs"],
                                                               args.d_epochs),
        (["model", "adversarial_epochs"], args.adv_epochs), (["train", "seed"], args.seed)])
    train = kgen.load_dataset("seqgan_oracle", split="train", oracle=args.oracle)
    oracle = train.oracle
    batch = config["train"]["batch_size"]
    print(f"oracle: {oracle.source}{' (published)' if oracle.published else ''}; "
          f"{len(train)} training sequences; backend {keras.config.backend()}", flush=True)
    from kgen.training.trainer import build_for_data

    model = compile_model(build_for_data(config, train), config["train"])
    rng = np.random.default_rng(args.seed)
    timeline = {"mle": [], "seqgan": []}
    times = {}
    pretrain_curve, pretrained = [], None

    def epoch_data(size=None):
        perm = rng.permutation(len(train))
        return train.x[perm if size is None else perm[:size]]

    def write(stage):
        """The JSON as it stands (after every scored epoch, so a cut run keeps what it measured)."""
        result = {
            "benchmark": "SeqGAN synthetic oracle, NLL_oracle per token (nats)", "stage": stage,
            "oracle": oracle.source, "published_oracle": oracle.published,
            "budget": {"pretrain_epochs": args.pretrain_epochs, "discriminator_epochs": args.d_epochs,
                       "adversarial_epochs": args.adv_epochs, "batches_per_later_epoch": args.adv_batches,
                       "batch_size": batch, "rollouts": args.rollouts, "g_steps": model.g_steps,
                       "d_steps": model.d_steps, "k": model.k, "nll_samples": args.samples},
            "pretrain_curve_2000_samples": pretrain_curve,
            "after_pretraining": pretrained,
            "mle": {"curve": timeline["mle"], "final": timeline["mle"][-1] if timeline["mle"] else pretrained},
            "seqgan": {"curve": timeline["seqgan"],
                       "final": timeline["seqgan"][-1] if timeline["seqgan"] else pretrained},
            "published": PUBLISHED,
            "times_s": {k: round(v, 1) for k, v in times.items()},
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "backend": keras.config.backend(),
                        "python": sys.version.split()[0]},
            "command": "python bench/seqgan_oracle.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        }
        result["seqgan_minus_mle"] = (result["seqgan"]["final"] - result["mle"]["final"]) if stage == "done" else None
        pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
        return result

    # === Shared MLE pretraining ===
    start = time.perf_counter()
    for epoch in range(args.pretrain_epochs):
        model.fit(epoch_data(), epochs=epoch + 1, initial_epoch=epoch, batch_size=batch, verbose=0)
        pretrain_curve.append(nll_oracle(model, oracle, 2000))
        print(f"pretrain epoch {epoch + 1}: NLL_oracle (2,000 samples) {pretrain_curve[-1]:.4f}", flush=True)
    times["pretrain_s"] = time.perf_counter() - start
    pretrained = nll_oracle(model, oracle, args.samples)
    print(f"after {args.pretrain_epochs} MLE epochs: NLL_oracle {pretrained:.4f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    write("pretrained")
    tmp = RESULTS / ".seqgan_pretrained.keras"
    checkpoint.save_checkpoint(model, tmp)  # weights and both optimizers' states: the MLE branch starts here

    # === SeqGAN: discriminator pretraining, then adversarial epochs ===
    start = time.perf_counter()
    first = args.pretrain_epochs
    for epoch in range(first, first + args.d_epochs + args.adv_epochs):
        model.fit(epoch_data(batch * args.adv_batches), epochs=epoch + 1, initial_epoch=epoch, batch_size=batch,
                  verbose=0)
        if model.phase_at(epoch) == "adversarial":
            timeline["seqgan"].append(nll_oracle(model, oracle, args.samples))
            print(f"seqgan adversarial epoch {epoch + 1 - first - args.d_epochs}: NLL_oracle "
                  f"{timeline['seqgan'][-1]:.4f}", flush=True)
            times["seqgan_s"] = time.perf_counter() - start
            write("seqgan")
    times["seqgan_s"] = time.perf_counter() - start

    # === MLE baseline: the same start, as many generator updates by maximum likelihood ===
    model = checkpoint.load_model(tmp)
    tmp.unlink()
    model.adversarial_epochs = 0  # MLE for every epoch from here
    start = time.perf_counter()
    for epoch in range(first, first + args.adv_epochs):
        model.fit(epoch_data(batch * args.adv_batches), epochs=epoch + 1, initial_epoch=epoch, batch_size=batch,
                  verbose=0)
        timeline["mle"].append(nll_oracle(model, oracle, args.samples))
        print(f"mle epoch {epoch + 1 - first}: NLL_oracle {timeline['mle'][-1]:.4f}", flush=True)
        times["mle_s"] = time.perf_counter() - start
        write("mle")
    times["mle_s"] = time.perf_counter() - start

    result = write("done")
    print(json.dumps({k: result[k] for k in ("after_pretraining", "mle", "seqgan", "seqgan_minus_mle", "times_s")},
                     indent=2))
    return result


if __name__ == "__main__":
    main()
