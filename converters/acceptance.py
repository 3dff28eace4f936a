"""The one acceptance rule ("same alpha"): how far a candidate may be from the reference, with limits that
follow the arithmetic, measured in each run. `bgmv2 parity`, `convert`'s check (a file is kept only if
parity would pass it) and the fast runtime (on the frames it is trusted with) all judge with `judge`.

The rule. For every probe and knob set, the reference model is run three ways on the CPU: float32
(the reference itself), float64 (the "exact" result) and, for fp16 / bf16 candidates, in that
precision. Its own rounding error, `noise`, is |low - float64| per output (alpha and foreground
outside the 4x4 cells whose refinement selection flips between the two runs; the coarse outputs
`pha_sm`, `fgr_sm`, `err_sm` everywhere), as a max and a mean. A candidate of that precision is
compared with the float32 reference and may differ, per output, by at most

    limit = factor * noise + floor          (separately for the max and for the mean)

`factor` allows a runtime other rounding than PyTorch's (other kernels, summation orders, BatchNorm
folded, Winograd / oneDNN convolutions); `floor` keeps a limit above zero where the reference's noise
happens to be 0 (saturated alpha). Besides: the share of pixels whose 8-bit alpha differs, the share
of refined cells whose selection differs, and no flip away from the selection boundary (`unexplained`
0); a flip is explained when the reference's cell error lies within `band` = 2 x the `err_sm` max
limit of the k-th largest error, of the threshold, or of 0 (`prevent_oversampling`).

Factors, measured (MEASUREMENTS below; `python -m bgmv2.parity_tests.calibrate_factors --faithful --slow`
reruns it): the ratio candidate |d| / reference noise, for faithful files and for planted bugs, over
the shipped MobileNetV2 and calibrated ResNet-50 weights on the default probes. Each factor sits
between the largest faithful ratio and the smallest bug ratio with margin both ways.
"""
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

COMPARED = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm")
FULL_RESOLUTION = ("pha", "fgr")

# What the factors rest on: ratio = candidate |d| / reference noise for alpha outside flipped cells
# (max, mean), default probes, CPU, 2026-11-27, torch 2.13, onnxruntime 1.32, TensorFlow 2.21
# (`python -m bgmv2.parity_tests.calibrate_factors --faithful --slow`; the machine was shared, which changes
# times, not these ratios).
MEASUREMENTS = """
reference noise, MobileNetV2 (trained), alpha outside flipped cells:
  fp32 vs float64: max 5.0e-6, mean 4.1e-8;  fp16: max 1.8e-2, mean 1.1e-4;  bf16: max 1.0e-1, mean 8.8e-4
faithful files (ratio max / mean; worst coarse-output mean ratio):
  pth, torchscript, torchscript-upstream           0 / 0          (bit-identical)
  onnx-legacy-opset12 (upstream export_onnx.py)    1.1 / 1.0     coarse 1.1
  onnx-static                                      1.1 / 0.8     coarse 1.1
  keras, savedmodel (TensorFlow, oneDNN)           1.1 / 0.8     coarse 1.4
  onnx-tf2onnx                                     1.0 / 0.8     coarse 1.2
  ResNet-50 (calibrated) Keras                     0.4 / 0.7     coarse 0.7
  fp16: eager-fp16 1.0 / 1.0, onnx-static-fp16 1.3 / 1.4, keras-mixed_float16 0.9 / 0.8
planted bugs (smallest ratios; every other planted bug is 1,000x or more, or fails on cells or shapes):
  MobileNetV2 5% noise on one ASPP 3x3 weight tensor   97 / 73      coarse 121
  MobileNetV2 2% noise on the same tensor (seed 1)    137 / 44      coarse 101
  ResNet-50 2% / 5% noise on the same tensor          206 / 440,  486 / 1085
fp32 factors 30 (max) and 20 (mean): 2.2x below the weakest bug's mean ratio (44) and 3.2x below the
ASPP 5% bug's max ratio (97); 14x above the worst faithful mean ratio (1.4), and 2x above the 3-9x
that TensorFlow's oneDNN 3x3 convolutions can add on other inputs (docs/tensorflow.md).
fp16 / bf16 factor 5: 3.3x above the worst faithful fp16 ratio (1.5).
"""


