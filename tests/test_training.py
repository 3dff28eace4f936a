"""A few training steps lower the loss, write a checkpoint that resumes, and export loadable weights."""
import json

import pytest
import torch

from bgmv2.pytorch_impl import MattingRefine, load_model
from bgmv2.scripts.cli import main
from bgmv2.scripts.training.loop import TrainConfig, build, compute_loss, export_weights, train, validation_set


def tiny(tmp_path, **overrides):
    settings = dict(checkpoint=str(tmp_path / "base.pth"), steps=14, batch=2, size=(64, 64), lr=2e-3,
                    workers=0, val_every=100, val_count=2, val_size=(64, 64), save_every=7, log_every=7)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_training_lowers_the_loss_and_resumes(tmp_path):
    config = tiny(tmp_path)
    probe = validation_set(config)  # a fixed held-out batch
    torch.manual_seed(config.seed)
    untrained = build(config).train()
    with torch.no_grad():
        before = float(compute_loss(untrained, probe, False))
    summary = train(config, log=lambda message: None)
    state = torch.load(config.checkpoint, weights_only=True)
    assert state["step"] == 14
    trained = build(tiny(tmp_path)).train()
    trained.load_state_dict(state["model"])
    with torch.no_grad():
        after = float(compute_loss(trained, probe, False))
    assert after < 0.9 * before, (before, after)
    assert summary["last_loss"] < summary["first_loss"]

    more = tiny(tmp_path, steps=21, resume=True)
    messages = []
    train(more, log=messages.append)
    assert any("resumed from" in m and "at step 14" in m for m in messages)
    resumed = torch.load(config.checkpoint, weights_only=True)
    assert resumed["step"] == 21
    assert [h["step"] for h in resumed["history"] if "loss" in h] == [7, 14, 21]


def test_refine_stage_starts_from_base_and_exports(tmp_path):
    base = tiny(tmp_path, steps=2, save_every=2, log_every=1)
    train(base, log=lambda message: None)
    refine = tiny(tmp_path, stage="refine", init=base.checkpoint, checkpoint=str(tmp_path / "refine.pth"),
                  steps=2, size=(64, 64), refine_sample_pixels=16 * 64, save_every=2, log_every=1)
    summary = train(refine, log=lambda message: None)
    assert {"sad", "mse", "grad", "strand_score"} <= set(summary["metrics"])
    exported = tmp_path / "model.safetensors"
    export_weights(refine.checkpoint, str(exported), "fp16", {"command": "test"})
    model = load_model(exported)
    assert isinstance(model, MattingRefine)
    from bgmv2.pytorch_impl.file_kinds import safetensors_metadata
    assert safetensors_metadata(str(exported))["command"] == "test"


