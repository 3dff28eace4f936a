"""Diagnosis of lower precision: weights rounded (fp16, bf16), weights and compute in fp16 / bf16, int8
dynamic quantisation. Read from the file (what its graph or model holds: `precision_evidence`) and
decided by re-running the reference that way (`precision_step`):

- weights rounded, computing in fp32: the reference with its weights rounded matches it exactly;
  where the file folded BatchNorm into the convolutions first (every ONNX export), the rounding of
  the folded weights is re-run (`folded_model`) and must come `closer` (diagnosis_core);
- int8 dynamic quantisation (`onnxruntime.quantization.quantize_dynamic`: ConvInteger fed by
  DynamicQuantizeLinear): the folded reference with int8 symmetric per-tensor weights and uint8
  per-call activations at every convolution, which must come `closer`;
- fp16 / bf16 compute (its graph or model holds that type): within that precision's tolerance of
  the reference (the limits a file declared in that precision would get, from the reference's own
  error computing in it).
Without any evidence the int8 and rounded-weights re-runs are tried too (a PyTorch model shows none).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .diagnosis_core import closer, diagnosis, matches, on_all, safely

ONNX_TYPES = {1: "fp32", 10: "fp16", 16: "bf16"}
INT8_OPS = ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
            "DequantizeLinear", "QuantizeLinear")


@dataclass
class Evidence:
    """What a file shows of lower precision, in words per kind (int8, fp16, bf16, fp16-weights, bf16-weights)."""
    kinds: Dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        return "; ".join(self.kinds.values())


def representable(values: np.ndarray, kind: str) -> bool:
    """Whether float32 `values` are all exactly fp16 / bf16 numbers (weights rounded, stored as fp32)."""
    values = np.ascontiguousarray(values, np.float32).reshape(-1)
    if kind == "bf16":
        return bool(((values.view(np.uint32) & 0xFFFF) == 0).all())
    with np.errstate(over="ignore"):
        return bool((values.astype(np.float16).astype(np.float32) == values).all())


def share_representable(tensors: List[np.ndarray], kind: str) -> float:
    big = [t for t in tensors if t.size >= 64]
    total = sum(t.size for t in big)
    return sum(t.size for t in big if representable(t, kind)) / total if total else 0.0


def onnx_evidence(path: str) -> Evidence:
    import os
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path, load_external_data=False)
    graph, found = model.graph, Evidence()
    ops = [node.op_type for node in graph.node]
    quantised = [op for op in INT8_OPS if op in ops]
    if quantised:
        convs = ops.count("ConvInteger") + ops.count("QLinearConv")
        found.kinds["int8"] = (f"int8 quantisation in its graph: {convs} of {convs + ops.count('Conv')} convolutions "
                               f"are integer ({', '.join(f'{ops.count(op)} {op}' for op in quantised)})")
    types = {}
    for tensor in graph.initializer:
        if len(tensor.dims) >= 1 and tensor.data_type in ONNX_TYPES:
            types[ONNX_TYPES[tensor.data_type]] = types.get(ONNX_TYPES[tensor.data_type], 0) + 1
    casts = {ONNX_TYPES.get(a.i) for node in graph.node if node.op_type == "Cast"
             for a in node.attribute if a.name == "to"}
    for kind in ("fp16", "bf16"):
        if types.get(kind):
            computed = kind in casts or graph.input[0].type.tensor_type.elem_type == {"fp16": 10, "bf16": 16}[kind]
            found.kinds[kind] = (f"{types[kind]} of {sum(types.values())} float initializers are {kind}"
                                 + (f", and it casts activations to {kind} (weights and compute in {kind})"
                                    if computed else ""))
    if not quantised and not types.get("fp16") and not types.get("bf16"):
        folder = os.path.dirname(os.path.abspath(path))
        weights = [numpy_helper.to_array(t, folder) for t in graph.initializer if t.data_type == 1 and len(t.dims) == 4]
        for kind in ("bf16", "fp16"):
            if weights and share_representable(weights, kind) > 0.99:
                found.kinds[f"{kind}-weights"] = f"its float32 convolution weights are all exact {kind} numbers"
                break
    return found


def torch_evidence(model, reference_state) -> Evidence:
    import torch
    found = Evidence()
    tensors = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    dtypes = {t.dtype for t in tensors}
    for kind, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        if dtype in dtypes:
            found.kinds[kind] = f"its parameters are {kind} (weights and compute in {kind})"
    if not found.kinds:
        mine = [t.detach().float().numpy() for t in tensors if t.ndim == 4]
        theirs = [np.asarray(v, np.float32) for v in reference_state.values() if np.ndim(v) == 4]
        for kind in ("bf16", "fp16"):
            if mine and share_representable(mine, kind) > 0.99 and share_representable(theirs, kind) < 0.99:
                found.kinds[f"{kind}-weights"] = f"its convolution weights are all exact {kind} numbers"
                break
    return found


def precision_evidence(candidate, reference) -> Evidence:
    """What the candidate's file or model shows of lower precision (empty when nothing)."""
    runner = candidate.runner
    path = str(getattr(runner, "path", "") or candidate.path)
    model = getattr(runner, "model", None)
    try:
        if candidate.format == "onnx" or path.endswith(".onnx"):
            return onnx_evidence(path)
        if model is not None and hasattr(model, "parameters"):
            return torch_evidence(model, reference.spec.state)
    except Exception:  # noqa: BLE001 - nothing readable: no evidence
        pass
    return Evidence()


