"""Refuse `.pt2` archives that would run pickled code when loaded.

`torch.export.load` (torch 2.13) unpickles some payloads with `weights_only=False`: weights and
tensor constants whose config says `use_pickle`, custom and opaque object constants, and sample
inputs that the safe loader rejects. Archives that `bgmv2 convert` writes have none of those (all
tensors are raw storages), so such an archive is refused before torch sees it.
"""
import io
import json
import zipfile

from .errors import ConversionError

TENSOR_CONSTANT_PREFIX = "tensor_"  # data/constants/tensor_<n>: raw tensor storage


def pickled_payloads(path: str):
    """Descriptions of the payloads in the archive that loading would unpickle unsafely."""
    import torch
    found = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(("weights_config.json", "constants_config.json")):
                try:
                    config = json.loads(archive.read(name)).get("config", {})
                except (ValueError, AttributeError):
                    found.append(f"{name} (unreadable)")
                    continue
                if not isinstance(config, dict):
                    found.append(f"{name} (unreadable)")
                    continue
                for fqn, meta in config.items():
                    meta = meta if isinstance(meta, dict) else {}
                    if meta.get("use_pickle", False):
                        found.append(f"{fqn} (pickled)")
                    elif name.endswith("constants_config.json") and \
                            not str(meta.get("path_name", "")).startswith(TENSOR_CONSTANT_PREFIX):
                        found.append(f"{fqn} (object {meta.get('path_name')!r})")
            elif "/data/sample_inputs/" in name:
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception:  # noqa: BLE001 - anything the safe loader refuses would be unpickled
                    found.append(f"{name} (sample inputs the safe loader refuses)")
    return found


def check_pt2(path: str) -> None:
    """ConversionError when the `.pt2` archive at `path` holds payloads loading would unpickle."""
    try:
        found = pickled_payloads(path)
    except (zipfile.BadZipFile, OSError, KeyError, EOFError, RuntimeError) as error:
        raise ConversionError(f"{path} is not a readable torch.export archive ({error}); export it again.") from None
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise ConversionError(f"{path} holds pickled objects that loading would execute: {shown}. bgmv2 reads .pt2 "
                              "archives of tensors only; export the model again with torch.export.save, or convert "
                              "it from its state dict.")
