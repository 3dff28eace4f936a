"""Candidates with realistic export bugs planted into a faithful model, built in-process (no files).

Each returns a `Candidate` whose runner is a callable, so the parity engine checks it exactly like a
loaded file, and the `expected` diagnosis code. Used by the tests (every one must fail with its code)
and by `calibrate_factors` (the ratios that set the tolerance factors).
"""
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


def variant_plant(name: str):
    """The reference changed as `variants` names it (`first-layer-bgr`, `resize-asymmetric`,
    `padding-tf-same`, ...): the same change the diagnosis re-runs to explain it."""
    def make(spec, knobs):
        from .variants import variant_model
        variant = find_variant(spec, knobs, name)
        model, context = variant_model(spec, knobs, variant)

        class Changed:
            def __call__(self, src, bgr):
                from .variants import context_copy
                with context_copy(context):
                    return model(src, bgr)

            def state_dict(self):
                return model.state_dict()

            def parameters(self):
                return model.parameters()

            def buffers(self):
                return model.buffers()

        return torch_candidate(variant.name, Changed())
    return make


def find_variant(spec, knobs, name: str):
    from .variants import (convention_variants, crop_variants, resize_variants, residual_variants, variant_model,
                           weight_variants)
    every = (weight_variants() + convention_variants() + resize_variants() + crop_variants()
             + residual_variants(variant_model(spec, knobs)[0]))
    return next(v for v in every if v.name == name)


def resize_semantics(module_name: str, how: str):
    """The model with every bilinear `F.interpolate` of `bgmv2.pytorch_impl.<module_name>` done `how`."""
    return variant_plant(f"resize-{how}-{module_name}")


def other_backbone(backbone: str = "resnet50"):
    def make(spec, knobs):
        from bgmv2 import pytorch_impl
        import torch
        torch.manual_seed(0)
        model = pytorch_impl.MattingRefine(backbone, **(knobs if spec.kind == "refine" else {})).eval()
        return torch_candidate(f"a {backbone} model", model, metadata={})
    return make


def outputs_swapped(first: str, second: str):
    """A file whose outputs `first` and `second` carry each other's names."""
    def make(spec, knobs):
        model = build(spec, knobs)
        i, j = OUTPUTS.index(first), OUTPUTS.index(second)

        class Swapped:
            def __call__(self, src, bgr):
                out = list(model(src, bgr))
                out[i], out[j] = out[j], out[i]
                return out

            def state_dict(self):
                return model.state_dict()

        return torch_candidate(f"{first} and {second} swapped by name", Swapped())
    return make


class Patched:
    """`model` run with `module.<name>` replaced by `value` while it runs (put back after), its inputs
    mapped by `inputs` first."""

    def __init__(self, model, module, name: str, value, inputs=lambda x: x):
        self.model, self.module, self.name, self.value, self.inputs = model, module, name, value, inputs

    def __call__(self, src, bgr):
        original = getattr(self.module, self.name)
        setattr(self.module, self.name, self.value)
        try:
            return self.model(self.inputs(src), self.inputs(bgr))
        finally:
            setattr(self.module, self.name, original)

    def state_dict(self):
        return self.model.state_dict()


def fgr_unclamped(spec, knobs):
    """The final clamp of the foreground left out (its values may leave [0, 1])."""
    from bgmv2.pytorch_impl import model as module
    model = build(spec, knobs)
    original = module.refined_outputs

    def unclamped(src, src_sm, pha, fgr, *rest):
        out = list(original(src, src_sm, pha, fgr, *rest))
        out[1] = fgr + src
        return tuple(out)

    return torch_candidate("fgr clamp removed", Patched(model, module, "refined_outputs", unclamped))


def batch_crop_from_first(spec, knobs):
    """Upstream's export bug: the refiner crops every patch from batch item 1."""
    import types
    model = build(spec, knobs)
    refiner = model.refiner
    original = refiner.crop_patch

    def crop_patch(self, x, b, y, i, size, padding):
        return original(x, b * 0, y, i, size, padding)

    refiner.crop_patch = types.MethodType(crop_patch, refiner)
    return torch_candidate("refiner crops from batch item 1", model)


