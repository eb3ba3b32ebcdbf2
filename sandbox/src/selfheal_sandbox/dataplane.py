"""The ALB data plane: its own process, `python -m selfheal_sandbox.dataplane`.

moto's server and the sandbox's control loops share one GIL; traffic through a
load balancer must never wait on them, so the proxies (proxy.py) and the health
checks (health_checks.py) run here, on one uvloop event loop.

The channel to the control side (elb.py) is two JSON files in one folder,
each replaced atomically (write to a temp file, rename):

* `config.json`, written by the control side: load balancers with their
  listeners and idle timeout, target groups with health-check settings and
  targets (address, port, draining), the time scale, and a `generation`
  number. This process re-reads it when its stat changes (polled every 50 ms).
* `report.json`, written here every 50 ms when it changed: the generation
  applied, each listener's local port, each target's health verdict, and
  request counters since this process started.

Files survive either side restarting, can be read with `cat`, and need no
reconnect logic; the price is up to ~50 ms of latency on a change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import uvloop

from .health_checks import HealthCheckSettings, TargetHealth, probe
from .proxy import ClientConnection, Request, TargetPool
from .state import atomic_write

log = logging.getLogger("selfheal_sandbox.dataplane")

CONFIG_POLL_WALL_S = 0.05
# Apps answer in wall time whatever the time scale: a 2 s check timeout at scale 20
# (0.1 s) would fail a healthy app on a busy 2-core box. Floor, at scales > 4 only.
HEALTH_CHECK_MIN_TIMEOUT_WALL_S = 0.5


class Target:
    def __init__(self, tg: TargetGroup, target_id: str, port: int, host: str | None) -> None:
        self.tg = tg
        self.id = target_id
        self.port = port
        self.host = host
        self.draining = False
        self.health = TargetHealth()
        self.task: asyncio.Task | None = None
        self.checked_with: tuple | None = None

    @property
    def key(self) -> tuple[str | None, int]:
        return (self.host, self.port)


class TargetGroup:
    def __init__(self, plane: DataPlane, arn: str) -> None:
        self.plane = plane
        self.arn = arn
        self.in_use = False
        self.settings: HealthCheckSettings | None = None
        self.targets: dict[tuple[str, int], Target] = {}
        self.routable: list[Target] = []
        self.registered = False  # any target that is not draining
        self._next = 0

    def recompute(self) -> None:
        """AWS routes to healthy targets only; with none healthy it fails open to
        all of them (unhealthy included). Initial and draining targets get none."""
        live = [t for t in self.targets.values() if not t.draining]
        self.registered = bool(live)
        healthy = [t for t in live if t.health.state == "healthy"]
        self.routable = healthy or [t for t in live if t.health.state == "unhealthy"]

    def pick(self) -> Target | None:
        routable = self.routable
        if not routable:
            return None
        self._next = (self._next + 1) % len(routable)  # round_robin, the AWS default
        return routable[self._next]


class Listener:
    """Routes one listener's requests (the `proxy.Route` protocol)."""

    def __init__(self, plane: DataPlane, lb_arn: str, port: int) -> None:
        self.plane = plane
        self.lb_arn = lb_arn
        self.port = port
        self.action: dict[str, Any] = {}
        self.idle_timeout_s = 60.0
        self.server: asyncio.Server | None = None
        self.local_port = 0
        self.connections: set[ClientConnection] = set()

    def wall(self, aws_seconds: float) -> float:
        return aws_seconds / self.plane.time_scale

    def idle_timeout_wall(self) -> float:
        return self.idle_timeout_s / self.plane.time_scale

    def _counters(self, tg: TargetGroup | None) -> dict[str, float]:
        return self.plane.counters[self.lb_arn][tg.arn if tg else ""]

    def choose(self, request: Request) -> tuple[Any, TargetPool | None, bytes | None]:
        action = self.action
        kind = action.get("type")
        if kind == "forward":
            groups = action["target_groups"]
            arn = groups[0][0] if len(groups) == 1 else _weighted(groups)
            tg = self.plane.target_groups.get(arn)
            target = tg.pick() if tg else None
            if target is None:
                # 503: "The target groups for the load balancer have no registered
                # targets" (and, unverified, none healthy or unhealthy yet).
                return tg, None, None
            self._counters(tg)["RequestCount"] += 1
            return tg, self.plane.pool(target.key), None
        self._counters(None)["RequestCount"] += 1
        if kind == "fixed-response":
            code = int(action.get("status", 200))
            self.count_elb(None, code)
            return None, None, _fixed_response(action, code, request.keep_alive)
        if kind == "redirect":
            code = int(action.get("status", 301))
            self.count_elb(None, code)
            return None, None, _redirect(action, code, request)
        return None, None, None

    def count_elb(self, tg: TargetGroup | None, code: int) -> None:
        counters = self.plane.counters[self.lb_arn][""]
        counters[f"HTTPCode_ELB_{code // 100}XX_Count"] += 1
        if code in (500, 502, 503, 504):
            counters[f"HTTPCode_ELB_{code}_Count"] += 1

    def count_target(self, tg: TargetGroup | None, code: int, response_time: float) -> None:
        counters = self._counters(tg)
        counters[f"HTTPCode_Target_{code // 100}XX_Count"] += 1
        counters["TargetResponseTime_sum"] += response_time
        counters["TargetResponseTime_count"] += 1


