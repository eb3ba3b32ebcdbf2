"""EC2 instances that run: boot, loopback address, stop/terminate/reboot, crashes, CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from conftest import RunningSandbox, launch, make_subnets, run_cli, sandbox_processes
from ec2_helpers import (
    TIME_SCALE,
    bake_web_image,
    fast_sandbox,
    http_get,
    instance_status,
    user_data,
    wait_for,
    wait_serving,
)

from selfheal_sandbox.clock import Clock
from selfheal_sandbox.ec2_runtime import BOOT_DELAY_AWS_S, WATCH_INTERVAL_AWS_S, Ec2Runtime
from selfheal_sandbox.instance_runtime import InstanceRuntime, environment, loopback_for
from selfheal_sandbox.state import StateDir


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    yield from fast_sandbox(tmp_path_factory)


@pytest.fixture
def aws(fast: RunningSandbox) -> RunningSandbox:
    fast.reset()
    return fast


@pytest.fixture
def ec2(aws: RunningSandbox) -> Any:
    return aws.client("ec2")


def _state(ec2: Any, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def _gone(pids: list[int]) -> bool:
    return not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
    )


def _tree(pid: int) -> list[int]:
    root = psutil.Process(pid)
    return [pid, *(c.pid for c in root.children(recursive=True))]


def test_instance_boots_after_a_delay_and_serves_its_app_on_its_own_loopback_address(
    aws: RunningSandbox, ec2: Any
) -> None:
    """AWS: an instance is not reachable the moment it is `running`; its OS boots
    first and cloud-init then runs the user data, which starts the image's app.
    The sandbox boots BOOT_DELAY_AWS_S (30 AWS s) after launch."""
    subnet = make_subnets(ec2, 1)[0]
    image = bake_web_image(aws, ec2)
    started = time.monotonic()
    instance = launch(ec2, image, UserData=user_data(), SubnetId=subnet)
    private_ip = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0][
        "PrivateIpAddress"
    ]

    assert instance_status(aws, instance)["booted"] is False
    status = wait_serving(aws, instance)
    # 30 AWS s at time scale 20 = 1.5 s wall before anything runs.
    assert time.monotonic() - started >= BOOT_DELAY_AWS_S / TIME_SCALE
    # DescribeInstances keeps the subnet's private IP; the loopback address maps it.
    assert private_ip.startswith("10.0.0.")
    assert status["address"] == "127." + private_ip.split(".", 1)[1]
    code, body = http_get(status["address"])
    assert code == 200
    assert json.loads(body) == {
        "instance_id": instance,
        "availability_zone": "us-east-1a",
        "version": "1.0.0",
    }
    # GetConsoleOutput shows what the user data and the app printed (boto3 decodes it).
    console = ec2.get_console_output(InstanceId=instance)["Output"]
    assert f"on {status['address']}:8080 as {instance}" in console


def test_user_data_that_is_not_a_script_is_not_run(aws: RunningSandbox, ec2: Any) -> None:
    """AWS (cloud-init): only user data starting with #! is run as a shell script."""
    image = bake_web_image(aws, ec2)
    instance = launch(ec2, image, UserData="exec $SELFHEAL_ROOT/opt/selfheal-web/bin/start.sh\n")
    status = wait_for("boot", lambda: (s := instance_status(aws, instance)) and s["booted"] and s)
    assert status["pid"] is None
    assert http_get(status["address"]) is None


def test_stop_ends_the_process_tree_and_start_boots_the_image_services(
    aws: RunningSandbox, ec2: Any
) -> None:
    """AWS: StopInstances shuts the OS down (every process ends); StartInstances
    boots it again, and cloud-init does not run user data again: the app comes
    back from the service the image enables (the webapp role's start script)."""
    image = bake_web_image(aws, ec2)
    instance = launch(ec2, image, UserData=user_data())
    before = wait_serving(aws, instance)
    pids = _tree(before["pid"])

    ec2.stop_instances(InstanceIds=[instance])
    wait_for("the app's processes to end", lambda: _gone(pids), timeout=10)
    assert http_get(before["address"]) is None
    assert instance_status(aws, instance)["booted"] is False

    ec2.start_instances(InstanceIds=[instance])
    after = wait_serving(aws, instance)
    assert after["address"] == before["address"]  # the private IP survives stop/start
    assert after["boots"] == 2
    console = (aws.state_dir / "instances" / instance / "console.log").read_text()
    assert "boot 2" in console
    assert "boot service /opt/selfheal-web/bin/start.sh" in console


