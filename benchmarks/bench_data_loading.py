"""Data-loading throughput: clips/s of the seeking reader vs decoding whole clips.

Each row loads clips through a DataLoader exactly as training does (``rand`` frames, the
training transform at the demo model's input size) with 0 or 2 worker processes, reading frames
with ``read_video`` (seek to the keyframe before each sampled frame) or with
``read_video_full_decode`` (decode the clip, then index). Two sets of clips:

* the demo corpus's WebVid training clips (2-4 s at 10 fps, a keyframe a second): almost nothing
  to skip, and the seeking reader then just decodes on, so expect no gain there;
* long clips encoded here like web video (60 s at 25 fps, 224x224, a keyframe every 2 s): a
  4-frame clip then costs about four half-GOPs (~100 frames) of decoding instead of 1,500.

    python benchmarks/bench_data_loading.py [--root data/demo] [--clips 128] [--long-clips 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from data_modules.config import DataConfig
from data_modules.demo import generate_demo_corpus
from data_modules.readers import READERS
from data_modules.video import build_transform, read_video, read_video_full_decode
from vtr.config import load_config

ROOT = Path(__file__).resolve().parents[1]
READERS_UNDER_TEST = {"seek": read_video, "full decode": read_video_full_decode}
FRAMES = (4, 8)
WORKERS = (0, 2)
DEMO_CONFIG = ROOT / "experiments/pretrain/demo.yaml"


class ClipDataset(Dataset):
    """Just the video half of ``VideoTextDataset``: read ``rand`` frames, transform."""

    def __init__(self, paths: list[Path], num_frames: int, read: Callable[..., torch.Tensor], input_res: int) -> None:
        self.paths, self.num_frames, self.read = paths, num_frames, read
        self.transform = build_transform(input_res, train=True)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.read(self.paths[index], self.num_frames, "rand"))


def clips_per_second(dataset: ClipDataset, batch_size: int, workers: int, repeats: int) -> float:
    """Best of ``repeats`` timed epochs after one warm-up epoch (worker start-up, page cache).

    Workers persist across epochs, so a timed epoch starts with its workers idle and nothing
    prefetched; the best epoch is the least disturbed by other load on the machine.
    """
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0)
    times = []
    for _epoch in range(repeats + 1):
        start = time.perf_counter()
        for _ in loader:
            pass
        times.append(time.perf_counter() - start)
    return len(dataset) / min(times[1:])


def encode_long_clip(path: Path, seconds: int, fps: int, size: int, keyframe_seconds: int, seed: int) -> Path:
    """A camera pan over a smooth random scene with film grain: costs about what web video
    costs to decode, unlike flat synthetic frames."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    scene = np.asarray(
        Image.fromarray(rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)).resize((size * 4, size * 2), Image.BICUBIC)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"g": str(fps * keyframe_seconds), "preset": "fast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(seconds * fps):
            x = int((size * 3) * (0.5 - 0.5 * np.cos(2 * np.pi * i / (seconds * fps))))
            frame = scene[size // 2 : size // 2 + size, x : x + size].astype(np.int16)
            frame = np.clip(frame + rng.integers(-6, 7, frame.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)
    return path


def run(name: str, paths: list[Path], input_res: int, batch_size: int, repeats: int) -> list[dict]:
    rows = []
    for num_frames in FRAMES:
        for workers in WORKERS:
            rates = {
                reader: clips_per_second(ClipDataset(paths, num_frames, read, input_res), batch_size, workers, repeats)
                for reader, read in READERS_UNDER_TEST.items()
            }
            for reader, rate in rates.items():
                rows.append(
                    dict(clips=name, reader=reader, frames=num_frames, workers=workers, clips_per_s=round(rate, 1),
                         speedup=round(rate / rates["full decode"], 2))
                )  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| clips | reader | frames | workers | clips/s | vs full decode |", "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["clips"], r["reader"], r["frames"], r["workers"], f"{r['clips_per_s']:.1f}", f"{r['speedup']:.2f}x"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT / "data/demo", help="demo corpus (generated if missing)")
    parser.add_argument("--clips", type=int, default=128, help="demo WebVid clips per measurement")
    parser.add_argument("--batch", type=int, default=8, help="DataLoader batch size")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per row (the best is kept)")
    parser.add_argument("--long-clips", type=int, default=4, help="60 s clips encoded for the long-clip rows")
    parser.add_argument("--long-repeats", type=int, default=4, help="reads of each long clip per measurement")
    parser.add_argument("--long-dir", type=Path, default=ROOT / "data/bench_long_clips")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/data_loading.json")
    args = parser.parse_args()

    if not (args.root / "webvid").is_dir():
        generate_demo_corpus(args.root)
    demo = [r.path for r in READERS["webvid"](args.root / "webvid", "train", DataConfig())][: args.clips]
    long_spec = dict(seconds=60, fps=25, size=224, keyframe_seconds=2)
    long = [
        encode_long_clip(args.long_dir / f"long{i}_60s_25fps_224_gop2s.mp4", seed=i, **long_spec)
        for i in range(args.long_clips)
    ] * args.long_repeats

    input_res = load_config(DEMO_CONFIG).data.input_res  # the demo model's input size
    torch.set_num_threads(1)  # as in DataLoader workers, so 0 and 2 workers compare like for like
    rows = run(f"demo WebVid ({len(demo)})", demo, input_res, args.batch, args.repeats)
    rows += run(f"60 s web-like ({args.long_clips}x{args.long_repeats})", long, input_res, args.batch, args.repeats)
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "data_loading",
        "input_res": input_res,
        "batch_size": args.batch,
        "timing": f"best of {args.repeats} epochs after a warm-up epoch; torch threads 1",
        "long_clips": long_spec,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "av": av.__version__,
        },
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
