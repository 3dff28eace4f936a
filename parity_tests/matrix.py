"""The format matrix: every candidate file made from one reference, how it is built, and how it runs.

Each entry is one candidate: a file written from the reference weights (by the converters, by
upstream-style exporters, or by a round trip through other formats) or the reference file run another
way (`run_as`). Files are built by recipes, grouped in chains (a chain builds in order, one chain at a
time per worker), so a test session or a `bgmv2 parity --zoo` run builds each file once and can build
independent chains in parallel worker processes (`Builder`).

Knobs: candidates are written with `knobs` (default: sampling, scale 0.25, and `refine_sample_pixels`
chosen so k is about 8% of the probe's cells, as the HD preset's 5,000 cells are of a 1280x720 frame,
so the top-k boundary falls inside the error distribution and matters).
"""
import os
import shutil
import sys
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

MODES = ("sampling", "thresholding", "full")


@dataclass(frozen=True)
class Entry:
    label: str
    file: str  # name in the work folder ("" = the reference file itself)
    recipe: str  # how the file is made (see RECIPES)
    chain: str  # built in order with the other entries of its chain
    run_as: str = "file"
    precision: str = "fp32"
    needs: Tuple[str, ...] = ()  # python modules the recipe and runtime need
    slow: bool = False  # only in the slow tier / `--formats all`
    knobs_at_load: bool = True  # False: knobs fixed in the file (only its own mode is checked)
    mode: str = "sampling"  # the refine mode written into fixed files
    what: str = ""

    @property
    def runtime(self) -> str:
        from .candidates import runtime_of
        fmt = {"onnx": "onnx", "keras": "keras", "savedmodel": "savedmodel", "tflite": "tflite",
               "openvino": "openvino"}.get(self.format, "pth")
        return runtime_of(fmt, self.run_as)

    @property
    def format(self) -> str:
        name = self.file.lower()
        if name.endswith(".onnx"):
            return "onnx"
        if name.endswith(".tflite"):
            return "tflite"
        if name.endswith(".xml"):
            return "openvino"
        if name.endswith(".weights.h5") or self.run_as.startswith("keras"):
            return "keras"
        if name.endswith("_savedmodel"):
            return "savedmodel"
        if name.endswith(".pt2"):
            return "pt2"
        if name.endswith(".pt"):
            return "torchscript"
        return "pth"

    @property
    def modes(self) -> Tuple[str, ...]:
        return MODES if self.knobs_at_load else (self.mode,)


ONNX = ("onnx", "onnxruntime", "onnxscript")
TF = ("tensorflow", "keras")

