"""The training loop of both stages: base network first, then MattingRefine end to end (as upstream).

Resumable: a checkpoint holds the model, the optimizer, the step and the history, written atomically
every `save_every` steps and at the end; `resume=True` continues from it, with the same data stream
(sample i of the run depends only on the seed and i). Validation runs on a held-out synthetic set
(another seed) and reports SAD, MSE and gradient error beside the |src - bgr| threshold baseline.
"""
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from bgmv2.parity_tests.metrics import matting_metrics
from bgmv2.pytorch_impl import MattingBase, MattingRefine, load_model
from .folders import FolderMattingSet
from .losses import base_loss, refine_loss
from bgmv2.data.synthetic import SyntheticMattingSet

VALIDATION_SEED_OFFSET = 1_000  # held-out samples come from seeds training never uses
BASELINE_THRESHOLDS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6)


@dataclass
class TrainConfig:
    stage: str = "base"  # "base" or "refine"
    backbone: str = "mobilenetv2"
    checkpoint: str = "checkpoints/base.pth"
    init: Optional[str] = None  # refine stage: the base checkpoint (or any weights) to start from
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
    refine_sample_pixels: int = 16_384
    val_every: int = 200
    val_count: int = 16
    val_size: Tuple[int, int] = (256, 256)
    save_every: int = 100
    log_every: int = 10
    device: str = "cpu"
    channels_last: bool = True
    bf16: bool = False
    history: List[Dict] = field(default_factory=list, repr=False)


def build(config: TrainConfig) -> torch.nn.Module:
    if config.stage == "base":
        model = MattingBase(config.backbone)
    elif config.stage == "refine":
        model = MattingRefine(config.backbone, backbone_scale=0.25, refine_mode="sampling",
                              refine_sample_pixels=config.refine_sample_pixels)
    else:
        raise ValueError(f"stage={config.stage!r}; choose 'base' or 'refine'")
    if config.init:
        start = load_model(config.init, kind="base")
        missing = model.load_state_dict(start.state_dict(), strict=False)
        if missing.unexpected_keys or any(not k.startswith("refiner.") for k in missing.missing_keys):
            raise ValueError(f"--init {config.init} does not fit: {missing}")
    return model


def training_set(config: TrainConfig) -> torch.utils.data.Dataset:
    length = config.steps * config.batch
    h, w = config.size
    if config.fgr_dir:
        return FolderMattingSet(config.fgr_dir, config.pha_dir, config.bgr_dir, h, w, config.seed, length)
    return SyntheticMattingSet(length, h, w, config.seed)


def validation_set(config: TrainConfig) -> Dict[str, torch.Tensor]:
    data = SyntheticMattingSet(config.val_count, *config.val_size, seed=config.seed + VALIDATION_SEED_OFFSET)
    samples = [data[i] for i in range(len(data))]
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def difference_baseline(src: torch.Tensor, bgr: torch.Tensor, threshold: float) -> torch.Tensor:
    """The trivial matte: 1 where any channel of |src - bgr| exceeds `threshold`."""
    return ((src - bgr).abs().amax(dim=1, keepdim=True) > threshold).float()


def baseline_metrics(val: Dict[str, torch.Tensor]) -> Dict:
    """Metrics of the threshold baseline at its best threshold for this set (generous to it)."""
    scored = []
    for threshold in BASELINE_THRESHOLDS:
        pha = difference_baseline(val["src"], val["bgr"], threshold)
        scored.append({**matting_metrics(pha.numpy(), val["pha"].numpy()), "threshold": threshold})
    return min(scored, key=lambda m: m["sad"])


@torch.no_grad()
def predict_alpha(model: torch.nn.Module, src: torch.Tensor, bgr: torch.Tensor, batch: int = 4) -> torch.Tensor:
    was_training = model.training
    model.eval()
    parts = [model(src[i:i + batch], bgr[i:i + batch])[0].float() for i in range(0, len(src), batch)]
    model.train(was_training)
    return torch.cat(parts)


