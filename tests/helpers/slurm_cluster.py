"""A throw-away one-node Slurm on this machine, for tests/test_slurm.py (and by hand).

    PYTHONPATH=tests python -m helpers.slurm_cluster up DIR     # writes DIR/slurm.conf, starts munged/slurmctld/slurmd
    SLURM_CONF=DIR/slurm.conf sbatch ...                         # (`up` prints the line to export)
    PYTHONPATH=tests python -m helpers.slurm_cluster down DIR   # stops the three daemons it started, by PID
    PYTHONPATH=tests python -m helpers.slurm_cluster check      # exit 0 if a cluster can be tried here, else say why

Everything lives in DIR: the munge key and socket, Slurm's config, state, spool, logs and PID
files. It needs Debian's slurmctld, slurmd, slurm-client and munge (`install()` gets them with
apt when run as root) and must run as root (SlurmUser=root). No cgroups are used
(proctrack/linuxproc, task/none); the node has the machine's CPUs and one partition.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "sbatch", "scontrol", "munged")
PARTITION = "vtr"
DAEMONS = ("slurmd", "slurmctld", "munged")  # stop order


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if _which(b) is None]


def why_not_startable() -> str | None:
    """None when a cluster can be tried here, else the reason it cannot."""
    if sys.platform != "linux":
        return "Slurm test needs Linux"
    if os.geteuid() != 0:
        return "Slurm test needs root (SlurmUser=root, installs packages with apt)"
    if missing_binaries() and shutil.which("apt-get") is None:
        return f"Slurm is not installed ({', '.join(missing_binaries())} missing) and there is no apt-get"
    return None


def install() -> None:
    """apt-get install the Slurm and munge packages when a binary is missing (root only)."""
    if not missing_binaries():
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    if missing_binaries():
        raise RuntimeError(f"still missing after apt-get install: {missing_binaries()}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(root: Path, cpus: int, first_job_id: int = 1) -> Path:
    for sub in ("state", "spool", "log", "run", "munge"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "munge", 0o755)
    key = root / "munge/munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    host = socket.gethostname().split(".")[0]
    conf = f"""\
ClusterName=vtrtest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.sock,cred_expire=10
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
LaunchParameters=use_interactive_step
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
FirstJobId={first_job_id}
KillWait=5
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""
    path = root / "slurm.conf"
    path.write_text(conf)
    return path


class SlurmCluster:
    def __init__(self, root: Path, cpus: int | None = None, first_job_id: int = 1):
        self.root = Path(root).resolve()
        self.cpus = cpus or os.cpu_count() or 1
        self.first_job_id = first_job_id
        self.conf = self.root / "slurm.conf"
        # The node is this machine under its own name: the job's SLURM_NODELIST (Lightning's
        # MASTER_ADDR) must resolve.
        self.node = socket.gethostname().split(".")[0]
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    # --- life cycle --------------------------------------------------------------------------
    def up(self, timeout: float = 60) -> SlurmCluster:
        write_config(self.root, self.cpus, self.first_job_id)
        m = self.root / "munge"
        self._start(
            "munged",
            [_which("munged"), "--force", f"--key-file={m}/munge.key", f"--socket={m}/munge.sock",
             f"--pid-file={m}/munged.pid", f"--log-file={self.root}/log/munged.log", f"--seed-file={m}/munged.seed"],
            m / "munged.pid",
        )  # fmt: skip
        self._start("slurmctld", [_which("slurmctld"), "-f", str(self.conf), "-i"], self.root / "run/slurmctld.pid")
        self._start("slurmd", [_which("slurmd"), "-f", str(self.conf), "-N", self.node], self.root / "run/slurmd.pid")
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.scontrol("show", "node", self.node, check=False)
            if "State=IDLE" in state:
                return self
            time.sleep(1)
        raise RuntimeError(f"node {self.node} did not become IDLE in {timeout:.0f} s:\n{state}\n{self.logs()}")

    def _start(self, name: str, cmd: list, pidfile: Path) -> None:
        res = subprocess.run([str(c) for c in cmd], env=self.env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{name} failed to start ({res.returncode}): {res.stdout}{res.stderr}\n{self.logs()}")
        for _ in range(100):  # the daemons write their PID file after forking
            if pidfile.is_file() and pidfile.read_text().strip():
                (self.root / f"run/{name}.started").write_text(pidfile.read_text().strip() + "\n")
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} wrote no PID file {pidfile}\n{self.logs()}")

    def down(self, timeout: float = 20) -> list[str]:
        """Stop the daemons this cluster started (by the PIDs recorded at start); returns their names."""
        stopped = []
        for name in DAEMONS:
            record = self.root / f"run/{name}.started"
            if not record.is_file():
                continue
            pid = int(record.read_text())
            if _alive(pid) and _comm(pid).startswith(name[:15]):
                os.kill(pid, signal.SIGTERM)
                deadline = time.time() + timeout
                while _alive(pid) and time.time() < deadline:
                    time.sleep(0.2)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
                stopped.append(name)
            record.unlink()
        return stopped

    # --- commands ------------------------------------------------------------------------------
    def run(self, *cmd: str, check: bool = True) -> str:
        res = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout}{res.stderr}")
        return res.stdout + (res.stderr if not check else "")

    def scontrol(self, *args: str, check: bool = True) -> str:
        return self.run("scontrol", *args, check=check)

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Restarts, ...)."""
        out = self.scontrol("show", "job", "-o", job_id)
        return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel this cluster's jobs and wait until their processes are gone (before `down`)."""
        self.run("scancel", "--user=root", check=False)
        deadline = time.time() + timeout
        while self.run("squeue", "-h", check=False).strip() and time.time() < deadline:
            time.sleep(1)

    def logs(self) -> str:
        parts = []
        for log in sorted((self.root / "log").glob("*.log")):
            parts.append(
                f"--- {log.name} (last lines)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            )
        return "\n".join(parts)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def main(argv: list[str]) -> int:
    if argv == ["check"]:
        reason = why_not_startable()
        print(reason or "ok")
        return 1 if reason else 0
    if len(argv) != 2 or argv[0] not in ("up", "down", "install"):
        print(__doc__)
        return 2
    action, root = argv[0], Path(argv[1])
    if action == "install":
        install()
    elif action == "up":
        reason = why_not_startable()
        if reason:
            print(reason, file=sys.stderr)
            return 1
        install()
        SlurmCluster(root).up()
        print(f"export SLURM_CONF={root.resolve()}/slurm.conf")
    else:
        cluster = SlurmCluster(root)
        cluster.cancel_all()
        print("stopped:", " ".join(cluster.down()) or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
