"""The layout of the house, enforced: the import graph of src/seqlm has no circle and no upward import
(a layer imports only from layers below it or from itself), no private name crosses a module, every
subpackage has tests in the mirrored folder, and every row of the table of kinds loads through it."""

import ast
from pathlib import Path

import pytest

from seqlm import kinds

SRC = Path(__file__).resolve().parents[1] / "src" / "seqlm"
TESTS = Path(__file__).resolve().parent

# bottom to top: a module may import from its own layer and the layers below it, never above
LAYERS = [
    {"seqlm.errors", "seqlm.version", "seqlm.kinds"},
    {"seqlm.io"},
    {"seqlm.config", "seqlm.text"},
    {"seqlm.models"},
    {"seqlm.tasks", "seqlm.kenlm"},
    {"seqlm.training"},
    {"seqlm.analysis", "seqlm.workflows", "seqlm.asr"},
    {"seqlm.reporting", "seqlm.server"},
    {"seqlm.cli"},
    {"seqlm", "seqlm.__main__", "seqlm.manual"},  # the public API, `python -m seqlm`, the manual's generated pages
]


def modules() -> dict[str, Path]:
    out = {}
    for f in SRC.rglob("*.py"):
        name = ".".join(f.relative_to(SRC.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def imports(name: str, path: Path) -> list[tuple[str, str]]:
    """(module imported, name imported) for every ``from seqlm... import`` in a module (function-level too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import (the house uses absolute imports)"
            if node.module and node.module.split(".")[0] == "seqlm":
                out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names if a.name.split(".")[0] == "seqlm"]
    return out


def layer(name: str) -> int:
    group = ".".join(name.split(".")[:2])
    for i, members in enumerate(LAYERS):
        if group in members or name in members:
            return i
    raise AssertionError(f"{name} is in no layer: add its package to LAYERS")


MODS = modules()


def edges() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, path in MODS.items():
        targets = set()
        for module, attr in imports(name, path):
            target = f"{module}.{attr}" if f"{module}.{attr}" in MODS else module
            if target != name and target in MODS:
                targets.add(target)
        out[name] = targets
    return out


def test_every_module_is_in_a_layer():
    for name in MODS:
        layer(name)


def test_no_upward_import():
    wrong = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})" for a, bs in edges().items() for b in bs
             if layer(b) > layer(a)]
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    graph, state, stack = edges(), {}, []

    def visit(v):
        state[v] = "open"
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(w):] + [w]))
            if w not in state:
                visit(w)
        stack.pop()
        state[v] = "done"

    for v in sorted(graph):
        if v not in state:
            visit(v)


def test_no_private_name_crosses_a_module():
    wrong = [f"{name} imports {attr} from {module}" for name, path in MODS.items()
             for module, attr in imports(name, path)
             if attr.startswith("_") and not attr.startswith("__") and module != name]
    assert not wrong, "\n".join(wrong)


def test_every_subpackage_has_tests():
    packages = {p.parent.relative_to(SRC) for p in SRC.rglob("__init__.py")} - {Path(".")}
    missing = [str(p) for p in sorted(packages) if not list((TESTS / p).glob("test_*.py"))]
    assert not missing, f"subpackages without tests under tests/: {missing}"


def test_tests_mirror_the_package():
    folders = {p.parent.relative_to(TESTS) for p in TESTS.rglob("test_*.py")} - {Path(".")}
    stray = [str(f) for f in sorted(folders) if not (SRC / f).is_dir()]
    assert not stray, f"test folders with no package of the same name: {stray}"


@pytest.mark.parametrize("name", list(kinds.KINDS))
def test_every_kind_names_an_importable_builder_and_loader(name):
    row = kinds.KINDS[name]
    assert callable(kinds.resolve(row.builder)) and callable(kinds.loader(row.folder)), name
    assert kinds.loader(row.folder) == kinds.resolve(row.loader)


def test_the_package_and_the_cli_import_only_what_a_command_uses():
    """``import seqlm`` binds its API on first use (start-up is part of every command's time: a whole
    ``seqlm score`` is compared with KenLM's ``query``); every public name still resolves, to its home."""
    import subprocess
    import sys

    code = ("import sys, seqlm, seqlm.cli\n"
            "heavy = sorted(m for m in ('numpy', 'torch', 'seqlm.reporting.report', 'seqlm.server.app') if m in sys.modules)\n"
            "assert not heavy, heavy\n"
            "from seqlm import score, export\n"
            "import seqlm.models.ngram.arpa as arpa, seqlm.tasks.score as ts\n"
            "assert score is ts.score and export is arpa.write_arpa\n"
            "assert all(getattr(seqlm, n) is not None for n in seqlm.__all__) and set(seqlm.__all__) <= set(dir(seqlm))\n"
            "try:\n    seqlm.nothing\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit('no AttributeError')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_the_cli_imports_numpy_without_blas_threads():
    # OpenBLAS's threads spin at import and take cores from the scoring threads; the user's setting wins, and
    # the environment is put back for torch and child processes
    import subprocess
    import sys

    code = ("import os; from seqlm.io.runtime import import_numpy_quietly; import_numpy_quietly(); "
            "print(len(os.listdir('/proc/self/task')), os.environ.get('OPENBLAS_NUM_THREADS'))")
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}  # (dask's workers set it here)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.split()
    assert out == ["1", "None"]
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.split()
    assert out[1] == "2"
