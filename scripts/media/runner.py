"""Runners: how the apps call a model, whatever its format.

The protocol is small. A runner has
- `prepare(frame)`: an RGB uint8 (H, W, 3) numpy frame -> the runner's input batch (N=1, NCHW float in
  [0, 1], a torch tensor on the runner's device or a numpy array);
- `__call__(src, bgr)`: two such batches -> a dict of NCHW outputs as torch tensors on the runner's
  device: at least `pha` and `fgr` at the input size; `err` (any size, upsampled when rendered) and
  `ref` (refined cells, any size) where the model has them;
- `device`: a torch.device (where outputs live), `outputs`: the names it returns, `description`.

`TorchRunner` runs `pytorch_impl` models (eager state dicts and TorchScript) under
`torch.inference_mode`; `ArrayRunner` adapts any callable taking and returning float32 NCHW numpy
arrays: the converters' runtime adapters (`converters.load(path, ...)`) for every other format
(ONNX, torch.export, Keras, SavedModel). Frames of any size work: inputs are edge-padded to a
multiple of 4 and outputs cropped back.
"""
import argparse
import os
import sys
from typing import Callable, Dict, Optional

import numpy as np
import torch
from torch.nn import functional as F

from .errors import MediaError, warn
from .options import model_knobs

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Output names as runtimes spell them -> ours.
OUTPUT_NAMES = {"pha": "pha", "fgr": "fgr", "err_sm": "err", "err": "err", "ref_sm": "ref", "ref": "ref"}


def resolve_device(name: Optional[str]) -> torch.device:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU -> a MediaError saying so."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MediaError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this PyTorch is a CPU-only build" if torch.version.cuda is None else \
                "PyTorch was built for CUDA but sees no GPU (driver missing, or CUDA_VISIBLE_DEVICES hides it)"
            raise MediaError(f"--device {name} was asked for, but {build}. Use --device cpu (or auto).")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MediaError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type not in ("cpu", "mps", "xpu"):
        raise MediaError(f"--device {name!r} is not supported here; use cpu or cuda")
    return device


def pad_to_4(x: torch.Tensor) -> torch.Tensor:
    pad_h, pad_w = -x.shape[-2] % 4, -x.shape[-1] % 4
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


