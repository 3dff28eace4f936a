"""The one runner every model file gets from `converters.load`: `runner(src, bgr)` -> the named outputs.

Inputs: NCHW float RGB in [0, 1], numpy arrays or torch tensors, any height and width (a file that does
not pad and crop inside its graph is padded here, edge pixels repeated, and its outputs cropped back).
Whatever runs the file, the inputs meet one rule first (`bgmv2.contract`, the rule PyTorch applies):
layout, dtype, equal shapes, no NaN or infinity, no 0-255 or normalised values.
Outputs: the contract names (`pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm`; a MattingBase `pha, fgr, err,
hid`), NCHW float32 numpy arrays; `runner.run(src, bgr, to="torch")` returns torch tensors on the
inputs' device instead (the apps render on the GPU without a round trip through the host).
Attributes: `format`, `path`, `device` ("cpu", "cuda:0", ...), `runtime` (its name in the registry:
torch, onnxruntime, openvino, tensorflow, litert, fast, ...), `engine` (what computes, with versions,
for reports), `precision`, `layout` (of the file's own inputs), `metadata`, `model` (the framework's
object, for callers that want it).
"""
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from bgmv2 import contract
from .errors import ConversionError, first_line


def is_torch(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def check_inputs(src, bgr) -> None:
    """The contract's rule for a pair of inputs (numpy or torch); ConversionError with its message."""
    for name, x in (("src", src), ("bgr", bgr)):
        numpy = not is_torch(x)
        if numpy and not isinstance(x, np.ndarray):
            raise ConversionError(f"{name} must be a numpy array or a torch tensor (NCHW float RGB in [0, 1]); "
                                  f"got {type(x).__name__}.")
        shape = [int(d) for d in x.shape]
        floating = x.is_floating_point() if not numpy else np.issubdtype(x.dtype, np.floating)
        dtype = str(x.dtype)
        problem = (contract.rank_problem(name, shape, numpy) or contract.dtype_problem(name, dtype, floating, numpy)
                   or contract.empty_problem(name, shape))
        if problem:
            raise ConversionError(problem)
    problem = contract.pair_problem([int(d) for d in src.shape], [int(d) for d in bgr.shape])
    if problem:
        raise ConversionError(problem)
    for name, x in (("src", src), ("bgr", bgr)):
        lo, hi = value_range(x)
        problem = contract.value_problem(name, lo, hi, not is_torch(x))
        if problem:
            raise ConversionError(problem)


def value_range(x):
    """Smallest and largest value in one pass for torch (aminmax; NaN propagates), two for numpy."""
    if is_torch(x):
        import torch
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            x = x.permute(0, 2, 3, 1)  # the same values, contiguous: aminmax would copy first
        lo, hi = torch.aminmax(x.detach())
        return float(lo), float(hi)
    return float(np.min(x)), float(np.max(x))


class Runner:
    """A loaded model file. `fn(src, bgr)` takes NCHW float32 inputs (numpy arrays, or torch tensors on
    `device` when `takes == "torch"`) padded to a multiple of 4 unless the file pads itself (`any_size`)
    and returns its outputs in the file's order and layout; the runner checks, converts and names."""

    def __init__(self, fn: Callable, fmt: str, path: str, outputs: Sequence[str], layout: str = "NCHW",
                 metadata: Optional[Dict[str, str]] = None, precision: str = "fp32", model=None,
                 any_size: bool = False, *, device: str = "cpu", runtime: str = "", engine: str = "",
                 takes: str = "numpy"):
        self.fn = fn
        self.format = fmt
        self.path = path
        self.outputs = tuple(outputs)
        self.layout = layout
        self.metadata = dict(metadata or {})
        self.precision = precision
        self.model = model
        self.any_size = any_size or self.metadata.get("frame_sizes") == "any"
        self.device = device
        self.runtime = runtime
        self.engine = engine or runtime
        self.takes = takes

    def __repr__(self) -> str:
        return (f"Runner({self.format}, {self.path!r}, runtime={self.runtime}, device={self.device}, "
                f"precision={self.precision}, outputs={self.outputs})")

    def describe(self) -> str:
        """One line for messages and reports: what runs, where, how."""
        return f"{self.format} via {self.engine} on {self.device} ({self.precision})"

    def __call__(self, src, bgr) -> Dict[str, np.ndarray]:
        return self.run(src, bgr)

    def run(self, src, bgr, to: str = "numpy") -> Dict[str, object]:
        """The named outputs as numpy arrays (`to="numpy"`) or torch tensors (`to="torch"`, on the
        inputs' device, the CPU for numpy inputs)."""
        check_inputs(src, bgr)
        as_torch = to == "torch"
        where = src.device if is_torch(src) else "cpu"
        height, width = int(src.shape[-2]), int(src.shape[-1])
        a, b = self.native(src), self.native(bgr)
        pad = not self.any_size and (height % 4 or width % 4)
        if pad:
            a, b = pad_to_4(a), pad_to_4(b)
        try:
            results = self.fn(a, b)
        except ConversionError:
            raise
        except Exception as error:  # noqa: BLE001 - a framework's failure, reported as ours
            raise ConversionError(f"{self.path} ({self.format}, {self.engine}) failed to run on a "
                                  f"{src.shape[0]}x3x{height}x{width} input: {first_line(error)}") from None
        if len(results) != len(self.outputs):
            raise ConversionError(f"{self.path} returned {len(results)} outputs; expected {len(self.outputs)} "
                                  f"({', '.join(self.outputs)}).")
        padded = (int(a.shape[-2]), int(a.shape[-1]))
        named = {}
        for name, value in zip(self.outputs, results):
            value = self.nchw(value)
            if pad and tuple(value.shape[-2:]) == padded:
                value = value[..., :height, :width]
            named[name] = to_torch(value, where) if as_torch else to_numpy(value)
        return named

    def native(self, x):
        """An input as `fn` takes it: float32, NCHW, numpy (contiguous) or torch on the runner's device."""
        if self.takes == "torch":
            import torch
            if not is_torch(x):
                x = torch.from_numpy(np.ascontiguousarray(x))
            return x.to(self.device, torch.float32)
        return np.ascontiguousarray(to_numpy(x))

    def nchw(self, value):
        if self.layout == "NHWC" and len(value.shape) == 4:
            return value.permute(0, 3, 1, 2) if is_torch(value) else np.asarray(value).transpose(0, 3, 1, 2)
        return value


def to_numpy(x) -> np.ndarray:
    if is_torch(x):
        import torch
        x = x.detach()
        return (x if x.dtype == torch.float32 else x.float()).cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def to_torch(x, device):
    import torch
    if not is_torch(x):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return x.float().to(device)


def pad_to_4(x):
    """Bottom and right edge padding to a multiple of 4 (numpy or torch), as `pytorch_impl.matte`."""
    pad_h, pad_w = -int(x.shape[-2]) % 4, -int(x.shape[-1]) % 4
    if is_torch(x):
        from torch.nn import functional as F
        return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