def fp16_compute(spec, knobs):
    """Weights and compute in fp16 behind fp32 inputs and outputs (a float16 conversion that keeps the I/O)."""
    model = build(spec, knobs).half()

    class Half:
        def __call__(self, src, bgr):
            return [o.float() for o in model(src.half(), bgr.half())]

        def state_dict(self):
            return model.state_dict()

        def parameters(self):
            return model.parameters()

        def buffers(self):
            return model.buffers()

    return torch_candidate("fp16 weights and compute, fp32 I/O", Half())


def int8_quantised(spec, knobs):
    """int8 dynamic quantisation as ONNX Runtime's quantize_dynamic does it (BatchNorm folded first)."""
    from .diagnosis_precision import folded_model, int8_dynamic
    model = folded_model(spec, knobs)
    int8_dynamic(model)
    return torch_candidate("int8 dynamic quantisation", model)


def imagenet_normalised(spec, knobs):
    """A file with ImageNet normalisation baked in: the network sees (x - mean) / std (the model's own
    input check, which refuses such values, is left out as an exported graph has none)."""
    import torch
    from bgmv2.pytorch_impl import model as module
    model = build(spec, knobs)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)

    return torch_candidate("ImageNet normalisation baked in",
                           Patched(model, module, "check_pair", lambda *args: None,
                                   inputs=lambda x: (x - mean) / std))


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
        Planted("resize-align-corners", "convention", resize_semantics("model", "align_corners")),
        Planted("weights-bf16", "weights-precision", rounded_weights("bf16")),
        Planted("knob-sample-pixels", "knobs", other_knob("refine_sample_pixels", 16 * 500)),
        Planted("knob-backbone-scale", "knobs", other_knob("backbone_scale", 0.5)),
        Planted("knob-threshold", "knobs", other_knob("refine_threshold", 0.05),
                {"refine_mode": "thresholding", "refine_threshold": 0.1}),
        Planted("knob-prevent-oversampling", "knobs", other_knob("refine_prevent_oversampling", False),
                {"refine_sample_pixels": 16 * 400}),  # k above the cells with any error: the knob shows
        Planted("bias-shift", "stage", shifted("decoder.conv4.bias", 0.01)),
        Planted("outputs-pha-fgr", "outputs-swapped", outputs_swapped("pha", "fgr")),
        Planted("outputs-pha_sm-err_sm", "outputs-swapped", outputs_swapped("pha_sm", "err_sm")),
        Planted("normalisation-imagenet", "value-range", imagenet_normalised),
        Planted("first-layer-bgr", "channel-order", variant_plant("first-layer-bgr")),
        Planted("batch-item-1-crops", "batch", batch_crop_from_first),
        Planted("int8-dynamic", "weights-precision", int8_quantised),
        Planted("resize-tf1-asymmetric", "convention", variant_plant("resize-asymmetric")),
        Planted("padding-tf-same", "convention", variant_plant("padding-tf-same")),
        Planted("fgr-clamp-removed", "convention", fgr_unclamped),
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
        Planted("resize-nearest-refiner", "convention", resize_semantics("refiner", "nearest")),
        Planted("resize-antialias", "convention", variant_plant("resize-antialias-model")),
        Planted("batchnorm-eps-keras", "convention", variant_plant("batchnorm-eps-1e-3")),
        Planted("relu6-as-relu", "convention", variant_plant("relu6-as-relu")),
        Planted("kernels-flipped", "layout", variant_plant("kernels-flipped")),
        Planted("kernels-transposed", "layout", variant_plant("kernels-transposed")),
        Planted("refiner-crop-shift-full", "stage", variant_plant("crop-shift-0--1-full")),
        Planted("residual-dropped", "stage", variant_plant("no-residual-backbone.features.5")),
        Planted("refiner-crop-shift", "stage", variant_plant("crop-shift-1-0")),
        Planted("fp16-compute", "weights-precision", fp16_compute),
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
