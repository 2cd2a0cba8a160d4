"""Shipping a finished run (`python -m kgen.saved --from-run`), and the shipped binarized-MNIST checkpoints
against the figures recorded beside them (skipped where binarized MNIST is absent)."""

import json
import pathlib

import pytest

import kgen
from kgen import checkpoint, config as config_lib, saved
from kgen.evaluation import evaluate_checkpoint
from kgen.training.trainer import train

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_ship_run_writes_checkpoint_recipe_and_the_figures_it_scores(tmp_path):
    config = config_lib.resolve(model="nade", dataset="digits",
                                overrides=["model.hidden_units=8", "train.epochs=1", "train.batch_size=256"])
    _, run_dir, _ = train(config, run_dir=tmp_path / "run", verbose=0)
    out, record = saved.ship_run(run_dir, "kgen train --model nade (test)", dest=tmp_path / "ship", slice_examples=50)
    assert out == tmp_path / "ship" / "nade-digits.keras"
    assert out.with_suffix(".toml").read_text() == (run_dir / "config.toml").read_text()
    assert json.loads(saved.measured_path(out).read_text()) == record
    assert record["train_command"] == "kgen train --model nade (test)" and record["epochs"] == 1
    # No optimizer state in the shipped file, and it loads as the run's best model.
    assert out.stat().st_size < (run_dir / "last.keras").stat().st_size
    assert checkpoint.read_state(out)["recipe"] == "nade-digits.toml"
    model = kgen.load_model(out)
    assert model.registered_name == "nade"
    # The recorded figures are what `kgen evaluate` gives on the shipped file: the whole split and the slice.
    whole = evaluate_checkpoint(out, progress=False)
    part = evaluate_checkpoint(out, max_examples=50, progress=False)
    assert record["whole_split"]["nll"]["nats"] == pytest.approx(whole["nll"]["nats"], abs=1e-4)
    assert record["slice"]["nll"]["nats"] == pytest.approx(part["nll"]["nats"], abs=1e-4)
    assert record["slice"]["examples"] == 50 and record["whole_split"]["examples"] == whole["examples"] == 180
    assert record["slice"]["command"].endswith("--split test --max-examples 50 --json")


def test_ship_run_without_a_command_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        saved.main(["--from-run", str(tmp_path)])
    assert "--from-run needs --command" in capsys.readouterr().err


SHIPPED = [p for p in saved.list_pretrained() if p["dataset"] == "binarized_mnist"]


@pytest.mark.skipif(not (SHARED_DATA / "binarized_mnist.npz").is_file(), reason="binarized MNIST not present")
@pytest.mark.parametrize("entry", SHIPPED, ids=[p["model"] for p in SHIPPED])
def test_shipped_binarized_mnist_checkpoint_scores_its_recorded_slice(entry, monkeypatch):
    monkeypatch.setenv("KGEN_DATA_DIR", str(SHARED_DATA))
    path = saved.pretrained_path(entry["model"], "binarized_mnist")
    record = json.loads(saved.measured_path(path).read_text())
    part = evaluate_checkpoint(path, max_examples=record["slice"]["examples"], progress=False)
    assert part["nll"]["nats"] == pytest.approx(record["slice"]["nll"]["nats"], abs=0.02)


def test_every_shipped_binarized_mnist_checkpoint_has_its_record():
    for entry in SHIPPED:
        record = json.loads(saved.measured_path(saved.pretrained_path(entry["model"], "binarized_mnist")).read_text())
        assert record["train_command"] and record["whole_split"]["examples"] == 10000
        assert record["slice"]["examples"] == saved.SLICE_EXAMPLES