def _weighted(groups: list[list[Any]]) -> str:
    arns = [arn for arn, _ in groups]
    weights = [max(int(w), 0) for _, w in groups]
    if not any(weights):
        return arns[0]
    return random.choices(arns, weights)[0]  # noqa: S311 - traffic split, not crypto


def _fixed_response(action: dict[str, Any], code: int, keep_alive: bool) -> bytes:
    body = str(action.get("body") or "").encode()
    return (
        f"HTTP/1.1 {code} \r\nServer: awselb/2.0\r\n"
        f"Content-Type: {action.get('content_type') or 'text/plain'}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}"
        "\r\n\r\n"
    ).encode() + body


def _redirect(action: dict[str, Any], code: int, request: Request) -> bytes:
    path, _, query = request.url.decode("latin-1").partition("?")
    host = request.host.decode("latin-1").split(":")[0] or "localhost"
    values = {"#{host}": host, "#{path}": path.lstrip("/"), "#{query}": query}
    parts = {}
    for key, default in (("protocol", "#{protocol}"), ("host", "#{host}"), ("path", "/#{path}")):
        text = str(action.get(key) or default)
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        parts[key] = text
    protocol = parts["protocol"].replace("#{protocol}", "HTTP").lower()
    port = str(action.get("port") or "#{port}").replace("#{port}", "80")
    query_text = str(action.get("query") or "#{query}").replace("#{query}", query)
    location = f"{protocol}://{parts['host']}:{port}{parts['path']}"
    if query_text:
        location += f"?{query_text}"
    return (
        f"HTTP/1.1 {code} Moved\r\nServer: awselb/2.0\r\nLocation: {location}\r\n"
        f"Content-Length: 0\r\nConnection: {'keep-alive' if request.keep_alive else 'close'}"
        "\r\n\r\n"
    ).encode()


def _new_counters() -> defaultdict[str, defaultdict[str, float]]:
    return defaultdict(lambda: defaultdict(float))


