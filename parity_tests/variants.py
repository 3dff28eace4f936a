"""The reference model changed one way (an export convention or a port mistake), for the diagnosis to
re-run: when a variant matches a failing candidate, that change is the likely cause.

A `Variant` edits a fresh copy of the reference model (`edit(model)`, which may return a context
manager to run it in, for changes of the functions the modules call) and names what it changes.
`run_variant` runs it on probes, in float32 on the CPU, outputs named as the reference's.
Used by `diagnosis_conventions` and by the planted bugs (`planted`), so a planted bug and the
alternative that explains it are the same code.
"""
import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

RESIZE_MODULES = ("model", "aspp", "decoder", "refiner")  # the bgmv2.pytorch_impl modules that resize


@dataclass
class Variant:
    code: str  # the diagnosis code when it explains a failure
    name: str  # short, for planted bugs and logs
    detail: str  # the sentence of the diagnosis
    edit: Callable  # (model) -> None, or a context manager to run the model in
    stage: str = "any"  # "coarse", "refiner" or "any": where its effect first shows


# -- running ------------------------------------------------------------------------------------------
BUILT: Dict[tuple, object] = {}  # (spec id, knobs) -> the reference model, copied for each variant


def base_model(spec, knobs: Dict[str, object]):
    """A fresh eval-mode copy of the reference model (built once per spec and knobs: building one takes
    longer than running it on small probes)."""
    import copy
    from bgmv2.converters.torch_formats import torch_model
    key = (id(spec), tuple(sorted(knobs.items())))
    if key not in BUILT or BUILT[key][0] is not spec:
        if len(BUILT) > 8:
            BUILT.clear()
        BUILT[key] = (spec, torch_model(spec, knobs if spec.kind == "refine" else None).eval())
    return copy.deepcopy(BUILT[key][1])


def variant_model(spec, knobs: Dict[str, object], variant: Optional[Variant] = None):
    """A fresh eval-mode reference model with `variant` applied: (model, context manager)."""
    model = base_model(spec, knobs)
    context = variant.edit(model) if variant is not None else None
    return model, context or contextlib.nullcontext()


def call(model, context, src: np.ndarray, bgr: np.ndarray, names: Sequence[str]) -> Dict[str, np.ndarray]:
    import torch
    with context_copy(context), torch.inference_mode():
        out = model(torch.from_numpy(np.ascontiguousarray(src, np.float32)),
                    torch.from_numpy(np.ascontiguousarray(bgr, np.float32)))
    return {name: o.float().numpy() for name, o in zip(names, out)}


def context_copy(context):
    """Contexts made by `patched_functions` are re-entrant factories; others are used as they are."""
    return context() if callable(context) else context


def run_variant(reference, knobs: Dict[str, object], probes, variant: Variant) -> List[Dict[str, np.ndarray]]:
    """The reference with `variant` on every probe (float32, CPU)."""
    model, context = variant_model(reference.spec, knobs, variant)
    names = reference.names(knobs)
    return [call(model, context, probe.src, probe.bgr, names) for probe in probes]


# -- resizing -----------------------------------------------------------------------------------------
def output_size(x, size, scale_factor):
    if size is not None:
        return tuple(int(s) for s in (size if isinstance(size, (tuple, list)) else (size, size)))
    scales = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor, scale_factor)
    return tuple(int(math.floor(n * s)) for n, s in zip(x.shape[-2:], scales))


def asymmetric_bilinear(x, size):
    """Bilinear resize with TF1's coordinates (`half_pixel_centers=False`, ONNX `asymmetric`):
    output pixel i samples input position i * in / out."""
    import torch
    out = []
    for axis, n_out in zip((2, 3), size):
        n_in = x.shape[axis]
        pos = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
        i0 = pos.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        out.append((i0, i1, (pos - i0).to(x.dtype)))
    (y0, y1, fy), (x0, x1, fx) = out
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def antialias_matrix(n_in: int, n_out: int, exclude_outside: bool) -> np.ndarray:
    """(n_out, n_in) weights of ONNX's antialiased linear resize (half-pixel centres, a triangle filter
    stretched by in / out when shrinking); taps outside the picture repeat the edge pixel unless
    `exclude_outside` drops them (then it equals PyTorch's and PIL's antialias)."""
    scale = n_out / n_in
    support, step = (1.0 / scale, scale) if scale < 1 else (1.0, 1.0)
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) / scale
        for j in range(int(np.floor(centre - support)), int(np.ceil(centre + support)) + 1):
            w = max(0.0, 1 - abs((j + 0.5 - centre) * step))
            if w > 0 and (0 <= j < n_in or not exclude_outside):
                weights[i, min(max(j, 0), n_in - 1)] += w
        weights[i] /= weights[i].sum()
    return weights


def antialias_edge(x, size):
    """ONNX Resize (linear, antialias=1, exclude_outside=0), as ONNX Runtime computes it."""
    import torch
    rows = torch.from_numpy(antialias_matrix(x.shape[2], size[0], False)).to(x.dtype)
    cols = torch.from_numpy(antialias_matrix(x.shape[3], size[1], False)).to(x.dtype)
    return torch.einsum("oh,bchw,pw->bcop", rows, x, cols)


