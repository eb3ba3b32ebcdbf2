"""Application Load Balancers that carry traffic: the control side of the ALB.

The proxies and health checks run in the data plane process (dataplane.py), so
traffic never waits on moto's GIL. This behaviour, in the server process:

* starts and stops that process (`sandbox.processes`, role "dataplane");
* every 50 ms (and at once after a relevant API call) turns moto's ELBv2 state
  into the data plane's `config.json` and reads back its `report.json` (the
  channel is described in dataplane.py);
* answers DescribeTargetHealth from the data plane's verdicts, keeps
  deregistered targets `draining` for the deregistration delay, and lets a new
  ALB turn `active` only once the data plane listens for it (adapter/elbv2.py);
* logs each target health transition with the AWS rule behind it;
* gives other behaviours `target_health()`, `listener_url()` and
  `collect_metrics()` (AWS/ApplicationELB metric data).

Choices where the sandbox cannot be AWS:

* A listener is served on 127.0.0.1 at a port the OS picks, whatever its AWS
  port; TLS is not terminated (an HTTPS listener is served as plain HTTP).
  `status` maps each ALB's DNS name and listener port to that local address.
* Only a listener's default action routes (forward, weighted forward,
  fixed-response, redirect); listener rules with conditions are not evaluated.
* A target is reached at its instance's loopback address (the EC2 behaviour's
  `address()`), or at the address in its `sandbox:address` tag (a seam for tests).
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import psutil

from .adapter.elbv2 import ADDRESS_TAG, LoadBalancerSpec, TargetGroupSpec, Verdict
from .elb_metrics import HostCount, arn_suffix, host_count_metrics, request_metrics
from .health_checks import REGISTRATION_IN_PROGRESS, is_loopback
from .processes import stop_trees
from .state import atomic_write

if TYPE_CHECKING:
    from .server import Sandbox

log = logging.getLogger(__name__)

SYNC_EVERY_WALL_S = 0.05
RESTART_BACKOFF_WALL_S = 1.0

NOT_IN_USE: Verdict = (
    "unused",
    "Target.NotInUse",
    "Target group is not configured to receive traffic from the load balancer",
)
DRAINING: Verdict = (
    "draining",
    "Target.DeregistrationInProgress",
    "Target deregistration is in progress",
)

# Why a target changed state, for the log (aws-semantics.md §1.3).
_RULES = {
    ("initial", "healthy"): "a newly registered target must pass one health check",
    ("unhealthy", "healthy"): "HealthyThresholdCount consecutive passing checks",
    ("healthy", "unhealthy"): "UnhealthyThresholdCount consecutive failed checks",
    ("initial", "unhealthy"): "UnhealthyThresholdCount consecutive failed checks",
}


class Elb:
    name = "elb"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.clock = sandbox.clock
        folder = sandbox.config.state.root / "dataplane"
        self.folder = folder
        self.config_file = folder / "config.json"
        self.report_file = folder / "report.json"
        self.log_file = folder / "dataplane.log"
        self._proc: subprocess.Popen | None = None
        self._last_spawn = 0.0
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._thread = threading.Thread(target=self._run, name="elb-sync", daemon=True)
        # Written by the sync thread (whole-object replacement, so readers under
        # the sandbox lock never see a half-built value), read by moto hooks.
        self._generation = 0
        self._last_config: dict[str, Any] | None = None
        self._report: dict[str, Any] = {}
        self._report_stamp: tuple[int, int] | None = None
        self._report_lock = threading.Lock()
        self._verdicts: dict[str, dict[str, Verdict]] = {}
        # Under the sandbox lock: (tg arn, target id) -> (port, drain end in AWS s).
        self._draining: dict[tuple[str, str], tuple[int, float]] = {}
        # (tg arn, target id) -> first config generation that knows the registration.
        self._fresh_from: dict[tuple[str, str], int] = {}
        # (tg arn, target id) -> the address it was last routed to.
        self._hosts: dict[tuple[str, str], str | None] = {}
        self._warned: set[tuple[str, str]] = set()
        self._balancers: list[LoadBalancerSpec] = []
        self._groups: list[TargetGroupSpec] = []
        self._metrics_base: tuple[int | None, dict[str, Any]] = (None, {})
        # tg arn -> (healthy, unhealthy) since the last collect_metrics(), sampled
        # after every sync (each new report): a short unhealthy spell still counts.
        self._host_counts: dict[str, tuple[HostCount, HostCount]] = {}
        self._host_counts_lock = threading.Lock()
        sandbox.adapter.install_elbv2_hooks(self)

    # ------------------------------------------------------------ behaviour

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._sync()
        self._spawn()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        if self._thread.is_alive():
            self._thread.join(5)
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(psutil.Error):
                stop_trees([psutil.Process(proc.pid)])
            proc.wait(5)
            self.sandbox.processes.remove(proc.pid)

    def status(self) -> dict[str, Any]:
        proc = self._proc
        return {
            "dataplane": {
                "pid": proc.pid if proc else None,
                "alive": proc is not None and proc.poll() is None,
                "config": str(self.config_file),
                "report": str(self.report_file),
                "log": str(self.log_file),
                "generation_applied": self._report.get("generation"),
            },
            # DNS name -> listener port -> local URL: how tools reach an ALB.
            "load_balancers": {
                lb.dns_name: {
                    "arn": lb.arn,
                    "ready": self.load_balancer_ready(lb.arn),
                    "listeners": {str(li.port): self._url(lb.arn, li.port) for li in lb.listeners},
                }
                for lb in self._balancers
            },
            "draining_targets": len(self._draining),
        }

    # ------------------------------------------------------------ public API

    def target_health(self, target_group_arn: str) -> dict[str, tuple[str, str | None, str | None]]:
        """instance id -> (state, reason, description), as DescribeTargetHealth says."""
        self._refresh_report()  # the data plane's latest verdicts, not the last sync's
        with self.sandbox.lock:
            group = next((g for g in self._groups if g.arn == target_group_arn), None)
            result: dict[str, Verdict] = {}
            if group is not None:
                for target in group.targets:
                    if target.instance_state not in (None, "running"):
                        result[target.id] = (
                            "unused",
                            "Target.InvalidState",
                            f"Target is in the {target.instance_state} state",
                        )
                    else:
                        result[target.id] = (
                            self.health_verdict(group.arn, target.id, group.in_use, "healthy")
                            or REGISTRATION_IN_PROGRESS
                        )
            for target_id, _ in self.draining_targets(target_group_arn):
                result.setdefault(target_id, DRAINING)
            return result

    def target_groups_health(self) -> list[dict[str, Any]]:
        """Every target group with each target's DescribeTargetHealth answer, for status."""
        ports = {(g.arn, t.id): t.port for g in self._groups for t in g.targets}
        for (arn, target_id), (port, _until) in list(self._draining.items()):
            ports.setdefault((arn, target_id), port)  # deregistered, still draining
        return [
            {
                "name": arn_suffix(group.arn).split("/")[1],
                "arn": group.arn,
                "in_use": group.in_use,
                "targets": [
                    {
                        "id": target_id,
                        "port": ports.get((group.arn, target_id)),
                        "state": state,
                        "reason": reason,
                        "description": description,
                    }
                    for target_id, (state, reason, description) in sorted(
                        self.target_health(group.arn).items()
                    )
                ],
            }
            for group in self._groups
        ]

    def listener_url(self, load_balancer_arn_or_dns_name: str) -> str | None:
        """http://127.0.0.1:PORT of the ALB's forwarding listener (else its first)."""
        lb = next(
            (b for b in self._balancers if load_balancer_arn_or_dns_name in (b.arn, b.dns_name)),
            None,
        )
        if lb is None or not lb.listeners:
            return None
        ordered = sorted(lb.listeners, key=lambda li: (li.action.get("type") != "forward", li.port))
        return self._url(lb.arn, ordered[0].port)

    def listener_address(self, load_balancer_arn: str, port: int) -> str | None:
        """127.0.0.1:PORT serving this listener, for the status document."""
        local = self._report.get("listeners", {}).get(load_balancer_arn, {}).get(str(port))
        return f"127.0.0.1:{local}" if local else None

    def collect_metrics(self) -> list[dict[str, Any]]:
        """AWS/ApplicationELB metric data since the previous call (the caller stamps
        the period's Timestamp).

        RequestCount counts the requests for which a target was chosen (a 503 for
        want of targets is not one); HealthyHostCount/UnHealthyHostCount are
        reported every time, summarising every count seen since the previous call
        (see elb_metrics.py for the other rules).
        """
        report = self._refresh_report()
        pid, before = self._metrics_base
        counters = report.get("counters", {})
        if report.get("pid") != pid:
            before = {}  # a restarted data plane counts from zero
        self._metrics_base = (report.get("pid"), counters)
        data = request_metrics(counters, before)
        groups, balancers = self._groups, self._balancers
        self._sample_host_counts(groups)
        now = self.clock.now()
        closed = {}
        with self._host_counts_lock:
            for group in groups:
                if (pair := self._host_counts.get(group.arn)) is None:
                    continue  # gone meanwhile
                healthy, unhealthy = pair
                # The rounds a target was checked in: the samples the ALB reported.
                interval = float(group.health_check.get("interval_s") or 30.0)
                rounds = max(1, round((now - healthy.start) / interval))
                closed[group.arn] = (healthy.close(now, rounds), unhealthy.close(now, rounds))
        for group in groups:
            for lb in balancers:
                if group.arn in closed and any(
                    group.arn in [arn for arn, _ in li.action.get("target_groups", [])]
                    for li in lb.listeners
                ):
                    data += host_count_metrics(group.arn, lb.arn, *closed[group.arn])
        return data

    def _sample_host_counts(self, groups: list[TargetGroupSpec]) -> None:
        """Fold each target group's healthy/unhealthy count now into its period."""
        now = self.clock.now()
        counts = {}
        for group in groups:
            states = [v[0] for v in self.target_health(group.arn).values()]
            counts[group.arn] = (states.count("healthy"), states.count("unhealthy"))
        with self._host_counts_lock:
            for arn in set(self._host_counts) - set(counts):
                del self._host_counts[arn]
            for arn, (healthy, unhealthy) in counts.items():
                pair = self._host_counts.get(arn)
                if pair is None:
                    self._host_counts[arn] = (
                        HostCount.starting(healthy, now),
                        HostCount.starting(unhealthy, now),
                    )
                else:
                    pair[0].set(healthy, now)
                    pair[1].set(unhealthy, now)

    # ------------------------------------------------------------ moto hooks (ElbHooks)

    def health_verdict(
        self, tg_arn: str, target_id: str, in_use: bool, moto_state: str
    ) -> Verdict | None:
        if moto_state != "healthy":
            return None  # moto's own answer holds (a stopped instance: Target.InvalidState)
        if not in_use:
            return NOT_IN_USE  # health checks start only once a listener uses the group
        if self._report.get("generation", -1) < self._fresh_from.get((tg_arn, target_id), 0):
            return REGISTRATION_IN_PROGRESS
        return self._verdicts.get(tg_arn, {}).get(target_id, REGISTRATION_IN_PROGRESS)

    def draining_verdict(self, tg_arn: str, target_id: str) -> Verdict | None:
        entry = self._draining.get((tg_arn, target_id))
        if entry is not None and entry[1] > self.clock.now():
            return DRAINING
        return None

    def draining_targets(self, tg_arn: str) -> list[tuple[str, int]]:
        now = self.clock.now()
        return [
            (target_id, port)
            for (arn, target_id), (port, until) in list(self._draining.items())
            if arn == tg_arn and until > now
        ]

    def targets_registered(self, tg_arn: str, targets: list[tuple[str, int]]) -> None:
        for target_id, port in targets:
            self._draining.pop((tg_arn, target_id), None)
            # The next config written carries it; older verdicts are of its past life.
            self._fresh_from[(tg_arn, target_id)] = self._generation + 1
            log.info("target %s:%d registered in %s: initial", target_id, port, tg_arn)
        self._dirty.set()

    def targets_deregistered(
        self, tg_arn: str, targets: list[tuple[str, int]], delay_s: float
    ) -> None:
        until = self.clock.now() + delay_s
        for target_id, port in targets:
            self._draining[(tg_arn, target_id)] = (port, until)
            log.info(
                "target %s:%d deregistered from %s: draining for %g s, no new requests "
                "(AWS: deregistration_delay.timeout_seconds)",
                target_id,
                port,
                tg_arn,
                delay_s,
            )
        self._dirty.set()

    def load_balancer_ready(self, lb_arn: str) -> bool:
        ready = lb_arn in self._report.get("listeners", {})
        if not ready:
            self._dirty.set()
        return ready

    # ------------------------------------------------------------ sync loop

    def _run(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(SYNC_EVERY_WALL_S)
            self._dirty.clear()
            if self._stop.is_set():
                break
            try:
                self._sync()
                self._sample_host_counts(self._groups)
                self._watch_process()
            except Exception:
                log.exception("ALB sync failed; trying again")

    def _sync(self) -> None:
        with self.sandbox.lock:
            balancers, groups = self.sandbox.adapter.elbv2_snapshot()
            self._expire_draining()
            config = self._build_config(balancers, groups)
            changed = config != self._last_config
            if changed:
                self._last_config = config
                self._generation += 1
            generation = self._generation
            self._balancers, self._groups = balancers, groups
        if changed:
            atomic_write(self.config_file, json.dumps({**config, "generation": generation}))
        self._refresh_report()

    def _expire_draining(self) -> None:
        now = self.clock.now()
        for key, (port, until) in list(self._draining.items()):
            if until <= now:
                del self._draining[key]
                log.info(
                    "target %s:%d of %s: deregistration delay over, unused",
                    key[1],
                    port,
                    key[0],
                )

    def _address(self, target_id: str, tag: str | None) -> str | None:
        if tag:
            if is_loopback(tag):
                return tag
            if (target_id, tag) not in self._warned:
                self._warned.add((target_id, tag))
                log.warning(
                    "instance %s: tag %s=%s ignored: the sandbox only reaches 127.0.0.0/8",
                    target_id,
                    ADDRESS_TAG,
                    tag,
                )
        ec2 = next((b for b in self.sandbox.behaviours if b.name == "ec2"), None)
        address = getattr(ec2, "address", None)
        return address(target_id) if address else None

    def _build_config(
        self, balancers: list[LoadBalancerSpec], groups: list[TargetGroupSpec]
    ) -> dict[str, Any]:
        target_groups = []
        for group in groups:
            targets = [
                {
                    "id": t.id,
                    "port": t.port,
                    "host": self._address(t.id, t.address_tag),
                    "draining": False,
                }
                for t in group.targets
                # Only a running instance takes traffic (a stopped one is unused).
                if t.instance_state in (None, "running")
            ]
            for target in targets:
                self._hosts[(group.arn, target["id"])] = target["host"]
            # A draining target keeps the address it had: its in-flight requests
            # finish there, even once its tags or instance are gone.
            targets += [
                {
                    "id": target_id,
                    "port": port,
                    "host": self._hosts.get((arn, target_id)),
                    "draining": True,
                }
                for (arn, target_id), (port, _) in self._draining.items()
                if arn == group.arn
            ]
            target_groups.append(
                {
                    "arn": group.arn,
                    "in_use": group.in_use,
                    "health_check": group.health_check,
                    "targets": targets,
                }
            )
        return {
            "time_scale": self.clock.time_scale,
            "load_balancers": [
                {
                    "arn": lb.arn,
                    "dns_name": lb.dns_name,
                    "idle_timeout_s": lb.idle_timeout_s,
                    "listeners": [
                        {"port": li.port, "protocol": li.protocol, "action": li.action}
                        for li in lb.listeners
                    ],
                }
                for lb in balancers
            ],
            "target_groups": target_groups,
        }

    def _refresh_report(self) -> dict[str, Any]:
        """Take in the data plane's report if it changed; the latest one."""
        with self._report_lock:  # the sync thread and the metrics collector
            report = self._read_report()
            if report is not None:
                self._take_report(report)
            return self._report

    def _read_report(self) -> dict[str, Any] | None:
        """The data plane's latest report, or None when unchanged since last read."""
        try:
            st = self.report_file.stat()
            stamp = (st.st_mtime_ns, st.st_ino)
            if stamp == self._report_stamp:
                return None
            report = json.loads(self.report_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        self._report_stamp = stamp
        return report

    def _take_report(self, report: dict[str, Any]) -> None:
        verdicts = {
            arn: {t["id"]: (t["state"], t["reason"], t["description"]) for t in targets}
            for arn, targets in report.get("health", {}).items()
        }
        for arn, targets in verdicts.items():
            old = self._verdicts.get(arn, {})
            for target_id, verdict in targets.items():
                before = old.get(target_id)
                if before is not None and before[0] != verdict[0]:
                    rule = _RULES.get((before[0], verdict[0]), "health check result")
                    log.info(
                        "target %s of %s: %s -> %s%s (AWS: %s)",
                        target_id,
                        arn,
                        before[0],
                        verdict[0],
                        f" {verdict[1]}: {verdict[2]}" if verdict[1] else "",
                        rule,
                    )
        self._verdicts = verdicts
        self._report = report

    def _url(self, lb_arn: str, port: int) -> str | None:
        address = self.listener_address(lb_arn, port)
        return f"http://{address}" if address else None

    # ------------------------------------------------------------ process

    def _spawn(self) -> None:
        self._last_spawn = self.clock.to_wall(self.clock.now())
        with self.log_file.open("ab") as log_fh:
            self._proc = self.sandbox.processes.spawn(
                [
                    sys.executable,
                    "-m",
                    "selfheal_sandbox.dataplane",
                    "--config",
                    str(self.config_file),
                    "--report",
                    str(self.report_file),
                ],
                role="dataplane",
                owner="elb",
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
            )
        log.info("ALB data plane started (pid %d, log %s)", self._proc.pid, self.log_file)

    def _watch_process(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is None:
            return
        now = self.clock.to_wall(self.clock.now())
        if now - self._last_spawn < RESTART_BACKOFF_WALL_S:
            return
        log.error("ALB data plane exited with %s; starting it again", proc.returncode)
        self.sandbox.processes.remove(proc.pid)
        self._spawn()