class TorchRunner:
    """A `pytorch_impl` model (eager or TorchScript) on `device` in `dtype`.

    Inputs are channels-last (the frames' own HWC layout, so no transposing copy), and eager models
    are converted to channels-last too: 9% less CPU time per 1280x720 frame than NCHW (measured,
    MobileNetV2, same alpha to 4e-8 and the same refined cells), and the outputs come back in the HWC
    order pictures and encoders want.
    """

    def __init__(self, model, device: torch.device, dtype: torch.dtype = torch.float32, description: str = ""):
        self.model, self.device, self.dtype, self.description = model, device, dtype, description
        self.refine = not _is_base(model)
        self.outputs = ("pha", "fgr", "err", "ref") if self.refine else ("pha", "fgr", "err")

    def prepare(self, frame: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, H, W) channels-last in [0, 1] on the device, padded to a multiple of 4."""
        x = torch.from_numpy(frame).to(self.device, non_blocking=True).permute(2, 0, 1).unsqueeze(0)
        return pad_to_4(x.to(self.dtype).div_(255))

    def __call__(self, src: torch.Tensor, bgr: torch.Tensor, size=None) -> Dict[str, torch.Tensor]:
        try:
            with torch.inference_mode():
                out = self.model(pad_to_4(src), pad_to_4(bgr))
        except ValueError as error:  # the model's own input checks: what is wrong, in words
            raise MediaError(" ".join(str(error).split())) from None
        except torch.jit.Error as error:  # the same checks inside TorchScript: the message is the last line
            last = [line for line in str(error).splitlines() if line.strip()][-1:] or [""]
            if "ValueError" not in last[0]:
                raise
            raise MediaError(last[0].split("ValueError:", 1)[-1].strip()) from None
        H, W = size or src.shape[-2:]
        if len(out) == 6:  # pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm
            return {"pha": out[0][..., :H, :W], "fgr": out[1][..., :H, :W], "err": out[4], "ref": out[5]}
        return {"pha": out[0][..., :H, :W], "fgr": out[1][..., :H, :W], "err": out[2][..., :H, :W]}


class ArrayRunner:
    """Any callable `(src, bgr) -> {name: array}` on float32 NCHW numpy arrays, as a runner."""

    def __init__(self, function: Callable, description: str = "", outputs=("pha", "fgr", "err", "ref")):
        self.function, self.description = function, description
        self.device, self.dtype, self.outputs = torch.device("cpu"), torch.float32, outputs

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        x = frame.transpose(2, 0, 1)[None].astype(np.float32) * np.float32(1 / 255)
        pad_h, pad_w = -x.shape[2] % 4, -x.shape[3] % 4
        if pad_h or pad_w:
            x = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
        return np.ascontiguousarray(x)

    def __call__(self, src: np.ndarray, bgr: np.ndarray, size=None) -> Dict[str, torch.Tensor]:
        H, W = size or src.shape[-2:]
        try:
            result = self.function(src, bgr)
        except ValueError as error:  # converters.ConversionError: what failed, in words
            raise MediaError(str(error)) from None
        if not isinstance(result, dict):
            raise MediaError(f"{self.description}: the runtime returned {type(result).__name__}, expected named "
                             "outputs (pha, fgr, ...)")
        out = {}
        for name, value in result.items():
            ours = OUTPUT_NAMES.get(name)
            if ours and ours not in out:
                value = torch.from_numpy(np.asarray(value, dtype=np.float32))
                out[ours] = value[..., :H, :W] if value.shape[-2:] == src.shape[-2:] else value
        if "pha" not in out or "fgr" not in out:
            raise MediaError(f"{self.description}: the model's outputs {sorted(result)} lack pha and fgr")
        return out


def _is_base(model) -> bool:
    from bgmv2.pytorch_impl import MattingBase, MattingRefine
    if isinstance(model, torch.jit.ScriptModule):
        return not (hasattr(model, "refine_mode") or hasattr(model, "refiner") or hasattr(model, "model"))
    return isinstance(model, MattingBase) and not isinstance(model, MattingRefine)


def shipped_model_path() -> str:
    """The shipped default model's file, or a MediaError that says it is missing and what to do."""
    from bgmv2.converters import ConversionError
    from bgmv2.converters.resolve import shipped_model
    try:
        return shipped_model()
    except ConversionError as error:
        raise MediaError(str(error)) from None


TORCH_FORMATS = ("pth", "safetensors", "torchscript")
# --backend -> the formats it runs.
BACKEND_FORMATS = {"torch": TORCH_FORMATS, "onnxruntime": ("onnx",), "tensorflow": ("keras", "savedmodel"),
                   "pt2": ("pt2",), "fast": ("pth", "safetensors")}


def detect_format(path: str) -> str:
    """The converters' format name of a model file, from its content."""
    from bgmv2.converters import ConversionError
    from bgmv2.converters import detect
    try:
        return detect(path)
    except ConversionError as error:
        raise MediaError(str(error)) from None


def model_path(args: argparse.Namespace) -> str:
    """The file --model names: a path, a zoo name (its cached file), or the shipped model when absent."""
    from bgmv2.converters import ConversionError
    from bgmv2.converters.resolve import resolve_model
    if not args.model:
        return shipped_model_path()
    try:
        return resolve_model(args.model)
    except ConversionError as error:
        raise MediaError(f"--model {error}") from None


def load_runner(args: argparse.Namespace, announce: bool = True):
    """The runner for the model options in `args` (see options.add_model_arguments).

    PyTorch files (state dicts, TorchScript) run here on --device in --precision; every other format
    (ONNX, torch.export .pt2, Keras weights, SavedModel), or any file with --backend converters, runs
    through the converters package's runtime adapters.
    """
    from bgmv2.pytorch_impl import CheckpointError

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    device = resolve_device(getattr(args, "device", "auto"))
    dtype = DTYPES[getattr(args, "precision", "fp32")]
    knobs = model_knobs(args)
    kind = {"mattingrefine": "refine", "mattingbase": "base"}.get(args.kind, args.kind)
    path = model_path(args)
    fmt = detect_format(path)
    backend = getattr(args, "backend", "auto")
    if backend not in ("auto", "converters") and fmt not in BACKEND_FORMATS[backend]:
        runs = ", ".join(BACKEND_FORMATS[backend])
        raise MediaError(f"{path} is a {fmt} file, but --backend {backend} runs {runs} files; leave --backend out, "
                         f"or convert the file (`bgmv2 convert`)")
    try:
        if backend == "fast":
            from bgmv2.scripts.fast import from_args
            runner = from_args(path, kind, args.backbone, knobs, device, getattr(args, "precision", "fp32"))
        elif fmt in ("pth", "safetensors") and backend in ("auto", "torch"):
            runner = eager_runner(path, kind, args.backbone, knobs, device, dtype)
        elif fmt == "torchscript" and backend in ("auto", "torch"):
            runner = torchscript_runner(path, knobs, device, dtype)
        else:
            runner = converters_runner(path, fmt, kind, knobs, device, dtype)
    except CheckpointError as error:
        raise MediaError(str(error)) from None
    if announce:
        print(f"model: {runner.description} on {runner.device}"
              + (f" ({args.precision})" if dtype != torch.float32 else ""), file=sys.stderr)
    return runner


