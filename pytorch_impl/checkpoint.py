"""Read official-layout checkpoints safely, recognise the model they hold, and build it.

`load_model(path)` reads `.pth` (with `weights_only=True`) and `.safetensors` files, works out the
backbone, base or refine, and the refiner kernel size from the keys, builds the model, loads it
strictly and returns it in eval mode. Every failure raises `CheckpointError` naming the problem and
the fix.
"""
import os
import pickle
import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Union

import torch
from torch import nn

from . import file_kinds
from .model import BACKBONES, MattingBase, MattingRefine

StateDict = Dict[str, torch.Tensor]
# Containers that training scripts often wrap a state dict in.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
# Prefixes that wrappers add to every key: DataParallel, the TorchScript production wrapper.
KEY_PREFIXES = ("module.", "model.")
LISTED = 12  # how many keys an error message lists before "and N more"


class CheckpointError(ValueError):
    """A weights file that cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True)
class CheckpointInfo:
    kind: str  # "base" or "refine"
    backbone: str
    refine_kernel_size: Optional[int]  # None for base checkpoints


def listing(keys) -> str:
    keys = list(keys)
    text = ", ".join(keys[:LISTED])
    return text + (f" ... and {len(keys) - LISTED} more" if len(keys) > LISTED else "")


def read_state_dict(path: Union[str, os.PathLike]) -> StateDict:
    """The tensors of a `.pth` or `.safetensors` file, read without executing any code."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    kind = file_kinds.file_kind(path)
    if kind == file_kinds.TORCHSCRIPT:
        raise CheckpointError(
            f"{path} is a TorchScript archive (a compiled model), not a state dict. Run it with "
            "pytorch_impl.load_torchscript(path), or take its weights with "
            "pytorch_impl.load_model(torch.jit.load(path).state_dict()).")
    if kind == file_kinds.SAFETENSORS:
        return read_safetensors(path)
    if kind in (file_kinds.TORCH_ZIP, file_kinds.TORCH_LEGACY):
        return unwrap(read_pickled(path), path)
    if kind in file_kinds.TRUNCATED:
        raise CheckpointError(
            f"{path} is {file_kinds.with_article(kind)}: the download or copy was probably cut short. Fetch the file again "
            "and compare its sha256 with the published one.")
    raise CheckpointError(
        f"{path} is {file_kinds.with_article(kind)}, not a PyTorch checkpoint. pytorch_impl loads state dicts saved by "
        "torch.save (.pth) or safetensors files; convert other formats with `bgmv2 convert`.")


def read_safetensors(path: str) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} looks like safetensors but cannot be read ({error}); it is probably truncated "
            "or corrupt: fetch it again.") from None


def read_pickled(path: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f"a Python object ({found.group(1)})" if found else "Python objects"
        raise CheckpointError(
            f"{path} is a pickle that holds {what}, not only tensors, so it was refused and not read (unpickling "
            "arbitrary objects can run code). If you trust its source, load it there and re-save the plain weights with "
            "torch.save(model.state_dict(), path) or safetensors.") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch file ({str(error).splitlines()[0]}); it is probably "
            "truncated or corrupt: fetch it again.") from None


def unwrap(obj, source: str) -> StateDict:
    """The state dict inside `obj`: itself, or under a common wrapper key, with wrapper prefixes removed."""
    if isinstance(obj, nn.Module) or isinstance(obj, torch.jit.ScriptModule):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors).")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{source} is not a plain state dict: these entries are not tensors: {listing(not_tensors)}. "
            "Save model.state_dict() alone.")
    state = dict(obj)
    for prefix in KEY_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def describe(state: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> CheckpointInfo:
    """Backbone, base/refine and refiner kernel size, from the key names and shapes."""
    keys = list(state)
    if any(k.startswith("backbone.features.") for k in keys):
        backbone = "mobilenetv2"
    elif any(k.startswith("backbone.layer") for k in keys):
        blocks = {int(m.group(1)) for k in keys if (m := re.match(r"backbone\.layer3\.(\d+)\.", k))}
        backbone = "resnet101" if blocks and max(blocks) >= 6 else "resnet50"
    else:
        raise CheckpointError(
            f"{source} is not a Background Matting V2 checkpoint: it has no backbone.features.* (MobileNetV2) "
            f"or backbone.layer*.* (ResNet) keys. Its first keys: {listing(keys)}")
    if "refiner.conv1.weight" in state:
        return CheckpointInfo("refine", backbone, int(state["refiner.conv1.weight"].shape[-1]))
    return CheckpointInfo("base", backbone, None)


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity: the model would return a NaN matte without a word."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{source} has NaN or infinite values in {len(bad)} tensor(s): {listing(bad)}. The weights are damaged "
            "(or came from a training run that diverged): fetch or export them again.")


