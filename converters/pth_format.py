"""`pth`: a PyTorch state dict saved with `torch.save` (official layout), read with
`torch.load(weights_only=True)`; the metadata rides in the zip as `bgmv2.json`. Knobs at load time."""
from . import torch_formats

NAME = "pth"
DESCRIPTION = "PyTorch state dict (torch.save, official layout)"
LAYOUT = "NCHW"
SIDE = "torch"
SUFFIXES = (".pth",)
PRECISIONS = ("fp32", "fp16")
RUNTIMES = ("torch",)
KNOBS_AT_LOAD = True


def detect(path, kind) -> bool:
    from bgmv2.pytorch_impl import file_kinds
    return kind in (file_kinds.TORCH_ZIP, file_kinds.TORCH_LEGACY)


def read(path):
    return torch_formats.read_state_file(path, NAME)


def prepare(job) -> dict:
    return {}


def write(spec, path, metadata, job) -> None:
    torch_formats.write_state_file(spec, path, metadata, job.precision, NAME)


def load(path, knobs=None, device="cpu", runtime=None, precision=None, **options):
    return torch_formats.load_state_file(path, NAME, knobs, device, precision)


def info(path) -> dict:
    """The metadata, after the safe loader read the pickle: one holding anything but tensors is refused
    (ConversionError), never described as a model without metadata."""
    torch_formats.refuse_unsafe_pickle(path)
    return torch_formats.info(path, NAME)
