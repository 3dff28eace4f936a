"""`torchscript`: the scripted production wrapper (`torch.jit.save`), knobs settable after loading,
any frame size (padded to a multiple of 4 and cropped back inside, `any_size`); the metadata is the
extra file `bgmv2.json` and the module attribute `bgmv2_metadata`."""
from . import torch_formats

NAME = "torchscript"
DESCRIPTION = "TorchScript production wrapper (knobs settable after loading)"
LAYOUT = "NCHW"
SIDE = "torch"
SUFFIXES = (".torchscript", ".ts", ".pt")
PRECISIONS = ("fp32", "fp16")
RUNTIMES = ("torch",)
KNOBS_AT_LOAD = True


def detect(path, kind) -> bool:
    from bgmv2.pytorch_impl import file_kinds
    return kind == file_kinds.TORCHSCRIPT


def read(path):
    return torch_formats.read_torchscript(path)


def prepare(job) -> dict:
    from .formats import INPUTS, OUTPUTS_BASE, OUTPUTS_REFINE
    outputs = OUTPUTS_REFINE if job.spec.kind == "refine" else OUTPUTS_BASE
    # forward(src, bgr) -> this tuple; any frame size (padded and cropped inside: `any_size`)
    return {"inputs": ", ".join(INPUTS), "outputs": ", ".join(outputs), "frame_sizes": "any"}


def write(spec, path, metadata, job) -> None:
    torch_formats.write_torchscript(spec, path, metadata, job.precision)


def load(path, knobs=None, device="cpu", runtime=None, precision=None, **options):
    return torch_formats.load_torchscript(path, knobs, device, precision)


def info(path) -> dict:
    return torch_formats.info(path, NAME)