@dataclass(frozen=True)
class Rule:
    """The tolerance rule of one precision: factors on the measured noise, floors, and fixed shares."""
    name: str
    max_factor: float  # max |d| <= max_factor * noise max + max_floor, per output
    mean_factor: float  # mean |d| <= mean_factor * noise mean + mean_floor, per output
    max_floor: float
    mean_floor: float
    pha_mean_all: float  # mean |d alpha| over every pixel, flipped cells included (fixed)
    pha_share_8bit: float  # share of pixels whose 8-bit alpha differs, flipped cells included (fixed)
    flipped_share: float  # share of cells whose selection differs (all explained)
    unexplained: int = 0

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)

    def limits(self, noise) -> "Limits":
        """Per-output limits from `noise` (a `ParityMetrics` of the reference's low-precision run vs float64)."""
        per_output: Dict[str, Tuple[float, float]] = {}
        measured: Dict[str, Tuple[float, float]] = {}
        for name in COMPARED:
            stats = noise.outside.get(name) if name in FULL_RESOLUTION else None
            stats = stats or noise.outputs.get(name)
            if stats is None:
                continue
            measured[name] = (stats.max_abs, stats.mean_abs)
            per_output[name] = (self.max_factor * stats.max_abs + self.max_floor,
                                self.mean_factor * stats.mean_abs + self.mean_floor)
        return Limits(self, per_output, measured)


@dataclass
class Limits:
    """The limits of one case: the rule, the measured noise and what they give per output."""
    rule: Rule
    per_output: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # name -> (max, mean)
    noise: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # name -> (max, mean) measured

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def band(self) -> float:
        """How far from the selection boundary a cell may flip: twice the `err_sm` max limit."""
        if "err_sm" in self.per_output:
            return 2 * self.per_output["err_sm"][0]
        return 2 * self.rule.max_floor

    def as_dict(self) -> Dict[str, object]:
        return {"rule": self.rule.as_dict(), "band": self.band,
                "limits": {k: {"max": v[0], "mean": v[1]} for k, v in self.per_output.items()},
                "reference_noise": {k: {"max": v[0], "mean": v[1]} for k, v in self.noise.items()}}

    def ratios(self, metrics) -> Dict[str, Tuple[float, float]]:
        """Candidate |d| / reference noise per output (max, mean): how many times the reference's own error."""
        found = {}
        for name, (noise_max, noise_mean) in self.noise.items():
            stats = candidate_stats(metrics, name)
            if stats is not None:
                found[name] = (ratio(stats.max_abs, noise_max), ratio(stats.mean_abs, noise_mean))
        return found

    def violations(self, metrics) -> List[str]:
        found = []
        if metrics.shape_mismatch:
            found += [f"{name} shape {text}" for name, text in metrics.shape_mismatch.items()]
        if "pha" in metrics.missing or "pha" not in metrics.outputs:
            found.append("no alpha (pha) output to compare")
            return found
        for name, stats in metrics.outputs.items():
            if stats.nonfinite:
                found.append(f"{name}: {stats.nonfinite} values are NaN or infinite")

        def over(what: str, value: float, limit: float, fmt: str = ".2e", why: str = ""):
            if not value <= limit:
                found.append(f"{what} {value:{fmt}} > {limit:{fmt}}{why}")

        for name, (max_limit, mean_limit) in self.per_output.items():
            stats = candidate_stats(metrics, name)
            if stats is None:
                continue
            where = " outside flipped cells" if name in FULL_RESOLUTION else ""
            noise_max, noise_mean = self.noise[name]
            over(f"{name} max |d|{where}", stats.max_abs, max_limit,
                 why=f" ({ratio(stats.max_abs, noise_max):.0f}x the reference's own {self.name} error {noise_max:.1e})")
            over(f"{name} mean |d|{where}", stats.mean_abs, mean_limit,
                 why=f" ({ratio(stats.mean_abs, noise_mean):.0f}x the reference's own {self.name} error {noise_mean:.1e})")
        pha = metrics.outputs["pha"]
        over("pha mean |d| (all pixels)", pha.mean_abs, self.rule.pha_mean_all)
        over("pha 8-bit differs share", pha.share_8bit, self.rule.pha_share_8bit, ".3%")
        cells = metrics.cells
        if cells is not None:
            if cells.unexplained > self.rule.unexplained:
                found.append(f"{cells.unexplained} refined cells differ away from the selection boundary "
                             f"(allowed {self.rule.unexplained}): other knobs (threshold, k) or selection rule")
            over("share of cells whose selection differs", cells.flipped_share, self.rule.flipped_share, ".3%")
        return found


