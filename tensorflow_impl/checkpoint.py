"""Build a Keras model from an official-layout checkpoint: a path, a zoo name or a state dict.

Mirrors `pytorch_impl.checkpoint`: backbone, base/refine and refiner kernel size are read from the
keys. `.safetensors` files are read with numpy only; `.pth` files need PyTorch to unpickle (done with
`weights_only=True`). Zoo names are resolved by the `weights` package, imported only for names.
"""
import os
import re
from typing import Dict, Mapping, Optional, Union

import numpy as np

from .model import MattingBase, MattingRefine
from .weights import load_torch_state_dict


class CheckpointError(ValueError):
    """A weights source that cannot be used as asked; the message says why and what to do."""


def zoo_path(source: str) -> str:
    try:
        from weights import ZooError, local_path
    except ImportError:
        return source
    try:
        return local_path(source)
    except ZooError as error:
        raise CheckpointError(f"{source}: no such file, and {error}") from None


def read_arrays(path: str) -> Dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) > 8 and head[8:9] == b"{":
        from safetensors.numpy import load_file
        return load_file(path)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        try:
            import torch
        except ImportError:
            raise CheckpointError(f"{path} is a PyTorch file; reading it needs PyTorch. Convert it once to "
                                  "safetensors (`bgmv2 convert FILE model.safetensors`) to load it with numpy only.") from None
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model", state) if isinstance(state, Mapping) else state
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}
    raise CheckpointError(f"{path} is neither a safetensors file nor a PyTorch state dict.")


def describe(keys) -> Dict:
    keys = list(keys)
    if any(k.startswith("backbone.features.") for k in keys):
        backbone = "mobilenetv2"
    elif any(k.startswith("backbone.layer") for k in keys):
        blocks = {int(m.group(1)) for k in keys if (m := re.match(r"backbone\.layer3\.(\d+)\.", k))}
        backbone = "resnet101" if blocks and max(blocks) >= 6 else "resnet50"
    else:
        raise CheckpointError("not a Background Matting V2 checkpoint: no backbone.features.* or backbone.layer*.* keys")
    return {"backbone": backbone, "kind": "refine" if "refiner.conv1.weight" in keys else "base"}


def load_model(source: Union[str, os.PathLike, Mapping], kind: Optional[str] = None,
               backbone: Optional[str] = None, **options):
    """A Keras `MattingBase` / `MattingRefine` with the weights of `source` (path, zoo name or state dict)."""
    state = dict(source) if isinstance(source, Mapping) else read_arrays(zoo_path(os.fspath(source)))
    state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}
    info = describe(state)
    if backbone and backbone != info["backbone"]:
        raise CheckpointError(f"the checkpoint holds {info['backbone']} weights, but backbone={backbone!r} was asked for")
    kind = kind or info["kind"]
    if kind == "refine" and info["kind"] == "base":
        raise CheckpointError("a MattingBase checkpoint (no refiner.* weights) cannot build MattingRefine; use kind='base'")
    if kind == "base":
        model = MattingBase(info["backbone"])
        state = {k: v for k, v in state.items() if not k.startswith("refiner.")}
    else:
        size = int(np.asarray(state["refiner.conv1.weight"]).shape[-1])
        options.setdefault("refine_kernel_size", size)
        model = MattingRefine(info["backbone"], **options)
    load_torch_state_dict(model, state)
    return model
