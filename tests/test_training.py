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
