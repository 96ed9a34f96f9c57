"""Speed and size of ``vtr index`` / ``vtr search``.

* indexing throughput (clips/s) on the demo's MSR-VTT videos, with 0 and 2 DataLoader workers, for
  a randomly initialised model of the demo's size (speed does not depend on the weights);
* query latency (text embedding + scoring + top-10) on synthetic indexes of 10k, 100k and 1M
  entries, exact (chunked float16 matrix product) and FAISS (flat inner product; built once,
  its build time reported apart); median of a few queries after a warm-up;
* index size on disk (embeddings + manifest) per 1,000 clips.

Prints a table and writes benchmarks/results/search.json. ``--clips`` and ``--sizes`` shorten it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from vtr.config import load_config
from vtr.modules.retrieval import VideoTextModule
from vtr.search.index import build_index
from vtr.search.query import SearchIndex, faiss_index
from vtr.search.store import FORMAT

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT / "data/demo/msrvtt/videos/all"
RESULTS = ROOT / "benchmarks/results/search.json"
QUERIES = ("two small red triangles slide left", "a big green square grows", "one tiny blue circle moving up")


def demo_checkpoint(folder: Path) -> Path:
    """A checkpoint of the demo recipe's model, randomly initialised, as training writes them."""
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", [f"data.root={ROOT / 'data/demo'}"])
    config = OmegaConf.to_container(cfg, resolve=True)
    path = folder / "demo_random.ckpt"
    torch.save({"state_dict": VideoTextModule(config).state_dict(), "hyper_parameters": {"config": config}}, path)
    return path


def bench_indexing(ckpt: Path, work: Path, clips: int) -> tuple[list[dict], float]:
    folder = work / "videos"
    folder.mkdir()
    for video in sorted(VIDEOS.glob("*.mp4"))[:clips]:
        os.symlink(video, folder / video.name)
    rows, per_1000 = [], 0.0
    for workers in (0, 2):
        out = work / f"index_w{workers}"
        start = time.perf_counter()
        report = build_index(folder, ckpt, out, batch_size=32, workers=workers, progress=False)
        seconds = time.perf_counter() - start
        rows.append(
            {"workers": workers, "clips": report.entries, "seconds": seconds, "clips_per_s": report.entries / seconds}
        )
        size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
        per_1000 = size / report.entries * 1000
    return rows, per_1000


def synthetic_index(folder: Path, template: Path, rows: int, dim: int) -> None:
    """An index of ``rows`` random unit vectors, under the template index's identity."""
    manifest = json.loads((template / "manifest.json").read_text())
    rng = np.random.default_rng(0)
    emb = np.lib.format.open_memmap(folder / "embeddings-1.npy", mode="w+", dtype=np.float16, shape=(rows, dim))
    for lo in range(0, rows, 100_000):
        block = rng.standard_normal((min(100_000, rows - lo), dim)).astype(np.float32)
        emb[lo : lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    emb.flush()
    entries = [{"path": f"clip{i}.mp4", "start": 0.0, "end": 10.0} for i in range(rows)]
    manifest.update(format=FORMAT, generation=1, embeddings="embeddings-1.npy", entries=entries, errors=[],
                    files={f"clip{i}.mp4": [1, 1] for i in range(rows)})  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))


def median_latency(index: SearchIndex, faiss: bool, repeats: int = 5) -> float:
    index.search([QUERIES[0]], k=10, faiss=faiss)  # warm-up (and the FAISS build)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        index.search([QUERIES[i % len(QUERIES)]], k=10, faiss=faiss)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_queries(template: Path, work: Path, sizes: list[int], dim: int) -> list[dict]:
    try:
        import faiss  # noqa: F401

        have_faiss = True
    except ImportError:
        have_faiss = False
    rows = []
    for size in sizes:
        folder = work / f"synthetic_{size}"
        folder.mkdir()
        synthetic_index(folder, template, size, dim)
        index = SearchIndex(folder)
        row = {"entries": size, "exact_ms": 1000 * median_latency(index, faiss=False)}
        if have_faiss:
            start = time.perf_counter()
            faiss_index(index.embeddings)
            row["faiss_build_s"] = time.perf_counter() - start
            row["faiss_ms"] = 1000 * median_latency(index, faiss=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=200, help="demo videos indexed per worker setting")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt = demo_checkpoint(work)
        indexing, per_1000 = bench_indexing(ckpt, work, args.clips)
        dim = json.loads((work / "index_w0/manifest.json").read_text())["dim"]
        queries = bench_queries(work / "index_w0", work, args.sizes, dim)
    print("indexing (demo model, 64 px, 4 frames, batch 32)")
    print(f"{'workers':>8} {'clips':>6} {'seconds':>8} {'clips/s':>8}")
    for r in indexing:
        print(f"{r['workers']:>8} {r['clips']:>6} {r['seconds']:>8.1f} {r['clips_per_s']:>8.1f}")
    print(f"index size on disk: {per_1000 / 1024:.1f} KiB per 1,000 clips (embeddings {dim} x float16 + manifest)")
    print("query latency (one query, text embedding + scoring + top-10), median ms")
    print(f"{'entries':>9} {'exact':>9} {'faiss':>9} {'faiss build s':>14}")
    for r in queries:
        faiss_ms, faiss_build_s = r.get("faiss_ms", float("nan")), r.get("faiss_build_s", float("nan"))
        print(f"{r['entries']:>9} {r['exact_ms']:>9.1f} {faiss_ms:>9.1f} {faiss_build_s:>14.2f}")
    result = {"indexing": indexing, "index_bytes_per_1000_clips": per_1000, "queries": queries, "dim": dim,
              "machine": {"cpu_threads": torch.get_num_threads(), "platform": platform.platform()}}  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
