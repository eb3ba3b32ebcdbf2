"""AWS/ApplicationELB metric data from the data plane's counters.

The data plane counts requests since it started under CloudWatch's names
(dataplane.Listener); this turns two readings into the datums of the period
between them, with the dimensions AWS uses: LoadBalancer = "app/<name>/<id>",
TargetGroup = "targetgroup/<name>/<id>".

AWS rules (load-balancer-cloudwatch-metrics.html): metrics are reported only
when requests flow, a count only when it is not zero; health-check requests are
not counted; HealthyHostCount/UnHealthyHostCount are per (TargetGroup,
LoadBalancer). The ALB publishes the host counts from every health-check round, so
a minute's Maximum shows a target that was unhealthy for part of it ("Statistics:
The most useful statistics are Average, Minimum, and Maximum"); `HostCount` keeps
that summary between two collections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Counters = dict[str, dict[str, dict[str, float]]]  # lb arn -> tg arn ("" none) -> name -> n

LB_COUNTS = (
    "RequestCount",
    "HTTPCode_ELB_3XX_Count",
    "HTTPCode_ELB_4XX_Count",
    "HTTPCode_ELB_5XX_Count",
    "HTTPCode_ELB_500_Count",
    "HTTPCode_ELB_502_Count",
    "HTTPCode_ELB_503_Count",
    "HTTPCode_ELB_504_Count",
)
TARGET_COUNTS = (
    "HTTPCode_Target_2XX_Count",
    "HTTPCode_Target_3XX_Count",
    "HTTPCode_Target_4XX_Count",
    "HTTPCode_Target_5XX_Count",
)


def arn_suffix(arn: str) -> str:
    """The CloudWatch dimension value: app/<name>/<id> or targetgroup/<name>/<id>."""
    if ":loadbalancer/" in arn:
        return arn.split(":loadbalancer/", 1)[1]
    return arn.rsplit(":", 1)[-1]


def datum(
    name: str, value: float | dict[str, float], unit: str, dims: list[tuple[str, str]]
) -> dict[str, Any]:
    """One MetricDatum: a Value, or StatisticValues when given a dict of them."""
    return {
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
        "StatisticValues" if isinstance(value, dict) else "Value": value,
        "Unit": unit,
    }


def _counts(delta: dict[str, float], names: tuple[str, ...], dims: list) -> list[dict[str, Any]]:
    data = [datum(n, delta[n], "Count", dims) for n in names if delta.get(n, 0) > 0]
    count = delta.get("TargetResponseTime_count", 0)
    if count > 0:  # average seconds from the request leaving the LB to the response head
        data.append(
            datum("TargetResponseTime", delta["TargetResponseTime_sum"] / count, "Seconds", dims)
        )
    return data


def request_metrics(now: Counters, before: Counters) -> list[dict[str, Any]]:
    """Datums for what happened between two readings of the counters."""
    data: list[dict[str, Any]] = []
    for lb_arn, per_group in now.items():
        lb_dims = [("LoadBalancer", arn_suffix(lb_arn))]
        old_lb = before.get(lb_arn, {})
        totals: dict[str, float] = {}
        for tg_arn, values in per_group.items():
            old = old_lb.get(tg_arn, {})
            delta = {k: v - old.get(k, 0) for k, v in values.items()}
            for k, v in delta.items():
                totals[k] = totals.get(k, 0) + v
            if tg_arn:
                dims = [("TargetGroup", arn_suffix(tg_arn)), *lb_dims]
                data += _counts(delta, ("RequestCount", *TARGET_COUNTS), dims)
        data += _counts(totals, LB_COUNTS + TARGET_COUNTS, lb_dims)
    return data


@dataclass
class HostCount:
    """A count that holds between changes (a target group's hosts in one health
    state), summarised per period as CloudWatch summarises the ALB's samples:
    Minimum and Maximum of every value it held, the Average weighted by how long
    it held each. A target unhealthy for 10 s of a minute gives that minute
    Maximum 1, though the count was 0 at both ends of the minute. Times are AWS s."""

    value: float
    since: float  # when `value` was set
    start: float  # start of the period being summarised
    low: float
    high: float
    area: float = 0.0  # value x seconds held, up to `since`

    @classmethod
    def starting(cls, value: float, now: float) -> HostCount:
        return cls(value, now, now, value, value)

    def set(self, value: float, now: float) -> None:
        if value == self.value:
            return
        self.area += self.value * max(now - self.since, 0.0)
        self.value, self.since = value, now
        self.low, self.high = min(self.low, value), max(self.high, value)

    def close(self, now: float, samples: int) -> dict[str, float]:
        """StatisticValues of the period up to `now` as `samples` health-check rounds
        saw it; the next period starts at `now` with the current value."""
        elapsed = now - self.start
        area = self.area + self.value * max(now - self.since, 0.0)
        average = area / elapsed if elapsed > 0 else self.value
        stats = {
            "SampleCount": float(samples),
            "Sum": average * samples,
            "Minimum": self.low,
            "Maximum": self.high,
        }
        self.start = self.since = now
        self.area = 0.0
        self.low = self.high = self.value
        return stats


def host_count_metrics(
    tg_arn: str, lb_arn: str, healthy: dict[str, float], unhealthy: dict[str, float]
) -> list[dict[str, Any]]:
    """The period's HealthyHostCount/UnHealthyHostCount, as StatisticValues."""
    dims = [("TargetGroup", arn_suffix(tg_arn)), ("LoadBalancer", arn_suffix(lb_arn))]
    return [
        datum("HealthyHostCount", healthy, "Count", dims),
        datum("UnHealthyHostCount", unhealthy, "Count", dims),
    ]
