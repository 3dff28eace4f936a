"""`bgmv2 train base|refine|export|evaluate`: train the base network, then MattingRefine, export, measure.

    bgmv2 train base   --checkpoint runs/base.pth --steps 1500 --size 128x128 --batch 8
    bgmv2 train refine --checkpoint runs/refine.pth --init runs/base.pth --steps 400 --size 256x256 --batch 4
    bgmv2 train refine --checkpoint runs/hair.pth --init weights/bgmv2_mobilenetv2_synthetic_fp16.safetensors \
        --mix synthetic=0.4,strands=0.5,flyaways=0.1 --crop-scale 1.25 --thin-weight 8 --semi-weight 2
    bgmv2 train export runs/refine.pth weights/model.safetensors --precision fp16
    bgmv2 train evaluate weights/model.safetensors --count 12 --size 512x512 --seed 777

Data: synthetic (generated, deterministic by --seed) unless --fgr-dir/--pha-dir/--bgr-dir point at a
published dataset laid out as folders (VideoMatte240K, PhotoMatte85); --mix trains on a mix of generated
sets cut around their strands and soft edges (see docs/training.md). Re-run the same command with
--resume to continue; a resumed run that asks for a different training says what differs and stops.
"""
import argparse
import json
import sys


def size(text: str):
    """WIDTHxHEIGHT (the one size order of every command), multiples of 4 -> (height, width) for training."""
    from bgmv2.scripts.arg_types import size_type
    width, height = size_type(4)(text)
    return height, width


def batch_size(text: str) -> int:
    from bgmv2.scripts.arg_types import int_at_least
    value = int_at_least(1)(text)
    if value < 2:
        raise argparse.ArgumentTypeError("1 is too small: BatchNorm needs two or more images per step to train "
                                         "(give --batch 2 or more)")
    return value


def weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text}: give a weight from 0 to 1000")
    return value


def crop_scale(text: str) -> float:
    value = weight(text)
    if not 1 <= value <= 4:
        raise argparse.ArgumentTypeError(f"{text}: give a scale from 1 to 4 (1: no detail crops)")
    return value


