"""The sandbox server: moto's API on 127.0.0.1, in this process, plus the hooks
that give it behaviour.

`serve()` runs in the foreground until SIGTERM/SIGINT; `selfheal-sandbox up`
starts it as a detached process. One `Sandbox` object owns everything the server
holds: config, the process-wide lock, the moto adapter and the behaviours.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from . import moto_gaps
from . import status as status_doc
from .adapter import MotoAdapter, patch_method
from .autoscaling import AutoScaling
from .behaviour import Behaviour
from .clock import Clock
from .cloudwatch import CloudWatchAlarms
from .ec2_runtime import Ec2Runtime
from .elb import Elb
from .instances import InstanceRoots
from .mailbox import read_mailbox
from .processes import ProcessRegistry, process_if_same
from .sns import SnsDelivery
from .state import BIND_HOST, RuntimeInfo, StateDir, clear_runtime, read_runtime, write_runtime

log = logging.getLogger(__name__)

SANDBOX_ROUTE_PREFIX = "/_sandbox/"


class StartupError(Exception):
    """The server cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class ServerConfig:
    state: StateDir
    port: int
    region: str
    time_scale: float


@dataclass
class Sandbox:
    """The server's state object; nothing else in the process holds state."""

    config: ServerConfig
    # Known before the first request, so GET /_sandbox/status always has an answer.
    info: RuntimeInfo
    adapter: MotoAdapter
    roots: InstanceRoots
    processes: ProcessRegistry
    # moto has no locks around its models. Every API request and every sandbox
    # thread that touches moto's state holds this one lock (never across network
    # or process I/O), so a compound moto operation is never seen half done.
    lock: threading.RLock = field(default_factory=threading.RLock)
    clock: Clock = field(default_factory=Clock)
    # For the status: when each instance was terminated (moto keeps no time).
    terminations: status_doc.TerminationTimes | None = None
    # The behaviour of each AWS service next to moto, built by install() in this
    # order and started in it (stopped in reverse). Later ones may use earlier ones.
    behaviours: list[Behaviour] = field(default_factory=list)
    # Extra GET routes under /_sandbox/ a behaviour serves (e.g. SNS SubscribeURL):
    # path -> handler(environ) -> (status line, content type, body). Handlers lock.
    routes: dict[str, Callable[[dict[str, Any]], tuple[str, str, bytes]]] = field(
        default_factory=dict
    )

    @classmethod
    def create(cls, config: ServerConfig, info: RuntimeInfo) -> Sandbox:
        return cls(
            config=config,
            info=info,
            adapter=MotoAdapter(config.region),
            roots=InstanceRoots(config.state),
            processes=ProcessRegistry(config.state.processes_file),
            clock=Clock(config.time_scale),
        )

    def behaviour(self, name: str) -> Any:
        """The behaviour called `name` (e.g. "ec2"), for behaviours that use another."""
        return next(b for b in self.behaviours if b.name == name)

    def _build_behaviours(self) -> None:
        # One line per behaviour module; each module owns its line.
        self.behaviours.append(Ec2Runtime(self))
        self.behaviours.append(Elb(self))
        self.behaviours.append(AutoScaling(self))
        self.behaviours.append(SnsDelivery(self))  # after autoscaling, before cloudwatch
        self.behaviours.append(CloudWatchAlarms(self))

    def start_behaviours(self) -> None:
        for behaviour in self.behaviours:
            behaviour.start()
            log.info("behaviour %s started", behaviour.name)

    def stop_behaviours(self) -> None:
        for behaviour in reversed(self.behaviours):
            try:
                behaviour.stop()
            except Exception:
                log.exception("behaviour %s did not stop cleanly", behaviour.name)

    def install(self) -> None:
        """Hooks are class-level and process-wide: install one Sandbox per process."""
        moto_gaps.install()
        self.adapter.subscribe(self.roots)
        self.terminations = status_doc.TerminationTimes(self.clock.utcnow)
        self.adapter.subscribe(self.terminations)
        self.adapter.install_hooks()
        patch_method(DomainDispatcherApplication, "__call__", self._wsgi_entry)
        self._build_behaviours()
        log.info(
            "moto gaps closed: CreateImage snapshot tags, DisableMetricsCollection, "
            "DeleteLaunchTemplateVersions, no launch-template tags in LaunchTemplateData"
        )

    def _wsgi_entry(self, original: Callable) -> Callable:
        sandbox = self

        def __call__(app: Any, environ: dict[str, Any], start_response: Callable) -> Iterable:
            if environ.get("PATH_INFO", "").startswith(SANDBOX_ROUTE_PREFIX):
                return sandbox._sandbox_route(environ, start_response)
            with sandbox.lock:
                return original(app, environ, start_response)

        return __call__

    def status(self) -> dict[str, Any]:
        mails, _ = read_mailbox(self.config.state)  # files: read outside the lock
        with self.lock:
            elb = next((b for b in self.behaviours if b.name == "elb"), None)
            autoscaling = next((b for b in self.behaviours if b.name == "autoscaling"), None)
            doc = status_doc.collect(
                self.info,
                self.config.state,
                self.adapter,
                self.roots,
                listener_address=elb.listener_address if elb else None,
                terminated_at=self.terminations.at if self.terminations else None,
            )
            doc["behaviours"] = {b.name: b.status() for b in self.behaviours}
            status_doc.add_views(
                doc,
                now=self.clock.utcnow(),
                target_groups=elb.target_groups_health() if elb else [],
                activities=autoscaling.scaling_activities(None, []) if autoscaling else [],
                alarm_history=self.adapter.alarm_history(),
                mails=mails,
            )
            return doc

    def _sandbox_route(self, environ: dict[str, Any], start_response: Callable) -> Iterable:
        handler = self.routes.get(environ.get("PATH_INFO", ""))
        if handler is not None:
            status, content_type, payload = handler(environ)
            start_response(
                status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
            )
            return [payload]
        if (
            environ.get("PATH_INFO") == status_doc.STATUS_ROUTE
            and environ.get("REQUEST_METHOD") == "GET"
        ):
            code, doc = "200 OK", self.status()
        else:
            code, doc = (
                "404 Not Found",
                {"error": f"no such sandbox route; try GET {status_doc.STATUS_ROUTE}"},
            )
        body = json.dumps(doc).encode()
        start_response(
            code, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


def bind_socket(port: int) -> socket.socket:
    """Listen on 127.0.0.1:port here, in the caller's thread.

    moto's ThreadedMotoServer binds inside its server thread: a taken port ends
    in werkzeug's sys.exit() in that thread and start() then waits forever.
    Binding first turns that into a clear error; the server then adopts the socket.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Same as werkzeug: lets a restart reuse a port in TIME_WAIT, still refuses a
    # port another process listens on.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((BIND_HOST, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {BIND_HOST} is already in use: stop what listens there, "
                "or choose another port with --port (--port 0 lets the OS pick)"
            ) from None
        raise StartupError(f"cannot listen on {BIND_HOST}:{port}: {e.strerror}") from None
    return sock


def start_moto(sock: socket.socket) -> tuple[BaseWSGIServer, threading.Thread]:
    """moto's server app on its threaded werkzeug server (what ThreadedMotoServer
    runs), adopting the bound socket and serving from a daemon thread."""
    try:
        httpd = make_server(
            BIND_HOST,
            sock.getsockname()[1],
            DomainDispatcherApplication(create_backend_app),
            threaded=True,
            request_handler=MotoRequestHandler,
            fd=sock.fileno(),
        )
    finally:
        sock.close()  # the server holds its own duplicate of the socket
    thread = threading.Thread(target=httpd.serve_forever, name="moto-server", daemon=True)
    thread.start()
    return httpd, thread


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return (
            datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        )


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # werkzeug logs every request at INFO; keep its warnings and moto's 500 tracebacks.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _refuse_second_server(state: StateDir) -> None:
    info = read_runtime(state)
    if (
        state.pid_file.exists()
        and info
        and info.pid != os.getpid()
        and process_if_same(info.pid, info.pid_create_time)
    ):
        raise StartupError(
            f"a sandbox server (pid {info.pid}) already serves {state.root}; "
            "run `selfheal-sandbox down` first"
        )


def serve(config: ServerConfig) -> int:
    """Run the sandbox server until SIGTERM or SIGINT. Returns the exit code."""
    configure_logging()
    state = config.state
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        state.ensure()
        _refuse_second_server(state)
        sock = bind_socket(config.port)
    except StartupError as e:
        log.error("sandbox cannot start: %s", e)
        return 2

    port = sock.getsockname()[1]
    me = psutil.Process()
    info = RuntimeInfo(
        endpoint=f"http://{BIND_HOST}:{port}",
        port=port,
        region=config.region,
        time_scale=config.time_scale,
        pid=me.pid,
        pid_create_time=me.create_time(),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    sandbox = Sandbox.create(config, info)
    sandbox.install()
    httpd, thread = start_moto(sock)
    sandbox.start_behaviours()
    write_runtime(state, info)
    log.info(
        "sandbox serving the AWS API at %s (region %s, time scale %g, state %s)",
        info.endpoint,
        config.region,
        config.time_scale,
        state.root,
    )

    while not stop.wait(1.0):
        pass

    started = time.monotonic()
    log.info("stopping: no new API requests, then every process the sandbox started")
    httpd.shutdown()
    thread.join(timeout=5)
    httpd.server_close()
    sandbox.stop_behaviours()
    ended = sandbox.processes.stop_all()
    clear_runtime(state)
    log.info(
        "sandbox stopped in %.2f s (%d process trees ended)", time.monotonic() - started, ended
    )
    return 0
