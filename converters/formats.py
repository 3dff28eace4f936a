"""Format names, what each holds, and how a destination's name suggests one."""
import os

# name -> (what it is, layout of its inputs, side)
FORMATS = {
    "pth": ("PyTorch state dict (torch.save, official layout)", "NCHW", "torch"),
    "safetensors": ("safetensors state dict (official layout, metadata in the header)", "NCHW", "torch"),
    "torchscript": ("TorchScript production wrapper (knobs settable after loading)", "NCHW", "torch"),
    "pt2": ("torch.export program (torch.export.save)", "NCHW", "torch"),
    "onnx": ("ONNX model (from PyTorch: NCHW; from a SavedModel via tf2onnx: NHWC)", "NCHW", "onnx"),
    "keras": ("Keras 3 weights (.weights.h5, metadata in the HDF5 attributes)", "NHWC", "tf"),
    "savedmodel": ("TensorFlow SavedModel folder (serving signature src, bgr -> pha, fgr, ...)", "NHWC", "tf"),
    "tflite": ("TFLite flatbuffer, builtin ops only (LiteRT / tf.lite), metadata in the flatbuffer", "NHWC", "tflite"),
    "openvino": ("OpenVINO IR (NAME.xml + NAME.bin), metadata in rt_info", "NCHW", "openvino"),
}
NAMES = tuple(FORMATS)
PRECISIONS = ("fp32", "fp16")
OUTPUTS_REFINE = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")
OUTPUTS_BASE = ("pha", "fgr", "err", "hid")
INPUTS = ("src", "bgr")

SUFFIXES = [
    (".safetensors", "safetensors"),
    (".weights.h5", "keras"),
    (".h5", "keras"),
    (".onnx", "onnx"),
    (".tflite", "tflite"),
    (".xml", "openvino"),
    (".pt2", "pt2"),
    (".torchscript", "torchscript"),
    (".ts", "torchscript"),
    (".pt", "torchscript"),
    (".pth", "pth"),
]


def guess_format(path: str):
    """The format a destination's name suggests, or None."""
    name = os.path.basename(os.path.normpath(os.fspath(path))).lower()
    for suffix, fmt in SUFFIXES:
        if name.endswith(suffix):
            return fmt
    if os.path.isdir(path) or "." not in name or name.endswith(("_savedmodel", "saved_model")):
        return "savedmodel"
    return None
