"""What a zoo entry's file is, in words, for the fetch messages and the record of a hash.

Whether a file IS that model is told by the `identify_file` check that callers hand to
`weights.fetch` (`bgmv2.converters.identify.problem`): it needs the model, which lives above weights.
"""
from .registry import ModelEntry


def what(entry: ModelEntry) -> str:
    model = "MattingRefine" if entry.kind == "refine" else "MattingBase"
    return f"a {entry.format} file of {model} ({entry.backbone})"


def described(entry: ModelEntry) -> str:
    """What `problem` returning None established, for the record."""
    if entry.format == "onnx":
        return ("parsed and checked as an ONNX model (src, bgr -> pha, fgr, ...; finite weights; its backbone cannot be "
                "read: the graph names no weights)")
    return f"loaded strictly as {what(entry)}"
