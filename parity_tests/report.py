"""A parity `Report` as people and programs read it: a console table, JSON, Markdown and a PNG of
where alpha differs. Files are written under a temporary name beside the destination, then renamed,
so a report on disk is always whole.
"""
import json
import math
import os
from typing import Callable, List, Optional

import numpy as np

from .engine import CaseResult, Report, knob_label
from bgmv2.converters.acceptance import RULES

COLUMNS = ("case", "precision", "device", "verdict", "pha max", "pha max out", "pha mean", "pha SAD", "pha MSE",
           "8-bit", "fgr max out", "cells differ", "edge", "unexpl.", "ms/frame")


def scientific(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    return f"{value:.1e}"


def row(case: CaseResult) -> List[str]:
    """One line of the table: the figures a reader compares across formats."""
    m = case.metrics
    pha, fgr = m.outputs.get("pha"), m.outside.get("fgr")
    out = m.outside.get("pha")
    cells = m.cells
    name = case.label if not case.runtime else f"{case.label}"
    values = [name, case.precision, case.device, case.verdict,
              scientific(pha.max_abs) if pha else "-", scientific(out.max_abs) if out else "-",
              scientific(pha.mean_abs) if pha else "-", f"{pha.sad:.4f}" if pha else "-",
              scientific(pha.mse) if pha else "-", f"{pha.share_8bit:.3%}" if pha else "-",
              scientific(fgr.max_abs) if fgr else "-",
              f"{cells.flipped}/{cells.cells}" if cells else "-", str(cells.edge) if cells else "-",
              str(cells.unexplained) if cells else "-",
              ms_text(case)]
    return values


def ms_text(case: CaseResult) -> str:
    """ms/frame, marked `*` when the timing is only indicative (busy machine or repeats that disagree)."""
    if case.ms_per_frame is None:
        return "-"
    return f"{case.ms_per_frame:.1f}" + ("*" if case.timing and case.timing.get("indicative") else "")


def section(case: CaseResult) -> str:
    """The precision a row is listed under: its tolerance's (an advisory row sits by the row it shadows)."""
    return "fp32" if case.advisory else case.precision


def diagnosis_line(case: CaseResult) -> Optional[str]:
    if not case.diagnosis:
        return None
    return f"likely cause [{case.diagnosis['code']}]: {case.diagnosis['detail']}"


def timing_note(report: Report) -> Optional[str]:
    marked = [case.timing for case in report.cases if case.timing and case.timing.get("indicative")]
    if not marked:
        return None
    loads = [t["load_average"] for t in marked if t.get("load_average") is not None]
    reasons = []
    if loads:
        reasons.append(f"load average {min(loads):.1f}-{max(loads):.1f} on {marked[0]['cores']} cores")
    spreads = [t["max_ms"] / t["min_ms"] for t in marked if t.get("min_ms")]
    if spreads and max(spreads) > 1:
        reasons.append(f"repeats up to {max(spreads):.1f}x apart")
    return (f"* ms/frame only indicative for {len(marked)} case(s): " + "; ".join(reasons)
            + " (warmed up, median of repeats; rerun on a quiet machine for figures to compare)")


def text_table(report: Report) -> str:
    """The console table, then one line per failure or error saying what broke."""
    rows = [list(COLUMNS)] + [row(case) for case in report.cases]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for key, ms in report.reference_ms_per_frame.items():
        lines.append(f"reference (PyTorch eager fp32, CPU; {key}): {ms:.1f} ms/frame")
    for case in report.cases:
        if case.error:
            lines.append(f"ERROR {case.label}: {case.error}")
        if case.diagnosis:
            lines.append(f"FAIL  {case.label}: {diagnosis_line(case)}")
        for violation in case.violations if not case.advisory else ():  # its note sums the drift up
            lines.append(f"FAIL  {case.label}: {violation}")
        for note in case.notes:
            lines.append(f"note  {case.label}: {note}")
        if case.run_as != "file" and case.runtime:  # run another way than the file's own: say by what
            lines.append(f"ran   {case.label}: {case.runtime}")
    note = timing_note(report)
    if note:
        lines.append(note)
    if report.environment.get("tf32"):
        lines.append(f"TF32: {report.environment['tf32']}")
    if report.environment.get("threads"):
        lines.append(f"threads per runtime: {report.environment['threads']}")
    if report.planted:
        caught = [case for case in report.planted if not case.ok]
        right = [case for case in caught if case.diagnosis and case.diagnosis["code"] == case.expected_diagnosis]
        lines.append(f"planted bugs: {len(caught)}/{len(report.planted)} caught, {len(right)} with the expected "
                     "diagnosis")
        for case in report.planted:
            if case.ok:
                lines.append(f"BLIND {case.label}: passed; the check does not see this bug")
            elif not case.diagnosis or case.diagnosis["code"] != case.expected_diagnosis:
                lines.append(f"note  {case.label}: diagnosis {case.diagnosis and case.diagnosis['code']}, "
                             f"expected {case.expected_diagnosis}")
    checked = [case for case in report.cases if not case.advisory]
    passed = sum(case.ok for case in checked)
    drift = [case for case in report.cases if case.advisory and not case.ok]
    lines.append(f"{passed}/{len(checked)} candidates within tolerance" + ("" if report.ok else "  -> FAILED")
                 + (f"; {len(drift)} plain-runtime row(s) drift (reported, not the verdict)" if drift else ""))
    return "\n".join(lines)


def shown(path: str) -> str:
    """`path` relative to the working folder when it lies inside it (reports stay readable and portable)."""
    if os.path.isabs(path) and path.startswith(os.getcwd() + os.sep):
        return os.path.relpath(path)
    return path


def markdown(report: Report, command: Optional[str] = None) -> str:
    """The report as Markdown: what was compared, how, the table, the failures, the tolerances."""
    ref = report.reference
    env = report.environment
    lines = [f"# {report.title}", "",
             f"- date: {report.date}",
             f"- verdict: {'all candidates within tolerance' if report.ok else 'FAILED (see below)'}",
             f"- reference: `{shown(str(ref.get('path')))}` ({ref.get('format') or 'weights'}, {ref.get('backbone')}, "
             f"{ref.get('kind')}), run as {ref.get('runs_as')}",
             f"- inputs: {'; '.join(report.probes)}",
             f"- device of the candidates: {report.device}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("machine", "os", "tf32",
                                                                                     "threads")),
             f"- machine: {env.get('machine', '?')}, {env.get('os', '?')}",
             f"- threads per runtime: {env.get('threads', 'not recorded')}",
             f"- TF32 (GPU fp32 matmuls and convolutions): {env.get('tf32', 'not applicable')}"]
    if command:
        lines.append(f"- command: `{command}`")
    precisions = sorted({section(case) for case in report.cases}, key=lambda p: (p != "fp32", p))
    for precision in precisions:
        if len(precisions) > 1:
            lines += ["", f"## {precision}"]
        lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        lines += ["| " + " | ".join(v.replace("|", "/") for v in row(case)) + " |"
                  for case in report.cases if section(case) == precision]
    lines.append("")
    if report.reference_ms_per_frame:
        lines.append("Reference speed (PyTorch eager fp32, CPU): "
                     + "; ".join(f"{k}: {v:.1f} ms/frame" for k, v in report.reference_ms_per_frame.items()) + ".")
        lines.append("")
    lines += ["Columns: `pha max` / `pha mean`: max and mean |alpha difference| over every pixel; `pha max out`, "
              "`fgr max out`: the same outside the 4x4 cells whose refinement selection differs; `pha SAD`: "
              "sum |difference| / 1000 per image; `8-bit`: share of pixels whose 8-bit alpha differs; `cells differ`: "
              "refined-cell map disagreements / cells; `edge`: of those, cells whose error lies at the selection "
              "boundary (top-k ties or threshold within rounding), which may legitimately flip; `unexpl.`: the "
              "others (must be 0); `ms/frame`: median time of one frame over the repeats after one warm-up call, "
              "`*` where only indicative (load average above 0.75 x cores, or repeats more than 1.5x apart).", ""]
    note = timing_note(report)
    if note:
        lines += [note, ""]
    details = [case for case in report.cases if case.error or case.violations or case.notes]
    if details:
        from .diagnosis import CODES
        lines += ["## Failures and notes", "",
                  "`likely cause [code]`: the diagnosis, found by re-running with the alternative that would explain "
                  f"the difference (codes: {', '.join(CODES)}; see `parity_tests/diagnosis.py`). `DRIFT`: a row "
                  "that shows how plain users run the file (the plugin's default precision), reported beside the "
                  "row that decides the verdict.", ""]
        for case in details:
            if case.error:
                lines.append(f"- **{case.label}** ERROR: {case.error}")
            if case.diagnosis:
                lines.append(f"- **{case.label}** FAIL, {diagnosis_line(case)}")
            for violation in case.violations if not case.advisory else ():
                lines.append(f"- **{case.label}** FAIL: {violation}")
            for note in case.notes:
                lines.append(f"- {case.label}: {note}")
        lines.append("")
    if report.planted:
        lines += ["## Planted bugs (each must fail)", "",
                  "In-process candidates with a realistic export bug planted into the reference weights or calls "
                  "(`parity_tests/planted.py`), checked exactly like files. Ratio: alpha max / mean |d| outside "
                  "flipped cells over the reference's own rounding error.", "",
                  "| planted bug | verdict | ratio max | ratio mean | diagnosis | expected | detail |",
                  "|---|---|---|---|---|---|---|"]
        for case in report.planted:
            ratio = case.limits.ratios(case.metrics).get("pha", (float("nan"),) * 2) if case.limits else (float("nan"),) * 2
            code = case.diagnosis["code"] if case.diagnosis else "-"
            detail = (case.diagnosis or {}).get("detail", case.error or "").replace("|", "/")
            lines.append(f"| {case.label[len('planted: '):]} | {case.verdict} | {ratio[0]:.3g} | {ratio[1]:.3g} | "
                         f"{code} | {case.expected_diagnosis} | {detail} |")
        lines.append("")
    lines += ["## Cases", "", "| case | format | runtime | knobs (source) | file |", "|---|---|---|---|---|"]
    for case in report.cases:
        knobs = knob_label(case.knobs) if case.knobs else "-"
        sources = sorted(set(case.knob_sources.values())) if case.knob_sources else []
        lines.append(f"| {case.label} | {case.format or '-'} | {case.runtime or '-'} | {knobs} ({', '.join(sources)}) "
                     f"| {case.what or os.path.basename(os.path.normpath(case.path))} |")
    lines += ["", "## Tolerances", "",
              "Each output may differ from the reference by at most `factor x noise + floor` (max and mean "
              "separately), where `noise` is the reference's own rounding error in the candidate's precision, "
              "measured in this run against the reference computed in float64 (see `converters/acceptance.py` "
              "and docs/acceptance.md). Per case, `parity.json` holds the measured noise, the limits and the ratios.",
              "", "| precision | max factor | mean factor | max floor | mean floor | pha mean (all pixels) | "
              "8-bit share | cells flipped | unexplained |", "|---|---|---|---|---|---|---|---|---|"]
    for rule in RULES.values():
        lines.append(f"| {rule.name} | {rule.max_factor:g} | {rule.mean_factor:g} | {rule.max_floor:g} | "
                     f"{rule.mean_floor:g} | {rule.pha_mean_all:g} | {rule.pha_share_8bit:.1%} | "
                     f"{rule.flipped_share:.1%} | {rule.unexplained} |")
    noise_rows = [case for case in report.cases if case.limits]
    if noise_rows:
        lines += ["", "Measured reference noise (alpha outside flipped cells, max / mean) and each case's ratio:", "",
                  "| case | precision | noise max | noise mean | ratio max | ratio mean |", "|---|---|---|---|---|---|"]
        for case in noise_rows:
            noise = case.limits.noise.get("pha", (0.0, 0.0))
            ratio = case.limits.ratios(case.metrics).get("pha", (float("nan"), float("nan")))
            lines.append(f"| {case.label} | {case.precision} | {scientific(noise[0])} | {scientific(noise[1])} | "
                         f"{ratio[0]:.1f} | {ratio[1]:.1f} |")
    lines.append("")
    return "\n".join(lines)


