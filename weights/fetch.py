"""Get zoo files: from the package (shipped), the cache, a local path or mirror, or the release URLs.

Downloads go to `<name>.partial` beside the destination and resume from there (HTTP Range); the
sha256 is checked before the file takes its real name, and a file that fails the check is removed.
A file whose hash nobody knows yet is kept, and its hash is recorded (and shown) for later checks.
"""
import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from .registry import ModelEntry, Registry, ZooError, cache_dir, load_registry, record_hash

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, partial: Path, progress: Optional[Callable[[int, Optional[int]], None]] = None,
             timeout: float = 60) -> None:
    """Fetch `url` into `partial`, continuing after the bytes already there."""
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to fetch: the partial file is complete
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored Range: start over
            have = 0
        total = response.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        with open(partial, "ab" if have else "wb") as out:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                have += len(block)
                if progress:
                    progress(have, total)
        if total is not None and have < total:
            raise ConnectionError(f"connection closed after {have} of {total} bytes")


def print_progress(done: int, total: Optional[int]) -> None:
    text = f"{done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB ({100 * done / total:.0f}%)" if total else "")
    print(f"\r  {text}", end="", file=sys.stderr, flush=True)


def check(path: Path, entry: ModelEntry, registry: Registry, remove_bad: bool = True) -> str:
    """Verify `path` against the known hash (removing it on mismatch, unless `remove_bad` is False: the
    shipped file belongs to the install), or record its hash; returns it."""
    actual = sha256_of(path)
    expected = registry.expected_sha256(entry)
    if expected is None:
        record_hash(entry.file, actual)
        print(f"{entry.file}: no published sha256; recorded {actual} for later checks", file=sys.stderr)
    elif actual != expected and not remove_bad:
        raise ZooError(f"{path} has sha256 {actual}, expected {expected}: the shipped file is damaged or not the one "
                       "this version ships (a Git LFS pointer?). Reinstall bgmv2-zoo or check out the file again.")
    elif actual != expected:
        path.unlink()
        raise ZooError(f"{entry.file} has sha256 {actual}, expected {expected}: the file is corrupt or not the "
                       "one the zoo knows, so it was removed. Fetch it again, or from another mirror (--from).")
    return actual


def candidates(entry: ModelEntry, source: Optional[str]):
    """Where to look for the file, in order: a local file or folder, a mirror URL, the registry URLs."""
    if source is None:
        return [("url", url) for url in entry.urls]
    if source.startswith(("http://", "https://")):
        return [("url", source + entry.file if source.endswith("/") else source)]
    path = Path(source)
    return [("file", path / entry.file if path.is_dir() else path)]


def fetch(name: str, source: Optional[str] = None, directory: Optional[Path] = None, registry: Optional[Registry] = None,
          progress: Optional[Callable] = None) -> Path:
    """Path of the zoo file `name`, verified; downloaded or copied first when not yet present."""
    registry = registry or load_registry()
    entry = registry.get(name)
    if entry.shipped and source is None:
        check(entry.shipped_path, entry, registry, remove_bad=False)
        return entry.shipped_path
    destination = Path(directory or cache_dir() / entry.name) / entry.file
    if destination.exists() and source is None:
        check(destination, entry, registry)
        if destination.exists():
            return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    tried = []
    for kind, where in candidates(entry, source):
        try:
            if kind == "file":
                shutil.copyfile(where, partial)
            else:
                download(where, partial, progress)
        except (OSError, urllib.error.URLError, ConnectionError, http.client.HTTPException) as error:
            tried.append(f"{where}: {error}")
            continue
        check(partial, entry, registry)
        os.replace(partial, destination)
        return destination
    if not tried:
        raise ZooError(f"{entry.name} has no download URL; give a local copy or mirror with --from. "
                       f"Official files: {registry.release_page}")
    raise ZooError(f"could not get {entry.file} (a partial download, if any, is kept and resumes next time):\n  "
                   + "\n  ".join(tried) + "\nOffline? Download it elsewhere and use --from PATH or a mirror URL.")


def verify(path: Path, name: Optional[str] = None, registry: Optional[Registry] = None) -> str:
    """'ok', 'mismatch' or 'unknown' for a file, by zoo name or by its file name."""
    registry = registry or load_registry()
    entries = [registry.get(name)] if name else registry.by_file(Path(path).name)
    if not entries:
        raise ZooError(f"{path} is not a file the zoo knows by name; pass the zoo name (--name).")
    actual = sha256_of(Path(path))
    expected = {registry.expected_sha256(e) for e in entries} - {None}
    if not expected:
        return "unknown"
    return "ok" if actual in expected else "mismatch"
