"""`pt2`: a `torch.export` program (`torch.export.save`) of `bgmv2.converters.exportable.Exportable`:
inputs `src`, `bgr` (NCHW, any batch, height and width), outputs `pha, fgr, pha_sm, fgr_sm, err_sm,
ref_sm`; knobs fixed at export; metadata in the extra file `bgmv2.json`. Checked for pickled
payloads before `torch.export.load` (`bgmv2.converters.pt2_safety`)."""
from . import torch_formats

NAME = "pt2"
DESCRIPTION = "torch.export program (torch.export.save)"
LAYOUT = "NCHW"
SIDE = "torch"
SUFFIXES = (".pt2",)
PRECISIONS = ("fp32", "fp16")
RUNTIMES = ("torch",)
KNOBS_AT_LOAD = False


def detect(path, kind) -> bool:
    from .detection import PT2
    return kind == PT2


def read(path):
    return torch_formats.read_pt2(path)


def prepare(job) -> dict:
    from .formats import INPUTS, OUTPUTS_BASE, OUTPUTS_REFINE
    outputs = OUTPUTS_REFINE if job.spec.kind == "refine" else OUTPUTS_BASE
    # A program's outputs are a tuple: their names and order are stated here. Any frame size:
    # Exportable pads to a multiple of 4 and crops, as pytorch_impl.matte.
    return {"frame_sizes": "any", "inputs": ", ".join(INPUTS), "outputs": ", ".join(outputs),
            "on_cuda": "torch.export.passes.move_to_device_pass(torch.export.load(path), 'cuda')"}


def write(spec, path, metadata, job) -> None:
    torch_formats.write_pt2(spec, path, metadata, job.precision)


def load(path, knobs=None, device="cpu", runtime=None, precision=None, **options):
    return torch_formats.load_pt2(path, knobs, device, precision)


def info(path) -> dict:
    return torch_formats.info(path, NAME)
