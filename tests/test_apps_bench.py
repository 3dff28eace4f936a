"""`bgmv2 bench` on a tiny size: both measurements in one run, as a table."""
import re

import pytest
import torch

from bgmv2.pytorch_impl import MattingRefine
from bgmv2.scripts.cli import main


def test_bench_table_has_model_pipeline_and_sequential_rows(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(MattingRefine("mobilenetv2").state_dict(), tmp_path / "refine.pth")
    code = main(["bench", "--model", str(tmp_path / "refine.pth"), "--size", "96x64", "--frames", "4", "--rounds", "2",
                 "--sequential", "--threads", "1", "--device", "cpu", "--output-types", "com", "pha"])
    assert code == 0
    out = capsys.readouterr().out
    assert "96x64, 4 frames, median of 2" in out and "load average" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "fps" not in line.split("|")[2]]
    names = [row.split("|")[1].strip() for row in rows]
    assert names == ["model only (input tensors in memory)",
                     "video pipeline (decode + model + composite + encode, overlapped)",
                     "sequential pipeline (one thread, as upstream)"]
    for row in rows:
        fps = float(row.split("|")[2])
        assert fps > 0
    assert re.search(r"pipeline / model only: \d+\.\d%", out)


def test_bench_min_ratio_and_bad_arguments(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    torch.save(MattingRefine("mobilenetv2").state_dict(), tmp_path / "refine.pth")
    common = ["bench", "--model", str(tmp_path / "refine.pth"), "--size", "64x48", "--threads", "1", "--device", "cpu"]
    from bgmv2.scripts import cmd_bench
    monkeypatch.setattr(cmd_bench, "time_pipeline", lambda *args: 1e6)  # a pipeline far below the bar
    assert main([*common, "--frames", "2", "--rounds", "1", "--min-ratio", "0.5"]) == 3
    assert "below --min-ratio 0.50" in capsys.readouterr().err
    for flag, value in (("--frames", "0"), ("--min-ratio", "100"), ("--warmup", "-1")):
        with pytest.raises(SystemExit) as exit_info:
            main([*common, flag, value])
        assert exit_info.value.code == 2 and f"argument {flag}" in capsys.readouterr().err
