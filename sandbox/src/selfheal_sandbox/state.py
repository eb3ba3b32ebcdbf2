"""The state directory: where the sandbox keeps everything it owns.

Layout (all paths relative to the state dir, `.sandbox/` by default)::

    sandbox.pid        pid of the running server
    sandbox.log        server log: every action taken on AWS's behalf, with its rule
    state.json         endpoint, port, region, time_scale, pid, started_at
    endpoint           the AWS API URL, nothing else (for `$(cat .sandbox/endpoint)`)
    env                `export ...` lines for AWS clients, ready to `source`
    processes.json     registry of every process the sandbox started (see processes.py)
    instances/<id>/root/      the instance's root file system
    instances/<id>/user-data  its decoded user data
    amis/<ami-id>/root/       an AMI's artifact (a snapshot of an instance root)
    mailbox/                  delivered emails

Other tools read these files, so the names here are a contract.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ENV_STATE_DIR = "SELFHEAL_SANDBOX_STATE_DIR"
ENV_PORT = "SELFHEAL_SANDBOX_PORT"
DEFAULT_STATE_DIR_NAME = ".sandbox"
DEFAULT_PORT = 4599
DEFAULT_REGION = "us-east-1"
# Only loopback is ever served: the sandbox is a laptop-local stand-in for AWS.
BIND_HOST = "127.0.0.1"
# moto accepts any credentials; these are the conventional fake ones.
FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"  # noqa: S105 - not a secret, moto ignores it


def default_state_dir() -> Path:
    """`$SELFHEAL_SANDBOX_STATE_DIR`, else `.sandbox` in the working directory."""
    return Path(os.environ.get(ENV_STATE_DIR) or Path.cwd() / DEFAULT_STATE_DIR_NAME)


def default_port() -> int:
    """`$SELFHEAL_SANDBOX_PORT`, else 4599."""
    raw = os.environ.get(ENV_PORT)
    if not raw:
        return DEFAULT_PORT
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{ENV_PORT}={raw!r} is not a port number (0-65535)") from None


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write via a temp file + rename so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    tmp.replace(path)


@dataclass(frozen=True)
class StateDir:
    """Paths inside one state directory (always absolute)."""

    root: Path

    @classmethod
    def at(cls, path: str | Path | None) -> StateDir:
        return cls(Path(path).expanduser().resolve() if path else default_state_dir().resolve())

    @property
    def pid_file(self) -> Path:
        return self.root / "sandbox.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "sandbox.log"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def endpoint_file(self) -> Path:
        return self.root / "endpoint"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def processes_file(self) -> Path:
        return self.root / "processes.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def instances_dir(self) -> Path:
        return self.root / "instances"

    @property
    def amis_dir(self) -> Path:
        return self.root / "amis"

    @property
    def mailbox_dir(self) -> Path:
        return self.root / "mailbox"

    def instance_dir(self, instance_id: str) -> Path:
        return self.instances_dir / instance_id

    def instance_root(self, instance_id: str) -> Path:
        return self.instance_dir(instance_id) / "root"

    def instance_user_data(self, instance_id: str) -> Path:
        return self.instance_dir(instance_id) / "user-data"

    def ami_dir(self, ami_id: str) -> Path:
        return self.amis_dir / ami_id

    def ami_root(self, ami_id: str) -> Path:
        return self.ami_dir(ami_id) / "root"

    def ensure(self) -> None:
        for d in (self.root, self.instances_dir, self.amis_dir, self.mailbox_dir):
            d.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Serialise `up`/`down` on this state dir (two `up`s must not race)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.lock_file.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class RuntimeInfo:
    """What a running server wrote about itself into `state.json`."""

    endpoint: str
    port: int
    region: str
    time_scale: float
    pid: int
    # Together with pid, identifies the process across pid reuse.
    pid_create_time: float
    started_at: str

    def env_lines(self, state: StateDir) -> str:
        values = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "SELFHEAL_SANDBOX_ENDPOINT": self.endpoint,
            # AWS seconds per wall second: tools report sandbox times in AWS seconds with it.
            "SELFHEAL_TIME_SCALE": f"{self.time_scale:g}",
            ENV_STATE_DIR: str(state.root),
        }
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())


def write_runtime(state: StateDir, info: RuntimeInfo) -> None:
    """Publish a started server: state.json, endpoint, env, then the pid file last
    (the pid file is what says "running")."""
    atomic_write(state.state_file, json.dumps(asdict(info), indent=2) + "\n")
    atomic_write(state.endpoint_file, info.endpoint + "\n")
    atomic_write(state.env_file, info.env_lines(state))
    atomic_write(state.pid_file, f"{info.pid}\n")


def read_runtime(state: StateDir) -> RuntimeInfo | None:
    try:
        raw = json.loads(state.state_file.read_text(encoding="utf-8"))
        return RuntimeInfo(**raw)
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def clear_runtime(state: StateDir) -> None:
    """Forget a stopped server. state.json and env stay for post-mortems; the pid
    and endpoint files go, so their presence keeps meaning "running"."""
    for path in (state.pid_file, state.endpoint_file):
        path.unlink(missing_ok=True)
