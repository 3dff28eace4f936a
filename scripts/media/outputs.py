"""Which files a run writes, refusing to overwrite without --force, and finishing them together.

`refuse_existing` runs before any work: if an output exists and --force was not given, the run stops
with the list and nothing is written (there is never an interactive prompt). `OutputSet` holds the
open writers of a run: `commit()` gives each its real name, `abort()` (on error or Ctrl-C) removes
every temporary file, so a stopped run leaves no partial output.
"""
import os
from pathlib import Path
from typing import Iterable, List

from .errors import MediaError

VIDEO_SUFFIX = {"com": ".mp4", "pha": ".mp4", "err": ".mp4", "ref": ".mp4", "fgr": ".mov"}


def picture_suffix(output_type: str, image_format: str) -> str:
    """fgr is always PNG (it carries alpha); the others take --image-format."""
    return ".png" if output_type == "fgr" else f".{image_format}"


def refuse_existing(paths: Iterable[Path], force: bool) -> None:
    if force:
        return
    existing = [p for p in paths if Path(p).exists()]
    if existing:
        shown = ", ".join(str(p) for p in existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise MediaError(f"{len(existing)} output(s) already exist: {shown}. Nothing was written; pass --force to "
                         "overwrite them, or choose another --output-dir.")


def temporary_folder(prefix: str) -> str:
    """A new temporary folder, removed when the program ends (scratch files of one run)."""
    import atexit
    import shutil
    import tempfile
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, True)
    return folder


def refuse_inputs(outputs: Iterable[Path], inputs: Iterable) -> None:
    """MediaError when writing an output would replace an input: the same file by any path, or an
    output folder (picture sequences) that holds an input."""
    held = {}  # each input, and each folder above it -> that input (one pass, however many outputs)
    for path in (os.path.realpath(p) for p in inputs if p and os.path.exists(p)):
        folder = path
        while folder not in held:
            held[folder] = path
            folder, parent = os.path.dirname(folder), folder
            if folder == parent:
                break
    for output in outputs:
        path = held.get(os.path.realpath(output))
        if path is not None:
            raise MediaError(f"{output} would replace the input {path}; choose another --output-dir "
                             "(inputs are never overwritten).")


class OutputSet:
    """The writers of one run, committed or aborted together."""

    def __init__(self):
        self.writers: List = []

    def add(self, writer):
        self.writers.append(writer)
        return writer

    def commit(self) -> List[Path]:
        """Finish every writer (each takes its real name); if one fails, the unfinished ones are removed."""
        done = []
        try:
            while self.writers:
                self.writers[0].close()
                done.append(self.writers.pop(0).path)
        except BaseException:
            failed = self.writers.pop(0)
            try:
                failed.abort()  # its temporary file or folder goes too
            except Exception:
                pass
            self.abort()
            raise
        return done

    def abort(self) -> None:
        for writer in self.writers:
            try:
                writer.abort()
            except Exception:
                pass
        self.writers = []
