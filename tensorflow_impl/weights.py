"""PyTorch state dicts in and out of the Keras model: a walk over the mirrored tree plus one layout
rule per layer kind. No name list: a key is the layer's module path plus the rule's tensor name.

- Conv2d: `weight` OIHW <-> `kernel` HWIO; `bias`.
- DepthwiseConv2d: `weight` (C, 1, kh, kw) <-> `kernel` (kh, kw, C, 1); `bias`.
- BatchNorm2d: `weight`, `bias`, `running_mean`, `running_var` <-> `gamma`, `beta`, `moving_mean`,
  `moving_variance`; `num_batches_tracked` (int64) <-> the variable of the same name.
Every Keras variable must be reached by exactly one rule (else the walk fails), and loading reports
missing, unexpected and mis-shaped entries, failing by default before anything is assigned.
Values go through `np.asarray`, so torch tensors, numpy arrays and lists all work without torch.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple

import keras
import numpy as np

from .layers import BatchNorm2d, Conv2d, DepthwiseConv2d, named_layers


@dataclass(frozen=True)
class Tensor:
    """One state-dict entry of a layer kind: its PyTorch name, Keras attribute and axis permutations."""
    torch_name: str
    keras_name: str
    to_keras: Tuple[int, ...] = ()
    to_torch: Tuple[int, ...] = ()


RULES: List[Tuple[type, Tuple[Tensor, ...]]] = [
    (DepthwiseConv2d, (Tensor("weight", "kernel", (2, 3, 0, 1), (2, 3, 0, 1)), Tensor("bias", "bias"))),
    (Conv2d, (Tensor("weight", "kernel", (2, 3, 1, 0), (3, 2, 0, 1)), Tensor("bias", "bias"))),
    (BatchNorm2d, (Tensor("weight", "gamma"), Tensor("bias", "beta"), Tensor("running_mean", "moving_mean"),
                   Tensor("running_var", "moving_variance"), Tensor("num_batches_tracked", "num_batches_tracked"))),
]


@dataclass(frozen=True)
class Entry:
    """A state-dict key bound to the Keras variable it maps to."""
    key: str
    variable: keras.Variable
    rule: Tensor

    def torch_shape(self) -> Tuple[int, ...]:
        shape = tuple(self.variable.shape)
        return tuple(shape[i] for i in self.rule.to_torch) if self.rule.to_torch else shape

    def to_keras(self, value: np.ndarray) -> np.ndarray:
        return np.transpose(value, self.rule.to_keras) if self.rule.to_keras else value

    def to_torch(self, value: np.ndarray) -> np.ndarray:
        return np.transpose(value, self.rule.to_torch) if self.rule.to_torch else value


def rule_for(layer: keras.layers.Layer):
    for kind, tensors in RULES:
        if isinstance(layer, kind):
            return tensors
    return None


def state_entries(model: keras.layers.Layer) -> List[Entry]:
    """Every state-dict entry of `model`, in PyTorch's order; checks that all variables are covered."""
    entries = []
    for path, layer in named_layers(model):
        tensors = rule_for(layer)
        if tensors is None:
            continue
        for tensor in tensors:
            variable = getattr(layer, tensor.keras_name, None)
            if variable is not None:  # e.g. no bias
                entries.append(Entry(f"{path}.{tensor.torch_name}", variable, tensor))
    covered = {id(entry.variable) for entry in entries}
    stray = [v.path for v in model.weights if id(v) not in covered]
    if stray or len(covered) != len(entries):
        raise RuntimeError(f"the weight map does not cover the model: variables without a rule {stray[:5]}, "
                           f"{len(entries) - len(covered)} variables reached twice")
    return entries


@dataclass
class LoadReport:
    """What `load_torch_state_dict` found: keys the model needs but the dict lacks, keys it has that the
    model does not, and keys whose shapes differ (key, expected PyTorch shape, given shape)."""
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def text(self, limit: int = 8) -> str:
        def listed(items: List[str]) -> str:
            more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing: {listed(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected: {listed(self.unexpected)}")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} with another shape: " + listed(
                [f"{k} (model {tuple(a)}, given {tuple(b)})" for k, a, b in self.mismatched]))
        return "; ".join(parts)


class StateDictError(ValueError):
    """The state dict does not fit the model; `.report` holds the details."""

    def __init__(self, message: str, report: LoadReport):
        super().__init__(message)
        self.report = report


def hint(report: LoadReport) -> str:
    """The likely cause of a mismatch, where the keys tell it."""
    keys = report.missing + report.unexpected + [k for k, _, _ in report.mismatched]
    if report.unexpected and all(k.startswith("refiner.") for k in report.unexpected):
        return " The state dict is a MattingRefine's: load it into MattingRefine."
    if report.missing and all(k.startswith("refiner.") for k in report.missing):
        return " The state dict is a MattingBase's: load it into MattingBase, or pass strict=False."
    if report.mismatched and all(k.startswith("refiner.conv") for k in keys):
        return " The refiner's kernel size differs: construct the model with the other refine_kernel_size."
    if any(k.startswith("backbone.") for k in keys):
        return " The backbone differs: construct the model with the checkpoint's backbone."
    return ""


def load_torch_state_dict(model: keras.layers.Layer, state_dict: Mapping, strict: bool = True) -> LoadReport:
    """Load a PyTorch state dict (official layout; values as numpy arrays, torch tensors, ...) into `model`.

    Values are cast to each variable's dtype. With `strict` (the default) any missing, unexpected or
    mis-shaped entry raises `StateDictError` and nothing is assigned; otherwise the fitting entries
    are loaded and the report says what was not.
    """
    entries = state_entries(model)
    report = LoadReport()
    known = {entry.key for entry in entries}
    report.unexpected = [key for key in state_dict if key not in known]
    values: Dict[str, np.ndarray] = {}
    for entry in entries:
        if entry.key not in state_dict:
            report.missing.append(entry.key)
            continue
        value = np.asarray(state_dict[entry.key])
        if tuple(value.shape) != entry.torch_shape():
            report.mismatched.append((entry.key, entry.torch_shape(), tuple(value.shape)))
            continue
        values[entry.key] = entry.to_keras(value).astype(keras.backend.standardize_dtype(entry.variable.dtype))
    if report and strict:
        raise StateDictError(f"the state dict does not fit {type(model).__name__}"
                             f"({getattr(model, 'backbone_name', '')}): {report.text()}.{hint(report)}", report)
    for entry in entries:
        if entry.key in values:
            entry.variable.assign(values[entry.key])
    return report


def torch_state_dict(model: keras.layers.Layer) -> Dict[str, np.ndarray]:
    """The model's weights as a PyTorch state dict of numpy arrays, official keys, order and layouts."""
    return {entry.key: np.array(entry.to_torch(np.asarray(entry.variable.numpy())), order="C")
            for entry in state_entries(model)}

