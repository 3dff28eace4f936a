"""torch.hub entry points: `torch.hub.load(REPO, 'mattingrefine', backbone='mobilenetv2', pretrained=True)`.

`pretrained=True` loads the zoo's shipped weights for the backbone (MobileNetV2 today), or the
official release's state dict if it is in the cache or can be fetched (`bgmv2 weights fetch`).
"""
dependencies = ["torch", "numpy", "safetensors"]

from bgmv2.pytorch_impl import MattingBase, MattingRefine, load_model  # noqa: E402


def pretrained_path(backbone: str) -> str:
    from bgmv2.converters.resolve import resolve_model
    from bgmv2.weights import ZooError, load_registry
    try:
        return resolve_model(load_registry().default(backbone, "refine").name)
    except ZooError:  # no shipped model of this backbone: the official release
        return resolve_model(f"pytorch-{backbone}")


def mattingrefine(backbone: str = "mobilenetv2", pretrained: bool = True, **options):
    """MattingRefine (official arguments as keywords), with weights when `pretrained`."""
    if not pretrained:
        return MattingRefine(backbone, **options).eval()
    return load_model(pretrained_path(backbone), backbone=backbone, **options)


def mattingbase(backbone: str = "mobilenetv2", pretrained: bool = True):
    """The base network alone, with the weights of the refine model when `pretrained`."""
    if not pretrained:
        return MattingBase(backbone).eval()
    return load_model(pretrained_path(backbone), kind="base", backbone=backbone)
