"""One batch per output folder: `.bgmv2-batch.lock` holds the writer's PID and host.

The lock is created exclusively (O_EXCL), so two batches cannot both take it. A lock whose PID is no
longer running on this host is stale (a killed batch) and is taken over, with a warning; a lock of
another host cannot be checked from here and is refused with what to do.
"""
import json
import math
import os
import socket
import time
from pathlib import Path

from bgmv2.scripts.media.errors import MediaError, warn

LOCK_NAME = ".bgmv2-batch.lock"
YOUNG = 10.0  # seconds: an unreadable lock this young may be one being written right now
PID_MAX = 1 << 22  # the most Linux allows (/proc/sys/kernel/pid_max); 0, -1 and beyond are no process
INVALID = "invalid"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    def __init__(self, folder):
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self.reclaim_stale():
                    continue
                raise MediaError(self.refusal()) from None
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}, f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            return
        raise MediaError(f"{self.path}: could not take the lock (another batch keeps taking it)")

    def holder(self):
        """(pid, host, since) of the lock's writer; None when unreadable (perhaps being written now);
        INVALID when it is whole JSON but not a lock a batch wrote (a PID outside 1..PID_MAX, no host)."""
        try:
            info = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        pid, host = (info.get("pid"), info.get("host")) if isinstance(info, dict) else (None, None)
        if not isinstance(pid, int) or isinstance(pid, bool) or not 1 <= pid <= PID_MAX or not isinstance(host, str):
            return INVALID
        since = info.get("since", 0)
        return pid, host, float(since) if isinstance(since, (int, float)) and math.isfinite(since) else 0.0

    def reclaim_stale(self) -> bool:
        holder = self.holder()
        if holder is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return True
            if age < YOUNG:
                return False
            warn(f"{self.path} was unreadable and {age:.0f} s old; taken over")
        elif holder is INVALID:
            warn(f"{self.path} is not a lock a batch wrote (no valid PID and host in it); taken over")
        else:
            pid, host, _ = holder
            if host != socket.gethostname() or pid_alive(pid):
                return False
            warn(f"{self.path}: the batch that held it (PID {pid} on {host}) is gone; taken over")
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        return True

    def refusal(self) -> str:
        holder = self.holder()
        if holder is None or holder is INVALID:
            return f"{self.path.parent} is locked by another batch ({self.path} is being written); try again"
        pid, host, since = holder
        try:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "?"
        except (OverflowError, OSError, ValueError):
            when = "?"
        return (f"{self.path.parent} is being written by another batch (PID {pid} on {host}, since {when}); "
                f"wait for it to finish, or if that process is gone, delete {self.path}")

    def release(self) -> None:
        if not self.held:
            return
        holder = self.holder()
        if holder is not None and holder[0] == os.getpid() and holder[1] == socket.gethostname():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
