"""`FastRunner`: the apps' runner protocol on the fastest way to run a model here that gives its matte.

On the first frame of each input shape it
1. runs eager (the reference), builds every candidate (`candidates.for_device`) and runs it on the
   same frame; a candidate that fails or whose matte differs (`check.check`) is dropped, with the reason;
2. times eager and the survivors on that frame (alternating, median), unless the choice for this
   model, shape, device and versions is already in the cache (`cache.ChoiceCache`), and records it;
3. prints one line: what runs, why (the timings or the cached choice), how it compared with eager.
The next `check_frames - 1` frames are checked against eager again; if one differs the runner
switches to eager for good, says so in one line, and returns eager's result for that frame: a
candidate's matte that failed its check is never returned.
"""
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch.nn import functional as F

from . import candidates as cands
from .cache import ChoiceCache, choice_key
from .check import check

TIMED_CALLS = 5  # per candidate on first use (the fastest counts); each about one frame's time
CLEAR_WIN = 1.1  # the winner is cached only if the runner-up took this much longer: a close call is timed again


def pad_to_4(x: torch.Tensor) -> torch.Tensor:
    pad_h, pad_w = -x.shape[-2] % 4, -x.shape[-1] % 4
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def named(out: Sequence[torch.Tensor], height: int, width: int) -> Dict[str, torch.Tensor]:
    """The model's tuple -> the runner protocol's dict, cropped back to the frame's size."""
    if len(out) == 6:  # pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm
        return {"pha": out[0][..., :height, :width], "fgr": out[1][..., :height, :width], "err": out[4], "ref": out[5]}
    return {"pha": out[0][..., :height, :width], "fgr": out[1][..., :height, :width],
            "err": out[2][..., :height, :width]}


def say(text: str) -> None:
    from bgmv2.scripts.media.errors import warn
    if text.startswith("warning: "):
        warn(text[len("warning: "):])
    else:
        print(text, file=sys.stderr)


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


class FastRunner:
    """Runner protocol (scripts.media.runner) over eager `model` and the `candidates` that beat it."""

    def __init__(self, model: torch.nn.Module, device: torch.device, candidates: Sequence[cands.Candidate],
                 model_id: str, precision: Optional[str] = None, cache: Optional[ChoiceCache] = None,
                 check_frames: int = 2, log: Callable[[str], None] = say, description: str = "",
                 timed_calls: int = TIMED_CALLS, why_none: str = "no faster way to run this model here"):
        from bgmv2.pytorch_impl import MattingBase, MattingRefine
        self.model, self.device, self.dtype = model, device, torch.float32
        self.candidates, self.model_id, self.precision = list(candidates), model_id, precision
        self.cache = cache if cache is not None else ChoiceCache()
        self.check_frames, self.log, self.timed_calls = max(1, check_frames), log, max(1, timed_calls)
        refine = isinstance(model, MattingRefine) or not isinstance(model, MattingBase)
        self.outputs = ("pha", "fgr", "err", "ref") if refine else ("pha", "fgr", "err")
        self.description = description or f"{type(model).__name__}: fast"
        self.choices: Dict[tuple, Choice] = {}
        self.why_none = why_none
        self._upload = torch.cuda.Stream(device) if device.type == "cuda" else None

    # -- runner protocol ------------------------------------------------------------------------
    def prepare(self, frame) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1] on the device, padded to a multiple of 4.

        On CUDA the frame goes through page-locked memory on a separate stream, so the upload of the
        next frame overlaps the model's work on this one."""
        x = torch.from_numpy(frame)
        if self._upload is None:
            x = x.permute(2, 0, 1).unsqueeze(0)
            return pad_to_4(x.to(self.device).float().div_(255))
        host = x.pin_memory()
        with torch.cuda.stream(self._upload):
            x = host.to(self.device, non_blocking=True).permute(2, 0, 1).unsqueeze(0).float().div_(255)
            x = pad_to_4(x)
            x.bgmv2_ready = torch.cuda.Event()
            x.bgmv2_ready.record(self._upload)
        return x

    def __call__(self, src: torch.Tensor, bgr: torch.Tensor, size=None) -> Dict[str, torch.Tensor]:
        height, width = size or src.shape[-2:]
        src, bgr = self._ready(src), self._ready(bgr)
        src, bgr = pad_to_4(src), pad_to_4(bgr)
        if bgr.shape[0] != src.shape[0]:
            bgr = bgr.expand(src.shape[0], *bgr.shape[1:])
        with torch.inference_mode():
            key = tuple(src.shape)
            choice = self.choices.get(key)
            if choice is None:
                choice, out = self.choose(src, bgr)
                self.choices[key] = choice
            elif choice.checks_left > 0:
                out = self.checked(choice, src, bgr)
            else:
                out = choice.run(src, bgr)
        return named(out, height, width)

    def _ready(self, x: torch.Tensor) -> torch.Tensor:
        event = getattr(x, "bgmv2_ready", None)
        if event is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(event)
            x.record_stream(stream)
        return x

    # -- choosing ---------------------------------------------------------------------------------
    def shape_text(self, src: torch.Tensor) -> str:
        b, _, h, w = src.shape
        return f"{w}x{h}" + (f" batch {b}" if b > 1 else "")

    def choose(self, src: torch.Tensor, bgr: torch.Tensor):
        start = time.perf_counter()
        reference = self.model(src, bgr)
        eager_first = time.perf_counter() - start
        key = choice_key(self.model_id, src.shape, self.device, self.precision or "auto")
        cached = self.cache.get(key)
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
            verdict = check(reference, out, candidate.precision, candidate.name)
            if not verdict.ok:
                dropped.append(f"{candidate.name} differs from eager ({verdict.text})")
                continue
            built.append((candidate, run, first, verdict, out))
        eager = Choice("eager", self.model, "fp32", 0)
        where = f"{self.shape_text(src)} on {self.device}"
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
        if clear:
            self.cache.put(key, {"choice": best, "reason": reason, "ms": timings, "first_call_s": firsts})
        remembered = (f"choice cached in {self.cache.path} (delete it to choose again)" if clear else
                      f"too close to call by {CLEAR_WIN:.1f}x: not cached, timed again next run")
        if best == "eager":
            self.log(f"fast: eager for {where}: it was the fastest ({reason}); {remembered}")
            return eager, reference
        candidate, run, first, verdict, out = next(b for b in built if b[0].name == best)
        self.log(f"fast: {best} for {where}, {timings['eager'] / timings[best]:.2f}x eager ({reason}); first call "
                 f"{first:.1f} s; checked against eager: {100 * verdict.share:.3f}% of 8-bit alpha off by > 2 levels; "
                 f"{remembered}")
        choice = Choice(best, run, candidate.precision, self.check_frames - 1, timings, firsts, reason)
        return choice, out

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
        """The choice's output if it agrees with eager on this frame, else eager's (and eager from now on)."""
        choice.checks_left -= 1
        reference = self.model(src, bgr)
        out = choice.run(src, bgr)
        verdict = check(reference, out, choice.precision, choice.name)
        if verdict.ok:
            return out
        self.log(f"warning: fast: {choice.name} differs from eager on a later frame ({verdict.text}); running eager "
                 "from here on")
        choice.name, choice.run, choice.precision, choice.checks_left = "eager", self.model, "fp32", 0
        return reference

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def chosen(self) -> Dict[tuple, str]:
        """Input shape -> the name of what runs it (for reports and tests)."""
        return {key: choice.name for key, choice in self.choices.items()}
