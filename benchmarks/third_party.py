"""Third-party converters on the project's ONNX files, each result checked with `bgmv2 parity`'s rule.

    python benchmarks/third_party.py --work /tmp/deploy-work     # writes benchmarks/third_party.json

Converts the shipped MobileNetV2 to ONNX at opset 18 (the default) and 15 (`--opset 15`), then:
- onnx2torch (1.5.x): `onnx2torch.convert(path)` -> a torch.fx GraphModule. It holds Python-side shape
  code that neither torch.export, torch.jit.script nor a size-independent torch.jit.trace can save, so
  the module itself is wrapped as a runner and checked by the parity engine (`check_candidate`, the rule
  `bgmv2 parity` applies) on the built-in probes.
- onnx2tf (1.29.x): `onnx2tf -i m.onnx -o out` as its command runs, on a copy (it rewrites its input),
  with and without fixed input shapes (`-ois`); what it writes (SavedModel, TFLite) is checked with
  `bgmv2 parity --candidate ... --size 512x288` when it is written. With numpy 2 (this project's) its
  TopK converter fails on `int()` of K (a one-element array; numpy 1.26, its pin, allowed it); a second
  run patches that one call (`int_of_one`) to see how far the rest goes, and says so.
Results go to a JSON file that benchmarks/deployment.py puts into docs/deployment.md.
"""
import argparse
import builtins
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SHIPPED = ROOT / "weights" / "bgmv2_mobilenetv2_synthetic_fp16.safetensors"
STATIC = "1,3,288,512"  # onnx2tf -ois: batch 1, 512x288 (WIDTHxHEIGHT), the parity probe below
SIZE = "512x288"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(work: Path, name: str, opset: int) -> Path:
    from bgmv2 import converters
    dest = work / name
    if not dest.exists():
        converters.convert(str(SHIPPED), str(dest), log=None, options={"opset": opset} if opset != 18 else None)
    return dest


def last_error(text: str) -> str:
    """The last exception line of a log (`XxxError: ...`), shortened."""
    lines = [line.strip() for line in text.splitlines() if "Error" in line.split(":")[0] and ":" in line]
    return (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else "?")[:220].replace("|", "/")


