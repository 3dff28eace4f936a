"""The inputs of a batch: from a manifest (JSON lines) or from folders, each checked and named.

A manifest line is `{"src": "...", "bgr": "...", "name": "..."}` (name optional; relative paths are
relative to the manifest's folder). Folders: every picture and video under --src (recursively), with
the background of the same relative path (any picture or video suffix) under --bgr, or one --bgr file
for all. A bad line or file is a `Problem` naming it; the other items go on.
"""
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import List, Optional, Tuple

from bgmv2.scripts.media.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_image_file, is_video_file

MEDIA_EXTENSIONS = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Item:
    name: str  # where its outputs go: OUTPUT_DIR/<name>/
    src: Path
    bgr: Path
    kind: str  # "image" or "video"
    origin: str  # the manifest line or the file it came from, for messages
    given: str = ""  # the name as given, when it differs from `name` (x/./p3 -> x/p3)


@dataclass(frozen=True)
class Problem:
    origin: str
    message: str


def kind_of(path: Path) -> Optional[str]:
    return "image" if is_image_file(path) else "video" if is_video_file(path) else None


def check_name(name: str) -> Optional[str]:
    """Why `name` cannot be an output folder's name, or None."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or name.startswith("/") or any(p.startswith(".") or not p.strip() for p in parts):
        return f"name {name!r} must be a relative path without '..' or hidden parts"
    if normal_name(name).split("/")[0] in ("batch-ledger.jsonl", "batch-summary.json"):
        return f"name {name!r} is the batch's own file"
    return None


def normal_name(name: str) -> str:
    """The output folder a name means: `x/./p3`, `x//p3/` and `x/p3` are one folder."""
    return PurePosixPath(name).as_posix()


def make_item(src: Path, bgr: Path, name: str, origin: str):
    """An Item (paths absolute, as every node opens them; the name normalised), or a Problem saying what is
    wrong with these paths."""
    src, bgr = Path(os.path.abspath(src)), Path(os.path.abspath(bgr))
    for role, path in (("src", src), ("bgr", bgr)):
        if not path.exists():
            return Problem(origin, f"{role} {path}: no such file")
        if path.is_dir():
            return Problem(origin, f"{role} {path} is a folder; give a file")
        if kind_of(path) is None:
            return Problem(origin, f"{role} {path}: not a picture or video by its suffix "
                                   f"({', '.join(MEDIA_EXTENSIONS)})")
    kind = kind_of(src)
    if kind == "image" and kind_of(bgr) == "video":
        return Problem(origin, f"bgr {bgr} is a video but src {src} is a picture; give a picture background")
    bad = check_name(name)
    if bad:
        return Problem(origin, bad)
    return Item(normal_name(name), src, bgr, kind, origin, name)


def from_manifest(manifest) -> Tuple[List[Item], List[Problem]]:
    manifest = Path(manifest)
    base = manifest.parent
    items, problems = [], []
    with open(manifest, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            origin = f"{manifest}:{number}"
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(Problem(origin, f"not valid JSON ({error.msg} at column {error.colno}); each line "
                                                'is {"src": ..., "bgr": ..., "name": ...}'))
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("src"), str) or \
                    not isinstance(entry.get("bgr"), str) or not isinstance(entry.get("name", ""), str):
                problems.append(Problem(origin, 'expected {"src": "path", "bgr": "path"} with an optional "name" '
                                                "(strings)"))
                continue
            src, bgr = base / entry["src"], base / entry["bgr"]
            name = entry.get("name") or PurePosixPath(Path(entry["src"]).as_posix()).with_suffix("").name
            items.append(make_item(src, bgr, name, origin))
    return split(items + problems)


def media_under(folder: Path, skip: List[Path]) -> List[Path]:
    skip = [s.resolve() for s in skip]
    files = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file() or kind_of(path) is None:
            continue
        resolved = path.resolve()
        if any(s == resolved or s in resolved.parents for s in skip):
            continue
        files.append(path)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def from_folders(src, bgr, output_dir) -> Tuple[List[Item], List[Problem]]:
    """--src DIR --bgr DIR (paired by relative path, any media suffix) or --bgr FILE (one for all)."""
    from bgmv2.scripts.media.errors import MediaError
    src, bgr = Path(src), Path(bgr)
    if not src.exists():
        raise MediaError(f"--src {src}: no such file or folder")
    if not bgr.exists():
        raise MediaError(f"--bgr {bgr}: no such file or folder")
    if src.is_file():
        return split([make_item(src, bgr if bgr.is_file() else bgr / src.name, src.stem, str(src))])
    files = media_under(src, [Path(output_dir)])
    if not files:
        raise MediaError(f"--src {src}: the folder has no pictures or videos ({', '.join(MEDIA_EXTENSIONS)})")
    backgrounds = {}
    if bgr.is_dir():
        for path in media_under(bgr, [Path(output_dir)]):
            backgrounds.setdefault(path.relative_to(bgr).with_suffix("").as_posix(), []).append(path)
    results = []
    for path in files:
        stem = path.relative_to(src).with_suffix("").as_posix()
        if bgr.is_file():
            results.append(make_item(path, bgr, stem, str(path)))
            continue
        matches = backgrounds.get(stem, [])
        if len(matches) != 1:
            found = "none" if not matches else ", ".join(str(m) for m in matches)
            results.append(Problem(str(path), f"needs exactly one background {bgr / stem}.* in --bgr (found {found})"))
            continue
        results.append(make_item(path, matches[0], stem, str(path)))
    return split(results)


def split(results) -> Tuple[List[Item], List[Problem]]:
    """Items and problems; an output name used twice is a problem for the later item."""
    items, problems, seen = [], [], {}
    for result in results:
        if isinstance(result, Problem):
            problems.append(result)
        elif result.name in seen:
            given = f"{result.given!r} (output folder {result.name!r})" if result.given not in ("", result.name) \
                else repr(result.name)
            problems.append(Problem(result.origin, f"name {given} is already used by {seen[result.name]}; give it "
                                                   "another name"))
        else:
            seen[result.name] = result.origin
            items.append(result)
    return items, problems
