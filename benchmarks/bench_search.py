"""Speed and size of ``vtr index`` / ``vtr search``.

* indexing throughput (clips/s) on the demo's MSR-VTT videos, with 0 and 2 DataLoader workers, for
  a randomly initialised model of the demo's size (speed does not depend on the weights);
* query latency (text embedding + scoring + top-10) on synthetic indexes of 10k, 100k and 1M
  entries, exact (chunked float16 matrix product) and FAISS (flat inner product; built once,
  its build time reported apart); median of a few queries after a warm-up;
* index size on disk (embeddings + manifest) per 1,000 clips;
* start-up: the wall time of a whole ``python -m vtr search INDEX "query"`` process on synthetic
  indexes of 10 to 1M entries, this version beside the JSON-manifest one (``--before``, a git
  revision, run from ``git archive``), on the same embeddings; median of a few runs, interleaved.

``indexing`` and ``queries`` write benchmarks/results/search.json, ``startup``
benchmarks/results/search_startup.json. ``--parts``, ``--clips`` and ``--sizes`` shorten it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from data_modules.demo.corpus import train_tokenizer
from data_modules.demo.grammar import grammar_lines
from vtr.checkpoints import load_checkpoint
from vtr.config import load_config
from vtr.modules.retrieval import VideoTextModule
from vtr.search.files import FileStat
from vtr.search.index import build_index
from vtr.search.query import SearchIndex, faiss_index
from vtr.search.store import IndexStore

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT / "data/demo/msrvtt/videos/all"
RESULTS = ROOT / "benchmarks/results/search.json"
STARTUP_RESULTS = ROOT / "benchmarks/results/search_startup.json"
QUERIES = ("two small red triangles slide left", "a big green square grows", "one tiny blue circle moving up")
BEFORE = "7aa0d27"  # the last version with the JSON manifest
BLOCK = 100_000  # rows written (and committed) at a time to a synthetic index


def demo_checkpoint(folder: Path, data_root: Path = ROOT / "data/demo", embed_dim: int | None = None) -> Path:
    """A checkpoint of the demo recipe's model, randomly initialised, as training writes them
    (the tokenizer is the one under ``data_root``)."""
    dim = [] if embed_dim is None else [f"model.embed_dim={embed_dim}"]
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", [f"data.root={data_root}", *dim])
    config = OmegaConf.to_container(cfg, resolve=True)
    path = folder / "demo_random.ckpt"
    torch.save({"state_dict": VideoTextModule(config).state_dict(), "hyper_parameters": {"config": config}}, path)
    return path


def text_checkpoint(folder: Path, embed_dim: int) -> Path:
    """``demo_checkpoint`` with the demo's tokenizer written into ``folder``: no demo corpus needed."""
    train_tokenizer(grammar_lines(), folder / "tokenizer")
    return demo_checkpoint(folder, folder, embed_dim)


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
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        per_1000 = size / report.entries * 1000
    return rows, per_1000


def unit_rows(rows: int, dim: int) -> Iterator[np.ndarray]:
    """``rows`` random unit vectors (float16), ``BLOCK`` at a time; the same ones on every call."""
    rng = np.random.default_rng(0)
    for lo in range(0, rows, BLOCK):
        block = rng.standard_normal((min(BLOCK, rows - lo), dim)).astype(np.float32)
        yield (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float16)


def synthetic_index(folder: Path, ckpt: Path, rows: int) -> None:
    """An index of ``rows`` random clips written with the store's API, as ``vtr index`` runs of
    ``BLOCK`` clips each would (one chunk and one commit a block)."""
    loaded = load_checkpoint(ckpt)
    video = loaded.model_config["video"]
    identity = {"weights_sha256": loaded.weights_hash, "window": 0.0, "stride": 0,
                "num_frames": video["num_frames"], "img_size": video["img_size"]}  # fmt: skip
    store = IndexStore(folder)
    present: dict[str, FileStat] = {}
    for lo, block in zip(range(0, rows, BLOCK), unit_rows(rows, loaded.model_config["embed_dim"])):
        store.open(identity, block.shape[1], False, str(ckpt), str(folder))
        paths = [f"clip{i}.mp4" for i in range(lo, lo + len(block))]
        present.update((p, FileStat(1, 1)) for p in paths)
        clips = [{"path": p, "size": 1, "mtime_ns": 1, "start": 0.0, "end": 10.0, "windows": 1} for p in paths]
        store.pending.write(0, block, clips, [])
        store.commit(present)


