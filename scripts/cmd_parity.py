"""`bgmv2 parity`: check model files against a reference, on pictures or built-in probes, on a device.

    bgmv2 parity --reference model.pth --candidate model.onnx --candidate model_savedmodel
    bgmv2 parity --zoo bgmv2-mobilenetv2-synthetic              # the whole format matrix of a zoo entry

Prints a table (accuracy and ms per frame side by side), writes parity.json, parity.md and parity.png
(where alpha differs) into --out, and exits 1 when a candidate breaks its precision's tolerance.
"""
import argparse
import os
import shlex
import sys

from bgmv2.scripts.arg_types import int_at_least
from bgmv2.scripts.knob_options import KNOBS, add_knob_arguments, check_knob_values, given_knobs

EXAMPLES = """examples:
  bgmv2 parity --reference pytorch_mobilenetv2.pth --candidate mobilenetv2.onnx --candidate mobilenetv2_savedmodel
  bgmv2 parity --reference pytorch_resnet50.pth --candidate torchscript_resnet50_fp32.pth --src me.jpg --bgr bg.jpg
  bgmv2 parity --reference model.pth --candidate model_fp16.onnx --device cuda
  bgmv2 parity --reference model.pth --candidate browser:model.onnx     (onnxruntime-web in headless Chromium)
  bgmv2 parity --zoo bgmv2-mobilenetv2-synthetic --precision fp32 --precision fp16
The reference runs in PyTorch eager, fp32, on the CPU, with the knobs the candidate records (bgmv2
metadata, TorchScript attributes), else the model's defaults; --refine-* / --backbone-scale flags
override both. Candidates: any format `bgmv2 convert` reads, including upstream's own exports."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES
    what = parser.add_argument_group("what to compare")
    what.add_argument("--reference", metavar="FILE", help="the reference model (a file or a zoo name)")
    from bgmv2.converters import formats
    what.add_argument("--candidate", action="append", default=[], metavar="FILE",
                      help="a model file to check (repeatable); RUNTIME[-PRECISION]:FILE runs it with a runtime of "
                           f"the registry ({', '.join(formats.runtime_names())}), e.g. openvino:m.onnx, "
                           "openvino-bf16:m.xml, fast:m.pth, torch-fp16:m.pth, browser:m.onnx; also keras-eager:, "
                           "keras-mixed_float16: (Keras weights), browser-webgpu: (WebGPU in Chromium)")
    what.add_argument("--zoo", metavar="NAME", help="check a zoo entry: convert it to every format of the matrix "
                                                    "and check each file (the reference is the entry's file)")
    what.add_argument("--formats", nargs="+", metavar="LABEL",
                      help="with --zoo: matrix entries to check (default: the fast ones; `all` for every one)")
    what.add_argument("--precision", action="append", choices=("fp32", "fp16"),
                      help="with --zoo: precisions to check (repeatable; default both)")
    what.add_argument("--work", metavar="DIR", help="with --zoo: keep the converted files in DIR (default: a "
                                                    "temporary folder, removed afterwards)")
    inputs = parser.add_argument_group("inputs (default: built-in synthetic composites, 192x256 x2 and 224x224)")
    inputs.add_argument("--src", action="append", default=[], metavar="PICTURE", help="your picture (repeatable)")
    inputs.add_argument("--bgr", action="append", default=[], metavar="PICTURE",
                        help="its background shot, same size (one per --src, in order)")
    inputs.add_argument("--max-side", type=int_at_least(8), default=1280, help="shrink pictures larger than this (default 1280)")
    inputs.add_argument("--size", action="append", default=[], metavar="WIDTHxHEIGHT",
                        help="built-in probe size, multiples of 4 (repeatable), e.g. 1280x720")
    inputs.add_argument("--batch", type=int_at_least(1), default=1, help="images per built-in probe with --size (default 1)")
    run = parser.add_argument_group("how to run")
    run.add_argument("--device", default="cpu", help="device of the candidates: cpu, cuda, cuda:1 (the reference "
                                                     "always runs on the CPU in fp32)")
    run.add_argument("--repeat", type=int, help="timed runs per candidate for ms/frame (0: no timing; default 3, "
                                                "1 on a busy machine, where the figures are only indicative)")
    run.add_argument("--threads", type=int_at_least(1), help="CPU threads of every runtime (default: 1 on 2 cores or "
                                                             "fewer and on a busy machine, else the runtimes' own)")
    add_knob_arguments(parser, "model knobs (override what the files record)")
    out = parser.add_argument_group("reports")
    out.add_argument("--out", default="parity-report", metavar="DIR",
                     help="folder for parity.json, parity.md and parity.png (default ./parity-report)")
    out.add_argument("--markdown", metavar="FILE", help="also write the Markdown report to FILE")
    out.add_argument("--title", default="Parity", help="title of the reports")
    out.add_argument("--quiet", action="store_true", help="print only the table and errors")
    out.add_argument("--planted", action="store_true",
                     help="also check the built-in planted export bugs (each must fail, with its diagnosis): "
                          "shows the check can see them on these inputs")


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (for the reports)."""
    if len(sys.argv) > 1 and sys.argv[1] == "parity":
        return "bgmv2 " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    parts = ["bgmv2", "parity"]
    for flag, value in (("--reference", args.reference), ("--zoo", args.zoo), ("--work", args.work)):
        if value:
            parts += [flag, value]
    for candidate in args.candidate:
        parts += ["--candidate", candidate]
    if args.formats:
        parts += ["--formats", *args.formats]
    for precision in args.precision or []:
        parts += ["--precision", precision]
    for src, bgr in zip(args.src, args.bgr):
        parts += ["--src", src, "--bgr", bgr]
    for size in args.size:
        parts += ["--size", size]
    for name in KNOBS:
        if getattr(args, name) is not None:
            parts += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    if args.device != "cpu":
        parts += ["--device", args.device]
    if args.repeat is not None:
        parts += ["--repeat", str(args.repeat)]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.planted:
        parts.append("--planted")
    parts += ["--out", args.out]
    if args.markdown:
        parts += ["--markdown", args.markdown]
    return " ".join(shlex.quote(p) for p in parts)


