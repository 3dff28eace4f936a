"""The model zoo's registry: known models (ours and the official release), presets, hashes.

`registry.json` beside this file is the data; this module reads it. Hashes the registry does not
know (the official release publishes none) are recorded in the user's cache (`hashes.json`) on the
first fetch whose file loads strictly as the entry's model (`bgmv2.weights.identify`), with where it came
from and when, and checked on every later fetch or verify; `bgmv2 weights forget NAME` drops one.
Records written by older versions (a bare hash, taken without looking at the file) are marked
unchecked, so a mismatch says the record, not the new file, is the suspect.
"""
import difflib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

REGISTRY_FILE = Path(__file__).with_name("registry.json")
SHIPPED_DIR = Path(__file__).parent


class ZooError(ValueError):
    """A zoo request that cannot be served; the message says why and what to do."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    origin: str
    backbone: str
    kind: str
    format: str
    precision: str
    file: str
    sha256: Optional[str] = None
    size: Optional[int] = None
    urls: List[str] = field(default_factory=list)
    preset: Optional[str] = None
    shipped: bool = False
    description: str = ""
    metrics: Dict = field(default_factory=dict)
    superseded_by: Optional[str] = None  # a newer model of ours took this one's place as the default

    @property
    def shipped_path(self) -> Optional[Path]:
        return SHIPPED_DIR / self.file if self.shipped else None


def cache_dir() -> Path:
    """Where fetched weights go: $BGMV2_HOME, else ~/.cache/bgmv2."""
    return Path(os.environ.get("BGMV2_HOME") or Path.home() / ".cache" / "bgmv2")


def hashes_file() -> Path:
    return cache_dir() / "hashes.json"


def recorded_hashes() -> Dict[str, Dict]:
    """file name -> {"sha256", "source", "recorded" (UTC), "checked" (what was verified, "" if nothing)}."""
    path = hashes_file()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as error:
        raise ZooError(f"{path} cannot be read ({error}); delete it to start over (every official file's hash is "
                       "recorded again on its next fetch).") from None
    if not isinstance(data, dict):
        raise ZooError(f"{path} is not a table of recorded hashes; delete it to start over.")
    return {file: record if isinstance(record, dict) else {"sha256": str(record), "source": "unknown",
                                                             "recorded": "unknown", "checked": ""}
            for file, record in data.items()}


def write_hashes(hashes: Dict[str, Dict]) -> None:
    from bgmv2 import atomic
    atomic.write_text(hashes_file(), json.dumps(hashes, indent=2, sort_keys=True))


def record_hash(file: str, sha256: str, source: str = "unknown", checked: str = "") -> Dict:
    """Record `sha256` as the expected hash of `file`; `checked` says what was verified about it."""
    hashes = recorded_hashes()
    record = {"sha256": sha256, "source": source, "checked": checked,
              "recorded": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    hashes[file] = record
    write_hashes(hashes)
    return record


def forget_hash(file: str) -> Optional[Dict]:
    """Drop the recorded hash of `file`; the record, or None when there was none."""
    hashes = recorded_hashes()
    record = hashes.pop(file, None)
    if record is not None:
        write_hashes(hashes)
    return record


class Registry:
    def __init__(self, data: Dict):
        self.presets: Dict[str, Dict] = data["presets"]
        self.release_page: str = data.get("official_release_page", "")
        self.models = [ModelEntry(**entry) for entry in data["models"]]

    def get(self, name: str) -> ModelEntry:
        for entry in self.models:
            if entry.name == name:
                return entry
        close = difflib.get_close_matches(name, [m.name for m in self.models], n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ZooError(f"no model named {name!r} in the zoo.{hint} `bgmv2 weights list` shows them all.")

    def by_file(self, file_name: str) -> List[ModelEntry]:
        return [m for m in self.models if m.file == file_name]

    def expected_sha256(self, entry: ModelEntry) -> Optional[str]:
        """The registry's hash, else the one recorded on first fetch, else None."""
        if entry.sha256:
            return entry.sha256
        record = recorded_hashes().get(entry.file)
        return record["sha256"] if record else None

    def default(self, backbone: str = "mobilenetv2", kind: str = "refine") -> ModelEntry:
        """The shipped model for a backbone and kind (superseded ones stay loadable by name, not default)."""
        for entry in self.models:
            if entry.shipped and not entry.superseded_by and entry.backbone == backbone and entry.kind == kind:
                return entry
        shipped = [f"{m.name} ({m.backbone})" for m in self.models if m.shipped]
        raise ZooError(f"the zoo ships no {kind} weights for {backbone} (shipped: {', '.join(shipped)}); fetch the "
                       f"official ones with `bgmv2 weights fetch pytorch-{backbone}`.")


def load_registry(path: Path = REGISTRY_FILE) -> Registry:
    return Registry(json.loads(Path(path).read_text()))
