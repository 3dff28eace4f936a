"""Every model format to every other, each conversion verified on a probe before it is kept.

Formats (`bgmv2.converters.formats.FORMATS`, one module each, listed once in `formats.FORMAT_MODULES`):
`pth`, `safetensors`, `torchscript`, `pt2`, `onnx`, `openvino` (NCHW input), `keras`, `savedmodel`,
`tflite` (NHWC input; ONNX made from a SavedModel is NHWC too). Frameworks are imported only when a
format needs them, so the PyTorch formats work with PyTorch alone.

    from bgmv2 import converters
    converters.detect("model.pth")                       # 'pth' / 'torchscript' / ... from the content
    runner = converters.load("model.onnx")               # runner(src, bgr) -> {"pha": ..., ...} NCHW float32
    converters.convert("pytorch_mobilenetv2.pth", "mobilenetv2.onnx")
    converters.info("mobilenetv2.onnx")                  # the metadata the file carries

Errors are `converters.ConversionError`, with the problem and the fix in the message.
"""
from .errors import ConversionError, OptionError
from .formats import FORMATS, NAMES, guess_format

__all__ = ["ConversionError", "OptionError", "ConversionResult", "FORMATS", "NAMES", "convert", "detect", "guess_format", "info",
           "load", "read"]


def detect(path) -> str:
    """The format name of `path` from its content (`bgmv2.converters.detection.detect`). The submodule has
    another name than this function, so importing it never replaces `converters.detect`."""
    from .detection import detect as detect_format
    return detect_format(path)


def __getattr__(name):
    if name in ("convert", "load", "read", "info", "ConversionResult"):
        from . import api as module
        return getattr(module, name)
    raise AttributeError(f"module 'converters' has no attribute {name!r}")
