"""TTD / TTR arithmetic, percentiles and SLO verdicts of recovery.py."""

import pytest

from ansible_collections.selfheal.aws.plugins.module_utils import recovery


def sample(
    t, healthy, in_service=3, desired=3, unhealthy=0, instances=("i-1", "i-2", "i-3"), probe_ok=True, alarms=None
):
    return {
        "t": t,
        "desired": desired,
        "in_service": in_service,
        "healthy": healthy,
        "unhealthy": unhealthy,
        "instances": list(instances),
        "probe_ok": probe_ok,
        "alarms": alarms or {},
    }


# fault at t=100: unhealthy at 110, replacement i-4 at 112, healthy again at 140
HEALING = [
    sample(96, 3),
    sample(100, 3),
    sample(105, 3),
    sample(110, 2, unhealthy=1),
    sample(112, 2, in_service=3, instances=("i-2", "i-3", "i-4")),
    sample(130, 2, instances=("i-2", "i-3", "i-4")),
    sample(140, 3, instances=("i-2", "i-3", "i-4")),
    sample(150, 3, instances=("i-2", "i-3", "i-4")),
]


def test_ttd_ttr_and_replacement_are_measured_from_the_fault():
    metrics = recovery.recovery_metrics(HEALING, fault_time=100.0)
    assert metrics["detect"] == {"status": "measured", "seconds": 10.0, "aws_seconds": 10.0, "at": 110}
    assert metrics["replacement"]["seconds"] == 12.0
    assert metrics["recover"]["seconds"] == 40.0
    assert metrics["scale_out"]["status"] == "timeout"


def test_time_scale_reports_aws_seconds_next_to_wall_seconds():
    metrics = recovery.recovery_metrics(HEALING, fault_time=100.0, time_scale=5)
    assert metrics["detect"]["seconds"] == 10.0
    assert metrics["detect"]["aws_seconds"] == 50.0
    assert metrics["recover"]["aws_seconds"] == 200.0


def test_fault_that_never_recovers_is_a_timeout_not_a_number():
    stuck = [*HEALING[:4], sample(130, 2, unhealthy=1), sample(160, 2, unhealthy=1)]
    metrics = recovery.recovery_metrics(stuck, fault_time=100.0, end_time=170.0)
    assert metrics["detect"]["seconds"] == 10.0
    assert metrics["recover"] == {"status": "timeout", "seconds": None, "aws_seconds": None, "waited": 70.0}


def test_undetected_fault_is_a_timeout_for_detection_and_recovery():
    quiet = [sample(t, 3) for t in (90, 100, 110, 120)]
    metrics = recovery.recovery_metrics(quiet, fault_time=100.0)
    assert metrics["detect"]["status"] == "timeout"
    assert metrics["recover"]["status"] == "timeout"


def test_recovery_needs_the_probes_to_succeed():
    failing_probe = [*HEALING[:6], sample(140, 3, instances=("i-2", "i-3", "i-4"), probe_ok=False)]
    metrics = recovery.recovery_metrics(failing_probe, fault_time=100.0)
    assert metrics["recover"]["status"] == "timeout"


def test_recovery_before_detection_does_not_count():
    # healthy samples right after the fault are not a recovery: nothing was detected yet
    metrics = recovery.recovery_metrics(HEALING, fault_time=100.0)
    assert metrics["recover"]["at"] == 140


def test_scale_out_is_measured_when_desired_grows():
    scaling = [
        sample(0, 3),
        sample(10, 3),
        sample(70, 3, desired=4, in_service=3),
        sample(100, 4, desired=4, in_service=4),
    ]
    metrics = recovery.recovery_metrics(scaling, fault_time=0.0)
    assert metrics["scale_out"]["seconds"] == 70.0


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [([], 50, None), ([7], 99, 7), ([1, 2, 3, 4], 50, 2.5), (list(range(1, 101)), 95, 95.05), ([5, 1, 3], 0, 1)],
)
def test_percentile_interpolates_between_ranks(values, pct, expected):
    assert (
        recovery.percentile(values, pct) == pytest.approx(expected)
        if expected is not None
        else recovery.percentile(values, pct) is None
    )


def test_request_summary_counts_failures_and_percentiles():
    requests = [
        {"t": 100 + i, "ok": i % 10 != 0, "status": 200 if i % 10 else 502, "latency": i / 1000} for i in range(100)
    ]
    summary = recovery.request_summary(requests, fault_time=150)
    assert summary["sent"] == 100
    assert summary["failed"] == 10
    assert summary["failure_rate"] == 0.1
    assert summary["failed_after_fault"] == 5
    assert summary["latency_p50"] == pytest.approx(0.0495)
    assert summary["by_status"] == {"200": 90, "502": 10}


