"""CloudWatch: metrics put every minute, alarms evaluated, actions run (Behaviour "cloudwatch").

AWS rules followed (CloudWatch User Guide "Using Amazon CloudWatch alarms",
PutMetricAlarm / SetAlarmState API reference; research notes aws-semantics.md §4):

* Metrics: EC2 CPUUtilization per instance (dimension InstanceId, and for members
  of an Auto Scaling group also AutoScalingGroupName) and the ALB metrics, one
  datapoint per minute, timestamped at the start of the period it covers. EC2
  instances with basic monitoring (the default unless RunInstances or the launch
  template enables detailed monitoring) get one datapoint per 5 minutes
  (metrics.py).
* Alarms are evaluated every minute (Period >= 60 s) over a sliding window ending
  at the minute boundary, every 10 s for high-resolution periods; the rules of
  `alarm_evaluation.py` decide the state. A minute's data counts once the minute
  is over, so an alarm never fires on a period still in progress.
* Actions run only on a state change (AlarmActions on -> ALARM, OKActions on -> OK,
  InsufficientDataActions on -> INSUFFICIENT_DATA) when ActionsEnabled; SNS topics
  get the alarm notification JSON. Exception: Auto Scaling policy actions are
  invoked again once per minute while the alarm stays in that state
  (alarm_actions.py).
* SetAlarmState changes the state and runs the new state's actions when the state
  differs; the next evaluation puts the alarm back where its data says.
* Every state change and action is an alarm history item (DescribeAlarmHistory).
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import alarm_evaluation as rules
from .adapter.cloudwatch import AlarmView, StateChange
from .alarm_actions import AlarmActions, PolicyExecutor
from .clock import Periodic
from .metrics import METRIC_PERIOD_AWS_S, MetricPublisher, MetricSource

if TYPE_CHECKING:
    from .server import Sandbox

log = logging.getLogger(__name__)

TICK_AWS_S = 10
# Metrics older than this are dropped from moto (no alarm window can reach them:
# Period x EvaluationPeriods <= 1 day for periods under an hour).
METRIC_RETENTION = timedelta(days=1, hours=1)
METRIC_MAX_DATUMS = 200_000


def _floor(when: datetime, seconds: int) -> datetime:
    epoch = int(when.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


class CloudWatchAlarms:
    """Implements `Behaviour`. `metric_sources` and `policy_executor` are seams for
    tests; by default they are the ec2/elb behaviours' collect_metrics() and the
    autoscaling behaviour's execute_policy()."""

    name = "cloudwatch"

    def __init__(
        self,
        sandbox: Sandbox,
        metric_sources: list[MetricSource] | None = None,
        policy_executor: PolicyExecutor | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.metrics = MetricPublisher(sandbox, metric_sources)
        self.actions = AlarmActions(sandbox, policy_executor)
        self._last_minute: datetime | None = None
        self._loop = Periodic("cloudwatch", sandbox.clock, TICK_AWS_S, self.tick, self._tick_failed)
        self._skipped: set[str] = set()
        self.transitions = 0
        sandbox.adapter.install_cloudwatch_hooks(
            now=sandbox.clock.utcnow, state_set=self._state_set_by_api
        )

    # -- Behaviour

    def start(self) -> None:
        self.actions.start()
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self.actions.stop()

    def status(self) -> dict[str, Any]:
        with self.sandbox.lock:
            alarms = self.sandbox.adapter.alarms()
        return {
            "alarms": [
                {
                    "name": a.name,
                    "state": a.state_value,
                    "reason": a.state_reason,
                    "metric": f"{a.namespace}/{a.metric_name}" if a.metric_name else None,
                    "evaluated": rules.unsupported(a) is None,
                }
                for a in alarms
            ],
            "transitions": self.transitions,
            "actions_run": self.actions.actions_run,
            "actions_failed": self.actions.actions_failed,
            "datums_put": self.metrics.datums_put,
            "evaluation_interval_aws_s": 60,
        }

    def _tick_failed(self, error: BaseException) -> None:
        log.error("cloudwatch tick failed: %r", error, exc_info=error)

    # -- the loop

    def tick(self, now: datetime | None = None) -> None:
        """One pass: at a minute boundary put the minute's metrics and evaluate the
        alarms with Period >= 60; every tick evaluate the high-resolution ones."""
        now = now or self.sandbox.clock.utcnow()
        minute = _floor(now, METRIC_PERIOD_AWS_S)
        if self._last_minute is None:
            self._last_minute = minute
        elif minute > self._last_minute:
            self.metrics.publish(minute - timedelta(seconds=METRIC_PERIOD_AWS_S))
            self._last_minute = minute
            self.evaluate(minute, high_resolution=False)
            with self.sandbox.lock:
                self.sandbox.adapter.trim_metric_data(now - METRIC_RETENTION, METRIC_MAX_DATUMS)
        self.evaluate(_floor(now, TICK_AWS_S), high_resolution=True)

    # -- metrics

    # -- evaluation

    def evaluate(self, end: datetime, *, high_resolution: bool) -> None:
        now = self.sandbox.clock.utcnow()
        with self.sandbox.lock:
            alarms = self.sandbox.adapter.alarms()
        for alarm in alarms:
            if (alarm.period < 60) != high_resolution:
                continue
            why = rules.unsupported(alarm)
            if why:
                if alarm.arn not in self._skipped:
                    self._skipped.add(alarm.arn)
                    log.warning("alarm %s is not evaluated: %s", alarm.name, why)
                continue
            self._evaluate_one(alarm, end, now)

    def _evaluate_one(self, alarm: AlarmView, end: datetime, now: datetime) -> None:
        with self.sandbox.lock:
            samples = self.sandbox.adapter.metric_samples(alarm, rules.range_start(end, alarm), end)
            current = self.sandbox.adapter.alarm(alarm.name)
            if current is None or current.configuration_updated != alarm.configuration_updated:
                return  # deleted or re-put meanwhile: the next pass sees the new one
            outcome = rules.evaluate(current, rules.slots(samples, end, current), now)
            latest = outcome.latest.value if outcome.latest else None
            if outcome.state is None or outcome.state == current.state_value:
                if current.actions_enabled:
                    self.actions.repeat_scaling(current, now, latest)
                return
            changed = self.sandbox.adapter.change_alarm_state(
                current.name,
                outcome.state,
                outcome.reason,
                json.dumps(outcome.reason_data),
                now,
            )
            if changed is None:
                return
            self._record_transition(changed, current.state_value, current.state_reason, now)
        self.actions.queue_transition(changed, current.state_value, now, latest)

    def _record_transition(
        self, alarm: AlarmView, old_state: str, old_reason: str, when: datetime
    ) -> None:
        """History item + log line; called under the sandbox lock."""
        self.transitions += 1
        data: dict[str, Any] = {
            "version": "1.0",
            "oldState": {"stateValue": old_state, "stateReason": old_reason},
            "newState": {"stateValue": alarm.state_value, "stateReason": alarm.state_reason},
        }
        with contextlib.suppress(TypeError, ValueError):
            data["newState"]["stateReasonData"] = json.loads(alarm.state_reason_data)
        self.sandbox.adapter.add_alarm_history(
            alarm.name,
            "StateUpdate",
            f"Alarm updated from {old_state} to {alarm.state_value}",
            data,
            when,
        )
        log.info(
            "alarm %s %s -> %s: %s (AWS: alarm state follows the last %d period(s) of %d s)",
            alarm.name,
            old_state,
            alarm.state_value,
            alarm.state_reason,
            alarm.evaluation_periods,
            alarm.period,
        )

    def _state_set_by_api(self, change: StateChange) -> None:
        """SetAlarmState changed the state (inside the API request, under the lock)."""
        alarm = change.alarm
        now = self.sandbox.clock.utcnow()
        self._record_transition(alarm, change.old_state, change.old_reason, now)
        value = None
        try:
            recent = json.loads(alarm.state_reason_data or "{}").get("recentDatapoints") or []
            value = float(recent[-1]) if recent else None
        except (TypeError, ValueError, AttributeError):
            value = None
        self.actions.queue_transition(alarm, change.old_state, now, value)

    # -- actions

    def run_queued_actions(self) -> None:
        """Run the queued actions in this thread (for tests that drive `tick`)."""
        self.actions.run_queued()