def json_index(folder: Path, new: Path, rows: int) -> None:
    """The same index in the JSON store's format (``BEFORE``): manifest.json and embeddings-1.npy."""
    info = IndexStore(new).info()
    folder.mkdir()
    emb = np.lib.format.open_memmap(folder / "embeddings-1.npy", "w+", np.float16, (rows, info["dim"]))
    for lo, block in zip(range(0, rows, BLOCK), unit_rows(rows, info["dim"])):
        emb[lo : lo + len(block)] = block
    emb.flush()
    entries = [{"path": f"clip{i}.mp4", "start": 0.0, "end": 10.0} for i in range(rows)]
    manifest = {"format": 1, **{k: info[k] for k in ("identity", "checkpoint", "root", "text_model", "dim")},
                "generation": 1, "embeddings": "embeddings-1.npy", "files": {e["path"]: [1, 1] for e in entries},
                "entries": entries, "errors": []}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))


def median_latency(index: SearchIndex, faiss: bool, repeats: int = 5) -> float:
    index.search([QUERIES[0]], k=10, faiss=faiss)  # warm-up (and the FAISS build)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        index.search([QUERIES[i % len(QUERIES)]], k=10, faiss=faiss)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_queries(ckpt: Path, work: Path, sizes: list[int]) -> list[dict]:
    try:
        import faiss  # noqa: F401

        have_faiss = True
    except ImportError:
        have_faiss = False
    rows = []
    for size in sizes:
        folder = work / f"synthetic_{size}"
        synthetic_index(folder, ckpt, size)
        index = SearchIndex(folder)
        row = {"entries": size, "exact_ms": 1000 * median_latency(index, faiss=False)}
        if have_faiss:
            start = time.perf_counter()
            faiss_index(index.segments)
            row["faiss_build_s"] = time.perf_counter() - start
            row["faiss_ms"] = 1000 * median_latency(index, faiss=True)
        rows.append(row)
        shutil.rmtree(folder)
    return rows


