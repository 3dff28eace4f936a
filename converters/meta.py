"""What made a file: the metadata every written file carries, and the model description it implies.

Stored as flat string pairs with the prefix `bgmv2.` where the format shares a namespace (ONNX
`metadata_props`, the safetensors header), as `bgmv2.json` where it has files (TorchScript and
`.pt2` extra files, SavedModel `assets/`, the `.pth` zip), and as an HDF5 attribute in Keras weights.
"""
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from bgmv2.knobs import BY_NAME, FILE_KNOBS

PREFIX = "bgmv2."
# The MattingRefine knobs a file may carry, their types and the official defaults (`bgmv2.knobs.TABLE`).
KNOBS = {name: (BY_NAME[name].type, BY_NAME[name].default) for name in FILE_KNOBS}
# Keys shown first by `--info`, in this order.
ORDER = ("model", "backbone", "refine_kernel_size", *KNOBS, "precision", "layout", "format", "onnx_variant",
         "exporter", "opset", "simplified", "source_format", "source_name", "source_sha256", "bn_folded",
         "project_version", "torch_version", "tensorflow_version")


def project_version() -> str:
    from importlib import metadata
    try:
        return metadata.version("bgmv2-zoo")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def sha256(path: str) -> str:
    """sha256 of a file, or of a folder's files (sorted relative paths and contents)."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                digest.update(os.path.relpath(full, path).encode())
                with open(full, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
        return digest.hexdigest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_knob(name: str, value):
    """`value` (a string from a file, or a number) as the knob's type; ValueError with the model's
    message (`bgmv2.knobs`) when the model would refuse it."""
    from bgmv2.knobs import check_knob
    return check_knob(name, value)


@dataclass
class ModelSpec:
    """A model's weights in the official PyTorch layout (numpy float32), what it is, and its knobs."""
    state: Dict[str, np.ndarray]
    kind: str  # "refine" or "base"
    backbone: str
    refine_kernel_size: Optional[int]
    knobs: Dict[str, object] = field(default_factory=dict)
    precision: str = "fp32"  # of the file it came from
    metadata: Dict[str, str] = field(default_factory=dict)  # as read from the file
    notes: List[str] = field(default_factory=list)  # what the reader had to do (e.g. BatchNorm folded)

    def knob_values(self) -> Dict[str, object]:
        """The knobs, defaults filled in (refine models only)."""
        if self.kind != "refine":
            return {}
        return {name: self.knobs.get(name, default) for name, (_, default) in KNOBS.items()}


def check_finite(spec: ModelSpec, source: str) -> None:
    """ConversionError naming the tensors of `spec` that hold NaN or infinity."""
    from .errors import ConversionError
    bad = [k for k, v in spec.state.items() if np.issubdtype(np.asarray(v).dtype, np.floating)
           and not np.isfinite(v).all()]
    if bad:
        listed = ", ".join(bad[:12]) + (f" ... and {len(bad) - 12} more" if len(bad) > 12 else "")
        raise ConversionError(f"{source} has NaN or infinite values in {len(bad)} tensor(s): {listed}. The weights are "
                              "damaged (or came from a training run that diverged): fetch or export them again.")


def knobs_from_metadata(metadata: Dict[str, str], source: str = "the file") -> Dict[str, object]:
    """The knobs a file's metadata records; ConversionError when one is invalid (never silently dropped)."""
    from .errors import ConversionError
    knobs = {}
    for name in KNOBS:
        if name in metadata:
            try:
                knobs[name] = parse_knob(name, metadata[name])
            except ValueError as error:
                raise ConversionError(f"{source}: its metadata records a knob the model refuses: {error} "
                                      "Convert the original again with valid knobs.") from None
    return knobs


def describe(spec: ModelSpec, fmt: str, precision: str, layout: str, source: Optional[str],
             source_format: Optional[str], **extra) -> Dict[str, str]:
    """The metadata for a file written from `spec`."""
    import torch
    meta = {"model": "MattingRefine" if spec.kind == "refine" else "MattingBase", "backbone": spec.backbone}
    if spec.kind == "refine":
        meta["refine_kernel_size"] = str(spec.refine_kernel_size)
        meta.update({k: str(v) for k, v in spec.knob_values().items()})
    meta.update({"precision": precision, "layout": layout, "format": fmt,
                 "project_version": project_version(), "torch_version": torch.__version__.split("+")[0]})
    if source is not None:
        meta["source_name"] = os.path.basename(os.path.normpath(source))
        meta["source_sha256"] = sha256(source)
    if source_format:
        meta["source_format"] = source_format
    if spec.notes:
        meta["notes"] = " ".join(spec.notes)
    meta.update({k: str(v) for k, v in extra.items() if v is not None})
    return meta


def prefixed(meta: Dict[str, str]) -> Dict[str, str]:
    return {PREFIX + k: str(v) for k, v in meta.items()}


def unprefixed(pairs: Dict[str, str]) -> Dict[str, str]:
    return {k[len(PREFIX):]: v for k, v in pairs.items() if isinstance(k, str) and k.startswith(PREFIX)}


def to_json(meta: Dict[str, str]) -> str:
    return json.dumps(meta, indent=1, sort_keys=True)


def from_json(text) -> Dict[str, str]:
    try:
        data = json.loads(text)
    except (ValueError, TypeError, UnicodeDecodeError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def ordered(meta: Dict[str, str]):
    """(key, value) pairs, the usual keys first."""
    keys = [k for k in ORDER if k in meta] + sorted(k for k in meta if k not in ORDER)
    return [(k, meta[k]) for k in keys]