def eager_runner(path, kind, backbone, knobs, device, dtype) -> TorchRunner:
    from bgmv2.pytorch_impl import load_model
    try:
        model = load_model(path, kind=kind, backbone=backbone, device=device, dtype=dtype, **knobs)
    except ValueError as error:  # a knob out of range (backbone_scale, ...)
        raise MediaError(str(error)) from None
    model = model.to(memory_format=torch.channels_last)
    name = type(model).__name__
    detail = f"{name} ({model.backbone_name}"
    if hasattr(model, "refiner"):
        r = model.refiner
        detail += (f", scale {model.backbone_scale:g}, {r.mode}"
                   + (f" {r.sample_pixels} px" if r.mode == "sampling" else "")
                   + (f" threshold {r.threshold:g}" if r.mode == "thresholding" else ""))
    return TorchRunner(model, device, dtype, f"{os.path.basename(path)}: {detail})")


def torchscript_runner(path, knobs, device, dtype) -> TorchRunner:
    from bgmv2.pytorch_impl import load_torchscript
    from bgmv2.converters import ConversionError
    from bgmv2.converters.api import check_knobs
    model = load_torchscript(path, map_location=device)
    kernel = knobs.get("refine_kernel_size")
    if kernel is not None and hasattr(model, "model") and hasattr(model.model, "refiner") and \
            int(kernel) != model.model.refiner.kernel_size:
        raise MediaError(f"{path} has a refiner of kernel size {model.model.refiner.kernel_size}, not {kernel}; "
                         "leave --refine-kernel-size out")
    try:
        knobs = check_knobs({k: v for k, v in knobs.items() if k != "refine_kernel_size"})
    except ConversionError as error:
        raise MediaError(str(error)) from None
    for name, value in knobs.items():
        if not hasattr(model, name):
            raise MediaError(f"{path} is a TorchScript archive without a settable {name}; "
                             f"leave --{name.replace('_', '-')} out")
        setattr(model, name, type(getattr(model, name))(value))
    model = model.to(dtype)
    return TorchRunner(model, device, dtype, f"{os.path.basename(path)}: TorchScript")


def converters_runner(path, fmt, kind, knobs, device, dtype) -> "ArrayRunner":
    """Any format through `converters.load` (float32 NCHW numpy in and out, on the CPU except ONNX on CUDA)."""
    from bgmv2 import converters
    if kind == "base":
        raise MediaError(f"--model-type base needs a PyTorch file; {path} is {fmt} (its kind was fixed when written)")
    knobs = {k: v for k, v in knobs.items() if k != "refine_kernel_size"}
    options = {}
    if fmt == "onnx":
        options["threads"] = torch.get_num_threads()
        if device.type == "cuda":
            options["providers"] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    elif device.type != "cpu":
        warn(f"{fmt} files run on the CPU here (the converters' runtime); --device {device} is ignored")
    if dtype != torch.float32:
        warn(f"--precision applies to PyTorch files; the {fmt} file runs in the precision it was written in")
    try:
        runner = converters.load(path, fmt, knobs=knobs, **options)
    except converters.ConversionError as error:
        raise MediaError(str(error)) from None
    outputs = tuple(OUTPUT_NAMES[n] for n in runner.outputs if n in OUTPUT_NAMES)
    description = f"{os.path.basename(path)}: {fmt} via converters ({runner.precision}, {runner.layout})"
    return ArrayRunner(runner, description, outputs)
