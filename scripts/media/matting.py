"""The three stages around the model that every app shares: inputs, inference, pictures.

`Job` is one frame pair on its way through the pipeline. `Stages.prepare` runs on the reader
thread: the runner's input conversion (the background's only when it changes, so a still background
is converted once). `Stages.infer` runs on the main thread: the model alone. `Stages.consume` runs on
the writer thread: rendering the pictures (on CPU; with CUDA they are rendered on the GPU in `infer`,
so only 8-bit pictures cross the bus) and handing them to `sink`. `Stages.jobs(jobs)` wraps a job
iterator so that `prepare` happens where the iterator is consumed (the reader thread).
"""
from typing import Callable, Dict, Iterable, Iterator, Optional

import numpy as np

from .composite import Renderer


def check_output_types(types, runner) -> None:
    """com, pha and fgr come from every model; err and ref only where the model has them."""
    from .errors import MediaError
    missing = [t for t in types if t not in ("com", "pha", "fgr") and t not in runner.outputs]
    if missing:
        raise MediaError(f"{runner.description} has no {' or '.join(missing)} output (MattingBase refines nothing); "
                         "leave it out of --output-types")


class Job:
    __slots__ = ("index", "src", "bgr", "com", "name", "inputs")

    def __init__(self, index: int, src: np.ndarray, bgr: np.ndarray, com: Optional[np.ndarray] = None, name=None):
        self.index, self.src, self.bgr, self.com, self.name = index, src, bgr, com, name
        self.inputs = None


class Stages:
    def __init__(self, runner, renderer: Renderer, sink: Callable[[Job, Dict[str, np.ndarray]], None],
                 render_on_device: Optional[bool] = None):
        self.runner, self.renderer, self.sink = runner, renderer, sink
        self.render_on_device = runner.device.type != "cpu" if render_on_device is None else render_on_device
        self._bgr_array, self._bgr_input = None, None

    def background_input(self, bgr: np.ndarray):
        """The runner's input for `bgr`, converted again only when a different array comes."""
        if bgr is not self._bgr_array:
            self._bgr_array, self._bgr_input = bgr, self.runner.prepare(bgr)
        return self._bgr_input

    def prepare(self, job: Job) -> Job:
        job.inputs = (self.runner.prepare(job.src), self.background_input(job.bgr))
        return job

    def jobs(self, jobs: Iterable[Job]) -> Iterator[Job]:
        for job in jobs:
            yield self.prepare(job)

    def infer(self, job: Job):
        if job.inputs is None:
            self.prepare(job)
        src, bgr = job.inputs
        job.inputs = None
        outputs = self.runner(src, bgr, size=job.src.shape[:2])
        if self.render_on_device:
            return job, self.renderer(outputs, job.com), True
        return job, outputs, False

    def consume(self, item) -> None:
        job, result, rendered = item
        pictures = result if rendered else self.renderer(result, job.com)
        self.sink(job, pictures)
