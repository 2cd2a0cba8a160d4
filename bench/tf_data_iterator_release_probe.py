"""Why some TensorFlow epochs of `kgen train` took ~20.6 s instead of ~12 s: the probe behind
`kgen.backend.fit_data`.

    KGEN_DATA_DIR=../shared/data python bench/tf_data_iterator_release_probe.py --epochs 8

`kgen train` calls `fit` once per epoch. The slow epochs lost their seconds after `fit`'s last
callback (`on_train_end`) and before it returned: Keras drops the epoch's tf.data iterator there,
and deleting the iterator of an autotuned pipeline can wait for tf.data's autotuner to wake, whose
sleep doubles from 10 ms (wake-ups 2.6, 5.1, 10.2, 20.5 s after the iterator was made). It is a race,
not every epoch.

This trains the binarized-MNIST k = 10 IWAE recipe (`configs/vae/binarized_mnist_iwae10_cpu.toml`) on
TensorFlow for `--epochs` epochs through `kgen.training.Trainer`, twice, feeding `fit` two ways:

- `kgen`: `kgen.backend.fit_data` / `validation_data`, a tf.data pipeline with autotuning off (the fix);
- `numpy`: the arrays with `batch_size` (Keras' own, autotuned pipeline: kgen's feed before the fix).

For each epoch it records the trainer's epoch time and the gap between `on_train_end` and `fit`'s
return, and writes them all to JSON.
"""

import argparse
import json
import os
import pathlib
import platform
import tempfile
import time

RESULTS = pathlib.Path(__file__).parent / "results"
RECIPE = pathlib.Path(__file__).resolve().parents[1] / "configs" / "vae" / "binarized_mnist_iwae10_cpu.toml"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default=str(RESULTS / "tf_data_iterator_release.json"))
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    from kgen import backend, config as config_lib
    from kgen.training import trainer as trainer_mod

    fit_data, validation_data = backend.fit_data, backend.validation_data
    numpy_feed = {
        "fit_data": lambda inputs, batch_size: {"x": inputs, "batch_size": batch_size},
        "validation_data": lambda inputs, batch_size: {"validation_data": (inputs,),
                                                       "validation_batch_size": batch_size},
    }
    marks = {}

    class Marked(trainer_mod.NaNGuard):  # the trainer's own callback, plus a timestamp
        def on_train_end(self, logs=None):
            marks["train_end"] = time.perf_counter()

    plain_fit = keras.Model.fit

    def timed_fit(self, *a, **k):
        history = plain_fit(self, *a, **k)
        marks.setdefault("gaps", []).append(time.perf_counter() - marks["train_end"])
        return history

    trainer_mod.NaNGuard, keras.Model.fit = Marked, timed_fit
    runs = {}
    for feed in ("kgen", "numpy"):  # the fix first
        backend.fit_data = fit_data if feed == "kgen" else numpy_feed["fit_data"]
        backend.validation_data = validation_data if feed == "kgen" else numpy_feed["validation_data"]
        marks.clear()
        config = config_lib.resolve(config_file=RECIPE, overrides=[f"train.epochs={args.epochs}"])
        with tempfile.TemporaryDirectory() as run_dir:
            trainer = trainer_mod.Trainer(config, run_dir=pathlib.Path(run_dir) / "run", verbose=0)
            trainer.run()
        seconds = [row["seconds"] for row in trainer.history]
        gaps = [round(g, 2) for g in marks["gaps"]]
        runs[feed] = {"epoch_s": seconds, "return_gap_s": gaps,
                      "median_epoch_s": float(np.median(seconds[1:])),  # epoch 1 traces the step
                      "epochs_with_gap_over_1s": sum(g > 1.0 for g in gaps)}
        print(f"{feed:5s}: epoch seconds {seconds}")
        print(f"{feed:5s}: after on_train_end {gaps}")
        print(f"{feed:5s}: {runs[feed]['epochs_with_gap_over_1s']} of {len(gaps)} epochs waited over 1 s; "
              f"median epoch after the first {runs[feed]['median_epoch_s']:.2f} s, "
              f"total {sum(seconds):.1f} s", flush=True)
    result = {"recipe": str(RECIPE.relative_to(RECIPE.parents[2])), "epochs": args.epochs,
              "tensorflow": tf.__version__, "keras": keras.__version__,
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "runs": runs}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
