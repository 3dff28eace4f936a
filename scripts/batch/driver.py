"""`bgmv2 batch` from start to exit status: inputs, lock, ledger, plan, Ray workers, joins, summary.

Exit status: 0 when every item is done or up to date, 3 when some failed (all listed at the end and
in batch-summary.json; the others are complete), 1 when the batch cannot start (options, model,
lock, cluster) or the cluster is lost on the way (the summary first, then one line; the ledger records
the items not done), 130 on Ctrl-C, 143 on SIGTERM (finished items are kept and recorded; a rerun
goes on).
"""
import argparse
import hashlib
import os
import re
import shutil
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

from bgmv2.scripts.media.errors import MediaError

from .items import Item, Problem, from_folders, from_manifest
from .ledger import Ledger, file_sha256, file_state, fingerprint
from .lock import OutputLock
from .report import Report
from .work import image_outputs, item_args, join_video, plan_segments, video_outputs

EXIT_FAILURES = 3
SCRATCH = ".bgmv2-batch"  # segment chunks, inside the output folder (shared with the workers)
# options that shape the outputs (a change makes done items stale); placement (device, threads) does not
SHAPING = ("backend", "kind", "backbone", "preset", "backbone_scale", "refine_mode", "refine_sample_pixels",
           "refine_threshold", "refine_kernel_size", "refine_prevent_oversampling", "precision", "com_bg",
           "image_format", "output_format", "codec", "crf", "x264_preset", "resize", "video_resize", "align",
           "align_method")
VIDEO_ONLY = ("output_format", "codec", "crf", "x264_preset", "resize", "video_resize")
PARTIAL = re.compile(r"\.(partial)-\d+$")


def model_file(args) -> str:
    """The model's file (a zoo name or the shipped default resolved), as every worker will open it."""
    from bgmv2.scripts.media.runner import model_path
    return os.path.abspath(model_path(args))


def check_model(args, types) -> str:
    """Load the model once here (on the CPU) so a bad file or knob stops the batch before any worker starts."""
    from bgmv2.scripts.media.matting import check_output_types
    from bgmv2.scripts.media.runner import load_runner
    probe = argparse.Namespace(**vars(args))
    probe.device, probe.threads = "cpu", None
    runner = load_runner(probe)
    check_output_types(types, runner)
    return runner.description


def sweep(output_dir: Path) -> None:
    """Remove what a killed batch left: its scratch folder and temporary output names."""
    shutil.rmtree(output_dir / SCRATCH, ignore_errors=True)
    for path in list(output_dir.rglob("*.partial-*")):
        if PARTIAL.search(path.name):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


