"""Decode, inference and encode overlapped: three threads joined by bounded queues.

    reader thread ──q_in──▶ main thread (inference) ──q_out──▶ writer thread (render + encode)

Inference stays on the main thread (so Ctrl-C lands there and CUDA keeps one thread); decoding and
encoding release the GIL inside FFmpeg, OpenCV and numpy, so they overlap with the model. The queues
are bounded (`queue_size` items), so memory stays flat however long the video is. An exception in
any stage stops all three and is raised on the main thread; so is KeyboardInterrupt, after the
other threads have finished the item they hold (so files they close are complete). The caller
aborts its outputs then. `overlap=False` runs the same stages one after another on one thread (what
upstream's scripts do), for comparison.
"""
import queue
import sys
import threading
import time
from typing import Any, Callable, Iterable, List, Optional

END = object()
POLL = 0.1


class Stopped(Exception):
    """Raised inside a stage when another stage failed; never escapes `Pipeline.run`."""


class Pipeline:
    def __init__(self, items: Iterable, infer: Callable[[Any], Any], consume: Callable[[Any], None],
                 total: Optional[int] = None, desc: str = "", unit: str = "frame", queue_size: int = 4,
                 progress: bool = True, overlap: bool = True, count: Optional[Callable[[Any], int]] = None):
        self.items, self.infer, self.consume = items, infer, consume
        self.count = count or (lambda item: 1)  # frames in one item (more than 1 when frames are batched)
        self.total, self.desc, self.unit = total, desc, unit
        self.queue_size, self.progress, self.overlap = max(1, queue_size), progress, overlap
        self.stop = threading.Event()
        self.errors: List[BaseException] = []
        self.done = 0
        self.elapsed = 0.0

    # -- queue helpers that give up when the pipeline stops ------------------------------------
    def put(self, q: queue.Queue, item) -> None:
        while True:
            if self.stop.is_set():
                raise Stopped
            try:
                q.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue):
        while True:
            if self.stop.is_set():
                raise Stopped
            try:
                return q.get(timeout=POLL)
            except queue.Empty:
                continue

    def fail(self, error: BaseException) -> None:
        self.errors.append(error)
        self.stop.set()

    # -- stages -------------------------------------------------------------------------------
    def read(self, q_in: queue.Queue) -> None:
        try:
            for item in self.items:
                self.put(q_in, item)
            self.put(q_in, END)
        except Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self.fail(error)
        finally:
            close = getattr(self.items, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass

    def write(self, q_out: queue.Queue, bar) -> None:
        try:
            while True:
                item = self.get(q_out)
                if item is END:
                    return
                self.consume(item)
                n = self.count(item)
                self.done += n
                bar.update(n)
        except Stopped:
            pass
        except BaseException as error:  # noqa: BLE001
            self.fail(error)

    def progress_bar(self):
        if self.progress:
            try:
                from tqdm import tqdm
                return tqdm(total=self.total, desc=self.desc, unit=self.unit, file=sys.stderr, dynamic_ncols=True,
                            mininterval=0.5, smoothing=0.1)
            except ImportError:
                pass
        return NullBar()

    def run(self) -> int:
        """Process every item; returns how many were consumed."""
        bar = self.progress_bar()
        start = time.perf_counter()
        try:
            if self.overlap:
                self.run_threaded(bar)
            else:
                for item in self.items:
                    self.consume(self.infer(item))
                    n = self.count(item)
                    self.done += n
                    bar.update(n)
        finally:
            self.elapsed = time.perf_counter() - start
            bar.close()
        return self.done

    def run_threaded(self, bar) -> None:
        q_in: queue.Queue = queue.Queue(self.queue_size)
        q_out: queue.Queue = queue.Queue(self.queue_size)
        reader = threading.Thread(target=self.read, args=(q_in,), name="bgmv2-decode", daemon=True)
        writer = threading.Thread(target=self.write, args=(q_out, bar), name="bgmv2-encode", daemon=True)
        reader.start()
        writer.start()
        try:
            try:
                while True:
                    item = self.get(q_in)
                    if item is END:
                        break
                    self.put(q_out, self.infer(item))
                self.put(q_out, END)
                while writer.is_alive():
                    writer.join(POLL)
            except Stopped:
                pass
        except BaseException:
            self.stop.set()
            self.join(reader, writer)
            raise
        self.stop.set()
        self.join(reader, writer)
        if self.errors:
            raise self.errors[0]

    @staticmethod
    def join(*threads: threading.Thread, timeout: float = 30.0) -> None:
        """Wait for the stages to finish the item they hold (each checks `stop` every POLL seconds), so
        the caller's abort never races a writer. Another Ctrl-C meanwhile does not cut the wait short;
        it is raised once the threads are done."""
        deadline = time.monotonic() + timeout
        interrupted = False
        for thread in threads:
            while thread.is_alive() and time.monotonic() < deadline:
                try:
                    thread.join(POLL)
                except KeyboardInterrupt:
                    interrupted = True
        if interrupted:
            raise KeyboardInterrupt


class NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