ENTRIES: Tuple[Entry, ...] = (
    # PyTorch side (fast)
    Entry("pth", "m.pth", "convert", "torch", what="state dict written by bgmv2 convert, PyTorch eager"),
    Entry("eager-fp16", "", "none", "torch", run_as="eager-fp16", precision="fp16",
          what="the reference weights in PyTorch eager, fp16 weights and inputs"),
    Entry("torchscript", "m.pt", "convert", "torch", what="bgmv2 convert: production TorchScript with metadata"),
    Entry("torchscript-fp16", "m_fp16.pt", "convert-fp16", "torch", precision="fp16",
          what="bgmv2 convert --precision fp16"),
    Entry("torchscript-upstream", "upstream_fp32.pt", "torchscript-upstream", "torch",
          what="official production layout (script_model), no metadata: knobs from its attributes"),
    Entry("torchscript-upstream-fp16", "upstream_fp16.pt", "torchscript-upstream-fp16", "torch", precision="fp16",
          what="official production layout in fp16 (as torchscript_*_fp16.pth)"),
    Entry("onnx-legacy-opset12", "legacy_opset12.onnx", "legacy-onnx-12", "torch", needs=ONNX[:2],
          knobs_at_load=False, what="upstream export_onnx.py: legacy exporter, opset 12, roi_align crop, "
                                    "scatter_element, sampling"),
    Entry("onnx-legacy-opset11-thresholding", "legacy_opset11_thresholding.onnx", "legacy-onnx-11-thresholding",
          "torch", needs=ONNX[:2], knobs_at_load=False, mode="thresholding",
          what="legacy exporter, opset 11, thresholding"),
    Entry("roundtrip-torchscript", "roundtrip_torchscript.safetensors", "roundtrip-torchscript", "torch",
          what="state dict -> TorchScript -> safetensors"),
    Entry("pt2", "m.pt2", "convert", "pt2", knobs_at_load=False, slow=True, what="torch.export program"),
    # ONNX from PyTorch: one chain per export (about 25 s each on 2 cores)
    Entry("onnx-static", "m_static.onnx", "onnx-static", "onnx-static", needs=ONNX, knobs_at_load=False,
          what="bgmv2 convert, opset 18, static sampling (top-k indices, no NonZero)"),
    Entry("roundtrip-onnx", "roundtrip_onnx.pth", "roundtrip-onnx", "onnx-static", needs=ONNX,
          what="state dict -> ONNX (BatchNorm folded) -> .pth"),
    Entry("onnx-nonzero", "m_nonzero.onnx", "onnx-nonzero", "onnx-nonzero", needs=ONNX, knobs_at_load=False,
          what="bgmv2 convert --onnx-variant nonzero (upstream's data-dependent graph)"),
    Entry("onnx-tensorrt", "m_tensorrt.onnx", "onnx-tensorrt", "onnx-tensorrt", needs=ONNX, knobs_at_load=False,
          what="bgmv2 convert --onnx-variant tensorrt (every TopK k <= 3840, no float64)"),
    Entry("onnx-static-fp16", "m_static_fp16.onnx", "onnx-static-fp16", "onnx-static-fp16", needs=ONNX,
          precision="fp16", knobs_at_load=False, what="bgmv2 convert --precision fp16 (ONNX)"),
    Entry("onnx-thresholding", "m_thresholding.onnx", "onnx-thresholding", "onnx-thresholding", needs=ONNX,
          knobs_at_load=False, mode="thresholding", slow=True, what="bgmv2 convert --refine-mode thresholding"),
    Entry("onnx-full", "m_full.onnx", "onnx-full", "onnx-full", needs=ONNX, knobs_at_load=False, mode="full",
          slow=True, what="bgmv2 convert --refine-mode full (dense graph)"),
    Entry("onnx-nonzero-fp16", "m_nonzero_fp16.onnx", "onnx-nonzero-fp16", "onnx-nonzero-fp16", needs=ONNX,
          precision="fp16", knobs_at_load=False, slow=True, what="--onnx-variant nonzero --precision fp16"),
    Entry("onnx-tensorrt-fp16", "m_tensorrt_fp16.onnx", "onnx-tensorrt-fp16", "onnx-tensorrt-fp16", needs=ONNX,
          precision="fp16", knobs_at_load=False, slow=True, what="--onnx-variant tensorrt --precision fp16"),
    Entry("onnx-static-simplified", "m_static_sim.onnx", "onnx-static-simplified", "onnx-static-simplified",
          needs=ONNX + ("onnxsim",), knobs_at_load=False, slow=True, what="bgmv2 convert --simplify (onnxsim)"),
    # TensorFlow side
    Entry("keras", "m.weights.h5", "convert", "tf", needs=TF, what="Keras weights under tf.function (converters' runner)"),
    Entry("keras-eager", "m.weights.h5", "convert", "tf", run_as="keras-eager", needs=TF,
          what="the same Keras weights, called eagerly"),
    Entry("keras-mixed_float16", "m.weights.h5", "convert", "tf", run_as="keras-mixed_float16", precision="fp16",
          needs=TF, what="Keras weights under a mixed_float16 policy, tf.function"),
    Entry("savedmodel", "m_savedmodel", "savedmodel-from-keras", "tf", needs=TF, knobs_at_load=False,
          what="Keras weights -> SavedModel (serving signature)"),
    Entry("onnx-tf2onnx", "m_tf2onnx.onnx", "tf2onnx", "tf", needs=TF + ("tf2onnx", "onnxruntime"),
          knobs_at_load=False, what="SavedModel -> ONNX by tf2onnx (NHWC)"),
    Entry("roundtrip-savedmodel", "roundtrip_savedmodel.pth", "roundtrip-savedmodel", "tf", needs=TF,
          what="state dict -> Keras -> SavedModel -> .pth"),
    # Deployment runtimes (a TFLite or IR conversion takes about a minute on 2 cores: slow tier)
    Entry("tflite", "m.tflite", "convert", "tflite", needs=TF, knobs_at_load=False, slow=True,
          what="bgmv2 convert to TFLite (builtin ops, any size), LiteRT interpreter"),
    Entry("openvino-ir", "m.xml", "convert", "openvino", needs=ONNX + ("openvino",), knobs_at_load=False, slow=True,
          what="bgmv2 convert to OpenVINO IR (fp32 weights), inference precision pinned to f32"),
    Entry("openvino-onnx", "m_static.onnx", "onnx-static", "onnx-static", run_as="openvino", needs=ONNX + ("openvino",),
          knobs_at_load=False, slow=True, what="the static ONNX run by OpenVINO (f32 pinned)"),
    Entry("openvino-savedmodel", "m_savedmodel", "savedmodel-from-keras", "tf", run_as="openvino",
          needs=TF + ("openvino",), knobs_at_load=False, slow=True, what="the SavedModel run by OpenVINO (f32 pinned)"),
)
BY_LABEL = {entry.label: entry for entry in ENTRIES}
# Rough build times of the chains (MobileNetV2, one thread), to start the longest first.
CHAIN_SECONDS = {"tf": 70, "torch": 8, "pt2": 20}


