"""Candidates with realistic export bugs planted into a faithful model, built in-process (no files).

Each returns a `Candidate` whose runner is a callable, so the parity engine checks it exactly like a
loaded file, and the `expected` diagnosis code. Used by the tests (every one must fail with its code)
and by `calibrate_factors` (the ratios that set the tolerance factors).
"""
import contextlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from .candidates import Candidate

OUTPUTS = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")


@dataclass
class Planted:
    name: str
    expected: str  # diagnosis code
    make: Callable  # (reference spec, knobs) -> Candidate
    knobs: Optional[Dict[str, object]] = None  # knobs the check uses instead of the default ones


def torch_candidate(label: str, model, wrap: Optional[Callable] = None, outputs_nhwc: bool = False,
                    precision: str = "fp32", metadata: Optional[Dict[str, str]] = None) -> Candidate:
    """A Candidate running a PyTorch `model` (fp32 CPU); `wrap(src, bgr) -> (src, bgr)` edits inputs first."""
    import torch
    from bgmv2.converters.runner import Runner

    def fn(src, bgr):
        if wrap is not None:
            src, bgr = wrap(src, bgr)
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(src)), torch.from_numpy(np.ascontiguousarray(bgr)))
        out = [o.float().numpy() for o in out]
        return [o.transpose(0, 2, 3, 1) for o in out] if outputs_nhwc else out

    runner = Runner(fn, "pth", label, OUTPUTS, "NCHW", metadata or {}, precision, model)
    return Candidate(label, label, "pth", "file", "cpu", "PyTorch eager (planted)", precision, runner, {}, "none",
                     False, dict(metadata or {}))


def build(spec, knobs: Dict[str, object], **changes):
    from bgmv2.converters.torch_formats import torch_model
    return torch_model(spec, dict(knobs, **changes) if spec.kind == "refine" else None).eval()


def noisy(parameter: str, strength: float, seed: int = 0):
    """Multiplicative Gaussian noise of `strength` (0.05: 5%) on one weight tensor."""
    def make(spec, knobs):
        import torch
        model = build(spec, knobs)
        tensor = dict(model.named_parameters())[parameter]
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            tensor.mul_(1 + strength * torch.randn(tensor.shape, generator=generator))
        return torch_candidate(f"noise {strength:.0%} on {parameter}", model)
    return make


def shifted(parameter: str, shift: float):
    def make(spec, knobs):
        import torch
        model = build(spec, knobs)
        with torch.no_grad():
            dict(model.named_parameters())[parameter].add_(shift)
        return torch_candidate(f"{parameter} + {shift:g}", model)
    return make


def inputs_edited(label: str, wrap: Callable):
    def make(spec, knobs):
        return torch_candidate(label, build(spec, knobs), wrap)
    return make


def nhwc_outputs(spec, knobs):
    return torch_candidate("outputs in NHWC", build(spec, knobs), outputs_nhwc=True)


def rounded_weights(dtype_name: str):
    def make(spec, knobs):
        import torch
        model = build(spec, knobs)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
        with torch.no_grad():
            for tensor in list(model.parameters()) + list(model.buffers()):
                if tensor.is_floating_point():
                    tensor.copy_(tensor.to(dtype).float())
        return torch_candidate(f"weights rounded to {dtype_name}", model)
    return make


def other_knob(name: str, value):
    def make(spec, knobs):
        return torch_candidate(f"exported with {name}={value}", build(spec, knobs, **{name: value}))
    return make


class PatchedResize:
    """`torch.nn.functional` with `interpolate` changed (align_corners=True, or nearest) in one module."""

    def __init__(self, how: str):
        import torch.nn.functional as F
        self.F, self.how = F, how

    def __getattr__(self, name):
        return getattr(self.F, name)

    def interpolate(self, x, *args, **kwargs):
        if self.how == "align_corners":
            kwargs["align_corners"] = True
            kwargs.pop("recompute_scale_factor", None)
        else:
            kwargs.pop("align_corners", None)
            kwargs["mode"] = "nearest"
        return self.F.interpolate(x, *args, **kwargs)


def resize_semantics(module_name: str, how: str):
    """The model with every `F.interpolate` of `pytorch_impl.<module_name>` changed while it runs."""
    def make(spec, knobs):
        import importlib
        module = importlib.import_module(f"bgmv2.pytorch_impl.{module_name}")
        model = build(spec, knobs)

        @contextlib.contextmanager
        def patched():
            original = module.F
            module.F = PatchedResize(how)
            try:
                yield
            finally:
                module.F = original

        class Patched:
            def __call__(self, src, bgr):
                with patched():
                    return model(src, bgr)

            def state_dict(self):
                return model.state_dict()

        return torch_candidate(f"resize {how} in {module_name}", Patched())
    return make


