"""`kgen evaluate` on an RBM: the NLL says whether it is exact or an AIS estimate, with log Z and its spread."""

import keras
import pytest
from click.testing import CliRunner

from kgen.cli.main import main

BACKEND = keras.config.backend()


def run(*args):
    return CliRunner().invoke(main, ["--backend", BACKEND, *args], catch_exceptions=False)


@pytest.mark.parametrize("hidden, kind, how", [(8, "exact", "(exact)"),
                                               (24, "AIS estimate", "(AIS: 16 chains, 300 betas)")])
def test_evaluate_reports_the_kind_of_nll_and_log_z(tmp_path, hidden, kind, how):
    run_dir = tmp_path / "run"
    result = run("train", "--model", "rbm", "--dataset", "digits", "--epochs", "1", "--run-dir", str(run_dir),
                 "--set", f"model.hidden_units={hidden}", "--set", "model.ais_chains=16",
                 "--set", "model.ais_betas=300", "--set", "data.max_examples=128", "--quiet")
    assert result.exit_code == 0, result.output
    result = run("evaluate", "--checkpoint", str(run_dir / "last.keras"), "--max-examples", "32")
    assert result.exit_code == 0, result.output
    assert f"NLL ({kind}):" in result.output
    assert "log Z:" in result.output and how in result.output
