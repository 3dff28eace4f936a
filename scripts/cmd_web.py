"""`bgmv2 web OUT`: write a static web app that mattes in the browser (onnxruntime-web); `--serve` serves it.

    bgmv2 web bgmv2-web                        # the shipped model, fp32 (+ fp16 where it passes parity)
    bgmv2 web bgmv2-web --model model.onnx     # an ONNX file written by `bgmv2 convert`, as it is
    bgmv2 web bgmv2-web --serve                # serve it on 127.0.0.1 (written first if missing)

The folder is built beside OUT and renamed when complete. Each model is checked in headless Chromium on
the bundled sample against the weights in PyTorch eager, by `bgmv2 parity`'s rule (an fp16 model that
fails is left out); where Chromium or the npm packages are missing the check is skipped and noted.
onnxruntime-web comes from the repository's pinned npm dependency (`npm ci`), never from a CDN.
"""
import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("out", metavar="OUT", help="the app folder to write (or to serve, with --serve)")
    parser.add_argument("--model", metavar="NAME_OR_PATH",
                        help="weights in any format, an ONNX file, or a zoo name (default: the shipped model)")
    parser.add_argument("--precision", action="append", choices=("fp32", "fp16"),
                        help="models to include (repeatable; default fp32 and fp16; fp32 is always written)")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="skip the check of each model in headless Chromium")
    parser.add_argument("--force", action="store_true", help="replace an existing app folder OUT")
    parser.add_argument("--serve", action="store_true",
                        help="serve OUT on 127.0.0.1 (cross-origin isolated) until Ctrl-C; writes it first if missing")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0: any free port)")


def run(args: argparse.Namespace) -> int:
    import os
    from bgmv2.scripts.web_app import WebAppError, build, is_app, serve
    precisions = ["fp32"] + [p for p in (args.precision or ["fp32", "fp16"]) if p != "fp32"]
    try:
        if not (args.serve and os.path.exists(args.out) and is_app(os.path.abspath(args.out)) and not args.force):
            build(args.out, args.model, precisions, args.check, args.force)
        elif args.model:
            print(f"note: serving {args.out} as it is (--model applies when it is written; --force rewrites it)",
                  file=sys.stderr)
        if args.serve:
            return serve(args.out, args.port)
        return 0
    except WebAppError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