def evaluate(model: torch.nn.Module, val: Dict[str, torch.Tensor], device: str) -> Dict:
    pha = predict_alpha(model, val["src"].to(device), val["bgr"].to(device)).cpu()
    return matting_metrics(pha.numpy(), val["pha"].numpy())


def compute_loss(model, batch, bf16: bool) -> torch.Tensor:
    device_type = batch["src"].device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        outputs = model(batch["src"], batch["bgr"])
    outputs = [o.float() for o in outputs]
    if isinstance(model, MattingRefine):
        return refine_loss(*outputs[:5], batch["pha"], batch["fgr"])
    return base_loss(*outputs[:3], batch["pha"], batch["fgr"])


def save_checkpoint(path: str, model, optimizer, step: int, config: TrainConfig) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    state = {"model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "step": step,
             "config": {k: v for k, v in asdict(config).items() if k != "history"}, "history": config.history}
    from bgmv2 import atomic
    with atomic.writing(path) as temporary:
        torch.save(state, temporary)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up over 50 steps, then cosine decay to 5 % of `lr`."""
    warm = min(1.0, (step + 1) / 50)
    progress = step / max(1, config.steps)
    return config.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(config: TrainConfig, log=print) -> Dict:
    """Run (or resume) training; returns the final validation metrics and the baseline's."""
    torch.manual_seed(config.seed)
    model = build(config).to(config.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start = 0
    if config.resume and os.path.exists(config.checkpoint):
        state = torch.load(config.checkpoint, map_location=config.device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, config.history = state["step"], list(state["history"])
        log(f"resumed from {config.checkpoint} at step {start}")
    val = validation_set(config)
    baseline = baseline_metrics(val)
    log(f"baseline |src - bgr| > {baseline['threshold']}: SAD {baseline['sad']:.3f} MSE {baseline['mse']:.5f} "
        f"grad {baseline['grad']:.3f}")
    data = torch.utils.data.DataLoader(training_set(config), batch_size=config.batch,
                                       sampler=range(start * config.batch, config.steps * config.batch),
                                       num_workers=config.workers, persistent_workers=config.workers > 0)
    model.train()
    began, losses = time.perf_counter(), []
    step = start
    for step, batch in enumerate(data, start=start):
        batch = {k: v.to(config.device) for k, v in batch.items()}
        if config.channels_last:
            batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        loss = compute_loss(model, batch, config.bf16)
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
        if done % config.val_every == 0 or done == config.steps:
            metrics = evaluate(model, val, config.device)
            config.history.append({"step": done, **{f"val_{k}": v for k, v in metrics.items()}})
            log(f"validation at step {done}: SAD {metrics['sad']:.3f} MSE {metrics['mse']:.5f} grad {metrics['grad']:.3f}")
        if done % config.save_every == 0 or done == config.steps:
            save_checkpoint(config.checkpoint, model, optimizer, done, config)
    final = evaluate(model, val, config.device)
    return {"metrics": final, "baseline": baseline, "steps": config.steps, "first_loss": losses[0] if losses else None,
            "last_loss": float(np.mean(losses[-config.log_every:])) if losses else None}


def export_weights(checkpoint: str, destination: str, precision: str = "fp16", metadata: Optional[Dict] = None) -> None:
    """The model of a training checkpoint as an official-layout safetensors file (fp16 or fp32)."""
    from bgmv2.pytorch_impl import save_state_dict
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    dtype = {"fp16": torch.float16, "fp32": torch.float32}[precision]
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_state_dict(state, destination, metadata={k: str(v) for k, v in (metadata or {}).items()})


def main_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def held_out_metrics(model_path: str, count: int, size: Tuple[int, int], seed: int) -> Dict:
    """A trained model against the threshold baseline on `count` synthetic images of another seed."""
    data = SyntheticMattingSet(count, *size, seed=seed)
    samples = [data[i] for i in range(count)]
    val = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    model = load_model(model_path)
    ours = matting_metrics(predict_alpha(model, val["src"], val["bgr"]).numpy(), val["pha"].numpy())
    return {"model": ours, "baseline": baseline_metrics(val), "count": count, "size": list(size), "seed": seed}
