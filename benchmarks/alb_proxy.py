#!/usr/bin/env python3
"""Requests/s through the sandbox's ALB data plane vs straight to one backend.

Starts 3 fast backends (a raw uvloop protocol answering 16 bytes) and the real
data plane process (`python -m selfheal_sandbox.dataplane`) with one listener
forwarding round robin to them, waits until all three targets are healthy, then
runs the load generator against one backend directly and against the proxy,
interleaved, and prints both rates and their ratio. Loopback only; everything it
starts is stopped by pid at the end.

    .venv/bin/python benchmarks/alb_proxy.py [--duration 5] [--rounds 1]

Load generator: `wrk -t2 -c50` when installed (research/alb-proxy-throughput.md
used the same), else a small asyncio keep-alive client (slower: it measures less).
On 2 shared cores the figures move by about ±7 % between runs; only a ratio
measured in one sitting means much.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BODY = b"hello from alb!\n"  # 16 bytes, as in the research runs
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


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


# ----------------------------------------------------------------- load


def run_wrk(url: str, duration: float) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c50", f"-d{int(duration)}s", "--timeout", "5s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        print(out, file=sys.stderr)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


async def _client(host: str, port: int, until: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    while time.monotonic() < until:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        counts[0] += 1
    writer.close()


def run_asyncio_client(url: str, duration: float) -> float:
    host, port = url.split("//")[1].rstrip("/").split(":")
    counts = [0]

    async def main() -> None:
        until = time.monotonic() + duration
        await asyncio.gather(*(_client(host, int(port), until, counts) for _ in range(50)))

    started = time.monotonic()
    asyncio.run(main())
    return counts[0] / (time.monotonic() - started)


# ----------------------------------------------------------------- setup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_data_plane(folder: Path, ports: list[int]) -> tuple[subprocess.Popen, str]:
    config = {
        "generation": 1,
        "time_scale": 1,
        "load_balancers": [
            {
                "arn": "bench-lb",
                "dns_name": "bench",
                "idle_timeout_s": 60,
                "listeners": [
                    {
                        "port": 80,
                        "protocol": "HTTP",
                        "action": {"type": "forward", "target_groups": [["bench-tg", 1]]},
                    }
                ],
            }
        ],
        "target_groups": [
            {
                "arn": "bench-tg",
                "in_use": True,
                "health_check": {
                    "protocol": "HTTP",
                    "port": "traffic-port",
                    "path": "/health",
                    "interval_s": 5,
                    "timeout_s": 2,
                    "healthy_threshold": 2,
                    "unhealthy_threshold": 2,
                    "matcher": "200",
                },
                "targets": [
                    {"id": f"i-{n}", "port": p, "host": "127.0.0.1", "draining": False} for n, p in enumerate(ports)
                ],
            }
        ],
    }
    (folder / "config.json").write_text(json.dumps(config))
    report = folder / "report.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "sandbox" / "src")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "selfheal_sandbox.dataplane",
            "--config",
            str(folder / "config.json"),
            "--report",
            str(report),
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20  # first health check comes one interval (5 s) in
    while time.monotonic() < deadline:
        if report.exists():
            doc = json.loads(report.read_text())
            states = [t["state"] for t in doc["health"].get("bench-tg", [])]
            if states == ["healthy"] * len(ports):
                return proc, f"http://127.0.0.1:{doc['listeners']['bench-lb']['80']}/"
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the data plane did not report 3 healthy targets within 20 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=1, help="direct/proxy pairs")
    parser.add_argument("--backend", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        serve_backend(args.backend)
        return 0

    load = run_wrk if shutil.which("wrk") else run_asyncio_client
    tool = "wrk -t2 -c50" if load is run_wrk else "asyncio client, 50 connections"
    ports = [free_port() for _ in range(3)]
    procs = [subprocess.Popen([sys.executable, __file__, "--backend", str(p)]) for p in ports]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            plane, proxy_url = start_data_plane(Path(tmp), ports)
            procs.append(plane)
            direct_url = f"http://127.0.0.1:{ports[0]}/"
            load(direct_url, 1)  # warm-up, both paths
            load(proxy_url, 1)
            direct, proxied = [], []
            for _ in range(args.rounds):
                direct.append(load(direct_url, args.duration))
                proxied.append(load(proxy_url, args.duration))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(5)
    d, p = statistics.median(direct), statistics.median(proxied)
    print(f"load: {tool}, {args.duration:g} s x {args.rounds} round(s), 16-byte responses")
    print(f"{'path':<32}{'requests/s':>12}")
    print(f"{'direct to one backend':<32}{d:>12,.0f}")
    print(f"{'through the ALB data plane':<32}{p:>12,.0f}")
    print(f"ratio proxy/direct: {p / d:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
