"""The engine behind `bgmv2 parity` and the parity suite: run a reference and candidates on the same
inputs, measure every output, check the tolerances of each candidate's precision, time each format.
"""
import datetime
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from bgmv2.converters.acceptance import RULES, Limits, judge, rule_for
from bgmv2.converters.agreement import ParityMetrics
from bgmv2.converters.devices import exact_fp32_on_gpus, tf32_setting
from bgmv2.converters.probes import Probe
from .candidates import Candidate, ParityError, Reference, default_label, load_candidate


@dataclass
class CandidateRequest:
    """What to check: a file, how to run it, and an optional label."""
    path: str
    run_as: str = "file"
    label: Optional[str] = None


@dataclass
class CaseResult:
    label: str
    path: str
    format: str = ""
    run_as: str = "file"
    runtime: str = ""
    precision: str = "fp32"
    device: str = "cpu"
    knobs: Dict[str, object] = field(default_factory=dict)
    knob_sources: Dict[str, str] = field(default_factory=dict)
    recorded_from: str = ""
    tolerance: str = "fp32"
    limits: Optional[Limits] = None
    metrics: ParityMetrics = field(default_factory=ParityMetrics)
    violations: List[str] = field(default_factory=list)
    ms_per_frame: Optional[float] = None
    error: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    diagnosis: Optional[Dict[str, str]] = None  # {"code", "detail"} of a failing case
    timing: Optional[Dict[str, object]] = None
    expected_diagnosis: Optional[str] = None  # planted bugs: the code the diagnosis should give
    what: str = ""  # how the file was made (matrix entries)
    picture: Optional[Dict[str, np.ndarray]] = None  # arrays for the diff map (not in the JSON)
    advisory: bool = False  # how plain users run the file (`plain_runtime`): reported, never the verdict

    @property
    def ok(self) -> bool:
        return self.error is None and not self.violations

    @property
    def verdict(self) -> str:
        return "ok" if self.ok else ("ERROR" if self.error else "DRIFT" if self.advisory else "FAIL")

    def as_dict(self) -> Dict[str, object]:
        return {"label": self.label, "path": self.path, "format": self.format, "run_as": self.run_as,
                "runtime": self.runtime, "precision": self.precision, "device": self.device, "knobs": self.knobs,
                "knob_sources": self.knob_sources, "knobs_recorded_in": self.recorded_from,
                "tolerance": self.tolerance, "limits": self.limits.as_dict() if self.limits else None,
                "ratios": {k: {"max": v[0], "mean": v[1]} for k, v in self.limits.ratios(self.metrics).items()}
                if self.limits else None,
                "metrics": self.metrics.as_dict(), "violations": self.violations,
                "ms_per_frame": self.ms_per_frame, "error": self.error, "diagnosis": self.diagnosis,
                "timing": self.timing, "notes": self.notes, "expected_diagnosis": self.expected_diagnosis, "what": self.what,
                "ok": self.ok, "advisory": self.advisory}


@dataclass
class Report:
    reference: Dict[str, object]
    probes: List[str]
    device: str
    flags: Dict[str, object]
    cases: List[CaseResult] = field(default_factory=list)
    reference_ms_per_frame: Dict[str, float] = field(default_factory=dict)  # per knob set label
    date: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    environment: Dict[str, str] = field(default_factory=lambda: environment())
    title: str = "Parity"
    planted: List[CaseResult] = field(default_factory=list)  # planted bugs (--planted): each must FAIL

    @property
    def ok(self) -> bool:
        return all(case.ok or case.advisory for case in self.cases) and not any(case.ok for case in self.planted)

    def as_dict(self) -> Dict[str, object]:
        return {"title": self.title, "date": self.date, "ok": self.ok, "device": self.device,
                "reference": self.reference, "probes": self.probes, "flags": self.flags,
                "reference_ms_per_frame": self.reference_ms_per_frame, "environment": self.environment,
                "tolerance_rules": {k: v.as_dict() for k, v in RULES.items()},
                "cases": [case.as_dict() for case in self.cases],
                "planted": [case.as_dict() for case in self.planted]}


def environment() -> Dict[str, str]:
    """Versions of everything that computes, and the machine."""
    from importlib import metadata
    found = {"python": platform.python_version(), "machine": cpu_name(), "os": platform.platform(terse=True)}
    for name in ("bgmv2-zoo", "numpy", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorflow",
                 "tensorflow-cpu", "keras", "tf2onnx", "onnxscript"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    import os
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores visible)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


