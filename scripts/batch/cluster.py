"""Ray: connecting (in-process local Ray or a cluster), one model per worker actor, and the task loop.

The only module of `bgmv2 batch` that imports Ray. Workers are actors holding one model each
(`max_restarts=1`, `max_task_retries=1`: a worker that dies mid-task is restarted once and the
task is run again; a second death fails that task and the worker leaves the pool). Tasks are
dispatched one at a time to idle workers, so a slow item never holds up a queue behind it.
"""
import os
import socket
from typing import Callable, Dict, List

import ray
from ray.exceptions import RayActorError, RayTaskError

from scripts.media.errors import MediaError, warn

from .address import check_reachable
from .work import CRASH_ENV, Matter, error_text

POLL = 0.5


def connect(args) -> bool:
    """Start or join Ray; True when this call started it (and `disconnect` should stop it)."""
    import logging
    if args.address:
        check_reachable(args.address, args.connect_timeout)
    if ray.is_initialized():
        return False
    if args.address:
        try:
            ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise MediaError(f"--address {args.address}: could not join the Ray cluster ({error})") from None
        return True
    start_local(max(os.cpu_count() or 1, (args.workers or 1) * args.cpus_per_worker), args.object_store_mb)
    return True


def start_local(cpus: float, object_store_mb: int) -> None:
    """Ray in this process: no dashboard, a small object store (only paths and small results travel),
    and workers that import this checkout's packages (its root on their PYTHONPATH)."""
    import logging
    import scripts
    root = os.path.dirname(os.path.dirname(os.path.abspath(scripts.__file__)))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    ray.init(num_cpus=cpus, object_store_memory=object_store_mb << 20, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=True)


def disconnect(started: bool) -> None:
    if started and ray.is_initialized():
        ray.shutdown()


def default_workers(args) -> int:
    resources = ray.cluster_resources()
    if args.gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // args.gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // args.cpus_per_worker))


def default_gpus_per_worker(args) -> float:
    """1 where the cluster has GPUs (and --device is not cpu), else 0."""
    return 1.0 if args.device != "cpu" and ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


class MattingWorker:
    """A worker actor: one model (`work.Matter`), pictures and video segments on request."""

    def __init__(self, args, index: int):
        self.index = index
        self.matter = Matter(args)

    def ready(self) -> dict:
        return {"index": self.index, "pid": os.getpid(), "host": socket.gethostname(),
                "model": self.matter.description}

    def images(self, items: List[dict]) -> List[dict]:
        return self.matter.images(items)

    def segment(self, task: dict) -> dict:
        return self.matter.segment(task)


def start_workers(args, count: int, timeout: float) -> Dict[int, tuple]:
    """index -> (actor, info) for the workers that started within `timeout` seconds."""
    options = {"num_cpus": args.cpus_per_worker, "num_gpus": args.gpus_per_worker, "max_restarts": 1,
               "max_task_retries": 1}
    if os.environ.get(CRASH_ENV):
        options["runtime_env"] = {"env_vars": {CRASH_ENV: os.environ[CRASH_ENV]}}
    remote = ray.remote(MattingWorker)
    actors = {i: remote.options(**options).remote(args, i) for i in range(count)}
    probes = {actor.ready.remote(): i for i, actor in actors.items()}
    ready, late = ray.wait(list(probes), num_returns=len(probes), timeout=timeout)
    workers, errors = {}, []
    for ref in ready:
        index = probes[ref]
        try:
            workers[index] = (actors[index], ray.get(ref))
        except (RayActorError, RayTaskError) as error:
            errors.append(cause_text(error))
    for ref in late:
        ray.kill(actors[probes[ref]])
    if late:
        warn(f"{len(late)} of {count} worker(s) did not start within {timeout:g} s (the cluster lacks "
             f"{args.cpus_per_worker:g} CPU / {args.gpus_per_worker:g} GPU per worker?); going on with {len(workers)}")
    if not workers:
        detail = f": {errors[0]}" if errors else ""
        raise MediaError(f"no worker started{detail}")
    for message in sorted(set(errors)):
        warn(f"a worker failed to start: {message}")
    return workers


def cause_text(error: BaseException) -> str:
    """The worker-side error in one line (Ray wraps it in its own exception types)."""
    cause = getattr(error, "cause", None)
    if isinstance(error, RayTaskError) and cause is not None:
        return error_text(cause)
    if isinstance(error, RayActorError):
        cause = getattr(error, "_actor_init_failed", None) and getattr(error, "error_msg", "")
        text = str(error).strip().splitlines()
        return "the worker process died (twice: restarted and retried once)" if not cause else text[0]
    return error_text(error)


def run_tasks(workers: Dict[int, tuple], tasks: List[dict], on_result: Callable, on_failure: Callable,
              on_tick: Callable[[], None], skip: Callable[[dict], bool]) -> None:
    """Dispatch `tasks` ({"kind": "images"|"segment", ...}) to idle workers until all are done.

    on_result(task, result, worker_index); on_failure(task, message, worker_index) when the worker
    died twice on it (that worker leaves the pool); skip(task): drop a task not yet started (its
    item already failed); on_tick() about every POLL seconds (progress, joins).
    """
    pending = list(tasks)
    idle = sorted(workers)
    running: Dict = {}
    while pending or running:
        while idle and pending:
            task = pending.pop(0)
            if skip(task):
                continue
            index = idle.pop(0)
            actor = workers[index][0]
            ref = actor.images.remote(task["items"]) if task["kind"] == "images" else actor.segment.remote(task)
            running[ref] = (index, task)
        if not running:
            if pending and not idle:
                for task in pending:
                    if not skip(task):
                        on_failure(task, "no worker is left (each died twice)", None)
            break
        done, _ = ray.wait(list(running), num_returns=1, timeout=POLL)
        for ref in done:
            index, task = running.pop(ref)
            try:
                result = ray.get(ref)
            except RayActorError as error:
                on_failure(task, cause_text(error), index)
                continue  # the worker is gone for good
            except RayTaskError as error:
                on_failure(task, cause_text(error), index)
                idle.append(index)
                continue
            idle.append(index)
            on_result(task, result, index)
        on_tick()


def stop_workers(workers: Dict[int, tuple]) -> None:
    for actor, _ in workers.values():
        try:
            ray.kill(actor)
        except Exception:  # noqa: BLE001 - already gone
            pass

