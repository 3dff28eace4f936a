"""`resolve_model(name_or_path)`: the one answer to "which file does this name mean?" for every command,
the API, parity and the fast runtime.

A path that exists is itself; a zoo name (`bgmv2 weights list`) is its local file, shipped, cached or
fetched and verified (a file nobody publishes a hash for is first recognised as the model by
`identify.problem`, which `weights` is handed); nothing (None) is the shipped model.
"""
import os
from typing import Optional

from .errors import ConversionError


def shipped_model() -> str:
    """The shipped default model's file, or a ConversionError saying it is missing and what to do."""
    from bgmv2 import weights
    try:
        entry = weights.load_registry().default("mobilenetv2", "refine")
    except weights.ZooError as error:
        raise ConversionError(str(error)) from None
    path = entry.shipped_path
    if path is None or not path.exists():
        raise ConversionError(
            f"the shipped model ({entry.name}, {entry.file}) is not in this install yet. Pass --model with a weights "
            "file or a zoo name, e.g. --model pytorch-mobilenetv2 (downloads the official weights; "
            "`bgmv2 weights list` shows all).")
    return str(path)


def resolve_model(name_or_path: Optional[str] = None) -> str:
    """The local file of a path, a zoo name, or (None) the shipped model; ConversionError otherwise."""
    if name_or_path is None:
        return shipped_model()
    if isinstance(name_or_path, bytes):
        raise ConversionError(f"{name_or_path!r} is bytes; give the path or zoo name as a str "
                              "(name.decode() or os.fsdecode(name)).")
    source = os.fspath(name_or_path)
    if os.path.exists(source):
        return source
    from bgmv2 import weights
    try:
        names = {entry.name for entry in weights.load_registry().models}
    except weights.ZooError:
        names = set()
    if source not in names:
        raise ConversionError(f"{source}: no such file or folder, and not a zoo name (`bgmv2 weights list` shows them)")
    from .identify import problem
    try:
        return str(weights.fetch(source, identify_file=problem))
    except weights.ZooError as error:  # offline, a hash mismatch, ...: its message says what to do
        raise ConversionError(str(error)) from None
