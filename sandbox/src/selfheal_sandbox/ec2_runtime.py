"""EC2 instances that run: each running instance is a process tree on its own
loopback address, booted from its root folder (see instances.py).

The choices this module makes where the sandbox cannot be EC2:

* **Address.** Each instance gets its own 127.x.y.z, derived from its private IP:
  10.0.1.17 -> 127.0.1.17 (the first octet becomes 127; a private IP already in
  127.0.0.0/8 is kept). DescribeInstances keeps showing moto's private IP, which
  lies in the instance's subnet as on AWS; the loopback address is the documented
  mapping, shown by `status` and `Ec2Runtime.address()`. 127.0.0.1 (where the
  sandbox and host services listen) is never handed out; a collision with another
  instance's address takes the next free address in 127.255.0.0/16. The address
  stays with the instance across stop/start and reboot, as a private IP does.
* **Boot.** moto shows an instance `running` at once. Its OS is not up yet: the
  sandbox starts the instance's processes BOOT_DELAY_AWS_S after it enters
  running (AWS documents no launch time; benchmarks see roughly 5-20 s from
  pending to running and 15-60 s more to a reachable OS; aws-semantics.md §5, §9).
  Until then it has no address and no SSM agent.
* **First boot runs the user data, later boots do not.** cloud-init runs user-data
  shell scripts once per instance. The script must start with `#!` (cloud-init
  ignores other text, and #cloud-config is not emulated); it runs like cloud-init's
  scripts-user: as an executable file, cwd at the root, output to
  `<state>/instances/<id>/console.log` (what GetConsoleOutput would show).
* **Later boots (reboot, start after stop) run the image's boot services.** On a
  host the webapp role enables a systemd unit, which starts the app on every boot.
  The sandbox has no systemd; it runs the first of instance_runtime.BOOT_SERVICES
  found executable in the root instead (the webapp role's start script).
* **Environment.** SELFHEAL_ROOT (the root folder: "/" of the instance),
  SELFHEAL_INSTANCE_ID, SELFHEAL_AZ, SELFHEAL_BIND_ADDRESS (the loopback address),
  SELFHEAL_PRIVATE_IP, SELFHEAL_INSTANCE_TYPE, SELFHEAL_REGION, and OMP_NUM_THREADS
  (the type's vCPUs, which GNU nproc reports), on top of the server's environment
  without its AWS_* and SELFHEAL_* variables.
* **Stop/terminate/reboot** end every process of the instance (SIGTERM, SIGKILL
  after processes.DEFAULT_STOP_TIMEOUT s). An app that exits on its own leaves the
  instance `running`: EC2 does not watch applications; health checks do.
* **CPU.** `collect_metrics()` measures the CPU time every process of the
  instance (boot script, app, Run Command scripts) ran or waited to run since the
  previous call, as a percentage of the instance type's vCPUs (CpuMeter: the host's
  cores are shared, an instance's vCPUs on EC2 are not).
"""

from __future__ import annotations

import logging
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .adapter import LaunchedInstance
from .clock import Periodic
from .instance_runtime import (
    CpuMeter,
    InstanceRuntime,
    boot_argv,
    environment,
    loopback_for,
)
from .processes import DEFAULT_STOP_TIMEOUT, group_members, stop_trees
from .ssm import SsmRunCommand

if TYPE_CHECKING:
    from .server import Sandbox

log = logging.getLogger(__name__)

BOOT_DELAY_AWS_S = 30.0
WATCH_INTERVAL_AWS_S = 5.0
CONSOLE_OUTPUT_BYTES = 64 * 1024


