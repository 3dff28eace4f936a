"""One install name: the wheel holds one top-level package, `bgmv2`, with every part beneath it, and the
toolkit works from a folder that has its own `scripts` and `weights` packages."""
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("pytorch_impl", "tensorflow_impl", "converters", "parity_tests", "weights", "scripts")


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_of_the_tree_is_listed_under_bgmv2():
    setuptools = pyproject()["tool"]["setuptools"]
    assert {f"bgmv2.{part}": part for part in PARTS}.items() <= setuptools["package-dir"].items()
    found = {"bgmv2"} | {"bgmv2." + ".".join(p.parent.relative_to(ROOT / "bgmv2").parts)
                         for p in (ROOT / "bgmv2").glob("**/__init__.py") if p.parent != ROOT / "bgmv2"}
    found |= {"bgmv2." + ".".join(p.parent.relative_to(ROOT).parts)
              for part in PARTS for p in (ROOT / part).glob("**/__init__.py")}
    assert sorted(found) == sorted(setuptools["packages"])
    assert pyproject()["project"]["scripts"] == {"bgmv2": "bgmv2.scripts.cli:main"}


@pytest.mark.slow  # builds the wheel: half a minute
def test_the_wheel_installs_one_top_level_name(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True, timeout=600)
    wheel, = tmp_path.glob("bgmv2_zoo-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"bgmv2"}, tops
    for needed in ("bgmv2/pytorch_impl/model.py", "bgmv2/converters/fast/lean.py", "bgmv2/scripts/media/sample/src.jpg",
                   "bgmv2/weights/registry.json", "bgmv2/weights/bgmv2_mobilenetv2_synthetic_fp16.safetensors"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith("bgmv2/tests") or "/test_" in n]  # parity's tests stay out


@pytest.fixture
def users_folder(tmp_path):
    """A user's project with packages named `scripts` and `weights` of its own (that would shadow ours)."""
    for name in ("scripts", "weights", "converters"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} was imported')\n")
    return tmp_path


def test_demo_and_the_python_api_work_beside_a_users_own_scripts_and_weights(users_folder):
    env = {**os.environ, "PYTHONPATH": str(users_folder)}  # the user's packages come first on the path
    bgmv2 = str(Path(sys.executable).with_name("bgmv2"))
    demo = subprocess.run([bgmv2, "demo", "-o", "out"], cwd=users_folder, env=env, capture_output=True, text=True,
                          timeout=300)
    assert demo.returncode == 0 and (users_folder / "out" / "preview.png").exists(), demo.stderr
    code = ("import numpy as np, bgmv2\n"
            "model = bgmv2.load_model()\n"
            "src = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32); bgr = src * 0.9\n"
            "pha = bgmv2.matte(model, src, bgr)[0]\n"
            "from bgmv2.converters.resolve import resolve_model\n"
            "out = bgmv2.load(resolve_model(None))(src, bgr)\n"
            "print(tuple(pha.shape), sorted(out))")
    api = subprocess.run([sys.executable, "-c", code], cwd=users_folder, env=env, capture_output=True, text=True,
                         timeout=300)
    assert api.returncode == 0, api.stderr
    assert "(1, 1, 64, 96) ['err_sm', 'fgr', 'fgr_sm', 'pha', 'pha_sm', 'ref_sm']" in api.stdout
