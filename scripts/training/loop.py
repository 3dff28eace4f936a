"""The training loop of both stages: base network first, then MattingRefine end to end (as upstream).

Resumable: a checkpoint holds the model, the optimizer, the step, the configuration and the history,
written atomically every `save_every` steps and at the end; `resume=True` continues from it with the
same data stream (sample i of the run depends only on the seed and i), and refuses when the run asks
for a different training (`checkpoints.check_resume`). Validation runs on held-out generated sets
(another seed) and reports SAD, MSE, gradient error and the strand figures beside the |src - bgr|
threshold baseline.

Data: `SyntheticMattingSet` by default (how the first shipped model was trained); `mix` names a
`bgmv2.data.mix` of generated sets cut around their fine detail; folders of a published dataset
otherwise. The refine stage can weight thin structures and semi-transparent pixels in its loss
(`thin_weight`, `semi_weight`, see losses.py) and can start from a whole MattingRefine (`init`).
"""
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from bgmv2.pytorch_impl import MattingBase, MattingRefine, load_model
from bgmv2.data.synthetic import SyntheticMattingSet
from .checkpoints import TrainingError, check_resume, load_checkpoint, save_checkpoint
from .evaluation import (BASELINE_THRESHOLDS, all_metrics, baseline_metrics, difference_baseline,  # noqa: F401
                         generated_set, predict_alpha)
from .folders import FolderMattingSet
from .losses import base_loss, refine_loss
from .raw_forward import raw_forward

VALIDATION_SEED_OFFSET = 1_000  # held-out samples come from seeds training never uses
MIN_BATCH = 2  # BatchNorm in training mode needs two values per channel (the ASPP's pooled branch has one per image)


@dataclass
class TrainConfig:
    stage: str = "base"  # "base" or "refine"
    backbone: str = "mobilenetv2"
    checkpoint: str = "checkpoints/base.pth"
    init: Optional[str] = None  # weights to start from: a base checkpoint, or (refine) a whole MattingRefine
    resume: bool = False
    steps: int = 1000
    batch: int = 8
    size: Tuple[int, int] = (128, 128)  # height, width of training crops
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    workers: int = 1
    fgr_dir: Optional[str] = None  # folder dataset (VideoMatte240K / PhotoMatte85 layout); synthetic if None
    pha_dir: Optional[str] = None
    bgr_dir: Optional[str] = None
    mix: Optional[str] = None  # e.g. "synthetic=0.4,strands=0.6" (bgmv2.data.mix); None: SyntheticMattingSet
    crop_scale: float = 1.0  # samples are made this much larger, then cut around their detail (mix, folders)
    reuse: int = 1  # mix: each generated sample gives this many crops
    thin_weight: float = 0.0  # refine loss: extra weight of thin structures (losses.detail_weights)
    semi_weight: float = 0.0  # refine loss: extra weight of semi-transparent pixels
    freeze_bn: bool = False  # BatchNorm keeps its running statistics (training behaves as inference)
    refiner_lr_scale: float = 1.0  # the refiner's learning rate is `lr` times this
    unclamped: bool = False  # refine loss: gradients past the alpha/error clamp (raw_forward.py)
    freeze_base: bool = False  # refine: train the refiner alone (the base network and its error map stay)
    refine_sample_pixels: int = 16_384
    val_every: int = 200
    val_count: int = 16
    val_size: Tuple[int, int] = (256, 256)
    val_data: str = "synthetic"  # held-out sets, comma-separated: synthetic, strands, flyaways
    save_every: int = 100
    log_every: int = 10
    device: str = "cpu"
    channels_last: bool = True
    bf16: bool = False
    history: List[Dict] = field(default_factory=list, repr=False)


def check_config(config: TrainConfig) -> None:
    """TrainingError, with the fix, for settings no run can use."""
    for name, low in (("steps", 1), ("val_every", 1), ("save_every", 1), ("log_every", 1), ("val_count", 1),
                      ("batch", MIN_BATCH)):
        if getattr(config, name) < low:
            why = " (BatchNorm needs two images per step to train)" if name == "batch" else ""
            raise TrainingError(f"--{name.replace('_', '-')} {getattr(config, name)}: give {low} or more{why}")
    if config.stage not in ("base", "refine"):
        raise TrainingError(f"stage={config.stage!r}; choose 'base' or 'refine'")


