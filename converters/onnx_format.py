"""ONNX: exported from PyTorch (NCHW) with a pinned exporter, run with ONNX Runtime, read back.

Exporter (pinned): `torch.onnx.export(..., dynamo=True)` on a `torch.export` program of
`bgmv2.converters.exportable.Exportable` (the same program `.pt2` files hold), opset 18 (14-17 on
request, for converters that lack 18: `onnx_opset`), one file (no external data), the exporter's optimiser on (it folds each BatchNorm into the convolution before
it). Inputs `src`, `bgr` (float, NCHW) with dynamic batch, height and width (any size: the graph
pads the frame to a multiple of 4 by repeating its edges and crops the outputs, as `bgmv2.pytorch_impl.matte`);
outputs `pha`, `fgr`, `pha_sm`, `fgr_sm`, `err_sm`, `ref_sm` (`pha`, `fgr`, `err`, `hid` for
MattingBase), their dynamic dims named from the input's (`onnx_dims`: batch, height, width,
ceil(height/4), ...). The knobs are fixed at export; the metadata records them. Written without the
exporter's debug metadata (stack traces, FX node text), with doc strings on the model, inputs and
outputs, serialised deterministically (same model and versions: same bytes).

Variants for `refine_mode="sampling"` (`--onnx-variant`; see `exportable` for the details):
- `static` (default): top-k cell indices directly, shapes independent of the data, no NonZero, no
  float64 (float32 tie-break keys). TopK of k = 5000 > 3840: not for TensorRT.
- `nonzero`: upstream's graph (NonZero, data-dependent shapes). For tools that want it.
- `tensorrt`: static shapes, every TopK k <= 3840 and constant, no float64, no NonZero: builds in
  TensorRT (which rejects upstream's k = 5000); one TopK pass per 3840 samples.
`full` is dense (no selection at all); `thresholding` always uses NonZero (how many cells pass a
threshold depends on the data).

Reading back (`read`): the weights are the graph's initializers, named as the PyTorch parameters.
Where the exporter (or onnxsim) folded a BatchNorm into its convolution, the original tensors are
gone; the state dict then holds the folded convolution and an identity BatchNorm (weight 1, bias =
the folded bias, mean 0, variance 1 - eps), which computes the same function, and says so.
"""
import os
from typing import Dict, Optional

import numpy as np

from . import meta as meta_mod
from .errors import ConversionError, first_line
from .formats import OUTPUTS_BASE, OUTPUTS_REFINE
from .meta import ModelSpec
from .onnx_dims import name_dims
from .runner import Runner

NAME = "onnx"
DESCRIPTION = "ONNX model (from PyTorch: NCHW; from a SavedModel via tf2onnx: NHWC)"
LAYOUT = "NCHW"
SIDE = "onnx"
SUFFIXES = (".onnx",)
PRECISIONS = ("fp32", "fp16")
RUNTIMES = ("onnxruntime",)
KNOBS_AT_LOAD = False
EXPORTER_OPTIONS = True  # --onnx-variant, --simplify, --onnx-from are for this format (refused for others)

SAMPLING_VARIANTS = ("static", "nonzero", "tensorrt")
DEFAULT_VARIANT = "static"
OPSET = 18
EXPORTER = "torch.onnx.export(dynamo=True)"
BN_EPS = 1e-5
CHANNEL_MULTIPLE = 16  # input channels of concatenation-fed convs padded for ONNX Runtime's NCHWc kernels


