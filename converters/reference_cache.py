"""The reference's outputs kept on disk across runs: the float64 run every check measures noise with,
the float32 run candidates are compared with, and fp16 / bf16 runs (slow on CPUs), per probe; and
the built-in probes themselves (`probes.synthetic_probe`: keyed by size, batch, seed and the source of
the synthetic data code).

Key: sha256 of the weights (every tensor's name, dtype, shape and bytes, with the model kind,
backbone and refiner kernel size), the knobs, the probe's pixels, the precision (and weight
rounding) and the torch version, so a change of any of them misses. Stored under
`$BGMV2_HOME/parity/reference` (default `~/.cache/bgmv2/parity/reference`), one `.npz` per entry,
written atomically; the oldest entries go when the folder passes `LIMIT_BYTES`.
`BGMV2_PARITY_CACHE=0` turns it off. A damaged entry is a miss (and is removed).
"""
import hashlib
import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from bgmv2.atomic import writing

LIMIT_BYTES = 512 * 1024 ** 2


def folder() -> Path:
    return Path(os.environ.get("BGMV2_HOME") or Path.home() / ".cache" / "bgmv2") / "parity" / "reference"


def enabled() -> bool:
    return os.environ.get("BGMV2_PARITY_CACHE", "1") not in ("0", "off", "no", "false")


def weights_hash(spec) -> str:
    """sha256 of a ModelSpec's weights and architecture (computed once per spec)."""
    found = getattr(spec, "_bgmv2_weights_hash", None)
    if found:
        return found
    digest = hashlib.sha256(f"{spec.kind}|{spec.backbone}|{spec.refine_kernel_size}".encode())
    for name in sorted(spec.state):
        value = np.ascontiguousarray(spec.state[name])
        digest.update(f"|{name}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    found = digest.hexdigest()
    try:
        spec._bgmv2_weights_hash = found
    except AttributeError:  # a spec that takes no attributes: hashed again next time
        pass
    return found


def probe_hash(probe) -> str:
    found = getattr(probe, "_bgmv2_hash", None)
    if found:
        return found
    digest = hashlib.sha256()
    for array in (probe.src, probe.bgr):
        array = np.ascontiguousarray(array, np.float32)
        digest.update(f"{array.shape}|".encode())
        digest.update(array.tobytes())
    found = digest.hexdigest()
    probe._bgmv2_hash = found
    return found


def key(spec, knobs: Dict[str, object], probe, precision: str, weights: Optional[str]) -> str:
    import torch
    text = "|".join([weights_hash(spec), repr(sorted(knobs.items())), probe_hash(probe), precision, str(weights),
                     torch.__version__])
    return hashlib.sha256(text.encode()).hexdigest()


def load(entry: str) -> Optional[Dict[str, np.ndarray]]:
    if not enabled():
        return None
    path = folder() / f"{entry}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["__names__"]]
            found = {name: np.array(data[f"o{i}"]) for i, name in enumerate(names)}
        os.utime(path)  # recently used: kept longest
        return found
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a damaged entry is a miss
        try:
            path.unlink()
        except OSError:
            pass
        return None


def store(entry: str, outputs: Dict[str, np.ndarray]) -> None:
    """Keep `outputs` under `entry` (atomically); a cache that cannot be written is no error."""
    if not enabled():
        return
    place = folder()
    try:
        place.mkdir(parents=True, exist_ok=True)
        arrays = {f"o{i}": np.asarray(v) for i, v in enumerate(outputs.values())}
        with writing(place / f"{entry}.npz") as temporary:
            with open(temporary, "wb") as f:  # a file object: np.savez adds no second suffix
                np.savez(f, __names__=np.asarray(list(outputs)), **arrays)
        prune(place)
    except OSError:
        pass


def prune(place: Path, limit: int = LIMIT_BYTES) -> None:
    """Remove the least recently used entries while the folder holds more than `limit` bytes."""
    entries = sorted(place.glob("*.npz"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in entries)
    for path in entries:
        if total <= limit:
            break
        total -= path.stat().st_size
        path.unlink(missing_ok=True)


def cached(entry: str, compute):
    """`compute()` (a dict of arrays), from the cache when it holds `entry`."""
    found = load(entry)
    if found is None:
        found = compute()
        store(entry, found)
    return found


def cached_run(spec, knobs, probe, precision: str, weights: Optional[str], compute):
    """`compute()` (the reference's outputs), from the cache when it holds them."""
    return cached(key(spec, knobs, probe, precision, weights), compute)


def source_hash(module) -> str:
    """sha256 of a module's source file (what a cached result computed by it depends on)."""
    with open(module.__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
