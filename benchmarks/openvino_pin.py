"""Is there a way to pin OpenVINO's inference precision inside the IR, so that a plain
`core.compile_model("m.xml", "CPU")` (no configuration) runs it in f32? Each candidate way is written and run.

    python benchmarks/openvino_pin.py                       # the shipped model, one 1280x720 composite
    python benchmarks/openvino_pin.py --onnx m.onnx --size 512x288
    python benchmarks/openvino_pin.py --write docs/openvino-pin.md      # the page in docs/

The shipped MobileNetV2 (HD preset) is exported to ONNX (or `--onnx` is used), converted with
`openvino.convert_model` and saved as an fp32 IR; then, each compiled with no configuration:
- the IR as it is;
- `runtime_options` in the IR's rt_info: EXECUTION_MODE_HINT ACCURACY, INFERENCE_PRECISION_HINT f32,
  and both (OpenVINO reads such entries for some properties, e.g. DYNAMIC_QUANTIZATION_GROUP_SIZE);
- every layer marked `precise` (`<attribute name="precise" version="0"/>` in its rt_info, what
  `ov::disable_fp16_compression` serialises);
- a model compiled with INFERENCE_PRECISION_HINT f32, exported (`export_model`) and imported
  (`core.import_model`) without configuration.
Against the same IR compiled with INFERENCE_PRECISION_HINT f32: the precision the compiled model
reports, max |d alpha|, the share of 8-bit alpha values that differ, and the layer types still run
in bf16 (from the runtime model).
"""
import argparse
import collections
import io
import os
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "weights" / "bgmv2_mobilenetv2_synthetic_fp16.safetensors"


def write_variants(onnx_path: str, folder: str) -> dict:
    """name -> (IR path or blob bytes, how it was made)."""
    import openvino as ov
    from bgmv2.converters.openvino_core import core as the_core
    core = the_core()  # the process's one Core (converters/openvino_core.py)
    plain = os.path.join(folder, "plain.xml")
    ov.save_model(ov.convert_model(onnx_path), plain, compress_to_fp16=False)
    found = {"plain IR": plain}
    for label, options in (("runtime_options EXECUTION_MODE_HINT=ACCURACY", {"EXECUTION_MODE_HINT": "ACCURACY"}),
                           ("runtime_options INFERENCE_PRECISION_HINT=f32", {"INFERENCE_PRECISION_HINT": "f32"}),
                           ("runtime_options, both", {"EXECUTION_MODE_HINT": "ACCURACY",
                                                      "INFERENCE_PRECISION_HINT": "f32"})):
        model = core.read_model(plain)
        for key, value in options.items():
            model.set_rt_info(value, ["runtime_options", key])
        path = os.path.join(folder, f"options{len(found)}.xml")
        ov.save_model(model, path, compress_to_fp16=False)
        found[label] = path
    tree = ET.parse(plain)
    for layer in tree.getroot().iter("layer"):
        rt_info = layer.find("rt_info")
        if rt_info is None:
            rt_info = ET.Element("rt_info")
            layer.insert(1 if layer.find("data") is not None else 0, rt_info)
        ET.SubElement(rt_info, "attribute", {"name": "precise", "version": "0"})
    precise = os.path.join(folder, "precise.xml")
    tree.write(precise)
    shutil.copy(os.path.splitext(plain)[0] + ".bin", os.path.splitext(precise)[0] + ".bin")
    found["every layer marked precise"] = precise
    blob = core.compile_model(plain, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).export_model()
    found["f32-compiled model exported, then import_model"] = blob.getvalue() if isinstance(blob, io.BytesIO) else blob
    return found


def run(compiled, src, bgr) -> dict:
    result = compiled.create_infer_request().infer({"src": src, "bgr": bgr})
    return {port.get_any_name().split(":")[0]: np.asarray(value) for port, value in result.items()}


def bf16_layers(compiled) -> str:
    counts = collections.Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["runtimePrecision"].astype(str) == "bf16":
            counts[info["layerType"].astype(str)] += 1
    return ", ".join(f"{n} {kind}" for kind, n in counts.most_common()) or "none"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", help="an ONNX file of the model (default: the shipped model, exported here)")
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the composite (default 1280x720)")
    parser.add_argument("--write", metavar="PAGE", help="also write what is printed to this Markdown page "
                        "(docs/openvino-pin.md)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import shlex
    from bgmv2.scripts import page
    command = shlex.join(["python", "benchmarks/openvino_pin.py", *(argv if argv is not None else sys.argv[1:])])
    with page.recording(args.write, "OpenVINO: no pin inside the IR", command):
        measure(args)
    return 0


def measure(args) -> None:
    import openvino as ov
    from bgmv2.converters.probes import synthetic_probe
    width, height = (int(v) for v in args.size.lower().split("x"))
    probe = synthetic_probe(height, width, 1, seed=15)
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = args.onnx
        if not onnx_path:
            from bgmv2.converters import convert
            onnx_path = os.path.join(folder, "m.onnx")
            convert(str(SHIPPED), onnx_path, log=None)
        from bgmv2.converters.openvino_core import core as the_core
        core = the_core()
        variants = write_variants(onnx_path, folder)
        pinned = run(core.compile_model(variants["plain IR"], "CPU", {"INFERENCE_PRECISION_HINT": "f32"}),
                     probe.src, probe.bgr)
        print(INTRO)
        print(f"OpenVINO {ov.__version__.split('-')[0]}, CPU offers "
              f"{', '.join(core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))}; {probe.describe()}; "
              f"{'the shipped model' if not args.onnx else args.onnx}, each compiled with no configuration, "
              "against the same IR compiled with INFERENCE_PRECISION_HINT f32.\n")
        print("| compiled with no configuration | inference precision | max abs d alpha | 8-bit alpha values "
              "differing | layers still in bf16 |")
        print("|---|---|---|---|---|")
        for label, source in variants.items():
            compiled = core.import_model(source, "CPU") if isinstance(source, bytes) else \
                core.compile_model(source, "CPU")
            out = run(compiled, probe.src, probe.bgr)
            d = np.abs(out["pha"] - pinned["pha"])
            levels = [np.round(np.clip(o["pha"], 0, 1) * 255) for o in (out, pinned)]
            share = float((levels[0] != levels[1]).mean())
            used = str(compiled.get_property("INFERENCE_PRECISION_HINT")).replace("<Type: '", "").replace("'>", "")
            print(f"| {label} | {used} | {d.max():.2g} | {share:.2%} | {bf16_layers(compiled)} |")
        print(OUTRO)


INTRO = """A plain `core.compile_model("m.xml", "CPU")` (no configuration) runs an fp32 IR in bf16 on CPUs with AVX-512 BF16 or
AMX. Each way to pin f32 inside the file is written and run below: `runtime_options` in the IR's rt_info
(OpenVINO reads such entries for some properties, e.g. DYNAMIC_QUANTIZATION_GROUP_SIZE), every layer
marked `precise` (what `ov::disable_fp16_compression` serialises), and a model compiled with f32
exported and imported again. A row in bf16 with a non-zero alpha difference is a way that does not pin.
On a CPU without bf16 every row runs in f32 and the table shows nothing.
"""

OUTRO = """
The one line that pins f32 is configuration, where the model is compiled:
`core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})` (what `converters.load` does).
`bgmv2 parity` shows both: every `openvino:` candidate and IR gets a `[plugin default]` row beside the
pinned one, `DRIFT` where the plugin's default breaks the fp32 limits ([parity.md](parity.md), "OpenVINO
as plain users run it")."""


if __name__ == "__main__":
    sys.exit(main())