# -- re-runs ---------------------------------------------------------------------------------------------
def folded_model(spec, knobs):
    """The reference model with every BatchNorm folded into the convolution before it (as exporters do)."""
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from .variants import base_model
    model = base_model(spec, knobs)
    pairs = bn_pairs(spec.backbone, spec.kind, spec.refine_kernel_size)
    with torch.no_grad():
        for bn_name, conv_name in pairs.items():
            conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
            set_module(model, conv_name, fuse_conv_bn_eval(conv, bn))
            set_module(model, bn_name, nn.Identity())
    return model


PAIRS: Dict[tuple, Dict[str, str]] = {}


def bn_pairs(backbone: str, kind: str, kernel_size) -> Dict[str, str]:
    """BatchNorm -> the convolution before it (`converters.onnx_format.conv_bn_pairs`, found once)."""
    from bgmv2.converters.onnx_format import conv_bn_pairs
    key = (backbone, kind, kernel_size)
    if key not in PAIRS:
        PAIRS[key] = conv_bn_pairs(backbone, kind, kernel_size)
    return PAIRS[key]


def set_module(model, name: str, module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def round_weights(model, kind: str) -> None:
    import torch
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[kind]
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype).to(tensor.dtype))


def int8_dynamic(model) -> None:
    """ONNX Runtime's dynamic quantisation, simulated: each convolution's weights int8 symmetric per
    tensor (scale max |w| / 127), its input uint8 per call (scale (max(0, x) - min(0, x)) / 255)."""
    import torch
    from torch import nn

    def quantise_input(module, inputs):
        x = inputs[0]
        low, high = torch.clamp(x.min(), max=0), torch.clamp(x.max(), min=0)
        scale = (high - low) / 255
        if float(scale) == 0:
            return None
        zero = torch.clamp(torch.round(-low / scale), 0, 255)
        return ((torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale,)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                scale = module.weight.abs().max() / 127
                if float(scale) > 0:
                    module.weight.copy_(torch.clamp(torch.round(module.weight / scale), -127, 127) * scale)
                module.register_forward_pre_hook(quantise_input)


def run_model(model, names, probes) -> List[Dict[str, np.ndarray]]:
    import torch
    found = []
    for probe in probes:
        with torch.inference_mode():
            out = model(torch.from_numpy(probe.src), torch.from_numpy(probe.bgr))
        found.append({name: o.float().numpy() for name, o in zip(names, out)})
    return found


def folded_alternative(reference, knobs, probes, edit) -> Optional[List[Dict[str, np.ndarray]]]:
    def make():
        model = folded_model(reference.spec, knobs)
        edit(model)
        return run_model(model, reference.names(knobs), probes)
    return safely(make)


def precision_step(reference, candidate, knobs, probes, expected, got, limits) -> Optional[Dict[str, str]]:
    """`weights-precision` with which precision and how it was found, or None."""
    from bgmv2.converters.acceptance import rule_for
    evidence = precision_evidence(candidate, reference)
    said = f" ({evidence.text()})" if evidence.kinds else ""
    for kind in ("fp16", "bf16"):  # weights rounded, the network as the reference's: an exact re-run
        if reference.spec.precision == kind:
            continue  # rounding weights already in that precision changes nothing
        other = on_all(lambda probe: reference.run_as(knobs, probe, "fp32", kind), probes)
        if other is not None and safely(matches, other, got, knobs, limits):
            return diagnosis("weights-precision", f"its weights are rounded to {kind}{said}: the reference with "
                                                  f"{kind}-rounded weights matches it (computing in fp32)")
    if "int8" in evidence.kinds or not evidence.kinds:  # a model that shows nothing: try it anyway
        other = folded_alternative(reference, knobs, probes, int8_dynamic)
        factor = other is not None and closer(other, got, expected)
        if factor:
            near = ("matches it" if factor == float("inf") else
                    f"comes {factor:.0f}x closer to it than the fp32 reference")
            return diagnosis("weights-precision", f"int8 dynamic quantisation{said}: the reference with int8 "
                                                  f"weights and activations at every convolution {near}. Run the fp32 "
                                                  "file, or accept int8's error knowingly")
    for kind in ("fp16", "bf16"):
        if f"{kind}-weights" in evidence.kinds or kind in evidence.kinds or not evidence.kinds:
            other = folded_alternative(reference, knobs, probes, lambda model: round_weights(model, kind))
            factor = other is not None and (safely(matches, other, got, knobs, limits) or closer(other, got, expected))
            if factor:
                return diagnosis("weights-precision", f"its weights are rounded to {kind}{said}: the reference with "
                                                      f"its BatchNorm-folded weights rounded to {kind} matches it "
                                                      "(computing in fp32)")
    for kind in ("fp16", "bf16"):
        if kind not in evidence.kinds:
            continue
        low = rule_for(kind).limits(reference.noise(knobs, probes, kind))
        if safely(matches, expected, got, knobs, low):
            return diagnosis("weights-precision", f"weights and compute in {kind}{said}: within the {kind} tolerance "
                                                  f"of the reference (its own {kind} error measured against float64), "
                                                  f"though declared fp32. Declare it {kind} (metadata precision), or "
                                                  "export in fp32")
    return None
