"""Auto Scaling behaviour: each test names the AWS rule it pins (aws-semantics.md §2, §3)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import REGION, RunningSandbox, run_cli, start_sandbox

TIME_SCALE = 20
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A sandbox running 20x faster than AWS: grace periods and draining go quickly."""
    state_dir = tmp_path_factory.mktemp("asg")
    running = start_sandbox(state_dir, "--time-scale", str(TIME_SCALE))
    yield running
    result = run_cli("down", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr


@pytest.fixture
def sbx(fast: RunningSandbox) -> RunningSandbox:
    fast.reset()
    return fast


def wait_for(what: str, probe: Callable[[], Any], deadline_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class Stack:
    """VPC with one subnet per AZ, a launch template, an optional target group."""

    def __init__(self, sbx: RunningSandbox, azs: int = 3) -> None:
        self.sbx = sbx
        self.ec2 = sbx.client("ec2")
        self.asg = sbx.client("autoscaling")
        self.elbv2 = sbx.client("elbv2")
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.vpc = vpc
        self.subnets = {
            f"{REGION}{z}": self.ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{REGION}{z}"
            )["Subnet"]["SubnetId"]
            for n, z in enumerate("abc"[:azs])
        }
        self.ec2.create_launch_template(
            LaunchTemplateName="web", LaunchTemplateData={"ImageId": "ami-12c6146b"}
        )

    def target_group(self, delay_s: int = 20) -> str:
        arn = self.elbv2.create_target_group(
            Name="web-tg", Protocol="HTTP", Port=8080, VpcId=self.vpc, TargetType="instance"
        )["TargetGroups"][0]["TargetGroupArn"]
        self.elbv2.modify_target_group_attributes(
            TargetGroupArn=arn,
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(delay_s)}],
        )
        return arn

    def group(self, desired: int = 3, min_size: int = 1, max_size: int = 6, **kw: Any) -> str:
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName="web-asg",
            LaunchTemplate={"LaunchTemplateName": "web"},
            MinSize=min_size,
            MaxSize=max_size,
            DesiredCapacity=desired,
            VPCZoneIdentifier=",".join(self.subnets.values()),
            **kw,
        )
        return "web-asg"

    def instances(self) -> list[dict[str, Any]]:
        return self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])[
            "AutoScalingGroups"
        ][0]["Instances"]

    def in_service(self) -> list[dict[str, Any]]:
        return [i for i in self.instances() if i["LifecycleState"] == "InService"]

    def wait_in_service(self, count: int) -> list[dict[str, Any]]:
        return wait_for(
            f"{count} InService instances",
            lambda: (
                (live := self.in_service())
                and len(live) == count
                and len(self.instances()) == count
                and live
            ),
        )

    def targets(self, tg_arn: str) -> set[str]:
        return {
            d["Target"]["Id"]
            for d in self.elbv2.describe_target_health(TargetGroupArn=tg_arn)[
                "TargetHealthDescriptions"
            ]
            # Registered: listed and not on its way out ("unused" / Target.NotInUse
            # is a registered target of a group no load balancer uses yet).
            if d["TargetHealth"]["State"] != "draining"
            and d["TargetHealth"].get("Reason") != "Target.NotRegistered"
        }

    def activities(self) -> list[dict[str, Any]]:
        return self.asg.describe_scaling_activities(AutoScalingGroupName="web-asg")["Activities"]


def test_group_launches_balanced_across_availability_zones(sbx: RunningSandbox) -> None:
    """AWS (BEN #Rebalancing): Auto Scaling launches into the Availability Zone with
    the fewest instances, so 3 instances over 3 AZs land one per AZ (moto puts all
    in the first subnet)."""
    stack = Stack(sbx)
    stack.group(desired=3)
    live = stack.wait_in_service(3)
    assert Counter(i["AvailabilityZone"] for i in live) == Counter(list(stack.subnets))
    described = stack.ec2.describe_instances(InstanceIds=[i["InstanceId"] for i in live])
    subnets = {i["SubnetId"] for r in described["Reservations"] for i in r["Instances"]}
    assert subnets == set(stack.subnets.values())


