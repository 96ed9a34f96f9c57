"""``python -m vtr {pretrain,finetune,evaluate,demo-data,preprocess,shard,convert,index,search}``: argument parsing."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .checkpoints import CheckpointError
from .config import ConfigError, load_config
from .search import commands as search_commands
from .search.store import IndexMismatch


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vtr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in (
        ("pretrain", "pre-train a dual encoder (contrastive, MILES)"),
        ("finetune", "fine-tune on a retrieval dataset"),
        ("evaluate", "evaluate a checkpoint (init_from=...) on the test split"),
    ):
        p = sub.add_parser(command, help=text)
        p.add_argument("-c", "--config", type=Path, help="YAML under experiments/")
        p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. trainer.max_steps=200")
    demo = sub.add_parser("demo-data", help="write the synthetic demo corpus in the official layouts")
    demo.add_argument("--root", type=Path, default=Path("data/demo"))
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--tiny", action="store_true", help="a few clips per dataset (tests)")
    demo.add_argument("--workers", type=int, default=2)
    prep = sub.add_parser("preprocess", help="re-encode a dataset root into small, keyframe-dense clips")
    prep.add_argument("src_root", type=Path)
    prep.add_argument("dst_root", type=Path)
    prep.add_argument("--short-side", type=int, default=256, help="pixels (never upscaled)")
    prep.add_argument("--fps", type=int, default=10, help="frame rate cap")
    prep.add_argument("--keyframe-every", type=int, default=10, help="frames between keyframes")
    prep.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    shard = sub.add_parser("shard", help="write a per-file training set as video2dataset / img2dataset shards")
    shard.add_argument("src_root", type=Path, help="the data root holding {dataset}/ in its per-file layout")
    shard.add_argument("dst_root", type=Path, help="the shard folder (the tools' --output_folder)")
    shard.add_argument("--dataset", required=True, choices=("webvid", "cc3m"))
    shard.add_argument("--shard-size", type=int, help="rows a shard; default the tool's: 1000 webvid, 10000 cc3m")
    shard.add_argument("--format", default="webdataset", choices=("webdataset", "files"), dest="output_format")
    for flag, text in (("--short-side", "pixels"), ("--fps", "frame rate cap"), ("--keyframe-every", "frames")):
        shard.add_argument(flag, type=int, help=f"re-encode videos as vtr preprocess does: {text} (default: copy)")
    shard.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    conv = sub.add_parser("convert", help="write a checkpoint's dual encoder as .safetensors + .json (model config)")
    conv.add_argument("checkpoint", help="ours (.ckpt, sharded folder, .safetensors) or a released Frozen / MILES .pth")
    conv.add_argument("out", type=Path, help="OUT.safetensors; OUT.json is written beside it")
    conv.add_argument("--text-model", help="tokenizer (HF name or folder) to record; default: the checkpoint's")
    search_commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo-data":
            from data_modules.demo import DemoSizes, generate_demo_corpus

            sizes = DemoSizes.tiny() if args.tiny else DemoSizes()
            generate_demo_corpus(args.root, seed=args.seed, sizes=sizes, workers=args.workers)
            return 0
        if args.command == "preprocess":
            from data_modules.preprocess import Settings, preprocess

            try:
                settings = Settings(args.short_side, args.fps, args.keyframe_every)
                print(preprocess(args.src_root, args.dst_root, settings, workers=args.workers))
            except ValueError as err:  # bad settings, or a destination inside the source
                raise ConfigError(str(err)) from err
            return 0
        if args.command == "shard":
            return _shard(args)
        if args.command == "index":
            return search_commands.run_index(args)
        if args.command == "search":
            return search_commands.run_search(args)
        if args.command == "convert":
            from .checkpoints import convert

            try:
                print(f"wrote {args.out} and {convert(args.checkpoint, args.out, args.text_model)}")
            except ValueError as err:  # unreadable or unfit checkpoint, wrong output name
                raise ConfigError(str(err)) from None
            return 0
        cfg = load_config(args.config, [f"task={args.command}", *args.overrides])
        from .build import run

        run(cfg)
    except (ConfigError, FileNotFoundError, IndexMismatch, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _shard(args: argparse.Namespace) -> int:
    from data_modules.preprocess import Settings
    from data_modules.shard_sources import shard_dataset

    reencode = {"short_side": args.short_side, "fps": args.fps, "keyframe_every": args.keyframe_every}
    try:
        given = {name: value for name, value in reencode.items() if value is not None}
        settings = Settings(**given) if given else None
        summary = shard_dataset(
            args.src_root, args.dst_root, args.dataset, args.shard_size, args.output_format, settings, args.workers
        )
    except ValueError as err:  # bad settings or shard size, re-encoding images
        raise ConfigError(str(err)) from err
    print(summary)
    return 0
