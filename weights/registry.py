"""The model zoo's registry: known models (ours and the official release), presets, hashes.

`registry.json` beside this file is the data; this module reads it. Hashes the registry does not
know (the official release publishes none) are recorded on first download in the user's cache
(`hashes.json`) and checked on every later fetch or verify.
"""
import difflib
import json
import os
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

    @property
    def shipped_path(self) -> Optional[Path]:
        return SHIPPED_DIR / self.file if self.shipped else None


def cache_dir() -> Path:
    """Where fetched weights go: $BGMV2_HOME, else ~/.cache/bgmv2."""
    return Path(os.environ.get("BGMV2_HOME") or Path.home() / ".cache" / "bgmv2")


def recorded_hashes() -> Dict[str, str]:
    path = cache_dir() / "hashes.json"
    return json.loads(path.read_text()) if path.exists() else {}


def record_hash(file: str, sha256: str) -> None:
    hashes = recorded_hashes()
    hashes[file] = sha256
    path = cache_dir() / "hashes.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".partial-{os.getpid()}")
    temporary.write_text(json.dumps(hashes, indent=2, sort_keys=True))
    os.replace(temporary, path)


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
        """The registry's hash, else the one recorded on first download, else None."""
        return entry.sha256 or recorded_hashes().get(entry.file)

    def default(self, backbone: str = "mobilenetv2", kind: str = "refine") -> ModelEntry:
        """The shipped model for a backbone and kind."""
        for entry in self.models:
            if entry.shipped and entry.backbone == backbone and entry.kind == kind:
                return entry
        shipped = [f"{m.name} ({m.backbone})" for m in self.models if m.shipped]
        raise ZooError(f"the zoo ships no {kind} weights for {backbone} (shipped: {', '.join(shipped)}); fetch the "
                       f"official ones with `bgmv2 weights fetch pytorch-{backbone}`.")


def load_registry(path: Path = REGISTRY_FILE) -> Registry:
    return Registry(json.loads(Path(path).read_text()))
