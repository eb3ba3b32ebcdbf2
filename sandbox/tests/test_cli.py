"""The CLI and state-dir contract that playbooks, Makefile and tests rely on."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
from conftest import (
    RunningSandbox,
    launch,
    make_subnets,
    run_cli,
    sandbox_processes,
    start_sandbox,
)

from selfheal_sandbox.processes import ProcessRegistry, wait_gone


def test_up_writes_the_state_dir_contract(sandbox: RunningSandbox) -> None:
    """The state dir holds pid, log, state.json, endpoint and env files, and the folders
    for instance roots, AMI artifacts and mail; the API is served on loopback only."""
    d = sandbox.state_dir
    assert sandbox.endpoint.startswith("http://127.0.0.1:")
    assert (d / "endpoint").read_text().strip() == sandbox.endpoint
    assert int((d / "sandbox.pid").read_text()) == sandbox.pid
    state = json.loads((d / "state.json").read_text())
    assert {"endpoint", "port", "region", "time_scale", "pid", "started_at"} <= state.keys()
    assert state["endpoint"] == sandbox.endpoint
    assert sandbox.endpoint.endswith(f":{state['port']}")
    assert (state["region"], state["time_scale"]) == ("us-east-1", 1.0)
    assert (d / "sandbox.log").is_file()
    for folder in ("instances", "amis", "mailbox"):
        assert (d / folder).is_dir()
    assert (d / "env").read_text().splitlines() == [
        f"export AWS_ENDPOINT_URL={sandbox.endpoint}",
        "export AWS_ACCESS_KEY_ID=testing",
        "export AWS_SECRET_ACCESS_KEY=testing",
        "export AWS_DEFAULT_REGION=us-east-1",
        f"export SELFHEAL_SANDBOX_ENDPOINT={sandbox.endpoint}",
        "export SELFHEAL_TIME_SCALE=1",
        f"export SELFHEAL_SANDBOX_STATE_DIR={d}",
    ]


def test_sourcing_env_points_aws_clients_at_the_sandbox(sandbox: RunningSandbox) -> None:
    """An unmodified AWS client reaches the sandbox through AWS_ENDPOINT_URL and fake
    credentials: STS answers with moto's default account."""
    code = "import boto3; print(boto3.client('sts').get_caller_identity()['Account'])"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    bash = shutil.which("bash") or "/bin/bash"
    script = f'source "$1" && exec "$2" -c "{code}"'
    env_file = str(sandbox.state_dir / "env")
    result = subprocess.run(
        [bash, "-c", script, "-", env_file, sys.executable],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "123456789012"


def test_up_twice_is_a_no_op(sandbox: RunningSandbox) -> None:
    """`up` on a running sandbox starts nothing and prints the same endpoint."""
    result = run_cli("up", "--port", "0", "--state-dir", str(sandbox.state_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == sandbox.endpoint
    assert "already running" in result.stderr
    assert sandbox.status()["pid"] == sandbox.pid
    servers = [
        p
        for p in sandbox_processes(sandbox.state_dir)
        if "selfheal_sandbox.dataplane" not in p.cmdline()  # the server's ALB data plane
    ]
    assert len(servers) == 1


def test_status_json_reports_endpoint_time_scale_and_paths(sandbox: RunningSandbox) -> None:
    """status --json carries what tools need: endpoint, region, time scale, absolute
    state dir and mailbox, load balancers and instances."""
    status = sandbox.status()
    assert status["running"] is True
    assert status["pid"] == sandbox.pid
    assert status["endpoint"] == sandbox.endpoint
    assert (status["region"], status["time_scale"]) == ("us-east-1", 1.0)
    assert status["state_dir"] == str(sandbox.state_dir)
    assert status["mailbox"] == str(sandbox.state_dir / "mailbox")
    assert Path(status["mailbox"]).is_absolute()
    assert isinstance(status["load_balancers"], list)
    assert isinstance(status["instances"], list)


def test_status_text_names_endpoint_and_state_dir(sandbox: RunningSandbox) -> None:
    """The readable status says whether it runs, where, and where its state is."""
    result = run_cli("status", "--state-dir", str(sandbox.state_dir))
    assert result.returncode == 0
    assert f"sandbox running (pid {sandbox.pid})" in result.stdout
    assert sandbox.endpoint in result.stdout
    assert str(sandbox.state_dir) in result.stdout


def test_status_lists_load_balancers_with_listeners(aws: RunningSandbox) -> None:
    """Each ALB appears with its name, DNS name and listeners (protocol, port) with the
    local address where the sandbox's ALB data plane serves the listener."""
    ec2, elbv2 = aws.client("ec2"), aws.client("elbv2")
    subnets = make_subnets(ec2)
    lb = elbv2.create_load_balancer(Name="web-alb", Subnets=subnets)["LoadBalancers"][0]
    vpc = ec2.describe_subnets(SubnetIds=subnets[:1])["Subnets"][0]["VpcId"]
    tg = elbv2.create_target_group(Name="web-tg", Protocol="HTTP", Port=8080, VpcId=vpc)
    elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {"Type": "forward", "TargetGroupArn": tg["TargetGroups"][0]["TargetGroupArn"]}
        ],
    )
    deadline = time.monotonic() + 10
    while True:
        [listed] = aws.status()["load_balancers"]
        if listed["listeners"][0]["address"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert listed["name"] == "web-alb"
    assert listed["dns_name"] == lb["DNSName"]
    [listener] = listed["listeners"]
    assert (listener["protocol"], listener["port"]) == ("HTTP", 80)
    assert re.fullmatch(r"127\.0\.0\.1:\d+", listener["address"])
    assert listener["url"] == f"http://{listener['address']}"


def test_status_shows_target_health_groups_activities_and_alarms(aws: RunningSandbox) -> None:
    """The status a person reads: each target with its DescribeTargetHealth state and
    reason, each Auto Scaling group's desired/in service/min/max, its scaling
    activities, each alarm with its state; `--json` carries the same under new keys."""
    started = datetime.fromisoformat(aws.status()["aws_time"])
    ec2, elbv2 = aws.client("ec2"), aws.client("elbv2")
    subnets = make_subnets(ec2)
    vpc = ec2.describe_subnets(SubnetIds=subnets[:1])["Subnets"][0]["VpcId"]
    lb = elbv2.create_load_balancer(Name="web-alb", Subnets=subnets)["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name="web-tg", Protocol="HTTP", Port=8080, VpcId=vpc)
    tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    instance = launch(ec2)
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": instance, "Port": 8080}])
    ec2.create_launch_template(
        LaunchTemplateName="web", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )
    aws.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="web-asg", LaunchTemplate={"LaunchTemplateName": "web"},
        MinSize=1, MaxSize=3, DesiredCapacity=2, VPCZoneIdentifier=",".join(subnets),
    )  # fmt: skip
    aws.client("cloudwatch").put_metric_alarm(
        AlarmName="web-cpu-high", Namespace="AWS/EC2", MetricName="CPUUtilization",
        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=70.0,
        ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip

    status = aws.status()
    [group] = [g for g in status["target_groups"] if g["arn"] == tg_arn]
    [target] = group["targets"]
    assert (group["name"], target["id"], target["port"]) == ("web-tg", instance, 8080)
    assert target["state"] in ("initial", "healthy", "unhealthy")
    [asg] = status["auto_scaling_groups"]
    assert (asg["name"], asg["desired"], asg["min"], asg["max"]) == ("web-asg", 2, 1, 3)
    assert [a["group"] for a in status["scaling_activities"]] == ["web-asg", "web-asg"]
    [alarm] = status["alarms"]
    assert (alarm["name"], alarm["state"]) == ("web-cpu-high", "INSUFFICIENT_DATA")
    launched = {i["id"]: i for i in status["instances"]}[instance]
    assert launched["availability_zone"].startswith("us-east-1")
    # nothing here publishes (the mailbox keeps other tests' mail, as an inbox would)
    published = [datetime.fromisoformat(n["timestamp"]) for n in status["notifications"]]
    assert not [at for at in published if at >= started]

    result = run_cli("status", "--state-dir", str(aws.state_dir))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "\x1b[" not in text  # not a terminal: no colour codes
    rows = {
        line.split()[1]: line.split() for line in text.splitlines() if line.startswith("web-tg")
    }
    assert rows[f"{instance}:8080"][2] in ("initial", "healthy", "unhealthy")
    assert re.search(r"^web-asg\s+2\s+\d\s+1\s+3\b", text, re.MULTILINE)
    assert re.search(r"^web-cpu-high\s+INSUFFICIENT_DATA\b", text, re.MULTILINE)
    assert re.search(r"^\d\d:\d\d:\d\d\s+web-asg\s+\w+\s+Launching", text, re.MULTILINE)
    assert re.search(rf"^{instance}\s+us-east-1\w\s+running\b", text, re.MULTILINE)


def test_status_when_not_running_says_so(tmp_path: Path) -> None:
    """status on a state dir without a server answers running=false, exit 0."""
    result = run_cli("status", "--json", "--state-dir", str(tmp_path))
    assert result.returncode == 0
    status = json.loads(result.stdout)
    assert status["running"] is False
    assert status["endpoint"] is None
    assert status["state_dir"] == str(tmp_path)
    for key in ("target_groups", "auto_scaling_groups", "scaling_activities", "alarms"):
        assert status[key] == []
    text = run_cli("status", "--state-dir", str(tmp_path))
    assert text.returncode == 0
    assert text.stdout.startswith("sandbox not running")


def test_down_when_nothing_runs_says_so(tmp_path: Path) -> None:
    """down without a server is not an error."""
    result = run_cli("down", "--state-dir", str(tmp_path))
    assert result.returncode == 0
    assert "not running" in result.stderr


def test_up_rejects_a_bad_time_scale(tmp_path: Path) -> None:
    """Errors name the field, the value given and what is allowed."""
    result = run_cli("up", "--time-scale", "0", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "time scale '0'" in result.stderr
    assert "> 0" in result.stderr


def test_up_fails_clearly_when_the_port_is_taken(tmp_path: Path) -> None:
    """A taken port is reported as such (with the log tail) and leaves no process."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_cli("up", "--port", str(port), "--state-dir", str(tmp_path))
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "last lines of" in result.stderr
    assert not (tmp_path / "sandbox.pid").exists()
    assert not sandbox_processes(tmp_path)


def _start_registered_tree(state_dir: Path) -> tuple[subprocess.Popen, list[int]]:
    """What an instance will be: a process tree started and registered by the sandbox."""
    registry = ProcessRegistry(state_dir / "processes.json")
    proc = registry.spawn(
        ["sh", "-c", "sleep 300 & sleep 300; wait"], role="instance", owner="i-test"
    )
    parent = psutil.Process(proc.pid)
    for _ in range(100):
        if parent.children():
            break
        time.sleep(0.02)
    return proc, [proc.pid, *(c.pid for c in parent.children(recursive=True))]


def _all_gone(pids: list[int]) -> bool:
    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return all(gone(pid) for pid in pids)


def test_down_leaves_no_process(tmp_path: Path) -> None:
    """down ends the server and every process tree the sandbox started; time scale is
    kept as given to up."""
    running = start_sandbox(tmp_path, "--time-scale", "10")
    assert running.status()["time_scale"] == 10.0
    child, tree = _start_registered_tree(tmp_path)
    assert len(tree) >= 2

    result = run_cli("down", "--state-dir", str(tmp_path))
    child.wait(timeout=10)  # the test started it, so the test reaps it

    assert result.returncode == 0, result.stderr
    assert f"sandbox stopped (pid {running.pid})" in result.stderr
    assert _all_gone([running.pid, *tree])
    assert not sandbox_processes(tmp_path)
    assert not (tmp_path / "sandbox.pid").exists()
    assert not (tmp_path / "endpoint").exists()
    assert json.loads((tmp_path / "processes.json").read_text()) == []


def test_down_after_a_server_crash_still_ends_its_processes(tmp_path: Path) -> None:
    """If the server died without cleaning up, the process registry lets down (and the
    next up) end what it had started."""
    running = start_sandbox(tmp_path)
    child, tree = _start_registered_tree(tmp_path)
    server = psutil.Process(running.pid)
    os.kill(running.pid, signal.SIGKILL)
    assert not wait_gone([server], timeout=5)

    status = json.loads(run_cli("status", "--json", "--state-dir", str(tmp_path)).stdout)
    assert status["running"] is False
    assert "stale pid file" in status["problem"]

    result = run_cli("down", "--state-dir", str(tmp_path))
    child.wait(timeout=10)
    assert result.returncode == 0
    assert "ended 1 leftover process trees" in result.stderr
    assert _all_gone(tree)