def write_atomic(path: str, write: Callable[[str], None]) -> str:
    """Call `write(temporary)` beside `path`, then rename it to `path`; nothing is left on failure."""
    from bgmv2 import atomic
    with atomic.writing(path) as temporary:
        write(str(temporary))
    return path


def write_text(path: str, text: str) -> str:
    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
    return write_atomic(path, write)


def write_json(report: Report, path: str, command: Optional[str] = None) -> str:
    data = report.as_dict()
    if command:
        data["command"] = command
    return write_text(path, json.dumps(data, indent=1, default=str) + "\n")


def write_markdown(report: Report, path: str, command: Optional[str] = None) -> str:
    return write_text(path, markdown(report, command))


# -- the picture ----------------------------------------------------------------------------------
PANEL_HEIGHT = 256


def heat(diff: np.ndarray) -> np.ndarray:
    """|d alpha| as RGB uint8 on a log scale: black 0 (or below 1e-7), blue, magenta, yellow, white 1e-1 and up."""
    level = np.clip((np.log10(np.maximum(diff, 1e-12)) + 7) / 6, 0, 1)
    level[diff <= 0] = 0
    stops = np.array([[0, 0, 0], [30, 60, 220], [210, 40, 200], [250, 220, 40], [255, 255, 255]], np.float64)
    position = level * (len(stops) - 1)
    low = np.minimum(np.floor(position).astype(int), len(stops) - 2)
    t = (position - low)[..., None]
    return (stops[low] * (1 - t) + stops[low + 1] * t).astype(np.uint8)


