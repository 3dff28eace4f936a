"""What a model file or folder is, from its content (never its name), in the terms of `formats`.

Builds on `pytorch_impl.file_kinds` (zip directory and leading bytes) and adds what it does not
know: `torch.export` archives (`.pt2`), Keras weights in HDF5, SavedModel folders and ONNX models
(protobuf, parsed to be sure).
"""
import os
import zipfile

from pytorch_impl import file_kinds

from .errors import ConversionError
from .formats import FORMATS, NAMES

PT2 = "torch.export program archive (.pt2)"
KERAS_WEIGHTS = "Keras weights (HDF5)"

KIND_TO_FORMAT = {
    file_kinds.TORCH_ZIP: "pth",
    file_kinds.TORCH_LEGACY: "pth",
    file_kinds.SAFETENSORS: "safetensors",
    file_kinds.TORCHSCRIPT: "torchscript",
    PT2: "pt2",
    file_kinds.ONNX: "onnx",
    KERAS_WEIGHTS: "keras",
    file_kinds.HDF5: "keras",
    file_kinds.SAVED_MODEL: "savedmodel",
}


def is_pt2(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception:  # noqa: BLE001 - any unreadable zip is simply not a .pt2
        return False
    return any(n.endswith("/archive_format") for n in names) and any("/models/" in n for n in names)


def content_kind(path: str) -> str:
    """A description of what `path` holds (a `file_kinds` constant, `PT2` or `KERAS_WEIGHTS`)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConversionError(f"{path}: no such file or folder")
    try:
        kind = file_kinds.file_kind(path)
    except OSError as error:
        raise ConversionError(f"{path} cannot be read ({error.strerror or error}); check the path and permissions.") from None
    except Exception:  # noqa: BLE001 - file_kinds on a strange file: treat as unrecognised
        kind = file_kinds.UNKNOWN
    if kind == file_kinds.OTHER_ZIP and is_pt2(path):
        return PT2
    if kind == file_kinds.HDF5:
        return KERAS_WEIGHTS
    return kind


def detect(path) -> str:
    """The format name (`pth`, `safetensors`, `torchscript`, `pt2`, `onnx`, `keras`, `savedmodel`) of
    `path`, from its content; `ConversionError` saying what the file is when it is none of them."""
    path = os.fspath(path)
    kind = content_kind(path)
    from . import openvino_format, tflite_format  # formats file_kinds does not know
    for fmt, module in (("tflite", tflite_format), ("openvino", openvino_format)):
        if module.detect(path):
            return fmt
    if kind in KIND_TO_FORMAT:
        return KIND_TO_FORMAT[kind]
    known = ", ".join(NAMES)
    if kind in (file_kinds.EMPTY, file_kinds.CORRUPT_ZIP):
        raise ConversionError(f"{path} is {file_kinds.with_article(kind)}: the download or copy was probably cut "
                              "short. Fetch it again and compare its sha256 with the published one.")
    if kind == file_kinds.KERAS_ARCHIVE:
        raise ConversionError(f"{path} is a Keras .keras archive; bgmv2 reads Keras weights files (.weights.h5): "
                              "save them with model.save_weights('model.weights.h5').")
    if kind == file_kinds.FOLDER:
        raise ConversionError(f"{path} is a folder without saved_model.pb, so not a TensorFlow SavedModel. "
                              f"Pass a model file or a SavedModel folder ({known}).")
    raise ConversionError(f"{path} is {file_kinds.with_article(kind)}, not a model file bgmv2 converts. "
                          f"Formats read: {known} ({'; '.join(f'{k}: {v[0]}' for k, v in FORMATS.items())}).")
