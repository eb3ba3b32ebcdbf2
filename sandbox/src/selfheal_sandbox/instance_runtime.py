"""One running instance in the sandbox: its loopback address, what a boot runs and
in which environment, and the meter of its CPU. The lifecycle (boot delay, stop,
reboot, terminate) and the reasons for these choices are in ec2_runtime.py."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field

import psutil

from .state import StateDir

# Stand-ins for the systemd units a golden image enables (paths in the root).
BOOT_SERVICES = ("opt/selfheal-web/bin/start.sh",)
# vCPUs of common instance types (EC2 instance type specs); others count as 2.
VCPUS = {
    **dict.fromkeys(("t2.nano", "t2.micro", "t2.small"), 1),
    **dict.fromkeys(("t2.medium", "t2.large", "t3.nano", "t3.micro", "t3.small"), 2),
    **dict.fromkeys(("t3.medium", "t3.large", "t3a.micro", "t3a.small", "t3a.medium"), 2),
    **dict.fromkeys(("t4g.nano", "t4g.micro", "t4g.small", "t4g.medium", "t4g.large"), 2),
    **dict.fromkeys(("m5.large", "c5.large", "r5.large", "m6i.large", "c6i.large"), 2),
    **dict.fromkeys(("t2.xlarge", "t3.xlarge", "m5.xlarge", "c5.xlarge", "m6i.xlarge"), 4),
    **dict.fromkeys(("t2.2xlarge", "t3.2xlarge", "m5.2xlarge", "c5.2xlarge"), 8),
}
DEFAULT_VCPUS = 2


_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_HOST_ADDRESSES = (ipaddress.IPv4Address("127.0.0.0"), ipaddress.IPv4Address("127.0.0.1"))
_FALLBACK = ipaddress.ip_network("127.255.0.0/16")


def loopback_for(private_ip: str | None, taken: set[str]) -> str:
    """10.a.b.c -> 127.a.b.c (a 127.x private IP is kept); 127.0.0.1 and addresses
    in `taken` are never returned: those get the next free one in 127.255.0.0/16."""
    candidate: ipaddress.IPv4Address | None = None
    with contextlib.suppress(ValueError):
        ip = ipaddress.IPv4Address(private_ip or "")
        low24 = int(ip) & 0xFFFFFF
        candidate = ip if ip in _LOOPBACK else ipaddress.IPv4Address((127 << 24) | low24)
    if candidate is not None and candidate not in _HOST_ADDRESSES and str(candidate) not in taken:
        return str(candidate)
    for host in _FALLBACK.hosts():
        if str(host) not in taken:
            return str(host)
    raise RuntimeError("no free loopback address left in 127.255.0.0/16")


# Linux with CONFIG_SCHED_INFO (Debian's kernels, most others) keeps per-thread schedstat.
SCHEDSTAT = os.path.exists("/proc/self/schedstat")


def cpu_demand(proc: psutil.Process) -> dict[tuple[int, float, int], float]:
    """CPU seconds each thread of the process ran or waited to run (Linux schedstat:
    sum_exec_runtime + run_delay). What a thread waited for is CPU it wanted: on EC2
    its instance would have had it. Without schedstat, the time the process ran."""
    key = (proc.pid, proc.create_time())
    if not SCHEDSTAT:
        times = proc.cpu_times()
        return {(*key, proc.pid): times.user + times.system}
    demand: dict[tuple[int, float, int], float] = {}
    task_dir = f"/proc/{proc.pid}/task"
    for tid in os.listdir(task_dir):
        with contextlib.suppress(OSError, ValueError):  # a thread that ended meanwhile
            with open(f"{task_dir}/{tid}/schedstat") as fh:
                ran_ns, waited_ns = map(int, fh.read().split()[:2])
            demand[(*key, int(tid))] = (ran_ns + waited_ns) / 1e9
    return demand


@dataclass
class CpuMeter:
    """CPU an instance's processes used between two readings, in % of its vCPUs.

    AWS: CPUUtilization is the share of the instance's vCPUs in use. Here instances
    share the host's cores with each other and with the sandbox itself, so a thread
    counts the time it ran plus the time it waited for a core (cpu_demand): a busy
    loop on each vCPU reads 100 % however crowded the host, an idle instance stays idle.
    """

    seen: dict[tuple[int, float, int], float] = field(default_factory=dict)
    sampled_at: float = field(default_factory=time.monotonic)

    def read(self, procs: list[psutil.Process], vcpus: int) -> float:
        now = time.monotonic()
        current: dict[tuple[int, float, int], float] = {}
        for proc in procs:
            with contextlib.suppress(psutil.Error, OSError):
                current.update(cpu_demand(proc))
        # A thread new since the last reading counts with all its time; one that
        # ended since loses its last slice (nothing can read the dead).
        used = sum(max(t - self.seen.get(key, 0.0), 0.0) for key, t in current.items())
        elapsed = max(now - self.sampled_at, 1e-6)
        self.seen, self.sampled_at = current, now
        return min(100.0, 100.0 * used / (elapsed * vcpus))


@dataclass
class InstanceRuntime:
    id: str
    private_ip: str | None
    address: str
    availability_zone: str
    instance_type: str
    running: bool = True
    # Bumped by every stop/start/reboot/terminate: a boot scheduled before is void.
    generation: int = 0
    boots: int = 0
    booted_at: float | None = None  # AWS seconds
    # The boot script's process group (its pid), and those of Run Command scripts.
    boot_group: int | None = None
    boot_proc: subprocess.Popen | None = None
    command_groups: set[int] = field(default_factory=set)
    # One meter for CloudWatch (collect_metrics), one for `status`: each reports
    # the CPU used since its own previous reading.
    metrics_meter: CpuMeter = field(default_factory=CpuMeter)
    status_meter: CpuMeter = field(default_factory=CpuMeter)

    @property
    def vcpus(self) -> int:
        return VCPUS.get(self.instance_type, DEFAULT_VCPUS)

    def groups(self) -> set[int]:
        return ({self.boot_group} if self.boot_group else set()) | self.command_groups


def environment(state: StateDir, rt: InstanceRuntime, region: str) -> dict[str, str]:
    """What the user data, the app and Run Command scripts see of their instance."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SELFHEAL_"))}
    return {
        **base,
        "SELFHEAL_ROOT": str(state.instance_root(rt.id)),
        "SELFHEAL_INSTANCE_ID": rt.id,
        "SELFHEAL_AZ": rt.availability_zone,
        "SELFHEAL_BIND_ADDRESS": rt.address,
        "SELFHEAL_PRIVATE_IP": rt.private_ip or "",
        "SELFHEAL_INSTANCE_TYPE": rt.instance_type,
        "SELFHEAL_REGION": region,
        # GNU nproc reads it: scripts size their work to the instance's vCPUs, not the host's.
        "OMP_NUM_THREADS": str(rt.vcpus),
    }


def boot_argv(state: StateDir, rt: InstanceRuntime) -> tuple[list[str] | None, str]:
    """What this boot of the instance runs (None: nothing), and why."""
    if rt.boots == 0:
        user_data = state.instance_user_data(rt.id)
        if not user_data.is_file():
            return None, "no user data"
        if not user_data.read_bytes().startswith(b"#!"):
            return None, "user data is not a script (no #!): cloud-init would not run it"
        # As cloud-init does: an executable copy, so that its #! line picks the shell.
        script = state.instance_dir(rt.id) / "scripts" / "part-001"
        script.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(user_data, script)
        script.chmod(0o700)
        return [str(script)], "user data (cloud-init runs it on the first boot only)"
    for service in BOOT_SERVICES:
        path = state.instance_root(rt.id) / service
        if path.is_file() and os.access(path, os.X_OK):
            return [str(path)], f"boot service /{service} (stands for the enabled systemd unit)"
    return None, "no boot service in the image"
