"""The `bgmv2` command: one entry point, one module per subcommand (imported only when used)."""
import argparse
import importlib
import sys
from importlib import metadata
from typing import List, Optional

# name -> module in this package with `add_arguments(parser)` and `run(args) -> int`, and a summary.
SUBCOMMANDS = {
    "inspect": ("bgmv2.scripts.cmd_inspect", "recognise a weights file, load it strictly, optionally run it once"),
    "weights": ("bgmv2.scripts.cmd_weights", "the model zoo: list, info, fetch (verified, resumable), verify"),
    "train": ("bgmv2.scripts.cmd_train", "train the base network, then MattingRefine; export the weights"),
    "convert": ("bgmv2.scripts.cmd_convert", "convert a model between formats (pth, safetensors, torchscript, pt2, onnx, keras, savedmodel, tflite, openvino), validated"),
    "images": ("bgmv2.scripts.cmd_images", "matte pictures against a background shot (any model format)"),
    "video": ("bgmv2.scripts.cmd_video", "matte a video: decode, inference and encode overlapped"),
    "webcam": ("bgmv2.scripts.cmd_webcam", "live matting from a webcam: capture the background, show the composite"),
    "batch": ("bgmv2.scripts.cmd_batch", "matte many pictures and videos on Ray (local or a cluster); resumable, with a ledger"),
    "bench": ("bgmv2.scripts.cmd_bench", "model-only and end-to-end video pipeline throughput, as a table"),
    "parity": ("bgmv2.scripts.cmd_parity", "check model files against a reference: accuracy per output and speed, JSON/Markdown/PNG reports"),
    "web": ("bgmv2.scripts.cmd_web", "write a static web app that mattes in the browser (onnxruntime-web); --serve serves it"),
    "demo": ("bgmv2.scripts.cmd_demo", "matte the bundled sample with the shipped model; writes outputs and a preview"),
}


def version() -> str:
    try:
        return metadata.version("bgmv2-zoo")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    from bgmv2.scripts.exits import EPILOG
    parser = argparse.ArgumentParser(
        prog="bgmv2", description="Background Matting V2 toolkit: models, conversion, parity, matting.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(module=module)
        importlib.import_module(module).add_arguments(sub)
        sub.epilog = f"{sub.epilog}\n\n{EPILOG}" if sub.epilog else EPILOG
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse, run, and end with one exit-code table (scripts.exits): SIGTERM is handled like Ctrl-C,
    and what escapes a command is one line, never a traceback (BGMV2_DEBUG=1 shows it)."""
    from bgmv2.scripts import exits
    from bgmv2.scripts.arg_types import boolean_flags, legacy_booleans
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(legacy_booleans(argv, boolean_flags(parser)))
    args.command_line = ["bgmv2", *argv]  # as typed, for what a command writes about itself
    if args.command is None:
        parser.print_help()
        return exits.EXIT_USAGE
    previous = exits.install_signal_handlers()
    try:
        return exits.guard(lambda: importlib.import_module(args.module).run(args))
    finally:
        exits.restore_signal_handlers(previous)


if __name__ == "__main__":
    sys.exit(main())
