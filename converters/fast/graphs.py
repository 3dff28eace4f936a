"""Replay a whole frame as one CUDA graph, captured once per input shape.

Eager PyTorch at HD issues hundreds of small kernels per frame; on a fast GPU launching them costs
more than running them. `GraphedCall(fn)` captures `fn(*inputs)` (every kernel of a frame) into a
`torch.cuda.CUDAGraph` the first time it sees an input shape and dtype, and afterwards copies the new
inputs into the graph's own input buffers and replays it: one launch per frame. A new shape (another
video, a batch of another size) is captured too (the oldest of more than `max_shapes` is released).
The graph's outputs are buffers that the next replay overwrites, so callers get clones.

What talks to CUDA is one small object (`CudaGraphs`: warm-up on a side stream, capture); tests pass
`EmulatedGraphs`, which replays by calling the function again into the same output buffers, so the
shape bookkeeping, the input and output buffers and the re-capture logic run on the CPU too.
"""
from collections import OrderedDict
from typing import Callable, Sequence, Tuple

import torch


class CudaGraphs:
    """Warm-up and capture with torch.cuda.CUDAGraph on `device`."""

    def __init__(self, device: torch.device):
        self.device = device

    def warmup(self, call: Callable[[], Sequence[torch.Tensor]], times: int) -> None:
        # On a side stream, as capture requires: lazy initialisation (cuDNN plans, workspaces) happens here.
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(times):
                call()
        torch.cuda.current_stream(self.device).wait_stream(stream)

    def capture(self, call: Callable[[], Sequence[torch.Tensor]]) -> Tuple[Callable[[], None], Sequence[torch.Tensor]]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = call()
        return graph.replay, outputs


class EmulatedGraphs:
    """The same face without CUDA: 'replay' runs the function again and writes into the captured outputs."""

    def __init__(self):
        self.captures = 0
        self.replays = 0

    def warmup(self, call, times: int) -> None:
        for _ in range(times):
            call()

    def capture(self, call):
        self.captures += 1
        outputs = call()

        def replay():
            self.replays += 1
            for buffer, value in zip(outputs, call()):
                buffer.copy_(value)
        return replay, outputs


class GraphedCall:
    """`fn(*tensors) -> tuple of tensors`, run as a graph captured per input shape and dtype."""

    def __init__(self, fn: Callable[..., Sequence[torch.Tensor]], backend, warmup: int = 2, max_shapes: int = 4):
        self.fn, self.backend, self.warmup, self.max_shapes = fn, backend, warmup, max_shapes
        self.entries: "OrderedDict[tuple, tuple]" = OrderedDict()

    @staticmethod
    def key(inputs: Sequence[torch.Tensor]) -> tuple:
        return tuple((tuple(x.shape), x.dtype, x.device) for x in inputs)

    def capture(self, inputs: Sequence[torch.Tensor]):
        static = [x.clone(memory_format=torch.preserve_format) for x in inputs]

        def call():
            return tuple(self.fn(*static))
        self.backend.warmup(call, self.warmup)
        replay, outputs = self.backend.capture(call)
        return static, replay, tuple(outputs)

    def __call__(self, *inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        key = self.key(inputs)
        entry = self.entries.get(key)
        if entry is None:
            while len(self.entries) >= self.max_shapes:
                self.entries.popitem(last=False)  # frees that graph's memory
            entry = self.entries[key] = self.capture(inputs)
        else:
            self.entries.move_to_end(key)
        static, replay, outputs = entry
        for buffer, value in zip(static, inputs):
            buffer.copy_(value, non_blocking=True)
        replay()
        return tuple(o.clone() for o in outputs)