def outline_cells(image: np.ndarray, cells: np.ndarray, colour) -> None:
    """Draw the border of each marked 4x4 cell into `image` (H, W, 3) in place."""
    for y, x in zip(*np.nonzero(cells)):
        y0, x0 = 4 * y, 4 * x
        image[y0, x0:x0 + 4] = colour
        image[y0 + 3, x0:x0 + 4] = colour
        image[y0:y0 + 4, x0] = colour
        image[y0:y0 + 4, x0 + 3] = colour


def case_panels(case: CaseResult):
    """(picture, reference alpha, candidate alpha, |d alpha| heat with differing cells outlined) as PIL images."""
    from PIL import Image
    p = case.picture
    grey = lambda a: Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)).convert("RGB")  # noqa: E731
    src = Image.fromarray((np.clip(p["src"].transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8))
    diff = np.abs(p["reference"].astype(np.float64) - np.nan_to_num(p["candidate"], nan=1.0))
    coloured = heat(diff)
    if "edge" in p:
        outline_cells(coloured, p["edge"], (255, 255, 0))
        outline_cells(coloured, p["unexplained"], (255, 0, 0))
    return [src, grey(p["reference"]), grey(p["candidate"]), Image.fromarray(coloured)]


def write_png(report: Report, path: str) -> Optional[str]:
    """One row per candidate: picture, reference alpha, candidate alpha, |d alpha| (log colour scale) with
    cells whose selection differs outlined (yellow: at the selection boundary, red: unexplained)."""
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        return None
    cases = [case for case in report.cases if case.picture is not None]
    if not cases:
        return None
    rows = []
    for case in cases:
        panels = case_panels(case)
        h, w = panels[0].height, panels[0].width
        scale = PANEL_HEIGHT / h
        size = (max(1, round(w * scale)), PANEL_HEIGHT)
        panels = [panel.resize(size, Image.NEAREST) for panel in panels]
        strip = Image.new("RGB", (size[0] * len(panels) + 3 * (len(panels) - 1), PANEL_HEIGHT + 18), (32, 32, 32))
        for i, panel in enumerate(panels):
            strip.paste(panel, (i * (size[0] + 3), 18))
        diff = case.metrics.outputs.get("pha")
        text = f"{case.verdict}  {case.label}  ({case.precision}, {case.device})  max |d alpha| " \
               f"{scientific(diff.max_abs) if diff else '-'}  -  {case.picture['probe']}"
        ImageDraw.Draw(strip).text((4, 3), text, fill=(255, 120, 120) if not case.ok else (230, 230, 230))
        rows.append(strip)
    legend = ("columns: picture | reference alpha | candidate alpha | |d alpha|, log scale: black < 1e-7, blue 1e-5, "
              "magenta 1e-4, yellow 1e-2, white >= 1e-1; outlined cells: refinement selection differs "
              "(yellow at the boundary, red unexplained)")
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (max(width, 6 * len(legend) + 8), sum(r.height for r in rows) + 20), (16, 16, 16))
    ImageDraw.Draw(sheet).text((4, 4), legend, fill=(200, 200, 200))
    top = 20
    for strip in rows:
        sheet.paste(strip, (0, top))
        top += strip.height
    return write_atomic(path, lambda temporary: sheet.save(temporary, format="PNG"))