def test_desired_capacity_outside_min_max_is_rejected(sbx: RunningSandbox) -> None:
    """AWS: SetDesiredCapacity / UpdateAutoScalingGroup / CreateAutoScalingGroup with a
    desired capacity outside [MinSize, MaxSize] answer ValidationError."""
    stack = Stack(sbx, azs=1)
    stack.group(desired=1, min_size=1, max_size=2)
    with pytest.raises(ClientError) as above:
        stack.asg.set_desired_capacity(AutoScalingGroupName="web-asg", DesiredCapacity=3)
    assert above.value.response["Error"]["Code"] == "ValidationError"
    assert "above max value 2" in above.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as below:
        stack.asg.set_desired_capacity(AutoScalingGroupName="web-asg", DesiredCapacity=0)
    assert "below min value 1" in below.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as update:
        stack.asg.update_auto_scaling_group(AutoScalingGroupName="web-asg", DesiredCapacity=5)
    assert update.value.response["Error"]["Code"] == "ValidationError"
    group = stack.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])
    assert group["AutoScalingGroups"][0]["DesiredCapacity"] == 1


def test_terminated_instance_is_replaced_and_replacement_registered(sbx: RunningSandbox) -> None:
    """AWS (HCK): an instance no longer running fails the EC2 health check at once and
    is replaced; the replacement is registered with the target group before it goes
    InService (LC), and the activity cause names the EC2 health check."""
    stack = Stack(sbx, azs=2)
    tg = stack.target_group(delay_s=10)
    stack.group(desired=2, TargetGroupARNs=[tg], HealthCheckGracePeriod=300)
    first = {i["InstanceId"] for i in stack.wait_in_service(2)}
    wait_for("both registered", lambda: stack.targets(tg) == first)
    victim = sorted(first)[0]
    stack.ec2.terminate_instances(InstanceIds=[victim])

    def replaced() -> set[str]:
        live = {i["InstanceId"] for i in stack.in_service()}
        return live if len(live) == 2 and victim not in live else set()

    after = wait_for("a replacement InService", replaced)
    [replacement] = after - first
    wait_for("replacement registered", lambda: replacement in stack.targets(tg))
    assert victim not in stack.targets(tg)
    causes = [a["Cause"] for a in stack.activities() if victim in a["Description"]]
    assert any("EC2 health check indicating it has been terminated" in c for c in causes)


def test_set_instance_health_unhealthy_is_replaced_at_once(sbx: RunningSandbox) -> None:
    """AWS (HCK #minimize-downtime): an instance set Unhealthy with SetInstanceHealth
    (ShouldRespectGracePeriod=False) is replaced immediately: terminate first, then a
    launch; the activity cause says a user health-check took it out of service."""
    stack = Stack(sbx, azs=2)
    stack.group(desired=2, HealthCheckGracePeriod=600)
    victim = stack.wait_in_service(2)[0]["InstanceId"]
    stack.asg.set_instance_health(
        InstanceId=victim, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False
    )
    states = {i["InstanceId"]: i["LifecycleState"] for i in stack.instances()}
    assert states[victim] in ("Terminating", "Terminated")
    assert len([s for s in states.values() if s in ("Pending", "InService")]) == 2
    activities = stack.activities()
    [terminate] = [
        a for a in activities if a["Description"] == f"Terminating EC2 instance: {victim}"
    ]
    assert "in response to a user health-check" in terminate["Cause"]
    assert activities[0]["Description"].startswith("Launching a new EC2 instance: ")
    wait_for("victim gone", lambda: victim not in {i["InstanceId"] for i in stack.instances()})
    stack.wait_in_service(2)
    [terminate] = [a for a in stack.activities() if a["ActivityId"] == terminate["ActivityId"]]
    assert terminate["StatusCode"] == "Successful"
    assert terminate["EndTime"] >= terminate["StartTime"]


def test_scale_in_deregisters_first_and_follows_termination_policy(sbx: RunningSandbox) -> None:
    """AWS (TP, LC #as-lifecycle-scale-in): scale-in keeps AZs balanced first, then
    applies the termination policy (OldestInstance); the chosen instance is
    deregistered from the target group and terminated only after the
    deregistration delay (draining)."""
    stack = Stack(sbx, azs=2)
    tg = stack.target_group(delay_s=40)  # 2 s wall at 20x
    stack.group(desired=2, max_size=4, TargetGroupARNs=[tg], TerminationPolicies=["OldestInstance"])
    stack.wait_in_service(2)
    time.sleep(0.2)  # the two first are older than the next two
    stack.asg.set_desired_capacity(AutoScalingGroupName="web-asg", DesiredCapacity=4)
    stack.wait_in_service(4)
    by_launch = sorted(
        (i for r in stack.ec2.describe_instances()["Reservations"] for i in r["Instances"]),
        key=lambda i: i["LaunchTime"],
    )
    oldest = {i["InstanceId"] for i in by_launch[:2]}
    stack.asg.set_desired_capacity(AutoScalingGroupName="web-asg", DesiredCapacity=2)
    terminating = {
        i["InstanceId"]: i["AvailabilityZone"]
        for i in stack.instances()
        if i["LifecycleState"] == "Terminating"
    }
    assert set(terminating) == oldest
    assert sorted(terminating.values()) == sorted(stack.subnets)  # one per AZ
    assert not (set(terminating) & stack.targets(tg))
    states = stack.ec2.describe_instances(InstanceIds=list(terminating))["Reservations"]
    assert {i["State"]["Name"] for r in states for i in r["Instances"]} == {"running"}
    wait_for(
        "drained and terminated",
        lambda: {i["InstanceId"] for i in stack.instances()}.isdisjoint(terminating),
    )
    states = stack.ec2.describe_instances(InstanceIds=list(terminating))["Reservations"]
    assert {i["State"]["Name"] for r in states for i in r["Instances"]} == {"terminated"}
    cause = next(a["Cause"] for a in stack.activities() if a["Description"].startswith("Term"))
    assert "a user request explicitly set group desired capacity changing the desired " in cause
    assert "shrinking the capacity from 4 to 2" in cause


