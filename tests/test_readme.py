"""The README's model table is the one `kgen list --markdown` prints from the registry."""

import pathlib

from click.testing import CliRunner

import kgen
from kgen.cli.main import main

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_model_table_is_the_registry():
    table = kgen.models_markdown()
    assert len(table.splitlines()) == 2 + len(kgen.list_models())
    assert table in README.read_text(), "README.md's model table is stale: paste `kgen list --markdown` into it"


def test_kgen_list_markdown_prints_it():
    result = CliRunner().invoke(main, ["list", "--markdown"], catch_exceptions=False)
    assert result.exit_code == 0 and result.output.strip() == kgen.models_markdown()