def require(module: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConversionError(f"the ONNX formats need the `{module}` package: pip install 'bgmv2-zoo[onnx]' "
                              "(onnx, onnxruntime, onnxscript, tf2onnx, onnxsim).") from None


# -- the format face (converters.formats) ----------------------------------------------------------
def detect(path, kind) -> bool:
    from bgmv2.pytorch_impl import file_kinds
    return kind == file_kinds.ONNX


def read(path: str) -> ModelSpec:
    return read_onnx(path)


def load(path: str, knobs: Optional[Dict[str, object]] = None, device: str = "cpu", runtime: Optional[str] = None,
         precision: Optional[str] = None, **options) -> Runner:
    return load_onnx(path, knobs, device, precision, **options)


def via_tensorflow(job) -> bool:
    """tf2onnx on a SavedModel (NHWC) rather than the PyTorch exporter (NCHW)."""
    return (job.onnx_from or ("tensorflow" if job.source_format == "savedmodel" else "pytorch")) == "tensorflow"


def variant_of(job) -> str:
    """The graph's variant: the sampling variant asked for, or what the refine mode implies."""
    if via_tensorflow(job):
        return "tf2onnx"
    mode = job.spec.knob_values().get("refine_mode")
    if job.spec.kind == "refine" and mode != "sampling":
        return "nonzero" if mode == "thresholding" else "dense"
    return job.onnx_variant or DEFAULT_VARIANT


def check_variant_fits(job) -> None:
    """A variant asked for is the one the graph will have, never another one silently (a dense `full`
    graph has static shapes and no NonZero, as static and tensorrt promise)."""
    variant = job.onnx_variant
    if variant is None:
        return
    if via_tensorflow(job):
        raise ConversionError(f"--onnx-variant {variant} chooses the PyTorch exporter's sampling graph; tf2onnx "
                              "converts the SavedModel's graph as it is: leave --onnx-variant out, or pass --onnx-from "
                              "pytorch.")
    if job.spec.kind != "refine":
        raise ConversionError(f"--onnx-variant {variant} chooses how the refiner samples cells; a MattingBase has "
                              "no refiner: leave --onnx-variant out.")
    if job.spec.knob_values().get("refine_mode") == "thresholding" and variant != "nonzero":
        raise ConversionError(f"--onnx-variant {variant} has no NonZero, but with refine_mode thresholding the "
                              "graph needs it (how many cells pass a threshold depends on the data): leave "
                              "--onnx-variant out (or give nonzero), or pass --refine-mode sampling for a "
                              f"{variant} graph.")


def prepare(job) -> Dict[str, str]:
    """Check the ONNX options of a conversion; the metadata they add (variant, exporter, opset...)."""
    if job.onnx_variant is not None and job.onnx_variant not in SAMPLING_VARIANTS:
        raise ConversionError(f"onnx variant {job.onnx_variant!r}; choose one of {', '.join(SAMPLING_VARIANTS)}")
    if job.onnx_from not in (None, "pytorch", "tensorflow"):
        raise ConversionError(f"onnx_from={job.onnx_from!r}; choose pytorch or tensorflow")
    check_variant_fits(job)
    extra = {"simplified": "yes" if job.simplify else "no", "onnx_variant": variant_of(job)}
    if via_tensorflow(job):
        if job.source_format != "savedmodel":
            raise ConversionError("ONNX through tf2onnx is made from a SavedModel: convert to a SavedModel first "
                                  "(`bgmv2 convert SOURCE model_savedmodel`), then the SavedModel to ONNX.")
        if job.precision != "fp32":
            raise ConversionError("tf2onnx converts the SavedModel's fp32 graph; for fp16 ONNX pass --onnx-from pytorch.")
        if job.spec.knob_values() != job.source_spec.knob_values():
            raise ConversionError("a SavedModel's knobs are fixed: tf2onnx converts its graph as it is. Write a new "
                                  "SavedModel with the knobs first, or pass --onnx-from pytorch.")
        import tf2onnx
        extra.update({"layout": "NHWC", "exporter": f"tf2onnx {tf2onnx.__version__} (SavedModel serving_default)",
                      "opset": opset_of_job(job)})
        return extra
    # Any height and width: the graph pads to a multiple of 4 and crops, as pytorch_impl.matte.
    extra.update({"exporter": EXPORTER, "opset": opset_of_job(job), "frame_sizes": "any"})
    if extra["onnx_variant"] == "tensorrt":
        from .exportable import TENSORRT_TOPK_LIMIT
        extra["topk_limit"] = job.topk_limit or TENSORRT_TOPK_LIMIT
    return extra


def opset_of_job(job) -> int:
    """The opset asked for (`convert(..., options={"opset": N})`, `bgmv2 convert --opset N`), default 18."""
    from .onnx_opset import check_opset
    return check_opset(job.options.get("opset", OPSET))


def write(spec: ModelSpec, path: str, metadata: Dict[str, str], job) -> None:
    if via_tensorflow(job):
        from .tf_formats import write_onnx_from_savedmodel
        write_onnx_from_savedmodel(job.source, path, metadata, job.simplify, opset_of_job(job))
        return
    variant = job.onnx_variant or DEFAULT_VARIANT
    write_onnx(spec, path, metadata, job.precision, variant, job.simplify, job.topk_limit, opset_of_job(job))


# -- writing --------------------------------------------------------------------------------------
def write_onnx(spec: ModelSpec, path: str, metadata: Dict[str, str], precision: str = "fp32",
               sampling_variant: str = DEFAULT_VARIANT, simplify: bool = False, topk_limit: Optional[int] = None,
               opset: int = OPSET) -> None:
    """The exporter's opset-18 graph; with `opset` 14-17 rewritten to it (`onnx_opset.downgrade`)."""
    import torch
    onnx = require("onnx")
    require("onnxscript")
    from .torch_formats import export_program
    from .torch_formats import quiet
    program = export_program(spec, precision, sampling_variant, topk_limit, channel_multiple=CHANNEL_MULTIPLE)
    outputs = list(OUTPUTS_REFINE if spec.kind == "refine" else OUTPUTS_BASE)
    with quiet():
        exported = torch.onnx.export(program, dynamo=True, opset_version=OPSET, input_names=["src", "bgr"],
                                     output_names=outputs, external_data=False, optimize=True, verbose=False)
    model = exported.model_proto
    name_dims(model, spec.kind, spec.knob_values().get("backbone_scale", 0.25))
    if opset != OPSET:
        from .onnx_opset import downgrade
        downgrade(model, opset)
    if simplify:
        onnxsim = require("onnxsim")
        simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise ConversionError("onnxsim could not verify the simplified model; convert without --simplify.")
        model = simplified
    strip_debug_info(model)
    set_metadata(model, metadata)
    document(model, spec.kind, metadata)
    save_deterministic(model, path)


# -- hygiene and the contract's documentation --------------------------------------------------------
def strip_debug_info(model) -> None:
    """Drop what the exporter records for debugging: per-node stack traces with absolute build paths,
    FX node text, name scopes, class hierarchies (`pkg.torch.onnx.*`, `namespace`, rewriter rule
    names) and the ExportedProgram's graph signature. Hundreds of KB, none used by any runtime."""
    def clean_graph(graph) -> None:
        del graph.metadata_props[:]
        graph.doc_string = ""
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    clean_graph(attribute.g)
                for sub in attribute.graphs:
                    clean_graph(sub)
        for field in (graph.input, graph.output, graph.value_info, graph.initializer):
            for item in field:
                del item.metadata_props[:]
                item.doc_string = ""

    clean_graph(model.graph)
    for function in model.functions:
        del function.metadata_props[:]
        function.doc_string = ""
        for node in function.node:
            del node.metadata_props[:]
            node.doc_string = ""


INPUT_DOCS = {
    "src": "the frame: float RGB in [0, 1], {layout} (batch, {axes}); {sizes}",
    "bgr": "the background shot without the subject, same shape and layout as src",
}
OUTPUT_DOCS = {
    "pha": "alpha matte in [0, 1] at the input resolution, (batch, {one})",
    "fgr": "foreground RGB in [0, 1] at the input resolution, (batch, {three})",
    "pha_sm": "coarse alpha at backbone_scale of the padded frame",
    "fgr_sm": "coarse foreground RGB at backbone_scale of the padded frame",
    "err_sm": "coarse error map at backbone_scale: where the refiner looks",
    "ref_sm": "0/1 map of the refined 4x4-pixel cells of the padded frame (height / 4, width / 4)",
    "err": "error map at the input resolution (MattingBase)",
    "hid": "hidden features, 32 channels, at the input resolution (MattingBase)",
}


def document(model, kind: str, metadata: Dict[str, str]) -> None:
    """Doc strings on the model, the graph, every input and output: the contract, stated in the file."""
    layout = metadata.get("layout", "NCHW")
    axes = "3, height, width" if layout == "NCHW" else "height, width, 3"
    one = "1, height, width" if layout == "NCHW" else "height, width, 1"
    three = axes
    sizes = ("any height and width (padded inside the graph to a multiple of 4 by repeating the edges, outputs "
             "cropped back)" if metadata.get("frame_sizes") == "any" else "height and width multiples of 4")
    outputs = ", ".join(o.name for o in model.graph.output)
    knobs = ", ".join(f"{k}={metadata[k]}" for k in meta_mod.KNOBS if k in metadata)
    model.doc_string = (f"Background Matting V2 ({metadata.get('model', 'MattingRefine')}, "
                        f"{metadata.get('backbone', '?')}) exported by bgmv2-zoo. Inputs src, bgr ({layout}); outputs "
                        f"{outputs} in this order. Knobs fixed at export: {knobs or 'none'}. "
                        f"Sampling variant: {metadata.get('onnx_variant', '-')}. Metadata: the bgmv2.* properties.")
    model.graph.doc_string = model.doc_string
    for graph_input in model.graph.input:
        if graph_input.name in INPUT_DOCS:
            graph_input.doc_string = INPUT_DOCS[graph_input.name].format(layout=layout, axes=axes, sizes=sizes)
    for output in model.graph.output:
        if output.name in OUTPUT_DOCS:
            output.doc_string = OUTPUT_DOCS[output.name].format(one=one, three=three)


def save_deterministic(model, path: str) -> None:
    """One file, the same bytes for the same model and versions (deterministic protobuf serialisation)."""
    data = model.SerializeToString(deterministic=True)
    with open(path, "wb") as f:
        f.write(data)


def canonical_order(model) -> None:
    """Inputs src, bgr and outputs pha, fgr, ... in the PyTorch order (tf2onnx sorts them by name)."""
    for field, order in ((model.graph.input, ("src", "bgr")), (model.graph.output, OUTPUTS_REFINE + OUTPUTS_BASE)):
        items = list(field)
        items.sort(key=lambda v: order.index(v.name) if v.name in order else len(order))
        copies = [type(v)() for v in items]
        for copy, item in zip(copies, items):
            copy.CopyFrom(item)
        del field[:]
        field.extend(copies)


def set_metadata(model, metadata: Dict[str, str]) -> None:
    keep = [p for p in model.metadata_props if not p.key.startswith(meta_mod.PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in meta_mod.prefixed(metadata).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


# -- reading --------------------------------------------------------------------------------------
def read_model(path: str, check: bool = True):
    """The parsed ModelProto without external data (checked: data files present and whole, the ONNX
    checker on the path); `ConversionError` for anything that is not a usable ONNX model."""
    return read_model_sized(path, check)[0]


def read_model_sized(path: str, check: bool = True):
    """(`read_model`, bytes its weights need in memory: the .onnx and its external data)."""
    from .onnx_files import opened
    model, needed = opened(path, check)
    names = [i.name for i in model.graph.input]
    if sorted(names) != ["bgr", "src"]:
        raise ConversionError(f"{path} is an ONNX model with inputs {names}, not a Background Matting V2 model "
                              "(inputs src, bgr). Convert the original weights with `bgmv2 convert`.")
    return model, needed


def metadata_of(model) -> Dict[str, str]:
    return meta_mod.unprefixed({p.key: p.value for p in model.metadata_props})


def layout_of(model, metadata: Dict[str, str]) -> str:
    if metadata.get("layout") in ("NCHW", "NHWC"):
        return metadata["layout"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return "NHWC" if len(dims) == 4 and dims[3].dim_value == 3 else "NCHW"


def info(path: str) -> Dict[str, str]:
    model = read_model(path, check=False)
    metadata = metadata_of(model)
    metadata.setdefault("opset", str(max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                                         default=0)))
    metadata.setdefault("producer", f"{model.producer_name} {model.producer_version}".strip())
    from .onnx_files import external_tensors
    external = external_tensors(model)
    if external:
        files = sorted({t.location for t in external})
        metadata.setdefault("external_data", f"{len(external)} tensors, {sum(t.length for t in external):,} bytes in "
                                             f"{', '.join(files[:3])}{' ...' if len(files) > 3 else ''}")
    return metadata


def conv_bn_pairs(spec_backbone: str, kind: str, kernel_size: Optional[int]) -> Dict[str, str]:
    """BatchNorm module name -> the convolution that feeds it, found by running the PyTorch model."""
    import torch
    from torch import nn
    from bgmv2.pytorch_impl import MattingBase, MattingRefine
    if kind == "refine":
        model = MattingRefine(spec_backbone, refine_mode="full", refine_kernel_size=kernel_size).eval()
    else:
        model = MattingBase(spec_backbone).eval()
    produced, pairs = {}, {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: produced.__setitem__(id(o), name)))
        elif isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_pre_hook(
                lambda m, i, name=name: pairs.__setitem__(name, produced.get(id(i[0])))))
    with torch.no_grad():
        x = torch.rand(1, 3, 128, 128)
        model(x, x)
    for hook in hooks:
        hook.remove()
    return {bn: conv for bn, conv in pairs.items() if conv}


def read_onnx(path: str) -> ModelSpec:
    """The state dict inside an ONNX model this project exported (see the module docstring)."""
    import torch
    from bgmv2 import pytorch_impl
    from onnx import numpy_helper
    from .onnx_files import check_memory, load_data
    # Not the ONNX checker: it refuses files every runtime reads (nodes not sorted, as onnxconverter-common writes).
    model, needed = read_model_sized(path, check=False)
    check_memory(path, needed)
    load_data(model, path)
    metadata = metadata_of(model)
    if layout_of(model, metadata) == "NHWC":
        raise ConversionError(f"{path} was converted from a TensorFlow SavedModel by tf2onnx, which renames and folds "
                              "the weights; read them from the SavedModel it was made from (`bgmv2 convert "
                              "SAVEDMODEL out.pth`).")
    try:
        tensors = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    except Exception as error:  # noqa: BLE001
        raise ConversionError(f"{path}: an initializer cannot be read ({first_line(error)}).") from None
    tensors = {k[len("model."):] if k.startswith("model.") else k: v for k, v in tensors.items()}
    bias_of = {}  # conv weight name -> its bias initializer name (after folding)
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 2 and node.input[2]:
            weight, bias = (n[len("model."):] if n.startswith("model.") else n for n in node.input[1:3])
            bias_of[weight] = bias
    named = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()
             if k.startswith(("backbone.", "aspp.", "decoder.", "refiner."))}
    try:
        info = pytorch_impl.describe(named, path)
    except pytorch_impl.CheckpointError:
        raise ConversionError(f"{path} is an ONNX model whose weights are not named as the PyTorch parameters (not "
                              "exported by bgmv2-zoo, e.g. upstream's export), so no state dict can be recovered "
                              "from it; convert the original .pth instead.") from None
    reference = (pytorch_impl.MattingRefine(info.backbone, refine_kernel_size=info.refine_kernel_size)
                 if info.kind == "refine" else pytorch_impl.MattingBase(info.backbone)).state_dict()
    pairs = conv_bn_pairs(info.backbone, info.kind, info.refine_kernel_size)
    state, folded = {}, 0
    for key, like in reference.items():
        if key in tensors:
            value = np.array(tensors[key])
            if value.ndim == 4 and value.shape[1] > like.shape[1] and not value[:, like.shape[1]:].any():
                value = value[:, :like.shape[1]]  # zero input channels added for ONNX Runtime (PaddedConv)
            state[key] = torch.from_numpy(np.ascontiguousarray(value)).to(like.dtype)
            continue
        module, _, leaf = key.rpartition(".")
        conv = pairs.get(module)
        if leaf == "num_batches_tracked":
            state[key] = torch.zeros_like(like)
        elif conv and f"{conv}.weight" in tensors:
            if leaf == "weight":
                state[key] = torch.ones_like(like)
                folded += 1
            elif leaf == "bias":
                bias = bias_of.get(f"{conv}.weight")
                value = tensors.get(bias) if bias else None
                state[key] = (torch.from_numpy(np.array(value)).reshape(like.shape).to(like.dtype)
                              if value is not None else torch.zeros_like(like))
            elif leaf == "running_mean":
                state[key] = torch.zeros_like(like)
            elif leaf == "running_var":
                state[key] = torch.full_like(like, 1 - BN_EPS)
    missing = [k for k in reference if k not in state]
    if missing:
        raise ConversionError(f"{path}: {len(missing)} weights cannot be found in the ONNX graph (first: "
                              f"{', '.join(missing[:5])}); was it exported by bgmv2-zoo? Convert the original .pth.")
    notes = []
    if folded:
        notes.append(f"BatchNorm was folded into {folded} convolutions in the ONNX graph: the state dict holds the "
                     "folded convolution weights and identity BatchNorms (weight 1, bias = folded bias, mean 0, "
                     "var 1 - eps) - the same function, not the original tensors; num_batches_tracked is 0.")
    spec = ModelSpec({k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()},
                     info.kind, info.backbone, info.refine_kernel_size, meta_mod.knobs_from_metadata(metadata),
                     metadata.get("precision", "fp32"), metadata, notes)
    return spec


