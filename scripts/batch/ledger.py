"""What a batch has done, in the output folder: `batch-ledger.jsonl`, one JSON record a line.

Each record is appended and fsynced before the run goes on, so after a crash or a kill the ledger
says exactly what was finished. Records:

- `start`: an item's outputs are about to be written (so existing outputs of this name are the
  batch's own and may be replaced on a rerun);
- `done`: every output of the item is complete under its final name, with the item's fingerprint:
  the inputs' sizes and modification times, the model file's sha256 and the options that shape the
  outputs;
- `failed`: the item failed, with the message;
- `stopped`: the item was not finished when the Ray cluster was lost, with the reason.

An item is up to date when its last record is `done` with the fingerprint it would have now and
its outputs exist; everything else is made (again) by the next run. A torn last line (a kill
mid-write) is ignored.
"""
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Dict, Iterable, Optional

from bgmv2.scripts.media.errors import warn

LEDGER_NAME = "batch-ledger.jsonl"


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, or of a folder's files (a SavedModel) in sorted order with their names."""
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            while True:
                block = f.read(chunk)
                if not block:
                    break
                digest.update(block)
    return digest.hexdigest()


def file_state(path) -> Optional[dict]:
    """Size and modification time of an input, as the ledger records them (None for no file)."""
    if path is None:
        return None
    stat = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def fingerprint(inputs: dict, model_sha256: str, options: dict) -> str:
    text = json.dumps({"inputs": inputs, "model": model_sha256, "options": options}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def is_record(record) -> bool:
    """A record this ledger writes: an object with a string name and event (a `done` one with a string
    fingerprint). Anything else (edited by hand, another tool's file) is ignored, never trusted."""
    return (isinstance(record, dict) and isinstance(record.get("name"), str) and isinstance(record.get("event"), str)
            and (record["event"] != "done" or isinstance(record.get("fingerprint"), str)))


class Ledger:
    def __init__(self, folder):
        self.path = Path(folder) / LEDGER_NAME
        self.last: Dict[str, dict] = {}  # item name -> its latest record
        self.seen = set()  # names started or done here: their existing outputs are the batch's own
        self.load()

    def load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = data.decode("utf-8", errors="replace").splitlines()
        torn, odd = 0, []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                torn += 1
                continue
            if not is_record(record):
                odd.append(number)
                continue
            name, event = record["name"], record["event"]
            if event in ("start", "done"):
                self.seen.add(name)
            self.last[name] = record
        if torn:
            warn(f"{self.path}: {torn} unreadable line(s) ignored (a run was stopped while writing)")
        if odd:
            shown = ", ".join(map(str, odd[:5])) + (", ..." if len(odd) > 5 else "")
            warn(f"{self.path}: {len(odd)} line(s) that are not batch records ignored (line {shown}); the items they "
                 "name, if any, are made again")
        if data and not data.endswith(b"\n"):
            with open(self.path, "ab") as f:  # the next record starts on its own line
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())

    def append(self, event: str, name: str, **fields) -> None:
        self.append_many(event, [name], **fields)

    def append_many(self, event: str, names: Iterable[str], **fields) -> None:
        """One record per name, written and fsynced together."""
        now = round(time.time(), 3)
        records = [{"event": event, "name": name, "time": now, **fields} for name in names]
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(record, sort_keys=True) + "\n" for record in records))
            f.flush()
            os.fsync(f.fileno())
        for record in records:
            if event in ("start", "done"):
                self.seen.add(record["name"])
            self.last[record["name"]] = record

    def up_to_date(self, name: str, fingerprint: str, outputs: Iterable) -> bool:
        record = self.last.get(name)
        return (record is not None and record["event"] == "done" and record.get("fingerprint") == fingerprint
                and all(Path(p).exists() for p in outputs))

    def owns(self, name: str) -> bool:
        """Whether outputs of this name were written by a batch in this folder."""
        return name in self.seen
