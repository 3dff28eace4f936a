"""`bgmv2 inspect FILE`: what a weights file is, whether it loads strictly, and (--run) what it computes."""
import argparse
import os
import sys
import time

from bgmv2.knobs import FILE_KNOBS as KNOBS  # the knobs a TorchScript archive carries
from bgmv2.scripts.arg_types import size_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a .pth state dict, .safetensors file or TorchScript archive")
    parser.add_argument("--run", metavar="WIDTHxHEIGHT", type=size_type(),
                        help="also run the model once on a generated probe of this size, e.g. 1280x720")
    parser.add_argument("--device", default="cpu", help="device for --run (cpu, cuda, cuda:1, ...)")


def probe(height: int, width: int, device: str):
    """A soft-edged disc over a gradient, and the gradient alone: a pair the model can matte."""
    import torch
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    bgr = torch.stack([x, y, 0.5 * (x + y)]).unsqueeze(0)
    radius = ((y - 0.5) ** 2 + (x - 0.5) ** 2).sqrt()
    alpha = ((0.3 - radius) * 40).clamp(0, 1)
    src = alpha * torch.tensor([0.9, 0.4, 0.2]).view(1, 3, 1, 1) + (1 - alpha) * bgr
    return src.to(device), bgr.to(device)


def describe_file(path: str):
    from bgmv2 import pytorch_impl
    from bgmv2.pytorch_impl import CheckpointError, file_kinds
    from bgmv2.converters import ConversionError
    from bgmv2.converters.resolve import resolve_model
    try:
        path = resolve_model(path)  # a zoo name -> its local file (fetched if need be)
    except ConversionError as error:
        raise CheckpointError(str(error)) from None
    kind = file_kinds.file_kind(path)
    print(f"file:      {path}")
    print(f"content:   {kind}")
    if kind == file_kinds.TORCHSCRIPT:
        model = pytorch_impl.load_torchscript(path)
        for knob in KNOBS:
            if hasattr(model, knob):
                print(f"{knob + ':':<12} {getattr(model, knob)}")
        state = model.state_dict()
    else:
        model = pytorch_impl.load_model(path)
        state = pytorch_impl.read_state_dict(path)  # as stored (the model holds float32 copies)
    info = pytorch_impl.describe(pytorch_impl.checkpoint.unwrap(state, path), path)
    print(f"model:     {'MattingRefine' if info.kind == 'refine' else 'MattingBase'} ({info.backbone}"
          + (f", refiner kernel {info.refine_kernel_size})" if info.refine_kernel_size else ")"))
    params = sum(v.numel() for k, v in state.items() if v.is_floating_point() and "running_" not in k)
    print(f"tensors:   {len(state)}, {params / 1e6:.2f} M parameters, dtypes in the file "
          + ", ".join(sorted({str(v.dtype).replace('torch.', '') for v in state.values()})))
    print("loads:     yes (strict: every key and shape matches the official layout)")
    return model


def run(args: argparse.Namespace) -> int:
    from bgmv2.pytorch_impl import CheckpointError
    if args.run:  # the device first: a wrong one is found before the model loads
        from bgmv2.converters import ConversionError, devices
        try:
            args.device = devices.choose(args.device, "torch")
        except ConversionError as error:
            print(f"error: {error.as_flag('device') if hasattr(error, 'as_flag') else error}", file=sys.stderr)
            return 1
    try:
        model = describe_file(args.file)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.run:
        import torch
        from bgmv2.pytorch_impl import matte
        width, height = args.run
        model = model.to(args.device)
        src, bgr = probe(height, width, args.device)
        start = time.perf_counter()
        try:
            outputs = matte(model, src, bgr)
        except ValueError as error:  # a size the model cannot take (too small for its backbone scale, ...)
            print(f"error: --run {width}x{height}: {error}", file=sys.stderr)
            return 1
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = (time.perf_counter() - start) * 1000
        pha = outputs[0]
        print(f"run:       {width}x{height} on {args.device} in {elapsed:.0f} ms (first call, includes warm-up); "
              f"alpha mean {pha.mean():.4f}, min {pha.min():.4f}, max {pha.max():.4f}")
    return 0
