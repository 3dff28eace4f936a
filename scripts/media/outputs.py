"""Which files a run writes, refusing to overwrite without --force, and finishing them together.

`refuse_existing` runs before any work: if an output exists and --force was not given, the run stops
with the list and nothing is written (there is never an interactive prompt). `OutputSet` holds the
open writers of a run: `commit()` gives each its real name, `abort()` (on error or Ctrl-C) removes
every temporary file, so a stopped run leaves no partial output.
"""
import os
import re
from pathlib import Path
from typing import Iterable, List

from .errors import MediaError, warn

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


def check_output_dir(folder, option: str = "--output-dir") -> None:
    """MediaError before any work when `folder` cannot take outputs: a file stands there (or above it),
    or the nearest existing folder is read-only or not writable. Nothing is created here."""
    path = Path(folder)
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            raise MediaError(f"{option} {folder}: {existing} is a broken link; choose another folder")
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under {existing}, which is a file"
        raise MediaError(f"{option} {folder} {where}, not a folder; choose a folder (it is created if missing)")
    try:
        read_only = os.statvfs(existing).f_flag & os.ST_RDONLY
    except (OSError, AttributeError):
        read_only = False
    if read_only:
        raise MediaError(f"{option} {folder}: {existing} is on a read-only file system; choose another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MediaError(f"{option} {folder}: no permission to write in {existing}; choose a folder you can write to")


# what an unfinished writer leaves: NAME.partial-PID (file or folder), NAME.replaced-PID (the old
# folder during a swap), and converters' .partial-PID-NAME
STALE = re.compile(r"^(?P<name>.+)\.(?P<what>partial|replaced)-(?P<pid>\d+)$")
STALE_CONVERTED = re.compile(r"^\.partial-(?P<pid>\d+)-(?P<name>.+)$")


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid < 2 ** 22  # someone else's live process (or a number no process has)
    return True


def clean_stale(folders: Iterable, recursive: bool = False) -> List[Path]:
    """Remove what runs that were killed (SIGKILL, power loss) left unfinished in `folders`: partial
    outputs whose process is gone. A `.replaced-PID` folder whose output is missing is put back (the
    swap was cut between its two renames). Those of a running process are reported, not touched.
    Returns the paths removed."""
    from .encode import remove
    removed, alive = [], []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        entries = folder.rglob("*") if recursive else folder.iterdir()
        for entry in list(entries):
            match = STALE.match(entry.name) or STALE_CONVERTED.match(entry.name)
            if not match or not entry.exists():
                continue
            pid = int(match.group("pid"))
            if process_alive(pid):
                if pid != os.getpid():
                    alive.append(f"{entry} (process {pid})")
                continue
            final = entry.with_name(match.group("name"))
            if match.groupdict().get("what") == "replaced" and not final.exists():
                os.replace(entry, final)
                warn(f"{final}: restored the earlier output that a stopped run (process {pid}) had set aside")
                continue
            remove(entry)
            removed.append(entry)
    if removed:
        shown = ", ".join(str(p) for p in removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
        warn(f"removed {len(removed)} unfinished file(s) left by earlier runs that were stopped: {shown}")
    if alive:
        warn(f"{len(alive)} unfinished file(s) belong to running processes and were left alone: "
             + ", ".join(alive[:3]))
    return removed


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
