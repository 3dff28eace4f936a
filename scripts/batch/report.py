"""Progress while a batch runs (items and frames done, frames/s, ETA, per worker) and the summary:
a table on stderr and `batch-summary.json` in the output folder (written atomically)."""
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, Optional

SUMMARY_NAME = "batch-summary.json"
# a worker in the summary: served to the end ("ok"), died (twice on one task; replaced), lost with the cluster
FINAL_STATUS = {"running": "ok"}


def final_status(worker: dict) -> str:
    return FINAL_STATUS.get(worker["status"], worker["status"])


def duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}h" if hours else "") + f"{rest // 60:02d}m{rest % 60:02d}s"


class Report:
    def __init__(self, output_dir, interval: float = 5.0, show: bool = True):
        self.output_dir = Path(output_dir)
        self.interval, self.show = interval, show
        self.start = time.time()
        self.items: Dict[str, dict] = {}  # name -> {kind, status, frames, seconds, error, origin}
        self.workers: Dict[int, dict] = {}  # index -> {host, pid, model, tasks, frames, busy, status}
        self.frames_total = 0
        self.frames_done = 0
        self.to_do = 0
        self.last_line = 0.0
        self.working_since = None  # when the workers were up (start-up excluded from the matting rate)

    # -- what happens --------------------------------------------------------------------------
    def add(self, name: str, kind: str, origin: str, status: str = "pending", frames: int = 0, error: str = ""):
        self.items[name] = {"name": name, "kind": kind, "origin": origin, "status": status, "frames": frames,
                            "seconds": 0.0, "error": error, "workers": []}
        if status == "pending":
            self.to_do += 1
            self.frames_total += max(frames, 1)

    def working(self) -> None:
        self.working_since = time.time()

    def worker(self, index: int, info: dict) -> None:
        self.workers[index] = {"index": index, "host": info.get("host", "?"), "pid": info.get("pid"),
                               "model": info.get("model", ""), "tasks": 0, "frames": 0, "busy": 0.0,
                               "restarts": 0, "status": "running"}

    def task_done(self, index: Optional[int], name: str, frames: int, seconds: float, pid: Optional[int] = None):
        self.frames_done += frames
        item = self.items[name]
        item["seconds"] += seconds
        if index is not None:
            if index not in item["workers"]:
                item["workers"].append(index)
            worker = self.workers[index]
            if pid is not None and worker["pid"] is not None and pid != worker["pid"]:
                worker["restarts"] += 1  # its process died and Ray started it again (the task was run again)
                worker["pid"] = pid
            worker["tasks"] += 1
            worker["frames"] += frames
            worker["busy"] += seconds

    def worker_died(self, index: int) -> None:
        if index in self.workers:
            self.workers[index]["status"] = "died"

    def survey(self, found: Dict[int, Optional[dict]]) -> None:
        """What the workers said at the end (None: gone): a new PID is a restart Ray made; no answer, died."""
        for index, info in found.items():
            worker = self.workers.get(index)
            if worker is None:
                continue
            if info is None:
                worker["status"] = "died"
            elif info.get("pid") not in (None, worker["pid"]):
                worker["restarts"] += 1
                worker["pid"] = info["pid"]

    def cluster_lost(self) -> None:
        for worker in self.workers.values():
            if worker["status"] == "running":
                worker["status"] = "lost"

    def finish(self, name: str, status: str, frames: int = 0, error: str = "", quiet: bool = False) -> None:
        item = self.items[name]
        item.update(status=status, error=error)
        if frames:
            item["frames"] = frames
        if self.show and not quiet:
            shown = f"{status}: {name}" + (f" ({frames} frames)" if frames and status == "done" else "")
            print(shown + (f": {error}" if error else ""), file=sys.stderr)
            self.line(force=True)

    # -- progress ------------------------------------------------------------------------------
    def counts(self) -> Dict[str, int]:
        counts = {"done": 0, "failed": 0, "up to date": 0, "pending": 0, "not done": 0}
        for item in self.items.values():
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        return counts

    def fps(self) -> float:
        elapsed = time.time() - self.start
        return self.frames_done / elapsed if elapsed > 0 else 0.0

    def line(self, force: bool = False) -> None:
        now = time.time()
        if not self.show or (not force and now - self.last_line < self.interval):
            return
        self.last_line = now
        counts = self.counts()
        fps = self.fps()
        left = max(self.frames_total - self.frames_done, 0)
        eta = left / fps if fps > 0 else None
        per_worker = " ".join(f"w{w['index']}:{w['frames']}f/{w['frames'] / w['busy'] if w['busy'] else 0:.1f}fps"
                              + ("(died)" if w["status"] == "died" else "") for w in self.workers.values())
        print(f"[batch] items {counts['done']}/{self.to_do} done, {counts['failed']} failed | frames "
              f"{self.frames_done}/{self.frames_total} | {fps:.1f} frames/s | ETA {duration(eta)} | {per_worker}",
              file=sys.stderr)

    # -- summary -------------------------------------------------------------------------------
    def summary(self) -> dict:
        now = time.time()
        elapsed = now - self.start
        working = now - self.working_since if self.working_since else 0.0
        counts = self.counts()
        return {"output_dir": str(self.output_dir), "seconds": round(elapsed, 3), "counts": counts,
                "frames": self.frames_done, "frames_per_second": round(self.frames_done / elapsed, 3) if elapsed else 0,
                "startup_seconds": round(self.working_since - self.start, 3) if self.working_since else None,
                "working_frames_per_second": round(self.frames_done / working, 3) if working else None,
                "workers": [dict(w, fps=round(w["frames"] / w["busy"], 3) if w["busy"] else 0.0,
                                 busy=round(w["busy"], 3), status=final_status(w)) for w in self.workers.values()],
                "items": [dict(i, seconds=round(i["seconds"], 3)) for i in self.items.values()],
                "failures": [{"name": i["name"], "origin": i["origin"], "error": i["error"]}
                             for i in self.items.values() if i["status"] == "failed"]}

    def write(self, problems=()) -> dict:
        summary = self.summary()
        summary["failures"] += [{"name": None, "origin": p.origin, "error": p.message} for p in problems]
        summary["counts"]["failed"] += len(problems)
        from bgmv2 import atomic
        atomic.write_text(self.output_dir / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
        self.print_table(summary)
        return summary

    @staticmethod
    def print_table(summary: dict) -> None:
        out = sys.stderr
        counts = summary["counts"]
        print(f"\nbatch: {counts['done']} done, {counts['up to date']} up to date (skipped), {counts['failed']} "
              f"failed" + (f", {counts['not done']} not done" if counts["not done"] else "") + f"; {summary['frames']} frames in {duration(summary['seconds'])} "
              f"({summary['frames_per_second']:.2f} frames/s"
              + (f"; {summary['working_frames_per_second']:.2f} after {summary['startup_seconds']:.1f} s of start-up"
                 if summary["working_frames_per_second"] else "") + ")", file=out)
        if summary["workers"]:
            print("| worker | host | pid | tasks | frames | busy s | frames/s | restarts | status |", file=out)
            print("|---|---|---|---|---|---|---|---|---|", file=out)
            for w in summary["workers"]:
                print(f"| {w['index']} | {w['host']} | {w['pid']} | {w['tasks']} | {w['frames']} | {w['busy']:.1f} | "
                      f"{w['fps']:.2f} | {w['restarts']} | {w['status']} |", file=out)
        if summary["failures"]:
            print(f"failed ({len(summary['failures'])}):", file=out)
            for failure in summary["failures"]:
                print(f"  {failure['name'] or failure['origin']}: {failure['error']}"
                      + (f"  [{failure['origin']}]" if failure["name"] else ""), file=out)
        print(f"summary: {Path(summary['output_dir']) / SUMMARY_NAME}", file=out)