def build(config: TrainConfig) -> torch.nn.Module:
    if config.stage == "base":
        model = MattingBase(config.backbone)
    elif config.stage == "refine":
        model = MattingRefine(config.backbone, backbone_scale=0.25, refine_mode="sampling",
                              refine_sample_pixels=config.refine_sample_pixels)
    else:
        raise TrainingError(f"stage={config.stage!r}; choose 'base' or 'refine'")
    if config.init:
        start = load_model(config.init, kind="base" if config.stage == "base" else None)
        missing = model.load_state_dict(start.state_dict(), strict=False)
        if missing.unexpected_keys or any(not k.startswith("refiner.") for k in missing.missing_keys):
            raise TrainingError(f"--init {config.init} does not fit a {config.backbone} {config.stage} model: "
                                f"{len(missing.missing_keys)} missing, {len(missing.unexpected_keys)} unexpected "
                                "weights; give weights of the same backbone")
    return model


def training_set(config: TrainConfig) -> torch.utils.data.Dataset:
    from bgmv2.data.crops import DetailCrops, scaled
    length = config.steps * config.batch
    h, w = config.size
    if config.fgr_dir:
        ch, cw = scaled(config.size, config.crop_scale)
        folders = FolderMattingSet(config.fgr_dir, config.pha_dir, config.bgr_dir, ch, cw, config.seed, length)
        return DetailCrops(folders, h, w, config.seed) if (ch, cw) != (h, w) else folders
    if config.mix:
        from bgmv2.data.mix import MattingMix
        return MattingMix(length, h, w, config.seed, config.mix, config.crop_scale, reuse=config.reuse)
    return SyntheticMattingSet(length, h, w, config.seed)


def validation_sets(config: TrainConfig) -> Dict[str, Dict[str, torch.Tensor]]:
    """name -> stacked held-out samples (seed + VALIDATION_SEED_OFFSET), strands marked."""
    names = [n.strip() for n in config.val_data.split(",") if n.strip()]
    return {name: generated_set(name, config.val_count, config.val_size, config.seed + VALIDATION_SEED_OFFSET)
            for name in names}


def validation_set(config: TrainConfig) -> Dict[str, torch.Tensor]:
    """All validation sets as one batch."""
    sets = list(validation_sets(config).values())
    return {k: torch.cat([s[k] for s in sets]) for k in sets[0]}


def evaluate(model: torch.nn.Module, val: Dict[str, torch.Tensor], device: str) -> Dict:
    pha = predict_alpha(model, val["src"].to(device), val["bgr"].to(device)).cpu()
    return all_metrics(pha, val)


def compute_loss(model, batch, bf16: bool, thin: float = 0.0, semi: float = 0.0, unclamped: bool = False
                 ) -> torch.Tensor:
    """The stage's loss on one batch; `unclamped`: the refine losses see alpha and error past their clamp
    where that points back towards the truth (raw_forward.toward)."""
    device_type = batch["src"].device.type
    refine = isinstance(model, MattingRefine)
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        outputs = raw_forward(model, batch["src"], batch["bgr"]) if refine and unclamped else \
            model(batch["src"], batch["bgr"])
    outputs = [o.float() for o in outputs]
    if refine:
        return refine_loss(*outputs[:5], batch["pha"], batch["fgr"], thin, semi, unclamped)
    return base_loss(*outputs[:3], batch["pha"], batch["fgr"])


def set_training(model: torch.nn.Module, config: TrainConfig) -> None:
    """Training mode, with BatchNorm on its running statistics when `freeze_bn` (small batches, fine-tuning)."""
    model.train()
    for name, module in model.named_modules():
        frozen = config.freeze_base and name and not name.startswith("refiner")
        if frozen or (config.freeze_bn and isinstance(module, torch.nn.modules.batchnorm._BatchNorm)):
            module.eval()


