"""`bgmv2 parity` passes on good candidates and fails on broken ones (a perturbed weight, the wrong
refine threshold), reads knobs from what files record, writes its reports, and says why it cannot run."""
import json
import os

import numpy as np
import pytest

from .conftest import SHIPPED
from bgmv2.scripts.cli import main

SMALL = ["--size", "96x128", "--batch", "2", "--refine-sample-pixels", "1024", "--repeat", "1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good and broken candidates made from the shipped weights, and a picture pair."""
    import torch
    from bgmv2 import pytorch_impl
    from bgmv2.parity_tests.matrix import quiet_convert
    from bgmv2.converters.probes import synthetic_probe
    from bgmv2.parity_tests.upstream import write_torchscript_production
    folder = tmp_path_factory.mktemp("parity-command")
    made = {"good": str(folder / "good.pth"), "broken": str(folder / "broken.pth"),
            "upstream": str(folder / "torchscript_mobilenetv2_fp32.pth")}
    quiet_convert(SHIPPED, made["good"])
    state = {k: v.clone() for k, v in pytorch_impl.load_model(SHIPPED).state_dict().items()}
    state["decoder.conv4.bias"][0] += 0.01  # one weight of the alpha head (its bias), perturbed by 0.01
    torch.save(state, made["broken"])
    model = pytorch_impl.load_model(SHIPPED, refine_mode="thresholding", refine_threshold=0.05)
    write_torchscript_production(model, made["upstream"])
    from PIL import Image
    probe = synthetic_probe(120, 160, 1, seed=5)
    for name, array in (("src", probe.src[0]), ("bgr", probe.bgr[0])):
        made[name] = str(folder / f"{name}.png")
        Image.fromarray((array.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)).save(made[name])
    made["folder"] = str(folder)
    return made


def report_of(folder) -> dict:
    with open(os.path.join(folder, "parity.json")) as f:
        return json.load(f)


def test_passes_on_good_candidates_with_reports(files, tmp_path, capsys):
    out = str(tmp_path / "good")
    code = main(["parity", "--reference", SHIPPED, "--candidate", files["good"], "--candidate", files["upstream"],
                 "--candidate", "eager-fp16:" + SHIPPED, "--src", files["src"], "--bgr", files["bgr"],
                 "--refine-sample-pixels", "1024", "--repeat", "1", "--out", out])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = report_of(out)
    assert report["ok"] and len(report["cases"]) == 3
    assert report["probes"] == ["src.png (1x3x120x160)"]
    good, upstream, fp16 = report["cases"]
    assert good["metrics"]["outputs"]["pha"]["max_abs"] == 0.0
    assert all(case["ms_per_frame"] > 0 for case in report["cases"])
    # The upstream production file records thresholding at 0.05 in its attributes: the reference uses it.
    assert upstream["knobs"]["refine_mode"] == "thresholding" and upstream["knobs"]["refine_threshold"] == 0.05
    assert upstream["knob_sources"]["refine_threshold"] == "candidate TorchScript attributes"
    assert upstream["knob_sources"]["refine_sample_pixels"] == "flag"
    assert fp16["precision"] == "fp16" and fp16["tolerance"] == "fp16"
    assert "ms/frame" in printed and "3/3 candidates within tolerance" in printed
    markdown = open(os.path.join(out, "parity.md")).read()
    assert "- command: `bgmv2 parity " in markdown and "| good.pth |" in markdown
    with open(os.path.join(out, "parity.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_fails_on_a_perturbed_weight(files, tmp_path, capsys):
    out = str(tmp_path / "broken")
    code = main(["parity", "--reference", SHIPPED, "--candidate", files["good"], "--candidate", files["broken"],
                 *SMALL, "--out", out])
    printed = capsys.readouterr().out
    assert code == 1
    good, broken = report_of(out)["cases"]
    assert good["ok"] and not broken["ok"]
    assert any(v.startswith("pha") for v in broken["violations"]), broken["violations"]
    assert "FAIL  broken.pth" in printed and "FAILED" in printed
    assert os.path.exists(os.path.join(out, "parity.png"))


@pytest.mark.onnx
def test_reads_the_threshold_of_an_upstream_onnx_file_and_fails_a_contradicting_flag(files, tmp_path, capsys):
    """An upstream-style legacy ONNX export (opset 11, no metadata) made at threshold 0.05: its graph
    says so and it passes; checked with --refine-threshold 0.1 the refined cells differ away from the
    boundary, it fails, and the diagnosis names the threshold the file has."""
    pytest.importorskip("onnxruntime")
    from bgmv2 import pytorch_impl
    from bgmv2.parity_tests.matrix import trace_example
    from bgmv2.parity_tests.upstream import write_legacy_onnx
    path = str(tmp_path / "legacy_thresholding.onnx")
    model = pytorch_impl.load_model(SHIPPED, refine_mode="thresholding", refine_threshold=0.05)
    write_legacy_onnx(model, path, trace_example({}), opset=11)
    common = ["--reference", SHIPPED, "--candidate", path, "--size", "128x128", "--batch", "2", "--repeat", "0"]
    assert main(["parity", *common, "--out", str(tmp_path / "right")]) == 0
    right = report_of(tmp_path / "right")["cases"][0]
    assert right["ok"] and right["knobs"]["refine_threshold"] == 0.05 and right["knobs"]["refine_mode"] == "thresholding"
    assert right["knobs_recorded_in"] == "ONNX graph (inferred)"
    assert any("Greater(err, 0.05)" in note for note in right["notes"])
    assert main(["parity", *common, "--refine-threshold", "0.1", "--out", str(tmp_path / "wrong")]) == 1
    wrong = report_of(tmp_path / "wrong")["cases"][0]
    assert wrong["metrics"]["cells"]["unexplained"] > 0
    assert wrong["diagnosis"]["code"] == "knobs" and "refine_threshold=0.05" in wrong["diagnosis"]["detail"]
    printed = capsys.readouterr().out
    assert "likely cause [knobs]" in printed


def test_zoo_entry(tmp_path, capsys):
    out = str(tmp_path / "zoo")
    code = main(["parity", "--zoo", "bgmv2-mobilenetv2-synthetic", "--formats", "pth", "torchscript-upstream",
                 "eager-fp16", "--size", "96x128", "--repeat", "1", "--out", out])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = report_of(out)
    assert [case["label"] for case in report["cases"]] == ["pth", "eager-fp16", "torchscript-upstream"]
    assert report["reference"]["zoo"] == "bgmv2-mobilenetv2-synthetic"
    assert all(case["what"] for case in report["cases"])


def test_cuda_without_a_gpu_is_an_error_with_the_reason(files, tmp_path, capsys):
    from bgmv2.converters.devices import cuda_unavailable
    reason = cuda_unavailable("torch")
    if reason is None:
        pytest.skip("a CUDA GPU is present")
    code = main(["parity", "--reference", SHIPPED, "--candidate", files["good"], *SMALL, "--device", "cuda",
                 "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 1
    case = report_of(tmp_path)["cases"][0]
    assert case["error"] and reason in case["error"] and "ERROR good.pth" in printed


@pytest.mark.parametrize("argv, message", [
    (["--reference", SHIPPED, "--candidate", "no/such/file.onnx"], "no such file or folder"),
    (["--zoo", "bgmv2-mobilenetv2-synthetic", "--reference", SHIPPED], "leave out --reference"),
    (["--reference", SHIPPED], "at least one --candidate"),
    (["--zoo", "no-such-model"], "no model named"),
    (["--reference", SHIPPED, "--candidate", SHIPPED, "--size", "90x128"], "multiples of 4"),
])
def test_errors_say_what_to_do(argv, message, tmp_path, capsys):
    code = main(["parity", *argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and message in err and "Traceback" not in err


def test_zoo_entry_that_cannot_be_fetched_is_an_error(tmp_path, monkeypatch, capsys):
    """An official entry, offline: the zoo's message (mirror, --from), no traceback, exit 1."""
    from bgmv2 import weights
    monkeypatch.setenv("BGMV2_HOME", str(tmp_path / "cache"))

    def offline(name, *args, **kwargs):
        raise weights.ZooError(f"could not get {name}: Name or service not known\\nOffline? Download it elsewhere "
                               "and use --from PATH or a mirror URL.")
    monkeypatch.setattr(weights, "fetch", offline)
    assert main(["parity", "--zoo", "pytorch-resnet50", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not get pytorch-resnet50") and "--from PATH" in err


def test_sigterm_is_one_line_and_writes_no_report(tmp_path, monkeypatch, capsys):
    """SIGTERM mid-run: exit 143 (Ctrl-C: 130), one line, no report and no temporary left."""
    import signal
    from bgmv2.scripts import cmd_parity

    def killed(args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the run")
    monkeypatch.setattr(cmd_parity, "check", killed)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["parity", "--reference", SHIPPED, "--candidate", SHIPPED, "--out", str(tmp_path)]) == 143
    err = capsys.readouterr().err
    assert err.strip().startswith("terminated (SIGTERM):") and len(err.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == [] and signal.getsignal(signal.SIGTERM) == before


def test_an_interrupted_report_write_leaves_nothing(tmp_path):
    from bgmv2.parity_tests.report import write_atomic

    def interrupted(temporary):
        with open(temporary, "w") as f:
            f.write("half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        write_atomic(str(tmp_path / "parity.json"), interrupted)
    assert os.listdir(tmp_path) == []


def test_a_candidate_that_cannot_run_is_an_error_row(files, tmp_path, capsys):
    """A file that is not a model: an ERROR row with the reason, the others still checked, no traceback."""
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    code = main(["parity", "--reference", SHIPPED, "--candidate", str(junk), "--candidate", files["good"], *SMALL,
                 "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.out + captured.err
    bad, good = report_of(tmp_path / "out")["cases"]
    assert bad["error"] and "junk.onnx" in bad["error"] and good["ok"]


def test_planted_bugs_in_the_report(files, tmp_path, capsys, monkeypatch):
    """--planted checks the planted-bug set too: all caught, each with its diagnosis, in every report
    (two of the set here; parity_tests/test_planted.py checks every one)."""
    from bgmv2.parity_tests import planted
    chosen = [p for p in planted.default_set() if p.name in ("channel-order", "layout")]
    monkeypatch.setattr(planted, "default_set", lambda: chosen)
    out = str(tmp_path / "planted")
    code = main(["parity", "--reference", SHIPPED, "--candidate", files["good"], "--size", "128x128", "--batch", "2",
                 "--refine-sample-pixels", "1072", "--repeat", "0", "--planted", "--out", out])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = report_of(out)
    assert report["ok"] and report["planted"] and not any(case["ok"] for case in report["planted"])
    assert all(case["diagnosis"]["code"] == case["expected_diagnosis"] for case in report["planted"]), \
        [(case["label"], case["diagnosis"]) for case in report["planted"]]
    assert f"planted bugs: {len(report['planted'])}/{len(report['planted'])} caught" in printed
    assert "## Planted bugs (each must fail)" in open(os.path.join(out, "parity.md")).read()
