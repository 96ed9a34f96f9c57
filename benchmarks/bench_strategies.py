"""DDP vs FSDP2 on this machine's CPU: peak memory and step time per process, 2 processes (gloo).

Each strategy is one real ``Trainer.fit`` of the MILES recipe (``experiments/pretrain/demo.yaml``,
model sizes below), built by ``vtr.build`` / ``vtr.sharding`` exactly as a run would be, with
validation, logging and checkpoints off. Every rank reports its peak resident memory (max RSS, which
includes the Python / PyTorch baseline and the data pipeline), the bytes of parameters, gradients
and AdamW state it holds after training (the part that sharding divides by the world size), and
its step times (forward + backward + optimizer + EMA, the first ``--warmup`` steps dropped).

    python benchmarks/bench_strategies.py [--model demo|vitb] [--steps 12] [--batch 4] [--devices 2]
    python benchmarks/bench_strategies.py --tiny --data-root /tmp/demo   # seconds: a smoke test

A table is printed and JSON written to ``benchmarks/results/strategies.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from model_sizes import vit_b_distilbert

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("ddp", "fsdp2")

MODELS = {
    "demo": [],  # the demo recipe's own sizes
    "vitb": vit_b_distilbert(112),  # random init, at 112 px to stay tractable on a CPU
    "tiny": [  # tests/test_training.py's tiny sizes
        "model.video.img_size=32",
        "data.input_res=32",
        "model.video.patch_size=8",
        "model.video.width=32",
        "model.video.depth=1",
        "model.video.heads=2",
        "model.text.width=32",
        "model.text.depth=1",
        "model.text.heads=2",
        "model.embed_dim=16",
    ],
}


def overrides(args: argparse.Namespace, strategy: str, out_dir: Path) -> list[str]:
    steps = args.steps
    return [
        f"data.root={args.data_root}",
        f"model.text.name_or_path={args.data_root}/tokenizer",
        "model.text.pretrained=false",
        "model.video.pretrained=null",
        "model.mvm.start_step=0",  # MILES from the first step
        *MODELS[args.model],
        f"data.batch_size={args.batch}",
        f"data.num_frames={args.frames}",
        "data.num_workers=0",
        "data.val=[]",
        "data.test=[]",
        f"output_dir={out_dir}",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=null",
        "trainer.val_check_interval=null",
        "trainer.check_val_every_n_epoch=null",
        "trainer.limit_val_batches=0",
        "trainer.accelerator=cpu",
        f"trainer.devices={args.devices}",
        f"trainer.strategy={strategy}",
        "trainer.precision=32-true",
        "trainer.enable_progress_bar=false",
    ]


# ------------------------------------------------------------------------------------ one strategy
def worker(args: argparse.Namespace) -> None:
    """Runs on every rank (Lightning re-executes this command for ranks > 0)."""
    import lightning as L
    import torch
    from omegaconf import OmegaConf

    from vtr.build import build_datamodule, build_module
    from vtr.callbacks.snapshot_ema import SnapshotEMA
    from vtr.config import load_config
    from vtr.sharding import build_strategy

    torch.set_num_threads(args.threads)
    out_dir = Path(args.worker_out)
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", overrides(args, args.strategy, out_dir))

    def local_bytes(tensors) -> int:
        total = 0
        for t in tensors:
            t = t.to_local() if hasattr(t, "to_local") else t
            total += t.numel() * t.element_size()
        return total

    class Probe(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._start = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self._start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.times.append(time.perf_counter() - self._start)

        def on_train_end(self, trainer, pl_module) -> None:
            params = list(pl_module.parameters())
            optim_state = [v for s in trainer.optimizers[0].state.values() for v in s.values() if torch.is_tensor(v)]
            result = {
                "rank": trainer.global_rank,
                "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "param_mib": local_bytes(params) / 2**20,
                "grad_mib": local_bytes(p.grad for p in params if p.grad is not None) / 2**20,
                "optim_state_mib": local_bytes(optim_state) / 2**20,
                "step_s": self.times,
            }
            (out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))

    L.seed_everything(cfg.seed, workers=True)
    datamodule, module = build_datamodule(cfg), build_module(cfg)
    callbacks = [Probe()]
    if cfg.model.mvm.enabled or cfg.model.mascot.enabled:
        callbacks.append(SnapshotEMA(cfg.model.mvm.ema_momentum, cfg.model.mvm.ema_schedule))
    trainer_args = {**OmegaConf.to_container(cfg.trainer), "strategy": build_strategy(cfg)}
    trainer = L.Trainer(
        **trainer_args,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        default_root_dir=str(out_dir),
        inference_mode=cfg.trainer.strategy != "fsdp2",
    )
    trainer.fit(module, datamodule=datamodule)


# ------------------------------------------------------------------------------------ orchestration
def run_strategy(args: argparse.Namespace, strategy: str) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--strategy", strategy, "--worker-out", tmp]
        for key in ("model", "steps", "batch", "frames", "devices", "threads", "data_root"):
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
        done = subprocess.run(
            cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"}
        )
        if done.returncode != 0:
            raise SystemExit(f"{strategy} failed:\n{done.stderr[-4000:]}")
        return [json.loads((Path(tmp) / f"rank{r}.json").read_text()) for r in range(args.devices)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="demo")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the step time")
    parser.add_argument("--batch", type=int, default=4, help="clips per rank and training dataset")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--data-root", type=Path, default=ROOT / "data/demo")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--tiny", action="store_true", help="tiny model, 4 steps: checks that the benchmark runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/strategies.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", choices=STRATEGIES, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.tiny:
        args.model, args.steps, args.warmup, args.frames = "tiny", 4, 1, 2
    if not (args.data_root / "tokenizer").is_dir():
        raise SystemExit(f"no demo corpus in {args.data_root}: run `make demo-data` (or pass --data-root)")

    rows = []
    for strategy in args.strategies:
        ranks = run_strategy(args, strategy)
        times = [t for r in ranks for t in r["step_s"][args.warmup :]]
        rows.append(
            {
                "strategy": strategy,
                "processes": args.devices,
                "step_s_median": statistics.median(times),
                "max_rss_mib_per_rank": [round(r["max_rss_mib"], 1) for r in ranks],
                "param_mib_per_rank": [round(r["param_mib"], 2) for r in ranks],
                "grad_mib_per_rank": [round(r["grad_mib"], 2) for r in ranks],
                "optim_state_mib_per_rank": [round(r["optim_state_mib"], 2) for r in ranks],
                "ranks": ranks,
            }
        )

    header = f"{'strategy':<9}{'step s (median)':>17}{'max RSS MiB/rank':>22}{'params+grads+Adam MiB/rank':>30}"
    print(
        f"model={args.model} batch={args.batch}/rank frames={args.frames} steps={args.steps} processes={args.devices}"
    )
    print(header)
    for row in rows:
        rss = "/".join(f"{v:.0f}" for v in row["max_rss_mib_per_rank"])
        held = "/".join(
            f"{p + g + o:.1f}"
            for p, g, o in zip(row["param_mib_per_rank"], row["grad_mib_per_rank"], row["optim_state_mib_per_rank"])
        )
        print(f"{row['strategy']:<9}{row['step_s_median']:>17.3f}{rss:>22}{held:>30}")

    meta = {
        "model": args.model,
        "model_overrides": MODELS[args.model],
        "batch_per_rank": args.batch,
        "frames": args.frames,
        "steps": args.steps,
        "warmup_steps_dropped": args.warmup,
        "threads_per_process": args.threads,
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
