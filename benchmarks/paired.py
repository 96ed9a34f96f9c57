"""Paired comparison of ablation arms: per-seed differences against a baseline arm, the mean
difference with its 95% interval (Student's t), and the smallest effect the design detects.

Reads ``results/ablation_NAME.json`` (written by ``ablation.py``); arms are paired by seed, so
both must have run the same seeds. The detectable effect is that of a two-sided paired t-test at
5% with 80% power, ``(t_0.975 + t_0.80) * sd / sqrt(n)`` with n - 1 degrees of freedom, taking the
observed spread of the differences as the true one.

    python benchmarks/paired.py e1_select demo_contrastive demo_warm demo_warm_frozen
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PRIMARY = ("msrvtt_1k_galleries_t2v_Rsum", "probe_kind_bacc_final", "probe_kind_bacc_middle")
SECONDARY = (
    "msrvtt/t2v_Rsum", "single_attribute/t2v_Rsum", "probe_colour_bacc_final", "probe_colour_bacc_middle",
    "grounding_kind_acc", "grounding_colour_acc",
)  # fmt: skip


def t_cdf(x: float, df: int) -> float:
    """Student's t distribution function, by Simpson's rule on the density (float64; |error| < 1e-9
    for the quantiles used here)."""
    if x < 0:
        return 1.0 - t_cdf(-x, df)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = lambda t: math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))  # noqa: E731
    steps = 4000
    h = x / steps
    area = density(0.0) + density(x) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 0.5 + area * h / 3


def t_quantile(p: float, df: int) -> float:
    lo, hi = -100.0, 100.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def compare(base: list[float], arm: list[float]) -> dict:
    diffs = [a - b for a, b in zip(arm, base, strict=True)]
    n = len(diffs)
    mean = statistics.mean(diffs)
    sd = statistics.stdev(diffs) if n > 1 else float("nan")
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    detectable = (t_quantile(0.975, n - 1) + t_quantile(0.8, n - 1)) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"base_mean": statistics.mean(base), "arm_mean": statistics.mean(arm), "diffs": diffs,
            "mean": mean, "ci95": [mean - half, mean + half], "half_width": half, "detectable": detectable}  # fmt: skip


def readings(row: dict) -> dict[str, list[float]]:
    """The row's primary readings and a few secondary ones, per seed."""
    out = {k: row[k] for k in PRIMARY if k in row}
    out.update({k: row[k] for k in SECONDARY if k in row})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the ablation's --name")
    parser.add_argument("baseline", help="recipe stem of the arm the others are compared with")
    parser.add_argument("arms", nargs="+", help="recipe stems")
    args = parser.parse_args()
    rows = {r["recipe"]: r for r in json.loads((RESULTS / f"ablation_{args.name}.json").read_text())["rows"]}
    base = rows[args.baseline]
    result = {}
    for arm in args.arms:
        if rows[arm]["seeds"] != base["seeds"]:
            raise SystemExit(f"{arm} ran seeds {rows[arm]['seeds']}, {args.baseline} {base['seeds']}: not paired")
        base_readings, arm_readings = readings(base), readings(rows[arm])
        result[arm] = {k: compare(base_readings[k], arm_readings[k]) for k in base_readings if k in arm_readings}
        print(f"\n{arm} minus {args.baseline}, seeds {base['seeds']}")
        print("| reading | baseline | arm | per-seed differences | mean ± 95% CI | detectable |")
        print("|---|---|---|---|---|---|")
        for key, c in result[arm].items():
            diffs = ", ".join(f"{d:+.1f}" for d in c["diffs"])
            print(f"| {key} | {c['base_mean']:.1f} | {c['arm_mean']:.1f} | {diffs} | "
                  f"{c['mean']:+.1f} ± {c['half_width']:.1f} | {c['detectable']:.1f} |")  # fmt: skip
        walls = statistics.mean(rows[arm]["wall_seconds"]), statistics.mean(base["wall_seconds"])
        print(f"wall-clock a run: {walls[0]:.0f} s (arm) against {walls[1]:.0f} s (baseline)")
    out = RESULTS / f"paired_{args.name}.json"
    out.write_text(json.dumps({"baseline": args.baseline, "arms": result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
