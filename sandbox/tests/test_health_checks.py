"""The target health state machine and matcher (no network): AWS's counting rules."""

from __future__ import annotations

from selfheal_sandbox.health_checks import (
    FAILED,
    HEALTHY,
    TIMEOUT,
    HealthCheckSettings,
    TargetHealth,
    code_matches,
    response_code_mismatch,
)

SETTINGS = HealthCheckSettings(
    protocol="HTTP",
    port="traffic-port",
    path="/health",
    interval_s=5,
    timeout_s=2,
    healthy_threshold=3,
    unhealthy_threshold=2,
    matcher="200",
)


def test_new_target_is_healthy_after_one_passing_check() -> None:
    """AWS: "After your target is registered, it must pass one health check to be
    considered healthy" - even with HealthyThresholdCount 3."""
    health = TargetHealth()
    assert health.verdict[:2] == ("initial", "Elb.RegistrationInProgress")
    assert health.record(HEALTHY, SETTINGS)
    assert health.verdict == ("healthy", None, None)


def test_new_target_failing_is_initial_then_unhealthy_at_the_threshold() -> None:
    """AWS: `initial` with Elb.InitialHealthChecking while checks run; unhealthy
    after UnhealthyThresholdCount consecutive failures, with the last reason."""
    health = TargetHealth()
    health.record(FAILED, SETTINGS)
    assert health.verdict[:2] == ("initial", "Elb.InitialHealthChecking")
    health.record(TIMEOUT, SETTINGS)
    assert health.verdict == ("unhealthy", "Target.Timeout", "Request timed out")


def test_healthy_target_needs_consecutive_failures_to_turn_unhealthy() -> None:
    """AWS: UnhealthyThresholdCount CONSECUTIVE failures take a target out of service;
    a pass in between starts the count again."""
    health = TargetHealth()
    health.record(HEALTHY, SETTINGS)
    health.record(response_code_mismatch(503), SETTINGS)
    health.record(HEALTHY, SETTINGS)
    health.record(response_code_mismatch(503), SETTINGS)
    assert health.state == "healthy"
    health.record(response_code_mismatch(503), SETTINGS)
    assert health.verdict == (
        "unhealthy",
        "Target.ResponseCodeMismatch",
        "Health checks failed with these codes: [503]",
    )


def test_unhealthy_target_needs_healthy_threshold_consecutive_passes() -> None:
    """AWS: HealthyThresholdCount consecutive successes before an unhealthy target is
    considered healthy again."""
    health = TargetHealth()
    health.record(FAILED, SETTINGS)
    health.record(FAILED, SETTINGS)
    health.record(HEALTHY, SETTINGS)
    health.record(HEALTHY, SETTINGS)
    health.record(FAILED, SETTINGS)  # the count starts over
    health.record(HEALTHY, SETTINGS)
    health.record(HEALTHY, SETTINGS)
    assert health.state == "unhealthy"
    health.record(HEALTHY, SETTINGS)
    assert health.state == "healthy"


def test_matcher_accepts_codes_lists_and_ranges() -> None:
    """AWS Matcher.HttpCode: "200", "200,202" or "200-299"."""
    assert code_matches(200, "200")
    assert not code_matches(302, "200")
    assert code_matches(202, "200,202")
    assert code_matches(299, "200-299")
    assert not code_matches(300, "200-299")
    assert code_matches(404, "200-299,404")
