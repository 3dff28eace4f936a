"""The base network (backbone + ASPP + decoder) run by OpenVINO's CPU plugin, for the fast backend.

On a CPU the base network is most of a frame's work, and OpenVINO runs it faster than PyTorch eager:
measured at 1280x720 (the 320x180 input of backbone_scale 1/4, shipped MobileNetV2, 2 cores, AMD EPYC
with AVX512-BF16): PyTorch fp32 53-60 ms, PyTorch bf16 autocast 35 ms, OpenVINO f32 51 ms, OpenVINO
bf16 24 ms. `OpenVinoNetwork(model, precision)` maps a float32 (B, 6, h, w) torch tensor to the
(B, 37, h, w) output of `model.run_network`:

- the backbone's stem (its first layers, `backbone.stem`: 1-2 ms) runs in PyTorch float32. Rounding
  the input image to bf16 there was most of bf16's error: coarse alpha off by 0.010 on average with
  everything in bf16, 0.0037 with the stem in float32 (shipped model, 1280x720 synthetic frame, both
  measured under PyTorch autocast; OpenVINO all-bf16 gave the same 0.010);
- the rest (`run_after_stem(x, x1)`) is converted once (TorchScript trace, dynamic batch, height and
  width) and compiled by OpenVINO per input shape, with the inference precision hint `precision`
  (`fp32` -> f32, pinned because the plugin defaults to bf16 on CPUs that have it, or `bf16`).

The Core is the process's one (`converters.openvino_core.core()`): Cores made and dropped here and
there leave a thread with a freed signal stack, and the next SIGTERM or Ctrl-C is a SIGSEGV (the
reason is in that module's docstring).
"""
import warnings
from typing import Dict, Tuple

import numpy as np
import torch
from torch import nn

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


class _AfterStem(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return self.model.run_after_stem(x, x1)


def convert(model: nn.Module):
    """`run_after_stem` of `model` as an OpenVINO model with dynamic batch, height and width."""
    from bgmv2.converters.openvino_core import convert_model, openvino
    ov = openvino()
    example = torch.zeros(1, 6, 64, 64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its TorchScript trace is deprecated in torch
        example_stem = model.backbone.stem(example)
        return convert_model(
            _AfterStem(model).eval(), example_input=(example, example_stem),
            input=[(ov.PartialShape([-1, 6, -1, -1]), ov.Type.f32),
                   (ov.PartialShape([-1, example_stem.shape[1], -1, -1]), ov.Type.f32)])


def cached_conversion(model: nn.Module, path=None):
    """`convert(model)`, read from / saved to `path` (an IR .xml; None: not kept). Saved under temporary
    names renamed when complete (the .bin before the .xml); a cached IR that cannot be read is removed
    and converted again."""
    import os
    from bgmv2.converters.openvino_core import core, openvino
    ov = openvino()
    if path is not None and path.exists():
        try:
            return core().read_model(str(path))
        except Exception:  # noqa: BLE001 - broken cache entry: rebuilt below
            for stale in (path, path.with_suffix(".bin")):
                if stale.exists():
                    stale.unlink()
    graph = convert(model)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.stem}-{os.getpid()}.xml")
            ov.save_model(graph, str(temporary), compress_to_fp16=False)
            os.replace(temporary.with_suffix(".bin"), path.with_suffix(".bin"))
            os.replace(temporary, path)
        except OSError:
            pass  # a cache folder that cannot be written only loses the memory
    return graph


class OpenVinoNetwork:
    """`model.run_network` compiled by OpenVINO for each input shape it meets (the oldest of more than
    MAX_SHAPES dropped).
    `graph`: `convert(model)` when the caller has it already (the bf16 and f32 candidates share one)."""

    MAX_SHAPES = 8

    def __init__(self, model: nn.Module, precision: str, threads: int = 0, graph=None):
        from bgmv2.converters.openvino_core import core
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: the OpenVINO base network runs fp32 or bf16")
        self.core, self.stem = core(), model.backbone.stem
        self.graph = graph if graph is not None else convert(model)
        self.config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads > 0:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.requests: Dict[Tuple[int, ...], object] = {}

    def request(self, shapes: Tuple[Tuple[int, ...], ...]):
        request = self.requests.get(shapes)
        if request is None:
            if len(self.requests) >= self.MAX_SHAPES:
                self.requests.pop(next(iter(self.requests)))
            graph = self.graph.clone()
            graph.reshape({port: list(shape) for port, shape in zip(graph.inputs, shapes)})
            request = self.core.compile_model(graph, "CPU", self.config).create_infer_request()
            self.requests[shapes] = request
        return request

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to(torch.float32)
        inputs = [np.ascontiguousarray(t.cpu().numpy()) for t in (x, self.stem(x))]
        result = self.request(tuple(t.shape for t in inputs)).infer(inputs)
        return torch.from_numpy(np.asarray(result[0]))
