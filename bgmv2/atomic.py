"""Write files that exist under their names only when complete: the one write-then-rename helper.

    with atomic.writing("out/model.onnx") as temporary:   # '.partial-<pid>-model.onnx' beside it
        save(temporary)                                    # renamed to out/model.onnx when this block ends
                                                           # (removed instead if it raises, Ctrl-C included)
    atomic.write_text("summary.json", text)

The temporary lives in the destination's folder (a rename never crosses file systems) and gets the
permissions a plain `open` would have given (some writers create 0600 files).
"""
import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]


def temporary_name(path: PathLike) -> Path:
    """The name a file is written under before it is complete: `.partial-<pid>-<name>` beside it."""
    path = Path(os.path.abspath(os.fspath(path)))
    return path.with_name(f".partial-{os.getpid()}-{path.name}")


def remove(path: PathLike) -> None:
    """Remove a file or folder if it is there."""
    path = os.fspath(path)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def default_permissions(path: PathLike) -> None:
    umask = os.umask(0)
    os.umask(umask)
    if os.path.isfile(path):
        os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def writing(path: PathLike, make_folder: bool = True) -> Iterator[Path]:
    """The temporary name to write `path` under; renamed to `path` when the block ends, removed if it raises."""
    final = Path(os.fspath(path))
    if make_folder:
        final.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(final)
    remove(temporary)
    try:
        yield temporary
        default_permissions(temporary)
        os.replace(temporary, final)
    finally:
        remove(temporary)


def write_bytes(path: PathLike, data: bytes) -> None:
    with writing(path) as temporary:
        temporary.write_bytes(data)


def write_text(path: PathLike, text: str) -> None:
    with writing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