def test_terminate_ends_the_process_tree(aws: RunningSandbox, ec2: Any) -> None:
    """AWS: TerminateInstances shuts the instance down for good."""
    image = bake_web_image(aws, ec2)
    instance = launch(ec2, image, UserData=user_data())
    status = wait_serving(aws, instance)
    pids = _tree(status["pid"])

    ec2.terminate_instances(InstanceIds=[instance])
    wait_for("the app's processes to end", lambda: _gone(pids), timeout=10)
    assert instance_status(aws, instance) is None


def test_reboot_restarts_the_app_without_running_user_data_again(
    aws: RunningSandbox, ec2: Any
) -> None:
    """AWS: RebootInstances restarts the OS: processes end, the instance boots
    again; cloud-init runs user-data scripts once per instance, not per boot."""
    image = bake_web_image(aws, ec2)
    marker = 'echo user-data-ran >> "$SELFHEAL_ROOT/user-data-runs"\n'
    script = user_data().replace("#!/bin/sh\n", "#!/bin/sh\n" + marker, 1)
    instance = launch(ec2, image, UserData=script)
    before = wait_serving(aws, instance)

    ec2.reboot_instances(InstanceIds=[instance])
    wait_for("the old app to end", lambda: _gone([before["pid"]]), timeout=10)
    after = wait_serving(aws, instance)

    assert after["pid"] != before["pid"]
    assert after["boots"] == 2
    assert _state(ec2, instance) == "running"
    runs = (aws.instance_root(instance) / "user-data-runs").read_text()
    assert runs == "user-data-ran\n"


def test_an_app_that_crashes_leaves_the_instance_running(aws: RunningSandbox, ec2: Any) -> None:
    """AWS: EC2 does not watch applications: an instance whose app died stays
    `running`; only health checks (ELB, Auto Scaling) can tell."""
    image = bake_web_image(aws, ec2)
    instance = launch(ec2, image, UserData=user_data())
    status = wait_serving(aws, instance)

    os.kill(status["pid"], signal.SIGKILL)
    wait_for("the app to stop answering", lambda: http_get(status["address"]) is None)
    time.sleep(2 * WATCH_INTERVAL_AWS_S / TIME_SCALE)  # the watch has seen the exit

    assert _state(ec2, instance) == "running"
    after = instance_status(aws, instance)
    assert after["booted"] is True
    assert after["address"] == status["address"]
    assert f"boot process {status['pid']} exited" in aws.log()


def test_loopback_address_follows_the_private_ip_and_never_collides() -> None:
    """Each instance has its own address, like a private IP: 10.a.b.c -> 127.a.b.c;
    the host's 127.0.0.1 is never handed out; a collision takes a free address."""
    assert loopback_for("10.42.1.17", set()) == "127.42.1.17"
    assert loopback_for("127.3.0.9", set()) == "127.3.0.9"
    assert loopback_for("10.42.1.17", {"127.42.1.17"}) == "127.255.0.1"
    assert loopback_for("10.42.1.17", {"127.42.1.17", "127.255.0.1"}) == "127.255.0.2"
    assert loopback_for("10.0.0.4", set()) == "127.0.0.4"
    assert loopback_for("10.0.0.1", set()) == "127.255.0.1"
    assert loopback_for(None, set()) == "127.255.0.1"


BUSY = [sys.executable, "-c", "while True: pass"]
IDLE = [shutil.which("sleep") or "/bin/sleep", "30"]


def _bare_runtime(tmp_path: Path) -> Ec2Runtime:
    """An Ec2Runtime without a sandbox around it: only its CPU meters are used."""
    fake = SimpleNamespace(
        clock=Clock(10),
        config=SimpleNamespace(state=StateDir(tmp_path), region="us-east-1"),
        adapter=SimpleNamespace(
            subscribe=lambda _: None,
            install_instance_state_hooks=lambda: None,
            install_ssm_run_command=lambda _: None,
            install_console_output=lambda _: None,
        ),
    )
    return Ec2Runtime(fake)  # type: ignore[arg-type]