def probes_of(args: argparse.Namespace):
    from bgmv2.parity_tests.candidates import ParityError
    from bgmv2.converters.probes import default_probes, synthetic_probe
    from bgmv2.parity_tests.probes import picture_probe
    from bgmv2.scripts.arg_types import parse_size
    if len(args.src) != len(args.bgr):
        raise ParityError(f"{len(args.src)} --src but {len(args.bgr)} --bgr: give one background shot per picture")
    probes = []
    for src, bgr in zip(args.src, args.bgr):
        try:
            probes.append(picture_probe(src, bgr, args.max_side))
        except ValueError as error:
            raise ParityError(str(error)) from None
    for index, size in enumerate(args.size):
        try:
            width, height = parse_size(size, multiple=4)  # the one size order of every command
        except ValueError as error:
            raise ParityError(f"--size {error}") from None
        probes.append(synthetic_probe(height, width, max(1, args.batch), seed=12 + index, builtin=False))
    return probes or default_probes()


def planted_cases(report, probes):
    """The planted-bug set checked against the report's reference with the knobs of its first case."""
    from bgmv2.parity_tests.candidates import Reference, resolve_knobs
    from bgmv2.parity_tests.planted import check_planted
    reference = Reference(report.reference["path"])
    knobs = report.cases[0].knobs if report.cases and report.cases[0].knobs else resolve_knobs(
        reference.recorded, {}, report.flags)[0]
    return check_planted(reference, dict(knobs), probes)


def split_candidate(text: str):
    """'openvino:model.onnx' -> ('model.onnx', 'openvino'): RUNTIME[-PRECISION]:FILE names how to run it
    (`bgmv2.parity_tests.candidates.how_to_run`); 'model.onnx' -> (..., 'file')."""
    from bgmv2.parity_tests.candidates import ParityError, how_to_run
    prefix, _, rest = text.partition(":")
    if rest and not os.path.exists(text):
        try:
            how_to_run(prefix)
        except ParityError:
            return text, "file"
        return rest, prefix
    return text, "file"