def before_tree(work: Path, revision: str) -> Path:
    """The sources (src/, data_modules/) of ``revision``, to run its ``vtr search``."""
    tree = work / f"before_{revision}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src", "data_modules"],
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def search_process(tree: Path, index: Path) -> tuple[float, float, list[dict]]:
    """Wall time, CPU time (user + system) and hits of one ``python -m vtr search`` process run
    from the sources in ``tree``. CPU time is what other jobs on the machine disturb least."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}:{tree}"}
    cmd = [sys.executable, "-m", "vtr", "search", str(index), QUERIES[0], "-k", "10", "--json"]
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, json.loads(done.stdout)


def bench_startup(ckpt: Path, work: Path, sizes: list[int], before: str, repeats: int) -> list[dict]:
    """Each size written in both formats (the same embeddings), searched by both versions in turn;
    the fastest of ``repeats`` runs (the others were slowed by whatever else ran) and the median."""
    trees = {"before": before_tree(work, before), "after": ROOT}
    rows = []
    for size in sizes:
        indexes = {"before": work / f"startup_{size}_json", "after": work / f"startup_{size}"}
        synthetic_index(indexes["after"], ckpt, size)
        json_index(indexes["before"], indexes["after"], size)
        runs: dict[str, list[tuple[float, float]]] = {version: [] for version in trees}
        hits: dict[str, list[dict]] = {}
        for repeat in range(repeats + 1):  # the first round (bytecode compiled, files cached) is not counted
            for version, tree in trees.items():
                wall, cpu, hits[version] = search_process(tree, indexes[version])
                if repeat:
                    runs[version].append((wall, cpu))
        if [h["path"] for h in hits["before"]] != [h["path"] for h in hits["after"]]:
            raise AssertionError(f"{size} entries: the two versions find different clips")
        row: dict = {"entries": size}
        for version, times in runs.items():
            walls, cpus = [w for w, _ in times], [c for _, c in times]
            disk = sum(p.stat().st_size for p in indexes[version].rglob("*") if p.is_file())
            row[version] = {"wall_min_s": min(walls), "wall_median_s": statistics.median(walls), "cpu_min_s": min(cpus),
                            "wall_s": walls, "cpu_s": cpus, "index_bytes": disk}  # fmt: skip
        rows.append(row)
        for folder in indexes.values():
            shutil.rmtree(folder)
    return rows


def print_startup(rows: list[dict], before: str) -> None:
    base = rows[0]
    print(f"start-up of a whole `python -m vtr search INDEX QUERY -k 10` process (before: {before}), seconds")
    print(f"{'':9} {'wall, fastest run':^35} {'wall, median':^17} {'CPU, least':^17}")
    columns = ("entries", "before", "after", f"before+{base['entries']}", f"after+{base['entries']}")
    print(" ".join(f"{c:>9}" for c in columns + ("before", "after", "before", "after")))
    for r in rows:
        b, a = r["before"], r["after"]
        extra = [r[v]["wall_min_s"] - base[v]["wall_min_s"] for v in ("before", "after")]
        values = [b["wall_min_s"], a["wall_min_s"], *extra, b["wall_median_s"], a["wall_median_s"]]
        print(f"{r['entries']:>9} " + " ".join(f"{v:>9.2f}" for v in values + [b["cpu_min_s"], a["cpu_min_s"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", nargs="*", choices=("indexing", "queries", "startup"),
                        default=["indexing", "queries", "startup"])  # fmt: skip
    parser.add_argument("--clips", type=int, default=200, help="demo videos indexed per worker setting")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000], help="query latency")
    parser.add_argument("--startup-sizes", type=int, nargs="*", default=[10, 10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=256, help="embedding width of the synthetic indexes")
    parser.add_argument("--before", default=BEFORE, help="git revision of the version to compare start-up with")
    parser.add_argument("--repeats", type=int, default=5, help="start-up runs per version and size")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    machine = {"cpu_threads": torch.get_num_threads(), "platform": platform.platform()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "indexing" in args.parts:
            indexing, per_1000 = bench_indexing(demo_checkpoint(work), work, args.clips)
            print("indexing (demo model, 64 px, 4 frames, batch 32)")
            print(f"{'workers':>8} {'clips':>6} {'seconds':>8} {'clips/s':>8}")
            for r in indexing:
                print(f"{r['workers']:>8} {r['clips']:>6} {r['seconds']:>8.1f} {r['clips_per_s']:>8.1f}")
            print(f"index size on disk: {per_1000 / 1024:.1f} KiB per 1,000 clips (embeddings float16 + manifest)")
        ckpt = text_checkpoint(work / "text", args.dim) if {"queries", "startup"} & set(args.parts) else None
        if "queries" in args.parts:
            queries = bench_queries(ckpt, work, args.sizes)
            print(f"query latency (one query, text embedding + scoring + top-10, {args.dim}-d), median ms")
            print(f"{'entries':>9} {'exact':>9} {'faiss':>9} {'faiss build s':>14}")
            for r in queries:
                faiss_ms, faiss_build_s = r.get("faiss_ms", float("nan")), r.get("faiss_build_s", float("nan"))
                print(f"{r['entries']:>9} {r['exact_ms']:>9.1f} {faiss_ms:>9.1f} {faiss_build_s:>14.2f}")
        if {"indexing", "queries"} <= set(args.parts):
            result = {"indexing": indexing, "index_bytes_per_1000_clips": per_1000, "queries": queries,
                      "dim": args.dim, "machine": machine}  # fmt: skip
            RESULTS.write_text(json.dumps(result, indent=2) + "\n")
            print(f"wrote {RESULTS}")
        if "startup" in args.parts:
            startup = bench_startup(ckpt, work, args.startup_sizes, args.before, args.repeats)
            print_startup(startup, args.before)
            result = {"startup": startup, "dim": args.dim, "before": args.before, "machine": machine}
            STARTUP_RESULTS.write_text(json.dumps(result, indent=2) + "\n")
            print(f"wrote {STARTUP_RESULTS}")


if __name__ == "__main__":
    main()
