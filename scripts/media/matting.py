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
    from .composite import available
    from .errors import MediaError
    missing = [t for t in types if not available(t, runner.outputs)]
    if missing:
        raise MediaError(f"{runner.description} has no {' or '.join(missing)} output (MattingBase refines nothing); "
                         "leave it out of --output-types")


class Job:
    __slots__ = ("index", "src", "bgr", "com", "name", "inputs")

    def __init__(self, index: int, src: np.ndarray, bgr: np.ndarray, com: Optional[np.ndarray] = None, name=None):
        self.index, self.src, self.bgr, self.com, self.name = index, src, bgr, com, name
        self.inputs = None


def job_name(job: Job) -> str:
    """What a job is called in messages: its item's source file, or its frame number."""
    name = getattr(job.name, "src", None) or job.name
    return str(name) if name is not None else f"frame {job.index}"


class Stages:
    """`batch` > 1 groups that many consecutive jobs into one model call (a list travels through the
    pipeline; `count` says how many frames an item holds). Worth it on a GPU, where one call of 4-8
    frames costs little more than one frame; the last group may be smaller."""

    def __init__(self, runner, renderer: Renderer, sink: Callable[[Job, Dict[str, np.ndarray]], None],
                 render_on_device: Optional[bool] = None, batch: int = 1):
        self.runner, self.renderer, self.sink = runner, renderer, sink
        self.batch = max(1, int(batch))
        self.render_on_device = runner.device.type != "cpu" if render_on_device is None else render_on_device
        self._bgr_array, self._bgr_input = None, None
        self.warned_identical = False

    def background_input(self, bgr: np.ndarray):
        """The runner's input for `bgr`, converted again only when a different array comes."""
        if bgr is not self._bgr_array:
            self._bgr_array, self._bgr_input = bgr, self.runner.prepare(bgr)
        return self._bgr_input

    def prepare(self, job: Job) -> Job:
        if not self.warned_identical and job.src.shape == job.bgr.shape and np.array_equal(job.src, job.bgr):
            from .errors import warn
            warn(f"{job_name(job)}: the picture and the background shot are identical, so the matte is empty "
                 "(all background); --bgr must be the scene without the subject")
            self.warned_identical = True
        job.inputs = (self.runner.prepare(job.src), self.background_input(job.bgr))
        return job

    def jobs(self, jobs: Iterable[Job]) -> Iterator:
        if self.batch == 1:
            for job in jobs:
                yield self.prepare(job)
            return
        group = []
        for job in jobs:
            job = self.prepare(job)
            if group and job.src.shape != group[0].src.shape:  # a frame of another size starts a new group
                yield group
                group = []
            group.append(job)
            if len(group) == self.batch:
                yield group
                group = []
        if group:
            yield group

    @staticmethod
    def count(item) -> int:
        """Frames in a pipeline item (a job, a group of jobs, or what infer made of either)."""
        return len(item) if isinstance(item, list) else 1

    def infer(self, job):
        if isinstance(job, list):
            return self.infer_group(job)
        if job.inputs is None:
            self.prepare(job)
        src, bgr = job.inputs
        job.inputs = None
        outputs = self.runner(src, bgr)
        if self.render_on_device:
            return job, self.renderer(outputs, job.com), True
        return job, outputs, False

    def infer_group(self, jobs):
        """One model call for the group; per job the same (job, result, rendered) as `infer`."""
        import torch
        for job in jobs:
            if job.inputs is None:
                self.prepare(job)
        src = torch.cat([job.inputs[0] for job in jobs])
        backgrounds = [job.inputs[1] for job in jobs]
        if all(b is backgrounds[0] for b in backgrounds):
            bgr = backgrounds[0].expand(len(jobs), *backgrounds[0].shape[1:])
        else:
            bgr = torch.cat(backgrounds)
        for job in jobs:
            job.inputs = None
        outputs = self.runner(src, bgr)
        results = []
        for i, job in enumerate(jobs):
            one = {name: value[i:i + 1] for name, value in outputs.items()}
            if self.render_on_device:
                results.append((job, self.renderer(one, job.com), True))
            else:
                results.append((job, one, False))
        return results

    def consume(self, item) -> None:
        if isinstance(item, list):
            for one in item:
                self.consume(one)
            return
        job, result, rendered = item
        pictures = result if rendered else self.renderer(result, job.com)
        self.sink(job, pictures)
