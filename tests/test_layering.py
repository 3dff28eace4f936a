"""The layers of DESIGN.md, enforced: import-linter's layers contract (function-level imports counted),
no import cycles between packages, and one name per module (`bgmv2.<part>`, never the bare folder name)."""
import ast
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("pytorch_impl", "tensorflow_impl", "converters", "parity_tests", "weights", "scripts")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(cwd)})


def test_lint_imports_keeps_the_layers_contract():
    pytest.importorskip("importlinter")
    result = lint_imports(ROOT)
    assert "Contracts: 1 kept, 0 broken." in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]


def test_lint_imports_catches_an_import_that_runs_back_up(tmp_path):
    """A function-level import from a lower layer to a higher one, planted in a copy, breaks the contract."""
    pytest.importorskip("importlinter")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    package = tmp_path / "bgmv2"
    shutil.copytree(ROOT / "bgmv2", package, symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.safetensors", "*.jpg", "*.json"))
    (package / "weights" / "planted.py").write_text("def f():\n    from bgmv2.scripts import cli\n")
    result = lint_imports(tmp_path)
    assert "0 kept, 1 broken" in result.stdout and "bgmv2.weights.planted -> bgmv2.scripts.cli" in result.stdout, \
        result.stdout[-3000:]


def test_no_import_cycles_between_packages():
    """Every package (bgmv2.converters, bgmv2.scripts.media, ...) against every other: no two import each
    other, directly or through others, function-level imports counted."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("bgmv2", cache_dir=None)
    packages = sorted(m for m in graph.modules if m != "bgmv2"
                      and (ROOT / "bgmv2" / Path(*m.split(".")[1:]) / "__init__.py").exists())
    loops = []
    for a, b in itertools.combinations(packages, 2):
        if a.startswith(b + ".") or b.startswith(a + "."):
            continue
        if graph.chain_exists(a, b, as_packages=True) and graph.chain_exists(b, a, as_packages=True):
            loops.append(f"{a} <-> {b}")
    assert not loops, loops


def python_sources():
    """Every Python file of the repository (the package, tests, benchmarks, notebooks' code cells)."""
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0].startswith(".") or relative.parts[0] == "bgmv2" and relative.parts[1] in PARTS:
            continue  # hidden folders (virtual environments), and the links to the parts (read as themselves)
        yield relative, path.read_text(encoding="utf-8")
    for path in sorted(ROOT.glob("notebooks/*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        yield path.relative_to(ROOT), "\n".join(line for line in code.splitlines() if not line.startswith(("!", "%")))


def bare_imports(text: str):
    for node in ast.walk(ast.parse(text)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        yield from (n for n in names if n.split(".")[0] in PARTS)


def test_every_import_uses_the_one_package_name():
    """`import pytorch_impl` would load a second copy of a module that `bgmv2.pytorch_impl` already is."""
    offenders = [f"{path}: {name}" for path, text in python_sources() for name in bare_imports(text)]
    assert not offenders, offenders


def test_the_name_check_sees_a_bare_import():
    assert list(bare_imports("def f():\n    from scripts.media import runner\n")) == ["scripts.media"]
