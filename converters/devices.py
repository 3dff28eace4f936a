"""Devices: the names users give (auto, cpu, cuda, cuda:N) checked once, and whether a runtime can use a
CUDA GPU here (the reason when it cannot), for `converters.load` and everything that calls it."""
import os
from typing import Optional

from .errors import OptionError

GPU_RUNTIMES = ("torch", "onnxruntime", "tensorflow", "fast")  # the others run on the CPU here


def parse(name: Optional[str]) -> str:
    """'auto', 'cpu' or 'cuda:N' from what a user typed (a torch.device too); ConversionError otherwise."""
    text = "auto" if name in (None, "") else str(name).strip().lower()
    if text in ("auto", "cpu"):
        return text
    if text == "cuda":
        return "cuda:0"
    if text.startswith("cuda:") and text[5:].isdigit():
        return text
    raise OptionError("device", name, "is not a device here; use cpu, cuda, cuda:N or auto")


def cuda_unavailable(runtime: str, index: int = 0) -> Optional[str]:
    """None when `runtime` can run on CUDA GPU `index` here, else the reason it cannot."""
    if runtime not in GPU_RUNTIMES:
        return f"{runtime} runs on the CPU here (no GPU runner in bgmv2)"
    try:
        import torch
        if not torch.cuda.is_available():
            build = ("this PyTorch is a CPU-only build" if torch.version.cuda is None else
                     "PyTorch was built for CUDA but sees no GPU (driver missing, or CUDA_VISIBLE_DEVICES hides it)")
            return build
        if index >= torch.cuda.device_count():
            return f"there are only {torch.cuda.device_count()} CUDA device(s)"
        if runtime == "onnxruntime":
            import onnxruntime
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                return (f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider "
                        "(install onnxruntime-gpu on a machine with a GPU)")
        if runtime == "tensorflow":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import tensorflow as tf
            if not tf.config.list_physical_devices("GPU"):
                return f"TensorFlow {tf.__version__} sees no GPU (tensorflow-cpu, or no CUDA GPU)"
    except ImportError as error:
        return f"{runtime} is not installed ({error})"
    return None


def choose(name: Optional[str], runtime: str) -> str:
    """The device `runtime` runs on: 'auto' is the first CUDA GPU where the runtime can use it, else the
    CPU; an explicit CUDA device it cannot use is an OptionError with the reason and the fix."""
    device = parse(name)
    if device == "auto":
        return "cuda:0" if cuda_unavailable(runtime) is None else "cpu"
    if device.startswith("cuda"):
        reason = cuda_unavailable(runtime, int(device.split(":")[1]))
        if reason:
            raise OptionError("device", name, f"was asked for, but {reason}. Use {{option}} cpu (or auto).")
        exact_fp32_on_gpus()
    return device


def exact_fp32_on_gpus() -> None:
    """fp32 means fp32 on GPUs too: no TF32 in PyTorch's and TensorFlow's matmuls and convolutions."""
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    except ImportError:
        pass
    import sys
    if "tensorflow" in sys.modules:
        try:
            sys.modules["tensorflow"].config.experimental.enable_tensor_float_32_execution(False)
        except Exception:  # noqa: BLE001 - only a setting
            pass


def tf32_setting(device: str) -> str:
    """The TF32 state runners on `device` use, in words (reports state it)."""
    if not device.startswith("cuda"):
        return "not used (CPU)"
    try:
        import torch
        matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    except ImportError:
        return "unknown (no PyTorch)"
    state = "off" if not (matmul or cudnn) else "ON"
    return (f"{state} (PyTorch matmul allow_tf32={matmul}, cuDNN allow_tf32={cudnn}; ONNX Runtime CUDA use_tf32=0; "
            "TensorFlow TF32 execution disabled)")
