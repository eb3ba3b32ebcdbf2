"""CloudWatch alarms: the evaluation rules (pure), the evaluator and its actions
(in-process with moto's backend and a fake clock), and alarms end to end on a
sandbox running 30x faster than AWS (a 60 s period is 2 s of wall time)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REGION, RunningSandbox, run_cli, start_sandbox
from moto.cloudwatch.models import cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from selfheal_sandbox import alarm_evaluation as rules
from selfheal_sandbox.adapter import MotoAdapter
from selfheal_sandbox.adapter.cloudwatch import AlarmView, MetricSample
from selfheal_sandbox.cloudwatch import CloudWatchAlarms

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
POLICY_ARN = (
    "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:c322761b-3172-4d56-9a21-"
    "0ed9d6161d67:autoScalingGroupName/web-asg:policyName/scale-out"
)


def _alarm(**overrides: Any) -> AlarmView:
    base = AlarmView(
        name="cpu-high",
        arn="arn:aws:cloudwatch:us-east-1:123456789012:alarm:cpu-high",
        description=None,
        namespace="AWS/EC2",
        metric_name="CPUUtilization",
        dimensions=(("AutoScalingGroupName", "web-asg"),),
        statistic="Average",
        extended_statistic=None,
        period=60,
        evaluation_periods=3,
        datapoints_to_alarm=None,
        threshold=70.0,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="missing",
        unit=None,
        actions_enabled=True,
        alarm_actions=(),
        ok_actions=(),
        insufficient_data_actions=(),
        state_value="OK",
        state_reason="",
        state_reason_data="{}",
        configuration_updated=T0,
        single_metric=True,
    )
    return replace(base, **overrides)


def _range(pattern: str) -> list[rules.Slot]:
    """AWS docs notation, oldest first: 0 not breaching, X breaching, - missing."""
    values = {"0": 10.0, "X": 90.0}
    return [
        None if c == "-" else rules.Datapoint(T0 + timedelta(minutes=i), values[c], 1.0)
        for i, c in enumerate(pattern.replace(" ", ""))
    ]


# ------------------------------------------------------------------ the rules (pure)

# The AWS User Guide's table for EvaluationPeriods = DatapointsToAlarm = 3 (evaluation
# range 5), one column per TreatMissingData setting; None = the state is kept.
MISSING_DATA_TABLE = [
    ("0 - X - X", {"missing": "OK", "ignore": "OK", "breaching": "OK", "notBreaching": "OK"}),
    ("0 - - - -", {"missing": "OK", "ignore": "OK", "breaching": "OK", "notBreaching": "OK"}),
    (
        "- - - - -",
        {
            "missing": "INSUFFICIENT_DATA",
            "ignore": None,
            "breaching": "ALARM",
            "notBreaching": "OK",
        },
    ),
    (
        "0 X X - X",
        {"missing": "ALARM", "ignore": "ALARM", "breaching": "ALARM", "notBreaching": "ALARM"},
    ),
    (
        "- - X - -",
        {"missing": "ALARM", "ignore": None, "breaching": "ALARM", "notBreaching": "OK"},
    ),
]


@pytest.mark.parametrize(("pattern", "expected"), MISSING_DATA_TABLE)
@pytest.mark.parametrize("treat", ["missing", "ignore", "breaching", "notBreaching"])
def test_treat_missing_data_follows_the_aws_table(
    pattern: str, expected: dict[str, str | None], treat: str
) -> None:
    """AWS "Configuring how CloudWatch alarms treat missing data": with fewer real
    points than EvaluationPeriods the missing ones are filled per TreatMissingData
    (as few as possible); with enough real points the setting is not used."""
    outcome = rules.evaluate(_alarm(treat_missing_data=treat), _range(pattern), T0)
    assert outcome.state == expected[treat]


def test_m_out_of_n_needs_m_breaching_points_not_necessarily_consecutive() -> None:
    """AWS: DatapointsToAlarm M of EvaluationPeriods N; breaching points "don't have
    to be consecutive, but they must all be within the last N data points"."""
    two_of_three = _alarm(evaluation_periods=3, datapoints_to_alarm=2)
    assert rules.evaluate(two_of_three, _range("0 0 X 0 X"), T0).state == "ALARM"
    assert rules.evaluate(two_of_three, _range("0 X 0 0 X"), T0).state == "OK"
    assert rules.evaluate(_alarm(), _range("0 0 X 0 X"), T0).state == "OK"