def check_compatible(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise one error listing every missing, unexpected and mis-shaped tensor."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (model: {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {listing(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} of the wrong shape: {listing(wrong)}")
    if problems:
        raise CheckpointError(
            f"{source} does not match {type(model).__name__}({model.backbone_name!r}): " + "; ".join(problems)
            + ". The file is partial, of another model, or was saved from modified code.")


def build_model(info: CheckpointInfo, kind: Optional[str] = None, backbone: Optional[str] = None,
                source: str = "the checkpoint", **options) -> nn.Module:
    """The model described by `info`, checking any explicit request against it."""
    if backbone is not None and backbone != info.backbone:
        if backbone not in BACKBONES:
            raise CheckpointError(f"backbone={backbone!r} is not supported; choose one of {', '.join(BACKBONES)}")
        raise CheckpointError(
            f"{source} holds {info.backbone} weights, but backbone={backbone!r} was asked for: pass the "
            f"{backbone} checkpoint, or leave backbone out (it is read from the file).")
    kind = kind or info.kind
    if kind not in ("base", "refine"):
        raise CheckpointError(f"kind={kind!r} is not supported; choose 'base' or 'refine'")
    if kind == "refine" and info.kind == "base":
        raise CheckpointError(
            f"{source} is a MattingBase checkpoint (no refiner.* weights), so it cannot build MattingRefine: "
            "load it with kind='base', or use a MattingRefine checkpoint.")
    if kind == "base":
        if options:
            raise CheckpointError(
                f"{', '.join(sorted(options))} only apply to MattingRefine, but a MattingBase is being loaded.")
        return MattingBase(info.backbone)
    size = options.setdefault("refine_kernel_size", info.refine_kernel_size)
    if size != info.refine_kernel_size:
        raise CheckpointError(
            f"{source} has a refiner with kernel size {info.refine_kernel_size}, but refine_kernel_size={size} "
            "was asked for: leave it out (it is read from the file).")
    try:
        return MattingRefine(info.backbone, **options)
    except TypeError as error:
        raise CheckpointError(f"unknown model option: {error}") from None


def load_model(source: Union[str, os.PathLike, Mapping[str, torch.Tensor]], *, kind: Optional[str] = None,
               backbone: Optional[str] = None, device: Union[str, torch.device, None] = None,
               dtype: Optional[torch.dtype] = None, **options) -> nn.Module:
    """A `MattingBase` or `MattingRefine` in eval mode with the weights of `source`.

    `source`: a `.pth` / `.safetensors` path, a zoo name (`bgmv2 weights list`), or a state dict in
    the official layout.
    `kind`: 'base' loads only the base network (also from a refine checkpoint); default from the file.
    `options`: `MattingRefine` arguments (`backbone_scale`, `refine_mode`, `refine_sample_pixels`, ...).
    """
    device, dtype = placement(device, dtype)
    if isinstance(source, Mapping):
        name, state = "the state dict", unwrap(source, "the state dict")
    else:
        name, state = os.fspath(source), read_state_dict(zoo_path(os.fspath(source)))
    info = describe(state, name)
    model = build_model(info, kind, backbone, name, **options)
    if isinstance(model, MattingBase) and not isinstance(model, MattingRefine) and info.kind == "refine":
        state = {k: v for k, v in state.items() if not k.startswith("refiner.")}
    check_compatible(model, state, name)
    check_finite(state, name)
    model.load_state_dict(state, strict=True)
    return model.to(device=device, dtype=dtype).eval()


