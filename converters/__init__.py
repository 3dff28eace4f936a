"""Every model format to every other, each conversion verified on a probe before it is kept.

Formats (`converters.formats.FORMATS`): `pth`, `safetensors`, `torchscript`, `pt2`, `onnx` (NCHW
input), `keras`, `savedmodel` (NHWC input; ONNX made from a SavedModel is NHWC too). Frameworks are
imported only when a format needs them, so the PyTorch formats work with PyTorch alone.

    import converters
    converters.detect("model.pth")                       # 'pth' / 'torchscript' / ... from the content
    runner = converters.load("model.onnx")               # runner(src, bgr) -> {"pha": ..., ...} NCHW float32
    converters.convert("pytorch_mobilenetv2.pth", "mobilenetv2.onnx")
    converters.info("mobilenetv2.onnx")                  # the metadata the file carries

Errors are `converters.ConversionError`, with the problem and the fix in the message.
"""
import sys
import types

from .errors import ConversionError
from .formats import FORMATS, NAMES, guess_format

__all__ = ["ConversionError", "ConversionResult", "FORMATS", "NAMES", "convert", "detect", "guess_format", "info",
           "load", "read"]


def detect(path) -> str:
    """The format name of `path` from its content (see `converters.detect.detect`)."""
    from .detect import detect as detect_format
    return detect_format(path)


class _Package(types.ModuleType):
    """`converters.detect` is the function above, always. Python's import system binds a submodule to
    its package's attribute of the same name when the submodule is first imported (here: by `api`, or
    by `from converters.detect import ...`), which made `converters.detect` the module after any
    `converters.load/info/convert`. The submodule stays importable by its full name."""

    def __setattr__(self, name, value):
        if name == "detect" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name):
    if name in ("convert", "load", "read", "info", "ConversionResult"):
        from . import api as module
        return getattr(module, name)
    raise AttributeError(f"module 'converters' has no attribute {name!r}")
