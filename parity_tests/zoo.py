"""`bgmv2 parity --zoo NAME`: build the format matrix from a zoo entry's file and check every file.

The matrix files are written with one knob set (`matrix.default_knobs` for the smallest probe, with
the user's flags on top); files whose knobs are fixed at export get their entry's refine mode, and
each is checked with exactly the knobs it was written with.
"""
import shutil
import tempfile
from typing import Callable, Dict, Optional, Sequence

from bgmv2.converters.devices import cuda_unavailable
from .candidates import ParityError, Reference, clean_knobs, resolve_path
from .engine import CandidateRequest, Report, run_parity
from .matrix import Builder, BuildError, default_knobs, missing_modules, select
from bgmv2.converters.probes import Probe


def zoo_file(name: str) -> str:
    try:
        from bgmv2 import weights
        weights.load_registry().get(name)
    except ImportError:
        raise ParityError("the model zoo (package `weights`) is not installed") from None
    except ValueError as error:  # ZooError
        raise ParityError(str(error)) from None
    return resolve_path(name)


def entry_flags(entry, knobs: Dict[str, object]) -> Dict[str, object]:
    return dict(knobs) if entry.knobs_at_load else dict(knobs, refine_mode=entry.mode)


def check_zoo(name: str, probes: Sequence[Probe], flags: Dict[str, object], device: str = "cpu",
              formats: Optional[Sequence[str]] = None, precisions: Sequence[str] = ("fp32", "fp16"),
              work: Optional[str] = None, repeat: int = 3, threads: Optional[int] = None,
              log: Optional[Callable[[str], None]] = None, title: str = "Parity") -> Report:
    """Convert zoo entry `name` to the matrix's formats and check each against it; one report."""
    say = log or (lambda text: None)
    source = zoo_file(name)
    try:
        entries = select(formats, tuple(precisions))
    except ValueError as error:
        raise ParityError(str(error)) from None
    smallest = min(probes, key=lambda p: p.size[0] * p.size[1])
    knobs = {**default_knobs(*smallest.size), **clean_knobs(flags)}
    reference = Reference(source)
    folder = work or tempfile.mkdtemp(prefix="bgmv2-parity-")
    skipped = []
    chosen = []
    for entry in entries:
        missing = missing_modules(entry)
        reason = f"needs {', '.join(missing)}" if missing else None
        if reason is None and device != "cpu":
            reason = cuda_unavailable(entry.runtime)
        if reason:
            skipped.append(f"{entry.label}: skipped ({reason})")
        else:
            chosen.append(entry)
    builder = Builder(source, folder, knobs)
    report: Optional[Report] = None
    try:
        builder.submit([entry.label for entry in chosen])
        for entry in chosen:
            say(f"building {entry.label} ...")
            try:
                path = builder.path(entry.label)
            except BuildError as error:
                from .engine import CaseResult
                failed = CaseResult(entry.label, entry.file, run_as=entry.run_as, precision=entry.precision,
                                    device=device, error=f"could not be built: {error}")
                report = report or run_parity(source, [], probes, knobs, device, repeat, threads, say, reference, title)
                report.cases.append(failed)
                continue
            part = run_parity(source, [CandidateRequest(path, entry.run_as, entry.label)], probes,
                              entry_flags(entry, knobs), device, repeat, threads, say, reference, title)
            if report is None:
                report = part
            else:
                report.cases += part.cases
                for key, ms in part.reference_ms_per_frame.items():
                    report.reference_ms_per_frame.setdefault(key, ms)
    finally:
        builder.close()
        if work is None:
            shutil.rmtree(folder, ignore_errors=True)
    if report is None:
        report = run_parity(source, [], probes, knobs, device, repeat, threads, say, reference, title)
    report.flags = dict(knobs)
    for case in report.cases:
        case.what = next((e.what for e in entries if e.label == case.label), "")
    for line in skipped:
        say(line)
    report.reference["zoo"] = name
    report.reference["skipped"] = skipped
    return report