def _cpu_after_one_second(
    runtime: Ec2Runtime, instances: dict[str, tuple[str, list[subprocess.Popen]]]
) -> dict[str, float]:
    """CPUUtilization of each instance (type, its processes) over one second."""
    for iid, (itype, procs) in instances.items():
        rt = InstanceRuntime(iid, "10.0.0.9", "127.0.0.9", "us-east-1a", itype)
        rt.booted_at, rt.boot_group = 0.0, procs[0].pid
        rt.command_groups = {p.pid for p in procs[1:]}
        runtime._runtimes[iid] = rt
    time.sleep(0.3)  # past the processes' start-up: an idle one only sleeps from there on
    runtime.collect_metrics()
    time.sleep(1.0)
    return {d["Dimensions"][0]["Value"]: d["Value"] for d in runtime.collect_metrics()}


@pytest.fixture
def spawn() -> Iterator[Any]:
    """Start processes in their own session (an instance's process group); all killed after."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str]) -> subprocess.Popen:
        started.append(subprocess.Popen(argv, start_new_session=True))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_cpu_utilization_is_the_process_tree_cpu_over_the_instance_vcpus(
    tmp_path: Path, spawn: Any
) -> None:
    """AWS: CPUUtilization is the percentage of the instance's allocated compute
    in use: one busy process counts against 2 vCPUs on a t3.micro, 1 on a t2.micro."""
    burner, idle = spawn(BUSY), spawn(IDLE)
    runtime = _bare_runtime(tmp_path)

    values = _cpu_after_one_second(
        runtime,
        {
            "i-burn2": ("t3.micro", [burner]),
            "i-burn1": ("t2.micro", [burner]),
            "i-idle": ("t3.micro", [idle]),
        },
    )

    assert values["i-burn2"] == pytest.approx(50, abs=5)
    assert values["i-burn1"] >= 90
    assert values["i-idle"] < 2
    datum = runtime.collect_metrics()[0]
    assert datum["MetricName"] == "CPUUtilization"
    assert datum["Unit"] == "Percent"


def test_busy_instances_read_busy_and_idle_ones_idle_on_a_crowded_host(
    tmp_path: Path, spawn: Any
) -> None:
    """AWS: a busy loop on every vCPU reads ~100 % whatever else the hardware runs, an
    idle instance ~0 %. Here three t3.micro (6 vCPUs) and the sandbox's own work share
    fewer cores: a thread's time waiting for a core counts as CPU it wanted, so neither
    the crowding nor the sandbox's work decides whether a 70 % alarm fires."""
    cores = os.cpu_count() or 1
    for _ in range(cores + 1):  # work outside any instance, enough to fill the host
        spawn(BUSY)
    busy = {f"i-busy{n}": ("t3.micro", [spawn(BUSY), spawn(BUSY)]) for n in range(3)}

    values = _cpu_after_one_second(
        _bare_runtime(tmp_path), {**busy, "i-idle": ("t3.micro", [spawn(IDLE)])}
    )

    for iid in busy:
        assert values[iid] >= 90, values
    assert values["i-idle"] < 2, values


def test_nproc_on_an_instance_counts_its_vcpus_not_the_hosts(tmp_path: Path) -> None:
    """EC2: nproc on a t3.micro prints 2, on a t2.micro 1, whatever the host has (the
    chaos cpu_stress starts one loop per CPU that nproc reports)."""
    nproc_path = shutil.which("nproc")
    assert nproc_path, "GNU coreutils' nproc is missing"
    for itype, vcpus in (("t2.micro", 1), ("t3.micro", 2), ("m5.xlarge", 4)):
        rt = InstanceRuntime("i-1", "10.0.0.9", "127.0.0.9", "us-east-1a", itype)
        env = environment(StateDir(tmp_path), rt, "us-east-1")
        nproc = subprocess.run([nproc_path], env=env, capture_output=True, text=True, check=True)
        assert int(nproc.stdout) == vcpus


def test_down_leaves_no_instance_process(fast: RunningSandbox) -> None:
    """Everything the sandbox starts for an instance ends with `down` (last test of
    this module: it stops the module's sandbox)."""
    fast.reset()
    ec2 = fast.client("ec2")
    image = bake_web_image(fast, ec2)
    instance = launch(ec2, image, UserData=user_data())
    wait_serving(fast, instance)
    assert len(sandbox_processes(fast.state_dir)) >= 2  # server + app

    result = run_cli("down", "--state-dir", str(fast.state_dir))

    assert result.returncode == 0, result.stderr
    assert sandbox_processes(fast.state_dir) == []
