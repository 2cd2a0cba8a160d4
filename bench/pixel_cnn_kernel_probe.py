"""Which PixelCNN for an hour of CPU? Equal wall-clock budgets, validation NLL (the probe behind the recipe).

    KGEN_DATA_DIR=../shared/data python bench/pixel_cnn_kernel_probe.py 270 A,C,B,E > bench/results/pixel_cnn_kernel_probe.jsonl

Each configuration (all h = 32, 7x7 mask-A first layer, Bernoulli outputs,
Adam 1e-3, batch 64, seed 0) trains on the 50,000 binarized-MNIST training
images for the given seconds of wall clock, then its exact NLL is averaged
over the first 2,000 validation images. One JSON line per configuration:
A 6 blocks of 3x3 mask B (the old recipe), C 12 blocks of 3x3, B 6 blocks
of 5x5, E 4 blocks of 7x7 (D: the gated PixelCNN, 6 layers). A one-shot
probe on a budget, not a converged comparison: it ranks how fast each net
learns per second of this CPU.
"""
import sys, time, json
import numpy as np, keras, kgen
budget = float(sys.argv[1]); which = sys.argv[2].split(",")
tr = kgen.load_dataset("binarized_mnist", split="train").x.astype("float32")
va = kgen.load_dataset("binarized_mnist", split="valid").x[:2000].astype("float32")
specs = {
 "A": ("pixel_cnn", dict(filters=32, num_blocks=6, kernel_size=3, output_filters=64)),
 "B": ("pixel_cnn", dict(filters=32, num_blocks=6, kernel_size=5, output_filters=64)),
 "C": ("pixel_cnn", dict(filters=32, num_blocks=12, kernel_size=3, output_filters=64)),
 "D": ("gated_pixel_cnn", dict(filters=32, num_layers=6, kernel_size=3, output_filters=64)),
 "E": ("pixel_cnn", dict(filters=32, num_blocks=4, kernel_size=7, output_filters=64)),
}
class Stop(keras.callbacks.Callback):
    def on_train_begin(self, logs=None): self.t = time.perf_counter()
    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.t > budget: self.model.stop_training = True
for w in which:
    name, spec = specs[w]
    keras.utils.set_random_seed(0)
    m = kgen.build_model(name, input_shape=(28,28,1), num_levels=2, likelihood="bernoulli", first_kernel=7, **spec)
    m.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=8)
    t = time.perf_counter()
    h = m.fit(tr, batch_size=64, epochs=100, verbose=0, callbacks=[Stop()])
    steps = int(m.optimizer.iterations.numpy())
    nll = float(np.mean(-kgen.backend.to_numpy(m.log_prob(va))))
    print(json.dumps({"cfg": w, "name": name, **spec, "params": m.count_params(), "steps": steps,
                      "seconds": round(time.perf_counter()-t), "val_nll_2000": round(nll, 2)}), flush=True)
