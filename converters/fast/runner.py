"""`FastRunner`: the one Runner (`converters.runner`) on the fastest way to run a model here that gives its matte.

On the first frame of each input shape it
1. runs eager (the reference), builds every candidate (`candidates.for_device`) and runs it on the
   same frame; a candidate that fails or whose matte breaks the acceptance rule (`check.check`) is
   dropped, with the reason;
2. times eager and the survivors on that frame (alternating, fastest of a few calls), unless the choice
   for this model, shape, device and versions is already in the cache (`cache.ChoiceCache`; processes
   choosing at once take turns, so batch workers share one choice), and records it (provisionally when
   the machine was busy: timed again on a quiet one);
3. prints one line: what runs, why (the timings or the cached choice), how it compared with eager.
The next `check_frames - 1` frames and then every `CHECK_EVERY`-th frame are checked against eager
again; a frame that breaks the rule gets eager's matte, and from there a float32 candidate (or eager)
runs, said in one line: a candidate's matte that failed its check is never returned.
"""
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch

from bgmv2.converters.formats import OUTPUTS_BASE, OUTPUTS_REFINE
from bgmv2.converters.runner import Runner
from . import candidates as cands
from . import knobs_of
from .cache import ChoiceCache, choice_key
from .check import check, limits_for

TIMED_CALLS = 5  # per candidate on first use (the fastest counts); each about one frame's time
CHECK_EVERY = 30  # after the first checked frames, every this many frames of a shape is checked against eager
CHEAP_FRAMES = 8  # a job of fewer frames does not repay building anything: eager runs it
CLEAR_WIN = 1.1  # the winner is cached only if the runner-up took this much longer: a close call is timed again


def say(text: str) -> None:
    """What the fast path chose and why, on stderr (callers with a progress bar pass their own `log`)."""
    print(text, file=sys.stderr)


def machine_busy() -> str:
    """'' on a quiet machine; else the load that makes timings untrustworthy (other work on the cores)."""
    import os
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return ""
    cores = os.cpu_count() or 1
    return f"load average {load:.1f} on {cores} cores" if load > 0.75 * cores else ""


def short(error: BaseException, limit: int = 120) -> str:
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass
class Choice:
    name: str
    run: Callable
    precision: str
    checks_left: int
    timings_ms: Dict[str, float] = field(default_factory=dict)
    first_call_s: Dict[str, float] = field(default_factory=dict)
    reason: str = ""
    calls: int = 0
    fallback: Optional["Choice"] = None  # a float32 candidate to switch to when a checked frame fails


