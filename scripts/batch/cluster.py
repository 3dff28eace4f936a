"""Ray: connecting (in-process local Ray or a cluster), one model per worker actor, and the task loop.

The only module of `bgmv2 batch` that imports Ray. Workers are actors holding one model each
(`max_restarts=1`, `max_task_retries=1`: a worker that dies mid-task is restarted once and the
task is run again; a second death fails that task and the worker leaves the pool). Tasks are
dispatched one at a time to idle workers, so a slow item never holds up a queue behind it.
"""
import os
import socket
from typing import Callable, Dict, List, Optional

import ray
from ray.exceptions import RayActorError, RayTaskError

from bgmv2.scripts.media.errors import MediaError, warn
from bgmv2.converters.errors import first_line

from . import gcs
from .gcs import ClusterLost
from .work import CRASH_ENV, Matter, error_text

POLL = 0.5
HEAD_CHECK = 1.0  # seconds between questions to the head while a batch runs
HEAD_LOST = 5.0  # seconds without an answer from the head: the cluster is lost (Ray itself gives up at 60)
JOIN_LIMIT = 60.0  # seconds `ray.init` may take to join a head that answers (plus --connect-timeout)
_restore: Dict[str, Optional[str]] = {}  # environment variables `use_token_auth` changed


def connect(args, token: bool = False) -> bool:
    """Start or join Ray (`token`: the cluster wants our token, `address.check_join` found); True when this
    call started it (and `disconnect` should stop it)."""
    import logging
    if ray.is_initialized():
        return False
    if args.address is None:
        start_local(max(os.cpu_count() or 1, (args.workers or 1) * args.cpus_per_worker), args.object_store_mb)
        return True
    if token:
        use_token_auth()
    join(args.address, args.connect_timeout)
    return True


def join(address: str, timeout: float) -> None:
    """`ray.init(address)`, which has no time limit of its own (a head that dies meanwhile leaves it
    retrying for minutes): run in a thread while the head is asked every second (ClusterLost when it
    is gone) and given at most JOIN_LIMIT s."""
    import logging
    import threading
    import time
    from .address import parse
    outcome: Dict[str, BaseException] = {}

    def init():
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = error
    scheme, host, port = parse(address)
    head = HeadWatch(f"{host}:{port}" if scheme == "gcs" else None, timeout)
    quiet = QuietThreadWarning()
    logging.getLogger("ray").addFilter(quiet)
    try:
        thread = threading.Thread(target=init, daemon=True, name="bgmv2-ray-join")
        started = time.monotonic()
        thread.start()
        while thread.is_alive():
            thread.join(POLL)
            head.check()
            if thread.is_alive() and time.monotonic() - started > JOIN_LIMIT + timeout:
                raise MediaError(f"--address {address}: joining the Ray cluster took more than "
                                 f"{JOIN_LIMIT + timeout:g} s; is the cluster overloaded, or its nodes unreachable from "
                                 "here (the head's node IP)?")
    finally:
        logging.getLogger("ray").removeFilter(quiet)
    error = outcome.get("error")
    if error is not None:
        raise MediaError(f"--address {address}: could not join the Ray cluster ({first_line(error)})") from None


class QuietThreadWarning:
    """Drops Ray's warning that a join from a thread sets no SIGTERM handler (the batch sets its own)."""

    def filter(self, record) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def use_token_auth() -> None:
    """RAY_AUTH_MODE=token for this process's join (Ray reads its mode once; `Config.initialize` rereads it,
    as Ray's own token set-up does), undone by `disconnect`."""
    if os.environ.get("RAY_AUTH_MODE") != "token":
        _restore["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE")
        os.environ["RAY_AUTH_MODE"] = "token"
        ray._raylet.Config.initialize("")


def head_address() -> Optional[str]:
    """HOST:PORT of the GCS of the Ray this process is connected to (None when unknown)."""
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - a Ray without it: no watch
        return None


def start_local(cpus: float, object_store_mb: int) -> None:
    """Ray in this process: no dashboard, a small object store (only paths and small results travel),
    and workers that import this checkout's packages (its root on their PYTHONPATH)."""
    import logging
    from bgmv2 import scripts
    root = os.path.dirname(os.path.dirname(os.path.abspath(scripts.__file__)))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    ray.init(num_cpus=cpus, object_store_memory=object_store_mb << 20, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=True)


