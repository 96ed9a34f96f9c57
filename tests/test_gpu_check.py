"""benchmarks/gpu_check.py: the analytic FLOP count against a hand count, and the CPU dry run
(every part recorded, a failing part recorded while the others still run)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from vtr.config import load_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_check import model_flops  # noqa: E402

TINY = [
    "model.video.img_size=32",
    "model.video.patch_size=16",  # N = 4 patches a frame
    "model.video.num_frames=2",  # T = 2, L = 1 + 2*4 = 9 tokens
    "model.video.width=8",
    "model.video.depth=1",
    "model.video.heads=2",
    "model.video.mlp_ratio=4",
    "model.text.width=4",
    "model.text.depth=1",
    "model.text.heads=2",
    "model.embed_dim=2",
]
# Hand count, one clip and one 3-token caption, 2*m*n*k per matmul:
PATCH = 2 * 8 * 768 * 8  # 8 patches of 3*16*16 values -> width 8
QKV_PROJ = 2 * 9 * 8 * 24 + 2 * 9 * 8 * 8  # 9 tokens: qkv 8 -> 24, proj 8 -> 8
CLS = 2 * (2 * 1 * 9 * 8)  # [CLS] query over 9 keys: scores + values
TEMPORAL = QKV_PROJ + CLS + 2 * (2 * 4 * 2 * 3 * 8)  # 4 groups of 2 queries over [CLS] + 2 keys
SPATIAL = QKV_PROJ + CLS + 2 * (2 * 2 * 4 * 5 * 8)  # 2 groups of 4 queries over [CLS] + 4 keys
MLP = 2 * 9 * 8 * 32 + 2 * 9 * 32 * 8
ENCODER = PATCH + TEMPORAL + SPATIAL + MLP
VIDEO = ENCODER + 2 * 8 * 2  # [CLS] -> embed_dim 2
TEXT = (2 * 3 * 4 * 12 + 2 * 3 * 4 * 4) + 2 * (2 * 3 * 3 * 4) + (2 * 3 * 4 * 16 + 2 * 3 * 16 * 4) + 2 * 4 * 2


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        (["model.mvm.enabled=false"], 3 * (VIDEO + TEXT)),
        (["model.mvm.enabled=true", "model.mvm.contrastive_view=masked"], 3 * (VIDEO + TEXT) + ENCODER),
        (["model.mvm.enabled=true", "model.mvm.contrastive_view=full"], 3 * (2 * VIDEO + TEXT) + ENCODER),
    ],
)
def test_model_flops_match_a_hand_count(objective, expected):
    cfg = load_config(None, [*TINY, *objective])
    assert model_flops(cfg, batch=5, text_len=3) == 5 * expected


@pytest.mark.slow  # 90-130 s on a shared 2-core CPU
def test_dry_run_records_every_part_and_a_failing_one(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(out), "--fail-part", "precision"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == {"train_step", "checkpointing_compile", "strategies", "precision", "data_wall", "meta"}
    precision = results["precision"]
    assert not precision["ok"] and precision["error"] == "RuntimeError: --fail-part precision"
    for name in ("train_step", "checkpointing_compile", "strategies", "data_wall"):
        assert results[name]["ok"], results[name]
    steps = results["train_step"]["result"] + results["checkpointing_compile"]["result"]
    timed = [row for row in steps if "skipped" not in row]
    assert len(timed) == 4 and all(math.isfinite(r["seconds_per_step"]) and r["seconds_per_step"] > 0 for r in timed)
    assert all(0 < r["mfu"] < 1 for r in timed)
    fsdp, fsdp2 = results["strategies"]["result"]
    assert "CUDA" in fsdp["skipped"] and fsdp2["checkpoint"] and fsdp2["resume_seconds"] > 0
    assert results["data_wall"]["result"]["workers_per_gpu_needed"] >= 1
    assert "| precision | ERROR" in done.stdout
