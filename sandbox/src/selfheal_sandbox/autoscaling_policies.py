"""Scaling-policy arithmetic as AWS documents it (aws-semantics.md §3): step
selection relative to the breach threshold, percent rounding, min/max clamp,
target-tracking capacity and its two CloudWatch alarms. Pure functions: the
Auto Scaling behaviour applies their answers to moto's state.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from .adapter.autoscaling import Refusal

# Predefined target-tracking metrics -> (namespace, metric, statistic).
PREDEFINED_METRICS = {
    "ASGAverageCPUUtilization": ("AWS/EC2", "CPUUtilization", "Average"),
    "ASGAverageNetworkIn": ("AWS/EC2", "NetworkIn", "Average"),
    "ASGAverageNetworkOut": ("AWS/EC2", "NetworkOut", "Average"),
    "ALBRequestCountPerTarget": ("AWS/ApplicationELB", "RequestCountPerTarget", "Sum"),
}
# Observed on AWS (aws-semantics §3, §9): AlarmHigh 3 of 3 x 60 s at the target;
# AlarmLow 15 of 15 x 60 s below it (the 0.9 factor is user-observed, not stated).
HIGH_PERIODS, LOW_PERIODS, PERIOD_S, LOW_FACTOR = 3, 15, 60, 0.9


def _bound(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def find_step(steps: tuple[dict[str, Any], ...], metric: float, threshold: float) -> int | None:
    """The ScalingAdjustment of the step containing metric - threshold.

    AWS (StepAdjustment): bounds are relative to the breach threshold; above it
    the lower bound is inclusive and the upper exclusive, below it the reverse.
    """
    diff = metric - threshold
    for step in steps:
        lower = _bound(step.get("MetricIntervalLowerBound"))
        upper = _bound(step.get("MetricIntervalUpperBound"))
        lo = -math.inf if lower is None else lower
        hi = math.inf if upper is None else upper
        inside = (lo <= diff < hi) if diff >= 0 else (lo < diff <= hi)
        if inside:
            return int(step["ScalingAdjustment"])
    return None


def percent_change(capacity: int, percent: int, min_magnitude: int | None) -> int:
    """AWS rounding: >1 rounds down, (0,1) -> 1, (-1,0) -> -1, < -1 rounds toward 0;
    MinAdjustmentMagnitude is the least number of instances to change by."""
    raw = capacity * percent / 100.0
    if 0 < raw < 1:
        change = 1
    elif -1 < raw < 0:
        change = -1
    else:
        change = math.trunc(raw)
    if min_magnitude and change != 0 and abs(change) < min_magnitude:
        change = int(math.copysign(min_magnitude, change))
    return change


def new_capacity(
    adjustment_type: str | None,
    adjustment: int,
    capacity: int,
    min_magnitude: int | None = None,
) -> int:
    if adjustment_type == "ExactCapacity":
        return adjustment
    if adjustment_type == "PercentChangeInCapacity":
        return capacity + percent_change(capacity, adjustment, min_magnitude)
    return capacity + adjustment  # ChangeInCapacity


def clamp(value: int, min_size: int, max_size: int) -> int:
    """AWS: a policy never takes the group outside [min, max]."""
    return max(min_size, min(max_size, value))


def target_tracking_capacity(current: int, metric: float, target: float) -> int:
    """Rounds in the safe direction (AWS TT considerations): need +1.5 -> add 2,
    could remove 1.5 -> remove 1. Both are ceil(current * metric / target)."""
    if target <= 0:
        return current
    return math.ceil(current * metric / target - 1e-9)


@dataclass(frozen=True)
class AlarmSpec:
    name: str
    comparison: str
    threshold: float
    periods: int


def target_tracking_alarms(group_name: str, config: dict[str, Any]) -> list[AlarmSpec]:
    target = float(config["TargetValue"])
    suffix = uuid.uuid4()
    specs = [
        AlarmSpec(
            f"TargetTracking-{group_name}-AlarmHigh-{suffix}",
            "GreaterThanThreshold",
            target,
            HIGH_PERIODS,
        )
    ]
    if str(config.get("DisableScaleIn", "false")).lower() != "true":
        specs.append(
            AlarmSpec(
                f"TargetTracking-{group_name}-AlarmLow-{uuid.uuid4()}",
                "LessThanThreshold",
                round(target * LOW_FACTOR, 6),
                LOW_PERIODS,
            )
        )
    return specs


def alarm_metric(group_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Namespace, metric name, statistic and dimensions the TT alarms watch."""
    predefined = config.get("PredefinedMetricSpecification")
    if predefined:
        kind = predefined["PredefinedMetricType"]
        namespace, metric, statistic = PREDEFINED_METRICS[kind]
        if kind == "ALBRequestCountPerTarget":
            label = predefined.get("ResourceLabel", "")
            tg = label[label.find("targetgroup/") :] if "targetgroup/" in label else label
            dimensions = [{"Name": "TargetGroup", "Value": tg}]
        else:
            dimensions = [{"Name": "AutoScalingGroupName", "Value": group_name}]
        return {
            "namespace": namespace,
            "metric_name": metric,
            "statistic": statistic,
            "dimensions": dimensions,
        }
    custom = config.get("CustomizedMetricSpecification") or {}
    return {
        "namespace": custom.get("Namespace"),
        "metric_name": custom.get("MetricName"),
        "statistic": custom.get("Statistic", "Average"),
        "dimensions": [
            {"Name": d["Name"], "Value": d["Value"]} for d in custom.get("Dimensions", [])
        ],
    }