def placement(device, dtype):
    """`device` and `dtype` checked before anything is read: (torch.device or None, floating dtype or None);
    CheckpointError saying what to give instead."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        hint = {"fp32": "torch.float32", "fp16": "torch.float16", "bf16": "torch.bfloat16", "float16": "torch.float16",
                "float32": "torch.float32", "bfloat16": "torch.bfloat16"}.get(str(dtype).lower())
        raise CheckpointError(f"dtype={dtype!r}: give a floating-point torch dtype"
                              + (f" ({hint})" if hint else " (torch.float32, torch.float16 or torch.bfloat16)"))
    if device is None:
        return None, dtype
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise CheckpointError(f"device={device!r} is not a device PyTorch knows; give 'cpu', 'cuda' or 'cuda:N'") \
            from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this PyTorch is a CPU-only build" if torch.version.cuda is None else \
                "PyTorch was built for CUDA but sees no GPU (driver missing, or CUDA_VISIBLE_DEVICES hides it)"
            raise CheckpointError(f"device={str(device)!r} was asked for, but {build}; use device='cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CheckpointError(f"device={str(device)!r}: there are only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type not in ("cpu", "mps", "xpu", "meta"):
        raise CheckpointError(f"device={str(device)!r} is not supported here; give 'cpu' or 'cuda'")
    return device, dtype


def zoo_path(source: str) -> str:
    """`source` itself, or the local file of the zoo model it names (`bgmv2 weights list`).

    The one place pytorch_impl reaches outside itself: zoo names are resolved by the `weights`
    package (below this one), which is handed `state_dict_problem` to recognise a file nobody
    publishes a hash for.
    """
    from bgmv2.weights import ZooError, local_path
    try:
        return local_path(source, identify_file=state_dict_problem)
    except ZooError as error:
        raise CheckpointError(f"{source}: no such file, and {error}") from None


def state_problem(state: Mapping[str, torch.Tensor], entry) -> Optional[str]:
    """None when `state` holds the zoo `entry`'s model (its backbone and kind, loading strictly:
    every key and shape, finite weights); else what it holds instead, in a sentence."""
    try:
        info = describe(unwrap(state, "the file"), "the file")
    except CheckpointError as error:
        return f"it does not load strictly: {error}"
    if (info.backbone, info.kind) != (entry.backbone, entry.kind):
        return f"it holds {'MattingRefine' if info.kind == 'refine' else 'MattingBase'} ({info.backbone})"
    try:
        load_model(state, kind=entry.kind, backbone=entry.backbone)
    except ValueError as error:
        return f"it does not load strictly: {error}"
    return None


def state_dict_problem(path, entry) -> Optional[str]:
    """`weights.fetch`'s check that a state-dict file (.pth, .safetensors) is `entry`'s model, with
    PyTorch alone; other formats are told apart by `bgmv2.converters.identify.problem`."""
    try:
        state = read_state_dict(os.fspath(path))
    except CheckpointError as error:
        return f"it does not load: {error}"
    return state_problem(state, entry)


def load_torchscript(path: Union[str, os.PathLike], map_location: Union[str, torch.device, None] = "cpu"):
    """A TorchScript archive loaded with `torch.jit.load`, or an error saying what the file is instead."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    kind = file_kinds.file_kind(path)
    if kind in (file_kinds.TORCH_ZIP, file_kinds.TORCH_LEGACY, file_kinds.SAFETENSORS):
        raise CheckpointError(
            f"{path} is {file_kinds.with_article(kind)} (weights only), not a TorchScript archive. Load it with "
            "pytorch_impl.load_model(path); script it with pytorch_impl.script_model(model).")
    if kind != file_kinds.TORCHSCRIPT:
        raise CheckpointError(f"{path} is {file_kinds.with_article(kind)}, not a TorchScript archive.")
    return torch.jit.load(path, map_location=map_location).eval()


def save_state_dict(model: Union[nn.Module, Mapping[str, torch.Tensor]], path: Union[str, os.PathLike],
                    metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write the official-layout state dict to `.pth` or `.safetensors`, atomically (temp name, rename).

    `metadata` (strings) goes into the safetensors header; `.pth` files have no place for it.
    """
    path = os.fspath(path)
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    from bgmv2 import atomic
    with atomic.writing(path, make_folder=False) as temporary:
        if path.endswith(".safetensors"):
            from safetensors.torch import save_file
            save_file(state, str(temporary), metadata=dict(metadata or {}))
        else:
            torch.save(state, temporary)
