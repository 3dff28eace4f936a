"""Training losses of Background Matting V2 (as described in the paper), written for our models.

Base network: L1 on alpha, L1 on alpha's Sobel gradients, L1 on the foreground where alpha > 0, and
MSE between the predicted error map and the actual alpha error. MattingRefine adds the same terms on
the coarse outputs (against downsampled ground truth); its error target is |coarse alpha - alpha|
at full resolution.
"""
import torch
from torch.nn import functional as F

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8


def sobel(x: torch.Tensor) -> torch.Tensor:
    """(B, 2C, H, W): horizontal and vertical Sobel responses, replicate-padded."""
    c = x.shape[1]
    kernel = torch.stack([SOBEL_X, SOBEL_X.t()]).to(x).unsqueeze(1).repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)


def alpha_and_foreground_terms(pha, fgr, true_pha, true_fgr) -> torch.Tensor:
    mask = (true_pha > 0).to(pha.dtype)
    return (F.l1_loss(pha, true_pha) + F.l1_loss(sobel(pha), sobel(true_pha))
            + F.l1_loss(fgr * mask, true_fgr * mask))


def base_loss(pha, fgr, err, true_pha, true_fgr) -> torch.Tensor:
    true_err = (pha.detach() - true_pha).abs()
    return alpha_and_foreground_terms(pha, fgr, true_pha, true_fgr) + F.mse_loss(err, true_err)


def refine_loss(pha, fgr, pha_sm, fgr_sm, err_sm, true_pha, true_fgr) -> torch.Tensor:
    size = pha_sm.shape[-2:]
    true_pha_sm = F.interpolate(true_pha, size, mode="bilinear", align_corners=False, antialias=True)
    true_fgr_sm = F.interpolate(true_fgr, size, mode="bilinear", align_corners=False, antialias=True)
    full = true_pha.shape[-2:]
    coarse_error = (F.interpolate(pha_sm.detach(), full, mode="bilinear", align_corners=False) - true_pha).abs()
    predicted_error = F.interpolate(err_sm, full, mode="bilinear", align_corners=False)
    return (alpha_and_foreground_terms(pha, fgr, true_pha, true_fgr)
            + alpha_and_foreground_terms(pha_sm, fgr_sm, true_pha_sm, true_fgr_sm)
            + F.mse_loss(predicted_error, coarse_error))