def other_backbone(backbone: str = "resnet50"):
    def make(spec, knobs):
        from bgmv2 import pytorch_impl
        import torch
        torch.manual_seed(0)
        model = pytorch_impl.MattingRefine(backbone, **(knobs if spec.kind == "refine" else {})).eval()
        return torch_candidate(f"a {backbone} model", model, metadata={})
    return make


def channel_flip(src, bgr):
    return src[:, ::-1], bgr[:, ::-1]


def swap(src, bgr):
    return bgr, src


def expects_0_255(src, bgr):
    """A file made for 0-255 inputs (it divides by 255 inside) given 0-1 pictures: the model sees
    values 255 times too small. (Feeding 0-255 values to a model that takes 0-1 is refused by the
    input check, so the bug is planted the way round that runs.)"""
    return src / 255.0, bgr / 255.0


def brightness(src, bgr):
    return np.clip(src * 1.03, 0, 1), np.clip(bgr * 1.03, 0, 1)


def default_set() -> List[Planted]:
    """The fast planted-bug set (MobileNetV2): each must fail with `expected`."""
    return [
        Planted("noise-aspp-5%", "stage", noisy("aspp.convs.1.0.weight", 0.05)),
        Planted("noise-refiner-5%", "stage", noisy("refiner.conv1.weight", 0.05)),
        Planted("channel-order", "channel-order", inputs_edited("RGB read as BGR", channel_flip)),
        Planted("inputs-swapped", "inputs-swapped", inputs_edited("src and bgr swapped", swap)),
        Planted("value-range", "value-range", inputs_edited("a file that expects 0-255 inputs", expects_0_255)),
        Planted("layout", "layout", nhwc_outputs),
        Planted("resize-align-corners", "stage", resize_semantics("model", "align_corners")),
        Planted("weights-bf16", "weights-precision", rounded_weights("bf16")),
        Planted("knob-sample-pixels", "knobs", other_knob("refine_sample_pixels", 16 * 500)),
        Planted("knob-backbone-scale", "knobs", other_knob("backbone_scale", 0.5)),
        Planted("knob-threshold", "knobs", other_knob("refine_threshold", 0.05),
                {"refine_mode": "thresholding", "refine_threshold": 0.1}),
        Planted("knob-prevent-oversampling", "knobs", other_knob("refine_prevent_oversampling", False),
                {"refine_sample_pixels": 16 * 400}),  # k above the cells with any error: the knob shows
        Planted("bias-shift", "stage", shifted("decoder.conv4.bias", 0.01)),
    ]


def slow_set() -> List[Planted]:
    """More strengths and layers, and another backbone."""
    return [
        Planted("noise-aspp-2%", "stage", noisy("aspp.convs.1.0.weight", 0.02, seed=1)),
        Planted("noise-backbone-5%", "stage", noisy("backbone.features.3.conv.1.0.weight", 0.05)),
        Planted("noise-refiner-2%", "stage", noisy("refiner.conv3.weight", 0.02)),
        Planted("bias-shift-small", "stage", shifted("decoder.conv4.bias", 0.002)),
        Planted("backbone-resnet50", "backbone", other_backbone("resnet50")),
        Planted("knob-mode-full", "knobs", other_knob("refine_mode", "full")),
        Planted("brightness", "stage", inputs_edited("inputs 3% brighter", brightness)),
        Planted("resize-nearest-refiner", "stage", resize_semantics("refiner", "nearest")),
        Planted("noise-decoder-2%", "stage", noisy("decoder.conv1.weight", 0.02)),
    ]



def check_planted(reference, knobs: Dict[str, object], probes, chosen: Optional[List[Planted]] = None) -> list:
    """Every planted bug of `chosen` (default: the fast set) checked like a file: `CaseResult`s whose
    `expected_diagnosis` is the code each should get (a planted bug that passes means a blind check)."""
    from .engine import check_candidate
    results = []
    for planted in chosen if chosen is not None else default_set():
        used = dict(knobs, **(planted.knobs or {}))
        result = check_candidate(reference, planted.make(reference.spec, used), used, {k: "planted" for k in used},
                                 probes)
        result.label = f"planted: {planted.name}"
        result.what = f"{result.path} (expected diagnosis: {planted.expected})"
        result.expected_diagnosis = planted.expected
        results.append(result)
    return results
