"""Fixtures: one real sandbox for the session, started and stopped through the CLI,
and a moto reset before every behaviour test."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest

REGION = "us-east-1"
_SCRIPT = Path(sys.executable).with_name("selfheal-sandbox")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real CLI: the installed console script, else `python -m`."""
    argv = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "selfheal_sandbox"]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def sandbox_processes(state_dir: Path) -> list[psutil.Process]:
    """Every live process whose command line names this state dir."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(state_dir) in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


@dataclass(frozen=True)
class RunningSandbox:
    state_dir: Path
    endpoint: str
    pid: int

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def status(self) -> dict[str, Any]:
        result = run_cli("status", "--json", "--state-dir", str(self.state_dir))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def reset(self) -> None:
        url = self.endpoint + "/moto-api/reset"  # always http://127.0.0.1:...
        request = urllib.request.Request(url, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            assert resp.status == 200

    def log(self) -> str:
        return (self.state_dir / "sandbox.log").read_text()

    def instance_root(self, instance_id: str) -> Path:
        return self.state_dir / "instances" / instance_id / "root"

    def ami_root(self, image_id: str) -> Path:
        return self.state_dir / "amis" / image_id / "root"


def start_sandbox(state_dir: Path, *extra: str) -> RunningSandbox:
    result = run_cli("up", "--port", "0", "--state-dir", str(state_dir), *extra)
    assert result.returncode == 0, f"up failed:\n{result.stderr}"
    pid = json.loads((state_dir / "state.json").read_text())["pid"]
    return RunningSandbox(state_dir, result.stdout.strip(), pid)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    state_dir = tmp_path_factory.mktemp("state")
    running = start_sandbox(state_dir)
    yield running
    result = run_cli("down", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    assert not sandbox_processes(state_dir)


@pytest.fixture
def aws(sandbox: RunningSandbox) -> RunningSandbox:
    """The session sandbox with moto's state reset, as a fresh account would be."""
    sandbox.reset()
    return sandbox


@pytest.fixture
def ec2(aws: RunningSandbox) -> Any:
    return aws.client("ec2")


def make_subnets(ec2: Any, count: int = 2) -> list[str]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return [
        ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{REGION}{'abc'[n]}"
        )["Subnet"]["SubnetId"]
        for n in range(count)
    ]


def launch(ec2: Any, image_id: str = "ami-12c6146b", **kwargs: Any) -> str:
    """One instance; moto's public AMI ami-12c6146b stands for a bare OS image."""
    reservation = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, **kwargs)
    return reservation["Instances"][0]["InstanceId"]