def disconnect(started: bool, lost: bool = False) -> None:
    """Leave (or stop) Ray. A lost head is left without waiting on it: Ray's shutdown asks it first."""
    if started and ray.is_initialized():
        if lost:
            import threading
            threading.Thread(target=ray.shutdown, daemon=True, name="bgmv2-ray-shutdown").start()
        else:
            ray.shutdown()
    for name, value in _restore.items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        ray._raylet.Config.initialize("")
    _restore.clear()


def default_workers(args) -> int:
    resources = ray.cluster_resources()
    if args.gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // args.gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // args.cpus_per_worker))


def default_gpus_per_worker(args) -> float:
    """1 where the cluster has GPUs (and --device is not cpu), else 0."""
    return 1.0 if args.device != "cpu" and ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def check_placeable(args) -> None:
    """A worker asking for more than the whole cluster has is refused now, not after --start-timeout."""
    resources = ray.cluster_resources()
    for name, asked in (("CPU", args.cpus_per_worker), ("GPU", args.gpus_per_worker or 0)):
        if asked > resources.get(name, 0):
            flag = f"--{name.lower()}s-per-worker"
            raise MediaError(f"{flag} {asked:g}: the Ray cluster has {resources.get(name, 0):g} {name}(s) in all, so no "
                             f"worker can start; give {flag} {resources.get(name, 0):g} or less")


class MattingWorker:
    """A worker actor: one model (`work.Matter`), pictures and video segments on request."""

    def __init__(self, args, index: int):
        self.index = index
        self.matter = Matter(args)

    def ready(self) -> dict:
        return {"index": self.index, "pid": os.getpid(), "host": socket.gethostname(),
                "model": self.matter.description}

    def images(self, items: List[dict]) -> List[dict]:
        return [dict(one, pid=os.getpid()) for one in self.matter.images(items)]

    def segment(self, task: dict) -> dict:
        return dict(self.matter.segment(task), pid=os.getpid())  # a new PID: Ray restarted this worker


class Pool:
    """The worker actors: started together, each death past Ray's one restart replaced by a new worker
    (at most as many replacements as workers), so an item that kills workers cannot empty the pool."""

    def __init__(self, args, on_ready: Callable[[int, dict], None]):
        self.args, self.on_ready = args, on_ready
        self.options = {"num_cpus": args.cpus_per_worker, "num_gpus": args.gpus_per_worker, "max_restarts": 1,
                        "max_task_retries": 1}
        if os.environ.get(CRASH_ENV):
            self.options["runtime_env"] = {"env_vars": {CRASH_ENV: os.environ[CRASH_ENV]}}
        self.remote = ray.remote(MattingWorker)
        self.actors: Dict[int, object] = {}  # ready workers
        self.starting: Dict = {}  # ready() reference -> (index, actor)
        self.count = 0
        self.replacements_left = 0

    def spawn(self) -> None:
        index, self.count = self.count, self.count + 1
        actor = self.remote.options(**self.options).remote(self.args, index)
        self.starting[actor.ready.remote()] = (index, actor)

    def admit(self, ref) -> Optional[int]:
        """A started worker into the pool (its index), or None with a warning when it failed to start."""
        index, actor = self.starting.pop(ref)
        try:
            info = ray.get(ref)
        except (RayActorError, RayTaskError) as error:
            warn(f"a worker failed to start: {cause_text(error)}")
            return None
        self.actors[index] = actor
        self.on_ready(index, info)
        return index

    def start(self, count: int, timeout: float, head: Optional["HeadWatch"] = None) -> None:
        """`count` workers, waiting up to `timeout` s for them; `head` is asked meanwhile (ClusterLost)."""
        import time
        for _ in range(count):
            self.spawn()
        self.replacements_left = count
        deadline = time.monotonic() + timeout
        late, errors = list(self.starting), 0
        while late and time.monotonic() < deadline:
            ready, late = ray.wait(late, num_returns=len(late), timeout=min(POLL * 2, deadline - time.monotonic()))
            for ref in ready:
                errors += self.admit(ref) is None
            if head is not None:
                head.check()
        for ref in late:
            ray.kill(self.starting.pop(ref)[1])
        if late:
            warn(f"{len(late)} of {count} worker(s) did not start within {timeout:g} s (the cluster lacks "
                 f"{self.args.cpus_per_worker:g} CPU / {self.args.gpus_per_worker:g} GPU per worker?); "
                 f"going on with {len(self.actors)}")
        if not self.actors:
            raise MediaError("no worker started" + (" (see the warnings above)" if errors else ""))

    def lost(self, index: int) -> None:
        """Worker `index` died for good: a new one starts in its place while replacements last."""
        self.actors.pop(index, None)
        if self.replacements_left > 0:
            self.replacements_left -= 1
            self.spawn()

    def survey(self, timeout: float = 5.0) -> Dict[int, Optional[dict]]:
        """Each ready worker's `ready()` now (None: it does not answer), so the summary says which still run."""
        asked = {actor.ready.remote(): index for index, actor in self.actors.items()}
        answered, _ = ray.wait(list(asked), num_returns=len(asked), timeout=timeout) if asked else ([], [])
        found: Dict[int, Optional[dict]] = {index: None for index in self.actors}
        for ref in answered:
            try:
                found[asked[ref]] = ray.get(ref)
            except (RayActorError, RayTaskError):
                pass
        return found

    def stop(self) -> None:
        for actor in [*self.actors.values(), *(actor for _, actor in self.starting.values())]:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors, self.starting = {}, {}


