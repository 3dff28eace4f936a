"""Get zoo files: from the package (shipped), the cache, a local path or mirror, or the release URLs.

Downloads go to `<name>.partial` beside the destination and resume from there (HTTP Range); the
sha256 is checked before the file takes its real name. A file whose hash nobody knows yet must first
be recognised as the entry's model by the `identify` check the caller hands down (weights knows no
model: `bgmv2.converters.identify.problem` checks every format, `bgmv2.pytorch_impl` checks state dicts);
then its hash is recorded (and shown) for later checks. A file that fails a check is never deleted: it is kept aside as `<name>.suspect-<sha8>` for
inspection, and the message says which is suspect, the new file or the recorded hash.
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

Identify = Callable[[Path, "ModelEntry"], Optional[str]]  # None: it is the entry's model; else what it is

from . import identify
from .registry import ModelEntry, Registry, ZooError, cache_dir, load_registry, record_hash, recorded_hashes

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


def keep_aside(path: Path, entry: ModelEntry, actual: str) -> Path:
    """Move a file that failed a check out of the way (never delete it): `<file>.suspect-<sha8>`."""
    aside = path.with_name(f"{entry.file}.suspect-{actual[:8]}")
    os.replace(path, aside)
    return aside


def unidentified(path: Path, entry: ModelEntry) -> Optional[str]:
    """The `identify` of callers that hand none down: such a file cannot be trusted here."""
    raise ZooError(f"{entry.file}: nobody publishes its sha256 and no check of its content was given here, so it is not "
                   f"trusted. Fetch it once with `bgmv2 weights fetch {entry.name}` (which checks that it is "
                   f"{identify.what(entry)} and records its hash), or load it with bgmv2.load_model.")


def check(path: Path, entry: ModelEntry, registry: Registry, shipped: bool = False, where: Optional[str] = None,
          identify_file: Identify = unidentified) -> str:
    """Verify `path` against the published or recorded hash, or, when there is none, check that it
    is the entry's model (`identify_file`) and record its hash; returns the hash. A file that fails is
    kept aside (`keep_aside`), except the shipped file, which belongs to the install."""
    where = where or str(path)
    actual = sha256_of(path)
    if entry.sha256:
        if actual == entry.sha256:
            return actual
        if shipped:
            raise ZooError(f"{path} has sha256 {actual}, expected {entry.sha256}: the shipped file is damaged or not "
                           "the one this version ships (a Git LFS pointer?). Reinstall bgmv2-zoo or check out the file again.")
        aside = keep_aside(path, entry, actual)
        raise ZooError(f"{where} is not the published {entry.file}: its sha256 is {actual}, the registry's {entry.sha256}. "
                       f"This file is the suspect; it was kept aside as {aside} for inspection. Fetch again, or from "
                       "another mirror (--from).")
    record = recorded_hashes().get(entry.file)
    if record is None:
        found = identify_file(path, entry)
        if found is not None:
            aside = keep_aside(path, entry, actual)
            raise ZooError(f"{where} is not {entry.name} ({identify.what(entry)}): {found}. Its hash was not recorded; "
                           f"the file was kept aside as {aside} for inspection. Fetch it from another source (--from).")
        record_hash(entry.file, actual, where, identify.described(entry))
        print(f"{entry.file}: no published sha256; {identify.described(entry)}, recorded {actual} for later checks",
              file=sys.stderr)
        return actual
    if actual == record["sha256"]:
        return actual
    found = identify_file(path, entry)
    aside = keep_aside(path, entry, actual)
    recorded = (f"the sha256 recorded on its first fetch ({record['sha256']}, from {record['source']}, "
                f"{record['recorded']})")
    if found is not None:
        verdict = f"This file is the suspect: {found}."
    elif not record.get("checked"):
        verdict = ("The recorded hash is the suspect: an older bgmv2 recorded it without checking the file, and this "
                   f"file loads strictly as {identify.what(entry)}. If you trust this copy: `bgmv2 weights forget "
                   f"{entry.name}`, then `bgmv2 weights fetch {entry.name} --from {aside}`.")
    else:
        verdict = (f"Both load as {identify.what(entry)} and nobody publishes a hash, so which is right cannot be told "
                   f"here. If you trust this copy: `bgmv2 weights forget {entry.name}`, then "
                   f"`bgmv2 weights fetch {entry.name} --from {aside}`.")
    raise ZooError(f"{where} has sha256 {actual}, not {recorded}. It was kept aside as {aside} for inspection. {verdict}")


def candidates(entry: ModelEntry, source: Optional[str]):
    """Where to look for the file, in order: a local file or folder, a mirror URL, the registry URLs."""
    if source is None:
        return [("url", url) for url in entry.urls]
    if source.startswith(("http://", "https://")):
        return [("url", source + entry.file if source.endswith("/") else source)]
    path = Path(source)
    if not path.exists():
        raise ZooError(f"--from {source}: no such file or folder; give the downloaded {entry.file}, the folder that "
                       "holds it, or a mirror URL (http:// or https://)")
    if path.is_dir() and not (path / entry.file).is_file():
        raise ZooError(f"--from {source} is a folder without {entry.file} in it; give the file itself, the folder "
                       "that holds it, or a mirror URL")
    return [("file", path / entry.file if path.is_dir() else path)]


def fetch(name: str, source: Optional[str] = None, directory: Optional[Path] = None, registry: Optional[Registry] = None,
          progress: Optional[Callable] = None, identify_file: Identify = unidentified) -> Path:
    """Path of the zoo file `name`, verified; downloaded or copied first when not yet present.
    `identify_file(path, entry)` tells a file whose hash nobody knows yet from another (see `check`)."""
    registry = registry or load_registry()
    entry = registry.get(name)
    if entry.shipped and source is None:
        check(entry.shipped_path, entry, registry, shipped=True)
        return entry.shipped_path
    destination = Path(directory or cache_dir() / entry.name) / entry.file
    if destination.exists() and source is None:
        check(destination, entry, registry, where=f"the cached copy {destination}", identify_file=identify_file)
        return destination
    places = candidates(entry, source)  # a --from that is not there: said before anything is made
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    tried = []
    for kind, where in places:
        try:
            if kind == "file":
                shutil.copyfile(where, partial)
            else:
                download(where, partial, progress)
        except (OSError, urllib.error.URLError, ConnectionError, http.client.HTTPException) as error:
            tried.append(f"{where}: {error}")
            continue
        check(partial, entry, registry, where=str(where), identify_file=identify_file)
        os.replace(partial, destination)
        return destination
    if not tried:
        raise ZooError(f"{entry.name} has no download URL; give a local copy or mirror with --from. "
                       f"Official files: {registry.release_page}")
    raise ZooError(f"could not get {entry.file} (a partial download, if any, is kept and resumes next time):\n  "
                   + "\n  ".join(tried) + "\nOffline? Download it elsewhere and use --from PATH or a mirror URL.")


def forget(name: str, registry: Optional[Registry] = None) -> Optional[dict]:
    """Drop the hash recorded for zoo model `name` (its next fetch checks and records again); the
    record dropped, or None. ZooError for a model whose hash the registry publishes."""
    from .registry import forget_hash
    registry = registry or load_registry()
    entry = registry.get(name)
    if entry.sha256:
        raise ZooError(f"{name}'s sha256 is published in the registry ({entry.sha256}), not recorded: there is nothing "
                       "to forget. A file that does not match it is not the published file.")
    return forget_hash(entry.file)


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