BUSY_LOAD_PER_CORE = 0.75  # load average above this share of the cores: other work competes for them
SPREAD_LIMIT = 1.5  # slowest / fastest repeat above this: the figures moved between repeats


def load_average() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def timing_of(run: Callable, probe: Probe, repeat: int) -> Optional[Dict[str, object]]:
    """Milliseconds per frame: one warm-up call, then the median of `repeat` timed calls, with the load
    average and the spread; `indicative` when the machine was busy or the repeats disagree."""
    if repeat <= 0:
        return None
    run(probe.src, probe.bgr)  # warm-up: lazy initialisation, kernel selection, caches
    before = load_average()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run(probe.src, probe.bgr)
        times.append(time.perf_counter() - started)
    after = load_average()
    cores = os.cpu_count() or 1
    loads = [x for x in (before, after) if x is not None]
    load = max(loads) if loads else None
    spread = max(times) / min(times) if min(times) > 0 else float("inf")
    reasons = []
    if load is not None and load > BUSY_LOAD_PER_CORE * cores:
        reasons.append(f"load average {load:.1f} on {cores} cores")
    if repeat > 1 and spread > SPREAD_LIMIT:
        reasons.append(f"repeats differ {spread:.1f}x")
    return {"ms_per_frame": 1000 * statistics.median(times) / probe.batch, "repeats": repeat, "warmup": 1,
            "min_ms": 1000 * min(times) / probe.batch, "max_ms": 1000 * max(times) / probe.batch,
            "load_average": load, "cores": cores, "indicative": bool(reasons), "why_indicative": "; ".join(reasons)}


def time_runner(run: Callable, probe: Probe, repeat: int) -> Optional[float]:
    """Median milliseconds per frame (warmed up); see `timing_of` for the whole record."""
    timing = timing_of(run, probe, repeat)
    return timing["ms_per_frame"] if timing else None


def check_candidate(reference: Reference, candidate: Candidate, knobs: Dict[str, object], sources: Dict[str, str],
                    probes: Sequence[Probe], repeat: int = 0, explain: bool = True) -> CaseResult:
    """Run `candidate` and the reference (at `knobs`) on every probe and measure; no exceptions escape."""
    result = CaseResult(candidate.label, candidate.path, candidate.format, candidate.run_as, candidate.runtime,
                        candidate.precision, candidate.device, dict(knobs), dict(sources), candidate.recorded_from,
                        candidate.precision, notes=list(candidate.notes))
    try:
        rule = rule_for(candidate.precision)
    except ValueError as error:
        result.error = str(error)
        return result
    try:
        reference.noise(knobs, probes, rule.name)
    except Exception as error:  # noqa: BLE001
        result.error = f"could not measure the reference's own rounding error: {type(error).__name__}: {error}"
        return result
    worst = [-1.0]

    def keep_worst(probe, expected, got, classes):
        """The picture of the image that differs most, for the report's difference map."""
        if "pha" in got and np.shape(got["pha"]) == np.shape(expected["pha"]):
            diff = np.nan_to_num(np.abs(expected["pha"].astype(np.float64) - got["pha"]), nan=1.0, posinf=1.0)
            if float(diff.sum()) > worst[0]:
                worst[0] = float(diff.sum())
                image = int(np.argmax(diff.reshape(diff.shape[0], -1).sum(1)))
                result.picture = {"src": probe.src[image], "reference": expected["pha"][image, 0],
                                  "candidate": np.asarray(got["pha"][image, 0]), "probe": probe.describe(),
                                  **{k: v[image] for k, v in classes.items()}}

    try:
        verdict = judge(reference, candidate.runner, knobs, probes, rule.name, on_probe=keep_worst)
        result.limits = limits = verdict.limits
        result.metrics = verdict.metrics
        result.timing = timing_of(candidate.runner, probes[0], repeat)
        result.ms_per_frame = result.timing["ms_per_frame"] if result.timing else None
    except Exception as error:  # noqa: BLE001 - a candidate's failure is a result, not a crash
        result.error = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        return result
    result.violations = limits.violations(result.metrics)
    if result.violations and explain:
        from .diagnosis import diagnose
        try:
            result.diagnosis = diagnose(reference, candidate, knobs, probes, result.metrics, limits)
        except Exception as error:  # noqa: BLE001 - a diagnosis that breaks is no reason to lose the verdict
            result.diagnosis = {"code": "unknown", "detail": f"diagnosis failed: {type(error).__name__}: {error}"}
    return result


