"""SSM Run Command: AWS-RunShellScript runs on the instances it names, with output,
exit codes, the execution timeout, and the CPU it burns."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from botocore.exceptions import ClientError
from conftest import RunningSandbox, launch
from ec2_helpers import ec2_status, fast_sandbox, instance_status, wait_for


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


@pytest.fixture
def ssm(aws: RunningSandbox) -> Any:
    return aws.client("ssm")


def _booted(aws: RunningSandbox, ec2: Any, count: int = 1, **kwargs: Any) -> list[str]:
    """Instances of a bare image whose OS (and so SSM agent) is up."""
    ids = [launch(ec2, **kwargs) for _ in range(count)]
    for iid in ids:
        wait_for(f"{iid} to boot", lambda i=iid: (instance_status(aws, i) or {}).get("booted"))
    return ids


def _run(ssm: Any, commands: list[str], timeout: str | None = None, **target: Any) -> str:
    parameters = {"commands": commands}
    if timeout:
        parameters["executionTimeout"] = [timeout]
    response = ssm.send_command(DocumentName="AWS-RunShellScript", Parameters=parameters, **target)
    return response["Command"]["CommandId"]


def _finished(ssm: Any, command_id: str, instance_id: str, timeout: float = 20) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        inv = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        return inv if inv["Status"] not in ("Pending", "InProgress", "Delayed") else None

    return wait_for(f"command {command_id} on {instance_id}", probe, timeout)


def test_run_shell_script_runs_on_the_named_instance_only_with_its_output(
    aws: RunningSandbox, ec2: Any, ssm: Any
) -> None:
    """AWS: SendCommand with InstanceIds runs the document on those managed nodes
    only; GetCommandInvocation returns ResponseCode and stdout/stderr."""
    target, other = _booted(aws, ec2, 2)
    address = instance_status(aws, target)["address"]

    command_id = _run(
        ssm,
        ['echo "$SELFHEAL_INSTANCE_ID $SELFHEAL_BIND_ADDRESS"', "pwd", "echo oops >&2"],
        InstanceIds=[target],
    )

    inv = _finished(ssm, command_id, target)
    assert inv["Status"] == "Success"
    assert inv["ResponseCode"] == 0
    assert inv["StandardOutputContent"] == f"{target} {address}\n{aws.instance_root(target)}\n"
    assert inv["StandardErrorContent"] == "oops\n"
    with pytest.raises(ClientError, match="InvocationDoesNotExist"):
        ssm.get_command_invocation(CommandId=command_id, InstanceId=other)
    listed = ssm.list_command_invocations(CommandId=command_id, Details=True)
    assert [i["InstanceId"] for i in listed["CommandInvocations"]] == [target]
    assert listed["CommandInvocations"][0]["CommandPlugins"][0]["ResponseCode"] == 0
    assert ssm.list_commands(CommandId=command_id)["Commands"][0]["Status"] == "Success"


def test_a_non_zero_exit_fails_and_output_is_cut_at_24000_characters(
    aws: RunningSandbox, ec2: Any, ssm: Any
) -> None:
    """AWS: a plugin whose exit code is not 0 is Failed; StandardOutputContent holds
    the first 24,000 characters of stdout, StandardErrorContent the first 8,000."""
    (instance,) = _booted(aws, ec2)

    command_id = _run(
        ssm,
        [
            "head -c 30000 /dev/zero | tr '\\0' o",
            "head -c 9000 /dev/zero | tr '\\0' e >&2",
            "exit 3",
        ],
        InstanceIds=[instance],
    )

    inv = _finished(ssm, command_id, instance)
    assert (inv["Status"], inv["StatusDetails"], inv["ResponseCode"]) == ("Failed", "Failed", 3)
    assert inv["StandardOutputContent"] == "o" * 24000
    assert inv["StandardErrorContent"] == "e" * 8000


def test_targets_by_tag_reach_only_the_tagged_instances(
    aws: RunningSandbox, ec2: Any, ssm: Any
) -> None:
    """AWS: Targets with tag:<key> send the command to the managed nodes with that tag
    (moto 5.2.5 would hit every instance when Targets is empty)."""
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "Role", "Value": "web"}]}]
    web = _booted(aws, ec2, 2, TagSpecifications=tags)
    (untagged,) = _booted(aws, ec2)

    command_id = _run(
        ssm, ["echo $SELFHEAL_INSTANCE_ID"], Targets=[{"Key": "tag:Role", "Values": ["web"]}]
    )

    listed = ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"]
    assert sorted(i["InstanceId"] for i in listed) == sorted(web)
    for iid in web:
        assert _finished(ssm, command_id, iid)["StandardOutputContent"] == f"{iid}\n"
    only_one = _run(ssm, ["true"], InstanceIds=[untagged])
    listed = ssm.list_command_invocations(CommandId=only_one)["CommandInvocations"]
    assert [i["InstanceId"] for i in listed] == [untagged]


def test_execution_timeout_stops_the_command_and_reports_timed_out(
    aws: RunningSandbox, ec2: Any, ssm: Any
) -> None:
    """AWS: executionTimeout bounds the run; the agent stops the script's processes
    and the invocation is TimedOut (StatusDetails ExecutionTimedOut)."""
    (instance,) = _booted(aws, ec2)

    started = time.monotonic()
    command_id = _run(
        ssm, ["echo started", "sleep 600", "echo never"], timeout="40", InstanceIds=[instance]
    )

    inv = _finished(ssm, command_id, instance)
    assert (inv["Status"], inv["StatusDetails"]) == ("TimedOut", "ExecutionTimedOut")
    assert inv["ResponseCode"] == 137
    assert inv["StandardOutputContent"] == "started\n"
    # 40 AWS s at time scale 20: 2 s wall, well below sleep's 600.
    assert 1.5 <= time.monotonic() - started < 15
    sleepers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [])[:2] == ["sleep", "600"]
    ]
    assert sleepers == []


def test_send_command_to_an_instance_that_is_not_a_running_managed_node_fails(
    aws: RunningSandbox, ec2: Any, ssm: Any
) -> None:
    """AWS: SendCommand fails with InvalidInstanceId for an instance that is not a
    managed node in a valid state: terminated, unknown, or still booting (its SSM
    agent has not registered). Stopped is rejected too (AWS would delay delivery)."""
    stopped, terminated = _booted(aws, ec2, 2)
    ec2.stop_instances(InstanceIds=[stopped])
    ec2.terminate_instances(InstanceIds=[terminated])
    booting = launch(ec2)

    for instance in (booting, stopped, terminated, "i-0123456789abcdef0"):
        with pytest.raises(ClientError, match="InvalidInstanceId"):
            _run(ssm, ["true"], InstanceIds=[instance])


def test_a_cpu_burning_command_raises_the_instance_cpu_utilization(
    aws: RunningSandbox, ec2: Any, ssm: Any
) -> None:
    """AWS: CPUUtilization measures the CPU the instance's processes use; a Run
    Command script is one of them, and stopping the instance ends it."""
    burning, idle = _booted(aws, ec2, 2)
    command_id = _run(ssm, ["timeout 30 sh -c 'while :; do :; done'"], InstanceIds=[burning])
    wait_for(
        "the burner to start",
        lambda: (
            ssm.get_command_invocation(CommandId=command_id, InstanceId=burning)["Status"]
            == "InProgress"
        ),
    )

    ec2_status(aws)  # starts a new measuring window
    time.sleep(1.0)
    cpu = {iid: s["cpu_percent"] for iid, s in ec2_status(aws)["instances"].items()}

    assert cpu[burning] > 10  # one busy core of 2 vCPUs is 50 % on an idle host
    assert cpu[idle] < 2
    ec2.stop_instances(InstanceIds=[burning])
    inv = _finished(ssm, command_id, burning, timeout=10)
    assert inv["Status"] == "Failed"
    assert inv["ResponseCode"] == 143  # SIGTERM from the shutdown