def versions() -> Dict[str, str]:
    from importlib import metadata
    found = {}
    for name in ("onnx2torch", "onnx2tf", "onnx", "onnxruntime", "torch", "tensorflow-cpu", "numpy", "onnxsim"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


# -- onnx2torch ---------------------------------------------------------------------------------------
def declare_torchvision_ops() -> None:
    """onnx2torch imports torchvision; PyPI's torchvision wheel is built against CUDA torch and cannot
    load its operators next to the CPU torch, so its import fails registering fake kernels for
    `torchvision::nms` / `qnms`. Declaring the two schemas lets it import (they are never called here)."""
    import torch
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        declare_torchvision_ops.library = library  # kept alive


def parity_of(run, label: str, probes=None) -> str:
    """The parity engine's verdict (`check_candidate`, the rule of `bgmv2 parity`) for `run(src, bgr)`:
    NCHW float32 in, the six outputs in contract order out."""
    from bgmv2.converters.formats import OUTPUTS_REFINE
    from bgmv2.converters.runner import Runner
    from bgmv2.parity_tests.candidates import Candidate, Reference
    from bgmv2.parity_tests.engine import check_candidate
    from bgmv2.converters.probes import default_probes
    runner = Runner(run, label, label, OUTPUTS_REFINE, "NCHW", {}, "fp32", None, any_size=True)
    reference = Reference(str(SHIPPED))
    knobs = dict(reference.recorded)
    candidate = Candidate(label, label, label, "file", "cpu", label, "fp32", runner, {}, "none", False)
    result = check_candidate(reference, candidate, knobs, {k: "reference" for k in knobs}, probes or default_probes())
    return verdict_text(result)


def parity_of_module(module, label: str) -> str:
    """An in-memory torch module (NCHW in, the six outputs out), checked by the parity engine."""
    import torch

    def run(src, bgr):
        with torch.inference_mode():
            return module(torch.from_numpy(src), torch.from_numpy(bgr))
    return parity_of(run, label)


def as_nchw(value) -> np.ndarray:
    """onnx2tf leaves some outputs NCHW and turns others NHWC: channels (1 or 3) second means NCHW."""
    value = np.asarray(value)
    return value if value.shape[1] in (1, 3) else value.transpose(0, 3, 1, 2)


def parity_of_onnx2tf(out: Path) -> List[str]:
    """onnx2tf's SavedModel and float32 TFLite with each output's layout fixed by hand (`as_nchw`),
    by the parity engine at the file's fixed size: are the numbers right, whatever the layouts?"""
    import tensorflow as tf
    from bgmv2.converters.formats import OUTPUTS_REFINE
    from bgmv2.converters.probes import synthetic_probe
    height, width = (int(v) for v in STATIC.split(",")[2:])
    probes = [synthetic_probe(height, width, 1, seed=15)]
    verdicts = []
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    # onnx2tf's command names the SavedModel's outputs output_0 ... output_5 (in the ONNX order)
    names = OUTPUTS_REFINE if "pha" in serve.structured_outputs else [f"output_{i}" for i in range(6)]

    def saved(src, bgr):
        got = serve(src=tf.constant(src.transpose(0, 2, 3, 1)), bgr=tf.constant(bgr.transpose(0, 2, 3, 1)))
        return [as_nchw(got[n].numpy()) for n in names]
    verdicts.append(f"SavedModel, layouts fixed by hand: {parity_of(saved, 'onnx2tf SavedModel', probes)}")
    for path in sorted(out.glob("*_float32.tflite")):
        interpreter = tf.lite.Interpreter(model_path=str(path))
        runner = interpreter.get_signature_runner()

        def lite(src, bgr, runner=runner):
            got = runner(src=src.transpose(0, 2, 3, 1), bgr=bgr.transpose(0, 2, 3, 1))
            return [as_nchw(got[n]) for n in OUTPUTS_REFINE]
        verdicts.append(f"{path.name}, layouts fixed by hand: {parity_of(lite, path.name, probes)}")
    return verdicts


def verdict_text(result) -> str:
    if result.error:
        return f"ERROR: {result.error[:160]}"
    pha = result.metrics.outputs.get("pha")
    detail = f"max abs d alpha {pha.max_abs:.1e}" if pha is not None else ""
    if result.ok:
        return f"ok ({detail})" if detail else "ok"
    return f"FAIL: {'; '.join(result.violations)[:200]}"


def onnx2torch_row(path: Path, label: str) -> Dict[str, str]:
    declare_torchvision_ops()
    import onnx2torch
    started = time.perf_counter()
    try:
        module = onnx2torch.convert(str(path)).eval()
    except Exception as error:  # noqa: BLE001 - the converter's refusal is the result
        return {"result": f"fails: {type(error).__name__}: {str(error)[:180]}".replace("|", "/"), "parity": "-"}
    seconds = time.perf_counter() - started
    return {"result": f"converts ({seconds:.0f} s) to a torch.fx GraphModule", "parity": parity_of_module(module, label)}


# -- onnx2tf ------------------------------------------------------------------------------------------
SHIM = """
import builtins, sys, numpy as np
import onnx2tf.ops.TopK as topk
class IntType(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, builtins.int)
class int_of_one(builtins.int, metaclass=IntType):  # int() of a one-element array: an error in numpy 2,
    def __new__(cls, x=0, *args):                    # allowed by numpy 1.26 (onnx2tf's pin)
        return builtins.int(np.asarray(x).reshape(-1)[0] if isinstance(x, np.ndarray) else x, *args)
topk.int = int_of_one
from onnx2tf.onnx2tf import main
sys.argv[0] = "onnx2tf"
sys.exit(main())
"""


def onnx2tf_row(source: Path, folder: Path, static: bool, shim: bool) -> Dict[str, str]:
    """One onnx2tf run on a copy of `source` in `folder` (its own command line, or the shimmed one)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    copy = folder / "m.onnx"
    shutil.copyfile(source, copy)
    before = sha256(copy)
    calibration = "calibration_image_sample_data_20x128x128x3_float32.npy"
    write_calibration(folder / calibration)  # onnx2tf downloads this sample from GitHub unless it is in cwd
    arguments = ["-i", "m.onnx", "-o", "out"] + (["-ois", f"src:{STATIC}", f"bgr:{STATIC}"] if static else [])
    command = [sys.executable, "-c", SHIM] + arguments if shim else [shutil.which("onnx2tf") or "onnx2tf"] + arguments
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=env, timeout=3600)
    seconds = time.perf_counter() - started
    (folder / "log.txt").write_text(done.stdout + done.stderr)
    changed = " (it rewrote its input file m.onnx)" if sha256(copy) != before else ""
    if done.returncode != 0:
        return {"result": f"fails ({seconds:.0f} s): {last_error(done.stdout + done.stderr)}{changed}", "parity": "-"}
    made = sorted(p.name for p in (folder / "out").iterdir())
    return {"result": f"converts ({seconds:.0f} s): {', '.join(made)}{changed}", "parity": onnx2tf_verdicts(folder)}


def onnx2tf_verdicts(folder: Path) -> str:
    """`bgmv2 parity` on what onnx2tf wrote, then the same files with their layouts fixed by hand."""
    verdicts = [f"`bgmv2 parity --candidate {c.name}`: {parity_cli(c)}"
                for c in [folder / "out"] + sorted((folder / "out").glob("*_float32.tflite"))]
    try:
        verdicts += parity_of_onnx2tf(folder / "out")
    except Exception as error:  # noqa: BLE001 - a file the runtime refuses is a result
        verdicts.append(f"running it: {type(error).__name__}: {str(error)[:160]}")
    return "; ".join(verdicts)


def write_calibration(path: Path) -> None:
    from bgmv2.converters.probes import synthetic_probe
    frames = [synthetic_probe(128, 128, 1, seed=s).src[0].transpose(1, 2, 0) for s in range(20)]
    np.save(path, np.stack(frames).astype(np.float32))


def parity_cli(candidate: Path) -> str:
    """`bgmv2 parity --reference SHIPPED --candidate FILE --size 512x288` (its verdict line)."""
    bgmv2 = shutil.which("bgmv2", path=str(Path(sys.executable).parent)) or "bgmv2"
    done = subprocess.run([bgmv2, "parity", "--reference", str(SHIPPED), "--candidate", str(candidate), "--size", SIZE,
                           "--repeat", "0", "--threads", "1", "--out", str(candidate.parent / "parity-report")],
                          capture_output=True, text=True, timeout=3600)
    text = (done.stdout + done.stderr).strip()
    summary = [line for line in text.splitlines() if "candidates within tolerance" in line]
    reasons = [line.split(":", 1)[1].strip() for line in text.splitlines()
               if line.startswith(("FAIL  ", "ERROR  ")) and ":" in line]
    found = (summary[-1].split("->")[-1].strip() if summary else f"exit {done.returncode}")
    return (found + (f" ({'; '.join(reasons[:3])})" if reasons else ""))[:400].replace("|", "/")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="folder for the ONNX files (shared with deployment.py)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "third_party.json"))
    parser.add_argument("--only", choices=("onnx2torch", "onnx2tf"), help="run one converter")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the onnx2tf runs already in --work (their results.json), check them again")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    files = {18: build(work, "m_static.onnx", 18), 15: build(work, "m_static_15.onnx", 15)}
    results = []
    for opset, path in files.items():
        given = f"opset {opset}" + (" (default)" if opset == 18 else " (`--opset 15`)")
        if args.only in (None, "onnx2torch"):
            print(f"onnx2torch on {path.name} ...", file=sys.stderr, flush=True)
            results.append({"tool": "onnx2torch", "input": given, **onnx2torch_row(path, path.name)})
        if args.only in (None, "onnx2tf"):
            for static, shim in ((False, False), (True, False), (True, True)):
                how = ("`-ois` " + STATIC if static else "dynamic shapes") + (", TopK int() patched" if shim else "")
                print(f"onnx2tf on {path.name}, {how} ...", file=sys.stderr, flush=True)
                folder = work / f"onnx2tf-{opset}-{'static' if static else 'dynamic'}{'-shim' if shim else ''}"
                kept = folder / "result.json"
                if args.reuse and kept.exists():
                    row = json.loads(kept.read_text())
                    if (folder / "out" / "saved_model.pb").exists():
                        row["parity"] = onnx2tf_verdicts(folder)
                else:
                    row = onnx2tf_row(path, folder, static, shim)
                kept.write_text(json.dumps(row))
                results.append({"tool": f"onnx2tf ({how})", "input": given, **row})
    found = {"stamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "command": "python benchmarks/third_party.py " + " ".join(argv if argv is not None else sys.argv[1:]),
             "versions": versions(), "results": results, "notes": NOTES}
    partial = Path(args.out).with_name(f".partial-{os.getpid()}-{Path(args.out).name}")
    partial.write_text(json.dumps(found, indent=1) + "\n")
    os.replace(partial, args.out)
    print(json.dumps(found, indent=1))
    return 0


NOTES = [
    "onnx2torch imports torchvision; the PyPI torchvision wheel is built for CUDA torch and fails to import next "
    "to the CPU torch, so the script declares the two operator schemas it registers (`declare_torchvision_ops`); "
    "with torchvision's CPU wheel nothing is needed.",
    "onnx2tf downloads a calibration sample from GitHub unless `calibration_image_sample_data_20x128x128x3_float32.npy` "
    "is in its working folder; the script writes one from the synthetic probes (offline machines need it).",
    "onnx2tf rewrites its input file (its onnxsim pass saves over it): give it a copy.",
]


if __name__ == "__main__":
    sys.exit(main())
