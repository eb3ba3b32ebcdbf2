"""AWS/ApplicationELB datums from the data plane's counters (no network)."""

from __future__ import annotations

from selfheal_sandbox.elb_metrics import HostCount, host_count_metrics, request_metrics

LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web-alb/50dc6c495c0c9188"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/73e2d6bc24d8a067"
LB_DIM = {"Name": "LoadBalancer", "Value": "app/web-alb/50dc6c495c0c9188"}
TG_DIM = {"Name": "TargetGroup", "Value": "targetgroup/web-tg/73e2d6bc24d8a067"}


def _by_key(data: list[dict]) -> dict[tuple[str, int], float]:
    return {(d["MetricName"], len(d["Dimensions"])): d["Value"] for d in data}


def test_request_metrics_are_the_period_delta_with_aws_dimensions() -> None:
    """AWS: counts per period, dimensions LoadBalancer (app/name/id) and
    TargetGroup+LoadBalancer; TargetResponseTime is the average in seconds; ELB
    error codes are per load balancer; a zero count is not reported."""
    before = {
        LB: {
            TG: {
                "RequestCount": 10,
                "HTTPCode_Target_2XX_Count": 10,
                "TargetResponseTime_sum": 1.0,
                "TargetResponseTime_count": 10,
            },
            "": {"HTTPCode_ELB_5XX_Count": 1, "HTTPCode_ELB_503_Count": 1},
        }
    }
    now = {
        LB: {
            TG: {
                "RequestCount": 14,
                "HTTPCode_Target_2XX_Count": 13,
                "HTTPCode_Target_5XX_Count": 1,
                "TargetResponseTime_sum": 1.8,
                "TargetResponseTime_count": 14,
            },
            "": {
                "HTTPCode_ELB_5XX_Count": 3,
                "HTTPCode_ELB_503_Count": 1,
                "HTTPCode_ELB_502_Count": 2,
            },
        }
    }
    data = request_metrics(now, before)
    values = _by_key(data)
    assert values[("RequestCount", 1)] == 4
    assert values[("RequestCount", 2)] == 4
    assert values[("HTTPCode_Target_2XX_Count", 2)] == 3
    assert values[("HTTPCode_Target_5XX_Count", 1)] == 1
    assert values[("HTTPCode_ELB_5XX_Count", 1)] == 2
    assert values[("HTTPCode_ELB_502_Count", 1)] == 2
    assert ("HTTPCode_ELB_503_Count", 1) not in values  # no new 503: not reported
    assert ("HTTPCode_ELB_502_Count", 2) not in values  # ELB codes: LoadBalancer only
    assert abs(values[("TargetResponseTime", 1)] - 0.2) < 1e-9
    per_tg = next(
        d for d in data if d["MetricName"] == "RequestCount" and len(d["Dimensions"]) == 2
    )
    assert per_tg["Dimensions"] == [TG_DIM, LB_DIM]
    assert per_tg["Unit"] == "Count"


def test_no_traffic_reports_no_request_metrics() -> None:
    """AWS: "If there are no requests flowing through the load balancer ... the metric
    is not reported"."""
    counters = {LB: {TG: {"RequestCount": 5.0}}}
    assert request_metrics(counters, counters) == []


def test_host_counts_are_per_target_group_and_load_balancer() -> None:
    """AWS: HealthyHostCount/UnHealthyHostCount with dimensions TargetGroup, LoadBalancer."""
    healthy = {"SampleCount": 12.0, "Sum": 24.0, "Minimum": 2.0, "Maximum": 2.0}
    unhealthy = {"SampleCount": 12.0, "Sum": 2.0, "Minimum": 0.0, "Maximum": 1.0}
    data = host_count_metrics(TG, LB, healthy, unhealthy)
    assert [(d["MetricName"], d["StatisticValues"], d["Dimensions"]) for d in data] == [
        ("HealthyHostCount", healthy, [TG_DIM, LB_DIM]),
        ("UnHealthyHostCount", unhealthy, [TG_DIM, LB_DIM]),
    ]
    assert all("Value" not in d and d["Unit"] == "Count" for d in data)


def test_unhealthy_host_count_maximum_catches_a_spell_shorter_than_the_period() -> None:
    """AWS (ALB CloudWatch metrics, UnHealthyHostCount): "The most useful statistics
    are Average, Minimum, and Maximum"; the ALB reports the count from its health
    checks through the minute, so a target unhealthy for 10 s of a minute gives
    Maximum 1 and Minimum 0, the Average weighted by time."""
    count = HostCount.starting(0, now=0.0)
    count.set(1, now=20.0)  # unhealthy after its failed checks
    count.set(1, now=25.0)  # unchanged: no new sample value
    count.set(0, now=30.0)  # replaced, deregistered: no longer unhealthy
    stats = count.close(now=60.0, samples=12)  # 5 s interval: 12 rounds a minute
    assert (stats["Minimum"], stats["Maximum"], stats["SampleCount"]) == (0, 1, 12)
    assert abs(stats["Sum"] / stats["SampleCount"] - 10 / 60) < 1e-9
    # The next minute starts from the value held at its start.
    assert count.close(now=120.0, samples=12) == {
        "SampleCount": 12.0,
        "Sum": 0.0,
        "Minimum": 0,
        "Maximum": 0,
    }
