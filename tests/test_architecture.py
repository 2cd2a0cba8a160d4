"""The import graph of `kgen/` runs one way: no cycles, no model importing what sits above it.

Walks every module's `import` statements with `ast` (module-level and inside functions alike:
a lazy import is still an arrow), so the test needs no backend and imports nothing.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The installed names of the folders at the top of the repository (pyproject's package-dir).
PACKAGES = {"kgen": ROOT / "kgen", "kgen.cli": ROOT / "cli"}
# What a model module may never import: the floors above the models.
ABOVE_MODELS = ("kgen.training", "kgen.cli", "kgen.sampling", "kgen.evaluation", "kgen.metrics",
                "kgen.export", "kgen.api", "kgen.checkpoint", "kgen.config", "kgen.saved")


def _modules():
    out = {}
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix] + parts)] = path
    return out


def _resolve(name, known):
    """The longest known module that `name` (a dotted import target) falls in, or None."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph():
    """`{module: {imported kgen module, ...}}` over every module of the package."""
    mods = _modules()
    graph = {}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from kgen.models import vae` imports the submodule when there is one.
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("cli"):
                    name = "kgen." + name
                target = _resolve(name, mods)
                if target is not None and target != mod:
                    targets.add(target)
        graph[mod] = targets
    return graph


def _parents(mod):
    parts = mod.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def find_cycle(graph):
    """One import cycle as a list of modules, or None.

    Importing `a.b.c` runs `a/__init__` and `a/b/__init__` first, so an edge to a module is also
    an edge to its packages; an edge from a package's `__init__` to its own submodules is not a cycle.
    """
    edges = {m: {t for t in ts} | {p for t in ts for p in _parents(t) if p in graph and p not in _parents(m) and p != m}
             for m, ts in graph.items()}
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_graph_is_read():
    graph = import_graph()
    assert "kgen.models.latent.vae" in graph and "kgen.cli.main" in graph
    assert "kgen.models.base" in graph["kgen.models.latent.vae"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("mod", sorted(m for m in import_graph() if m.startswith("kgen.models.")))
def test_models_import_nothing_above_them(mod):
    above = sorted(t for t in import_graph()[mod] if t.startswith(ABOVE_MODELS))
    assert not above, f"{mod} imports {above}, which sit above the models"


def test_low_floors_import_no_models():
    graph = import_graph()
    low = [m for m in graph if m.startswith(("kgen.registry", "kgen.errors", "kgen.budget", "kgen.backend",
                                             "kgen.layers",
                                             "kgen.data", "kgen.figures", "kgen.optimizers"))]
    for mod in low:
        up = sorted(t for t in graph[mod] if t.startswith(("kgen.models",) + ABOVE_MODELS))
        assert not up, f"{mod} imports {up} from a floor above it"


@pytest.mark.parametrize("first", ["kgen.budget", "kgen.config", "kgen.backend", "kgen.api", "kgen.data"])
def test_any_module_imported_first_registers_every_model(first):
    """Importing Keras registers kgen's models (kgen/__init__.py), so a low module that imports Keras
    while it is half-initialized must not have names imported from it by a model at module level
    (kgen.backend: models import the package, never names from it): a fresh process that imports
    `first` before anything else of kgen's gets no registration warning (kgen.backend and kgen.api,
    and so `kgen.list_models()`, once warned)."""
    import os
    import subprocess
    import sys

    code = (f"import warnings; warnings.simplefilter('error'); import {first}; import kgen.api; "
            "assert kgen.api.get_entry('latent_constraints')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]


def test_plain_keras_loads_a_kgen_file_after_kgen_backend_alone():
    """Keras' first import, inside kgen.backend's, registers every model there and then."""
    import os
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error'); import kgen.backend; import keras; "
            "assert keras.saving.get_registered_object('kgen>VAE') is not None")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
