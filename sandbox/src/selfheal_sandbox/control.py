"""Client side of the CLI: start, stop and inspect a server from another process.

Functions return an exit code; stdout carries only the machine-readable answer
(the endpoint for `up`, the document for `status --json`), stderr the prose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from . import status as status_doc
from .processes import (
    ProcessRegistry,
    is_gone,
    process_if_same,
    process_tree,
    stop_trees,
    wait_gone,
)
from .state import (
    FAKE_ACCESS_KEY_ID,
    FAKE_SECRET_ACCESS_KEY,
    RuntimeInfo,
    StateDir,
    clear_runtime,
    read_runtime,
)

STARTUP_TIMEOUT = 30.0
# The server gets this long to stop its own children before `down` steps in.
SERVER_STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 20


def _say(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class Probe:
    """What is known about the server of a state dir."""

    info: RuntimeInfo | None
    process: psutil.Process | None
    status: dict[str, Any] | None
    problem: str | None

    @property
    def running(self) -> bool:
        return self.status is not None


def fetch_status(endpoint: str, timeout: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(endpoint + status_doc.STATUS_ROUTE, timeout=timeout) as resp:  # noqa: S310 - our own loopback URL
        return json.loads(resp.read())


def probe(state: StateDir) -> Probe:
    info = read_runtime(state)
    if not state.pid_file.exists() or info is None:
        return Probe(info, None, None, None)
    proc = process_if_same(info.pid, info.pid_create_time)
    if proc is None:
        return Probe(info, None, None, f"stale pid file: process {info.pid} is gone")
    try:
        return Probe(info, proc, fetch_status(info.endpoint), None)
    except (OSError, ValueError) as e:
        return Probe(
            info, proc, None, f"pid {info.pid} is alive but {info.endpoint} does not answer ({e})"
        )


def aws_api_answers(endpoint: str, region: str) -> bool:
    """STS GetCallerIdentity: the cheapest real AWS call, proves moto serves requests."""
    import boto3  # noqa: PLC0415 - slow import, only needed while waiting for startup
    from botocore.config import Config  # noqa: PLC0415

    client = boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
        config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
    )
    try:
        client.get_caller_identity()
    except Exception:
        return False
    return True


def log_tail(state: StateDir, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = state.log_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _server_env() -> dict[str, str]:
    # The server must import this very package, also from a source checkout.
    src = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def _reap_leftovers(state: StateDir) -> int:
    """Processes of a server that died without cleaning up."""
    return ProcessRegistry(state.processes_file).stop_all()


def up(state: StateDir, port: int, region: str, time_scale: float) -> int:
    with state.exclusive():
        found = probe(state)
        if found.running and found.info:
            info = found.info
            print(info.endpoint)
            _say(f"sandbox already running (pid {info.pid}) at {info.endpoint}; nothing to do")
            if (region, time_scale) != (info.region, info.time_scale):
                _say(
                    f"note: it runs region {info.region}, time scale {info.time_scale:g}; "
                    "run `selfheal-sandbox down` first to change them"
                )
            return 0
        if found.process is not None:
            _say(f"error: {found.problem}; run `selfheal-sandbox down` first")
            return 1
        if found.problem:
            _say(f"cleaning up: {found.problem}")
        if n := _reap_leftovers(state):
            _say(f"cleaning up: ended {n} leftover process trees of an earlier server")
        clear_runtime(state)
        state.ensure()
        return _start(state, port, region, time_scale)


def _start(state: StateDir, port: int, region: str, time_scale: float) -> int:
    argv = [
        sys.executable, "-m", "selfheal_sandbox", "serve",
        "--state-dir", str(state.root),
        "--port", str(port),
        "--region", region,
        "--time-scale", repr(time_scale),
    ]  # fmt: skip
    with state.log_file.open("ab") as log_fh:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log_fh.write(f"--- {stamp} selfheal-sandbox up: {' '.join(argv[1:])}\n".encode())
        log_fh.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the shell that ran `up`
            cwd=state.root,
            env=_server_env(),
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if (code := proc.poll()) is not None:
            _say(f"error: the sandbox server exited during startup (exit code {code}).")
            _say(f"last lines of {state.log_file}:\n{log_tail(state)}")
            return 1
        info = read_runtime(state)
        if info and info.pid == proc.pid and aws_api_answers(info.endpoint, info.region):
            print(info.endpoint)
            _say(
                f"sandbox up (pid {info.pid}) at {info.endpoint}, region {info.region}, "
                f"time scale {info.time_scale:g}; for AWS clients: source {state.env_file}"
            )
            return 0
        time.sleep(0.1)
    stop_trees([psutil.Process(proc.pid)], timeout=5)
    proc.wait()
    clear_runtime(state)
    _say(f"error: the sandbox API did not answer within {STARTUP_TIMEOUT:.0f} s; server stopped.")
    _say(f"last lines of {state.log_file}:\n{log_tail(state)}")
    return 1


def down(state: StateDir) -> int:
    with state.exclusive():
        found = probe(state)
        stopped = None
        if found.process is not None:
            server = found.process
            tree = process_tree(server)
            server.terminate()  # the server stops its own children first
            if wait_gone([server], SERVER_STOP_TIMEOUT):
                _say(f"server pid {server.pid} ignored SIGTERM for {SERVER_STOP_TIMEOUT:.0f} s")
            # Whatever survived (or a server that hung): SIGTERM, then SIGKILL.
            stop_trees([p for p in tree if not is_gone(p)], timeout=5)
            stopped = server.pid
        leftovers = _reap_leftovers(state)
        clear_runtime(state)
    if stopped is not None:
        _say(f"sandbox stopped (pid {stopped})")
    elif found.problem:
        _say(f"sandbox was not running ({found.problem}); cleaned up")
    else:
        _say("sandbox is not running; nothing to stop")
    if leftovers:
        _say(f"ended {leftovers} leftover process trees")
    return 0


def show_status(state: StateDir, as_json: bool) -> int:
    found = probe(state)
    doc = found.status or status_doc.not_running(state, found.info, found.problem)
    print(json.dumps(doc, indent=2) if as_json else status_doc.render_text(doc))
    return 0
