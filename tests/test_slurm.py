"""experiments/slurm/pretrain.sbatch under a real (one-node, throw-away) Slurm: pre-empted by
SIGUSR1, every rank saves the hpc checkpoint (vtr.callbacks.slurm_requeue) and the job is requeued;
the requeued job resumes at the step it had reached and finishes. `make test-slurm` (root: it
apt-installs and starts Slurm); `make test` runs it where it can. It takes minutes."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.runs import tiny_overrides
from helpers.slurm_cluster import SlurmCluster, install, why_not_startable
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 200
VAL_EVERY = 40  # the first last.ckpt appears at this step: the signal is sent after it
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    reason = why_not_startable()
    if reason:
        if os.environ.get("VTR_REQUIRE_SLURM"):
            pytest.fail(f"Slurm cannot be started here: {reason}")
        pytest.skip(reason)
    install()
    # A random first job id: the job's MASTER_PORT derives from it, and two such clusters may share a machine.
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=2, first_job_id=random.randint(100, 999) * 1000)
    try:  # Lightning's MASTER_ADDR is the job's first node name; sbatch passes our environment on
        socket.gethostbyname(c.node)
    except OSError:
        c.env["MASTER_ADDR"] = "127.0.0.1"
    try:
        yield c.up()
    finally:
        c.cancel_all()
        stopped = c.down()
        assert set(stopped) == {"munged", "slurmctld", "slurmd"}, f"daemons still recorded: {stopped}"


def _tiny_args(data_root: Path, out: Path) -> str:
    """The tests' tiny run (helpers.runs.tiny_overrides), DDP over gloo on the job's 2 CPU tasks,
    validating (and so checkpointing) every VAL_EVERY steps."""
    sized_by_the_job = ("trainer.devices=", "trainer.strategy=", "trainer.val_check_interval=")
    tiny = [arg for arg in tiny_overrides(data_root, out, steps=MAX_STEPS) if not arg.startswith(sized_by_the_job)]
    return " ".join([*tiny, "trainer.strategy=ddp", f"trainer.val_check_interval={VAL_EVERY}"])


def _train_steps_by_process(run_dir: Path) -> list[list[int]]:
    """The train/loss steps each training process (rank 0 of each start of the job) logged, in start order.
    One file at a time: TensorBoard's directory reader would drop the steps a restart logs again."""
    groups: dict[str, tuple[float, list[int]]] = {}
    for path in run_dir.glob("events.out.tfevents.*"):
        _, _, _, stamp, *_, pid, _ = path.name.split(".")
        acc = EventAccumulator(str(path)).Reload()
        steps = [e.step for e in acc.Scalars("train/loss")] if "train/loss" in acc.Tags()["scalars"] else []
        first, acc_steps = groups.get(pid, (float("inf"), []))
        groups[pid] = (min(first, float(stamp)), acc_steps + steps)
    return [sorted(steps) for _, steps in sorted(groups.values())]


def _wait(what: str, predicate, timeout: float, cluster: SlurmCluster, job: str, log: Path):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        state = cluster.job(job)
        if state["JobState"] in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY") or (
            state["JobState"] == "COMPLETED" and what != "the job to complete"
        ):
            break
        time.sleep(1)
    text = log.read_text(errors="replace") if log.is_file() else "(no job output)"
    text = "\n".join(line for line in text.splitlines() if not re.search(r"It is recommended to use|socket.cpp", line))
    state = {
        k: v
        for k, v in cluster.job(job).items()
        if k in ("JobId", "JobState", "Reason", "Restarts", "ExitCode", "RunTime")
    }
    pytest.fail(f"timed out / job ended waiting for {what}: {state}\n--- job output\n{text[-6000:]}\n{cluster.logs()}")


def test_preempted_job_is_requeued_and_resumes_where_it_stopped(cluster, tiny_demo_root, tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    log = tmp_path / "slurm-job.out"
    started = time.time()
    job = cluster.run(
        "sbatch", "--parsable", f"--chdir={ROOT}", f"--output={log}",
        "--nodes=1", "--gpus-per-node=0", "--ntasks-per-node=2", "--cpus-per-task=1", "--time=15",
        str(ROOT / "experiments/slurm/pretrain.sbatch"),
        "EXP=demo", f"DATA_ROOT={tiny_demo_root}", f"PYTHON={sys.executable}",
        f"ARGS={_tiny_args(tiny_demo_root, out)}",
    ).strip().split(";")[0]  # fmt: skip
    run_dir = out / "demo_pretrain" / job  # the run folder is keyed by the job id
    try:
        # Mid-run (after the first validation's last.ckpt): what --signal=SIGUSR1@90 does before
        # the time limit, sent to every task of the job's steps.
        _wait("the first checkpoint", lambda: (run_dir / "checkpoints/last.ckpt").is_file(), 240, cluster, job, log)
        assert cluster.job(job)["JobState"] == "RUNNING"
        cluster.run("scancel", "--signal=USR1", job)
        hpc = run_dir / "hpc_ckpt_1.ckpt"
        _wait("the requeue", lambda: int(cluster.job(job)["Restarts"]) >= 1, 120, cluster, job, log)
        _wait("the job to complete", lambda: cluster.job(job)["JobState"] == "COMPLETED", 360, cluster, job, log)
    finally:
        if cluster.job(job)["JobState"] not in ("COMPLETED", "FAILED", "CANCELLED"):
            cluster.run("scancel", job, check=False)
    elapsed = time.time() - started
    text = log.read_text(errors="replace")
    state = cluster.job(job)

    # Requeued once (rank 0's scontrol requeue after the SIGUSR1), then finished.
    assert state["Restarts"] == "1" and state["ExitCode"] == "0:0", state
    assert "Requeued SLURM job" in text and "DUE TO JOB REQUEUE" in text, text[-4000:]
    # The hpc checkpoint landed in the job's run folder, mid-run, and the second start resumed from it.
    assert hpc.is_file(), sorted(p.name for p in run_dir.iterdir())
    reached = torch.load(hpc, map_location="cpu", weights_only=False)["global_step"]
    assert VAL_EVERY <= reached < MAX_STEPS, reached
    assert re.search(rf"Restoring states from the checkpoint path at {re.escape(str(hpc))}", text), text[-4000:]
    first_run, second_run = _train_steps_by_process(run_dir)
    assert first_run[0] == 0 and first_run[-1] >= reached - 1, (first_run[:3], first_run[-3:], reached)
    # The second start went on from there, not from step 0, and made exactly the steps left (one
    # train/loss point a step). vtr's SlurmRequeue saves between steps, so its first step is `reached`.
    assert second_run == list(range(reached, MAX_STEPS)), (second_run[:3], second_run[-3:], reached)
    # ... and finished: the test split was evaluated after training.
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "msrvtt" in metrics["test"], metrics
    print(f"\nslurm job {job}: hpc checkpoint at step {reached}, resumed there, finished in {elapsed:.0f} s")
