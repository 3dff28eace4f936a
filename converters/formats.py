"""The format registry: one module per format, listed once in `FORMAT_MODULES`.

Adding a format is one new file `converters/<name>_format.py` with the face below and one line in
`FORMAT_MODULES`; `converters.detect/read/load/info/convert`, `--to`, `--info` and the help then know
it. Format modules import their framework inside functions, so listing them costs no framework import.

The face of a format module (Polygraphy's backends and timm's registry have the same shape):

    NAME: str                 'onnx'; the name users pass to --to
    DESCRIPTION: str          one line: what the file holds
    LAYOUT: str               'NCHW' or 'NHWC': the layout of the inputs of the file itself
    SIDE: str                 'torch', 'onnx', 'tf', ...: the framework it needs (for messages)
    SUFFIXES: tuple[str]      destination name endings that choose it ('.onnx',); may be empty
    PRECISIONS: tuple[str]    precisions it writes ('fp32', 'fp16')
    RUNTIMES: tuple[str]      the runtimes its `load` offers for its own files, the default first
                              ('torch'; 'onnxruntime'; 'litert', 'tensorflow')
    KNOBS_AT_LOAD: bool       whether `load(path, knobs=...)` sets MattingRefine knobs
    detect(path, kind) -> bool            whether the file or folder is this format, from its content;
                                          `kind` is `bgmv2.converters.detection.content_kind(path)`
    read(path) -> ModelSpec               the weights (official PyTorch layout), knobs, metadata
    prepare(job) -> dict                  check the conversion's options before anything is written
                                          (`job`: a `bgmv2.converters.api.Job`), return extra metadata;
                                          raise ConversionError naming the fix
    write(spec, path, metadata, job) -> None    write `spec` to `path` (a temporary name)
    load(path, knobs=None, device="cpu", runtime=None, precision=None, **options) -> Runner
                                          run it (`converters.runner.Runner`): device already
                                          resolved ("cpu", "cuda:N"), runtime one of RUNTIMES,
                                          precision None for the file's own
    info(path) -> dict                    the metadata the file carries, without running it
  optional (absent means no):
    claims_name(path) -> bool             a destination name without a known suffix that means it
    companions(path) -> list[str]         files written beside `path` that belong to it and move with it
                                          (OpenVINO IR: NAME.bin beside NAME.xml). `convert` writes them
                                          under the temporary name's companions, renames them with the
                                          file, removes them on failure, and treats an existing one as an
                                          existing destination (--overwrite)
    TAKES_SIZE: bool                      whether the format can be written for one fixed frame size
                                          (`convert(..., size=...)`, `bgmv2 convert --size`, in
                                          `job.size` as (height, width)); `convert` refuses a size for
                                          every other format before anything is written
    EXPORTER_OPTIONS: bool                whether the ONNX exporter's options (onnx_variant, simplify,
                                          onnx_from, topk_limit) make this format; `convert` refuses them
                                          for every other format
    load_other(path, fmt, knobs=None, device="cpu", precision=None, **options) -> Runner
                                          run another format's file with this format's runtime
                                          (`converters.load(path, runtime=NAME)`; OpenVINO runs ONNX
                                          and SavedModels: RUNS_OTHER); ConversionError otherwise

A runtime that is no format's own (the fast path, the browser) is one module listed once in
`RUNTIME_MODULES`, with the face

    NAME: str                 'fast'; the name users pass as runtime= / --backend / NAME:FILE
    DESCRIPTION: str          one line
    RUNS: tuple[str] | None   the formats whose files it runs (None: every format `read` can read)
    DEVICES: tuple[str]       (optional) device names of its own, read by it (the browser: wasm, webgpu);
                              without it the device is cpu / cuda:N, resolved by `converters.devices`
    available() -> str|None   None where it can run here, else what to install, in one line
    load_other(path, fmt, knobs=None, device="cpu", precision=None, **options) -> Runner
"""
import importlib
import os
from types import ModuleType
from typing import Dict

# The table. Order matters twice: `detect` asks the modules in this order, and FORMATS lists them so.
FORMAT_MODULES = (
    "bgmv2.converters.pth_format",
    "bgmv2.converters.safetensors_format",
    "bgmv2.converters.torchscript_format",
    "bgmv2.converters.pt2_format",
    "bgmv2.converters.onnx_format",
    "bgmv2.converters.keras_format",
    "bgmv2.converters.savedmodel_format",
    "bgmv2.converters.tflite_format",
    "bgmv2.converters.openvino_format",
)

# The runtimes that are no format's own, one module each.
RUNTIME_MODULES = (
    "bgmv2.converters.fast",
    "bgmv2.converters.browser_runtime",
)

