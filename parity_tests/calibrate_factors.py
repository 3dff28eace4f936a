"""Measure what the tolerance factors rest on: the ratio candidate |d| / reference noise for faithful
files and for planted bugs, and each planted bug's diagnosis.

    python -m bgmv2.parity_tests.calibrate_factors [--faithful] [--slow] [--work DIR]

`--faithful` also converts the shipped MobileNetV2 to the fast matrix formats (ONNX, TorchScript,
Keras, SavedModel, tf2onnx where installed; a few minutes) and checks each. Prints one line per
candidate: its verdict, diagnosis, and max / mean ratios of alpha outside flipped cells.
"""
import argparse
import os
import tempfile


def line(result) -> str:
    ratios = result.limits.ratios(result.metrics) if result.limits else {}
    pha = ratios.get("pha", (float("nan"), float("nan")))
    coarse = max((ratios[n][1] for n in ("pha_sm", "fgr_sm", "err_sm") if n in ratios), default=float("nan"))
    code = result.diagnosis["code"] if result.diagnosis else "-"
    return (f"{result.label[:44]:44s} {result.verdict:5s} {code:17s} pha max x{pha[0]:9.1f} mean x{pha[1]:9.1f}"
            f"  coarse mean x{coarse:9.1f}  " + (result.error or (result.diagnosis or {}).get("detail", ""))[:90])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faithful", action="store_true")
    parser.add_argument("--slow", action="store_true")
    parser.add_argument("--work")
    parser.add_argument("--formats", nargs="+", default=["pth", "torchscript", "torchscript-upstream",
                                                          "onnx-legacy-opset12", "onnx-static", "keras", "savedmodel",
                                                          "onnx-tf2onnx", "eager-fp16", "onnx-static-fp16",
                                                          "keras-mixed_float16"])
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from .candidates import Reference, load_candidate
    from bgmv2.weights import load_registry
    from .engine import check_candidate
    from .matrix import BY_LABEL, Builder, default_knobs, missing_modules
    from .planted import default_set, slow_set
    from bgmv2.converters.probes import default_probes
    SHIPPED = str(load_registry().default("mobilenetv2", "refine").shipped_path)
    probes = default_probes()
    knobs = default_knobs()
    reference = Reference(SHIPPED)
    sources = {k: "flag" for k in knobs}
    for planted in default_set() + (slow_set() if args.slow else []):
        used = dict(knobs, **(planted.knobs or {}))
        candidate = planted.make(reference.spec, used)
        result = check_candidate(reference, candidate, used, sources, probes)
        ok = result.diagnosis and result.diagnosis["code"] == planted.expected
        print(f"planted {'  ' if ok else '!!'} " + line(result), flush=True)
    if args.faithful:
        folder = args.work or tempfile.mkdtemp(prefix="bgmv2-calibrate-")
        labels = [label for label in args.formats if not missing_modules(BY_LABEL[label])]
        builder = Builder(SHIPPED, folder, knobs, workers=1)
        builder.submit(labels)
        try:
            for label in labels:
                entry = BY_LABEL[label]
                flags = dict(knobs) if entry.knobs_at_load else dict(knobs, refine_mode=entry.mode)
                candidate, used, where = load_candidate(builder.path(label), reference, flags, "cpu", entry.run_as,
                                                        label, threads=1)
                print("faithful   " + line(check_candidate(reference, candidate, used, where, probes)), flush=True)
        finally:
            builder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
