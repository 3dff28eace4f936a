"""The `fast` backend: the fastest way to run a PyTorch model on this device that gives eager's matte.

    from bgmv2.scripts.fast import fast_runner
    runner = fast_runner("weights/bgmv2_mobilenetv2_synthetic_fp16.safetensors", device="cpu")
    outputs = runner(runner.prepare(frame), runner.prepare(background))   # {"pha", "fgr", "err", "ref"}

From the shell: `--backend fast` in `bgmv2 images|video|webcam|bench|demo`. What it tries
(`candidates`): on CUDA the whole frame as a CUDA graph in fp16 (or bf16), with and without Inductor;
on a CPU the lean refiner (`lean`: only the windows its patches need) with the base network in
OpenVINO or PyTorch (bf16 where the CPU has it, or fp32), the compiled model, and ONNX Runtime. Each is checked
against eager on the first frames (`check`), timed on first use and the winner cached per model,
shape, device and versions (`cache`); anything that fails or differs falls back to eager, said in one
line (`runner.FastRunner`).
"""
from typing import Dict, Optional, Union

import torch

__all__ = ["fast_runner", "FastRunner"]


def __getattr__(name):
    if name == "FastRunner":
        from .runner import FastRunner
        return FastRunner
    raise AttributeError(name)


def state_digest(model: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers (for models given as objects, not files)."""
    import hashlib
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().float().numpy().tobytes())  # C order whatever the strides
    return digest.hexdigest()


def knobs_of(model: torch.nn.Module) -> Dict[str, object]:
    refiner = getattr(model, "refiner", None)
    if refiner is None:
        return {"kind": "base"}
    return {"backbone_scale": model.backbone_scale, "refine_mode": refiner.mode,
            "refine_sample_pixels": refiner.sample_pixels, "refine_threshold": refiner.threshold,
            "refine_prevent_oversampling": refiner.prevent_oversampling}


def unsupported_precision(device: torch.device, precision: Optional[str]) -> Optional[str]:
    """Why `precision` cannot run fast on `device` (None where it can)."""
    from .candidates import cpu_bf16_unsupported
    if device.type == "cpu":
        if precision == "fp16":
            return ("the fast path on a CPU computes in bf16 (where the CPU has it) or fp32, not fp16; "
                    "leave --precision out, or use --backend torch to run fp16 eager")
        if precision == "bf16" and cpu_bf16_unsupported():
            return f"--precision bf16: {cpu_bf16_unsupported()}; leave --precision out (fast then picks fp32)"
    elif device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp16"
    else:
        return f"the fast path runs on cpu or cuda, not {device.type}; use --backend torch there"
    return None


def fast_runner(model: Union[str, torch.nn.Module], device: Union[str, torch.device, None] = "auto",
                precision: Optional[str] = None, *, knobs: Optional[Dict[str, object]] = None,
                kind: Optional[str] = None, backbone: Optional[str] = None, cache=None, check_frames: int = 2,
                candidates=None, log=None, timed_calls: Optional[int] = None):
    """A runner (scripts.media.runner protocol) on the fastest checked way to run `model` on `device`.

    `model`: a `.pth` / `.safetensors` file or zoo name, or a MattingRefine / MattingBase (fp32).
    `precision`: None lets the fast path choose (fp16 on CUDA; bf16 on CPUs with native bf16, else
    fp32); `fp16`/`bf16`/`fp32` restrict it. `knobs`: model options (backbone_scale, refine_mode, ...)
    when `model` is a file. `candidates`: replaces the device's list (tests, experiments).
    Raises `bgmv2.scripts.media.errors.MediaError` for a device, precision or file the fast path cannot take.
    """
    import os
    from bgmv2.scripts.media.errors import MediaError
    from bgmv2.scripts.media.runner import eager_runner, resolve_device, detect_format
    from . import candidates as cands
    from .cache import file_sha256, model_id
    from .runner import FastRunner, say

    device = resolve_device(str(device) if device is not None else "auto")
    if precision == "auto":
        precision = None
    problem = unsupported_precision(device, precision)
    if problem:
        raise MediaError(problem)
    knobs = dict(knobs or {})
    if isinstance(model, torch.nn.Module):
        net, source, description = model.to(device).eval(), None, f"{type(model).__name__}: fast"
        if next(net.parameters()).dtype != torch.float32:
            raise MediaError("fast_runner takes a float32 model (it compares candidates with float32 eager); "
                             "pass model.float()")
        net = net.to(memory_format=torch.channels_last)
        digest = model_id(state_digest(net), knobs_of(net))
    else:
        source = str(model)
        if not os.path.exists(source):
            from bgmv2.converters import ConversionError
            from bgmv2.converters.resolve import resolve_model
            try:
                source = resolve_model(source)
            except ConversionError as error:
                raise MediaError(str(error)) from None
        fmt = detect_format(source)
        if fmt not in ("pth", "safetensors"):
            raise MediaError(f"{source} is a {fmt} file; the fast path takes PyTorch weights (.pth, .safetensors), "
                             "which it can compile and check against eager. Use --backend auto for this file, "
                             "or give the weights it was converted from")
        eager = eager_runner(source, kind, backbone, knobs, device, torch.float32)
        net, description = eager.model, eager.description + ", fast backend"
        digest = model_id(file_sha256(source), {**knobs_of(net), "kind": kind or ""})
    why_none = "no faster way to run this model here"
    if candidates is None:
        candidates = cands.for_device(net, device, precision, source, knobs, digest)
        if source is None:
            candidates = [c for c in candidates if c.name != "onnxruntime"]  # exported from a file only
        refiner = getattr(net, "refiner", None)
        if not candidates and refiner is not None and refiner.mode == "thresholding":
            why_none = ("thresholding refines a data-dependent number of cells (nothing to capture ahead of "
                        "time on this device); refine-mode sampling runs fast")
    from .runner import TIMED_CALLS
    return FastRunner(net, device, candidates, digest, precision, cache=cache, check_frames=check_frames,
                      log=log or say, description=description, why_none=why_none,
                      timed_calls=timed_calls or TIMED_CALLS)


def from_args(path: str, kind, backbone, knobs, device: torch.device, precision: str):
    """For `bgmv2.scripts.media.runner.load_runner`: --precision fp32 (the default) lets the fast path choose."""
    return fast_runner(path, device, None if precision == "fp32" else precision, knobs=knobs, kind=kind,
                       backbone=backbone)
