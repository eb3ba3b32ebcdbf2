"""The metrics the sandbox publishes on AWS's behalf, once a minute (used by cloudwatch.py).

AWS rules: EC2 CPUUtilization per instance (dimension InstanceId) and, for members
of an Auto Scaling group, also with the dimension AutoScalingGroupName; ALB metrics
per load balancer and target group. A datapoint is labelled with the start of the
period it covers. Basic monitoring (the default of RunInstances and launch
templates) publishes EC2 metrics in 5-minute periods, detailed monitoring every
minute (EC2 User Guide, "Manage detailed monitoring").

Where the numbers come from is not this file's business: each source (the ec2 and
elb behaviours' collect_metrics(), or a test's stand-in) returns MetricDatum-shaped
dicts measured since its previous call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Sandbox

log = logging.getLogger(__name__)

METRIC_PERIOD_AWS_S = 60
BASIC_MONITORING_PERIOD_AWS_S = 300

# A metric source returns (namespace, MetricDatum-shaped dicts) since its last call.
MetricSource = Callable[[], list[tuple[str, list[dict[str, Any]]]]]


def _instance_of(datum: dict[str, Any]) -> str | None:
    dims = datum.get("Dimensions") or []
    return next((d["Value"] for d in dims if d["Name"] == "InstanceId"), None)


def behaviour_method(sandbox: Any, name: str, method: str) -> Callable[..., Any] | None:
    try:
        behaviour = sandbox.behaviour(name)
    except StopIteration:
        return None
    return getattr(behaviour, method, None)


class MetricPublisher:
    """Puts the sources' data into moto's CloudWatch. `sources` None: the ec2 and
    elb behaviours, when they run."""

    def __init__(self, sandbox: Sandbox, sources: list[MetricSource] | None = None) -> None:
        self.sandbox = sandbox
        self._metric_sources = sources
        # (instance, metric, unit) -> minute values of basic-monitoring instances
        self._basic_minutes: dict[tuple[str, str, str | None], list[float]] = {}
        self.datums_put = 0

    def _sources(self) -> list[MetricSource]:
        if self._metric_sources is not None:
            return self._metric_sources
        sources = []
        for name, namespace in (("ec2", "AWS/EC2"), ("elb", "AWS/ApplicationELB")):
            collect = behaviour_method(self.sandbox, name, "collect_metrics")
            if collect is not None:
                sources.append(lambda c=collect, ns=namespace: [(ns, c())])
        return sources

    def publish(self, period_start: datetime) -> int:
        """Put what every source measured since its last call, stamped with the
        start of the minute it covers (as AWS labels a datapoint)."""
        batches: list[tuple[str, list[dict[str, Any]]]] = []
        for source in self._sources():
            try:
                batches.extend(source())
            except Exception:
                log.exception("metric source %r failed; its minute has no data", source)
        if not batches:
            return 0
        with self.sandbox.lock:
            groups = self.sandbox.adapter.autoscaling_group_of_instances()
            detailed = self.sandbox.adapter.detailed_monitoring(
                [
                    i
                    for ns, datums in batches
                    if ns == "AWS/EC2"
                    for i in map(_instance_of, datums)
                    if i
                ]
            )
            count = 0
            for namespace, datums in batches:
                stamped = [{"Timestamp": period_start, **d} for d in datums]
                if namespace == "AWS/EC2":
                    stamped = self._basic_monitoring(stamped, detailed, period_start)
                stamped += self._group_datums(namespace, stamped, groups)
                for chunk in range(0, len(stamped), 1000):
                    self.sandbox.adapter.put_metric_data(namespace, stamped[chunk : chunk + 1000])
                count += len(stamped)
        self.datums_put += count
        return count

    def _basic_monitoring(
        self, datums: list[dict[str, Any]], detailed: dict[str, bool], period_start: datetime
    ) -> list[dict[str, Any]]:
        """AWS: basic monitoring (the default for RunInstances and launch templates)
        publishes EC2 metrics in 5-minute periods, detailed monitoring every minute.
        Minutes of basic instances are held back and put as one datapoint (their
        average) labelled with the 5-minute period's start."""
        out = []
        for d in datums:
            instance = _instance_of(d)
            if instance and not detailed.get(instance, False):
                key = (instance, d["MetricName"], d.get("Unit"))
                self._basic_minutes.setdefault(key, []).append(float(d["Value"]))
            else:
                out.append(d)
        period_end = period_start + timedelta(seconds=METRIC_PERIOD_AWS_S)
        if int(period_end.timestamp()) % BASIC_MONITORING_PERIOD_AWS_S == 0:
            five_minutes = period_end - timedelta(seconds=BASIC_MONITORING_PERIOD_AWS_S)
            for (instance, name, unit), values in self._basic_minutes.items():
                datum: dict[str, Any] = {
                    "MetricName": name,
                    "Dimensions": [{"Name": "InstanceId", "Value": instance}],
                    "Value": sum(values) / len(values),
                    "Timestamp": five_minutes,
                }
                if unit:
                    datum["Unit"] = unit
                out.append(datum)
            self._basic_minutes.clear()
        return out

    @staticmethod
    def _group_datums(
        namespace: str, datums: list[dict[str, Any]], groups: dict[str, str]
    ) -> list[dict[str, Any]]:
        """AWS/EC2 metrics of a group member are also published with the dimension
        AutoScalingGroupName (the group's aggregate over its instances)."""
        if namespace != "AWS/EC2":
            return []
        extra = []
        for d in datums:
            group = groups.get(_instance_of(d) or "")
            if group and len(d.get("Dimensions") or []) == 1:
                extra.append(
                    {**d, "Dimensions": [{"Name": "AutoScalingGroupName", "Value": group}]}
                )
        return extra
