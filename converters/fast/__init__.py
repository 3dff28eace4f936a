"""The `fast` runtime: the fastest way to run a model's weights on this device that gives eager's matte.

    from bgmv2 import converters
    runner = converters.load("model.safetensors", runtime="fast", device="cpu")   # any file with weights
    outputs = runner(src, bgr)                        # the one Runner: {"pha", "fgr", "pha_sm", ...}
    runner.chosen                                     # input shape -> what runs it

or, for a model object, `fast_runner(model, device)`. From the shell: `--backend fast` in `bgmv2
images|video|webcam|bench|demo`. What it tries (`candidates`): on CUDA the whole frame as a CUDA graph
in fp16 (or bf16), with and without Inductor; on a CPU the lean refiner (`lean`: only the windows its
patches need) with the base network in OpenVINO or PyTorch (bf16 where the CPU has it, or fp32), the
compiled model, and ONNX Runtime. Each is checked against eager on the first frames (`check`), timed
on first use and the winner cached per model, shape, device and versions (`cache`); anything that
fails or differs falls back to eager, said in one line (`runner.FastRunner`).
"""
import os
from typing import Dict, Optional, Union

__all__ = ["fast_runner", "FastRunner", "load_other"]

NAME = "fast"
DESCRIPTION = ("the fastest checked way to run the weights here: CUDA graphs on GPUs; the lean refiner with "
               "OpenVINO or PyTorch on CPUs; eager where nothing beats it")
RUNS = None  # every format whose weights `converters.read` reads (state dicts, TorchScript, ONNX from PyTorch, ...)


def available() -> Optional[str]:
    return None  # PyTorch is all it needs; each candidate drops itself where its runtime is missing


def __getattr__(name):
    if name == "FastRunner":
        from .runner import FastRunner
        return FastRunner
    raise AttributeError(name)


def state_digest(model) -> str:
    """sha256 of a module's parameters and buffers (for models given as objects, not files)."""
    import hashlib
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().float().numpy().tobytes())  # C order whatever the strides
    return digest.hexdigest()


def knobs_of(model) -> Dict[str, object]:
    refiner = getattr(model, "refiner", None)
    if refiner is None:
        return {"kind": "base"}
    return {"backbone_scale": model.backbone_scale, "refine_mode": refiner.mode,
            "refine_sample_pixels": refiner.sample_pixels, "refine_threshold": refiner.threshold,
            "refine_prevent_oversampling": refiner.prevent_oversampling}


def unsupported_precision(device, precision: Optional[str]) -> Optional[str]:
    """Why `precision` cannot run fast on `device` (a torch.device; None where it can)."""
    import torch
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


def load_other(path, fmt: str, knobs: Optional[Dict[str, object]] = None, device: str = "cpu",
               precision: Optional[str] = None, kind: Optional[str] = None, threads: Optional[int] = None,
               **options):
    """The fast runner of any file holding the weights (`converters.read`): they are run in PyTorch
    eager as the reference, and the candidates are built from them. `kind="base"` runs only the base
    network; `threads`: PyTorch's thread count (the candidates use it); `options` go to `fast_runner`
    (cache, check_frames, candidates, log, timed_calls, frames)."""
    if threads:
        import torch
        torch.set_num_threads(int(threads))
    from bgmv2.converters import api
    from bgmv2.converters.errors import ConversionError
    from bgmv2.converters.torch_formats import torch_model
    from .cache import file_sha256, model_id
    spec = api.read(path, fmt)
    if kind not in (None, "base", "refine"):
        raise ConversionError(f"kind {kind!r}; choose base or refine")
    if kind == "refine" and spec.kind != "refine":
        raise ConversionError(f"{path} holds a MattingBase (no refiner); leave the model type out or ask for base")
    if kind == "base":
        from bgmv2.converters.torch_formats import base_model
        model = base_model(spec)
    else:
        model = torch_model(spec, {**spec.knob_values(), **(knobs or {})} if spec.kind == "refine" else None)
    digest = model_id(file_sha256(path) if os.path.isfile(path) else state_digest(model),
                      {**knobs_of(model), "kind": kind or ""})
    return fast_runner(model, device, precision, source=path, fmt=fmt, digest=digest, metadata=spec.metadata,
                       **options)


def fast_runner(model, device: Union[str, "torch.device", None] = "cpu", precision: Optional[str] = None, *,
                cache=None, check_frames: int = 2, candidates=None, log=None, timed_calls: Optional[int] = None,
                source: Optional[str] = None, fmt: str = "model", digest: Optional[str] = None,
                metadata: Optional[Dict[str, str]] = None, frames: Optional[float] = None):
    """The fast Runner (`converters.runner.Runner`) of a MattingRefine / MattingBase (float32) on `device`.

    `precision`: None lets the fast path choose (fp16 on CUDA; bf16 on CPUs with native bf16, else
    fp32); `fp16`/`bf16`/`fp32` restrict it. `candidates`: replaces the device's list (tests,
    experiments). `source`: the weights file (the ONNX Runtime candidate exports from it). `frames`:
    how many frames the job holds (None: unknown): candidates that take long to build (Inductor, the
    ONNX export) are tried only for jobs long enough to repay them.
    ConversionError for a device or precision the fast path cannot take.
    """
    import torch
    from bgmv2.converters import devices
    from bgmv2.converters.errors import ConversionError
    from . import candidates as cands
    from .cache import model_id
    from .runner import TIMED_CALLS, FastRunner, say

    device = torch.device(devices.choose(None if device is None else str(device), "fast"))
    if precision in ("auto", "fp32"):
        precision = None if precision == "auto" else precision
    problem = unsupported_precision(device, precision)
    if problem:
        raise ConversionError(problem)
    if next(model.parameters()).dtype != torch.float32:
        raise ConversionError("the fast path takes a float32 model (it compares candidates with float32 eager); "
                              "pass model.float()")
    net = model.to(device).eval().to(memory_format=torch.channels_last)
    digest = digest or model_id(state_digest(net), knobs_of(net))
    why_none = "no faster way to run this model here"
    from .runner import CHEAP_FRAMES
    if candidates is None and frames is not None and frames < CHEAP_FRAMES:
        candidates, why_none = [], (f"a job of {frames:g} frame(s) does not repay building a faster way (seconds "
                                    f"each); fast builds for jobs of {CHEAP_FRAMES} frames or more")
    if candidates is None:
        candidates = cands.for_device(net, device, precision, source, {k: v for k, v in knobs_of(net).items()
                                                                       if k != "kind"}, digest, frames)
        if source is None:
            candidates = [c for c in candidates if c.name != "onnxruntime"]  # exported from a file only
        refiner = getattr(net, "refiner", None)
        if not candidates and refiner is not None and refiner.mode == "thresholding":
            why_none = ("thresholding refines a data-dependent number of cells (nothing to capture ahead of "
                        "time on this device); refine-mode sampling runs fast")
    return FastRunner(net, device, candidates, digest, precision, cache=cache, check_frames=check_frames,
                      log=log or say, why_none=why_none, timed_calls=timed_calls or TIMED_CALLS,
                      fmt=fmt, path=source or f"({type(model).__name__})", metadata=metadata)
