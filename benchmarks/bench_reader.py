"""Reader throughput on web-like clips: the seeking reader before and after, decord, and preprocessing.

Columns, on the same clips and frame indices' distribution (``rand``, as in training):

* ``before``: ``read_video`` at an earlier commit (``--before``, default 7aa0d27: before variable
  frame rates, rotation and the corrupt-file fallback), its two modules taken with ``git show``
  and imported as a package of their own, so both run in one process on the same clips;
* ``after``: ``data_modules.video.read_video`` as it is now;
* ``decord``: the released code's reader, ``decord.VideoReader(path, num_threads=1).get_batch``
  with its own ``rand`` index choice (skipped with a message when decord is not installed; it is
  not a dependency of this project);
* ``after, preprocessed``: ``read_video`` on the same clips after ``python -m vtr preprocess``
  (short side 256, 10 fps, a keyframe every 10 frames).

Clips (``web_clips.py``): 10-30 s, 320x240 and 480x270, 25-30 fps, x264 defaults with a keyframe
every 250 frames (x264's default) or every 30, in mp4; and the keyint-250 ones copied into
Matroska (no frame count: the reader counts the packets and checks the rate from their
timestamps). One process, one thread; clips/s = reads / CPU seconds of the process (best of
``--repeats`` passes), so other load on the machine matters less.

    python benchmarks/bench_reader.py [--clips-dir /tmp/web_clips] [--repeats 3] [--before 7aa0d27]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
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


def reader_at(revision: str) -> Callable[..., torch.Tensor]:
    """``read_video`` as it was at ``revision``: ``data_modules/video.py`` and ``video_stream.py``
    from ``git show``, imported as the package ``reader_before`` (beside today's ``data_modules``)."""
    package = Path(tempfile.mkdtemp()) / "reader_before"
    package.mkdir()
    for name in ("video.py", "video_stream.py"):
        show = ["git", "-C", str(ROOT), "show", f"{revision}:data_modules/{name}"]
        text = subprocess.run(show, capture_output=True, text=True, check=True).stdout
        (package / name).write_text(text.replace("data_modules.video_stream", "reader_before.video_stream"))
    (package / "__init__.py").write_text("")
    sys.path.insert(0, str(package.parent))
    return importlib.import_module("reader_before.video").read_video


def copy_to_matroska(src: Path, dst: Path) -> Path:
    """A stream copy of ``src`` into Matroska (kept across runs)."""
    if dst.exists():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


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


def _add(groups: dict[str, dict[str, list[Path]]], group: str, raw: Path, clips_dir: Path) -> None:
    """Put ``raw`` and its preprocessed copy (made once, kept across runs) in ``group``."""
    small = clips_dir / "preprocessed" / raw.name
    if not small.exists():
        small.parent.mkdir(parents=True, exist_ok=True)
        transcode(raw, small, PREPROCESS)
    entry = groups.setdefault(group, {"raw": [], "preprocessed": []})
    entry["raw"].append(raw)
    entry["preprocessed"].append(small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-dir", type=Path, default=Path("/tmp/vtr_bench_web_clips"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reader.json")
    parser.add_argument("--before", default="7aa0d27", help="the commit whose reader is the before column")
    args = parser.parse_args()
    torch.set_num_threads(1)

    groups: dict[str, dict[str, list[Path]]] = {}
    for i, spec in enumerate(SPECS):
        raw = encode(spec, args.clips_dir / "raw", seed=i)
        _add(groups, spec.group, raw, args.clips_dir)
        if spec.keyint == 250 and spec.width <= 480:
            mkv = copy_to_matroska(raw, args.clips_dir / "mkv" / f"{raw.stem}.mkv")
            _add(groups, f"{spec.group}, mkv", mkv, args.clips_dir)

    before = reader_at(args.before)
    readers = {
        "before": lambda p, n, rng: before(p, n, "rand", rng),
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
        "before": args.before,
        "preprocess": vars(PREPROCESS),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "av": av.__version__},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