def candidate_stats(metrics, name: str):
    if name in FULL_RESOLUTION and name in metrics.outside:
        return metrics.outside[name]
    return metrics.outputs.get(name)


def ratio(value: float, noise: float) -> float:
    if noise > 0:
        return value / noise
    return 0.0 if value == 0 else float("inf")


RULES: Dict[str, Rule] = {
    "fp32": Rule("fp32", max_factor=30, mean_factor=20, max_floor=1e-6, mean_floor=1e-8,
                 pha_mean_all=1e-5, pha_share_8bit=5e-3, flipped_share=5e-3),
    "fp16": Rule("fp16", max_factor=5, mean_factor=5, max_floor=1e-3, mean_floor=1e-5,
                 pha_mean_all=2e-3, pha_share_8bit=1e-1, flipped_share=5e-2),
    "bf16": Rule("bf16", max_factor=5, mean_factor=5, max_floor=8e-3, mean_floor=8e-5,
                 pha_mean_all=1e-2, pha_share_8bit=3e-1, flipped_share=1e-1),
}


def rule_for(precision: str) -> Rule:
    """The rule of a precision (fp32, fp16, bf16); ValueError naming them for any other."""
    if precision not in RULES:
        raise ValueError(f"precision {precision!r} has no acceptance rule; choose one of {', '.join(RULES)}")
    return RULES[precision]


def fixed_limits(precision: str, noise: Optional[object] = None) -> Limits:
    """Limits of `precision` from a noise measurement (None: no noise, the floors only)."""
    from .agreement import ParityMetrics
    return rule_for(precision).limits(noise if noise is not None else ParityMetrics())


LEVELS = 2  # the figure users understand: the share of 8-bit alpha values more than this many levels off


@dataclass
class Verdict:
    """What `judge` found: pass or fail, why (violations), and the measurements."""
    ok: bool
    precision: str
    violations: List[str]
    metrics: object  # agreement.ParityMetrics
    limits: Limits
    share_over_levels: float  # of 8-bit alpha values more than LEVELS off, over every probe

    def text(self) -> str:
        figure = f"8-bit alpha off by > {LEVELS} levels {100 * self.share_over_levels:.3f}%"
        if self.ok:
            return f"same alpha by the {self.precision} rule ({figure})"
        return f"differs by the {self.precision} rule: {'; '.join(self.violations[:4])} ({figure})"


def judge(reference, run, knobs: Dict[str, object], probes, precision: str = "fp32",
          on_probe=None, expected: str = "fp32") -> Verdict:
    """Run `run(src, bgr) -> named outputs` and `reference` (`converters.reference.Reference`) at `knobs`
    on every probe and judge the candidate by the rule of `precision`. `on_probe(probe, expected, got,
    classes)` sees each probe's outputs (parity draws its difference pictures from them). `expected`:
    the precision the reference computes in (float32, as parity; `convert` compares a low-precision
    source file with its own weights computing in that precision). Exceptions from `run` propagate:
    the caller decides what a candidate that cannot run is."""
    from .agreement import ParityMetrics
    rule = rule_for(precision)
    limits = rule.limits(reference.noise(knobs, probes, rule.name))
    metrics = ParityMetrics()
    for probe in probes:
        want = reference.run_as(knobs, probe, expected)
        got = run(probe.src, probe.bgr)
        classes = metrics.add(want, got, knobs, limits.band)
        if on_probe is not None:
            on_probe(probe, want, got, classes)
    violations = limits.violations(metrics)
    pha = metrics.outputs.get("pha")
    share = pha.share_over(LEVELS) if pha is not None else 1.0
    return Verdict(not violations, rule.name, violations, metrics, limits, share)
