"""Time `retrieval_metrics` on random float32 matrices (one correct item per query).

The metric runs on every validation epoch over the full test set, so it must stay well
under the cost of the forward passes: 10k x 10k (MSR-VTT-sized and beyond) under 2 s on CPU.
Reports the median of a few runs after a warm-up and writes benchmarks/results/metrics.json.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

from vtr.metrics import retrieval_metrics

SIZES = (1_000, 10_000)
RUNS = 5
RESULTS = Path(__file__).resolve().parent / "results" / "metrics.json"


def time_size(n: int, tie_break: str) -> float:
    """Median wall-clock seconds of `retrieval_metrics` on an n x n matrix."""
    gen = torch.Generator().manual_seed(0)
    sim = torch.randn(n, n, generator=gen)
    relevant = torch.eye(n, dtype=torch.bool)
    retrieval_metrics(sim, relevant, tie_break)  # warm-up: allocator, thread pool
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        retrieval_metrics(sim, relevant, tie_break)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    rows = [
        {"size": f"{n}x{n}", "tie_break": tb, "seconds": time_size(n, tb)}
        for n in SIZES
        for tb in ("average", "optimistic")
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {RUNS} runs\n")
    print("| size | tie_break | seconds |\n|---|---|---|")
    for row in rows:
        print(f"| {row['size']} | {row['tie_break']} | {row['seconds']:.3f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "runs": RUNS,
    }
    RESULTS.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