class FastRunner(Runner):
    """The Runner of eager `model` and the `candidates` that beat it; `fn` is `run_model`."""

    def __init__(self, model: torch.nn.Module, device: torch.device, candidates: Sequence[cands.Candidate],
                 model_id: str, precision: Optional[str] = None, cache: Optional[ChoiceCache] = None,
                 check_frames: int = 2, log: Callable[[str], None] = say, timed_calls: int = TIMED_CALLS,
                 why_none: str = "no faster way to run this model here", fmt: str = "model", path: str = "",
                 metadata: Optional[Dict[str, str]] = None):
        from bgmv2.pytorch_impl import MattingBase, MattingRefine
        refine = isinstance(model, MattingRefine) or not isinstance(model, MattingBase)
        super().__init__(self.run_model, fmt, path, OUTPUTS_REFINE if refine else OUTPUTS_BASE, "NCHW", metadata,
                         "fp32", model, device=str(device), runtime="fast", takes="torch")
        self.torch_device = device
        self.candidates, self.model_id, self.asked = list(candidates), model_id, precision
        self.cache = cache if cache is not None else ChoiceCache()
        self.check_frames, self.log, self.timed_calls = max(1, check_frames), log, max(1, timed_calls)
        self.choices: Dict[tuple, Choice] = {}
        self.limits: Dict[tuple, object] = {}  # (shape, precision) -> the rule's limits measured on its first frame
        self.knobs = {k: v for k, v in knobs_of(model).items() if k != "kind"}
        self.busy = machine_busy  # '' when quiet; tests replace it
        self.why_none = why_none

    @property
    def engine(self) -> str:
        chosen = sorted(set(self.chosen.values()))
        return "fast: " + (", ".join(chosen) if chosen else "chooses on the first frame of each size")

    @engine.setter
    def engine(self, value) -> None:  # the base class sets it; what runs is told by the choices
        pass

    @property
    def precision(self) -> str:
        """The lowest precision a choice computes in (bf16 / fp16 / fp32); before any, the one asked."""
        used = {choice.precision for choice in self.choices.values()}
        for name in ("fp16", "bf16", "fp32"):
            if name in used:
                return name
        return self.asked or "fp32"

    @precision.setter
    def precision(self, value) -> None:
        pass

    def run_model(self, src: torch.Tensor, bgr: torch.Tensor):
        """The model's output tuple for float32 NCHW inputs on the device (a multiple of 4 in size)."""
        if bgr.shape[0] != src.shape[0]:
            bgr = bgr.expand(src.shape[0], *bgr.shape[1:])
        src = src.contiguous(memory_format=torch.channels_last)
        bgr = bgr.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            key = tuple(src.shape)
            choice = self.choices.get(key)
            if choice is None:
                with self.cache.locked():
                    choice, out = self.choose(src, bgr)
                for note in self.cache.notes:
                    self.log(f"warning: fast: {note}")
                self.cache.notes.clear()
                self.choices[key] = choice
            elif choice.checks_left > 0 or (choice.name != "eager" and choice.calls % CHECK_EVERY == 0):
                out = self.checked(choice, src, bgr)
            else:
                out = choice.run(src, bgr)
            choice.calls += 1
        return out

    # -- choosing ---------------------------------------------------------------------------------
    def shape_text(self, src: torch.Tensor) -> str:
        b, _, h, w = src.shape
        return f"{w}x{h}" + (f" batch {b}" if b > 1 else "")

    def choose(self, src: torch.Tensor, bgr: torch.Tensor):
        reference = self.model(src, bgr)
        key = choice_key(self.model_id, src.shape, self.torch_device, self.asked or "auto")
        cached = self.cache.get(key)
        if cached is not None and cached.get("provisional") and not self.busy():
            cached = None  # timed on a busy machine: time again now that it is quiet
        wanted = self.candidates
        if cached is not None:
            wanted = [c for c in self.candidates if c.name == cached["choice"]]
        dropped: List[str] = []
        built = []
        for candidate in wanted:
            try:
                begin = time.perf_counter()
                run = candidate.build()
                out = run(src, bgr)
                self._sync()
                first = time.perf_counter() - begin
            except Exception as error:  # noqa: BLE001 - any failure drops the candidate, with its reason
                dropped.append(f"{candidate.name} failed ({short(error)})")
                continue
            verdict = check(reference, out, self.limits_of(src, bgr, candidate.precision), self.knobs, candidate.name)
            if not verdict.ok:
                dropped.append(f"{candidate.name} differs from eager ({verdict.text})")
                continue
            built.append((candidate, run, first, verdict, out))
        eager = Choice("eager", self.model, "fp32", 0)
        where = f"{self.shape_text(src)} on {self.torch_device}"
        if cached is not None:
            if built:
                candidate, run, first, verdict, out = built[0]
                choice = Choice(candidate.name, run, candidate.precision, self.check_frames - 1,
                                first_call_s={candidate.name: first})
                self.log(f"fast: {candidate.name} for {where} (cached choice of {cached.get('recorded', '?')}: "
                         f"{cached.get('reason', '')}); first call {first:.1f} s; checked against eager: "
                         f"{100 * verdict.share:.3f}% of 8-bit alpha off by > 2 levels")
                return choice, out
            if cached["choice"] == "eager":
                self.log(f"fast: eager for {where} (cached choice of {cached.get('recorded', '?')}: "
                         f"{cached.get('reason', '')}; delete {self.cache.path} to choose again)")
                return eager, reference
            self.log(f"warning: fast: the cached choice {cached['choice']} for {where} is not usable now ("
                     f"{'; '.join(dropped) or 'not offered here'}); running eager")
            return eager, reference
        if not built:
            self.log(f"fast: eager for {where}: " + ("; ".join(dropped) or self.why_none))
            return eager, reference
        timings = self.time(src, bgr, [("eager", self.model)] + [(c.name, run) for c, run, _, _, _ in built])
        best = min(timings, key=timings.get)
        others = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(timings.items(), key=lambda kv: kv[1]))
        reason = f"ms/frame {others}"
        if dropped:
            reason += "; dropped: " + "; ".join(dropped)
        firsts = {c.name: first for c, _, first, _, _ in built}
        ranked = sorted(timings.values())
        clear = len(ranked) < 2 or ranked[1] >= CLEAR_WIN * ranked[0]
        busy = self.busy()
        if clear:
            self.cache.put(key, {"choice": best, "reason": reason, "ms": timings, "first_call_s": firsts,
                                 **({"provisional": True, "busy": busy} if busy else {})})
        remembered = (f"timed while the machine was busy ({busy}): cached for runs beside this one, timed again on a "
                      "quiet machine" if clear and busy else
                      f"choice cached in {self.cache.path} (delete it to choose again)" if clear else
                      f"too close to call by {CLEAR_WIN:.1f}x: not cached, timed again next run")
        if best == "eager":
            self.log(f"fast: eager for {where}: it was the fastest ({reason}); {remembered}")
            return eager, reference
        candidate, run, first, verdict, out = next(b for b in built if b[0].name == best)
        self.log(f"fast: {best} for {where}, {timings['eager'] / timings[best]:.2f}x eager ({reason}); first call "
                 f"{first:.1f} s; checked against eager: {100 * verdict.share:.3f}% of 8-bit alpha off by > 2 levels; "
                 f"{remembered}")
        choice = Choice(best, run, candidate.precision, self.check_frames - 1, timings, firsts, reason)
        choice.fallback = self.fallback(candidate, built, timings)
        return choice, out

    def fallback(self, chosen, built, timings) -> Optional[Choice]:
        """The fastest float32 candidate that passed, for a lower-precision choice to fall back on."""
        if chosen.precision == "fp32":
            return None
        faithful = [(timings.get(c.name, float("inf")), c, run) for c, run, _, _, _ in built if c.precision == "fp32"]
        if not faithful:
            return None
        _, candidate, run = min(faithful, key=lambda item: item[0])
        return Choice(candidate.name, run, "fp32", 0)

    def time(self, src, bgr, runs) -> Dict[str, float]:
        """Fastest ms per call of each (name, run), calls alternating so load changes hit all alike.

        The fastest, not the median: other programs only ever add time, so on a busy machine the
        minimum of a few calls is the steadiest estimate of what each way costs (seen: with load 16
        on 2 cores the median of 3 calls gave eager 725 ms and compiled bf16 1561 ms at 720p, the
        reverse of quiet-machine figures)."""
        times: Dict[str, List[float]] = {name: [] for name, _ in runs}
        for round_ in range(self.timed_calls):
            for name, run in (runs if round_ % 2 == 0 else runs[::-1]):
                self._sync()
                start = time.perf_counter()
                run(src, bgr)
                self._sync()
                times[name].append(1e3 * (time.perf_counter() - start))
        return {name: min(t) for name, t in times.items()}

    def checked(self, choice: Choice, src, bgr):
        """The choice's output if it agrees with eager on this frame; else eager's, and from here on its
        float32 fallback (checked in turn) or eager, said in one line."""
        choice.checks_left = max(0, choice.checks_left - 1)
        reference = self.model(src, bgr)
        out = choice.run(src, bgr)
        verdict = check(reference, out, self.limits_of(src, bgr, choice.precision), self.knobs, choice.name)
        if verdict.ok:
            return out
        after = choice.fallback
        self.log(f"warning: fast: {choice.name} differs from eager on frame {choice.calls + 1} of this size "
                 f"({verdict.text}); that frame gets eager's matte, and {after.name if after else 'eager'} runs from "
                 "here on")
        replacement = after or Choice("eager", self.model, "fp32", 0)
        choice.name, choice.run, choice.precision, choice.fallback = (replacement.name, replacement.run,
                                                                      replacement.precision, None)
        choice.checks_left = self.check_frames - 1 if after else 0
        return reference

    def limits_of(self, src: torch.Tensor, bgr: torch.Tensor, precision: str):
        """The acceptance rule's limits for `precision` at this input shape, measured once (first frame)."""
        key = (tuple(src.shape), precision)
        if key not in self.limits:
            self.limits[key] = limits_for(self.model, src, bgr, self.knobs, precision)
        return self.limits[key]

    def _sync(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)

    @property
    def chosen(self) -> Dict[tuple, str]:
        """Input shape -> the name of what runs it (for reports and tests)."""
        return {key: choice.name for key, choice in self.choices.items()}
