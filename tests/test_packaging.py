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


def test_the_wheel_builds_without_warnings_and_ships_the_data(tmp_path):
    """setuptools used to warn "Package would be ignored" for every recipe folder (issue 26, item 15)."""
    import subprocess
    import sys
    import zipfile

    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "would be ignored" not in output and "absent from the `packages`" not in output, output[-2000:]
    (wheel,) = tmp_path.glob("kgen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = {f"kgen/configs/{p.parent.name}/{p.name}" for p in (ROOT / "configs").glob("*/*.toml")}
    assert recipes and recipes <= names
    assert {f"kgen/data/files/{p.name}" for p in (ROOT / "kgen" / "data" / "files").iterdir()} <= names
    assert {f"kgen/saved_models/{p.name}" for p in (ROOT / "saved_models").glob("*.keras")} <= names
