"""Measurement pages: `--write PAGE` keeps what a benchmark printed under one header (command, date,
machine, load; "do not edit by hand"), and every such page in docs/ carries that header."""
import re
from pathlib import Path

import pytest

from bgmv2.scripts import page
from bgmv2.scripts.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"
HEADER = re.compile(r"^# .+\n\nWritten by `[^`]+` on [^,]+, .+, load average .+ before and .+ after; "
                    r"do not edit by hand: rerun the command\.\n")


def test_recording_prints_and_writes_the_page(tmp_path, capsys):
    with page.recording(str(tmp_path / "p.md"), "Title", "python benchmarks/x.py --write p.md"):
        print("| a | b |")
    assert "| a | b |" in capsys.readouterr().out
    text = (tmp_path / "p.md").read_text()
    assert HEADER.match(text) and text.endswith("\n| a | b |\n")


def test_a_failed_run_writes_no_page(tmp_path):
    with pytest.raises(RuntimeError):
        with page.recording(str(tmp_path / "p.md"), "Title", "x"):
            print("half")
            raise RuntimeError("stopped")
    assert not (tmp_path / "p.md").exists()


def test_bench_writes_its_page(tmp_path, capsys):
    target = tmp_path / "speed.md"
    args = ["bench", "--size", "64x64", "--frames", "2", "--rounds", "1", "--no-pipeline", "--threads", "1",
            "--write", str(target)]
    assert main(args) == 0
    text = target.read_text()
    assert HEADER.match(text), text[:300]
    assert f"`bgmv2 bench --size 64x64 --frames 2 --rounds 1 --no-pipeline --threads 1 --write {target}`" in text
    assert "| model only (input tensors in memory) |" in text


def test_every_written_page_in_docs_has_the_header():
    pages = [p for p in DOCS.glob("*.md") if "\nWritten by `" in p.read_text()[:2000]]
    assert len(pages) >= 7, pages  # speed-pytorch, -tensorflow, -onnx, -onnx-shipped, -fast, -video, -batch
    for p in pages:
        if p.name in ("deployment.md", "browser.md", "parity.md", "parity-matrix.md"):  # their own headers
            continue
        assert HEADER.match(p.read_text()), p.name


def test_the_benchmarks_take_write():
    """Each benchmark that owns a page takes --write PAGE (the scripts are read, not run: they measure for minutes)."""
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    for name in ("pytorch_speed.py", "tensorflow_speed.py", "onnx_speed.py", "batch_throughput.py"):
        source = (root / name).read_text()
        assert "page.recording(args.write" in source and "--write" in source, name
    from benchmarks.pytorch_speed import parse_args
    assert parse_args(["--quick", "--write", "docs/speed-pytorch.md"]).write == "docs/speed-pytorch.md"
