"""Arithmetic of one forward pass, counted from the operations that actually run."""
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: nn.Module, src: torch.Tensor, bgr: torch.Tensor) -> int:
    """FLOPs of `model(src, bgr)` (convolutions and matmuls, 2 per multiply-add).

    The real forward runs under the counter, so only the layers executed for these inputs count,
    including the refiner's convolutions over however many patches it selected.
    """
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(src, bgr)
    return counter.get_total_flops()
