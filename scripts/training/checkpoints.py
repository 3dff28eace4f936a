"""Training checkpoints: written atomically, read with clear errors, resumed only with the same setup.

A checkpoint holds the model, the optimizer, the step, the configuration and the history. A run that
resumes must ask for the same training as the run that wrote it (stage, backbone, data, sizes, learning
rate, loss weights, ...): otherwise it says what differs and stops, instead of mixing two setups in
one model. `steps` may grow (the schedule is then stretched from the step reached: said in the log);
logging, saving, validation, workers, threads and device may change freely.
"""
import os
from typing import Dict, List, Mapping

import torch

from bgmv2 import atomic

# Settings that do not change what is learned; everything else must match to resume.
FREE_TO_CHANGE = {"checkpoint", "resume", "steps", "val_every", "val_count", "val_size", "val_data", "save_every",
                  "log_every", "workers", "device", "threads", "history"}


class TrainingError(ValueError):
    """A training request that cannot be carried out; the message says what and what to do."""


def save_checkpoint(path: str, model, optimizer, step: int, config: Mapping) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    state = {"model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "step": step,
             "config": {k: v for k, v in config.items() if k != "history"}, "history": config["history"]}
    with atomic.writing(path) as temporary:
        torch.save(state, temporary)


def load_checkpoint(path: str, device: str = "cpu") -> Dict:
    """A training checkpoint's contents; TrainingError when `path` is missing or is something else."""
    if not os.path.exists(path):
        raise TrainingError(f"{path}: no such checkpoint (give the --checkpoint of an earlier run, or drop --resume "
                            "to start a new one)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same one line
        reason = " ".join(str(error).split())[:160]
        raise TrainingError(f"{path}: not a readable training checkpoint ({reason})") from None
    if not isinstance(state, dict) or not {"model", "step", "config"} <= set(state):
        plain = isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())
        what = "a model's state dict" if plain else "not a training checkpoint"
        raise TrainingError(f"{path} is {what} (no model, step and config entries): `bgmv2 train` writes "
                            "checkpoints with --checkpoint; to change a weights file's format or precision use "
                            f"`bgmv2 convert {path} OUT.safetensors --precision fp16`")
    return state


def config_differences(saved: Mapping, current: Mapping) -> List[str]:
    """'name: saved -> current' for each setting that must match but does not."""
    differences = []
    for key in sorted(set(saved) | set(current)):
        if key in FREE_TO_CHANGE:
            continue
        before, after = saved.get(key, "(not set)"), current.get(key, "(not set)")
        if isinstance(before, (list, tuple)) and isinstance(after, (list, tuple)):
            before, after = list(before), list(after)
        if before != after:
            differences.append(f"{key}: {before} -> {after}")
    return differences


def check_resume(state: Mapping, current: Mapping, path: str) -> None:
    """TrainingError naming every difference between the checkpoint's setup and this run's."""
    differences = config_differences(state["config"], current)
    if differences:
        raise TrainingError(f"--resume {path}: this run differs from the one that wrote the checkpoint in "
                            f"{'; '.join(differences)}; resume with the same options, or give a new --checkpoint "
                            "(with --init to start from it)")
    if current["steps"] < state["step"]:
        raise TrainingError(f"--resume {path}: the checkpoint is at step {state['step']}, past --steps "
                            f"{current['steps']}; give --steps above {state['step']} to train further")
    if current["steps"] == state["step"]:
        raise TrainingError(f"--resume {path}: the checkpoint is already at --steps {current['steps']}; give more "
                            "--steps to train further, or export it with `bgmv2 train export`")
