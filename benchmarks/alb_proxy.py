#!/usr/bin/env python3
"""The sandbox's ALB data plane against HAProxy and against no proxy at all, in one sitting.

Starts 3 fast backends (a raw uvloop protocol answering 16 bytes to every path,
/health included), the real data plane process (`python -m selfheal_sandbox.dataplane`,
one listener forwarding round robin to the 3, health checks every 5 s) and HAProxy
(`nbthread 1`, mode http, balance roundrobin, http-keep-alive, http-reuse safe,
`option httpchk GET /health` every 5 s, in the foreground), waits until both proxies
answer 200 and the data plane reports all 3 targets healthy, then runs
`wrk -t2 -c50 --latency` against each variant: direct (one backend), the sandbox ALB
(one process) and HAProxy (one thread). After a 2 s warm-up each, the variants are
interleaved round by round (direct, sandbox, HAProxy, direct, ...), --rounds runs of
--duration seconds each. Prints per variant the median req/s (min-max), median p50 and
p99 latency, the proxy's CPU time (user + sys of the process and its children during the
wrk run) per completed request, and the ratios sandbox/HAProxy and sandbox/direct; then
whether the goal holds: sandbox/HAProxy >= 0.5 with a sandbox p99 <= 10 ms.

    .venv/bin/python benchmarks/alb_proxy.py [--rounds 3] [--duration 10]

Defaults take about 2 minutes. HAProxy and wrk come from Debian: when missing, the
benchmark installs them with apt-get (root only; policy-rc.d keeps the haproxy service
from starting). Everything listens on 127.0.0.1, and everything it starts is stopped by
pid, also on an error or Ctrl-C. On 2 shared cores the rates move by about 7 % between
sittings (research/alb-proxy-throughput.md): only ratios measured side by side mean much.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
BODY = b"hello from alb!\n"  # 16 bytes, as in the research runs
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s" % (len(BODY), BODY)
PACKAGES = ("haproxy", "wrk")  # Debian package and command have the same name
WARM_UP_S = 2
GOAL_RATIO = 0.5
GOAL_P99_MS = 10.0
DIRECT, SANDBOX, HAPROXY = "direct (1 backend)", "sandbox ALB (1 process)", "HAProxy (nbthread 1)"


# ----------------------------------------------------------------- backend


def serve_backend(port: int) -> None:
    import uvloop  # only the backend subprocesses need it

    class Fixed(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:  # GETs only: no bodies
                _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                self.transport.write(RESPONSE)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Fixed, "127.0.0.1", port, backlog=1024)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    uvloop.run(main())


# ----------------------------------------------------------------- tools


def which(command: str) -> str | None:
    """haproxy lives in /usr/sbin, which not every PATH has."""
    return shutil.which(command, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin")


def ensure_packages() -> None:
    missing = [name for name in PACKAGES if which(name) is None]
    if not missing:
        return
    names = " ".join(missing)
    if os.geteuid() != 0 or which("apt-get") is None:
        sys.exit(f"this benchmark needs {names}: run `apt-get install -y {names}` as root (Debian), then again")
    print(f"installing {names} with apt-get ...", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        # Stale package lists point at .debs the mirror no longer has.
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False)
    still = [name for name in missing if which(name) is None]
    if still:
        sys.exit(f"apt-get could not install {' '.join(still)} (see its errors above); install it, then run again")


# ----------------------------------------------------------------- load


@dataclass(frozen=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx responses plus socket errors
    cpu_us_per_request: float | None  # the proxy's; None when there is none


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency_ms(out: str, percentile: int) -> float:
    value, unit = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M).groups()  # type: ignore[union-attr]
    return float(value) * _UNIT_MS[unit]


def wrk(url: str, duration: float) -> str:
    command = ["wrk", "-t2", "-c50", f"-d{max(round(duration), 1)}s", "--latency", "--timeout", "5s", url]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, its live children and the children it has reaped."""
    proc = psutil.Process(pid)
    times = proc.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in proc.children(recursive=True):
        child_times = child.cpu_times()
        total += child_times.user + child_times.system
    return total