# -- running --------------------------------------------------------------------------------------
def session_options(threads: Optional[int] = None, level: str = "all"):
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if threads:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3
    return options


def providers_for(device: str):
    """ONNX Runtime's providers for `device`: CUDA (TF32 off: fp32 means fp32) then CPU, or the CPU."""
    if device.startswith("cuda"):
        return [("CUDAExecutionProvider", {"device_id": int(device.split(":")[1]), "use_tf32": 0}),
                "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_onnx(path: str, knobs: Optional[Dict[str, object]] = None, device: str = "cpu",
              precision: Optional[str] = None, threads: Optional[int] = None, optimization: str = "all",
              providers=None, **_) -> Runner:
    ort = require("onnxruntime")
    from .onnx_files import check_memory, session_source
    model, needed = read_model_sized(path, check=False)  # ONNX Runtime validates it (see read_onnx)
    check_memory(path, needed)
    metadata = metadata_of(model)
    if knobs:
        raise ConversionError(f"{path}: the knobs of an ONNX model are fixed when it is exported ({', '.join(knobs)} "
                              "asked); convert it again with them.")
    layout = layout_of(model, metadata)
    try:
        # The path (or, for small tensors in external data, a graph with those read in and the model's
        # folder named): never the whole model serialised, which cannot hold more than 2 GB.
        options = session_options(threads, optimization)
        session = ort.InferenceSession(session_source(path, model, options), options,
                                       providers=providers or providers_for(device))
    except Exception as error:  # noqa: BLE001
        raise ConversionError(f"{path}: ONNX Runtime cannot load it ({first_line(error)}).") from None
    if device.startswith("cuda") and session.get_providers()[0] != "CUDAExecutionProvider":
        raise ConversionError(f"{path}: ONNX Runtime did not start its CUDA provider (providers: "
                              f"{', '.join(session.get_providers())}); check the CUDA and cuDNN libraries it needs.")
    input_type = session.get_inputs()[0].type
    dtype = np.float16 if "float16" in input_type else np.float32
    outputs = [o.name for o in session.get_outputs()]
    own = "fp16" if dtype == np.float16 else metadata.get("precision", "fp32")
    if precision not in (None, own):
        raise ConversionError(f"{path} computes in {own}, fixed when it was exported; convert it again with "
                              f"--precision {precision} (or leave the precision out).")

    def run(src, bgr):
        if layout == "NHWC":
            src, bgr = src.transpose(0, 2, 3, 1), bgr.transpose(0, 2, 3, 1)
        feeds = {"src": np.ascontiguousarray(src, dtype=dtype), "bgr": np.ascontiguousarray(bgr, dtype=dtype)}
        return session.run(None, feeds)

    return Runner(run, "onnx", path, outputs, layout, metadata, own, session,
                  any_size=metadata.get("frame_sizes") == "any", device=device, runtime="onnxruntime",
                  engine=f"ONNX Runtime {ort.__version__} ({session.get_providers()[0]})")


def exists(path: str) -> bool:
    return os.path.exists(path)
