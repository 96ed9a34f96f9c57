"""benchmarks/paired.py: Student's t quantiles against printed table values, and a paired
comparison worked by hand."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from paired import compare, t_quantile  # noqa: E402


@pytest.mark.parametrize(
    ("p", "df", "table"),
    [(0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 7, 2.365), (0.975, 29, 2.045), (0.8, 7, 0.896), (0.8, 2, 1.061)],
)
def test_t_quantile_matches_the_printed_table(p: float, df: int, table: float) -> None:
    assert t_quantile(p, df) == pytest.approx(table, abs=6e-4)


def test_compare_pairs_by_position_and_uses_n_minus_1() -> None:
    base, arm = [10.0, 20.0, 30.0], [12.0, 21.0, 33.0]  # differences 2, 1, 3: mean 2, sd 1
    c = compare(base, arm)
    assert c["diffs"] == [2.0, 1.0, 3.0]
    assert c["mean"] == pytest.approx(2.0)
    assert c["half_width"] == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert c["detectable"] == pytest.approx((4.303 + 1.061) / math.sqrt(3), abs=1e-3)
    assert c["ci95"] == pytest.approx([2.0 - 4.303 / math.sqrt(3), 2.0 + 4.303 / math.sqrt(3)], abs=1e-3)
