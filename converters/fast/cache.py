"""The fast path's memory between runs: which way of running won on this machine, per model and shape.

One JSON file, `$BGMV2_HOME/fast/choices.json` (default `~/.cache/bgmv2/fast/`), maps a key to the
choice made on first use (candidate name, the timings that decided it, when). The key holds everything
that can change the answer: the model's sha256 (its file's bytes plus the knobs it runs with), the
input shape, the device (CPU capability and thread count, or the GPU's name), and the versions of
torch, onnxruntime and openvino. Writes go to a temporary file renamed over the old one, so a crash or a
concurrent run never leaves half a file; an unreadable file is treated as empty (and replaced).
"""
import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Dict, Optional


def home() -> Path:
    """$BGMV2_HOME/fast, else ~/.cache/bgmv2/fast (the model zoo's cache folder)."""
    return Path(os.environ.get("BGMV2_HOME") or Path.home() / ".cache" / "bgmv2") / "fast"


def file_sha256(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def model_id(file_digest: str, knobs: Dict[str, object]) -> str:
    """sha256 of the weights file's digest and the knobs: one id per (weights, settings)."""
    text = file_digest + json.dumps(knobs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def versions() -> Dict[str, str]:
    """torch's version and those of the runtimes candidates use ("none" where not installed)."""
    import importlib
    import torch
    found = {"torch": torch.__version__}
    for name in ("onnxruntime", "openvino"):
        try:
            found[name] = importlib.import_module(name).__version__
        except ImportError:
            found[name] = "none"
    return found


def device_text(device) -> str:
    """What decides speed on this device: the GPU's name, or the CPU's capability and thread count."""
    import torch
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.backends.cpu.get_cpu_capability()}:{torch.get_num_threads()}threads"


def choice_key(model: str, shape, device, precision: str) -> str:
    parts = {"model": model, "shape": "x".join(str(int(s)) for s in shape), "device": device_text(device),
             "precision": precision, **versions()}
    return "|".join(f"{k}={v}" for k, v in parts.items())


class ChoiceCache:
    """Read and record choices in one JSON file (atomic replace on every write). `locked()` holds an
    exclusive lock beside it, so processes choosing for the same model at once (batch workers) choose
    one after another: the second finds the first's choice. A file that cannot be parsed is kept aside
    (`choices.json.corrupt-<time>`, said once) instead of being silently replaced."""

    def __init__(self, path: Optional[Path] = None):
        self.path = Path(path) if path is not None else home() / "choices.json"
        self.notes = []  # what happened to the file, for the runner to say

    def load(self) -> Dict[str, dict]:
        try:
            text = self.path.read_text()
        except OSError:
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            os.replace(self.path, aside)
            self.notes.append(f"{self.path} could not be read; kept aside as {aside}, choosing again")
        except OSError:
            pass
        return {}

    @contextlib.contextmanager
    def locked(self):
        """An exclusive lock on `<file>.lock` for the duration (no lock where the folder is not writable)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path.with_name(self.path.name + ".lock"), "a")
        except OSError:
            yield
            return
        with handle:
            try:
                import fcntl
                fcntl.flock(handle, fcntl.LOCK_EX)
            except (ImportError, OSError):
                pass
            yield

    def get(self, key: str) -> Optional[dict]:
        entry = self.load().get(key)
        return entry if isinstance(entry, dict) and isinstance(entry.get("choice"), str) else None

    def put(self, key: str, entry: dict) -> None:
        """Record `entry` under `key`; a cache folder that cannot be written only loses the memory."""
        data = self.load()
        data[key] = {**entry, "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        from bgmv2 import atomic
        try:
            atomic.write_text(self.path, json.dumps(data, indent=1, sort_keys=True))
        except OSError:
            pass