class DataPlane:
    def __init__(self, config_path: Path, report_path: Path) -> None:
        self.config_path = config_path
        self.report_path = report_path
        self.time_scale = 1.0
        self.generation = -1
        self.listeners: dict[tuple[str, int], Listener] = {}
        self.target_groups: dict[str, TargetGroup] = {}
        self.pools: dict[tuple[str | None, int], TargetPool] = {}
        self.counters: defaultdict[str, defaultdict[str, defaultdict[str, float]]] = defaultdict(
            _new_counters
        )
        self._config_stat: tuple[int, int, int] | None = None
        self._last_report = ""
        self._stop = asyncio.Event()

    def pool(self, key: tuple[str | None, int]) -> TargetPool:
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = TargetPool(key[0], key[1], lambda s: s / self.time_scale)
        return pool

    # -- main loop

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        parent = os.getppid()
        while not self._stop.is_set():
            try:
                await self._reload_if_changed()
            except Exception:
                log.exception("could not apply %s; keeping the previous config", self.config_path)
            self._report()
            if os.getppid() != parent:  # the sandbox server died: nobody needs us
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), CONFIG_POLL_WALL_S)
        for listener in self.listeners.values():
            if listener.server:
                listener.server.close()

    async def _reload_if_changed(self) -> None:
        try:
            st = self.config_path.stat()
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp == self._config_stat:
            return
        config = json.loads(self.config_path.read_text(encoding="utf-8"))
        await self.apply(config)
        self._config_stat = stamp

    # -- config

    async def apply(self, config: dict[str, Any]) -> None:
        self.time_scale = float(config.get("time_scale", 1.0))
        self._apply_target_groups(config.get("target_groups", []))
        await self._apply_load_balancers(config.get("load_balancers", []))
        self.generation = int(config.get("generation", 0))

    def _apply_target_groups(self, groups: list[dict[str, Any]]) -> None:
        seen = set()
        for raw in groups:
            arn = raw["arn"]
            seen.add(arn)
            tg = self.target_groups.get(arn) or TargetGroup(self, arn)
            self.target_groups[arn] = tg
            tg.in_use = bool(raw.get("in_use"))
            tg.settings = HealthCheckSettings.from_json(raw["health_check"])
            wanted = {}
            for t in raw.get("targets", []):
                key = (t["id"], int(t["port"]))
                target = tg.targets.get(key)
                if target is None or (target.draining and not t.get("draining")):
                    # New, or registered again after draining: health starts over.
                    if target is not None:
                        self._stop_checks(target)
                    target = Target(tg, t["id"], int(t["port"]), t.get("host"))
                # The address arrives when the instance has booted; health carries on.
                target.host = t.get("host")
                target.draining = bool(t.get("draining"))
                wanted[key] = target
            for key, target in tg.targets.items():
                if key not in wanted:
                    self._stop_checks(target)
            tg.targets = wanted
            for target in wanted.values():
                self._ensure_checks(target)
            tg.recompute()
        for arn in list(self.target_groups):
            if arn not in seen:
                for target in self.target_groups.pop(arn).targets.values():
                    self._stop_checks(target)
        self._close_unused_pools()

    def _close_unused_pools(self) -> None:
        """A target whose deregistration delay is over is gone: requests still in
        flight to it end with 502, as AWS documents."""
        in_use = {t.key for tg in self.target_groups.values() for t in tg.targets.values()}
        for key in list(self.pools):
            if key not in in_use:
                self.pools.pop(key).close_all()

    async def _apply_load_balancers(self, balancers: list[dict[str, Any]]) -> None:
        seen = set()
        for lb in balancers:
            self.counters.setdefault(lb["arn"], _new_counters())  # reported without traffic
            for raw in lb.get("listeners", []):
                key = (lb["arn"], int(raw["port"]))
                seen.add(key)
                listener = self.listeners.get(key)
                if listener is None:
                    listener = Listener(self, *key)
                    loop = asyncio.get_running_loop()
                    listener.server = await loop.create_server(
                        lambda listener=listener: ClientConnection(listener, listener.connections),
                        "127.0.0.1",
                        0,
                        backlog=1024,
                    )
                    listener.local_port = listener.server.sockets[0].getsockname()[1]
                    self.listeners[key] = listener
                    log.info("listener %s:%s on 127.0.0.1:%d", *key, listener.local_port)
                listener.action = raw.get("action") or {}
                listener.idle_timeout_s = float(lb.get("idle_timeout_s", 60))
        for key in list(self.listeners):
            if key not in seen:
                listener = self.listeners.pop(key)
                if listener.server:
                    listener.server.close()
                for connection in list(listener.connections):
                    connection.close()
        for arn in list(self.counters):
            if arn not in {lb["arn"] for lb in balancers}:
                del self.counters[arn]

    # -- health checks

    def _ensure_checks(self, target: Target) -> None:
        tg = target.tg
        wanted = tg.settings if tg.in_use and not target.draining else None
        if target.task is not None and target.checked_with == (wanted, target.host):
            return
        self._stop_checks(target)
        if wanted is not None:
            target.checked_with = (wanted, target.host)
            target.task = asyncio.get_running_loop().create_task(self._check_loop(target, wanted))

    def _stop_checks(self, target: Target) -> None:
        if target.task is not None:
            target.task.cancel()
            target.task = None
        target.checked_with = None

    async def _check_loop(self, target: Target, settings: HealthCheckSettings) -> None:
        loop = asyncio.get_running_loop()
        port = settings.port_for(target.port)
        # The first check comes one interval after registration; then one per
        # interval, however long a check takes.
        due = loop.time() + settings.interval_s / self.time_scale
        while True:
            await asyncio.sleep(max(due - loop.time(), 0))
            due += settings.interval_s / self.time_scale
            timeout = max(settings.timeout_s / self.time_scale, HEALTH_CHECK_MIN_TIMEOUT_WALL_S)
            result = await probe(target.host, port, settings, timeout)
            if target.health.record(result, settings):
                target.tg.recompute()
                self._report()  # now, not at the next tick: DescribeTargetHealth reads it
            due = max(due, loop.time())

    # -- report

    def _report(self) -> None:
        report = {
            "generation": self.generation,
            "pid": os.getpid(),
            "listeners": defaultdict(dict),
            "health": {},
            "counters": self.counters,
        }
        for (lb_arn, port), listener in self.listeners.items():
            report["listeners"][lb_arn][str(port)] = listener.local_port
        for arn in self.counters:
            report["listeners"].setdefault(arn, {})
        for arn, tg in self.target_groups.items():
            report["health"][arn] = [
                {
                    "id": t.id,
                    "port": t.port,
                    "state": t.health.verdict[0],
                    "reason": t.health.verdict[1],
                    "description": t.health.verdict[2],
                }
                for t in tg.targets.values()
                if not t.draining
            ]
        text = json.dumps(report, sort_keys=True)
        if text != self._last_report:
            atomic_write(self.report_path, text)
            self._last_report = text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m selfheal_sandbox.dataplane")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    uvloop.run(DataPlane(args.config, args.report).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