def cause_text(error: BaseException) -> str:
    """The worker-side error in one line (Ray wraps it in its own exception types)."""
    cause = getattr(error, "cause", None)
    if isinstance(error, RayTaskError) and cause is not None:
        return error_text(cause)
    if isinstance(error, RayActorError):
        return "the worker process died (twice: restarted and retried once)"
    return error_text(error)


class HeadWatch:
    """Asks the head every HEAD_CHECK s whether it is there; ClusterLost after HEAD_LOST s without an
    answer, so the batch ends with its summary before Ray ends the process (60 s after losing the head)."""

    def __init__(self, address: Optional[str], timeout: float):
        import time
        self.address, self.timeout = address, min(timeout, HEAD_CHECK * 2)
        self.clock = time.monotonic
        self.last_answer = self.last_check = self.clock()

    def check(self, confirm: bool = False) -> None:
        """ClusterLost when the head is gone. `confirm` (a worker just died): ask until the head answers or
        HEAD_LOST s have passed since its last answer, so a worker lost with the head is not blamed on its item."""
        import time
        if self.address is None or (not confirm and self.clock() - self.last_check < HEAD_CHECK):
            return
        while True:
            self.last_check = self.clock()
            if gcs.alive(self.address, self.timeout):
                self.last_answer = self.last_check
                return
            silent = self.clock() - self.last_answer
            if silent >= HEAD_LOST:
                raise ClusterLost(f"the Ray cluster's head ({self.address}) has not answered for {silent:.0f} s")
            if not confirm:
                return
            time.sleep(HEAD_CHECK / 2)


def run_tasks(pool: Pool, tasks: List[dict], on_result: Callable, on_failure: Callable,
              on_tick: Callable[[], None], skip: Callable[[dict], bool], head: Optional[HeadWatch] = None) -> None:
    """Dispatch `tasks` ({"kind": "images"|"segment", ...}) to idle workers until all are done.

    on_result(task, result, worker_index); on_failure(task, message, worker_index) when the worker
    died twice on it (it leaves the pool; a new one may replace it); skip(task): drop a task not yet
    started (its item already failed); on_tick() about every POLL seconds (progress, joins);
    `head`: raises ClusterLost when the cluster's head is gone (the tasks then running are not failed).
    """
    head = head or HeadWatch(None, 1.0)
    pending = list(tasks)
    idle = sorted(pool.actors)
    running: Dict = {}
    while pending or running:
        while idle and pending:
            task = pending.pop(0)
            if skip(task):
                continue
            index = idle.pop(0)
            actor = pool.actors[index]
            ref = actor.images.remote(task["items"]) if task["kind"] == "images" else actor.segment.remote(task)
            running[ref] = (index, task)
        if not running and not (pending and pool.starting):
            for task in pending:
                if not skip(task):
                    on_failure(task, "no worker is left (each died twice)", None)
            break
        done, _ = ray.wait([*running, *pool.starting], num_returns=1, timeout=POLL)
        for ref in done:
            if ref in pool.starting:
                index = pool.admit(ref)
                if index is not None:
                    idle.append(index)
                continue
            index, task = running.pop(ref)
            try:
                result = ray.get(ref)
            except RayActorError as error:
                head.check(confirm=True)  # the head gone: ClusterLost, and this task is not the item's fault
                pool.lost(index)
                on_failure(task, cause_text(error), index)
                continue
            except RayTaskError as error:
                on_failure(task, cause_text(error), index)
                idle.append(index)
                continue
            idle.append(index)
            on_result(task, result, index)
        head.check()
        on_tick()
