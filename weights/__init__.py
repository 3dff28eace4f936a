"""The model zoo: registry of known models and presets, verified fetching, and the weights we ship."""
from .fetch import fetch, forget, sha256_of, unidentified, verify
from .registry import ModelEntry, Registry, ZooError, cache_dir, load_registry


def local_path(source: str, identify_file=unidentified) -> str:
    """`source` itself when it names a file (it exists, or has a folder or a suffix), else the local
    path of the zoo model of that name (shipped, cached, or fetched and verified: `fetch`, which is
    handed `identify_file`); ZooError when it is neither."""
    import os
    if os.path.exists(source) or os.sep in source or "." in os.path.basename(source):
        return source
    return str(fetch(source, identify_file=identify_file))


__all__ = ["ModelEntry", "Registry", "ZooError", "cache_dir", "fetch", "forget", "load_registry", "local_path", "sha256_of",
           "unidentified", "verify"]