def test_too_recent_breaching_points_do_not_alarm_prematurely() -> None:
    """AWS "avoiding premature transitions": - - - - X with M=3 does not go to ALARM
    (and gives no reason for OK either: the state is kept)."""
    assert rules.evaluate(_alarm(), _range("- - - - X"), T0).state is None
    assert rules.evaluate(_alarm(), _range("- - - X -"), T0).state is None


@pytest.mark.parametrize(
    ("operator", "value", "breaches"),
    [
        ("GreaterThanThreshold", 70.0, False),
        ("GreaterThanOrEqualToThreshold", 70.0, True),
        ("LessThanThreshold", 69.9, True),
        ("LessThanOrEqualToThreshold", 70.0, True),
        ("LessThanThreshold", 70.0, False),
    ],
)
def test_statistic_is_the_first_operand_of_the_comparison(
    operator: str, value: float, breaches: bool
) -> None:
    """AWS PutMetricAlarm: "The specified statistic value is used as the first operand"."""
    assert rules.breaches(_alarm(comparison_operator=operator), value) is breaches


def test_statistics_aggregate_the_period_samples() -> None:
    """AWS statistics over a period: Average, Sum, Minimum, Maximum, SampleCount
    (a StatisticValues datum counts with its own SampleCount)."""
    samples = [
        MetricSample(T0, 10.0, 1.0, 10.0, 10.0),
        MetricSample(T0, 90.0, 3.0, 20.0, 40.0),
    ]
    assert rules.statistic(samples, "Average") == 25.0
    assert rules.statistic(samples, "Sum") == 100.0
    assert rules.statistic(samples, "Minimum") == 10.0
    assert rules.statistic(samples, "Maximum") == 40.0
    assert rules.statistic(samples, "SampleCount") == 4.0


def test_state_reason_reads_like_aws() -> None:
    """AWS NewStateReason: "Threshold Crossed: 2 out of the last 2 datapoints
    [v (dd/MM/yy HH:mm:ss), ...] were greater than the threshold (t) (minimum 2
    datapoints for OK -> ALARM transition)."; newest datapoint first."""
    alarm = _alarm(evaluation_periods=2)
    outcome = rules.evaluate(alarm, _range("0 0 X X"), T0)
    assert outcome.reason == (
        "Threshold Crossed: 2 out of the last 2 datapoints [90.0 (25/11/26 10:03:00), "
        "90.0 (25/11/26 10:02:00)] were greater than the threshold (70.0) "
        "(minimum 2 datapoints for OK -> ALARM transition)."
    )
    ok = rules.evaluate(alarm, _range("X X X 0"), T0)
    assert ok.state == "OK"
    assert "was not greater than the threshold (70.0)" in ok.reason
    assert "(minimum 1 datapoint for ALARM -> OK transition)" in ok.reason
    assert [d["value"] for d in outcome.reason_data["evaluatedDatapoints"]] == [90.0, 90.0]


# ------------------------------------------- the evaluator in-process (fake clock, seams)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now_at = start

    def utcnow(self) -> datetime:
        return self.now_at

    def to_wall(self, aws_seconds: float) -> float:
        return aws_seconds


@dataclass
class FakeSandbox:
    """What CloudWatchAlarms uses of the server's Sandbox."""

    adapter: MotoAdapter
    clock: FakeClock
    lock: threading.RLock = field(default_factory=threading.RLock)
    behaviours: list[Any] = field(default_factory=list)

    def behaviour(self, name: str) -> Any:
        return next(b for b in self.behaviours if b.name == name)


@pytest.fixture
def local() -> Iterator[tuple[FakeSandbox, Any]]:
    """moto's CloudWatch backend in this process, reset, plus a fake sandbox."""
    cloudwatch_backends.reset()
    sandbox = FakeSandbox(MotoAdapter(REGION), FakeClock(T0 + timedelta(seconds=5)))
    yield sandbox, cloudwatch_backends[DEFAULT_ACCOUNT_ID][REGION]
    cloudwatch_backends.reset()


def _put_alarm(backend: Any, **overrides: Any) -> None:
    params: dict[str, Any] = {
        "name": "cpu-high",
        "namespace": "AWS/EC2",
        "metric_name": "CPUUtilization",
        "comparison_operator": "GreaterThanThreshold",
        "evaluation_periods": 2,
        "period": 60,
        "threshold": 70.0,
        "statistic": "Average",
        "description": "scale out",
        "dimensions": [{"Name": "AutoScalingGroupName", "Value": "web-asg"}],
        "alarm_actions": [POLICY_ARN],
    }
    backend.put_metric_alarm(**{**params, **overrides})