class Batch:
    def __init__(self, args):
        self.args = args
        self.out = Path(os.path.abspath(args.output_dir))  # as every node opens it
        self.report = Report(self.out, interval=args.progress_interval, show=args.progress)
        self.problems: List[Problem] = []  # lines and files that never became items
        self.ledger = None
        self.videos: Dict[str, dict] = {}  # name -> {item, outputs, fingerprint, segments: {index: result}, ...}
        self.images: Dict[str, dict] = {}
        self.joins = {}  # future -> name
        self.stop = threading.Event()
        self.token = False  # joining --address sends our Ray token

    # -- planning ------------------------------------------------------------------------------
    def inputs(self):
        args = self.args
        if args.manifest:
            if args.src or args.bgr:
                raise MediaError("give either --manifest or --src/--bgr, not both")
            if not os.path.isfile(args.manifest):
                raise MediaError(f"--manifest {args.manifest}: no such file")
            return from_manifest(args.manifest)
        if not (args.src and args.bgr):
            raise MediaError("give --manifest FILE (JSON lines: src, bgr, name), or --src and --bgr")
        return from_folders(args.src, args.bgr, args.output_dir)

    def types(self, kind: str) -> List[str]:
        from bgmv2.scripts.media.pictures import DEFAULT_TYPES as IMAGE_TYPES
        from bgmv2.scripts.media.video import DEFAULT_TYPES as VIDEO_TYPES
        return list(self.args.output_types or (IMAGE_TYPES if kind == "image" else VIDEO_TYPES))

    def plan(self, items: List[Item], model_sha256: str) -> None:
        from bgmv2.scripts.media.composite import parse_colour
        from bgmv2.scripts.media.decode import VideoReader
        from bgmv2.scripts.media.outputs import refuse_inputs
        args = self.args
        options = {k: getattr(args, k, None) for k in SHAPING}
        com_file = args.com_bg if "com" in (args.output_types or ["com"]) and parse_colour(args.com_bg) is None \
            else None
        com_state = file_state(com_file) if com_file and os.path.exists(com_file) else None
        for item in items:
            types = self.types(item.kind)
            folder = self.out / item.name
            outputs = image_outputs(args, folder, types) if item.kind == "image" else video_outputs(args, folder, types)
            shaping = {k: v for k, v in dict(options, output_types=types).items()
                       if item.kind == "video" or k not in VIDEO_ONLY}
            mark = fingerprint({"src": file_state(item.src), "bgr": file_state(item.bgr), "com_bg": com_state},
                               model_sha256, shaping)
            if not args.force and self.ledger.up_to_date(item.name, mark, outputs.values()):
                self.report.add(item.name, item.kind, item.origin, status="up to date")
                continue
            try:
                existing = [str(p) for p in outputs.values() if p.exists()]
                if existing and not args.force and not self.ledger.owns(item.name):
                    raise MediaError(f"{', '.join(existing)} exist(s) and was not written by a batch in this folder; "
                                     "pass --force to replace, or choose another --output-dir or name")
                refuse_inputs(outputs.values(), [item.src, item.bgr, com_file])
                frames = 1
                if item.kind == "video":
                    reader = VideoReader(item.src, "src", threads=1)
                    frames = reader.frame_count or 1
                    reader.close()
            except MediaError as error:
                self.report.add(item.name, item.kind, item.origin, status="failed", error=str(error))
                self.ledger.append("failed", item.name, error=str(error))
                continue
            entry = {"item": item, "outputs": outputs, "fingerprint": mark, "types": types, "frames": frames}
            (self.images if item.kind == "image" else self.videos)[item.name] = entry
            self.report.add(item.name, item.kind, item.origin, frames=frames)

    def tasks(self) -> List[dict]:
        tasks = []
        for name, entry in self.videos.items():  # the long ones first
            item = entry["item"]
            scratch = self.out / SCRATCH / hashlib.sha256(name.encode()).hexdigest()[:16]
            ranges = plan_segments(entry["frames"], self.args.segment_frames)
            entry.update(scratch=scratch, count=len(ranges), results={}, failed=False)
            for index, (start, stop) in enumerate(ranges):
                tasks.append({"kind": "segment", "name": name, "src": str(item.src), "bgr": str(item.bgr),
                              "index": index, "start": start, "stop": stop, "folder": str(scratch),
                              "types": entry["types"]})
        batch = []
        for name, entry in self.images.items():
            item = entry["item"]
            batch.append({"name": name, "src": str(item.src), "bgr": str(item.bgr),
                          "outputs": {t: str(p) for t, p in entry["outputs"].items()}})
            if len(batch) == self.args.batch_size:
                tasks.append({"kind": "images", "items": batch})
                batch = []
        if batch:
            tasks.append({"kind": "images", "items": batch})
        return tasks

    # -- results -------------------------------------------------------------------------------
    def done(self, name: str, entry: dict, frames: int) -> None:
        self.ledger.append("done", name, fingerprint=entry["fingerprint"], frames=frames,
                           outputs=[str(p) for p in entry["outputs"].values()], src=str(entry["item"].src))
        self.report.finish(name, "done", frames)

    def failed(self, name: str, error: str) -> None:
        self.ledger.append("failed", name, error=error)
        self.report.finish(name, "failed", error=error)
        entry = self.videos.get(name)
        if entry is not None:
            entry["failed"] = True
            shutil.rmtree(entry["scratch"], ignore_errors=True)

    def on_result(self, task: dict, result, index: int) -> None:
        if task["kind"] == "images":
            for one in result:
                self.report.task_done(index, one["name"], one["frames"], one["seconds"], one.get("pid"))
                if one["ok"]:
                    self.done(one["name"], self.images[one["name"]], 1)
                else:
                    self.failed(one["name"], one["error"])
            return
        name = task["name"]
        entry = self.videos[name]
        self.report.task_done(index, name, result["frames"], result["seconds"], result.get("pid"))
        if entry["failed"]:
            return
        if not result["ok"]:
            self.failed(name, f"frames from {task['start']}: {result['error']}")
            return
        entry["results"][task["index"]] = result
        if len(entry["results"]) == entry["count"]:
            self.joins[self.joiner.submit(self.join, name)] = name

    def on_failure(self, task: dict, message: str, index) -> None:
        if index is not None:
            self.report.worker_died(index)
        names = [one["name"] for one in task["items"]] if task["kind"] == "images" else [task["name"]]
        for name in names:
            if not self.videos.get(name, {}).get("failed"):
                self.failed(name, message)

    def skip(self, task: dict) -> bool:
        if self.stop.is_set():
            raise KeyboardInterrupt
        return task["kind"] == "segment" and self.videos[task["name"]]["failed"]

    def join(self, name: str) -> int:
        entry = self.videos[name]
        segments = [entry["results"][i] for i in range(entry["count"])]
        args = item_args(self.args, entry["item"].src, entry["item"].bgr, self.out / name, entry["types"])
        return join_video(args, entry["outputs"], segments, cpu=not self.args.gpus_per_worker,
                          should_stop=self.stop.is_set)

    def on_tick(self) -> None:
        for future in [f for f in self.joins if f.done()]:
            name = self.joins.pop(future)
            error = future.exception()
            if error is None:
                self.done(name, self.videos[name], future.result())
                shutil.rmtree(self.videos[name]["scratch"], ignore_errors=True)
            elif isinstance(error, MediaError):
                self.failed(name, str(error))
            elif isinstance(error, KeyboardInterrupt):
                pass
            else:
                self.failed(name, f"joining the segments failed: {type(error).__name__}: {error}")
        self.report.line()

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> int:
        args = self.args
        if args.address is not None:  # before anything else: a wrong address is known in seconds
            from .address import check_join
            self.token = check_join(args.address, args.connect_timeout)
        else:
            check_local_device(args)
        items, self.problems = self.inputs()
        if not items and not self.problems:
            raise MediaError(f"--manifest {args.manifest}: no items in it (each line is "
                             '{"src": ..., "bgr": ..., "name": ...}); nothing to do')
        for problem in self.problems:
            print(f"error: {problem.origin}: {problem.message}", file=sys.stderr)
        if args.com_bg and os.path.exists(args.com_bg):
            args.com_bg = os.path.abspath(args.com_bg)  # as every node opens it
        kinds = {item.kind for item in items}
        args.model = model_file(args)
        if items:
            check_model(args, sorted({t for k in kinds for t in self.types(k)}))
        model_sha256 = file_sha256(args.model)
        with OutputLock(self.out):
            self.ledger = Ledger(self.out)
            sweep(self.out)
            self.plan(items, model_sha256)
            tasks = self.tasks()
            # from here, outputs of these names are this batch's own (a rerun may replace them)
            self.ledger.append_many("start", [*self.videos, *self.images])
            lost = self.execute(tasks) if tasks else None
            if lost is not None:
                self.record_lost(lost)
        summary = self.report.write(self.problems)
        if lost is not None:
            counts = summary["counts"]
            raise MediaError(f"{lost}: the batch stopped with {counts['done']} item(s) done, {counts['not done']} not done "
                             f"(recorded in {self.ledger.path}); rerun the same command when the cluster is back to make "
                             "only those")
        return EXIT_FAILURES if summary["failures"] else 0

    def record_lost(self, lost) -> None:
        """Items not finished when the cluster was lost: `stopped` in the ledger (a rerun makes them)."""
        names = [name for name, item in self.report.items.items() if item["status"] == "pending"]
        self.ledger.append_many("stopped", names, reason=str(lost))
        for name in names:
            self.report.finish(name, "not done", error=str(lost), quiet=True)
        self.report.cluster_lost()

    def execute(self, tasks: List[dict]):
        """Run the tasks on Ray; the ClusterLost when the cluster's head went away (else None)."""
        from bgmv2.scripts.exits import on_sigterm
        from . import cluster
        args = self.args
        started, pool, lost = False, None, None
        self.joiner = ThreadPoolExecutor(1, thread_name_prefix="bgmv2-join")
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main else None
        try:
            if main:
                signal.signal(signal.SIGTERM, on_sigterm)  # SIGTERM ends the batch as Ctrl-C does (exit 143)
            started = cluster.connect(args, self.token)
            if main:
                signal.signal(signal.SIGTERM, on_sigterm)  # again: a local Ray sets its own
            if args.gpus_per_worker is None:
                args.gpus_per_worker = cluster.default_gpus_per_worker(args)
            if str(args.device).startswith("cuda") and not args.gpus_per_worker:
                raise MediaError(f"--device {args.device} needs GPUs for the workers: --gpus-per-worker 1 (or 0.5 "
                                 "to share one); Ray found no GPU to give them")
            cluster.check_placeable(args)
            if args.threads is None and not args.gpus_per_worker:
                args.threads = max(1, int(args.cpus_per_worker))
            count = min(args.workers or cluster.default_workers(args), len(tasks))
            head = cluster.HeadWatch(cluster.head_address(), args.connect_timeout)
            pool = cluster.Pool(args, self.report.worker)
            pool.start(count, args.start_timeout, head)
            self.report.working()
            if args.progress:
                first = next(iter(self.report.workers.values()))
                print(f"[batch] {len(pool.actors)} worker(s), model {first['model']}; {len(self.images)} picture(s), "
                      f"{len(self.videos)} video(s) in {len(tasks)} task(s)", file=sys.stderr)
            cluster.run_tasks(pool, tasks, self.on_result, self.on_failure, self.on_tick, self.skip, head)
            while self.joins:
                self.joins_wait()
        except cluster.ClusterLost as error:
            lost = error
            while self.joins:  # the joins need no cluster: the videos whose segments all came back are written
                self.joins_wait()
        except BaseException:
            self.stop.set()
            raise
        finally:
            self.joiner.shutdown(wait=True)  # a join in progress sees `stop` and removes its temporaries
            self.on_tick()
            try:
                (self.out / SCRATCH).rmdir()  # empty once every video is joined or failed
            except OSError:
                pass
            if pool is not None and lost is None:
                if not self.stop.is_set():
                    self.report.survey(pool.survey())
                pool.stop()
            cluster.disconnect(started, lost=lost is not None)
            if self.stop.is_set() or lost is not None:
                sweep(self.out)  # what stopped workers were writing (pictures, segments)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return lost

    def joins_wait(self) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait
        wait(list(self.joins), timeout=0.5, return_when=FIRST_COMPLETED)
        self.on_tick()


def check_local_device(args) -> None:
    """Ray on this machine: a device it lacks is refused now, as `bgmv2 images` refuses it (the workers would
    each fail to start, after Ray's start-up)."""
    from bgmv2.scripts.media.runner import check_device
    check_device(args)


def run_batch(args) -> int:
    return Batch(args).run()
