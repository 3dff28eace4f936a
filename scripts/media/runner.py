"""How the apps run a model: the one runner `converters.load` gives for any file, zoo name or the shipped
model (`converters.resolve_model`), fed the apps' frames.

`FrameRunner` wraps that runner for pictures and video: `prepare(frame)` turns an RGB uint8 (H, W, 3)
frame into the runner's input (a (1, 3, H, W) float tensor in [0, 1] on the runner's device; on CUDA
uploaded through page-locked memory on a side stream, so the next frame's upload overlaps this frame's
work), and `runner(src, bgr)` returns the contract's outputs (`pha`, `fgr`, `pha_sm`, `fgr_sm`, `err_sm`,
`ref_sm`; a MattingBase `pha`, `fgr`, `err`, `hid`) as torch tensors on that device. Any frame size.
"""
import argparse
import os
import sys
from typing import Dict

import numpy as np
import torch

from .errors import MediaError, warn
from .options import model_knobs

# --backend names of earlier versions -> the runtime they meant (None: the file's own).
OLDER_BACKENDS = {"auto": None, "converters": None, "pt2": "torch"}
FLAGS = {"device": "device", "runtime": "backend", "precision": "precision"}  # converters' options -> our flags


class FrameRunner:
    """A `converters.runner.Runner` fed frames (see the module's docstring)."""

    def __init__(self, runner, description: str = ""):
        self.runner = runner
        self.device = torch.device(runner.device)
        self.outputs = runner.outputs
        self.description = description or f"{os.path.basename(runner.path)}: {runner.describe()}"
        self._upload = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    @property
    def engine(self) -> str:
        return self.runner.engine

    @property
    def runtime(self) -> str:
        return self.runner.runtime

    def prepare(self, frame: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1] on the device, channels-last (no transposing copy)."""
        x = torch.from_numpy(np.ascontiguousarray(frame))
        if self._upload is None:
            return x.permute(2, 0, 1).unsqueeze(0).float().div_(255)
        host = x.pin_memory()
        with torch.cuda.stream(self._upload):
            x = host.to(self.device, non_blocking=True).permute(2, 0, 1).unsqueeze(0).float().div_(255)
            x.bgmv2_ready = torch.cuda.Event()
            x.bgmv2_ready.record(self._upload)
        return x

    def __call__(self, src: torch.Tensor, bgr: torch.Tensor) -> Dict[str, torch.Tensor]:
        src, bgr = self._ready(src), self._ready(bgr)
        if bgr.shape[0] != src.shape[0]:
            bgr = bgr.expand(src.shape[0], *bgr.shape[1:])
        from bgmv2.converters import ConversionError
        try:
            return self.runner.run(src, bgr, to="torch")
        except ConversionError as error:  # the inputs' rule, or the runtime's failure: what is wrong, in words
            raise MediaError(" ".join(str(error).split())) from None
        except ValueError as error:  # PyTorch models' own checks
            raise MediaError(" ".join(str(error).split())) from None

    def _ready(self, x: torch.Tensor) -> torch.Tensor:
        event = getattr(x, "bgmv2_ready", None)
        if event is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(event)
            x.record_stream(stream)
        return x


def describe(runner) -> str:
    """`file: format via engine on device (precision)`, with the model and its knobs where PyTorch runs it."""
    text = f"{os.path.basename(runner.path)}: {runner.describe()}"
    model = getattr(runner, "model", None)
    refiner = getattr(model, "refiner", None)
    if model is not None and hasattr(model, "backbone_name"):
        detail = f"{type(model).__name__} ({model.backbone_name}"
        if refiner is not None:
            detail += (f", scale {model.backbone_scale:g}, {refiner.mode}"
                       + (f" {refiner.sample_pixels} px" if refiner.mode == "sampling" else "")
                       + (f" threshold {refiner.threshold:g}" if refiner.mode == "thresholding" else ""))
        text += f"; {detail})"
    return text


def inference_on_cpu(args: argparse.Namespace) -> bool:
    """Whether --device puts inference on the CPU (before the model is loaded: encoders size their threads)."""
    from bgmv2.converters import ConversionError, devices
    try:
        device = devices.parse(getattr(args, "device", "auto"))
    except ConversionError as error:
        raise MediaError(error.as_flag("device") if hasattr(error, "as_flag") else str(error)) from None
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def shipped_model_path() -> str:
    """The shipped default model's file, or a MediaError that says it is missing and what to do."""
    from bgmv2.converters import ConversionError
    from bgmv2.converters.resolve import shipped_model
    try:
        return shipped_model()
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


def runtime_of(args: argparse.Namespace):
    """The runtime --backend asks for (None: the file's own)."""
    backend = getattr(args, "backend", "auto") or "auto"
    return OLDER_BACKENDS.get(backend, backend)


def check_device(args: argparse.Namespace) -> str:
    """The device --device names for --backend's runtime (auto: the first usable GPU, else the CPU); a
    device this machine lacks is refused now, in the command's words (`batch` asks before Ray starts)."""
    from bgmv2 import converters
    from bgmv2.converters import devices
    runtime = runtime_of(args)
    try:
        return devices.choose(getattr(args, "device", "auto") or "auto",
                              runtime if runtime in devices.GPU_RUNTIMES else "torch")
    except converters.OptionError as error:
        raise MediaError(error.as_flag(FLAGS.get(error.option, error.option))) from None


def load_runner(args: argparse.Namespace, announce: bool = True, frames=None) -> FrameRunner:
    """The runner for the model options in `args` (see options.add_model_arguments): any format, on
    --device, by --backend's runtime, in --precision (None: the file's own). `frames` (how many the
    job holds, when known) lets the fast runtime weigh what is worth building."""
    from bgmv2 import converters
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    path = model_path(args)
    runtime = runtime_of(args)
    kind = {"mattingrefine": "refine", "mattingbase": "base"}.get(args.kind, args.kind)
    options = {"kind": kind} if kind else {}
    if getattr(args, "threads", None):
        options["threads"] = args.threads
    if runtime == "fast":
        options.update(log=warn_or_say, frames=frames)
    try:
        check_backbone(path, args.backbone)
        runner = converters.load(path, knobs=model_knobs(args), device=getattr(args, "device", "auto") or "auto",
                                 runtime=runtime, precision=getattr(args, "precision", None), **options)
    except converters.OptionError as error:  # said with the command's flag: --device, --backend, --precision
        raise MediaError(error.as_flag(FLAGS.get(error.option, error.option))) from None
    except converters.ConversionError as error:
        raise MediaError(str(error)) from None
    frame_runner = FrameRunner(runner, describe(runner))
    if announce:
        print(f"model: {frame_runner.description}", file=sys.stderr)
    return frame_runner


def check_backbone(path: str, backbone) -> None:
    """--backbone: the file must hold that backbone (where its weights can be read)."""
    if not backbone:
        return
    from bgmv2 import converters
    found = converters.read(path).backbone
    if found != backbone:
        raise MediaError(f"{path} holds {found} weights, but --backbone {backbone} was given: pass the file of that "
                         "backbone, or leave --backbone out")


def warn_or_say(text: str) -> None:
    """The fast runtime's lines: warnings through `warn` (progress bars stay whole), the rest on stderr."""
    if text.startswith("warning: "):
        warn(text[len("warning: "):])
    else:
        print(text, file=sys.stderr)