def test_terminate_instance_in_group_with_and_without_decrement(sbx: RunningSandbox) -> None:
    """AWS (TerminateInstanceInAutoScalingGroup): ShouldDecrementDesiredCapacity=False
    replaces the instance; True lowers desired by one, refused below MinSize."""
    stack = Stack(sbx, azs=2)
    stack.group(desired=2, min_size=1)
    a, b = (i["InstanceId"] for i in stack.wait_in_service(2))
    activity = stack.asg.terminate_instance_in_auto_scaling_group(
        InstanceId=a, ShouldDecrementDesiredCapacity=False
    )["Activity"]
    assert activity["Description"] == f"Terminating EC2 instance: {a}"
    assert activity["Cause"].endswith(
        f"instance {a} was taken out of service in response to a user request."
    )
    stack.wait_in_service(2)
    stack.asg.terminate_instance_in_auto_scaling_group(
        InstanceId=b, ShouldDecrementDesiredCapacity=True
    )
    stack.wait_in_service(1)
    group = stack.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])
    assert group["AutoScalingGroups"][0]["DesiredCapacity"] == 1
    last = stack.in_service()[0]["InstanceId"]
    with pytest.raises(ClientError) as refused:
        stack.asg.terminate_instance_in_auto_scaling_group(
            InstanceId=last, ShouldDecrementDesiredCapacity=True
        )
    assert "min size constraint" in refused.value.response["Error"]["Message"]


def test_zone_added_back_rebalances_launching_before_terminating(sbx: RunningSandbox) -> None:
    """AWS (BEN, AZ rebalancing): changing the group's zones makes it rebalance; it
    "launches new instances before terminating the earlier ones", and the launch's cause
    says it was "launched to aid in balancing the group's zones"."""
    stack = Stack(sbx)
    a, b, c = stack.subnets.values()
    stack.asg.create_auto_scaling_group(
        AutoScalingGroupName="web-asg",
        LaunchTemplate={"LaunchTemplateName": "web"},
        MinSize=1,
        MaxSize=6,
        DesiredCapacity=3,
        VPCZoneIdentifier=f"{a},{b}",
    )
    before = {i["InstanceId"] for i in stack.wait_in_service(3)}
    stack.asg.update_auto_scaling_group(
        AutoScalingGroupName="web-asg", VPCZoneIdentifier=f"{a},{b},{c}"
    )
    zone_c = f"{REGION}c"
    new = wait_for(
        "a launch into the added zone",
        lambda: [i for i in stack.instances() if i["AvailabilityZone"] == zone_c],
    )
    # launched first: the three earlier instances are all still in service
    assert {i["InstanceId"] for i in stack.in_service()} >= before
    assert len(new) == 1
    live = stack.wait_in_service(3)
    assert Counter(i["AvailabilityZone"] for i in live) == Counter(list(stack.subnets))
    causes = [x["Cause"] for x in stack.activities()]
    assert any(
        "An instance was launched to aid in balancing the group's zones." in c for c in causes
    )