class ResizeFunctions:
    """`torch.nn.functional` with its bilinear `interpolate` done another way (`how`); with
    `pictures_only`, only where it resizes the pictures themselves (3 channels: src, bgr)."""

    def __init__(self, how: str, pictures_only: bool = False):
        import torch.nn.functional as F
        self.F, self.how, self.pictures_only = F, how, pictures_only

    def __getattr__(self, name):
        return getattr(self.F, name)

    def interpolate(self, x, size=None, scale_factor=None, mode="nearest", align_corners=None, **kwargs):
        if (mode != "bilinear" and self.how != "nearest") or (self.pictures_only and x.shape[1] != 3):
            return self.F.interpolate(x, size, scale_factor, mode, align_corners, **kwargs)
        if self.how == "asymmetric":
            return asymmetric_bilinear(x, output_size(x, size, scale_factor))
        target = output_size(x, size, scale_factor)
        if self.how == "align_corners":
            return self.F.interpolate(x, target, mode="bilinear", align_corners=True)
        if self.how == "antialias":
            return self.F.interpolate(x, target, mode="bilinear", align_corners=False, antialias=True)
        if self.how == "antialias_edge":
            return antialias_edge(x, target)
        return self.F.interpolate(x, target, mode="nearest")


def patched_functions(modules: Sequence[str], how: str, pictures_only: bool = False):
    """A re-entrant context factory: `F` of each `bgmv2.pytorch_impl.<module>` replaced while it runs."""
    import importlib
    targets = [importlib.import_module(f"bgmv2.pytorch_impl.{name}") for name in modules]

    @contextlib.contextmanager
    def patched():
        originals = [module.F for module in targets]
        for module in targets:
            module.F = ResizeFunctions(how, pictures_only)
        try:
            yield
        finally:
            for module, original in zip(targets, originals):
                module.F = original

    return lambda model: patched


RESIZES = {
    "asymmetric": "TF1's asymmetric coordinates (align_corners=False, half_pixel_centers=False; ONNX "
                  "coordinate_transformation_mode asymmetric)",
    "align_corners": "align_corners=True",
    "antialias": "antialiasing (a downsampling filter, as PIL, tf.image.resize and PyTorch's antialias=True do)",
    "antialias_edge": "antialiasing with the edge pixels repeated (ONNX Resize antialias=1, exclude_outside=0)",
    "nearest": "nearest-neighbour instead of bilinear",
}
WHERE = {"model": "the input downsampling by backbone_scale", "aspp": "the ASPP pooling branch",
         "decoder": "the decoder's upsampling", "refiner": "the refiner's resizes"}


def resize_variants(stage: str = "any") -> List[Variant]:
    """Every bilinear resize another way, then each module's alone (the coarse ones, or the refiner's)."""
    found = []
    for how, words in RESIZES.items():
        found.append(Variant("convention", f"resize-{how}", f"resize convention: its bilinear resizes use {words}; "
                             "the reference resizing that way matches it", patched_functions(RESIZE_MODULES, how)))
    for how, words in RESIZES.items():
        found.append(Variant("convention", f"resize-{how}-pictures",
                             "resize convention in the resizes of the pictures (src and bgr, to backbone_scale and to "
                             f"half size): {words}; the reference resizing them that way matches it",
                             patched_functions(("model", "refiner"), how, True)))
    for how, words in RESIZES.items():
        for module in RESIZE_MODULES:
            if how.startswith("antialias") and module in ("aspp", "decoder"):
                continue  # they only upsample: antialiasing changes nothing
            where = "refiner" if module == "refiner" else "coarse"
            if stage != "any" and where != stage:
                continue
            found.append(Variant("convention", f"resize-{how}-{module}",
                                 f"resize convention in {WHERE[module]}: {words}; the reference resizing that way "
                                 "there matches it", patched_functions((module,), how), where))
    return found


# -- padding, BatchNorm, activations ------------------------------------------------------------------
def tf_same_padding(model) -> None:
    """Strided convolutions and pools padded as TensorFlow's `SAME` (the extra row and column at the
    bottom and right) instead of PyTorch's symmetric padding."""
    from torch import nn
    import torch.nn.functional as F

    def hook(module, inputs):
        x = inputs[0]
        pads = []
        for axis, (k, s, d) in enumerate(zip(pair(module.kernel_size), pair(module.stride), pair(module.dilation))):
            n = x.shape[2 + axis]
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        value = -math.inf if isinstance(module, nn.MaxPool2d) else 0.0
        return (F.pad(x, (*pads[1], *pads[0]), value=value),)

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)) and max(pair(module.stride)) > 1:
            module.padding = (0, 0) if isinstance(module, nn.Conv2d) else 0
            module.register_forward_pre_hook(hook)


def pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def batchnorm_epsilon(eps: float):
    def edit(model) -> None:
        from torch import nn
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps = eps
    return edit


