"""Weights with realistic BatchNorm statistics for backbones the project ships no trained file for.

The shipped MobileNetV2 model is trained; for ResNet-50 / ResNet-101 the suite builds seeded weights
whose numerics look like a trained network's: He-scaled convolutions, residual branches that end
small, BatchNorm running statistics measured on synthetic composites in one train-mode pass (as
training records them), and output heads rescaled so alpha, foreground and error mostly sit inside
their clamp ranges. Random statistics would let a layout or epsilon mistake hide in saturated or
exploding activations; measured ones keep every layer in range, as with real weights.
"""
import os

from bgmv2.converters.probes import synthetic_probe


def calibrated_state(backbone: str, seed: int = 0, size=(192, 256)):
    """A MattingRefine state dict (official layout) for `backbone` with measured BatchNorm statistics."""
    import torch
    from bgmv2.pytorch_impl import MattingRefine
    torch.manual_seed(seed)
    model = MattingRefine(backbone, refine_mode="full")
    generator = torch.Generator().manual_seed(seed)
    probe = synthetic_probe(size[0], size[1], 2, seed=seed + 100)
    src, bgr = torch.from_numpy(probe.src), torch.from_numpy(probe.bgr)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.weight.copy_(0.75 + 0.5 * torch.rand(module.num_features, generator=generator))
                if name.startswith("backbone.") and name.endswith(("bn3", "conv.3", "conv.2")):
                    module.weight.mul_(0.2)  # residual branches end small in trained networks
                module.bias.copy_(0.1 * torch.randn(module.num_features, generator=generator))
                module.reset_running_stats()
                module.momentum = None  # cumulative average: the statistics of this pass
        model.train()
        model(src, bgr)
        model.eval()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 0.1
                module.num_batches_tracked.fill_(1000)
        for name in ("decoder.conv4", "refiner.conv4"):
            standardise(model, model.get_submodule(name), src, bgr)
    return model.state_dict()


def standardise(model, head, src, bgr, mean: float = 0.4, std: float = 0.3) -> None:
    """Rescale an output convolution so each channel is about N(mean, std^2) on the probe."""
    import torch
    seen = []
    hook = head.register_forward_hook(lambda module, inputs, output: seen.append(output))
    model(src, bgr)
    hook.remove()
    out = torch.cat([o.transpose(0, 1).reshape(o.shape[1], -1) for o in seen], dim=1)
    scale = std / out.std(dim=1).clamp_min(1e-6)
    head.weight.mul_(scale.view(-1, 1, 1, 1))
    head.bias.copy_(mean + (head.bias - out.mean(dim=1)) * scale)


def write_calibrated(backbone: str, folder: str, seed: int = 0) -> str:
    """`folder/calibrated_<backbone>.pth` (written once: temporary name, then rename)."""
    import torch
    path = os.path.join(folder, f"calibrated_{backbone}.pth")
    if not os.path.exists(path):
        from bgmv2 import atomic
        with atomic.writing(path) as temporary:
            torch.save(calibrated_state(backbone, seed), temporary)
    return path