def test_notifications_published_for_launch_and_termination(sbx: RunningSandbox) -> None:
    """AWS (SNS notifications §2.5): a TEST_NOTIFICATION when the configuration is put,
    then autoscaling:EC2_INSTANCE_LAUNCH / _TERMINATE messages with the activity
    fields, subject 'Auto Scaling: launch for group "<name>"'."""
    stack = Stack(sbx, azs=1)
    sns, sqs = sbx.client("sns"), sbx.client("sqs")
    topic = sns.create_topic(Name="asg-events")["TopicArn"]
    queue = sqs.create_queue(QueueName="asg-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    stack.group(desired=0, min_size=0)
    stack.asg.put_notification_configuration(
        AutoScalingGroupName="web-asg",
        TopicARN=topic,
        NotificationTypes=["autoscaling:EC2_INSTANCE_LAUNCH", "autoscaling:EC2_INSTANCE_TERMINATE"],
    )
    stack.asg.set_desired_capacity(AutoScalingGroupName="web-asg", DesiredCapacity=1)
    [inst] = stack.wait_in_service(1)
    stack.asg.set_desired_capacity(AutoScalingGroupName="web-asg", DesiredCapacity=0)
    received: list[dict[str, Any]] = []

    def three_messages() -> bool:
        for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            received.append(json.loads(m["Body"]))
        return len(received) >= 3

    wait_for("3 notifications", three_messages)
    events = {json.loads(r["Message"])["Event"]: r for r in received}
    assert set(events) == {
        "autoscaling:TEST_NOTIFICATION",
        "autoscaling:EC2_INSTANCE_LAUNCH",
        "autoscaling:EC2_INSTANCE_TERMINATE",
    }
    launch = events["autoscaling:EC2_INSTANCE_LAUNCH"]
    assert launch["Subject"] == 'Auto Scaling: launch for group "web-asg"'
    body = json.loads(launch["Message"])
    assert body["EC2InstanceId"] == inst["InstanceId"]
    assert body["Service"] == "AWS Auto Scaling"
    assert body["Details"]["Availability Zone"] == inst["AvailabilityZone"]
    assert body["Description"] == f"Launching a new EC2 instance: {inst['InstanceId']}"


def test_put_scaling_policy_returns_arn_and_simple_policy_honours_cooldown(
    sbx: RunningSandbox,
) -> None:
    """AWS (PSP, SS, CD): PutScalingPolicy answers the PolicyARN; ExecutePolicy on a
    simple policy changes capacity; with HonorCooldown a second execution waits for
    the activity and the cooldown."""
    stack = Stack(sbx, azs=2)
    stack.group(desired=1, max_size=5)
    arn = stack.asg.put_scaling_policy(
        AutoScalingGroupName="web-asg",
        PolicyName="up",
        AdjustmentType="ChangeInCapacity",
        ScalingAdjustment=1,
        Cooldown=600,
    )["PolicyARN"]
    assert arn.startswith("arn:aws:autoscaling:")
    assert arn.endswith(":autoScalingGroupName/web-asg:policyName/up")
    stack.asg.execute_policy(AutoScalingGroupName="web-asg", PolicyName="up", HonorCooldown=True)
    stack.wait_in_service(2)
    stack.asg.execute_policy(AutoScalingGroupName="web-asg", PolicyName=arn, HonorCooldown=True)
    time.sleep(0.5)  # 10 AWS seconds: well inside the 600 s cooldown
    group = stack.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])
    assert group["AutoScalingGroups"][0]["DesiredCapacity"] == 2
    stack.asg.execute_policy(AutoScalingGroupName="web-asg", PolicyName="up", HonorCooldown=False)
    group = stack.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])
    assert group["AutoScalingGroups"][0]["DesiredCapacity"] == 3
    cause = stack.activities()[0]["Cause"]
    assert "a user request executed policy up changing the desired capacity from 2 to 3" in cause


def test_step_policy_picks_step_relative_to_breach_threshold(sbx: RunningSandbox) -> None:
    """AWS (StepAdjustment): step bounds are offsets from the breach threshold (lower
    bound inclusive above it); capacity stays within MaxSize."""
    stack = Stack(sbx, azs=2)
    stack.group(desired=1, max_size=4)
    stack.asg.put_scaling_policy(
        AutoScalingGroupName="web-asg",
        PolicyName="steps",
        PolicyType="StepScaling",
        AdjustmentType="ChangeInCapacity",
        StepAdjustments=[
            {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 20, "ScalingAdjustment": 1},
            {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 5},
        ],
    )
    stack.asg.execute_policy(
        AutoScalingGroupName="web-asg", PolicyName="steps", MetricValue=70.0, BreachThreshold=50.0
    )
    group = stack.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])
    assert group["AutoScalingGroups"][0]["DesiredCapacity"] == 4  # 1 + 5, bounded by max 4
    with pytest.raises(ClientError) as no_step:
        stack.asg.execute_policy(
            AutoScalingGroupName="web-asg",
            PolicyName="steps",
            MetricValue=40.0,
            BreachThreshold=50.0,
        )
    assert no_step.value.response["Error"]["Code"] == "ValidationError"