# ---------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class Execution:
    """One execution of a policy: what it was given and the group's moment."""

    group: Any  # the behaviour's GroupState (cooldown)
    old: int
    warming: int
    now: float
    metric_value: float | None
    breach_threshold: float | None
    honor_cooldown: bool
    from_api: bool


class PolicyEngine:
    """Executes scaling policies against the groups of the Auto Scaling behaviour
    and keeps what AWS keeps between executions: cooldowns, warm-up, TT alarms."""

    def __init__(self, behaviour: Any) -> None:
        self.behaviour = behaviour
        self.adapter = behaviour.adapter
        self.clock = behaviour.clock
        # policy name -> names of the alarms target tracking created for it
        self.alarms: dict[str, list[str]] = {}

    # -- target tracking alarms (AWS creates, manages and deletes them)

    def policy_put(self, policy_name: str, group_name: str) -> list[dict[str, str]]:
        policy = next(
            (p for p in self.adapter.asg_policies(group_name) if p.name == policy_name), None
        )
        if policy is None or policy.policy_type != "TargetTrackingScaling":
            return []
        config = policy.target_tracking or {}
        if "TargetValue" not in config:
            raise Refusal("TargetTrackingConfiguration.TargetValue is required")
        metric = alarm_metric(group_name, config)
        made = []
        for spec in target_tracking_alarms(group_name, config):
            arn = self.adapter.asg_put_alarm(
                name=spec.name,
                namespace=metric["namespace"],
                metric_name=metric["metric_name"],
                comparison_operator=spec.comparison,
                evaluation_periods=spec.periods,
                datapoints_to_alarm=spec.periods,
                period=PERIOD_S,
                threshold=spec.threshold,
                statistic=metric["statistic"],
                description=(
                    f"DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {policy.arn}."
                ),
                dimensions=metric["dimensions"],
                alarm_actions=[policy.arn],
            )
            made.append({"AlarmName": spec.name, "AlarmARN": arn})
        self.alarms[policy_name] = [a["AlarmName"] for a in made]
        self.adapter.asg_set_policy_alarms(policy_name, made)
        return made

    def policy_deleting(self, policy_name: str) -> None:
        names = self.alarms.pop(policy_name, [])
        if names:
            self.adapter.asg_delete_alarms(names)

    def group_deleted(self, group_name: str) -> None:
        for policy in self.adapter.asg_policies(group_name):
            self.policy_deleting(policy.name)

    # -- cooldown bookkeeping, once per reconcile tick

    def tick(self, ref: Any, view: Any, now: float) -> None:
        state = self.behaviour._group_state(view)
        if state.simple_cooldown_pending is None:
            return
        # AWS CD: the cooldown starts when the last instance finishes launching or
        # terminating (after draining on scale-in).
        if any(i.lifecycle in ("Pending", "Terminating") for i in view.instances):
            return
        state.cooldown_until = now + state.simple_cooldown_pending
        state.simple_cooldown_pending = None

    # -- execution

    def _find(self, policy_ref: str, group_name: str | None) -> Any:
        name, group = policy_ref, group_name
        if policy_ref.startswith("arn:"):
            keys = ("policyName/", "autoScalingGroupName/")
            parts = dict(p.split("/", 1) for p in policy_ref.split(":") if p.startswith(keys))
            name, group = parts.get("policyName", ""), parts.get("autoScalingGroupName")
        for policy in self.adapter.asg_policies(group):
            if policy.name == name:
                return policy
        raise Refusal(f"No scaling policy found for service namespace: policy {policy_ref}")

    def _warming(self, view: Any, warmup: float, now: float) -> int:
        count = 0
        for inst in view.instances:
            member = self.behaviour.members.get(inst.id)
            if member is None or not member.scaled_out_by_policy:
                continue
            if inst.lifecycle == "Pending" or (
                inst.lifecycle == "InService"
                and member.in_service_aws is not None
                and now - member.in_service_aws < warmup
            ):
                count += 1
        return count

    def _simple(self, policy: Any, run: Execution) -> tuple[int | None, str]:
        if run.honor_cooldown and (
            run.group.simple_cooldown_pending is not None or run.now < run.group.cooldown_until
        ):
            # AWS SS/CD: a simple policy waits for the running activity and cooldown.
            return None, "cooldown: a scaling activity or its cooldown is in progress"
        adjustment = policy.scaling_adjustment or 0
        return new_capacity(
            policy.adjustment_type, adjustment, run.old, policy.min_adjustment_magnitude
        ), ""

    def _step(self, policy: Any, run: Execution) -> tuple[int | None, str]:
        metric_value, breach_threshold = run.metric_value, run.breach_threshold
        old, warming = run.old, run.warming
        if metric_value is None or breach_threshold is None:
            if run.from_api:
                raise Refusal(
                    "MetricValue and BreachThreshold are required for a StepScaling policy"
                )
            return None, "no metric value to choose a step with"
        adjustment = find_step(policy.step_adjustments, metric_value, breach_threshold)
        if adjustment is None:
            if run.from_api:
                raise Refusal(
                    f"The metric value {metric_value} does not match any step adjustment "
                    f"of policy {policy.name}"
                )
            return None, "no step adjustment matches the metric value"
        magnitude = policy.min_adjustment_magnitude
        if adjustment > 0:
            # AWS SS warm-up: warming instances count toward the next scale-out, so
            # a repeated breach in the same step adds nothing.
            base = old - warming
            return max(old, new_capacity(policy.adjustment_type, adjustment, base, magnitude)), ""
        if warming:
            return None, "scale-in blocked while scaled-out instances warm up"
        return new_capacity(policy.adjustment_type, adjustment, old, magnitude), ""

    def _target_tracking(self, policy: Any, run: Execution) -> tuple[int | None, str]:
        metric_value, old, warming = run.metric_value, run.old, run.warming
        if run.from_api:
            raise Refusal("ExecutePolicy is not supported for a TargetTrackingScaling policy")
        config = policy.target_tracking or {}
        if metric_value is None:
            return None, "target tracking needs the metric value"
        target_value = float(config.get("TargetValue", 0))
        target = target_tracking_capacity(old, metric_value, target_value)
        if metric_value > target_value:
            return max(target, old), ""
        if str(config.get("DisableScaleIn", "false")).lower() == "true":
            return None, "scale-in disabled for this policy"
        if warming:
            return None, "scale-in blocked while scaled-out instances warm up"
        return min(target, old), ""

    def execute(
        self,
        policy_ref: str,
        *,
        group_name: str | None,
        metric_value: float | None,
        breach_threshold: float | None,
        honor_cooldown: bool,
        cause: str,
        from_api: bool,
    ) -> dict[str, Any]:
        policy = self._find(policy_ref, group_name)
        ref = self.adapter.asg_ref(policy.group_name)
        if ref is None:
            raise Refusal(f"Group {policy.group_name} not found")
        view = self.adapter.asg_view(ref)
        state = self.behaviour._group_state(view)
        now = self.clock.now()
        old = view.desired
        result: dict[str, Any] = {
            "policy": policy.name,
            "group": view.name,
            "old_desired": old,
            "new_desired": old,
            "changed": False,
        }
        warmup = float(
            policy.estimated_instance_warmup
            if policy.estimated_instance_warmup is not None
            else view.default_instance_warmup
            if view.default_instance_warmup is not None
            else view.default_cooldown
        )
        warming = self._warming(view, warmup, now)

        compute = {
            "SimpleScaling": self._simple,
            "StepScaling": self._step,
            "TargetTrackingScaling": self._target_tracking,
        }.get(policy.policy_type)
        if compute is None:
            raise Refusal(f"Policy type {policy.policy_type} cannot be executed")
        run = Execution(
            state, old, warming, now, metric_value, breach_threshold, honor_cooldown, from_api
        )
        target, why_not = compute(policy, run)
        if target is None:
            result["reason"] = why_not
            return result
        target = clamp(target, view.min_size, view.max_size)
        result["new_desired"] = target
        if target == old:
            result["reason"] = "capacity already at the computed value (bounded by min/max)"
            return result
        if " " in cause:
            why = cause
        elif cause:
            why = f"a monitor alarm {cause} in state ALARM triggered policy {policy.name}"
        else:
            why = f"a user request executed policy {policy.name}"
        before = {i.id for i in view.instances}
        self.adapter.asg_execute_set_desired(ref, target, why)
        if target > old:
            for inst in self.adapter.asg_view(ref).instances:
                if inst.id not in before and inst.id in self.behaviour.members:
                    self.behaviour.members[inst.id].scaled_out_by_policy = True
        if policy.policy_type == "SimpleScaling":
            state.simple_cooldown_pending = float(
                policy.cooldown if policy.cooldown is not None else view.default_cooldown
            )
        result["changed"] = True
        return result