def measure(url: str, duration: float, proxy_pid: int | None) -> Run:
    before = cpu_seconds(proxy_pid) if proxy_pid else 0.0
    out = wrk(url, duration)
    cpu = cpu_seconds(proxy_pid) - before if proxy_pid else 0.0
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return Run(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_latency_ms(out, 50),
        p99_ms=_latency_ms(out, 99),
        requests=requests,
        errors=errors,
        cpu_us_per_request=cpu * 1e6 / requests if proxy_pid and requests else None,
    )


# ----------------------------------------------------------------- setup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    ready: Callable[[], bool], what: str, procs: list[subprocess.Popen], log: Path | None = None, timeout: float = 20
) -> None:
    """Poll `ready()` until true; fail fast, with the log's tail, when a process we started died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            sys.exit(f"{what}: {dead[0].args[0]} exited with {dead[0].returncode}\n{tail}")
        if ready():
            return
        time.sleep(0.1)
    sys.exit(f"{what}: not ready within {timeout:g} s")


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    # Own session: a Ctrl-C reaches only this script, which then stops everything by pid.
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )


def data_plane_config(ports: list[int]) -> dict:
    health_check = {
        "protocol": "HTTP",
        "port": "traffic-port",
        "path": "/health",
        "interval_s": 5,
        "timeout_s": 2,
        "healthy_threshold": 2,
        "unhealthy_threshold": 2,
        "matcher": "200",
    }
    return {
        "generation": 1,
        "time_scale": 1,
        "load_balancers": [
            {
                "arn": "bench-lb",
                "dns_name": "bench",
                "idle_timeout_s": 60,
                "listeners": [
                    {"port": 80, "protocol": "HTTP", "action": {"type": "forward", "target_groups": [["bench-tg", 1]]}}
                ],
            }
        ],
        "target_groups": [
            {
                "arn": "bench-tg",
                "in_use": True,
                "health_check": health_check,
                "targets": [
                    {"id": f"i-{n}", "port": p, "host": "127.0.0.1", "draining": False} for n, p in enumerate(ports)
                ],
            }
        ],
    }


def start_data_plane(folder: Path, ports: list[int], procs: list[subprocess.Popen]) -> tuple[int, str]:
    config, report, log = folder / "config.json", folder / "report.json", folder / "dataplane.log"
    config.write_text(json.dumps(data_plane_config(ports)))
    env = {**os.environ, "PYTHONPATH": str(REPO / "sandbox" / "src")}
    command = [sys.executable, "-m", "selfheal_sandbox.dataplane", "--config", str(config), "--report", str(report)]
    procs.append(start(command, log, env))
    url: list[str] = []

    def healthy() -> bool:
        if not report.exists():
            return False
        doc = json.loads(report.read_text())
        if [t["state"] for t in doc["health"].get("bench-tg", [])] != ["healthy"] * len(ports):
            return False
        url[:] = [f"http://127.0.0.1:{doc['listeners']['bench-lb']['80']}/"]
        return answers_200(url[0])

    # The first health check comes one interval (5 s) in, the second makes it healthy.
    wait_until(healthy, "the data plane (3 healthy targets)", procs[-1:], log, timeout=30)
    return procs[-1].pid, url[0]


def start_haproxy(folder: Path, ports: list[int], procs: list[subprocess.Popen]) -> tuple[int, str]:
    port = free_port()
    servers = "".join(f"    server s{n} 127.0.0.1:{p} check inter 5s\n" for n, p in enumerate(ports))
    config = folder / "haproxy.cfg"
    config.write_text(
        "global\n    nbthread 1\n    maxconn 4096\n\n"
        "defaults\n    mode http\n    option http-keep-alive\n    option forwardfor\n    http-reuse safe\n"
        "    timeout connect 10s\n    timeout client 60s\n    timeout server 60s\n\n"
        f"frontend bench\n    bind 127.0.0.1:{port}\n    default_backend targets\n\n"
        f"backend targets\n    balance roundrobin\n    option httpchk GET /health\n{servers}"
    )
    log = folder / "haproxy.log"
    procs.append(start([which("haproxy") or "haproxy", "-db", "-f", str(config)], log))
    url = f"http://127.0.0.1:{port}/"
    wait_until(lambda: answers_200(url), "HAProxy", procs[-1:], log)
    return procs[-1].pid, url


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_all(folder: Path, rounds: int, duration: float, procs: list[subprocess.Popen]) -> dict[str, list[Run]]:
    ports = [free_port() for _ in range(3)]
    script = str(Path(__file__).resolve())
    for port in ports:
        procs.append(start([sys.executable, script, "--backend", str(port)], folder / f"backend-{port}.log"))
    wait_until(lambda: all(accepts(p) for p in ports), "the 3 backends", procs)
    plane_pid, plane_url = start_data_plane(folder, ports, procs)
    haproxy_pid, haproxy_url = start_haproxy(folder, ports, procs)
    variants = {
        DIRECT: (f"http://127.0.0.1:{ports[0]}/", None),
        SANDBOX: (plane_url, plane_pid),
        HAPROXY: (haproxy_url, haproxy_pid),
    }
    for url, _ in variants.values():
        wrk(url, WARM_UP_S)
    runs: dict[str, list[Run]] = {name: [] for name in variants}
    for n in range(rounds):
        for name, (url, pid) in variants.items():
            print(f"round {n + 1}/{rounds}: {name} ...", file=sys.stderr, flush=True)
            runs[name].append(measure(url, duration, pid))
    return runs


# ----------------------------------------------------------------- report


def print_table(runs: dict[str, list[Run]], rounds: int, duration: float) -> None:
    median = {name: statistics.median(r.rps for r in rs) for name, rs in runs.items()}
    p99 = {name: statistics.median(r.p99_ms for r in rs) for name, rs in runs.items()}
    print(
        f"load: wrk -t2 -c50 --latency, {rounds} x {duration:g} s per variant, interleaved by round; "
        "3 fast backends, 16-byte responses; medians over the runs"
    )
    print(
        f"{'variant':<26}{'req/s median (min-max)':>28}{'p50 ms':>9}{'p99 ms':>9}{'proxy CPU µs/req':>18}{'errors':>8}"
    )
    for name, rs in runs.items():
        rates = [r.rps for r in rs]
        spread = f"{median[name]:,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"
        cpus = [r.cpu_us_per_request for r in rs if r.cpu_us_per_request is not None]
        cpu = f"{statistics.median(cpus):.1f}" if cpus else "-"
        p50 = statistics.median(r.p50_ms for r in rs)
        errors = sum(r.errors for r in rs)
        print(f"{name:<26}{spread:>28}{p50:>9.2f}{p99[name]:>9.2f}{cpu:>18}{errors:>8}")
    ratio = median[SANDBOX] / median[HAPROXY]
    print(f"ratio sandbox/HAProxy: {ratio:.3f}   ratio sandbox/direct: {median[SANDBOX] / median[DIRECT]:.3f}")
    met = ratio >= GOAL_RATIO and p99[SANDBOX] <= GOAL_P99_MS
    print(
        f"goal (sandbox/HAProxy >= {GOAL_RATIO} and sandbox p99 <= {GOAL_P99_MS:g} ms): "
        f"{'met' if met else 'NOT met'} (ratio {ratio:.3f}, p99 {p99[SANDBOX]:.2f} ms)"
    )
    if any(r.errors for rs in runs.values() for r in rs):
        print("errors: non-2xx/3xx responses or socket errors in some runs (counted over all runs above)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per variant, interleaved (default 3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run, whole (default 10)")
    parser.add_argument("--backend", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        serve_backend(args.backend)
        return 0
    if args.rounds < 1 or args.duration < 1:
        parser.error(f"--rounds {args.rounds} / --duration {args.duration:g}: both must be at least 1")

    ensure_packages()
    # A plain `kill` gets the same clean-up as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="alb-bench-") as tmp:
        try:
            runs = run_all(Path(tmp), args.rounds, args.duration, procs)
        finally:
            stop(procs)
    print_table(runs, args.rounds, args.duration)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
