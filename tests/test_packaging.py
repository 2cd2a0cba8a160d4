"""The wheel ships every package, the recipes and the pretrained checkpoints."""

import importlib.resources
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "kgen").rglob("__init__.py")}
    found |= {"kgen.cli", "kgen.configs", "kgen.saved_models"}
    assert found == listed, f"add to pyproject.toml: {found - listed}; remove: {listed - found}"


def test_cli_is_not_a_top_level_module():
    import importlib.util

    import kgen.cli.main

    assert kgen.cli.main.main.name == "main"
    spec = importlib.util.find_spec("cli")
    assert spec is None or "kgen" not in str(spec.origin)


def test_recipes_and_pretrained_are_package_data():
    assert importlib.resources.files("kgen.configs").joinpath("vae", "digits.toml").is_file()
    shipped = importlib.resources.files("kgen.saved_models").joinpath("vae-digits.keras")
    assert shipped.is_file()
    assert importlib.resources.files("kgen.saved_models").joinpath("vae-digits.toml").is_file()
