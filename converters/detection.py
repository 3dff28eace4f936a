"""What a model file or folder is, from its content (never its name), in the terms of `formats`.

Builds on `bgmv2.pytorch_impl.file_kinds` (zip directory and leading bytes) and adds what it does not
know: `torch.export` archives (`.pt2`) and Keras weights in HDF5. Which format a kind is, each format
module says (`detect(path, kind)`, see `bgmv2.converters.formats`).
"""
import os
import zipfile

from bgmv2.pytorch_impl import file_kinds

from .errors import ConversionError
from . import formats

PT2 = "torch.export program archive (.pt2)"
KERAS_WEIGHTS = "Keras weights (HDF5)"

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
    """The format name (`pth`, `safetensors`, `torchscript`, `pt2`, `onnx`, `keras`, `savedmodel`, ...) of
    `path`, from its content: the first format module of the table whose `detect` claims it;
    `ConversionError` saying what the file is when none does."""
    path = os.fspath(path)
    kind = content_kind(path)
    for name, module in formats.registry().items():
        if module.detect(path, kind):
            return name
    known = ", ".join(formats.registry())
    if kind in file_kinds.TRUNCATED:
        raise ConversionError(f"{path} is {file_kinds.with_article(kind)}: the download or copy was probably cut "
                              "short. Fetch it again and compare its sha256 with the published one.")
    if kind == file_kinds.KERAS_ARCHIVE:
        raise ConversionError(f"{path} is a Keras .keras archive; bgmv2 reads Keras weights files (.weights.h5): "
                              "save them with model.save_weights('model.weights.h5').")
    if kind == file_kinds.FOLDER:
        raise ConversionError(f"{path} is a folder without saved_model.pb, so not a TensorFlow SavedModel. "
                              f"Pass a model file or a SavedModel folder ({known}).")
    raise ConversionError(f"{path} is {file_kinds.with_article(kind)}, not a model file bgmv2 converts. "
                          f"Formats read: {known} ({'; '.join(f'{k}: {v[0]}' for k, v in formats.FORMATS.items())}).")