def default_knobs(height: int = 192, width: int = 256) -> Dict[str, object]:
    """Sampling with k about 8% of the cells of a (height, width) probe (the HD preset's share at 720p)."""
    cells = (height // 4) * (width // 4)
    return {"refine_mode": "sampling", "backbone_scale": 0.25,
            "refine_sample_pixels": 16 * max(1, round(cells * 5000 / (720 * 1280 / 16)))}


def missing_modules(entry: Entry) -> List[str]:
    import importlib.util
    return [name for name in entry.needs if importlib.util.find_spec(name) is None]


# -- recipes ------------------------------------------------------------------------------------------
def quiet_convert(source: str, dest: str, **options):
    from bgmv2.converters import convert
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert(source, dest, log=None, probe_size=(64, 96), overwrite=True, **options)


def torch_model(source: str, knobs: Dict[str, object], dtype=None):
    from bgmv2 import pytorch_impl
    model = pytorch_impl.load_model(source, **knobs).eval()
    return model.to(dtype) if dtype is not None else model


def trace_example(knobs: Dict[str, object]):
    """A synthetic probe to trace legacy exports at: cells are refined, so the refining branch is traced,
    and it has at least k cells (upstream's sampling graphs fix k at the traced size)."""
    import torch
    from bgmv2.converters.probes import synthetic_probe
    height, width = 192, 256
    while (height // 4) * (width // 4) < int(knobs.get("refine_sample_pixels", 0)) // 16:
        height, width = height * 2, width * 2
    probe = synthetic_probe(height, width, 1, seed=99)
    return torch.from_numpy(probe.src), torch.from_numpy(probe.bgr)


def build_entry(entry: Entry, source: str, folder: str, knobs: Dict[str, object]) -> str:
    """Write `entry`'s file from `source` into `folder` (returns its path; the source for file-less entries)."""
    import torch
    if not entry.file:
        return source
    dest = os.path.join(folder, entry.file)
    path = lambda label: os.path.join(folder, BY_LABEL[label].file)  # noqa: E731
    fixed = dict(knobs, refine_mode=entry.mode) if not entry.knobs_at_load else dict(knobs)
    recipe = entry.recipe
    if recipe == "convert":
        quiet_convert(source, dest, knobs=knobs)
    elif recipe == "convert-fp16":
        quiet_convert(source, dest, knobs=knobs, precision="fp16")
    elif recipe == "torchscript-upstream":
        from .upstream import write_torchscript_production
        write_torchscript_production(torch_model(source, knobs), dest)
    elif recipe == "torchscript-upstream-fp16":
        from .upstream import write_torchscript_production
        write_torchscript_production(torch_model(source, knobs, torch.float16), dest)
    elif recipe.startswith("legacy-onnx-"):
        from .upstream import write_legacy_onnx
        opset = int(recipe.split("-")[2])
        write_legacy_onnx(torch_model(source, fixed), dest, trace_example(fixed), opset=opset)
    elif recipe == "roundtrip-torchscript":
        quiet_convert(path("torchscript"), dest)
    elif recipe.startswith("onnx-"):
        variant = recipe.split("-")[1]
        options = {"precision": "fp16" if recipe.endswith("fp16") else "fp32", "simplify": recipe.endswith("simplified")}
        if variant in ("static", "nonzero", "tensorrt"):
            options["onnx_variant"] = variant
        quiet_convert(source, dest, knobs=fixed, **options)
    elif recipe == "roundtrip-onnx":
        quiet_convert(path("onnx-static"), dest)
    elif recipe == "savedmodel-from-keras":
        quiet_convert(path("keras"), dest)
    elif recipe == "tf2onnx":
        quiet_convert(path("savedmodel"), dest)
    elif recipe == "roundtrip-savedmodel":
        quiet_convert(path("savedmodel"), dest)
    else:
        raise ValueError(f"unknown recipe {recipe!r}")
    return dest


# The matrix entry whose file a recipe reads (besides the reference file): built before it in its chain.
READS = {"roundtrip-torchscript": "torchscript", "roundtrip-onnx": "onnx-static", "savedmodel-from-keras": "keras",
         "tf2onnx": "savedmodel", "roundtrip-savedmodel": "savedmodel"}


def blocked_by(entry: Entry, errors: Dict[str, str], entries: Sequence[Entry]) -> Optional[str]:
    """The failed entry `entry` needs (the file its recipe reads, or the same file), if any."""
    if READS.get(entry.recipe) in errors:
        return READS[entry.recipe]
    return next((e.label for e in entries if e.file and e.file == entry.file and e.label in errors), None)


def build_chain(entries: Sequence[Entry], source: str, folder: str, knobs: Dict[str, object]) -> Dict[str, object]:
    """Build entries in order; {label: path} and {label: error} for those that failed (an entry whose
    input failed is not tried; the others are)."""
    built, errors, seconds = {}, {}, {}
    done_files: Dict[str, str] = {}
    for entry in entries:
        started = time.perf_counter()
        failed = blocked_by(entry, errors, entries)
        if failed:
            errors[entry.label] = f"not built: {failed} failed first"
            continue
        try:
            if entry.file and entry.file in done_files:
                built[entry.label] = done_files[entry.file]
            else:
                built[entry.label] = build_entry(entry, source, folder, knobs)
                done_files[entry.file] = built[entry.label]
        except Exception as error:  # noqa: BLE001 - reported per entry
            errors[entry.label] = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        seconds[entry.label] = time.perf_counter() - started
    return {"built": built, "errors": errors, "seconds": seconds}


def worker_setup() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    import torch
    torch.set_num_threads(1)


class Builder:
    """Builds the matrix's files once, chains in parallel worker processes (`workers` > 0) or here.

    `submit(entries)` starts what is not started yet; `path(label)` waits for an entry's file and
    returns it, or raises `BuildError` with the recipe's failure.
    """

    def __init__(self, source: str, folder: str, knobs: Dict[str, object], workers: int = 0):
        self.source, self.folder, self.knobs = source, folder, dict(knobs)
        self.workers = workers
        self.pool: Optional[ProcessPoolExecutor] = None
        self.chains: Dict[str, object] = {}  # chain name -> Future or result dict
        self.entries: Dict[str, List[Entry]] = {}
        os.makedirs(folder, exist_ok=True)

    def submit(self, labels: Iterable[str]) -> None:
        wanted = [BY_LABEL[label] for label in labels]
        by_chain: Dict[str, List[Entry]] = {}
        for entry in ENTRIES:  # chain order is the order of ENTRIES
            if any(w.chain == entry.chain for w in wanted) and entry.chain not in self.chains:
                by_chain.setdefault(entry.chain, []).append(entry)
        # Only what is wanted, plus what it depends on (earlier entries of its chain). The PyTorch chain
        # first (quick, and its cases come first), then the longest first.
        order = sorted(by_chain.items(), key=lambda item: (item[0] != "torch", -CHAIN_SECONDS.get(item[0], 30)))
        for chain, entries in order:
            last = max(i for i, e in enumerate(entries) if e in wanted)
            entries = entries[:last + 1]
            self.entries[chain] = entries
            if self.workers > 0:
                if self.pool is None:
                    import multiprocessing
                    # One chain per process, which then exits: an idle worker would keep the gigabytes
                    # an export took (ResNet-101's TensorFlow chain peaks near 8 GB), and workers of
                    # several backbones together ran out of memory on 24 GB.
                    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
                    self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=worker_setup, **fresh)
                self.chains[chain] = self.pool.submit(build_chain, entries, self.source, self.folder, self.knobs)
            else:
                self.chains[chain] = None  # built on first use, here

    def result(self, chain: str) -> Dict[str, object]:
        value = self.chains[chain]
        if isinstance(value, Future):
            value = value.result()
        elif value is None:
            value = build_chain(self.entries[chain], self.source, self.folder, self.knobs)
        self.chains[chain] = value
        return value

    def path(self, label: str) -> str:
        entry = BY_LABEL[label]
        if entry.chain not in self.chains or label not in [e.label for e in self.entries.get(entry.chain, [])]:
            self.chains.pop(entry.chain, None)
            self.submit([label])
        result = self.result(entry.chain)
        if label in result["errors"]:
            raise BuildError(f"{label}: {result['errors'][label]}")
        return result["built"][label]

    def seconds(self) -> Dict[str, float]:
        found = {}
        for value in self.chains.values():
            if isinstance(value, dict):
                found.update(value["seconds"])
        return found

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class BuildError(RuntimeError):
    """A matrix file could not be built."""


def select(formats: Optional[Sequence[str]] = None, precisions: Sequence[str] = ("fp32", "fp16"),
           include_slow: bool = False) -> List[Entry]:
    """Entries by label (or every default one), of the given precisions, whose modules are installed."""
    if formats:
        unknown = [f for f in formats if f not in BY_LABEL and f != "all"]
        if unknown:
            raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(BY_LABEL)} or all")
        if "all" in formats:
            include_slow, formats = True, None
    chosen = [e for e in ENTRIES if (formats is None and (include_slow or not e.slow)) or (formats and e.label in formats)]
    return [e for e in chosen if e.precision in precisions]


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