def mix_type(text: str) -> str:
    from bgmv2.data.mix import parse_mix
    try:
        parse_mix(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def set_list(allowed):
    def sets(text: str) -> str:
        names = [n.strip() for n in text.split(",") if n.strip()]
        wrong = [n for n in names if n not in allowed]
        if not names or wrong:
            raise argparse.ArgumentTypeError(f"{text!r}: give names from {', '.join(allowed)}, separated by commas")
        return ",".join(names)
    return sets


def add_training_arguments(sub: argparse.ArgumentParser, stage: str) -> None:
    from bgmv2.scripts.arg_types import int_at_least
    whole = int_at_least(1)
    sub.add_argument("--checkpoint", required=True, help="where the resumable training checkpoint goes")
    sub.add_argument("--init", help="weights to start from (base checkpoint; refine: also a whole MattingRefine)")
    sub.add_argument("--resume", action="store_true", help="continue from --checkpoint (it must exist)")
    sub.add_argument("--backbone", default="mobilenetv2", choices=("mobilenetv2", "resnet50", "resnet101"))
    sub.add_argument("--steps", type=whole, default=1500 if stage == "base" else 400)
    sub.add_argument("--batch", type=batch_size, default=8 if stage == "base" else 4)
    sub.add_argument("--size", type=size, default=(128, 128) if stage == "base" else (256, 256))
    sub.add_argument("--lr", type=float, default=1e-3 if stage == "base" else 3e-4)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--workers", type=int_at_least(0), default=1, help="data loader processes (0: in this one)")
    sub.add_argument("--fgr-dir"), sub.add_argument("--pha-dir"), sub.add_argument("--bgr-dir")
    sub.add_argument("--mix", type=mix_type, help="generated training mix, NAME=WEIGHT,... of synthetic, strands, "
                     "flyaways (default: the synthetic set alone)")
    sub.add_argument("--crop-scale", type=crop_scale, default=1.0,
                     help="make samples this much larger and crop around strands and soft edges (--mix, folders)")
    sub.add_argument("--reuse", type=whole, default=1,
                     help="--mix: crops cut from each generated sample (saves generation time; default 1)")
    sub.add_argument("--val-every", type=whole, default=250)
    sub.add_argument("--val-count", type=whole, default=16, help="held-out images per validation set")
    sub.add_argument("--val-size", type=size, default=(256, 256))
    sub.add_argument("--val-data", type=set_list(("synthetic", "strands", "flyaways")), default="synthetic",
                     help="validation sets, comma-separated: synthetic, strands, flyaways")
    sub.add_argument("--save-every", type=whole, default=50)
    sub.add_argument("--log-every", type=whole, default=10)
    sub.add_argument("--device", default="cpu")
    sub.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with AMX/AVX512-BF16)")
    sub.add_argument("--threads", type=whole, help="torch threads (default: all cores)")
    sub.add_argument("--freeze-bn", action="store_true",
                     help="keep BatchNorm's running statistics (fine-tuning with small batches: training then "
                          "behaves as inference does)")
    if stage == "refine":
        sub.add_argument("--refiner-lr-scale", type=weight, default=1.0,
                         help="the refiner's learning rate is --lr times this (default 1)")
        sub.add_argument("--refine-sample-pixels", type=whole, default=16_384,
                         help="pixels the refiner recomputes per training image (sampling mode)")
        sub.add_argument("--thin-weight", type=weight, default=0.0,
                         help="extra loss weight of thin structures, strands (0: upstream's loss)")
        sub.add_argument("--freeze-base", action="store_true",
                         help="train the refiner alone: the base network (coarse matte, error map) stays as --init gave it")
        sub.add_argument("--unclamped", action="store_true",
                         help="let the loss reach alpha and error past their clamp where that points back towards "
                              "the truth (else a strand whose raw alpha is below 0 can never be learnt)")
        sub.add_argument("--semi-weight", type=weight, default=0.0,
                         help="extra loss weight of semi-transparent pixels (0: upstream's loss)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bgmv2.scripts.arg_types import int_at_least
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage in ("base", "refine"):
        sub = stages.add_parser(stage, help=f"train {'the base network' if stage == 'base' else 'MattingRefine end to end'}")
        add_training_arguments(sub, stage)
    export = stages.add_parser("export", help="write a training checkpoint's model as safetensors")
    export.add_argument("checkpoint")
    export.add_argument("destination")
    export.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    export.add_argument("--metadata", default="{}", help="JSON object of strings for the file header")
    evaluate = stages.add_parser("evaluate", help="a model against the |src - bgr| threshold baseline on held-out "
                                 "images: SAD, MSE, gradient error, strand score")
    evaluate.add_argument("model", help="weights file or zoo name")
    evaluate.add_argument("--count", type=int_at_least(1), default=12, help="images per generated set")
    evaluate.add_argument("--size", type=size, default=(512, 512))
    evaluate.add_argument("--seed", type=int, default=777, help="synthetic seed (training used 0, validation 1000)")
    evaluate.add_argument("--sets", type=set_list(("synthetic", "strands", "flyaways", "sample")),
                          default="synthetic,strands,flyaways,sample",
                          help="held-out sets: synthetic, strands, flyaways, sample (the bundled sample)")
    evaluate.add_argument("--threads", type=int_at_least(1), help="torch threads (default: all cores)")


def run(args: argparse.Namespace) -> int:
    from bgmv2.scripts.training.checkpoints import TrainingError
    from bgmv2.pytorch_impl import CheckpointError
    from bgmv2.scripts.training.folders import DatasetError
    try:
        return run_stage(args)
    except (TrainingError, DatasetError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def run_stage(args: argparse.Namespace) -> int:
    import torch
    from bgmv2.scripts.training.checkpoints import TrainingError
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if args.stage == "evaluate":
        return evaluate(args)
    if args.stage == "export":
        from bgmv2.scripts.training.loop import export_weights
        try:
            metadata = json.loads(args.metadata)
            assert isinstance(metadata, dict)
        except (ValueError, AssertionError):
            raise TrainingError(f"--metadata {args.metadata!r}: give a JSON object, e.g. '{{\"command\": \"...\"}}'") \
                from None
        export_weights(args.checkpoint, args.destination, args.precision, metadata)
        print(f"wrote {args.destination}")
        return 0
    from bgmv2.scripts.training.loop import TrainConfig, main_log, train
    if args.fgr_dir and not (args.pha_dir and args.bgr_dir):
        print("error: a folder dataset needs --fgr-dir, --pha-dir and --bgr-dir together", file=sys.stderr)
        return 2
    if args.mix and args.fgr_dir:
        raise TrainingError("--mix and --fgr-dir both name the training data: give one of them")
    config = TrainConfig(stage=args.stage, backbone=args.backbone, checkpoint=args.checkpoint, init=args.init,
                         resume=args.resume, steps=args.steps, batch=args.batch, size=args.size, lr=args.lr,
                         seed=args.seed, workers=args.workers, fgr_dir=args.fgr_dir, pha_dir=args.pha_dir,
                         bgr_dir=args.bgr_dir, mix=args.mix, crop_scale=args.crop_scale, reuse=args.reuse,
                         thin_weight=getattr(args, "thin_weight", 0.0), semi_weight=getattr(args, "semi_weight", 0.0),
                         val_every=args.val_every, val_count=args.val_count, val_size=args.val_size,
                         val_data=args.val_data, save_every=args.save_every, log_every=args.log_every,
                         device=args.device, bf16=args.bf16, freeze_bn=args.freeze_bn,
                         refiner_lr_scale=getattr(args, "refiner_lr_scale", 1.0),
                         unclamped=getattr(args, "unclamped", False), freeze_base=getattr(args, "freeze_base", False),
                         refine_sample_pixels=getattr(args, "refine_sample_pixels", 16_384))
    summary = train(config, log=main_log)
    print(json.dumps(summary, indent=2))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from bgmv2.pytorch_impl import load_model
    from bgmv2.scripts.training.evaluation import held_out, summary_lines
    model = load_model(args.model)
    sets = args.sets.split(",")
    results = held_out(model, sets, args.count, args.size, args.seed)
    print(json.dumps({"model": args.model, "count": args.count, "size": f"{args.size[1]}x{args.size[0]}",
                      "seed": args.seed, "sets": results}, indent=2))
    for line in summary_lines(results):
        print(line, file=sys.stderr)
    return 0
