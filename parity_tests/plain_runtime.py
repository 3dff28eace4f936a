"""Candidates also run the way plain users run them, reported beside the row that decides the verdict.

OpenVINO: bgmv2 pins the CPU plugin's inference precision to f32, but a plain
`core.compile_model("m.xml", "CPU")` (no configuration) leaves it to the plugin, which picks bf16 on CPUs with
AVX-512 BF16 or AMX. So every `openvino` candidate run in f32 gets a second row, compiled without
the hint (`converters.load(..., precision="default")`): measured against the same fp32 limits, its
verdict `DRIFT` where it breaks them (`ok` where the plugin's default is f32 on this CPU), with the
drift in words and the one line that pins f32. It never changes the report's verdict and is not
diagnosed (its cause is known).
"""
import dataclasses
from typing import Dict, List, Optional

from .candidates import Candidate
from .engine import CaseResult, check_candidate


def openvino_pinned(candidate: Candidate) -> bool:
    return getattr(candidate.runner, "runtime", None) == "openvino" and candidate.precision == "fp32"


def capability() -> str:
    """What this CPU offers OpenVINO for lower precision, in words."""
    try:
        from bgmv2.converters.openvino_core import core
        found = core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001
        return "unknown CPU capabilities"
    return "offers " + ", ".join(found)


def drift_note(result: CaseResult) -> str:
    from bgmv2.converters.openvino_format import FIX
    pha, fgr = result.metrics.outputs.get("pha"), result.metrics.outside.get("fgr")
    if result.ok:
        return (f"plain users get the same: OpenVINO's CPU plugin runs this file in {result.precision} by default on "
                f"this CPU ({capability()}), within the fp32 limits")
    figures = []
    if pha is not None:
        figures.append(f"alpha max |d| {pha.max_abs:.2g}, {pha.share_8bit:.1%} of 8-bit alpha values differ")
    if fgr is not None:
        figures.append(f"foreground max |d| {fgr.max_abs:.2g}")
    return (f"plain users get this: OpenVINO's CPU plugin runs this file in {result.precision} by default on this "
            f"CPU ({capability()}): {'; '.join(figures)}. The pinned row above decides the verdict; pin f32 with one "
            f"line: {FIX} (no setting saved in the IR does it; see docs/deployment.md)")


def plain_rows(reference, candidate: Candidate, knobs: Dict[str, object], sources: Dict[str, str], probes,
               repeat: int = 0, threads: Optional[int] = None) -> List[CaseResult]:
    """The advisory rows for `candidate` (none for runtimes whose plain use is what was checked)."""
    if not openvino_pinned(candidate):
        return []
    from bgmv2 import converters
    label = f"{candidate.label} [plugin default]"
    try:
        runtime = None if candidate.format == "openvino" else "openvino"
        runner = converters.load(candidate.path, candidate.format, runtime=runtime, precision="default",
                                 threads=threads)
    except Exception as error:  # noqa: BLE001 - reported, as any candidate that cannot load
        return [CaseResult(label, candidate.path, candidate.format, candidate.run_as, device=candidate.device,
                           error=f"{type(error).__name__}: {error}", advisory=True)]
    plain = dataclasses.replace(candidate, label=label, runtime=runner.engine, precision="fp32", runner=runner,
                                notes=[])
    result = check_candidate(reference, plain, knobs, sources, probes, repeat, explain=False)
    result.precision, result.advisory = runner.precision, True
    result.tolerance = "fp32 (what the file holds; reported only)"
    result.notes.append(drift_note(result))
    return [result]
