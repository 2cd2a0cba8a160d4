"""CycleGAN: two generators vs two discriminators, LSGAN/cycle/identity losses, the cycle loss falls, CLI."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from adversarial_checks import check_training, fit_and_record, iterations
from kgen import checkpoint
from kgen.backend import to_numpy
from kgen.errors import DataError, UsageError
from kgen.models.adversarial import CycleGAN

BACKEND = keras.config.backend()


def tiny(**kw):
    return CycleGAN((8, 8, 1), generator_filters=4, res_blocks=1, discriminator_filters=(4,), **kw)


@pytest.fixture(scope="module")
def domains():
    data = kgen.load_dataset("digits_bold")
    return data.x_source[:64], data.x[:64]


@pytest.fixture(scope="module")
def trained(domains):
    """A tiny CycleGAN fitted 30 steps on 16 images per domain (one compiled step serves every test)."""
    keras.utils.set_random_seed(0)
    model = tiny()
    model.compile(optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    a, b = (v[:16] for v in domains)
    history = model.fit((a, b), batch_size=8, epochs=15, shuffle=False, verbose=0).history
    record = fit_and_record(model, domains, steps=2)
    record["tiny_history"] = history
    return model, record


def test_training_step_updates_both_generators_and_both_discriminators(trained):
    model, record = trained
    check_training(record, steps=2, extra_metrics=("d_a", "d_b", "g_adv", "cycle", "identity"))
    g_ids = {id(v) for v in model.generator_variables()}
    d_ids = {id(v) for v in model.discriminator_variables()}
    nets = (model.generator_ab, model.generator_ba, model.discriminator_a, model.discriminator_b)
    assert not g_ids & d_ids and g_ids | d_ids == {id(v) for v in model.trainable_variables}
    for net, ids in zip(nets, (g_ids, g_ids, d_ids, d_ids)):
        assert net.trainable_variables and {id(v) for v in net.trainable_variables} <= ids


def test_networks_and_translation_shapes(trained, domains):
    model, _ = trained
    assert model.generator_ab.output_shape == model.generator_ba.output_shape == (None, 8, 8, 1)
    assert model.discriminator_a.output_shape == (None, 4, 4, 1)  # patch logits of single images
    a, b = domains
    assert model.translate(a[:3], "a2b").shape == model.translate(b[:3], "b2a").shape == (3, 8, 8, 1)
    assert model.translate(a[0]).shape == (1, 8, 8, 1)
    np.testing.assert_allclose(to_numpy(model(a[:3])), model.translate(a[:3]), atol=1e-6)
    with pytest.raises(UsageError, match="a2b or b2a"):
        model.translate(a[:3], "ab")


def test_losses_against_numpy(trained, domains):
    model, _ = trained
    a, b = (v[:16] for v in domains)
    ta, tb = keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)
    fake_b, fake_a = model.translate(a, "a2b"), model.translate(b, "b2a")

    def disc(net, x):
        return to_numpy(net(keras.ops.convert_to_tensor(x), training=False))

    d_loss, d_logs = model.discriminator_loss(tb, (fake_b, fake_a), None, (ta, tb), training=False)
    d_a = 0.5 * (np.mean((disc(model.discriminator_a, a) - 1) ** 2) + np.mean(disc(model.discriminator_a, fake_a) ** 2))
    d_b = 0.5 * (np.mean((disc(model.discriminator_b, b) - 1) ** 2) + np.mean(disc(model.discriminator_b, fake_b) ** 2))
    np.testing.assert_allclose([to_numpy(d_logs["d_a"]), to_numpy(d_logs["d_b"]), to_numpy(d_loss)], [d_a, d_b, d_a + d_b], rtol=1e-5)
    loss, logs = model.generator_loss(None, (ta, tb), training=False)
    adv = (np.mean((disc(model.discriminator_b, fake_b) - 1) ** 2)
           + np.mean((disc(model.discriminator_a, fake_a) - 1) ** 2))
    cycle = np.mean(np.abs(model.translate(fake_b, "b2a") - a)) + np.mean(np.abs(model.translate(fake_a, "a2b") - b))
    identity = np.mean(np.abs(model.translate(b, "a2b") - b)) + np.mean(np.abs(model.translate(a, "b2a") - a))
    np.testing.assert_allclose(to_numpy(logs["g_adv"]), adv, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(logs["cycle"]), cycle / 2, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(logs["identity"]), identity / 2, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(loss), adv + 10 * cycle + 5 * identity, rtol=1e-5)  # lambda 10, identity 0.5 x 10


def test_evaluate_extra_cycle_errors(trained):
    from kgen.data.pipeline import Prepared

    model, _ = trained
    data = kgen.load_dataset("digits_bold", split="test")
    n = min(len(data.x), len(data.x_source))
    prepared = Prepared(x=data.x[:n], y=None, logdet=None, source=data, x_source=data.x_source[:n])
    out = model.evaluate_extra(prepared, batch_size=32)
    assert set(out) == {"cycle_a", "cycle_b"}  # unpaired: no L1 to targets
    a = data.x_source[:n]
    expected = np.mean(np.abs(model.translate(model.translate(a, "a2b"), "b2a") - a))
    assert out["cycle_a"] == pytest.approx(expected, rel=1e-5)


def test_cycle_loss_falls_on_tiny_data(trained):
    history = trained[1]["tiny_history"]
    assert all(np.isfinite(history["cycle"]))
    assert history["cycle"][-1] < 0.6 * history["cycle"][0], history["cycle"]


def test_save_load_resume(trained, domains, tmp_path):
    model, _ = trained
    path = tmp_path / "cycle_gan.keras"
    checkpoint.save_checkpoint(model, path, {"epoch": 1})
    loaded = kgen.load_model(path)
    assert type(loaded) is CycleGAN and iterations(loaded) == iterations(model)
    for player in ("discriminator_optimizer", "generator_optimizer"):
        saved, restored = getattr(model.optimizer, player), getattr(loaded.optimizer, player)
        assert len(saved.variables) == len(restored.variables) > 1
        for x, y in zip(saved.variables, restored.variables):
            np.testing.assert_array_equal(to_numpy(x.value), to_numpy(y.value))
    for x, y in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_numpy(x.value), to_numpy(y.value))
    a, b = domains
    for direction, x in (("a2b", a[:8]), ("b2a", b[:8])):
        np.testing.assert_allclose(loaded.translate(x, direction), model.translate(x, direction), atol=1e-6)
    before = iterations(loaded)
    loaded.fit((a[:16], b[:16]), batch_size=16, epochs=1, verbose=0)
    assert all(y == x + 1 for x, y in zip(before, iterations(loaded)))


def test_accepts_paired_and_refuses_plain_data(trained):
    model, _ = trained
    model.check_data(kgen.load_dataset("digits_inpaint"))  # pairs are also two domains
    with pytest.raises(DataError, match="not a translation data set"):
        model.check_data(kgen.load_dataset("digits"))


def test_cli_train_and_sample(tmp_path):
    from kgen.cli.main import main

    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "--backend", BACKEND, "train", "--model", "cycle_gan", "--dataset", "digits_bold", "--epochs", "1",
        "--run-dir", str(run_dir), "--set", "data.max_examples=32", "--set", "model.generator_filters=4",
        "--set", "model.res_blocks=1", "--set", "model.discriminator_filters=[4]", "--set", "train.grid_size=4",
        "--quiet",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (run_dir / "samples" / "epoch_001.png").is_file()
    assert "val_cycle" in (run_dir / "metrics.csv").read_text().splitlines()[0]
    out = tmp_path / "t.npz"
    result = CliRunner().invoke(main, ["--backend", BACKEND, "sample", "--checkpoint", str(run_dir / "last.keras"),
                                       "-n", "6", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with np.load(out) as f:
        assert sorted(f.files) == ["source", "x"]  # unpaired: no target
        assert f["x"].shape == (6, 8, 8, 1) and f["x"].min() >= -1 and f["x"].max() <= 1