FACE = ("NAME", "DESCRIPTION", "LAYOUT", "SIDE", "SUFFIXES", "PRECISIONS", "RUNTIMES", "KNOBS_AT_LOAD",
        "detect", "read", "prepare", "write", "load", "info")
RUNTIME_FACE = ("NAME", "DESCRIPTION", "RUNS", "available", "load_other")

PRECISIONS = ("fp32", "fp16")
from bgmv2.contract import INPUTS, OUTPUTS_BASE, OUTPUTS_REFINE  # noqa: E402,F401 - the I/O contract's names


def check_face(module: ModuleType, face=FACE, what: str = "format") -> ModuleType:
    missing = [name for name in face if not hasattr(module, name)]
    if missing:
        raise TypeError(f"{what} module {module.__name__} lacks {', '.join(missing)} (see converters.formats)")
    return module


def load_registry() -> Dict[str, ModuleType]:
    registry = {}
    for path in FORMAT_MODULES:
        module = check_face(importlib.import_module(path))
        if module.NAME in registry:
            raise TypeError(f"two format modules are named {module.NAME!r}")
        registry[module.NAME] = module
    return registry


REGISTRY: Dict[str, ModuleType] = {}


def registry() -> Dict[str, ModuleType]:
    """name -> format module, in table order (imported on first use: converters.formats itself is
    imported by the format modules)."""
    if not REGISTRY:
        REGISTRY.update(load_registry())
    return REGISTRY


def get(name: str) -> ModuleType:
    """The format module called `name`; ConversionError listing the names otherwise."""
    from .errors import ConversionError
    if name not in registry():
        raise ConversionError(f"unknown format {name!r}; choose one of {', '.join(registry())}")
    return registry()[name]


def __getattr__(name):
    # FORMATS and NAMES are derived from the table when first asked for (the modules import this one).
    if name == "FORMATS":  # name -> (what it is, layout of its inputs, side): the shape callers know
        return {n: (m.DESCRIPTION, m.LAYOUT, m.SIDE) for n, m in registry().items()}
    if name == "NAMES":
        return tuple(registry())
    if name == "SUFFIXES":
        pairs = [(suffix, n) for n, m in registry().items() for suffix in m.SUFFIXES]
        return sorted(pairs, key=lambda pair: -len(pair[0]))  # '.weights.h5' before '.h5'
    raise AttributeError(f"module 'bgmv2.converters.formats' has no attribute {name!r}")


def companions(module: ModuleType, path: str):
    """The files that belong to `path` in the format of `module` (optional face attribute)."""
    found = getattr(module, "companions", None)
    return list(found(os.fspath(path))) if found is not None else []


def size_formats():
    """Names of the formats that can be written for one fixed frame size (`TAKES_SIZE`)."""
    return tuple(n for n, m in registry().items() if getattr(m, "TAKES_SIZE", False))


RUNTIME_REGISTRY: Dict[str, ModuleType] = {}


def runtime_modules() -> Dict[str, ModuleType]:
    """name -> module of the runtimes that run other formats' files: the formats offering `load_other`
    (OpenVINO) and the modules of `RUNTIME_MODULES` (the fast path, the browser), in that order."""
    if not RUNTIME_REGISTRY:
        found = {m.NAME: m for m in registry().values() if hasattr(m, "load_other")}
        for path in RUNTIME_MODULES:
            module = check_face(importlib.import_module(path), RUNTIME_FACE, "runtime")
            if module.NAME in found:
                raise TypeError(f"two runtime modules are named {module.NAME!r}")
            found[module.NAME] = module
        RUNTIME_REGISTRY.update(found)
    return RUNTIME_REGISTRY


def runtimes():
    """Names of the runtimes that run other formats' files (`load_other`)."""
    return tuple(runtime_modules())


def runtime_names():
    """Every runtime name `converters.load(path, runtime=...)` knows: each format's own, then the others."""
    names = [r for m in registry().values() for r in m.RUNTIMES]
    return tuple(dict.fromkeys(names + list(runtime_modules())))


def runs(runtime: str, fmt: str) -> bool:
    """Whether runtime module `runtime` runs files of format `fmt`."""
    module = runtime_modules()[runtime]
    taken = getattr(module, "RUNS", getattr(module, "RUNS_OTHER", ()))
    return taken is None or fmt in taken or fmt == module.NAME


def guess_format(path: str):
    """The format a destination's name suggests, or None."""
    from . import formats
    name = os.path.basename(os.path.normpath(os.fspath(path))).lower()
    for suffix, fmt in formats.SUFFIXES:
        if name.endswith(suffix):
            return fmt
    for fmt, module in registry().items():
        claims = getattr(module, "claims_name", None)
        if claims is not None and claims(os.fspath(path)):
            return fmt
    return None
