"""Build a Keras model from an official-layout checkpoint: a path, a zoo name or a state dict.

Mirrors `bgmv2.pytorch_impl.checkpoint`: backbone, base/refine and refiner kernel size are read from the
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
        from bgmv2.weights import ZooError, local_path
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
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path} looks like safetensors but cannot be read ({error}); it is probably "
                                  "truncated or corrupt: fetch it again.") from None
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return read_torch_file(path)
    raise CheckpointError(f"{path} is neither a safetensors file nor a PyTorch state dict.")


def read_torch_file(path: str) -> Dict[str, np.ndarray]:
    """A `.pth` state dict through `torch.load(weights_only=True)`; a pickle holding anything but
    tensors is refused (never unpickled), with our message, not torch's (which suggests unsafe loading)."""
    import pickle
    try:
        import torch
    except ImportError:
        raise CheckpointError(f"{path} is a PyTorch file; reading it needs PyTorch. Convert it once to "
                              "safetensors (`bgmv2 convert FILE model.safetensors`) to load it with numpy only.") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f"a Python object ({found.group(1)})" if found else "Python objects"
        raise CheckpointError(
            f"{path} is a pickle that holds {what}, not only tensors, so it was refused and not read (unpickling "
            "arbitrary objects can run code). If you trust its source, load it there and re-save the plain weights with "
            "torch.save(model.state_dict(), path) or safetensors.") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path} cannot be read as a PyTorch file ({str(error).splitlines()[0]}); it is probably "
                              "truncated or corrupt: fetch it again.") from None
    state = state.get("model", state) if isinstance(state, Mapping) else state
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a plain state dict (a mapping of names to tensors). Save model.state_dict() alone.")
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def check_finite(state: Mapping, source: str) -> None:
    """Refuse weights holding NaN or infinity: the model would return a NaN matte without a word."""
    bad = [k for k, v in state.items()
           if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.isfinite(np.asarray(v)).all()]
    if bad:
        listed = ", ".join(bad[:12]) + (f" ... and {len(bad) - 12} more" if len(bad) > 12 else "")
        raise CheckpointError(
            f"{source} has NaN or infinite values in {len(bad)} tensor(s): {listed}. The weights are damaged "
            "(or came from a training run that diverged): fetch or export them again.")


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
    name = "the state dict" if isinstance(source, Mapping) else os.fspath(source)
    state = dict(source) if isinstance(source, Mapping) else read_arrays(zoo_path(os.fspath(source)))
    state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}
    check_finite(state, name)
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
