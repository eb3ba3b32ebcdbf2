"""AWS/ApplicationELB metric data from the data plane's counters.

The data plane counts requests since it started under CloudWatch's names
(dataplane.Listener); this turns two readings into the datums of the period
between them, with the dimensions AWS uses: LoadBalancer = "app/<name>/<id>",
TargetGroup = "targetgroup/<name>/<id>".

AWS rules (load-balancer-cloudwatch-metrics.html): metrics are reported only
when requests flow, a count only when it is not zero; health-check requests are
not counted; HealthyHostCount/UnHealthyHostCount are per (TargetGroup,
LoadBalancer).
"""

from __future__ import annotations

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


def datum(name: str, value: float, unit: str, dims: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
        "Value": value,
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


def host_count_metrics(
    tg_arn: str, lb_arn: str, healthy: int, unhealthy: int
) -> list[dict[str, Any]]:
    dims = [("TargetGroup", arn_suffix(tg_arn)), ("LoadBalancer", arn_suffix(lb_arn))]
    return [
        datum("HealthyHostCount", healthy, "Count", dims),
        datum("UnHealthyHostCount", unhealthy, "Count", dims),
    ]