def run_parity(reference_path: str, requests: Sequence[CandidateRequest], probes: Sequence[Probe],
               flags: Optional[Dict[str, object]] = None, device: str = "cpu", repeat: int = 3,
               threads: Optional[int] = None, log: Optional[Callable[[str], None]] = None,
               reference: Optional[Reference] = None, title: str = "Parity") -> Report:
    """Check every candidate against the reference; a candidate that cannot load is an ERROR row."""
    say = log or (lambda text: None)
    reference = reference or Reference(reference_path)
    report = Report({"path": reference_path, "format": reference.format, "backbone": reference.backbone,
                     "kind": reference.spec.kind, "weights_precision": reference.spec.precision,
                     "recorded_knobs": reference.recorded,
                     "runs_as": "PyTorch eager, fp32, CPU"},
                    [p.describe() for p in probes], device, dict(flags or {}), title=title)
    if device != "cpu":
        exact_fp32_on_gpus()
    report.environment["tf32"] = tf32_setting(device)
    for request in requests:
        label = request.label or default_label(request.path, "", request.run_as, "")
        say(f"checking {label} ...")
        try:
            candidate, knobs, sources = load_candidate(request.path, reference, flags, device, request.run_as,
                                                       request.label, threads)
        except ParityError as error:
            report.cases.append(CaseResult(label, request.path, run_as=request.run_as, device=device, error=str(error)))
            continue
        except Exception as error:  # noqa: BLE001 - report, do not crash the whole run
            report.cases.append(CaseResult(label, request.path, run_as=request.run_as, device=device,
                                           error=f"{type(error).__name__}: {error}"))
            continue
        try:
            usable = probes_for(candidate, probes)
        except ParityError as error:
            report.cases.append(CaseResult(label, request.path, candidate.format, request.run_as, candidate.runtime,
                                           candidate.precision, device, dict(knobs), dict(sources),
                                           candidate.recorded_from, error=str(error), notes=list(candidate.notes)))
            continue
        result = check_candidate(reference, candidate, knobs, sources, usable, repeat)
        report.cases.append(result)
        from .plain_runtime import plain_rows  # OpenVINO as plain users run it, beside the pinned row
        report.cases += plain_rows(reference, candidate, knobs, sources, usable, repeat, threads)
        key = knob_label(knobs)
        if repeat > 0 and key not in report.reference_ms_per_frame:
            runner = reference.runner(knobs)
            report.reference_ms_per_frame[key] = time_runner(runner, probes[0], repeat)
    return report


def probes_for(candidate: Candidate, probes: Sequence[Probe]) -> List[Probe]:
    """The probes `candidate` can run: a file that fixes TopK k needs k cells of 4x4 pixels. Built-in
    probes that are too small are replaced by larger ones of the same shape (noted); the user's own
    sizes and pictures are refused with the constraint and a size that works."""
    from .inferred import size_with_cells
    from bgmv2.converters.probes import synthetic_probe
    need = candidate.min_cells
    usable = []
    for probe in probes:
        height, width = probe.size
        cells = (height // 4) * (width // 4)
        if cells >= need:
            usable.append(probe)
            continue
        h, w = size_with_cells(height, width, need)
        if not probe.builtin:
            raise ParityError(f"{candidate.path} fixes TopK k = {need:,} in its graph, so every picture needs at "
                              f"least {need:,} cells of 4x4 pixels; {probe.describe()} has {cells:,}. Use "
                              f"--size {h}x{w} or larger (or pictures at least that big; --max-side keeps them).")
        bigger = synthetic_probe(h, w, probe.batch, probe.seed)
        candidate.notes.append(f"probe {height}x{width} has {cells:,} cells, fewer than the file's k = {need:,}: "
                               f"checked at {h}x{w} instead")
        usable.append(bigger)
    return usable


def knob_label(knobs: Dict[str, object]) -> str:
    mode = knobs.get("refine_mode")
    text = f"{mode}, scale {knobs.get('backbone_scale')}"
    if mode == "sampling":
        text += f", {knobs.get('refine_sample_pixels')} px"
    elif mode == "thresholding":
        text += f", threshold {knobs.get('refine_threshold')}"
    return text
