"""`bgmv2 convert SOURCE DEST`: any model format to any other, validated on a probe before it is kept.

`bgmv2 convert --info FILE` shows what a file is and the metadata it carries.
"""
import argparse
import sys

from scripts.knob_options import add_knob_arguments, given_knobs

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
    parser.add_argument("paths", nargs="+", metavar="SOURCE DEST", help="the model to convert and where to write it")
    parser.add_argument("--info", action="store_true", help="show what FILE is and its metadata; convert nothing")
    parser.add_argument("--to", choices=("pth", "safetensors", "torchscript", "pt2", "onnx", "keras", "savedmodel",
                                         "tflite", "openvino"),
                        help="format of DEST (default: from DEST's suffix; no suffix means savedmodel)")
    parser.add_argument("--backbone", choices=("mobilenetv2", "resnet50", "resnet101"),
                        help="expected backbone (checked against the weights, which tell it anyway)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                        help="precision of DEST (fp16: pth, safetensors, torchscript, pt2, onnx, openvino weights)")
    parser.add_argument("--size", metavar="HxW", help="TFLite only: a fixed frame size, e.g. 720x1280, recorded in "
                                                       "the file (default: any size)")
    add_knob_arguments(parser, "model knobs (default: the source's, else sampling, 80,000 pixels, scale 0.25)")
    onnx = parser.add_argument_group("ONNX")
    onnx.add_argument("--onnx-variant", choices=("static", "nonzero", "tensorrt"), default="static",
                      help="sampling graph: static = top-k indices, no NonZero, fastest in ONNX Runtime (default); "
                           "nonzero = upstream's data-dependent graph; tensorrt = static with every TopK k <= 3840")
    onnx.add_argument("--onnx-from", choices=("pytorch", "tensorflow"),
                      help="exporter: pytorch (torch.onnx, NCHW) or tensorflow (tf2onnx on a SavedModel SOURCE, NHWC); "
                           "default: tensorflow for a SavedModel source, else pytorch")
    onnx.add_argument("--simplify", action="store_true", help="run onnxsim on the exported graph")
    parser.add_argument("--probe", default=None, metavar="HxW", help="size of the validation probe (default 288x512)")
    parser.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    parser.add_argument("--quiet", action="store_true", help="print only errors")


def show_info(path: str) -> int:
    from converters import info
    from converters.meta import ordered
    found = info(path)
    head = ("file", "format", "content", "metadata", "written_as")
    for key in head:
        if key in found:
            print(f"{key + ':':<30} {found[key]}")
    for key, value in ordered({k: v for k, v in found.items() if k not in head}):
        print(f"{key + ':':<30} {value}")
    return 0


def run(args: argparse.Namespace) -> int:
    from converters import ConversionError
    try:
        if args.info:
            if len(args.paths) != 1:
                print("error: --info takes one FILE", file=sys.stderr)
                return 2
            return show_info(args.paths[0])
        if len(args.paths) != 2:
            print("error: convert takes SOURCE and DEST (or --info FILE)", file=sys.stderr)
            return 2
        probe = None
        if args.probe:
            try:
                probe = tuple(int(v) for v in args.probe.lower().split("x"))
                if len(probe) != 2 or min(probe) < 4 or probe[0] % 4 or probe[1] % 4:
                    raise ValueError
            except ValueError:
                print(f"error: --probe takes HEIGHTxWIDTH, multiples of 4, e.g. 288x512; got {args.probe!r}",
                      file=sys.stderr)
                return 2
        from converters import convert
        options = {"probe_size": probe} if probe else {}
        convert(args.paths[0], args.paths[1], args.to, backbone=args.backbone, precision=args.precision,
                knobs=given_knobs(args), onnx_variant=args.onnx_variant,
                simplify=args.simplify, onnx_from=args.onnx_from, overwrite=args.overwrite, size=args.size,
                log=None if args.quiet else print, **options)
        return 0
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
