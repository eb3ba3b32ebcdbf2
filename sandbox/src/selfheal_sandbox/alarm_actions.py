"""What an alarm does when its state changes (used by cloudwatch.py).

AWS rules (CloudWatch User Guide "Alarm actions", aws-semantics.md §4.3-4.5):
actions run on a state change only, when ActionsEnabled: AlarmActions on -> ALARM,
OKActions on -> OK, InsufficientDataActions on -> INSUFFICIENT_DATA. An SNS topic
gets the alarm notification JSON; an Auto Scaling policy is executed, and "the
alarm continues to invoke the action once per minute that the alarm remains in the
new state". CloudWatch validates no action: a failure is an Action history item.
Actions run in their own thread, never inside an API request.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import alarm_evaluation as rules
from .adapter.cloudwatch import AlarmView
from .metrics import METRIC_PERIOD_AWS_S, behaviour_method

if TYPE_CHECKING:
    from .server import Sandbox

log = logging.getLogger(__name__)

# Auto Scaling actions repeat once a minute; evaluation ticks jitter by up to a tick.
REPEAT_MIN_GAP = timedelta(seconds=METRIC_PERIOD_AWS_S - 10)
# execute_policy(policy_arn, metric_value=..., breach_threshold=..., cause=...)
PolicyExecutor = Callable[..., Any]

REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "ca-central-1": "Canada (Central)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)",
    "eu-central-1": "EU (Frankfurt)",
    "eu-north-1": "EU (Stockholm)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-south-1": "Asia Pacific (Mumbai)",
    "sa-east-1": "South America (Sao Paulo)",
}


@dataclass(frozen=True)
class AlarmAction:
    alarm: AlarmView
    arn: str
    old_state: str
    new_state: str
    reason: str
    when: datetime
    metric_value: float | None
    repeat: bool  # the once-per-minute Auto Scaling re-invocation


class AlarmActions:
    """The action queue and its worker. `policy_executor` None: the autoscaling
    behaviour's execute_policy(), when it runs."""

    def __init__(self, sandbox: Sandbox, policy_executor: PolicyExecutor | None = None) -> None:
        self.sandbox = sandbox
        self._policy_executor = policy_executor
        self._actions: queue.Queue[AlarmAction | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run_actions, name="cloudwatch-actions", daemon=True
        )
        # alarm ARN -> when its Auto Scaling actions last ran (repeats: once a minute)
        self._last_scaling: dict[str, datetime] = {}
        self.actions_run = 0
        self.actions_failed = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._actions.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def queue_transition(
        self, alarm: AlarmView, old_state: str, when: datetime, value: float | None
    ) -> None:
        if not alarm.actions_enabled:
            return
        for arn in alarm.actions_for(alarm.state_value):
            if ":autoscaling:" in arn:
                self._last_scaling[alarm.arn] = when
            self._actions.put(
                AlarmAction(
                    alarm, arn, old_state, alarm.state_value, alarm.state_reason, when, value, False
                )
            )

    def repeat_scaling(self, alarm: AlarmView, when: datetime, value: float | None) -> None:
        """AWS: "For Auto Scaling actions, the alarm continues to invoke the action
        once per minute that the alarm remains in the new state." """
        last = self._last_scaling.get(alarm.arn)
        if last is not None and when - last < REPEAT_MIN_GAP:
            return
        for arn in alarm.actions_for(alarm.state_value):
            if ":autoscaling:" in arn:
                self._last_scaling[alarm.arn] = when
                self._actions.put(
                    AlarmAction(
                        alarm,
                        arn,
                        alarm.state_value,
                        alarm.state_value,
                        alarm.state_reason,
                        when,
                        value,
                        True,
                    )
                )

    def _run_actions(self) -> None:
        while True:
            action = self._actions.get()
            if action is None:
                return
            self._run_one(action)

    def run_queued(self) -> None:
        """Run what is queued now, in this thread (for tests driving `tick`)."""
        while True:
            try:
                action = self._actions.get_nowait()
            except queue.Empty:
                return
            if action is not None:
                self._run_one(action)

    def _run_one(self, action: AlarmAction) -> None:
        try:
            error = self.run_action(action)
        except Exception as e:
            log.exception("alarm %s: action %s crashed", action.alarm.name, action.arn)
            error = f"sandbox error: {e}"
        if error is None:
            self.actions_run += 1
        else:
            self.actions_failed += 1
        if action.repeat:
            return
        summary = (
            f"Successfully executed action {action.arn}"
            if error is None
            else f"Failed to execute action {action.arn}. Reason: {error}"
        )
        with self.sandbox.lock:
            self.sandbox.adapter.add_alarm_history(
                action.alarm.name,
                "Action",
                summary,
                {
                    "actionState": "Succeeded" if error is None else "Failed",
                    "stateUpdateTimestamp": int(action.when.timestamp() * 1000),
                    "notificationResource": action.arn,
                },
                self.sandbox.clock.utcnow(),
            )

    def run_action(self, action: AlarmAction) -> str | None:
        """Run one alarm action; None when it succeeded, else why it failed."""
        arn = action.arn
        if arn.startswith("arn:aws:sns:"):
            return self._publish(action)
        if arn.startswith("arn:aws:autoscaling:"):
            return self._scale(action)
        log.warning("alarm %s: action %s is not supported by the sandbox", action.alarm.name, arn)
        return "the sandbox runs only SNS and Auto Scaling policy actions"

    def _publish(self, action: AlarmAction) -> str | None:
        alarm = action.alarm
        region = self.sandbox.adapter.region
        message = json.dumps(self.notification(action))
        subject = f'{action.new_state}: "{alarm.name}" in {REGION_NAMES.get(region, region)}'
        with self.sandbox.lock:
            if not self.sandbox.adapter.topic_exists(action.arn):
                return f"topic {action.arn} does not exist"
            message_id = self.sandbox.adapter.publish(action.arn, message, subject[:100])
        log.info(
            "alarm %s %s -> %s: notification %s published to %s "
            "(AWS: an alarm notifies its SNS actions on a state change)",
            alarm.name,
            action.old_state,
            action.new_state,
            message_id,
            action.arn,
        )
        return None

    def notification(self, action: AlarmAction) -> dict[str, Any]:
        """The alarm's SNS message (aws-semantics.md §4.5, key order as AWS emits)."""
        a = action.alarm
        region = self.sandbox.adapter.region
        return {
            "AlarmName": a.name,
            "AlarmDescription": a.description or None,
            "AWSAccountId": self.sandbox.adapter.account_id,
            "AlarmConfigurationUpdatedTimestamp": rules.aws_timestamp(a.configuration_updated),
            "NewStateValue": action.new_state,
            "NewStateReason": action.reason,
            "StateChangeTime": rules.aws_timestamp(action.when),
            "Region": REGION_NAMES.get(region, region),
            "AlarmArn": a.arn,
            "OldStateValue": action.old_state,
            "OKActions": list(a.ok_actions),
            "AlarmActions": list(a.alarm_actions),
            "InsufficientDataActions": list(a.insufficient_data_actions),
            "Trigger": {
                "MetricName": a.metric_name,
                "Namespace": a.namespace,
                "StatisticType": "ExtendedStatistic" if a.extended_statistic else "Statistic",
                "Statistic": (a.extended_statistic or a.statistic or "").upper(),
                "Unit": a.unit,
                "Dimensions": [{"value": v, "name": n} for n, v in a.dimensions],
                "Period": a.period,
                "EvaluationPeriods": a.evaluation_periods,
                "DatapointsToAlarm": a.datapoints_to_alarm or a.evaluation_periods,
                "ComparisonOperator": a.comparison_operator,
                "Threshold": a.threshold,
                "TreatMissingData": a.treat_missing_data,
                "EvaluateLowSampleCountPercentile": "",
            },
        }

    def _scale(self, action: AlarmAction) -> str | None:
        execute = self._policy_executor or behaviour_method(
            self.sandbox, "autoscaling", "execute_policy"
        )
        if execute is None:
            log.warning(
                "alarm %s: no Auto Scaling behaviour to run %s", action.alarm.name, action.arn
            )
            return "Auto Scaling is not running in the sandbox"
        policy = action.arn.rsplit("policyName/", 1)[-1]
        # The activity's Cause reads "At <time> <this> changing the desired capacity ...".
        cause = (
            f"a monitor alarm {action.alarm.name} in state {action.new_state} "
            f"triggered policy {policy}"
        )
        try:
            execute(
                action.arn,
                metric_value=action.metric_value,
                breach_threshold=action.alarm.threshold,
                cause=cause,
            )
        except Exception as e:  # AWS records the failure in the alarm's history
            log.warning("alarm %s: policy %s failed: %s", action.alarm.name, action.arn, e)
            return str(e) or type(e).__name__
        if not action.repeat:
            log.info(
                "alarm %s in %s: ran scaling policy %s (AWS: alarm actions run on the "
                "transition, Auto Scaling actions again every minute in that state)",
                action.alarm.name,
                action.new_state,
                action.arn,
            )
        return None
