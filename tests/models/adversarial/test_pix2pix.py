"""pix2pix: U-Net skips, PatchGAN patches, the L1 + adversarial losses, save/load, and a CLI run."""

import struct

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from adversarial_checks import check_training, fit_and_record, iterations, moving_stats
from kgen import checkpoint
from kgen.backend import to_numpy
from kgen.errors import DataError, UsageError
from kgen.models.adversarial import Pix2Pix
from kgen.models.adversarial.translation_networks import auto_depth, patch_discriminator, unet_generator

BACKEND = keras.config.backend()


def tiny(**kw):
    return Pix2Pix((8, 8, 1), generator_filters=8, discriminator_filters=(8,), **kw)


@pytest.fixture(scope="module")
def pairs():
    data = kgen.load_dataset("digits_inpaint")
    return data.x_source[:64], data.x[:64]


@pytest.fixture(scope="module")
def trained(pairs):
    keras.utils.set_random_seed(0)
    model = tiny()
    model.compile()
    return model, fit_and_record(model, pairs, steps=2)


def test_training_step(trained):
    model, record = trained
    check_training(record, steps=2, extra_metrics=("g_adv", "l1", "d_real", "d_fake"), has_batch_norm=True)
    stats = {id(v) for v in moving_stats(model)}
    for player in (model.generator, model.discriminator):  # both players normalise
        assert stats & {id(v) for v in player.non_trainable_variables}


def test_unet_shapes_and_skip_connections():
    assert auto_depth((8, 8, 1)) == 2 and auto_depth((16, 16, 3)) == 3 and auto_depth((28, 28, 1)) == 2
    net = unet_generator((16, 16, 3), filters=4, depth=3, dropout=0.0)
    assert net.output_shape == (None, 16, 16, 3)
    skips = [layer for layer in net.layers if layer.name.startswith("skip_")]
    assert [s.name for s in skips] == ["skip_1", "skip_0"]
    assert [tuple(s.output.shape[1:]) for s in skips] == [(4, 4, 16), (8, 8, 8)]
    # Zero the innermost layer: only the skips still carry the input to the output.
    net = unet_generator((8, 8, 1), filters=4, depth=2, dropout=0.0)
    inner = net.get_layer("down_1")
    inner.set_weights([np.zeros_like(w) for w in inner.get_weights()])
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype("float32")
    out = to_numpy(net(x, training=False))
    assert out.shape == (2, 8, 8, 1) and not np.allclose(out[0], out[1], atol=1e-4)


def test_patchgan_output_shape():
    assert patch_discriminator((8, 8, 2), (8,)).output_shape == (None, 4, 4, 1)
    assert patch_discriminator((16, 16, 6), (4, 8)).output_shape == (None, 4, 4, 1)
    model = tiny()
    assert model.discriminator.input_shape == (None, 8, 8, 2)  # judges (source, target) pairs
    with pytest.raises(UsageError, match="divisible by 8"):
        patch_discriminator((12, 12, 2), (4, 4, 4))


def test_losses_against_numpy(trained, pairs):
    model, _ = trained
    a, b = (keras.ops.convert_to_tensor(v[:16]) for v in pairs)
    loss, logs = model.generator_loss(None, (a, b), training=False)
    fake = model.translate(pairs[0][:16])
    l1 = np.mean(np.abs(pairs[1][:16] - fake))
    np.testing.assert_allclose(to_numpy(logs["l1"]), l1, rtol=1e-5)
    logits = to_numpy(model.discriminate(a, keras.ops.convert_to_tensor(fake), training=False))
    adv = np.mean(np.logaddexp(0.0, -logits))  # -log D(a, G(a)), per patch
    np.testing.assert_allclose(to_numpy(logs["g_adv"]), adv, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(loss), adv + 100.0 * l1, rtol=1e-5)
    real_logits = to_numpy(model.discriminate(a, b, training=False))
    d_loss, _ = model.discriminator_loss(b, keras.ops.convert_to_tensor(fake), None, (a, b), training=False)
    expected = 0.5 * (np.mean(np.logaddexp(0.0, -real_logits)) + np.mean(np.logaddexp(0.0, logits)))
    np.testing.assert_allclose(to_numpy(d_loss), expected, rtol=1e-5)
    # evaluate_extra: the per-pixel L1 over a split.
    from kgen.data.pipeline import Prepared

    data = kgen.load_dataset("digits_inpaint", split="test").subset(40)
    prepared = Prepared(x=data.x, y=None, logdet=None, source=data, x_source=data.x_source)
    expected = np.mean(np.abs(model.translate(data.x_source) - data.x))
    assert model.evaluate_extra(prepared, batch_size=16)["l1"] == pytest.approx(expected, rel=1e-5)