def test_train_command(tmp_path, capsys):
    code = main(["train", "base", "--checkpoint", str(tmp_path / "b.pth"), "--steps", "2", "--batch", "2",
                 "--size", "64x64", "--val-count", "2", "--val-size", "64x64", "--workers", "0", "--log-every", "1"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and "baseline" in summary
    with pytest.raises(SystemExit):
        main(["train", "base", "--checkpoint", "x.pth", "--size", "63x64"])


def run_cli(argv, capsys):
    """(exit status, the `error:` lines, stdout) of one in-process `bgmv2` call; argparse's exits included."""
    import re
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    errors = [line for line in captured.err.splitlines() if re.match(r"(bgmv2[\w ]*: )?error: ", line)]
    return code, errors, captured.out


TINY = ["--steps", "2", "--batch", "2", "--size", "64x64", "--val-count", "1", "--val-size", "64x64",
        "--workers", "0", "--log-every", "1", "--threads", "1"]


@pytest.mark.parametrize("argv, status, message", [
    (["train", "base", "--val-every", "0"], 2, "--val-every.*below the least allowed value, 1"),
    (["train", "base", "--batch", "1"], 2, "--batch.*BatchNorm needs two or more.*--batch 2"),
    (["train", "base", "--steps", "0"], 2, "--steps.*below the least allowed value, 1"),
    (["train", "refine", "--thin-weight", "-1"], 2, "--thin-weight.*from 0"),
    (["train", "refine", "--mix", "hair=1"], 2, "--mix.*NAME=WEIGHT"),
    (["train", "refine", "--crop-scale", "0.5"], 2, "--crop-scale.*from 1 to 4"),
    (["train", "base", "--resume"], 1, "no such checkpoint.*drop --resume"),
    (["train", "base", "--mix", "strands=1", "--fgr-dir", "{tmp}", "--pha-dir", "{tmp}", "--bgr-dir", "{tmp}"], 1,
     "--mix and --fgr-dir"),
    (["train", "base", "--fgr-dir", "{tmp}", "--pha-dir", "{tmp}", "--bgr-dir", "{tmp}"], 1, "no images found"),
    (["train", "refine", "--init", "{tmp}/none.pth"], 1, "none.pth"),
])
def test_bad_training_input_is_one_line(tmp_path, capsys, argv, status, message):
    import re
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    checkpoint = tmp_path / "c.pth"
    code, errors, _ = run_cli(argv[:2] + ["--checkpoint", str(checkpoint)] + TINY + argv[2:], capsys)
    assert code == status and len(errors) == 1 and re.search(message, errors[0]), (code, errors)
    assert not checkpoint.exists() and not list(tmp_path.glob("*.partial-*"))


def test_evaluate_and_export_refuse_bad_input(tmp_path, capsys, models):
    import re
    code, errors, _ = run_cli(["train", "evaluate", str(models / "refine.pth"), "--count", "0"], capsys)
    assert code == 2 and len(errors) == 1 and re.search("--count.*below the least allowed value, 1", errors[0])
    code, errors, _ = run_cli(["train", "evaluate", str(models / "refine.pth"), "--sets", "hair"], capsys)
    assert code == 2 and len(errors) == 1 and "--sets" in errors[0]
    out = tmp_path / "x.safetensors"
    code, errors, _ = run_cli(["train", "export", str(models / "refine.pth"), str(out)], capsys)
    assert code == 1 and len(errors) == 1 and re.search("a model's state dict.*bgmv2 convert", errors[0]), errors
    code, errors, _ = run_cli(["train", "export", str(tmp_path / "none.pth"), str(out)], capsys)
    assert code == 1 and len(errors) == 1 and "no such checkpoint" in errors[0]
    assert not out.exists()


def test_evaluate_reports_strand_scores_beside_the_baseline(capsys, models):
    code = main(["train", "evaluate", str(models / "refine.pth"), "--count", "1", "--size", "64x64",
                 "--sets", "synthetic,flyaways", "--threads", "1"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("synthetic", "flyaways"):
        result = report["sets"][name]
        assert {"sad", "mse", "grad", "strand_score", "strand_found"} <= set(result["model"])
        assert "threshold" in result["baseline"] and "strand_score" in result["baseline"]


def test_a_resumed_run_with_another_setup_says_what_differs(tmp_path, capsys):
    from bgmv2.scripts.training.checkpoints import TrainingError
    train(tiny(tmp_path, steps=2, save_every=2), log=lambda message: None)
    before = torch.load(tmp_path / "base.pth", weights_only=True)["step"]
    with pytest.raises(TrainingError, match=r"lr: 0.002 -> 0.001; size: \[64, 64\] -> \[64, 96\]"):
        train(tiny(tmp_path, steps=4, resume=True, lr=1e-3, size=(64, 96)), log=lambda message: None)
    with pytest.raises(TrainingError, match="already at --steps 2"):
        train(tiny(tmp_path, steps=2, resume=True), log=lambda message: None)
    assert torch.load(tmp_path / "base.pth", weights_only=True)["step"] == before
    messages = []
    train(tiny(tmp_path, steps=3, resume=True, val_every=1, log_every=5), log=messages.append)  # free to change
    assert any("at step 2" in m for m in messages) and any("schedule now runs to step 3" in m for m in messages)


def test_refine_trains_on_the_mix_with_weighted_loss_from_a_whole_model(tmp_path, models):
    refine = tiny(tmp_path, stage="refine", init=str(models / "refine.pth"), checkpoint=str(tmp_path / "r.pth"),
                  steps=2, mix="synthetic=1,strands=1,flyaways=1", crop_scale=1.25, thin_weight=8, semi_weight=2,
                  refine_sample_pixels=256, val_data="synthetic,flyaways", val_count=1, save_every=1, log_every=1)
    summary = train(refine, log=lambda message: None)
    assert set(summary["sets"]) == {"synthetic", "flyaways"} and summary["last_loss"] > 0
    state = torch.load(refine.checkpoint, weights_only=True)
    assert state["config"]["thin_weight"] == 8 and state["config"]["mix"] == "synthetic=1,strands=1,flyaways=1"


def doc_commands(text: str):
    """(command argv, runs) for each `bgmv2 ...` line of the bash blocks of a Markdown text (continued lines
    joined); `runs` is True in the blocks right after a `<!-- quick -->` marker."""
    import re
    import shlex
    found = []
    for marker, block in re.findall(r"(<!-- quick[^>]*-->\s*)?```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("bgmv2 "):
                found.append((shlex.split(line)[1:], bool(marker)))
    return found


def test_the_commands_of_docs_training_parse(tmp_path, monkeypatch, capsys):
    """Every `bgmv2` command in docs/training.md parses (tests/test_docs.py runs the quick ones as written)."""
    from pathlib import Path
    from bgmv2.scripts.cli import build_parser
    commands = doc_commands((Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text())
    assert sum(runs for _, runs in commands) >= 4 and sum(not runs for _, runs in commands) >= 3
    parser = build_parser()
    for argv, runs in commands:
        parser.parse_args(argv)


def test_raw_forward_is_the_model_before_its_clamps_and_toward_lets_gradients_back_in(models):
    from bgmv2.data.strands import StrandMattingSet
    from bgmv2.scripts.training.raw_forward import raw_forward, toward
    model = load_model(models / "refine.pth")
    sample = StrandMattingSet(1, 64, 96, seed=1)[0]
    src, bgr = sample["src"][None], sample["bgr"][None]
    with torch.no_grad():
        clamped, raw = model(src, bgr), raw_forward(model, src, bgr)
    for i, (a, b) in enumerate(zip(clamped, raw)):
        assert torch.equal(a, b.clamp(0, 1) if i in (0, 2, 4) else b), i
    values = torch.tensor([-0.5, -0.02, 0.03, -0.2, 0.5, 1.02, 1.2, 0.9, 1.5], requires_grad=True)
    truth = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 1.0, 0.5])
    seen = toward(values, truth, margin=0.05)
    assert torch.allclose(seen, torch.tensor([0.0, 0.03, 0.08, -0.2, 0.5, 0.97, 1.0, 0.85, 1.5]))
    (seen - truth).abs().sum().backward()
    # no pull on clear background / solid foreground; every other value is pulled towards its truth
    assert values.grad.tolist() == [0.0, 1.0, 1.0, -1.0, 0.0, -1.0, 0.0, -1.0, 1.0]