def check_files(args, probes, flags, say):
    from bgmv2.parity_tests.candidates import ParityError, resolve_path
    from bgmv2.parity_tests.engine import CandidateRequest, run_parity
    if not args.reference:
        raise ParityError("pass --reference FILE (and --candidate FILE ...), or --zoo NAME")
    if not args.candidate:
        raise ParityError("pass at least one --candidate FILE to check against the reference")
    reference = resolve_path(args.reference)
    requests = []
    for text in args.candidate:
        path, run_as = split_candidate(text)
        requests.append(CandidateRequest(resolve_path(path), run_as))
    return run_parity(reference, requests, probes, flags, args.device, args.repeat_used, args.threads_used, say,
                      title=args.title)


def run(args: argparse.Namespace) -> int:
    """`check(args)`; Ctrl-C and SIGTERM (turned into the same path by `bgmv2.scripts.exits`) end it with one
    line, and reports are written whole or not at all."""
    from bgmv2.scripts import exits
    try:
        return check(args)
    except KeyboardInterrupt as error:
        status = exits.interrupted_status(error)
        how = "terminated (SIGTERM)" if status == exits.EXIT_TERMINATED else "interrupted"
        print(f"\n{how}: no report was written or changed (reports are renamed into place only when whole)",
              file=sys.stderr)
        return status


def check(args: argparse.Namespace) -> int:
    from bgmv2.parity_tests.candidates import ParityError
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr))
    try:
        flags = check_knob_values(given_knobs(args))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        if args.zoo and (args.reference or args.candidate):
            raise ParityError("--zoo checks a zoo entry's own matrix; leave out --reference and --candidate "
                              "(or check your files with --reference/--candidate without --zoo)")
        if (args.formats or args.precision or args.work) and not args.zoo:
            raise ParityError("--formats, --precision and --work go with --zoo NAME")
        if args.repeat is not None and args.repeat < 0:
            raise ParityError(f"--repeat must be 0 or more; got {args.repeat}")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from bgmv2.parity_tests import threads
        args.threads_used, args.threads_why = threads.choose(args.threads)  # one where more only contend
        threads.apply(args.threads_used)
        # On a busy machine timings are only indicative: one timed run is enough.
        args.repeat_used = args.repeat if args.repeat is not None else 1 if threads.busy() else 3
        if not args.zoo and not (args.reference and args.candidate):  # before the probes are built (seconds)
            check_files(args, None, flags, say)
        probes = probes_of(args)
        if args.zoo:
            from bgmv2.parity_tests.zoo import check_zoo
            report = check_zoo(args.zoo, probes, flags, args.device, args.formats, args.precision or ("fp32", "fp16"),
                               args.work, args.repeat_used, args.threads_used, say, args.title)
        else:
            report = check_files(args, probes, flags, say)
    except ParityError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report.environment["threads"] = args.threads_why + (
        "; 1 timed run per file (busy machine: ms/frame only indicative)" if args.repeat is None and
        args.repeat_used == 1 else "")
    if args.planted:
        say("checking the planted bugs ...")
        report.planted = planted_cases(report, probes)
    from bgmv2.parity_tests.report import text_table, write_json, write_markdown, write_png
    command = command_line(args)
    print(text_table(report))
    try:
        written = [write_json(report, os.path.join(args.out, "parity.json"), command),
                   write_markdown(report, os.path.join(args.out, "parity.md"), command),
                   write_png(report, os.path.join(args.out, "parity.png"))]
        if args.markdown:
            written.append(write_markdown(report, args.markdown, command))
    except OSError as error:
        print(f"error: cannot write the reports ({error}); choose another --out folder", file=sys.stderr)
        return 1
    say("reports: " + ", ".join(path for path in written if path))
    return 0 if report.ok else 1