def test_failure_floor_is_rate_times_detection_over_instances():
    assert recovery.failure_floor(60, 10, 3) == 200
    assert recovery.failure_floor(60, None, 3) is None


def test_slos_pass_and_fail_on_aws_seconds():
    result = {
        "metrics": recovery.recovery_metrics(HEALING, fault_time=100.0, time_scale=2),
        "requests": {"success_rate": 0.995, "failed": 3},
    }
    verdicts = {
        v["slo"]: v for v in recovery.evaluate_slos(result, {"max_ttd": 25, "max_ttr": 60, "min_success_rate": 0.99})
    }
    assert verdicts["max_ttd"]["passed"] is True  # 20 AWS s
    assert verdicts["max_ttr"]["passed"] is False  # 80 AWS s
    assert verdicts["max_ttr"]["actual"] == 80.0
    assert verdicts["min_success_rate"]["passed"] is True


def test_slo_on_a_timed_out_metric_fails():
    result = {"metrics": recovery.recovery_metrics(HEALING[:4], fault_time=100.0), "requests": {}}
    (verdict,) = recovery.evaluate_slos(result, {"max_ttr": 1000})
    assert verdict["passed"] is False
    assert verdict["actual"] is None
    assert verdict["why"] == "timeout"


def test_unknown_slo_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=r"slos: unknown max_ttx; allowed: .*max_ttd"):
        recovery.evaluate_slos({"metrics": {}, "requests": {}}, {"max_ttx": 1})


def test_alarm_transitions_are_listed_in_time_order():
    samples = [
        sample(1, 3, alarms={"cpu-high": "OK"}),
        sample(2, 3, alarms={"cpu-high": "ALARM"}),
        sample(3, 3, alarms={"cpu-high": "OK"}),
    ]
    assert [(t["t"], t["to"]) for t in recovery.alarm_transitions(samples)] == [(2, "ALARM"), (3, "OK")]


def test_build_result_reports_floor_ratio_and_verdict():
    requests = [
        {"t": 90 + i * 0.5, "ok": not 100 <= 90 + i * 0.5 < 104, "status": 200, "latency": 0.002} for i in range(120)
    ]
    result = recovery.build_result("s", "terminate", HEALING, requests, 90.0, 150.0, fault_time=100.0, rate=2,
                                   slos={"max_ttd": 11, "max_ttr": 30})  # fmt: skip
    assert result["failure_floor"] == pytest.approx(2 * 10 / 3, rel=1e-3)
    assert result["requests"]["failed_after_fault"] == 8
    assert result["requests"]["failed_over_floor"] == pytest.approx(8 / (20 / 3), rel=1e-2)
    assert result["passed"] is False  # TTR 40 > 30
    assert result["fault_at"]["utc"].startswith("1970-01-01T00:01:40")
    assert len(result["timeline"]["per_second"]) == 60


def test_recovery_follows_desired_when_a_policy_scales_in_during_the_game_day():
    # the idle stack's scale-in alarm lowers desired from 3 to 2 while the group heals
    samples = [
        sample(0, 3),
        sample(12, 2, in_service=2),
        sample(16, 1, in_service=1, desired=2),
        sample(20, 2, in_service=2, desired=2),
    ]
    metrics = recovery.recovery_metrics(samples, fault_time=10)
    assert metrics["recover"]["status"] == "measured"
    assert metrics["recover"]["seconds"] == 10


STUCK = [*HEALING[:4], sample(130, 2, unhealthy=1), sample(160, 2, unhealthy=1)]
SCALING = [sample(0, 3), sample(5, 3, desired=4), sample(9, 3, in_service=4, desired=4), sample(12, 4, desired=4)]


@pytest.mark.parametrize(
    ("samples", "fault_time"), [(HEALING, 100.0), (HEALING, 107.0), (STUCK, 100.0), (SCALING, 0.0)]
)
def test_watch_one_sample_at_a_time_agrees_with_the_whole_run_at_every_step(samples, fault_time):
    watch = recovery.RecoveryWatch(fault_time)
    for count, taken in enumerate(samples, start=1):
        watch.add(taken)
        metrics = recovery.recovery_metrics(samples[:count], fault_time)
        for name, seen in (("detect", watch.detected), ("replacement", watch.replaced), ("recover", watch.recovered)):
            assert metrics[name].get("at") == seen, (name, count)
        assert metrics["scale_out"].get("at") == watch.scaled
