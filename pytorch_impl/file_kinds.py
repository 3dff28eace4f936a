"""Recognise what a weights file is from its content, not its name, for messages that say so."""
import json
import os
import struct
import zipfile

TORCHSCRIPT = "TorchScript archive"
TORCH_ZIP = "PyTorch state dict (zip)"
TORCH_LEGACY = "PyTorch state dict (legacy pickle)"
SAFETENSORS = "safetensors"
ONNX = "ONNX model"
HDF5 = "HDF5 file (Keras .h5 / .weights.h5)"
KERAS_ARCHIVE = "Keras .keras archive"
SAVED_MODEL = "TensorFlow SavedModel folder"
TFLITE = "TensorFlow Lite flatbuffer"
FOLDER = "folder"
EMPTY = "empty file"
CORRUPT_ZIP = "truncated or corrupt zip archive"
OTHER_ZIP = "zip archive of unknown content"
TRUNCATED_ONNX = "truncated ONNX model (its last field runs past the end of the file)"
TRUNCATED_HDF5 = "truncated HDF5 file (shorter than its header says)"
# Kinds that mean "the download or copy was cut short".
TRUNCATED = (EMPTY, CORRUPT_ZIP, TRUNCATED_ONNX, TRUNCATED_HDF5)
JPEG = "JPEG image"
PNG = "PNG image"
HTML = "HTML page (a web server's error or sign-in page, not the file itself?)"
UNKNOWN = "unrecognised file"


def with_article(kind: str) -> str:
    """'a PyTorch ...' / 'an ONNX ...', for messages."""
    return ("an " if kind[0].lower() in "aeiou" or kind.startswith(("HDF5", "HTML")) else "a ") + kind


def zip_kind(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return CORRUPT_ZIP
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return TORCHSCRIPT
    if any(n.endswith("data.pkl") for n in names):
        return TORCH_ZIP
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
        return KERAS_ARCHIVE
    return OTHER_ZIP


def looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return 0 < header_len <= size - 8 and head[8:9] == b"{"


def looks_like_onnx(head: bytes) -> bool:
    # ModelProto starts with field 1 (ir_version, a small varint), then producer/graph/opset fields.
    return len(head) > 3 and head[0] == 0x08 and head[1] < 0x80 and head[2] in (0x12, 0x1A, 0x22, 0x3A, 0x42)


def varint(f) -> int:
    """A protobuf varint read from `f`; -1 when the file ends inside it."""
    value, shift = 0, 0
    while True:
        byte = f.read(1)
        if not byte:
            return -1
        value |= (byte[0] & 0x7F) << shift
        shift += 7
        if byte[0] < 0x80:
            return value
        if shift > 63:
            return -1


def protobuf_truncated(path: str, size: int) -> bool:
    """True when the top-level fields of the protobuf message in `path` run past its end: a cut ONNX
    file. Walks only the top level (a handful of fields; the graph is skipped by its length)."""
    with open(path, "rb") as f:
        while f.tell() < size:
            tag = varint(f)
            if tag < 0:
                return True
            wire = tag & 7
            if wire == 0:
                if varint(f) < 0:
                    return True
                continue
            if wire == 2:
                length = varint(f)
                if length < 0:
                    return True
                skip = length
            elif wire in (1, 5):
                skip = 8 if wire == 1 else 4
            else:  # groups or garbage: not a judgement this walk can make
                return False
            if f.tell() + skip > size:
                return True
            f.seek(skip, 1)
    return False


def hdf5_truncated(head: bytes, size: int) -> bool:
    """True when an HDF5 file is shorter than the end-of-file address its superblock records
    (superblock versions 0-3 with 8-byte addresses, what h5py and Keras write; others pass)."""
    version = head[8]
    offsets = head[13] if version < 2 else head[9]
    if offsets != 8 or len(head) < 52:
        return False
    base_at, end_at = {0: (24, 40), 1: (28, 44)}.get(version, (12, 28))
    (base,) = struct.unpack("<Q", head[base_at:base_at + 8])
    (end,) = struct.unpack("<Q", head[end_at:end_at + 8])
    return end != 0xFFFFFFFFFFFFFFFF and base + end > size


def file_kind(path: str) -> str:
    """One of the constants above, from the first bytes (and the zip directory) of `path`."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return SAVED_MODEL
        return FOLDER
    size = os.path.getsize(path)
    if size == 0:
        return EMPTY
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04"):
        return zip_kind(path)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return TRUNCATED_HDF5 if hdf5_truncated(head, size) else HDF5
    if head[4:8] == b"TFL3":
        return TFLITE
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return TORCH_LEGACY
    if looks_like_safetensors(head, size):
        return SAFETENSORS
    if looks_like_onnx(head):
        return TRUNCATED_ONNX if protobuf_truncated(path, size) else ONNX
    return foreign_kind(head)


def foreign_kind(head: bytes) -> str:
    """What a file that is no model format is, for messages: a picture, a web page, or unknown."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return HTML
    return UNKNOWN


def safetensors_metadata(path: str) -> dict:
    """The `__metadata__` table of a safetensors header ({} when absent)."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    return header.get("__metadata__", {}) or {}
