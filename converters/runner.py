"""The one face every format's model has: `runner(src, bgr) -> {name: float32 NCHW numpy array}`."""
from typing import Callable, Dict, Sequence

import numpy as np

from .errors import ConversionError, first_line


def as_nchw_array(name: str, x, any_size: bool = False) -> np.ndarray:
    """float32 (B, 3, H, W) numpy from numpy / torch / array-likes; (3, H, W) gets a batch axis.
    Height and width must be multiples of 4 unless the file pads and crops itself (`any_size`)."""
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255
    x = x.astype(np.float32, copy=False)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ConversionError(f"{name} must be NCHW (batch, 3, height, width) RGB; got shape {tuple(x.shape)}. Every "
                              "runner takes NCHW, also for TensorFlow-side files (the runner transposes to NHWC).")
    if not any_size and (x.shape[2] % 4 or x.shape[3] % 4):
        raise ConversionError(f"{name}: height and width must be multiples of 4; got {x.shape[2]}x{x.shape[3]}. "
                              "Pad the images (pytorch_impl.matte does it for PyTorch models).")
    return np.ascontiguousarray(x)


class Runner:
    """A loaded model file. `fn(src, bgr)` takes float32 NCHW numpy arrays and returns the outputs in
    the file's native layout; the runner converts them to named float32 NCHW arrays."""

    def __init__(self, fn: Callable, fmt: str, path: str, outputs: Sequence[str], layout: str = "NCHW",
                 metadata: Dict[str, str] = None, precision: str = "fp32", model=None, any_size: bool = False):
        self.fn = fn
        self.format = fmt
        self.path = path
        self.outputs = tuple(outputs)
        self.layout = layout
        self.metadata = dict(metadata or {})
        self.precision = precision
        self.model = model  # the framework object, for callers that want it
        self.any_size = any_size  # the file pads to a multiple of 4 and crops back inside its graph

    def __repr__(self) -> str:
        return f"Runner({self.format}, {self.path!r}, {self.layout}, {self.precision}, outputs={self.outputs})"

    def __call__(self, src, bgr) -> Dict[str, np.ndarray]:
        # The file pads and crops inside its graph (its own flag, or `frame_sizes: any` in its metadata).
        any_size = self.any_size or self.metadata.get("frame_sizes") == "any"
        src, bgr = as_nchw_array("src", src, any_size), as_nchw_array("bgr", bgr, any_size)
        if src.shape != bgr.shape:
            raise ConversionError(f"src and bgr must have the same shape; got {src.shape} and {bgr.shape}.")
        try:
            results = self.fn(src, bgr)
        except ConversionError:
            raise
        except Exception as error:  # noqa: BLE001 - a framework's failure, reported as ours
            raise ConversionError(f"{self.path} ({self.format}) failed to run on a {src.shape[0]}x3x{src.shape[2]}x"
                                  f"{src.shape[3]} input: {first_line(error)}") from None
        if len(results) != len(self.outputs):
            raise ConversionError(f"{self.path} returned {len(results)} outputs; expected {len(self.outputs)} "
                                  f"({', '.join(self.outputs)}).")
        named = {}
        for name, value in zip(self.outputs, results):
            value = np.asarray(value.detach().float().cpu().numpy() if hasattr(value, "detach") else value)
            if self.layout == "NHWC" and value.ndim == 4:
                value = value.transpose(0, 3, 1, 2)
            named[name] = np.ascontiguousarray(value, dtype=np.float32)
        return named
