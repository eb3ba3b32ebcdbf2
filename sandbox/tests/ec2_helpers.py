"""Shared by the EC2 runtime and Run Command tests: a fast sandbox, a golden image
with the collection's own web app, polling with a deadline."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningSandbox, launch, run_cli, sandbox_processes, start_sandbox

REPO = Path(__file__).resolve().parents[2]
INSTALL_DIR = "/opt/selfheal-web"
APP_PORT = 8080
# ec2_runtime.BOOT_DELAY_AWS_S (30 AWS s) is 1.5 s wall at time scale 20.
TIME_SCALE = 20


def _render(template: Path, **values: str) -> str:
    """The roles' Jinja templates use only plain `{{ var }}` substitutions."""
    text = template.read_text()
    for name, value in {"ansible_managed": "test", **values}.items():
        text = text.replace("{{ " + name + " }}", value)
    return text


def user_data() -> str:
    """The launch template's default user data, as the launch_template role renders it."""
    return _render(
        REPO / "roles/launch_template/templates/user_data.sh.j2",
        launch_template_app_install_dir=INSTALL_DIR,
    )


def install_web_app(root: Path) -> None:
    """What the webapp role installs with webapp_root_prefix=<root>."""
    app = root / INSTALL_DIR.lstrip("/")
    for sub in ("bin", "etc", "run"):
        (app / sub).mkdir(parents=True, exist_ok=True)
    (app / "bin/selfheal_web.py").write_text(
        (REPO / "roles/webapp/files/selfheal_web.py").read_text()
    )
    start = app / "bin/start.sh"
    start.write_text(
        _render(REPO / "roles/webapp/templates/start.sh.j2", webapp_install_dir=INSTALL_DIR)
    )
    start.chmod(0o755)
    config = {"port": APP_PORT, "health_path": "/health", "version": "1.0.0"}
    (app / "etc/config.json").write_text(json.dumps(config) + "\n")


def bake_web_image(aws: RunningSandbox, ec2: Any) -> str:
    """A golden AMI: builder instance, the app installed in its root, CreateImage."""
    builder = launch(ec2)
    install_web_app(aws.instance_root(builder))
    image = ec2.create_image(InstanceId=builder, Name="golden-web")["ImageId"]
    ec2.terminate_instances(InstanceIds=[builder])
    return image


def wait_for[T](what: str, probe: Callable[[], T | None], timeout: float = 20) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def ec2_status(aws: RunningSandbox) -> dict[str, Any]:
    with urllib.request.urlopen(aws.endpoint + "/_sandbox/status", timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())["behaviours"]["ec2"]


def instance_status(aws: RunningSandbox, instance_id: str) -> dict[str, Any] | None:
    return ec2_status(aws)["instances"].get(instance_id)


def http_get(address: str, path: str = "/", timeout: float = 1) -> tuple[int, bytes] | None:
    """(status, body) from the app, None when nothing answers."""
    try:
        url = f"http://{address}:{APP_PORT}{path}"  # always a 127.x address
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except OSError:
        return None


def wait_serving(aws: RunningSandbox, instance_id: str, timeout: float = 20) -> dict[str, Any]:
    """Polls until the instance is booted and its app answers; returns its status."""

    def probe() -> dict[str, Any] | None:
        status = instance_status(aws, instance_id)
        if status and status["address"] and status["booted"] and http_get(status["address"]):
            return status
        return None

    return wait_for(f"{instance_id} to serve HTTP", probe, timeout)


def fast_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A sandbox at TIME_SCALE for one test module."""
    state_dir = tmp_path_factory.mktemp("ec2state")
    running = start_sandbox(state_dir, "--time-scale", str(TIME_SCALE))
    yield running
    result = run_cli("down", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    assert not sandbox_processes(state_dir)
