"""Training losses of Background Matting V2 (as described in the paper), written for our models.

Base network: L1 on alpha, L1 on alpha's Sobel gradients, L1 on the foreground where alpha > 0, and
MSE between the predicted error map and the actual alpha error. MattingRefine adds the same terms on
the coarse outputs (against downsampled ground truth); its error target is |coarse alpha - alpha|
at full resolution.

Thin structures: a 1-px strand is a hundredth of a frame, so in a plain mean its error hardly counts.
`detail_weights` gives each full-resolution pixel a weight, 1 plus `thin` near a structure of the
ground truth narrower than 5 px (the white top-hat of alpha) plus `semi` near a semi-transparent pixel;
"near": within 2 px, so a false alarm beside a strand or an edge costs as much as a miss on it (weights
on the true pixels alone made the refiner widen every edge: +0.8 SAD per 512x512 image in background
beside the subject, measured). The full-resolution terms are then weighted means (the weights' total
divides, so the loss keeps its scale). With both at 0 the losses are upstream's.
"""
import torch
from torch.nn import functional as F

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
THIN_SIZE = 5  # px: structures narrower than this are "thin"
THIN_LEVEL = 0.05  # top-hat response above which a pixel belongs to a thin structure
NEAR = 5  # px: a weight covers the detail and this window around it
MARGIN = 0.05  # unclamped: raw alpha must clear 0 (1) by this where the truth is exactly 0 (1)


def sobel(x: torch.Tensor) -> torch.Tensor:
    """(B, 2C, H, W): horizontal and vertical Sobel responses, replicate-padded."""
    c = x.shape[1]
    kernel = torch.stack([SOBEL_X, SOBEL_X.t()]).to(x).unsqueeze(1).repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)


def thin_structures(alpha: torch.Tensor, size: int = THIN_SIZE) -> torch.Tensor:
    """0/1 map of what an opening (erode, then dilate, `size` px) removes from `alpha`: strands, hairs."""
    pad = size // 2
    eroded = -F.max_pool2d(F.pad(-alpha, (pad,) * 4, mode="replicate"), size, stride=1)
    opened = F.max_pool2d(F.pad(eroded, (pad,) * 4, mode="replicate"), size, stride=1)
    return (alpha - opened > THIN_LEVEL).to(alpha.dtype)


def detail_weights(true_pha: torch.Tensor, thin: float, semi: float) -> torch.Tensor:
    """(B, 1, H, W) per-pixel weights: 1 + thin * [near a thin structure] + semi * [near 0.02 < alpha < 0.98]."""
    def near(mask: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(mask, NEAR, stride=1, padding=NEAR // 2)
    weights = torch.ones_like(true_pha)
    if thin:
        weights = weights + thin * near(thin_structures(true_pha))
    if semi:
        weights = weights + semi * near(((true_pha > 0.02) & (true_pha < 0.98)).to(true_pha.dtype))
    return weights


def weighted_l1(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor = None) -> torch.Tensor:
    if weights is None:
        return F.l1_loss(a, b)
    weights = weights.expand_as(a)
    return ((a - b).abs() * weights).sum() / weights.sum().clamp(min=1e-6)


def alpha_and_foreground_terms(pha, fgr, true_pha, true_fgr, weights=None) -> torch.Tensor:
    mask = (true_pha > 0).to(pha.dtype)
    edge_weights = None
    if weights is not None:  # a Sobel response spreads one pixel each way: so does its weight
        edge_weights = F.max_pool2d(weights, 3, stride=1, padding=1).repeat(1, 2, 1, 1)
    return (weighted_l1(pha, true_pha, weights) + weighted_l1(sobel(pha), sobel(true_pha), edge_weights)
            + weighted_l1(fgr * mask, true_fgr * mask, weights))


def base_loss(pha, fgr, err, true_pha, true_fgr) -> torch.Tensor:
    true_err = (pha.detach() - true_pha).abs()
    return alpha_and_foreground_terms(pha, fgr, true_pha, true_fgr) + F.mse_loss(err, true_err)


def refine_loss(pha, fgr, pha_sm, fgr_sm, err_sm, true_pha, true_fgr, thin: float = 0.0,
                semi: float = 0.0, unclamped: bool = False) -> torch.Tensor:
    """Upstream's refine loss; with `unclamped`, pha, pha_sm and err_sm are raw (raw_forward.py) and are
    clamped here except where the raw value lies past the range away from the truth."""
    size = pha_sm.shape[-2:]
    true_pha_sm = F.interpolate(true_pha, size, mode="bilinear", align_corners=False, antialias=True)
    true_fgr_sm = F.interpolate(true_fgr, size, mode="bilinear", align_corners=False, antialias=True)
    full = true_pha.shape[-2:]
    weights = detail_weights(true_pha, thin, semi) if (thin or semi) else None
    clamped_sm = pha_sm.clamp(0.0, 1.0)
    coarse_error = (F.interpolate(clamped_sm.detach(), full, mode="bilinear", align_corners=False) - true_pha).abs()
    if unclamped:
        from .raw_forward import toward
        pha, pha_sm = toward(pha, true_pha, MARGIN), toward(pha_sm, true_pha_sm, MARGIN)
        err_sm = toward(err_sm, F.interpolate(coarse_error, size, mode="area"))
    predicted_error = F.interpolate(err_sm, full, mode="bilinear", align_corners=False)
    error_term = F.mse_loss(predicted_error, coarse_error) if weights is None else \
        ((predicted_error - coarse_error) ** 2 * weights).sum() / weights.sum()
    return (alpha_and_foreground_terms(pha, fgr, true_pha, true_fgr, weights)
            + alpha_and_foreground_terms(pha_sm, fgr_sm, true_pha_sm, true_fgr_sm)
            + error_term)
