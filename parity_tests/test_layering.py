"""The library layers (converters/, parity_tests/) never import the command-line layer (scripts/)."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def imported_modules(path: str):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def python_files(folder: str):
    for base, _, names in os.walk(os.path.join(ROOT, folder)):
        yield from (os.path.join(base, n) for n in sorted(names) if n.endswith(".py"))


@pytest.mark.parametrize("folder", ["converters", "parity_tests"])
def test_library_layers_do_not_import_scripts(folder):
    offenders = [f"{os.path.relpath(path, ROOT)} imports {name}" for path in python_files(folder)
                 if not os.path.basename(path).startswith("test_")
                 for name in imported_modules(path) if name == "scripts" or name.startswith("scripts.")]
    assert not offenders, offenders


def test_the_check_sees_an_import_of_scripts(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from scripts.training.synthetic import SyntheticMattingSet\n")
    assert list(imported_modules(str(bad))) == ["scripts.training.synthetic"]