def test_target_tracking_policy_creates_and_deletes_its_two_alarms(sbx: RunningSandbox) -> None:
    """AWS (TT): a target tracking policy creates TargetTracking-<asg>-AlarmHigh-<id>
    (3 x 60 s above the target) and -AlarmLow-<id> (15 x 60 s below it) with the
    policy as action, and deletes them with the policy."""
    stack = Stack(sbx, azs=1)
    stack.group(desired=1)
    cw = sbx.client("cloudwatch")
    answer = stack.asg.put_scaling_policy(
        AutoScalingGroupName="web-asg",
        PolicyName="cpu50",
        PolicyType="TargetTrackingScaling",
        TargetTrackingConfiguration={
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
            "TargetValue": 50.0,
        },
    )
    assert len(answer["Alarms"]) == 2
    alarms = {
        a["AlarmName"]: a
        for a in cw.describe_alarms(AlarmNamePrefix="TargetTracking-web-asg-")["MetricAlarms"]
    }
    [high] = [a for n, a in alarms.items() if "-AlarmHigh-" in n]
    [low] = [a for n, a in alarms.items() if "-AlarmLow-" in n]
    assert (high["ComparisonOperator"], high["Threshold"], high["EvaluationPeriods"]) == (
        "GreaterThanThreshold", 50.0, 3,
    )  # fmt: skip
    assert (low["ComparisonOperator"], low["EvaluationPeriods"], low["Period"]) == (
        "LessThanThreshold", 15, 60,
    )  # fmt: skip
    assert low["Threshold"] < 50.0
    assert (high["Namespace"], high["MetricName"]) == ("AWS/EC2", "CPUUtilization")
    assert high["Dimensions"] == [{"Name": "AutoScalingGroupName", "Value": "web-asg"}]
    assert high["AlarmActions"] == [answer["PolicyARN"]]
    stack.asg.delete_policy(AutoScalingGroupName="web-asg", PolicyName="cpu50")
    assert not cw.describe_alarms(AlarmNamePrefix="TargetTracking-web-asg-")["MetricAlarms"]


def test_status_lists_groups_with_instances(sbx: RunningSandbox) -> None:
    """The sandbox's status shows each group's capacity and its instances' AZ,
    lifecycle state and health."""
    stack = Stack(sbx, azs=2)
    stack.group(desired=2)
    stack.wait_in_service(2)
    doc = sbx.status()["behaviours"]["autoscaling"]["groups"]["web-asg"]
    assert (doc["desired"], doc["min"], doc["max"]) == (2, 1, 6)
    assert {i["lifecycle"] for i in doc["instances"]} == {"InService"}
    assert len({i["az"] for i in doc["instances"]}) == 2


def test_elb_unhealthy_instance_replaced_only_after_grace_period(sbx: RunningSandbox) -> None:
    """AWS (HCK, GP): with HealthCheckType ELB, an instance its target group reports
    unhealthy is marked Unhealthy on the next periodic check, but only once the
    health check grace period since InService is over; the termination's cause is
    'an ELB system health check failure'. (The instances run no web app, so the ALB
    health checks fail within ~10 AWS s; the grace period is 120 AWS s.)"""
    stack = Stack(sbx, azs=2)
    tg = stack.target_group(delay_s=5)
    stack.elbv2.modify_target_group(
        TargetGroupArn=tg, HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2
    )
    lb = stack.elbv2.create_load_balancer(Name="web-alb", Subnets=list(stack.subnets.values()))
    stack.elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancers"][0]["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )
    stack.group(desired=1, TargetGroupARNs=[tg], HealthCheckType="ELB", HealthCheckGracePeriod=120)
    [first] = stack.wait_in_service(1)
    wait_for(
        "the target reported unhealthy",
        lambda: any(
            d["TargetHealth"]["State"] == "unhealthy"
            for d in stack.elbv2.describe_target_health(TargetGroupArn=tg)[
                "TargetHealthDescriptions"
            ]
        ),
    )
    launch = next(a for a in stack.activities() if first["InstanceId"] in a["Description"])
    terminate = wait_for(
        "the ELB-unhealthy instance taken out of service",
        lambda: next(
            (
                a
                for a in stack.activities()
                if a["Description"] == f"Terminating EC2 instance: {first['InstanceId']}"
            ),
            None,
        ),
    )
    assert "in response to an ELB system health check failure." in terminate["Cause"]
    in_service_for = (terminate["StartTime"] - launch["EndTime"]).total_seconds()
    assert in_service_for >= 120
