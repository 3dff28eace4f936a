"""`bgmv2 train base|refine|export`: train the base network, then MattingRefine, then export weights.

    bgmv2 train base   --checkpoint runs/base.pth --steps 1500 --size 128x128 --batch 8
    bgmv2 train refine --checkpoint runs/refine.pth --init runs/base.pth --steps 400 --size 256x256 --batch 4
    bgmv2 train export runs/refine.pth weights/model.safetensors --precision fp16
    bgmv2 train evaluate weights/model.safetensors --count 12 --size 512x512 --seed 777

Data: synthetic (generated, deterministic by --seed) unless --fgr-dir/--pha-dir/--bgr-dir point at a
published dataset laid out as folders (VideoMatte240K, PhotoMatte85). Re-run with --resume to continue.
"""
import argparse
import json
import sys


def size(text: str):
    """WIDTHxHEIGHT (the one size order of every command), multiples of 4 -> (height, width) for training."""
    from bgmv2.scripts.arg_types import size_type
    width, height = size_type(4)(text)
    return height, width


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage in ("base", "refine"):
        sub = stages.add_parser(stage, help=f"train {'the base network' if stage == 'base' else 'MattingRefine end to end'}")
        sub.add_argument("--checkpoint", required=True, help="where the resumable training checkpoint goes")
        sub.add_argument("--init", help="weights to start from (refine: the base checkpoint)")
        sub.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
        sub.add_argument("--backbone", default="mobilenetv2", choices=("mobilenetv2", "resnet50", "resnet101"))
        sub.add_argument("--steps", type=int, default=1500 if stage == "base" else 400)
        sub.add_argument("--batch", type=int, default=8 if stage == "base" else 4)
        sub.add_argument("--size", type=size, default=(128, 128) if stage == "base" else (256, 256))
        sub.add_argument("--lr", type=float, default=1e-3 if stage == "base" else 3e-4)
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--workers", type=int, default=1, help="data loader processes")
        sub.add_argument("--fgr-dir"), sub.add_argument("--pha-dir"), sub.add_argument("--bgr-dir")
        sub.add_argument("--val-every", type=int, default=250)
        sub.add_argument("--val-count", type=int, default=16)
        sub.add_argument("--val-size", type=size, default=(256, 256))
        sub.add_argument("--save-every", type=int, default=50)
        sub.add_argument("--log-every", type=int, default=10)
        sub.add_argument("--device", default="cpu")
        sub.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with AMX/AVX512-BF16)")
        sub.add_argument("--threads", type=int, help="torch threads (default: all cores)")
        if stage == "refine":
            sub.add_argument("--refine-sample-pixels", type=int, default=16_384,
                             help="pixels the refiner recomputes per training image (sampling mode)")
    export = stages.add_parser("export", help="write a training checkpoint's model as safetensors")
    export.add_argument("checkpoint")
    export.add_argument("destination")
    export.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    export.add_argument("--metadata", default="{}", help="JSON object of strings for the file header")
    evaluate = stages.add_parser("evaluate", help="a model against the |src - bgr| threshold baseline on held-out images")
    evaluate.add_argument("model", help="weights file or zoo name")
    evaluate.add_argument("--count", type=int, default=12)
    evaluate.add_argument("--size", type=size, default=(512, 512))
    evaluate.add_argument("--seed", type=int, default=777, help="synthetic seed (training used 0, validation 1000)")


def run(args: argparse.Namespace) -> int:
    import torch
    from bgmv2.scripts.training.loop import TrainConfig, export_weights, held_out_metrics, main_log, train
    if args.stage == "evaluate":
        print(json.dumps(held_out_metrics(args.model, args.count, args.size, args.seed), indent=2))
        return 0
    if args.stage == "export":
        export_weights(args.checkpoint, args.destination, args.precision, json.loads(args.metadata))
        print(f"wrote {args.destination}")
        return 0
    if args.fgr_dir and not (args.pha_dir and args.bgr_dir):
        print("error: a folder dataset needs --fgr-dir, --pha-dir and --bgr-dir together", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(stage=args.stage, backbone=args.backbone, checkpoint=args.checkpoint, init=args.init,
                         resume=args.resume, steps=args.steps, batch=args.batch, size=args.size, lr=args.lr,
                         seed=args.seed, workers=args.workers, fgr_dir=args.fgr_dir, pha_dir=args.pha_dir,
                         bgr_dir=args.bgr_dir, val_every=args.val_every, val_count=args.val_count,
                         val_size=args.val_size, save_every=args.save_every, log_every=args.log_every,
                         device=args.device, bf16=args.bf16,
                         refine_sample_pixels=getattr(args, "refine_sample_pixels", 16_384))
    summary = train(config, log=main_log)
    print(json.dumps(summary, indent=2))
    return 0
