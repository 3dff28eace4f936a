"""`bgmv2 convert SOURCE DEST`: any model format to any other, validated on a probe before it is kept.

`bgmv2 convert --info FILE` shows what a file is and the metadata it carries.
"""
import argparse
import sys

from bgmv2.scripts.arg_types import size_type
from bgmv2.scripts.knob_options import add_knob_arguments, check_knob_values, given_knobs

USAGE = """bgmv2 convert [options] SOURCE DEST
       bgmv2 convert --info FILE"""

FORMAT_HELP = """formats (detected from the content of SOURCE; DEST's from --to or its name):
  pth          PyTorch state dict, official layout (.pth)                    input NCHW
  safetensors  state dict with metadata in the header (.safetensors)          input NCHW
  torchscript  production TorchScript, knobs settable after loading (.pt)     input NCHW
  pt2          torch.export program (.pt2)                                    input NCHW
  onnx         ONNX, opset 18, dynamic batch/height/width (.onnx)             input NCHW
               (made from a SavedModel with tf2onnx: input NHWC)
  keras        Keras 3 weights (.weights.h5)                                  input NHWC
  savedmodel   TensorFlow SavedModel folder (no suffix), signature
               serving_default(src, bgr) -> pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm   input NHWC
  tflite       TFLite, builtin ops, LiteRT / tf.lite, any size or --size (.tflite)   input NHWC
  openvino     OpenVINO IR, NAME.xml + NAME.bin, fp32 weights (.xml)          input NCHW
PyTorch-side files and OpenVINO IR take NCHW input, TensorFlow-side files (SavedModel, Keras, TFLite,
ONNX from a SavedModel) take NHWC. Inputs are float RGB in [0, 1], named src and bgr, in every format.

examples:
  bgmv2 convert pytorch_mobilenetv2.pth mobilenetv2.onnx
  bgmv2 convert pytorch_mobilenetv2.pth mobilenetv2_savedmodel
  bgmv2 convert torchscript_resnet50_fp32.pth resnet50.pth --to pth
  bgmv2 convert pytorch_mobilenetv2.pth mobilenetv2.tflite
  bgmv2 convert pytorch_mobilenetv2.pth mobilenetv2.xml                (OpenVINO IR + mobilenetv2.bin)
  bgmv2 convert --info mobilenetv2.onnx"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = FORMAT_HELP
    parser.usage = USAGE
    parser.add_argument("source", metavar="SOURCE", help="the model to convert (with --info: the file to describe)")
    parser.add_argument("dest", metavar="DEST", nargs="?", help="where to write it (one SOURCE, one DEST)")
    parser.add_argument("--info", action="store_true", help="show what FILE is and its metadata; convert nothing")
    from bgmv2.converters import formats  # the format table (no framework is imported by listing it)
    registry = formats.registry()
    parser.add_argument("--to", choices=tuple(registry),
                        help="format of DEST (default: from DEST's suffix; no suffix means savedmodel)")
    parser.add_argument("--backbone", choices=("mobilenetv2", "resnet50", "resnet101"),
                        help="expected backbone (checked against the weights, which tell it anyway)")
    lower = [p for p in formats.PRECISIONS if p != "fp32"]
    parser.add_argument("--precision", choices=formats.PRECISIONS, default="fp32",
                        help="precision of DEST (" + "; ".join(
                            f"{p}: {', '.join(n for n, m in registry.items() if p in m.PRECISIONS)}" for p in lower)
                        + ")")
    parser.add_argument("--size", type=size_type(4), default=None, metavar="WIDTHxHEIGHT",
                        help=f"{', '.join(formats.size_formats())} only: one fixed frame size, multiples of 4, e.g. "
                             "1280x720, recorded in the file; the probe then has that size (default: any size)")
    add_knob_arguments(parser, "model knobs (default: the source's, else sampling, 80,000 pixels, scale 0.25)")
    onnx = parser.add_argument_group("ONNX")
    onnx.add_argument("--onnx-variant", choices=("static", "nonzero", "tensorrt"), default=None,
                      help="sampling graph: static = top-k indices, no NonZero, fastest in ONNX Runtime (default); "
                           "nonzero = upstream's data-dependent graph; tensorrt = static with every TopK k <= 3840")
    onnx.add_argument("--onnx-from", choices=("pytorch", "tensorflow"),
                      help="exporter: pytorch (torch.onnx, NCHW) or tensorflow (tf2onnx on a SavedModel SOURCE, NHWC); "
                           "default: tensorflow for a SavedModel source, else pytorch")
    onnx.add_argument("--simplify", action="store_true", help="run onnxsim on the exported graph")
    onnx.add_argument("--opset", type=int, choices=(14, 15, 16, 17, 18), default=None,
                      help="ONNX opset (default 18); 14-17 for converters that lack 18, e.g. 15 for onnx2torch "
                           "(see docs/deployment.md)")
    parser.add_argument("--probe", type=size_type(4), default=None, metavar="WIDTHxHEIGHT",
                        help="size of the validation probe, multiples of 4 (default 512x288)")
    parser.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    parser.add_argument("--quiet", action="store_true", help="print only errors")


def show_info(path: str) -> int:
    from bgmv2.converters import info
    from bgmv2.converters.meta import ordered
    found = info(path)
    head = ("file", "format", "content", "metadata", "written_as")
    for key in head:
        if key in found:
            print(f"{key + ':':<30} {found[key]}")
    for key, value in ordered({k: v for k, v in found.items() if k not in head}):
        print(f"{key + ':':<30} {value}")
    return 0


def run(args: argparse.Namespace) -> int:
    from bgmv2.converters import ConversionError
    try:
        if args.info:
            if args.dest is not None:
                print(f"error: --info takes one FILE; got {args.source} and {args.dest}", file=sys.stderr)
                return 2
            return show_info(args.source)
        if args.dest is None:
            print(f"error: convert takes SOURCE and DEST; got only {args.source} (or use --info FILE)", file=sys.stderr)
            return 2
        try:
            knobs = check_knob_values(given_knobs(args))
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        import os
        from bgmv2.converters import convert
        from bgmv2.scripts.media.outputs import clean_stale
        clean_stale([os.path.dirname(os.path.abspath(args.dest))])  # what killed conversions left there
        options = {}
        if args.probe:  # (height, width), checked here to be named as given
            from bgmv2.converters.limits import check_frame
            options["probe_size"] = check_frame((args.probe[1], args.probe[0]), f"--probe {args.probe[0]}x{args.probe[1]}")
        convert(args.source, args.dest, args.to, backbone=args.backbone, precision=args.precision,
                knobs=knobs, onnx_variant=args.onnx_variant,
                simplify=args.simplify, onnx_from=args.onnx_from, overwrite=args.overwrite,
                size=(args.size[1], args.size[0]) if args.size else None,  # (height, width)
                log=None if args.quiet else print,
                options={"opset": args.opset} if args.opset else None, **options)
        return 0
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
