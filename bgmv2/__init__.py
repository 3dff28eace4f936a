"""bgmv2-zoo: Background Matting V2 for PyTorch and TensorFlow, every format, checked.

The short public API (each name is imported on first use, so `import bgmv2` is instant):

    import bgmv2
    model = bgmv2.load_model("bgmv2-mobilenetv2-synthetic")      # a zoo name or a weights file -> MattingRefine
    pha, fgr, *_ = bgmv2.matte(model, src, bgr)                  # any size, (3, H, W), NCHW or uint8
    bgmv2.convert("model.pth", "model.onnx")                     # any format to any other, checked
    runner = bgmv2.load("model.onnx", runtime="onnxruntime")     # runner(src, bgr) -> the six named outputs
    report = bgmv2.check("model.onnx", reference="model.pth")    # parity: the same alpha, or why not

The parts beneath it: `bgmv2.pytorch_impl`, `bgmv2.tensorflow_impl`, `bgmv2.converters`,
`bgmv2.parity_tests`, `bgmv2.weights`, `bgmv2.scripts`, `bgmv2.knobs`, `bgmv2.data`.
"""
# The parts keep their folders at the repository root; `bgmv2/<part>` links to each in a checkout, and
# an installed wheel holds them inside this package (pyproject.toml maps them). One name each: bgmv2.<part>.
PUBLIC = {
    "load_model": ("bgmv2.api", "load_model"),
    "matte": ("bgmv2.api", "matte"),
    "convert": ("bgmv2.api", "convert"),
    "load": ("bgmv2.api", "load"),
    "check": ("bgmv2.api", "check"),
}

__all__ = sorted(PUBLIC)


def __getattr__(name):
    if name in PUBLIC:
        import importlib
        module, attribute = PUBLIC[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'bgmv2' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(PUBLIC))