def test_save_load_resume(trained, pairs, tmp_path):
    model, _ = trained
    path = tmp_path / "pix2pix.keras"
    checkpoint.save_checkpoint(model, path, {"epoch": 1})
    loaded = kgen.load_model(path)
    assert type(loaded) is Pix2Pix and iterations(loaded) == iterations(model)
    for player in ("discriminator_optimizer", "generator_optimizer"):
        saved, restored = getattr(model.optimizer, player), getattr(loaded.optimizer, player)
        assert len(saved.variables) == len(restored.variables) > 1
        for x, y in zip(saved.variables, restored.variables):
            np.testing.assert_array_equal(to_numpy(x.value), to_numpy(y.value))
    for x, y in zip(model.weights, loaded.weights):
        assert x.path == y.path
        np.testing.assert_array_equal(to_numpy(x.value), to_numpy(y.value))
    np.testing.assert_allclose(loaded.translate(pairs[0][:8]), model.translate(pairs[0][:8]), atol=1e-6)
    before = iterations(loaded)
    loaded.fit((pairs[0][:16], pairs[1][:16]), batch_size=16, epochs=1, verbose=0)
    after = iterations(loaded)
    assert after[0] == before[0] + 1 and after[1] == before[1] + 1 and after[2] == before[2] + 1


def test_usage_and_data_errors(trained):
    model, _ = trained
    with pytest.raises(UsageError, match="translate"):
        model.sample(4)
    with pytest.raises(UsageError, match="a2b"):
        model.translate(np.zeros((1, 8, 8, 1)), direction="b2a")
    with pytest.raises(UsageError, match="shape"):
        model.translate(np.zeros((1, 6, 6, 1)))
    with pytest.raises(UsageError, match="no class labels"):
        Pix2Pix((8, 8, 1), num_classes=10)
    with pytest.raises(DataError, match="not a translation data set"):
        model.check_data(kgen.load_dataset("digits"))
    with pytest.raises(DataError, match="unpaired"):
        model.check_data(kgen.load_dataset("digits_bold"))


def _png_size(path):
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_cli_train_and_sample(tmp_path):
    from kgen.cli.main import main

    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "--backend", BACKEND, "train", "--model", "pix2pix", "--dataset", "digits_inpaint", "--epochs", "1",
        "--run-dir", str(run_dir), "--set", "data.max_examples=64", "--set", "model.generator_filters=8",
        "--set", "model.discriminator_filters=[8]", "--set", "train.grid_size=4", "--quiet",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # 4 triplets (source | completed | truth), 2 per row: 6 x 2 cells of 9 px + 1 px border, upscaled alike.
    w, h = _png_size(run_dir / "samples" / "epoch_001.png")
    assert w * 19 == h * 55
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(main, ["--backend", BACKEND, "sample", "--checkpoint", str(run_dir / "last.keras"),
                                       "-n", "9", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    w, h = _png_size(out)
    assert w * 28 == h * 82  # 9 triplets, 3 per row: 9 x 3 cells
    result = CliRunner().invoke(main, ["--backend", BACKEND, "sample", "--checkpoint", str(run_dir / "last.keras"),
                                       "-n", "5", "--seed", "1", "--out", str(tmp_path / "t.npz")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "t.npz") as f:
        assert sorted(f.files) == ["source", "target", "x"] and f["x"].shape == (5, 8, 8, 1)
        np.testing.assert_array_equal(f["source"][:, 4:], -1.0)  # erased half, scaled to [-1, 1]
