"""kgen works from its own source tree as from an install (issue 26, item 14).

Python started in the repository's root imports the local `kgen/` folder, not the installed package;
`kgen.configs`, `kgen.cli` and `kgen.saved_models` (folders beside `kgen/` that install under it) must
exist there too. The check runs Python without site processing, so no installed or editable kgen can
answer in place of the source tree; the dependencies' site-packages folder is added by hand.
"""

import pathlib
import subprocess
import sys
import sysconfig

ROOT = pathlib.Path(__file__).resolve().parents[1]

CODE = """
import sys
sys.path[:0] = [{root!r}, {site!r}]
import kgen, kgen.config as config
assert kgen.__file__.startswith({root!r}), kgen.__file__
assert config.recipe_path("vae", "digits") is not None
import kgen.cli, kgen.saved_models
print(config.resolve(model="pixelcnn")["model"]["name"])
"""


def test_the_source_tree_has_configs_cli_and_saved_models():
    code = CODE.format(root=str(ROOT), site=sysconfig.get_paths()["purelib"])
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("pixel_cnn")