class Ec2Runtime:
    """Behaviour "ec2": instance process trees, addresses, CPU; Run Command (ssm.py)."""

    name = "ec2"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.clock = sandbox.clock
        self.state = sandbox.config.state
        # Guards _runtimes. Taken inside the sandbox lock (API events), never the
        # other way round, and never across a wait on a process.
        self._mu = threading.Lock()
        self._runtimes: dict[str, InstanceRuntime] = {}
        self._closing = threading.Event()
        self.ssm = SsmRunCommand(sandbox, self)
        self._watch = Periodic(
            "ec2-watch",
            self.clock,
            WATCH_INTERVAL_AWS_S,
            self._watch_apps,
            lambda e: log.error("ec2 watch failed: %s", e, exc_info=e),
        )
        sandbox.adapter.subscribe(self)
        sandbox.adapter.install_instance_state_hooks()
        sandbox.adapter.install_ssm_run_command(self.ssm)
        sandbox.adapter.install_console_output(self.console_output)

    # ------------------------------------------------------------ public API

    def address(self, instance_id: str) -> str | None:
        """The loopback IP the instance's app binds; None unless running and booted."""
        with self._mu:
            rt = self._runtimes.get(instance_id)
            return rt.address if rt and rt.running and rt.booted_at is not None else None

    def instance_ids(self) -> list[str]:
        """Instances running in the sandbox (booted or still booting)."""
        with self._mu:
            return sorted(i for i, rt in self._runtimes.items() if rt.running)

    def booted_instance_ids(self) -> set[str]:
        with self._mu:
            return {i for i, rt in self._runtimes.items() if rt.running and rt.booted_at}

    def app_pids(self, instance_id: str) -> list[int]:
        """Live processes started by the instance's boot (user data and what it ran)."""
        with self._mu:
            rt = self._runtimes.get(instance_id)
            group = rt.boot_group if rt else None
        if group is None:
            return []
        return sorted(p.pid for p in group_members({group})[group])

    def collect_metrics(self) -> list[dict[str, Any]]:
        """CPUUtilization per running instance since the previous call (CloudWatch
        MetricDatum shape): CPU seconds of all its processes over wall seconds x vCPUs."""
        with self._mu:
            runtimes = [rt for rt in self._runtimes.values() if rt.running]
            groups = {rt.id: rt.groups() for rt in runtimes}
        members = group_members(set().union(*groups.values()) if groups else set())
        data = []
        for rt in runtimes:
            procs = [p for group in groups[rt.id] for p in members.get(group, [])]
            with self._mu:
                percent = rt.metrics_meter.read(procs, rt.vcpus)
            data.append(
                {
                    "MetricName": "CPUUtilization",
                    "Dimensions": [{"Name": "InstanceId", "Value": rt.id}],
                    "Value": round(percent, 2),
                    "Unit": "Percent",
                }
            )
        return data

    def console_output(self, instance_id: str) -> str | None:
        """AWS GetConsoleOutput: the most recent 64 KB of the instance's console."""
        path = self.state.instance_dir(instance_id) / "console.log"
        try:
            with path.open("rb") as fh:
                fh.seek(max(path.stat().st_size - CONSOLE_OUTPUT_BYTES, 0))
                return fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------ behaviour

    def start(self) -> None:
        self._watch.start()

    def stop(self) -> None:
        self._closing.set()
        self._watch.stop()
        with self._mu:
            groups = set().union(*(rt.groups() for rt in self._runtimes.values()))
            self._runtimes.clear()
        self._end_groups(groups, "the sandbox is stopping")

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        with self._mu:
            groups = {rt.id: rt.groups() for rt in self._runtimes.values()}
        members = group_members(set().union(*groups.values()) if groups else set())
        with self._mu:
            cpu = {
                rt.id: round(
                    rt.status_meter.read(
                        [p for g in groups.get(rt.id, ()) for p in members.get(g, [])], rt.vcpus
                    ),
                    2,
                )
                for rt in self._runtimes.values()
                if rt.running
            }
            instances = {
                rt.id: {
                    "state": "running" if rt.running else "stopped",
                    "address": rt.address,
                    "private_ip": rt.private_ip,
                    "availability_zone": rt.availability_zone,
                    "instance_type": rt.instance_type,
                    "pid": rt.boot_group,
                    "booted": rt.booted_at is not None,
                    "boots": rt.boots,
                    "uptime_aws_s": round(now - rt.booted_at, 1) if rt.booted_at else None,
                    # CPU of its processes since the previous status call (% of its vCPUs).
                    "cpu_percent": cpu.get(rt.id),
                }
                for rt in self._runtimes.values()
            }
        return {
            "boot_delay_aws_s": BOOT_DELAY_AWS_S,
            "instances": instances,
            "ssm": self.ssm.status(),
        }

    # ------------------------------------------------------------ moto events
    # Called inside the API request under the sandbox lock: quick, no waiting.

    def instances_launched(self, instances: list[LaunchedInstance]) -> None:
        for inst in instances:
            details = self.sandbox.adapter.instance_details(inst.id)
            if details is None:
                continue
            with self._mu:
                taken = {rt.address for rt in self._runtimes.values()}
                rt = InstanceRuntime(
                    id=inst.id,
                    private_ip=details.private_ip,
                    address=loopback_for(details.private_ip, taken),
                    availability_zone=details.availability_zone,
                    instance_type=details.instance_type,
                )
                self._runtimes[inst.id] = rt
            log.info(
                "instance %s running: boots in %g AWS s on %s (private IP %s)",
                inst.id,
                BOOT_DELAY_AWS_S,
                rt.address,
                rt.private_ip,
            )
            self._schedule_boot(rt, rt.generation, set())

    def instance_started(self, instance_id: str) -> None:
        with self._mu:
            rt = self._runtimes.get(instance_id)
            if rt is None or rt.running:
                return
            rt.running = True
            rt.generation += 1
            generation = rt.generation
        log.info("instance %s started: boots in %g AWS s", instance_id, BOOT_DELAY_AWS_S)
        self._schedule_boot(rt, generation, set())

    def instance_stopped(self, instance_id: str) -> None:
        groups = self._halt(instance_id, keep=True)
        self._end_groups_later(groups, f"instance {instance_id} stopped")

    def instance_rebooted(self, instance_id: str) -> None:
        with self._mu:
            rt = self._runtimes.get(instance_id)
        if rt is None:
            return
        groups = self._halt(instance_id, keep=True)
        with self._mu:
            rt.running = True
            generation = rt.generation
        log.info(
            "instance %s rebooting: processes end, boot services start in %g AWS s "
            "(AWS: user data runs on the first boot only)",
            instance_id,
            BOOT_DELAY_AWS_S,
        )
        self._schedule_boot(rt, generation, groups)

    def instance_terminated(self, instance_id: str) -> None:
        groups = self._halt(instance_id, keep=False)
        self._end_groups_later(groups, f"instance {instance_id} terminated")

    def backends_reset(self) -> None:
        with self._mu:
            groups = set().union(*(rt.groups() for rt in self._runtimes.values()))
            for rt in self._runtimes.values():
                rt.generation += 1
            self._runtimes.clear()
        self._end_groups_later(groups, "moto state reset")

    # ------------------------------------------------------------ internals

    def _halt(self, instance_id: str, keep: bool) -> set[int]:
        """Mark the instance down; returns its process groups for ending."""
        with self._mu:
            rt = self._runtimes.get(instance_id) if keep else self._runtimes.pop(instance_id, None)
            if rt is None:
                return set()
            groups = rt.groups()
            rt.running, rt.generation = False, rt.generation + 1
            rt.booted_at, rt.boot_group, rt.boot_proc = None, None, None
            rt.command_groups = set()
            return groups

    def _end_groups(self, groups: set[int], why: str) -> None:
        procs = [p for members in group_members(groups).values() for p in members]
        if procs:
            stop_trees(procs, DEFAULT_STOP_TIMEOUT)
            log.info(
                "%s: %d processes ended (SIGTERM; SIGKILL for any left after %g s)",
                why,
                len(procs),
                DEFAULT_STOP_TIMEOUT,
            )
        for group in groups:
            self.sandbox.processes.remove(group)

    def _end_groups_later(self, groups: set[int], why: str) -> None:
        if groups:
            threading.Thread(
                target=self._end_groups, args=(groups, why), name="ec2-stop", daemon=True
            ).start()

    def _schedule_boot(self, rt: InstanceRuntime, generation: int, old: set[int]) -> None:
        def boot() -> None:
            if old:
                self._end_groups(old, f"instance {rt.id} reboot")
            if self.clock.sleep(BOOT_DELAY_AWS_S, self._closing):
                return
            with self._mu:
                if rt.generation != generation or self._runtimes.get(rt.id) is not rt:
                    return  # stopped, rebooted or terminated meanwhile
                self._boot(rt)

        threading.Thread(target=boot, name=f"boot-{rt.id}", daemon=True).start()

    def _boot(self, rt: InstanceRuntime) -> None:
        """Start the instance's processes; called with self._mu held."""
        argv, what = boot_argv(self.state, rt)
        rt.boots += 1
        rt.booted_at = self.clock.now()
        rt.metrics_meter, rt.status_meter = CpuMeter(), CpuMeter()
        console = self.state.instance_dir(rt.id) / "console.log"
        with console.open("ab") as out:
            out.write(
                f"[sandbox] boot {rt.boots} at {self.clock.utcnow():%Y-%m-%dT%H:%M:%SZ}: "
                f"{what}\n".encode()
            )
            out.flush()
            if argv is None:
                log.info("instance %s booted on %s: nothing to run (%s)", rt.id, rt.address, what)
                return
            try:
                proc = self.sandbox.processes.spawn(
                    argv,
                    role="instance",
                    owner=rt.id,
                    cwd=self.state.instance_root(rt.id),
                    env=environment(self.state, rt, self.sandbox.config.region),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            except OSError as e:
                out.write(f"[sandbox] cannot run {argv[0]}: {e}\n".encode())
                log.warning("instance %s booted but %s failed to start: %s", rt.id, what, e)
                return
        rt.boot_group, rt.boot_proc = proc.pid, proc
        log.info(
            "instance %s booted on %s: %s running as pid %d", rt.id, rt.address, what, proc.pid
        )

    def command_context(self, instance_id: str) -> tuple[Path, dict[str, str]] | None:
        """Root and environment for a Run Command script; None unless booted."""
        with self._mu:
            rt = self._runtimes.get(instance_id)
            if rt is None or not rt.running or rt.booted_at is None:
                return None
            env = environment(self.state, rt, self.sandbox.config.region)
            return self.state.instance_root(instance_id), env

    def spawn_command(
        self, instance_id: str, argv: list[str], **popen: Any
    ) -> subprocess.Popen | None:
        """Start a process on the instance (its CPU counts, a stop ends it)."""
        with self._mu:
            rt = self._runtimes.get(instance_id)
            if rt is None or not rt.running or rt.booted_at is None:
                return None
            proc = self.sandbox.processes.spawn(
                argv, role="ssm-command", owner=instance_id, **popen
            )
            rt.command_groups.add(proc.pid)
            return proc

    def forget_command(self, instance_id: str, pid: int) -> None:
        with self._mu:
            rt = self._runtimes.get(instance_id)
            if rt is not None:
                rt.command_groups.discard(pid)
        self.sandbox.processes.remove(pid)

    def _watch_apps(self) -> None:
        """Log boot scripts that ended; the instance stays running (EC2 does not
        watch applications: the load balancer's health checks notice)."""
        with self._mu:
            for rt in self._runtimes.values():
                proc = rt.boot_proc
                if proc is None or proc.poll() is None:
                    continue
                rt.boot_proc = None
                log.info(
                    "instance %s: boot process %d exited with %s; the instance stays running "
                    "(AWS: EC2 does not watch applications)",
                    rt.id,
                    proc.pid,
                    proc.returncode,
                )