def relu6_as_relu(model) -> None:
    from torch import nn
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, nn.ReLU(inplace=True))


def convention_variants() -> List[Variant]:
    return [
        Variant("convention", "padding-tf-same", "padding convention: its strided convolutions pad as TensorFlow's "
                "SAME (the extra row and column at the bottom and right, not both sides); the reference padded that "
                "way matches it", tf_same_padding, "coarse"),
        Variant("convention", "batchnorm-eps-1e-3", "BatchNorm epsilon 1e-3 (Keras' default) instead of 1e-5: the "
                "reference with eps 1e-3 matches it (fold BatchNorm with the checkpoint's epsilon)",
                batchnorm_epsilon(1e-3), "coarse"),
        Variant("convention", "relu6-as-relu", "activation: its ReLU6 are plain ReLU (no clip at 6); the reference "
                "with ReLU instead of ReLU6 matches it", relu6_as_relu, "coarse"),
    ]


# -- weights: the first layer's channel order, kernel layout ------------------------------------------
def first_image_conv(model):
    """(name, module) of the first convolution that reads the pictures (6 input channels: src, bgr)."""
    from torch import nn
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 6:
            return name, module
    return None, None


def first_layer_channels(order: Sequence[int]):
    def edit(model) -> None:
        import torch
        _, conv = first_image_conv(model)
        with torch.no_grad():
            conv.weight.copy_(conv.weight[:, list(order)].clone())
    return edit


def kernels(how: str):
    def edit(model) -> None:
        import torch
        from torch import nn
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.Conv2d) and max(module.kernel_size) > 1:
                    w = module.weight
                    w.copy_(w.flip(-1, -2).clone() if how == "flipped" else w.transpose(-1, -2).clone())
    return edit


def weight_variants() -> List[Variant]:
    return [
        Variant("channel-order", "first-layer-bgr", "channel order in the weights: its first convolution ({layer}) "
                "takes BGR (the input channels of its weights are reversed, for src and bgr); the reference with "
                "those channels reversed matches it", first_layer_channels((2, 1, 0, 5, 4, 3)), "coarse"),
        Variant("channel-order", "first-layer-bgr-src", "channel order in the weights: its first convolution "
                "({layer}) takes src as BGR (the src input channels of its weights are reversed); the reference "
                "with those channels reversed matches it", first_layer_channels((2, 1, 0, 3, 4, 5)), "coarse"),
        Variant("layout", "kernels-flipped", "kernel layout: its convolution kernels are flipped (rotated 180 "
                "degrees: convolution vs correlation); the reference with every kernel flipped matches it",
                kernels("flipped"), "coarse"),
        Variant("layout", "kernels-transposed", "kernel layout: its convolution kernels have height and width "
                "swapped (HWIO read as WHIO); the reference with every kernel transposed matches it",
                kernels("transposed"), "coarse"),
    ]


# -- single layers: a residual, the refiner's crops ------------------------------------------------------
def residual_blocks(model) -> List[str]:
    return [name for name, module in model.named_modules() if getattr(module, "use_residual", False)]


def without_residual(block: str):
    def edit(model) -> None:
        model.get_submodule(block).use_residual = False
    return edit


def residual_variants(model) -> List[Variant]:
    return [Variant("stage", f"no-residual-{name}", f"layer {name}: its residual connection is missing (the block "
                    "returns its branch alone); the reference without it matches it", without_residual(name), "coarse")
            for name in residual_blocks(model)]


def shifted_crops(dy: int, dx: int, sizes=(2, 4)):
    """The refiner's patches cut (dy, dx) pixels off (at the half- and/or full-resolution crops)."""
    def edit(model) -> None:
        import types
        import torch.nn.functional as F
        refiner = model.refiner
        original = refiner.crop_patch

        def crop_patch(self, x, b, y, i, size, padding):
            if size not in sizes:
                return original(x, b, y, i, size, padding)
            x = F.pad(x, (padding + 1,) * 4)[:, :, 1 + dy:, 1 + dx:]
            window = size + 2 * padding
            return x.permute(0, 2, 3, 1).unfold(1, window, size).unfold(2, window, size)[b, y, i]

        refiner.crop_patch = types.MethodType(crop_patch, refiner)
    return edit


def crop_variants() -> List[Variant]:
    """Every crop of the refiner one pixel off, then the half-resolution or full-resolution ones alone."""
    found = []
    for sizes, which, suffix in (((2, 4), "its patches are", ""), ((2,), "its half-resolution patches are", "-half"),
                                 ((4,), "its full-resolution patches are", "-full")):
        for dy, dx, words in ((1, 0, "one pixel down"), (-1, 0, "one pixel up"), (0, 1, "one pixel right"),
                              (0, -1, "one pixel left")):
            found.append(Variant("stage", f"crop-shift-{dy}-{dx}{suffix}", f"refiner: {which} cut {words} of where "
                                 "they belong; the reference with that crop matches it", shifted_crops(dy, dx, sizes),
                                 "refiner"))
    return found
