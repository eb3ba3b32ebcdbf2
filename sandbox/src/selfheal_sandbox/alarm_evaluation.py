"""How CloudWatch decides a metric alarm's state: pure functions, no moto, no clock.

The rules (AWS CloudWatch User Guide, "Alarm evaluation" and "Configuring how
alarms treat missing data"; research notes aws-semantics.md §4.1-4.2):

* The alarm looks at an *evaluation range* of periods ending now. AWS does not
  publish its size; its worked example has N=3 -> 5, so the sandbox uses N + 2.
* No missing points, or at least N real ones: the newest N real datapoints decide;
  ALARM when at least M (DatapointsToAlarm, default N) of them breach, else OK.
  TreatMissingData is then not used.
* Fewer than N real points: `breaching` / `notBreaching` fill as few missing slots
  as needed (the newest); `missing` and `ignore` do not fill. All slots missing:
  INSUFFICIENT_DATA / keep state / ALARM / OK for missing / ignore / breaching /
  notBreaching.
* Premature-alarm guard: with fewer than M real breaching points the alarm still
  goes to ALARM when the oldest breaching point among the last N slots is at least
  M periods old and every newer slot is breaching or missing (`missing` only: the
  AWS table keeps the state for `ignore`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .adapter.cloudwatch import AlarmView, MetricSample

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
BASIC_STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
# Extra periods looked at beyond EvaluationPeriods (AWS: "evaluation range").
RANGE_EXTRA_PERIODS = 2

_OPERATORS = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


@dataclass(frozen=True)
class Datapoint:
    """One period's statistic. `start` is the period's start (AWS labels it so)."""

    start: datetime
    value: float
    sample_count: float


# A slot of the evaluation range: a datapoint, or None when the period had no data.
Slot = Datapoint | None


@dataclass(frozen=True)
class Outcome:
    """What one evaluation concluded. `state` None: keep the current state."""

    state: str | None
    reason: str
    reason_data: dict[str, Any]
    # Newest real datapoint (the value an Auto Scaling step policy is applied to).
    latest: Datapoint | None = None
    evaluated: tuple[Slot, ...] = field(default_factory=tuple)


def unsupported(alarm: AlarmView) -> str | None:
    """Why the sandbox cannot evaluate this alarm, or None."""
    if not alarm.single_metric:
        return "metric-math and composite alarms are not evaluated by the sandbox"
    if alarm.extended_statistic or alarm.statistic not in BASIC_STATISTICS:
        return f"statistic {alarm.extended_statistic or alarm.statistic} is not evaluated"
    if alarm.comparison_operator not in _OPERATORS:
        return f"{alarm.comparison_operator} needs an anomaly band, not evaluated"
    return None


def statistic(samples: Sequence[MetricSample], name: str) -> float:
    count = sum(s.count for s in samples)
    if name == "Sum":
        return sum(s.sum for s in samples)
    if name == "SampleCount":
        return count
    if name == "Minimum":
        return min(s.minimum for s in samples)
    if name == "Maximum":
        return max(s.maximum for s in samples)
    return sum(s.sum for s in samples) / count if count else 0.0


def range_start(end: datetime, alarm: AlarmView) -> datetime:
    return end - timedelta(seconds=alarm.period * (alarm.evaluation_periods + RANGE_EXTRA_PERIODS))


def slots(samples: Sequence[MetricSample], end: datetime, alarm: AlarmView) -> list[Slot]:
    """The evaluation range, oldest first: periods [end - (i+1)P, end - iP)."""
    period = timedelta(seconds=alarm.period)
    count = alarm.evaluation_periods + RANGE_EXTRA_PERIODS
    out: list[Slot] = []
    for i in reversed(range(count)):
        lo, hi = end - period * (i + 1), end - period * i
        inside = [s for s in samples if lo <= s.timestamp < hi]
        if inside:
            out.append(
                Datapoint(
                    lo,
                    statistic(inside, alarm.statistic or "Average"),
                    sum(s.count for s in inside),
                )
            )
        else:
            out.append(None)
    return out


def breaches(alarm: AlarmView, value: float) -> bool:
    test, _ = _OPERATORS[alarm.comparison_operator]
    return bool(test(value, alarm.threshold))


def evaluate(alarm: AlarmView, range_slots: Sequence[Slot], now: datetime) -> Outcome:
    real = [dp for dp in range_slots if dp is not None]
    state, reason = _decide(alarm, range_slots, real)
    return Outcome(
        state,
        reason,
        _reason_data(alarm, range_slots, now),
        real[-1] if real else None,
        tuple(range_slots),
    )


def _decide(
    alarm: AlarmView, range_slots: Sequence[Slot], real: list[Datapoint]
) -> tuple[str | None, str]:
    """(new state or None to keep it, StateReason)."""
    n = alarm.evaluation_periods
    m = alarm.datapoints_to_alarm or n
    tmd = alarm.treat_missing_data
    if not real:
        if tmd == "ignore":
            return None, ""
        if tmd == "missing":
            return INSUFFICIENT_DATA, _insufficient(n)
        breaching = tmd == "breaching"
        return (ALARM if breaching else OK), _all_missing(n, breaching)

    if len(real) >= n:
        newest = real[-n:]
        hits = [dp for dp in newest if breaches(alarm, dp.value)]
        calm = [dp for dp in newest if dp not in hits]
        if len(hits) >= m:
            return ALARM, _crossed(alarm, hits, n, m, negated=False)
        return OK, _crossed(alarm, calm, n, m, negated=True)

    return _decide_sparse(alarm, range_slots, real)


def _decide_sparse(
    alarm: AlarmView, range_slots: Sequence[Slot], real: list[Datapoint]
) -> tuple[str | None, str]:
    """Fewer than N real datapoints in the evaluation range."""
    n = alarm.evaluation_periods
    m = alarm.datapoints_to_alarm or n
    tmd = alarm.treat_missing_data
    hits = [dp for dp in real if breaches(alarm, dp.value)]
    calm = [dp for dp in real if not breaches(alarm, dp.value)]
    if tmd in ("breaching", "notBreaching"):
        filled = n - len(real)
        count = len(hits) + (filled if tmd == "breaching" else 0)
        label = "Breaching" if tmd == "breaching" else "NonBreaching"
        suffix = f" and {filled} missing datapoint{_s(filled)} {_was(filled)} treated as [{label}]"
        if count >= m:
            return ALARM, _crossed(alarm, hits, n, m, negated=False, suffix=suffix)
        return OK, _crossed(alarm, calm, n, m, negated=True, suffix=suffix)
    if len(hits) >= m or (tmd == "missing" and _premature_guard(alarm, range_slots[-n:], m)):
        return ALARM, _crossed(alarm, hits, n, m, negated=False)
    if calm:
        return OK, _crossed(alarm, calm, n, m, negated=True)
    # Only breaching points, too few and too recent: not enough to go to ALARM.
    return None, ""


def _premature_guard(alarm: AlarmView, last_n: Sequence[Slot], m: int) -> bool:
    """AWS: ALARM when the oldest breaching point in the last N slots is at least M
    periods old and all newer slots are breaching or missing."""
    newest_first = list(reversed(last_n))
    oldest_age = 0
    for age, dp in enumerate(newest_first, start=1):
        if dp is not None and breaches(alarm, dp.value):
            oldest_age = age
    if oldest_age < m:
        return False
    return all(dp is None or breaches(alarm, dp.value) for dp in newest_first[: oldest_age - 1])


# ----------------------------------------------------------------- reason texts


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _was(n: int) -> str:
    return "was" if n == 1 else "were"


def _stamp(dp: Datapoint) -> str:
    return f"{dp.value!r} ({dp.start:%d/%m/%y %H:%M:%S})"


def _crossed(
    alarm: AlarmView,
    points: Sequence[Datapoint],
    n: int,
    m: int,
    *,
    negated: bool,
    suffix: str = "",
) -> str:
    """AWS's text, e.g. "Threshold Crossed: 2 out of the last 2 datapoints
    [75.2 (25/11/26 10:01:00), 80.0 (25/11/26 10:00:00)] were greater than the
    threshold (70.0) (minimum 2 datapoints for OK -> ALARM transition)."""
    _, words = _OPERATORS[alarm.comparison_operator]
    listed = ", ".join(_stamp(dp) for dp in sorted(points, key=lambda d: d.start, reverse=True))
    k = len(points)
    verb = f"{_was(k)} {'not ' if negated else ''}{words}"
    minimum = (
        "(minimum 1 datapoint for ALARM -> OK transition)"
        if negated
        else f"(minimum {m} datapoint{_s(m)} for OK -> ALARM transition)"
    )
    return (
        f"Threshold Crossed: {k} out of the last {n} datapoint{_s(n)} [{listed}] {verb} "
        f"the threshold ({alarm.threshold!r}){suffix} {minimum}."
    )


def _insufficient(n: int) -> str:
    return f"Insufficient Data: {n} datapoint{_s(n)} {_was(n)} unknown."


def _all_missing(n: int, breaching: bool) -> str:
    label = "Breaching" if breaching else "NonBreaching"
    return (
        f"Threshold Crossed: no datapoints were received for {n} period{_s(n)} and "
        f"{n} missing datapoint{_s(n)} {_was(n)} treated as [{label}]."
    )


def aws_timestamp(when: datetime) -> str:
    """CloudWatch's format in reason data and notifications: 2026-11-25T10:00:00.000+0000."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def _reason_data(alarm: AlarmView, range_slots: Sequence[Slot], now: datetime) -> dict[str, Any]:
    real = [dp for dp in range_slots if dp is not None]
    start = range_slots[0].start if range_slots and range_slots[0] else None
    return {
        "version": "1.0",
        "queryDate": aws_timestamp(now),
        "startDate": aws_timestamp(
            start or now - timedelta(seconds=alarm.period * len(range_slots))
        ),
        "statistic": alarm.statistic,
        "period": alarm.period,
        "recentDatapoints": [dp.value for dp in real],
        "threshold": alarm.threshold,
        "evaluatedDatapoints": [
            {
                "timestamp": aws_timestamp(dp.start),
                "sampleCount": dp.sample_count,
                "value": dp.value,
            }
            for dp in reversed(real[-alarm.evaluation_periods :])
        ],
    }
