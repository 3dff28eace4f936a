"""The reference of every "same alpha" check: a model's weights run in PyTorch eager on the CPU, in
float32 (the truth candidates are compared with), float64 (the exact result its own rounding error is
measured against) and fp16 / bf16 (the error a candidate of that precision may have), per knob set.

`bgmv2 parity`, `convert`'s check and the fast runtime all measure against one of these.
"""
from typing import Callable, Dict, Optional

import numpy as np

from .meta import ModelSpec


class Reference:
    """`spec`'s weights in PyTorch eager on the CPU (or a ready model, `model`), with every run cached."""

    def __init__(self, spec: Optional[ModelSpec] = None, model=None, path: str = "(weights)"):
        if (spec is None) == (model is None):
            raise ValueError("Reference takes the weights (spec) or a model, one of them")
        self.spec, self.model, self.path = spec, model, path
        self.models: Dict[tuple, Callable] = {}
        self.outputs: Dict[tuple, tuple] = {}  # (knobs, probe id, precision, weights) -> (probe, outputs)
        self.noises: Dict[tuple, tuple] = {}  # (knobs, probe ids, precision) -> (probes, ParityMetrics)

    def torch_model(self, knobs: Dict[str, object]):
        """A fresh float32 eager model at `knobs` (knobs do not apply to a MattingBase)."""
        if self.model is not None:
            import copy
            return copy.deepcopy(self.model).float().cpu().eval()
        from .torch_formats import torch_model
        return torch_model(self.spec, knobs if self.spec.kind == "refine" else None).eval()

    def names(self, knobs: Dict[str, object]):
        """The output names, in contract order, of the model at `knobs`."""
        from .formats import OUTPUTS_BASE, OUTPUTS_REFINE
        if self.spec is not None:
            return OUTPUTS_REFINE if self.spec.kind == "refine" else OUTPUTS_BASE
        from .torch_formats import is_refine
        return OUTPUTS_REFINE if is_refine(self.model) else OUTPUTS_BASE

    def runner(self, knobs: Dict[str, object]):
        """The float32 reference as a Runner (numpy or torch in, named outputs out)."""
        return self.model_as(knobs, "fp32")

    def run(self, knobs: Dict[str, object], probe) -> Dict[str, np.ndarray]:
        """Reference outputs for a probe (cached: every candidate with these knobs is compared to them)."""
        return self.run_as(knobs, probe, "fp32")

    def run_as(self, knobs: Dict[str, object], probe, precision: str = "fp32",
               weights: Optional[str] = None) -> Dict[str, np.ndarray]:
        """The reference model computing in `precision` (fp64, fp32, fp16, bf16; outputs as float32 or
        float64), optionally with its weights rounded to `weights` (fp16 / bf16) first; cached per probe."""
        key = (tuple(sorted(knobs.items())), id(probe), precision, weights)
        if key not in self.outputs:  # the probe is kept with its outputs, so its id is not reused meanwhile
            self.outputs[key] = (probe, self.compute(knobs, probe, precision, weights))
        return self.outputs[key][1]

    def compute(self, knobs: Dict[str, object], probe, precision: str, weights: Optional[str]):
        """Run the model on one probe; with weights (a spec), kept on disk across runs (`reference_cache`)."""
        def run():
            return self.model_as(knobs, precision, weights)(probe.src, probe.bgr)
        if self.spec is None:
            return run()
        from .reference_cache import cached_run
        return cached_run(self.spec, knobs, probe, precision, weights, run)

    def model_as(self, knobs: Dict[str, object], precision: str, weights: Optional[str] = None):
        """`run(src, bgr) -> named numpy outputs` of the model computing in `precision`."""
        key = (tuple(sorted(knobs.items())), precision, weights)
        if key not in self.models:
            import torch
            from .formats import OUTPUTS_BASE, OUTPUTS_REFINE
            from .torch_formats import is_refine, torch_dtype
            model = self.torch_model(knobs)
            if weights:
                with torch.no_grad():
                    for tensor in list(model.parameters()) + list(model.buffers()):
                        if tensor.is_floating_point():
                            tensor.copy_(tensor.to(torch_dtype(weights)).to(tensor.dtype))
            dtype = torch_dtype(precision)
            model = model.to(dtype)
            names = OUTPUTS_REFINE if is_refine(model) else OUTPUTS_BASE
            keep = torch.float64 if dtype == torch.float64 else torch.float32

            def run(src, bgr):
                with torch.inference_mode():
                    out = model(torch.as_tensor(src).to(dtype), torch.as_tensor(bgr).to(dtype))
                return {name: o.to(keep).numpy() for name, o in zip(names, out)}
            self.models[key] = run
        return self.models[key]

    def noise(self, knobs: Dict[str, object], probes, precision: str = "fp32"):
        """How far the reference computing in `precision` lies from its own float64 result (`ParityMetrics`,
        alpha and foreground outside the cells whose selection flips): the scale tolerances follow."""
        from .agreement import ParityMetrics
        key = (tuple(sorted(knobs.items())), tuple(id(p) for p in probes), precision)
        if key not in self.noises:
            found = ParityMetrics()
            for probe in probes:
                found.add(self.run_as(knobs, probe, "fp64"), self.run_as(knobs, probe, precision), knobs, 0.0)
            self.noises[key] = (list(probes), found)
        return self.noises[key][1]
