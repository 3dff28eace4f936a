"""The model zoo: registry of known models and presets, verified fetching, and the weights we ship."""
from .fetch import fetch, forget, sha256_of, verify
from .registry import ModelEntry, Registry, ZooError, cache_dir, load_registry


def resolve(name: str) -> str:
    """Local path of a zoo model by name (shipped, cached, or downloaded and verified)."""
    return str(fetch(name))


def local_path(source: str) -> str:
    """`source` itself when it names a file (it exists, or has a folder or a suffix), else the local
    path of the zoo model of that name; ZooError when it is neither."""
    import os
    if os.path.exists(source) or os.sep in source or "." in os.path.basename(source):
        return source
    return resolve(source)


__all__ = ["ModelEntry", "Registry", "ZooError", "cache_dir", "fetch", "forget", "load_registry", "local_path", "resolve", "sha256_of", "verify"]
