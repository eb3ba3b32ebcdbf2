"""A private selfheal sandbox, and ansible-playbook runs against it.

Shared by the integration tests and the benchmarks: each starts its own sandbox on a
port the OS picks, with its own state directory, so it never meets a developer's
sandbox (`make demo`) or another run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

REPO = Path(__file__).resolve().parents[2]
DEV_COLLECTION = REPO / ".ansible/dev-collections/ansible_collections/selfheal/aws"
# The tools of the Python that runs us (the repository's .venv), before anything on PATH.
TOOL_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def tool(name: str) -> str:
    """Absolute path of a console script, preferring the running interpreter's venv."""
    found = shutil.which(name, path=TOOL_PATH)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH: run `make venv`")
    return found


@dataclass(frozen=True)
class Sandbox:
    state_dir: Path
    endpoint: str
    time_scale: float | None = None

    def env(self) -> dict[str, str]:
        """The variables `up` wrote to <state dir>/env (endpoint, fake credentials, region, state dir)."""
        variables = {}
        for line in (self.state_dir / "env").read_text().splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                name, value = words[1].split("=", 1)
                variables[name] = value
        return variables

    def client(self, service: str) -> Any:
        """A boto3 client of the sandbox (its endpoint, region and fake credentials)."""
        env = self.env()
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )


@contextmanager
def running_sandbox(state_dir: Path, time_scale: float | None = None) -> Iterator[Sandbox]:
    """Start `selfheal-sandbox up --port 0` in state_dir; always `down` on the way out."""
    command = [tool("selfheal-sandbox"), "up", "--state-dir", str(state_dir), "--port", "0"]
    if time_scale is not None:
        command += ["--time-scale", str(time_scale)]
    try:
        up = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if up.returncode != 0:
            raise RuntimeError(f"selfheal-sandbox up failed ({up.returncode}): {up.stderr.strip()}")
        yield Sandbox(state_dir, up.stdout.strip().splitlines()[-1], time_scale)
    finally:
        # Also after a failed or interrupted `up`: it may have started the server already.
        subprocess.run(
            [tool("selfheal-sandbox"), "down", "--state-dir", str(state_dir)],
            capture_output=True,
            timeout=120,
            check=False,
        )


def playbook_env(
    sandbox: Sandbox, extra: Mapping[str, str] | None = None, dev_collection: bool = True
) -> dict[str, str]:
    """Environment for ansible-playbook: ours first, so a developer's sandbox variables never leak in.

    dev_collection=False is for a project of its own (an installed copy of the collection):
    no ANSIBLE_* setting of the caller may point it back at this repository.
    """
    if dev_collection and not DEV_COLLECTION.is_dir():
        raise FileNotFoundError(f"{DEV_COLLECTION} is missing: run `make dev-collections`")
    env = os.environ | sandbox.env() | {"PATH": TOOL_PATH, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    if not dev_collection:
        for name in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "ANSIBLE_INVENTORY"):
            env.pop(name, None)
    # The inventory reads the sandbox's time scale from here; unset means AWS speed.
    env.pop("SELFHEAL_TIME_SCALE", None)
    if sandbox.time_scale is not None:
        env["SELFHEAL_TIME_SCALE"] = f"{sandbox.time_scale:g}"
    return env | dict(extra or {})


def run_playbook(
    sandbox: Sandbox,
    playbook: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run playbooks/<playbook> from the repository root (its ansible.cfg and inventory)."""
    return subprocess.run(
        [tool("ansible-playbook"), f"playbooks/{playbook}", *args],
        cwd=REPO,
        env=playbook_env(sandbox, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_project_playbook(
    sandbox: Sandbox,
    project: Path,
    playbook: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run a playbook (a file of project, or a collection playbook by FQCN) from project,
    with project's ansible.cfg and inventory, as a user of the installed collection would."""
    return subprocess.run(
        [tool("ansible-playbook"), playbook, *args],
        cwd=project,
        env=playbook_env(sandbox, env, dev_collection=False),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
