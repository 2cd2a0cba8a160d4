"""Adversarial models in the training harness: run folders, resume with both optimizers, the NaN guard."""

import csv

import keras
import numpy as np

from kgen import checkpoint
from kgen import config as config_lib
from kgen.models.adversarial import GAN
from kgen.training.callbacks import NaNGuard
from kgen.training.trainer import train

TINY = [
    "train.epochs=1", "train.batch_size=32", "data.max_examples=64", "train.grid_size=4",
    "model.latent_dim=4", "model.generator_units=[16]", "model.discriminator_units=[16]",
    "model.generator_batch_norm=false",  # keeps the three JAX compiles short; DCGAN tests cover BN resume
]


def _state(path):
    model = checkpoint.load_model(path)
    opt = model.optimizer
    return model, {
        "weights": [keras.ops.convert_to_numpy(v.value) for v in model.weights],
        "d_opt": [keras.ops.convert_to_numpy(v.value) for v in opt.discriminator_optimizer.variables],
        "g_opt": [keras.ops.convert_to_numpy(v.value) for v in opt.generator_optimizer.variables],
    }


def test_train_then_resume_matches_an_uninterrupted_run(tmp_path):
    config = config_lib.resolve(model="gan", dataset="digits", overrides=TINY)
    # Interrupted: one epoch, then resume to two.
    _, run_dir, _ = train(config, run_dir=tmp_path / "b", verbose=0)
    first, _ = _state(run_dir / "last.keras")
    steps = 2  # 64 examples / batch 32
    assert [int(x) for x in (first.optimizer.discriminator_optimizer.iterations.numpy(),
                             first.optimizer.generator_optimizer.iterations.numpy())] == [steps, steps]
    model, _, last = train(None, run_dir=run_dir, resume=True, epochs=2, verbose=0)
    opt = model.optimizer
    assert int(opt.discriminator_optimizer.iterations.numpy()) == 2 * steps
    assert int(opt.generator_optimizer.iterations.numpy()) == 2 * steps
    assert int(opt.iterations.numpy()) == 2 * steps
    # Uninterrupted: two epochs straight. Both optimizers' states were restored on
    # resume, so the two runs end with the same weights and optimizer states.
    config2 = config_lib.resolve(model="gan", dataset="digits", overrides=TINY + ["train.epochs=2"])
    train(config2, run_dir=tmp_path / "a", verbose=0)
    _, a = _state(tmp_path / "a" / "last.keras")
    _, b = _state(run_dir / "last.keras")
    for key in ("weights", "d_opt", "g_opt"):
        assert len(a[key]) == len(b[key]) > 0
        for x, y in zip(a[key], b[key]):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=key)
    # The run folder logs both players' losses per epoch and a grid per epoch.
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for key in ("d_loss", "g_loss", "val_d_loss", "val_g_loss", "d_real", "d_fake"):
        assert all(np.isfinite(float(r[key])) for r in rows), key
    assert (run_dir / "samples" / "epoch_001.png").is_file() and (run_dir / "samples" / "epoch_002.png").is_file()
    assert np.isfinite(last["d_loss"]) and np.isfinite(last["g_loss"])


def test_nan_guard_sees_adversarial_losses():
    model = GAN((4,), generator_units=(4,), discriminator_units=(4,), latent_dim=2)
    model.compile()
    guard = NaNGuard()
    x = np.full((16, 4), np.nan, "float32")
    model.fit(x, batch_size=8, epochs=1, verbose=0, callbacks=[guard])
    assert guard.bad is not None and "nan" in guard.bad.lower()
    assert guard.bad.split(" = ")[0] in {"loss", "d_loss", "g_loss", "d_real", "d_fake"}
