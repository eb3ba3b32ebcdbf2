"""playbooks/site.yml rejects wrong types and values before anything is created.

Every case runs site.yml against one private sandbox with one bad input and checks that
the run fails, that the message names the variable (and, for the rules the roles assert,
what is allowed), and that the sandbox holds no resource afterwards. A role that checked
its inputs only when its turn came would fail too, but after the roles before it had
built their part of the stack: the last check catches that.

Run: .venv/bin/pytest tests/integration/test_bad_input.py -p no:pytest-ansible
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sandbox_session import Sandbox, run_playbook, running_sandbox


@dataclass(frozen=True)
class BadInput:
    id: str
    extra_vars: dict[str, Any] | str
    # Each must appear in the output of the failed run.
    expected: tuple[str, ...]

    def args(self) -> list[str]:
        # JSON keeps the types (7 is an int, "many" a str); key=value always gives strings.
        value = self.extra_vars if isinstance(self.extra_vars, str) else json.dumps(self.extra_vars)
        return ["-e", value]


BAD_INPUTS = [
    # autoscaling: the rules between inputs are asserts, the types and choices are the spec's
    BadInput(
        "min-size-above-max-size",
        {"autoscaling_min_size": 5, "autoscaling_max_size": 3},
        ("autoscaling_min_size=5", "must be between 0 and autoscaling_max_size (3)"),
    ),
    BadInput(
        "desired-capacity-above-max-size",
        {"autoscaling_desired_capacity": 7},
        ("autoscaling_desired_capacity=7", "[autoscaling_min_size, autoscaling_max_size] = [2, 6]"),
    ),
    BadInput(
        "desired-capacity-below-min-size",
        {"autoscaling_desired_capacity": 1},
        ("autoscaling_desired_capacity=1", "[autoscaling_min_size, autoscaling_max_size] = [2, 6]"),
    ),
    BadInput(
        "desired-capacity-above-max-size-as-key-value-string",
        "autoscaling_desired_capacity=7",
        ("autoscaling_desired_capacity=7", "[autoscaling_min_size, autoscaling_max_size] = [2, 6]"),
    ),
    BadInput(
        "health-check-type-http",
        {"autoscaling_health_check_type": "HTTP"},
        ("value of autoscaling_health_check_type must be one of: EC2, ELB, got: HTTP",),
    ),
    BadInput(
        "max-size-not-a-number",
        {"autoscaling_max_size": "many"},
        ("'autoscaling_max_size' is of type str and we were unable to convert to int",),
    ),
    # load_balancer: the AWS limits of a target group health check
    BadInput(
        "health-check-interval-4",
        {"load_balancer_health_check_interval": 4},
        ("load_balancer_health_check_interval=4", "must be between 5 and 300 seconds"),
    ),
    BadInput(
        "health-check-interval-301",
        {"load_balancer_health_check_interval": 301},
        ("load_balancer_health_check_interval=301", "must be between 5 and 300 seconds"),
    ),
    BadInput(
        "unhealthy-threshold-1",
        {"load_balancer_unhealthy_threshold": 1},
        ("load_balancer_unhealthy_threshold=1", "must be between 2 and 10"),
    ),
    BadInput(
        "unhealthy-threshold-11",
        {"load_balancer_unhealthy_threshold": 11},
        ("load_balancer_unhealthy_threshold=11", "must be between 2 and 10"),
    ),
    BadInput(
        "health-check-timeout-equal-to-interval",
        {"load_balancer_health_check_timeout": 5},
        ("load_balancer_health_check_timeout=5", "less than the interval (5)"),
    ),
    # network
    BadInput(
        "vpc-cidr-not-a-cidr",
        {"network_vpc_cidr": "not-a-cidr"},
        ("network_vpc_cidr=not-a-cidr", "a prefix from /16 to /24"),
    ),
    BadInput(
        "vpc-cidr-prefix-33",
        {"network_vpc_cidr": "10.0.0.1/33"},
        ("network_vpc_cidr=10.0.0.1/33", "a prefix from /16 to /24"),
    ),
    BadInput(
        "vpc-cidr-prefix-8",
        {"network_vpc_cidr": "10.0.0.0/8"},
        ("network_vpc_cidr=10.0.0.0/8", "a prefix from /16 to /24"),
    ),
    BadInput(
        "one-availability-zone",
        {"network_az_count": 1},
        ("value of network_az_count must be one of: 2, 3, 4, 5, 6, got: 1",),
    ),
    BadInput(
        "ssh-open-to-the-world",
        {"network_admin_cidr": "0.0.0.0/0"},
        ("network_admin_cidr=0.0.0.0/0", "narrower than /0"),
    ),
    # golden_ami, launch_template
    BadInput(
        "ami-version-with-a-space",
        {"golden_ami_version": "1.0 beta"},
        ("golden_ami_version=1.0 beta", "letters, digits, '.', '-' or '_'"),
    ),
    BadInput(
        "instance-type-huge",
        {"launch_template_instance_type": "huge"},
        ("launch_template_instance_type=huge", "must look like <family>.<size>"),
    ),
    # monitoring
    BadInput(
        "subscription-protocol-unknown",
        {"monitoring_subscriptions": [{"protocol": "carrier-pigeon", "endpoint": "ops@example.com"}]},
        ("value of protocol must be one of: email, email-json, http, https, sqs, got: carrier-pigeon",),
    ),
    BadInput(
        "subscription-email-not-an-address",
        {"monitoring_subscriptions": [{"protocol": "email", "endpoint": "not-an-address"}]},
        ("monitoring_subscriptions", "not-an-address is not a valid email endpoint"),
    ),
    BadInput(
        "cpu-low-threshold-equal-to-high",
        {"monitoring_cpu_low_threshold": 70},
        ("monitoring_cpu_low_threshold=70", "between 0 and monitoring_cpu_high_threshold (70)"),
    ),
]


def stack_resources(sandbox: Sandbox) -> dict[str, list[str]]:
    """Everything in the sandbox that a run of site.yml creates, by kind; empty lists when clean."""

    client = sandbox.client
    ec2, elbv2 = client("ec2"), client("elbv2")
    return {
        "VPCs": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]],
        # Terminated instances count: a builder launched and terminated was still created.
        "instances": [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]],
        "images": [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]],
        "launch templates": [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]],
        "security groups": [
            g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"
        ],
        "Auto Scaling groups": [
            g["AutoScalingGroupName"] for g in client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
        ],
        "target groups": [t["TargetGroupName"] for t in elbv2.describe_target_groups()["TargetGroups"]],
        "load balancers": [b["LoadBalancerName"] for b in elbv2.describe_load_balancers()["LoadBalancers"]],
        "alarms": [a["AlarmName"] for a in client("cloudwatch").describe_alarms()["MetricAlarms"]],
        "topics": [t["TopicArn"] for t in client("sns").list_topics()["Topics"]],
    }


def created(sandbox: Sandbox) -> dict[str, list[str]]:
    return {kind: names for kind, names in stack_resources(sandbox).items() if names}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        assert created(running) == {}, "a fresh sandbox should hold nothing of the stack"
        yield running


@pytest.fixture
def clean_sandbox(sandbox: Sandbox) -> Sandbox:
    """The shared sandbox, reset only when an earlier case left resources behind."""
    if created(sandbox):
        request = urllib.request.Request(f"{sandbox.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    return sandbox


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda bad: bad.id)
def test_site_rejects_bad_input_before_creating_anything(clean_sandbox: Sandbox, bad: BadInput) -> None:
    result = run_playbook(clean_sandbox, "site.yml", bad.args(), timeout=300)
    output = result.stdout + result.stderr

    assert result.returncode != 0, f"site.yml accepted {bad.extra_vars}:\n{output[-3000:]}"
    missing = [text for text in bad.expected if text not in output]
    assert not missing, f"the failure does not say {missing}:\n{output[-3000:]}"
    assert created(clean_sandbox) == {}, "site.yml created resources before rejecting the input"