def parameter_groups(model: torch.nn.Module, config: TrainConfig) -> List[Dict]:
    """The refiner's weights in a group of their own (learning rate times `refiner_lr_scale`); with
    `freeze_base`, the refiner's alone (the rest stops taking gradients)."""
    refiner = [p for n, p in model.named_parameters() if n.startswith("refiner.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("refiner.")]
    if config.freeze_base:
        if not refiner:
            raise TrainingError("--freeze-base leaves nothing to train in the base stage: use it with `train refine`")
        for parameter in rest:
            parameter.requires_grad_(False)
        return [{"params": refiner, "scale": config.refiner_lr_scale}]
    groups = [{"params": rest, "scale": 1.0}]
    if refiner:
        groups.append({"params": refiner, "scale": config.refiner_lr_scale})
    return groups


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up over 50 steps, then cosine decay to 5 % of `lr`."""
    warm = min(1.0, (step + 1) / 50)
    progress = step / max(1, config.steps)
    return config.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def describe(metrics: Dict) -> str:
    text = f"SAD {metrics['sad']:.3f} MSE {metrics['mse']:.5f} grad {metrics['grad']:.3f}"
    if "strand_score" in metrics:
        text += f" strands {100 * metrics['strand_score']:.1f}% found {100 * metrics['strand_found']:.1f}%"
    return text


def validate(model, sets: Dict, config: TrainConfig, done: int, log) -> Dict:
    results = {}
    for name, val in sets.items():
        metrics = evaluate(model, val, config.device)
        results[name] = metrics
        config.history.append({"step": done, "set": name, **{f"val_{k}": v for k, v in metrics.items()}})
        log(f"validation at step {done} ({name}): {describe(metrics)}")
    return results


def resume_from(config: TrainConfig, model, optimizer, log) -> int:
    """The step to continue from (0 for a new run)."""
    if not config.resume:
        return 0
    state = load_checkpoint(config.checkpoint, config.device)
    current = {k: v for k, v in asdict(config).items() if k != "history"}
    check_resume(state, current, config.checkpoint)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    config.history = list(state["history"])
    log(f"resumed from {config.checkpoint} at step {state['step']}")
    if state["config"].get("steps") != config.steps:
        log(f"note: --steps {state['config'].get('steps')} -> {config.steps}: the learning-rate schedule now runs "
            f"to step {config.steps}")
    return state["step"]


def train(config: TrainConfig, log=print) -> Dict:
    """Run (or resume) training; returns the final validation metrics and the baseline's."""
    check_config(config)
    torch.manual_seed(config.seed)
    model = build(replace(config, init=None) if config.resume else config).to(config.device)  # resume: weights from the checkpoint
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(parameter_groups(model, config), lr=config.lr, weight_decay=config.weight_decay)
    start = resume_from(config, model, optimizer, log)
    data_set = training_set(config)
    sets = validation_sets(config)
    baselines = {name: baseline_metrics(val) for name, val in sets.items()}
    for name, baseline in baselines.items():
        log(f"baseline ({name}) |src - bgr| > {baseline['threshold']}: {describe(baseline)}")
    data = torch.utils.data.DataLoader(data_set, batch_size=config.batch,
                                       sampler=range(start * config.batch, config.steps * config.batch),
                                       num_workers=config.workers, persistent_workers=config.workers > 0)
    set_training(model, config)
    began, losses = time.perf_counter(), []
    settings = asdict(config)
    for step, batch in enumerate(data, start=start):
        batch = {k: v.to(config.device) for k, v in batch.items()}
        if config.channels_last:
            batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step) * group.get("scale", 1.0)
        loss = compute_loss(model, batch, config.bf16, config.thin_weight, config.semi_weight, config.unclamped)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            rate = (done - start) / (time.perf_counter() - began)
            eta = (config.steps - done) / max(rate, 1e-9)
            log(f"step {done}/{config.steps} loss {np.mean(losses[-config.log_every:]):.4f} "
                f"{rate:.2f} steps/s ETA {eta / 60:.1f} min")
            config.history.append({"step": done, "loss": float(np.mean(losses[-config.log_every:]))})
        if done % config.val_every == 0 and done != config.steps:
            validate(model, sets, config, done, log)
            set_training(model, config)
        if done % config.save_every == 0 and done != config.steps:
            settings["history"] = config.history
            save_checkpoint(config.checkpoint, model, optimizer, done, settings)
    final = validate(model, sets, config, config.steps, log)
    first = next(iter(final))
    settings["history"] = config.history
    save_checkpoint(config.checkpoint, model, optimizer, config.steps, settings)
    return {"metrics": final[first], "baseline": baselines[first], "sets": {n: {"model": final[n], "baseline": baselines[n]}
                                                                             for n in final},
            "steps": config.steps, "first_loss": losses[0] if losses else None,
            "last_loss": float(np.mean(losses[-config.log_every:])) if losses else None}


def export_weights(checkpoint: str, destination: str, precision: str = "fp16", metadata: Optional[Dict] = None) -> None:
    """The model of a training checkpoint as an official-layout safetensors file (fp16 or fp32)."""
    from bgmv2.pytorch_impl import save_state_dict
    state = load_checkpoint(checkpoint)["model"]
    dtype = {"fp16": torch.float16, "fp32": torch.float32}[precision]
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_state_dict(state, destination, metadata={k: str(v) for k, v in (metadata or {}).items()})


def main_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
