"""MattingRefine's forward pass for training: the six outputs, with alpha and error before their clamp.

The model clamps alpha and the error map to [0, 1]. Through a clamp no gradient flows, so a strand
pixel whose raw alpha is below 0 can never be raised by the loss: the refiner learns to answer
"clearly background" (raw alpha about -0.5) and then stays there on thin strands (measured: 94 % of
refined strand pixels below 0 after 150 steps of fine-tuning, none learnt). The losses therefore see
`toward`: the raw value where it lies beyond the range on the far side from the truth (so the gradient
pulls it back towards the truth), the clamped value everywhere else. Where the truth is exactly 0 or 1
(`margin` > 0) the raw value must also clear the bound by `margin`, so that true background settles
below 0 and solid foreground above 1, and the clamped output is exactly 0 or 1 there, not a value that
hovers about the bound (measured: 1 of 7 SAD points per 512x512 image without it). Clamping
`raw_forward`'s alpha and error gives exactly `model(src, bgr)`.
"""
from typing import Tuple

import torch

from bgmv2.pytorch_impl.model import coarse_outputs, refined_outputs


def raw_forward(model, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """(pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm) with pha, pha_sm and err_sm unclamped."""
    src_sm, bgr_sm = model.small_inputs(src, bgr)
    x = model.run_network(torch.cat([src_sm, bgr_sm], dim=1))
    pha_sm, fgr_sm, err_sm, hid_sm = coarse_outputs(x)
    pha, fgr, ref_sm = model.refiner(src, bgr, pha_sm, fgr_sm, err_sm, hid_sm)
    _, fgr, _, fgr_sm, _, ref_sm = refined_outputs(src, src_sm, pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)
    return pha, fgr, x[:, 0:1], fgr_sm, x[:, 4:5], ref_sm


def toward(raw: torch.Tensor, target: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """`raw` clamped to [0, 1], except where it lies beyond the range on the side away from `target`;
    with `margin`, raw values within `margin` of the range where the truth is exactly 0 (or 1) are
    shifted by it, so the loss pushes them clear of the bound."""
    beyond = ((raw < 0) & (target > 0)) | ((raw > 1) & (target < 1))
    value = torch.where(beyond, raw, raw.clamp(0.0, 1.0))
    if margin:
        value = torch.where((target == 0) & (raw > -margin), raw + margin, value)
        value = torch.where((target == 1) & (raw < 1 + margin), raw - margin, value)
    return value