def _cpu_source(values: list[float]) -> Any:
    def collect() -> list[tuple[str, list[dict[str, Any]]]]:
        value = values[0] if len(values) == 1 else values.pop(0)
        datum = {
            "MetricName": "CPUUtilization",
            "Dimensions": [{"Name": "InstanceId", "Value": "i-1"}],
            "Value": value,
            "Unit": "Percent",
        }
        return [("AWS/EC2", [datum])]

    return collect


def _run_minutes(
    alarms: CloudWatchAlarms, sandbox: FakeSandbox, minutes: int
) -> Iterator[datetime]:
    """Tick every 10 AWS s for `minutes` minutes, yielding at each minute boundary."""
    for _ in range(minutes * 6):
        sandbox.clock.now_at += timedelta(seconds=10)
        alarms.tick(sandbox.clock.now_at)
        alarms.run_queued_actions()
        if sandbox.clock.now_at.second < 10:
            yield sandbox.clock.now_at


def test_instance_cpu_is_put_every_minute_also_per_auto_scaling_group(
    local: tuple[FakeSandbox, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS/EC2 CPUUtilization is published per instance (InstanceId) and, for group
    members, with the dimension AutoScalingGroupName; a datapoint is labelled with
    the start of the minute it covers."""
    sandbox, backend = local
    _fake_instance(monkeypatch, sandbox, detailed=True)
    alarms = CloudWatchAlarms(sandbox, metric_sources=[_cpu_source([42.0])])  # type: ignore[arg-type]
    for _ in _run_minutes(alarms, sandbox, 2):
        pass
    stored = {
        (md.timestamp.replace(tzinfo=UTC), tuple((d.name, d.value) for d in md.dimensions))
        for md in backend.metric_data
    }
    assert (T0 + timedelta(minutes=1), (("InstanceId", "i-1"),)) in stored
    assert (T0 + timedelta(minutes=1), (("AutoScalingGroupName", "web-asg"),)) in stored
    assert all(md.unit == "Percent" and md.value == 42.0 for md in backend.metric_data)


def _fake_instance(
    monkeypatch: pytest.MonkeyPatch, sandbox: FakeSandbox, *, detailed: bool
) -> None:
    """Instance i-1, member of web-asg, with detailed or basic monitoring."""
    adapter = sandbox.adapter
    monkeypatch.setattr(adapter, "autoscaling_group_of_instances", lambda: {"i-1": "web-asg"})
    monkeypatch.setattr(adapter, "detailed_monitoring", lambda ids: dict.fromkeys(ids, detailed))


def test_basic_monitoring_instance_gets_one_datapoint_per_five_minutes(
    local: tuple[FakeSandbox, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS EC2 User Guide: basic monitoring (the default) publishes instance metrics
    in 5-minute periods, detailed monitoring in 1-minute periods."""
    sandbox, backend = local
    _fake_instance(monkeypatch, sandbox, detailed=False)
    alarms = CloudWatchAlarms(
        sandbox,  # type: ignore[arg-type]
        metric_sources=[_cpu_source([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])],
    )
    counts = [len(backend.metric_data) for _ in _run_minutes(alarms, sandbox, 5)]
    assert counts == [0, 0, 0, 0, 2]  # at 10:05: the instance and its group
    assert {md.timestamp.replace(tzinfo=UTC) for md in backend.metric_data} == {T0}
    assert {md.value for md in backend.metric_data} == {30.0}  # minutes 10:00-10:04


def test_missing_metric_sources_put_nothing_and_alarms_go_insufficient_data(
    local: tuple[FakeSandbox, Any],
) -> None:
    """No ec2/elb behaviour: no metrics; an alarm without data goes INSUFFICIENT_DATA
    (TreatMissingData missing) and never ALARM."""
    sandbox, backend = local
    alarms = CloudWatchAlarms(sandbox)  # type: ignore[arg-type]
    _put_alarm(backend)
    for _ in _run_minutes(alarms, sandbox, 3):
        pass
    assert backend.metric_data == []
    assert backend.alarms["cpu-high"].state_value == "INSUFFICIENT_DATA"


def test_scaling_policy_action_runs_on_alarm_and_again_every_minute_in_alarm(
    local: tuple[FakeSandbox, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS: actions run on the transition to ALARM; "For Auto Scaling actions, the
    alarm continues to invoke the action once per minute that the alarm remains in
    the new state". The policy gets the metric value and the alarm threshold."""
    sandbox, backend = local
    _fake_instance(monkeypatch, sandbox, detailed=True)
    calls: list[tuple[str, dict[str, Any]]] = []
    alarms = CloudWatchAlarms(
        sandbox,  # type: ignore[arg-type]
        metric_sources=[_cpu_source([90.0])],
        policy_executor=lambda arn, **kw: calls.append((arn, kw)),
    )
    _put_alarm(backend)
    states = [(t, backend.alarms["cpu-high"].state_value) for t in _run_minutes(alarms, sandbox, 5)]
    # Periods 10:00 and 10:01 are complete at 10:02: ALARM then, not at 10:01.
    assert [s for _, s in states] == ["INSUFFICIENT_DATA", "ALARM", "ALARM", "ALARM", "ALARM"]
    assert len(calls) == 4  # 10:02 (transition), then once a minute: 10:03, 10:04, 10:05
    arn, kwargs = calls[0]
    assert arn == POLICY_ARN
    assert kwargs["metric_value"] == 90.0
    assert kwargs["breach_threshold"] == 70.0
    assert "a monitor alarm cpu-high in state ALARM triggered policy scale-out" in kwargs["cause"]
    history = [i["HistorySummary"] for i in sandbox.adapter.alarm_history()]
    assert f"Successfully executed action {POLICY_ARN}" in history


def test_failed_action_is_recorded_in_the_alarm_history(local: tuple[FakeSandbox, Any]) -> None:
    """AWS does not validate actions; a failure shows as an Action history item
    "Failed to execute action <arn>. Reason: ..."."""
    sandbox, backend = local
    alarms = CloudWatchAlarms(sandbox, metric_sources=[])  # type: ignore[arg-type]
    _put_alarm(backend, treat_missing_data="breaching")
    for _ in _run_minutes(alarms, sandbox, 1):
        pass
    assert backend.alarms["cpu-high"].state_value == "ALARM"
    actions = [i for i in sandbox.adapter.alarm_history() if i["HistoryItemType"] == "Action"]
    assert actions[0]["HistorySummary"].startswith(
        f"Failed to execute action {POLICY_ARN}. Reason:"
    )


def test_actions_disabled_alarm_changes_state_without_actions(
    local: tuple[FakeSandbox, Any],
) -> None:
    """AWS ActionsEnabled=false: the state still changes, no action runs."""
    sandbox, backend = local
    calls: list[str] = []
    alarms = CloudWatchAlarms(
        sandbox,  # type: ignore[arg-type]
        metric_sources=[],
        policy_executor=lambda arn, **kw: calls.append(arn),
    )
    _put_alarm(backend, treat_missing_data="breaching", actions_enabled=False)
    for _ in _run_minutes(alarms, sandbox, 2):
        pass
    assert backend.alarms["cpu-high"].state_value == "ALARM"
    assert calls == []


# ------------------------------------------------------------------ end to end (x30)

SCALE = 30.0


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    state_dir = tmp_path_factory.mktemp("cw-fast")
    running = start_sandbox(state_dir, "--time-scale", str(int(SCALE)))
    yield running
    result = run_cli("down", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr


@pytest.fixture
def fast_aws(fast: RunningSandbox) -> RunningSandbox:
    fast.reset()
    return fast


def _wait_state(cw: Any, name: str, state: str, timeout: float, feed: Any = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if feed:
            feed()
        alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        if alarm["StateValue"] == state:
            return alarm
        time.sleep(0.2)
    raise AssertionError(f"{name} not {state} within {timeout} s: {alarm['StateValue']}")


def test_alarm_goes_insufficient_data_then_alarm_after_n_breaching_periods_then_ok(
    fast_aws: RunningSandbox,
) -> None:
    """AWS PutMetricAlarm: a new alarm starts INSUFFICIENT_DATA; it goes to ALARM when
    EvaluationPeriods (3) consecutive complete periods breach - not sooner - and back
    to OK when the newest periods do not; each change is a StateUpdate history item."""
    cw = fast_aws.client("cloudwatch")
    cw.put_metric_alarm(
        AlarmName="load", Namespace="Test", MetricName="Load", Statistic="Average",
        Period=60, EvaluationPeriods=3, Threshold=50.0,
        ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
    assert cw.describe_alarms()["MetricAlarms"][0]["StateValue"] == "INSUFFICIENT_DATA"

    def high() -> None:
        cw.put_metric_data(Namespace="Test", MetricData=[{"MetricName": "Load", "Value": 80.0}])

    def low() -> None:
        cw.put_metric_data(Namespace="Test", MetricData=[{"MetricName": "Load", "Value": 5.0}])

    alarm = _wait_state(cw, "load", "ALARM", timeout=6 * 60 / SCALE + 5, feed=high)
    data = json.loads(alarm["StateReasonData"])
    points = data["evaluatedDatapoints"]
    assert [p["value"] for p in points] == [80.0, 80.0, 80.0]
    assert "3 out of the last 3 datapoints" in alarm["StateReason"]
    # Not sooner: ALARM only once the third breaching period was over.
    oldest = datetime.strptime(points[-1]["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
    changed = datetime.strptime(data["queryDate"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert changed - oldest >= timedelta(seconds=180)

    _wait_state(cw, "load", "OK", timeout=4 * 60 / SCALE + 5, feed=low)
    history = cw.describe_alarm_history(AlarmName="load", HistoryItemType="StateUpdate")
    summaries = [h["HistorySummary"] for h in history["AlarmHistoryItems"]]
    assert summaries == [
        "Alarm updated from ALARM to OK",
        "Alarm updated from INSUFFICIENT_DATA to ALARM",
    ]
    item = json.loads(history["AlarmHistoryItems"][1]["HistoryData"])
    assert item["oldState"]["stateValue"] == "INSUFFICIENT_DATA"
    assert item["newState"]["stateValue"] == "ALARM"


def test_each_treat_missing_data_mode_without_any_data(fast_aws: RunningSandbox) -> None:
    """AWS: with every point missing, missing -> INSUFFICIENT_DATA, ignore -> state
    kept, breaching -> ALARM, notBreaching -> OK."""
    cw = fast_aws.client("cloudwatch")
    for mode in ("missing", "ignore", "breaching", "notBreaching"):
        cw.put_metric_alarm(
            AlarmName=mode, Namespace="Test", MetricName="Nothing", Statistic="Sum",
            Period=60, EvaluationPeriods=1, Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData=mode,
        )  # fmt: skip
    _wait_state(cw, "breaching", "ALARM", timeout=2 * 60 / SCALE + 5)
    _wait_state(cw, "notBreaching", "OK", timeout=5)
    states = {a["AlarmName"]: a["StateValue"] for a in cw.describe_alarms()["MetricAlarms"]}
    assert states["missing"] == "INSUFFICIENT_DATA"
    assert states["ignore"] == "INSUFFICIENT_DATA"
    reason = cw.describe_alarms(AlarmNames=["breaching"])["MetricAlarms"][0]["StateReason"]
    assert "treated as [Breaching]" in reason


def test_putting_an_alarm_again_keeps_its_state(fast_aws: RunningSandbox) -> None:
    """AWS PutMetricAlarm: "When you update an existing alarm, its state is left
    unchanged, but the update completely overwrites the previous configuration"
    (moto resets it; an idempotent Ansible run must not)."""
    cw = fast_aws.client("cloudwatch")
    params = {
        "AlarmName": "sticky", "Namespace": "Test", "MetricName": "Nothing",
        "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "breaching",
    }  # fmt: skip
    cw.put_metric_alarm(**params)
    _wait_state(cw, "sticky", "ALARM", timeout=2 * 60 / SCALE + 5)
    cw.put_metric_alarm(**params)
    cw.put_metric_alarm(**{**params, "Threshold": 2.0})
    alarm = cw.describe_alarms(AlarmNames=["sticky"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM"
    assert alarm["Threshold"] == 2.0
    config = cw.describe_alarm_history(AlarmName="sticky", HistoryItemType="ConfigurationUpdate")
    assert [h["HistorySummary"] for h in config["AlarmHistoryItems"]] == [
        'Alarm "sticky" updated',
        'Alarm "sticky" created',
    ]


def test_set_alarm_state_runs_the_actions_and_evaluation_restores_the_state(
    fast_aws: RunningSandbox, tmp_path: Path
) -> None:
    """AWS SetAlarmState: the state changes, the new state's actions run (here an
    SNS topic with a confirmed email subscription: the AWS alarm notification
    lands in the mailbox), and the next evaluation puts the real state back."""
    cw, sns = fast_aws.client("cloudwatch"), fast_aws.client("sns")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sub = sns.subscribe(
        TopicArn=topic, Protocol="email-json", Endpoint="ops@example.com",
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]  # fmt: skip
    box = fast_aws.state_dir / "mailbox" / "ops@example.com"
    confirmation = _wait_mail(box, "SubscriptionConfirmation")
    sns.confirm_subscription(TopicArn=topic, Token=confirmation["token"])
    assert (
        sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]["PendingConfirmation"]
        == "false"
    )
    cw.put_metric_alarm(
        AlarmName="manual", Namespace="Test", MetricName="Nothing", Statistic="Sum",
        Period=60, EvaluationPeriods=1, Threshold=1.0, TreatMissingData="notBreaching",
        ComparisonOperator="GreaterThanThreshold", AlarmActions=[topic],
        AlarmDescription="paged by hand",
    )  # fmt: skip
    cw.set_alarm_state(AlarmName="manual", StateValue="ALARM", StateReason="testing the pager")

    mail = _wait_mail(box, "Notification")
    assert mail["subject"] == 'ALARM: "manual" in US East (N. Virginia)'
    message = json.loads(json.loads(mail["body"])["Message"])
    assert list(message)[:4] == ["AlarmName", "AlarmDescription", "AWSAccountId",
                                 "AlarmConfigurationUpdatedTimestamp"]  # fmt: skip
    assert message["AlarmName"] == "manual"
    assert message["AlarmDescription"] == "paged by hand"
    assert message["NewStateValue"] == "ALARM"
    assert message["OldStateValue"] == "INSUFFICIENT_DATA"
    assert message["NewStateReason"] == "testing the pager"
    assert message["Region"] == "US East (N. Virginia)"
    assert message["Trigger"]["Statistic"] == "SUM"
    assert message["Trigger"]["ComparisonOperator"] == "GreaterThanThreshold"
    _wait_state(cw, "manual", "OK", timeout=2 * 60 / SCALE + 5)


def _wait_mail(box: Path, kind: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(box.glob("*.json")) if box.is_dir() else []:
            mail = json.loads(path.read_text())
            if mail["type"] == kind:
                return mail
        time.sleep(0.1)
    raise AssertionError(f"no {kind} in {box} within {timeout} s")


def test_alarm_runs_a_real_scaling_policy_of_an_auto_scaling_group(
    fast_aws: RunningSandbox,
) -> None:
    """AWS: an alarm whose AlarmActions name a scaling policy executes it on the
    transition to ALARM (a simple +1 policy raises the desired capacity by one), and
    the scaling activity's cause names the alarm."""
    ec2, asg, cw = (fast_aws.client(s) for s in ("ec2", "autoscaling", "cloudwatch"))
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")
    template = ec2.create_launch_template(
        LaunchTemplateName="web", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    asg.create_auto_scaling_group(
        AutoScalingGroupName="web-asg", MinSize=1, MaxSize=3, DesiredCapacity=1,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        VPCZoneIdentifier=subnet["Subnet"]["SubnetId"],
    )  # fmt: skip
    asg.put_scaling_policy(
        AutoScalingGroupName="web-asg", PolicyName="scale-out", PolicyType="SimpleScaling",
        AdjustmentType="ChangeInCapacity", ScalingAdjustment=1,
    )  # fmt: skip
    policy_arn = asg.describe_policies(AutoScalingGroupName="web-asg")["ScalingPolicies"][0][
        "PolicyARN"
    ]
    cw.put_metric_alarm(
        AlarmName="web-busy", Namespace="Test", MetricName="Busy", Statistic="Maximum",
        Period=60, EvaluationPeriods=1, Threshold=0.5, TreatMissingData="breaching",
        ComparisonOperator="GreaterThanThreshold", AlarmActions=[policy_arn],
    )  # fmt: skip
    _wait_state(cw, "web-busy", "ALARM", timeout=2 * 60 / SCALE + 5)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])
        if group["AutoScalingGroups"][0]["DesiredCapacity"] >= 2:
            break
        time.sleep(0.2)
    assert group["AutoScalingGroups"][0]["DesiredCapacity"] >= 2
    causes = [
        a["Cause"]
        for a in asg.describe_scaling_activities(AutoScalingGroupName="web-asg")["Activities"]
    ]
    assert any(
        "a monitor alarm web-busy in state ALARM triggered policy scale-out" in c for c in causes
    )
