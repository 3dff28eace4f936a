"""`safetensors`: a state dict in the official layout (no pickle at all), the metadata as
`bgmv2.`-prefixed pairs in the header. Knobs at load time."""
from . import torch_formats

NAME = "safetensors"
DESCRIPTION = "safetensors state dict (official layout, metadata in the header)"
LAYOUT = "NCHW"
SIDE = "torch"
SUFFIXES = (".safetensors",)
PRECISIONS = ("fp32", "fp16")
RUNTIMES = ("torch",)
KNOBS_AT_LOAD = True


def detect(path, kind) -> bool:
    from bgmv2.pytorch_impl import file_kinds
    return kind == file_kinds.SAFETENSORS


def read(path):
    return torch_formats.read_state_file(path, NAME)


def prepare(job) -> dict:
    return {}


def write(spec, path, metadata, job) -> None:
    torch_formats.write_state_file(spec, path, metadata, job.precision, NAME)


def load(path, knobs=None, device="cpu", runtime=None, precision=None, **options):
    return torch_formats.load_state_file(path, NAME, knobs, device, precision)


def info(path) -> dict:
    """Our metadata, or else the header's own `__metadata__` (e.g. the shipped model's training export)."""
    found = torch_formats.info(path, NAME)
    if not found:
        found = torch_formats.foreign_safetensors_metadata(path)
        if found:
            found["metadata"] = "the safetensors header's own (not bgmv2-zoo's keys), below"
    return found
