"""The base network (backbone + ASPP + decoder) run by OpenVINO's CPU plugin, for the fast backend.

On a CPU the base network is most of a frame's work, and OpenVINO runs it faster than PyTorch eager:
measured at 1280x720 (the 320x180 input of backbone_scale 1/4, shipped MobileNetV2, 2 cores, AMD EPYC
with AVX512-BF16): PyTorch fp32 53-60 ms, PyTorch bf16 autocast 35 ms, OpenVINO f32 51 ms, OpenVINO
bf16 24 ms. `OpenVinoNetwork(model, precision)` converts `model.run_network` once (TorchScript trace
with dynamic batch, height and width) and compiles it per input shape; calling it maps a float32
(B, 6, h, w) torch tensor to the (B, 37, h, w) output. `precision` is OpenVINO's inference precision
hint (`f32` or `bf16`); f32 is pinned explicitly because the plugin defaults to bf16 on CPUs that have
it.
"""
import warnings
from typing import Dict, Tuple

import numpy as np
import torch
from torch import nn

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


class _Network(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.run_network(x)


class OpenVinoNetwork:
    """`model.run_network` compiled by OpenVINO for each input shape it meets (most recent few kept)."""

    MAX_SHAPES = 8

    def __init__(self, model: nn.Module, precision: str, threads: int = 0):
        import openvino as ov
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: the OpenVINO base network runs fp32 or bf16")
        self.core = ov.Core()
        example = torch.zeros(1, 6, 64, 64)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # its TorchScript trace is deprecated in torch
            self.graph = ov.convert_model(_Network(model).eval(), example_input=(example,),
                                          input=[(ov.PartialShape([-1, 6, -1, -1]), ov.Type.f32)])
        self.config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads > 0:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.requests: Dict[Tuple[int, ...], object] = {}

    def request(self, shape: Tuple[int, ...]):
        request = self.requests.get(shape)
        if request is None:
            if len(self.requests) >= self.MAX_SHAPES:
                self.requests.pop(next(iter(self.requests)))
            graph = self.graph.clone()
            graph.reshape(list(shape))
            request = self.core.compile_model(graph, "CPU", self.config).create_infer_request()
            self.requests[shape] = request
        return request

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        data = np.ascontiguousarray(x.detach().to(torch.float32).cpu().numpy())
        result = self.request(tuple(data.shape)).infer([data])
        return torch.from_numpy(np.asarray(result[0]))
