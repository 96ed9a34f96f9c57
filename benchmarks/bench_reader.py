"""Reader throughput on web-like clips: the seeking reader before and after, decord, and preprocessing.

Columns, on the same clips and frame indices' distribution (``rand``, as in training):

* ``before``: the seeking reader before it skipped non-reference frames (``seek_reader_v1.py``);
* ``after``: ``data_modules.video.read_video`` as it is now;
* ``decord``: the released code's reader, ``decord.VideoReader(path, num_threads=1).get_batch``
  with its own ``rand`` index choice (skipped with a message when decord is not installed; it is
  not a dependency of this project);
* ``after, preprocessed``: ``read_video`` on the same clips after ``python -m vtr preprocess``
  (short side 256, 10 fps, a keyframe every 10 frames).

Clips (``web_clips.py``): 10-30 s, 320x240 and 480x270, 25-30 fps, x264 defaults with a keyframe
every 250 frames (x264's default) or every 30. One process, one thread; clips/s = reads / CPU
seconds of the process (best of ``--repeats`` passes), so other load on the machine matters less.

    python benchmarks/bench_reader.py [--clips-dir /tmp/web_clips] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import seek_reader_v1
import torch
from web_clips import SPECS, encode

from data_modules.preprocess import Settings, transcode
from data_modules.video import read_video

ROOT = Path(__file__).resolve().parents[1]
FRAMES = (4, 8)
PREPROCESS = Settings(short_side=256, fps=10, keyframe_every=10)


def released_rand(num_frames: int, vlen: int, rng: random.Random) -> list[int]:
    """The released code's ``rand`` choice: a random frame of each of ``num_frames`` linspace segments."""
    edges = np.linspace(0, vlen, min(num_frames, vlen) + 1).astype(int)
    return [rng.choice(range(start, max(start + 1, end - 1))) for start, end in zip(edges[:-1], edges[1:])]


def decord_reader() -> Callable[[Path, int, random.Random], object] | None:
    try:
        import decord
    except ImportError:
        print("decord is not installed: no decord column (pip install decord)")
        return None

    def read(path: Path, num_frames: int, rng: random.Random) -> object:
        reader = decord.VideoReader(str(path), num_threads=1)
        return reader.get_batch(released_rand(num_frames, len(reader), rng)).asnumpy()

    return read


def clips_per_cpu_second(read: Callable, paths: list[Path], num_frames: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        rng = random.Random(0)
        start = time.process_time()
        for path in paths:
            read(path, num_frames, rng)
        best = min(best, time.process_time() - start)
    return len(paths) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-dir", type=Path, default=Path("/tmp/vtr_bench_web_clips"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reader.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    groups: dict[str, dict[str, list[Path]]] = {}
    for i, spec in enumerate(SPECS):
        raw = encode(spec, args.clips_dir / "raw", seed=i)
        small = args.clips_dir / "preprocessed" / raw.name
        if not small.exists():
            small.parent.mkdir(parents=True, exist_ok=True)
            transcode(raw, small, PREPROCESS)
        group = groups.setdefault(spec.group, {"raw": [], "preprocessed": []})
        group["raw"].append(raw)
        group["preprocessed"].append(small)

    readers = {
        "before": lambda p, n, rng: seek_reader_v1.read_video(p, n, "rand", rng),
        "after": lambda p, n, rng: read_video(p, n, "rand", rng),
    }
    decord = decord_reader()
    if decord is not None:
        readers["decord"] = decord
    rows = []
    for name, group in groups.items():
        for num_frames in FRAMES:
            rates = {
                r: clips_per_cpu_second(read, group["raw"], num_frames, args.repeats) for r, read in readers.items()
            }
            rates["after, preprocessed"] = clips_per_cpu_second(
                readers["after"], group["preprocessed"], num_frames, args.repeats
            )
            row = dict(clips=name, frames=num_frames, **{k: round(v, 1) for k, v in rates.items()})
            row["after / before"] = round(rates["after"] / rates["before"], 2)
            if decord is not None:
                row["after / decord"] = round(rates["after"] / rates["decord"], 2)
            row["preprocessed / raw"] = round(rates["after, preprocessed"] / rates["after"], 2)
            rows.append(row)
            print(row, flush=True)

    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    result = {
        "benchmark": "reader",
        "unit": "clips per CPU second (one process, one decoding thread), best of repeats",
        "clips": [spec.name for spec in SPECS],
        "preprocess": vars(PREPROCESS),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "av": av.__version__},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
