"""The `bgmv2` command: help, version, and `inspect` on good and bad files (as users run it)."""
import subprocess
import sys

import pytest
import torch

from bgmv2.pytorch_impl import MattingRefine, script_model
from bgmv2.scripts.cli import main


def bgmv2(*args):
    return subprocess.run([sys.executable, "-m", "bgmv2.scripts.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_and_version():
    result = bgmv2("--help")
    assert result.returncode == 0 and "inspect" in result.stdout
    result = bgmv2("--version")
    assert result.returncode == 0 and result.stdout.startswith("bgmv2 ")


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_help_does_not_import_torch():
    code = "import sys; from bgmv2.scripts.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().endswith("False")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model = MattingRefine("mobilenetv2").eval()
    torch.save(model.state_dict(), folder / "state.pth")
    script_model(model).save(str(folder / "script.pth"))
    (folder / "junk.pth").write_bytes(b"not a model at all" * 5)
    return folder


def test_inspect_state_dict_and_run(files, capsys):
    assert main(["inspect", str(files / "state.pth"), "--run", "61x93"]) == 0
    out = capsys.readouterr().out
    assert "PyTorch state dict (zip)" in out and "MattingRefine (mobilenetv2, refiner kernel 3)" in out
    assert "loads:     yes" in out and "run:       61x93 on cpu" in out


def test_inspect_torchscript_shows_knobs(files, capsys):
    assert main(["inspect", str(files / "script.pth")]) == 0
    out = capsys.readouterr().out
    assert "TorchScript archive" in out and "refine_mode: sampling" in out


def test_inspect_bad_file_is_an_error_not_a_traceback(files):
    result = bgmv2("inspect", str(files / "junk.pth"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "not a PyTorch checkpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_bad_run_size(files, capsys):
    for size in ("big", "0x0", "4x0", "720x", "1x2x3"):
        with pytest.raises(SystemExit) as exit_info:
            main(["inspect", str(files / "state.pth"), "--run", size])
        assert exit_info.value.code == 2 and "WIDTHxHEIGHT, e.g. 1280x720" in capsys.readouterr().err


def test_inspect_missing_file_and_zoo_names(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nothing.pth")]) == 1
    assert "nothing.pth: no such file or folder" in capsys.readouterr().err
    assert main(["inspect", "bgmv2-mobilenetv2-synthetic"]) == 0  # the shipped zoo model, by name
    assert "MattingRefine (mobilenetv2" in capsys.readouterr().out


def test_inspect_shows_the_dtypes_the_file_stores(capsys):
    assert main(["inspect", "bgmv2-mobilenetv2-synthetic"]) == 0
    out = capsys.readouterr().out
    assert "dtypes in the file float16, int64" in out and "float32" not in out
