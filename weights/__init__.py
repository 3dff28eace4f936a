"""The model zoo: registry of known models and presets, verified fetching, and the weights we ship."""
from .fetch import fetch, sha256_of, verify
from .registry import ModelEntry, Registry, ZooError, cache_dir, load_registry


def resolve(name: str) -> str:
    """Local path of a zoo model by name (shipped, cached, or downloaded and verified)."""
    return str(fetch(name))


__all__ = ["ModelEntry", "Registry", "ZooError", "cache_dir", "fetch", "load_registry", "resolve", "sha256_of", "verify"]
