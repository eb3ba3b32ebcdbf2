"""moto's CloudWatch, as the alarm evaluator sees it (mixin of `MotoAdapter`).

moto stores metrics and alarms but never evaluates an alarm, starts alarms in OK,
resets an alarm to OK when it is put again, runs no action and has no
DescribeAlarmHistory. This file reads and writes what the evaluator needs and
closes those gaps in moto's API layer; the AWS rules themselves live in
`alarm_evaluation.py` and `cloudwatch.py`.

Alarm history is kept on moto's CloudWatch backend object, so a moto reset clears
it and deleting an alarm does not (AWS keeps history after DeleteAlarms).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.autoscaling.models import autoscaling_backends
from moto.cloudwatch.models import CloudWatchBackend, MetricAggregatedDatum, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends

log = logging.getLogger(__name__)

_HISTORY_ATTR = "selfheal_alarm_history"
INITIAL_REASON = "Unchecked: Initial alarm creation"


@dataclass(frozen=True)
class AlarmView:
    """One metric alarm's configuration and state, copied out of moto."""

    name: str
    arn: str
    description: str | None
    namespace: str | None
    metric_name: str | None
    dimensions: tuple[tuple[str, str], ...]
    statistic: str | None
    extended_statistic: str | None
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int | None
    threshold: float
    comparison_operator: str
    treat_missing_data: str
    unit: str | None
    actions_enabled: bool
    alarm_actions: tuple[str, ...]
    ok_actions: tuple[str, ...]
    insufficient_data_actions: tuple[str, ...]
    state_value: str
    state_reason: str
    state_reason_data: str
    configuration_updated: datetime
    # False for metric-math and composite alarms, which the evaluator leaves alone.
    single_metric: bool

    def actions_for(self, state: str) -> tuple[str, ...]:
        return {
            "ALARM": self.alarm_actions,
            "OK": self.ok_actions,
            "INSUFFICIENT_DATA": self.insufficient_data_actions,
        }[state]


@dataclass(frozen=True)
class MetricSample:
    """One stored datum: a single value or a statistic set (PutMetricData StatisticValues)."""

    timestamp: datetime  # aware UTC
    sum: float
    count: float
    minimum: float
    maximum: float


def _aware(ts: datetime) -> datetime:
    """moto keeps timestamps as naive UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _history(backend: Any) -> list[dict[str, Any]]:
    if not hasattr(backend, _HISTORY_ATTR):
        setattr(backend, _HISTORY_ATTR, [])
    return getattr(backend, _HISTORY_ATTR)


def _view(alarm: Any) -> AlarmView:
    return AlarmView(
        name=alarm.name,
        arn=alarm.alarm_arn,
        description=alarm.description,
        namespace=alarm.namespace,
        metric_name=alarm.metric_name,
        dimensions=tuple((d.name, d.value) for d in alarm.dimensions),
        statistic=alarm.statistic,
        extended_statistic=alarm.extended_statistic,
        period=int(alarm.period or 60),
        evaluation_periods=int(alarm.evaluation_periods or 1),
        datapoints_to_alarm=int(alarm.datapoints_to_alarm) if alarm.datapoints_to_alarm else None,
        threshold=float(alarm.threshold if alarm.threshold is not None else 0.0),
        comparison_operator=alarm.comparison_operator,
        treat_missing_data=alarm.treat_missing_data or "missing",
        unit=alarm.unit,
        actions_enabled=bool(alarm.actions_enabled),
        alarm_actions=tuple(alarm.alarm_actions or ()),
        ok_actions=tuple(alarm.ok_actions or ()),
        insufficient_data_actions=tuple(alarm.insufficient_data_actions or ()),
        state_value=alarm.state_value,
        state_reason=alarm.state_reason,
        state_reason_data=alarm.state_reason_data or "{}",
        configuration_updated=_aware(alarm.configuration_updated_timestamp),
        single_metric=bool(alarm.metric_name) and not alarm.metric_data_queries and not alarm.rule,
    )


# Configuration fields compared when an alarm is put again (history says "updated"
# only when one of them changed, as the AWS console's history shows).
_CONFIG_FIELDS = (
    "description",
    "namespace",
    "metric_name",
    "dimensions",
    "statistic",
    "extended_statistic",
    "period",
    "evaluation_periods",
    "datapoints_to_alarm",
    "threshold",
    "comparison_operator",
    "treat_missing_data",
    "unit",
    "actions_enabled",
    "alarm_actions",
    "ok_actions",
    "insufficient_data_actions",
)


@dataclass(frozen=True)
class StateChange:
    """An alarm changed state through the SetAlarmState API."""

    alarm: AlarmView  # after the change
    old_state: str
    old_reason: str


class CloudWatchAdapter:
    """Mixed into `MotoAdapter` (which provides account_id and region)."""

    account_id: str
    region: str

    def _cloudwatch(self) -> Any:
        return cloudwatch_backends[self.account_id][self.region]

    # -- metrics

    def put_metric_data(self, namespace: str, datums: list[dict[str, Any]]) -> None:
        """PutMetricData through moto's backend (same validation as the API)."""
        data = [
            {**d, "Timestamp": _naive(d["Timestamp"])} if "Timestamp" in d else d for d in datums
        ]
        self._cloudwatch().put_metric_data(namespace, data)

    def metric_samples(
        self, alarm: AlarmView, start: datetime, end: datetime
    ) -> list[MetricSample]:
        """Stored datums of the alarm's metric in [start, end). AWS identifies a
        metric by namespace, name and the exact set of dimensions; a Unit on the
        alarm only matches data published with that unit."""
        namespace, metric_name, unit = alarm.namespace, alarm.metric_name, alarm.unit
        want = sorted(alarm.dimensions)
        lo, hi = _naive(start), _naive(end)
        found = []
        for md in list(self._cloudwatch().metric_data):
            if md.namespace != namespace or md.name != metric_name:
                continue
            if not lo <= md.timestamp < hi:
                continue
            if unit and md.unit != unit:
                continue
            if sorted((d.name, d.value) for d in md.dimensions) != want:
                continue
            if isinstance(md, MetricAggregatedDatum):
                found.append(
                    MetricSample(_aware(md.timestamp), md.sum, md.sample_count, md.min, md.max)
                )
            else:
                v = float(md.value)
                found.append(MetricSample(_aware(md.timestamp), v, 1.0, v, v))
        return found

    def autoscaling_group_of_instances(self) -> dict[str, str]:
        """instance id -> name of the Auto Scaling group it belongs to."""
        groups = autoscaling_backends[self.account_id][self.region].autoscaling_groups
        return {
            state.instance.id: group.name
            for group in list(groups.values())
            for state in list(group.instance_states)
        }

    def detailed_monitoring(self, instance_ids: list[str]) -> dict[str, bool]:
        """instance id -> detailed (1-minute) monitoring on? AWS: RunInstances
        Monitoring.Enabled, for Auto Scaling launches the launch template's
        Monitoring.Enabled (default off) or the launch configuration's
        InstanceMonitoring (default on). moto drops both for group launches."""
        ec2 = ec2_backends[self.account_id][self.region]
        groups = autoscaling_backends[self.account_id][self.region].autoscaling_groups
        group_of = {
            state.instance.id: group
            for group in list(groups.values())
            for state in list(group.instance_states)
        }
        found = {}
        for instance_id in instance_ids:
            try:
                instance = ec2.get_instance(instance_id)
            except Exception:  # gone meanwhile: basic, like an unknown instance
                found[instance_id] = False
                continue
            detailed = str(instance.monitoring_state).lower() in ("enabled", "pending")
            group = group_of.get(instance_id)
            if not detailed and group is not None:
                detailed = _group_launches_detailed(group)
            found[instance_id] = detailed
        return found

    def trim_metric_data(self, older_than: datetime, keep_at_most: int) -> int:
        """moto never prunes stored metrics; drop what no alarm can look at any more."""
        backend = self._cloudwatch()
        cutoff = _naive(older_than)
        kept = [md for md in backend.metric_data if md.timestamp >= cutoff][-keep_at_most:]
        dropped = len(backend.metric_data) - len(kept)
        if dropped:
            backend.metric_data = kept
        return dropped

    # -- alarms

    def alarms(self) -> list[AlarmView]:
        return [_view(a) for a in list(self._cloudwatch().alarms.values())]

    def alarm(self, name: str) -> AlarmView | None:
        alarm = self._cloudwatch().alarms.get(name)
        return _view(alarm) if alarm is not None else None

    def change_alarm_state(
        self, name: str, state: str, reason: str, reason_data: str, when: datetime
    ) -> AlarmView | None:
        """The evaluator's state change: moto's Alarm.update_state, timestamped in
        AWS time. Does not go through the SetAlarmState hook (no API event)."""
        alarm = self._cloudwatch().alarms.get(name)
        if alarm is None:
            return None
        alarm.update_state(reason, reason_data, state)
        alarm.state_updated_timestamp = _naive(when)
        return _view(alarm)

    def add_alarm_history(
        self, alarm_name: str, item_type: str, summary: str, data: dict[str, Any], when: datetime
    ) -> None:
        _history(self._cloudwatch()).append(
            {
                "AlarmName": alarm_name,
                "AlarmType": "MetricAlarm",
                "Timestamp": when,
                "HistoryItemType": item_type,
                "HistorySummary": summary,
                "HistoryData": json.dumps(data),
            }
        )

    def alarm_history(self) -> list[dict[str, Any]]:
        return list(_history(self._cloudwatch()))

    # -- hooks

    def install_cloudwatch_hooks(
        self,
        now: Callable[[], datetime],
        state_set: Callable[[StateChange], None],
    ) -> None:
        """Close moto's alarm gaps (process-wide, class level):

        * PutMetricAlarm: a new alarm starts INSUFFICIENT_DATA; putting an existing
          alarm again keeps its state (AWS: "its state is left unchanged, but the
          update completely overwrites the previous configuration"). Both are
          recorded as ConfigurationUpdate history items.
        * SetAlarmState: recorded as a StateUpdate and reported to `state_set`
          (which runs the actions, as AWS does when the state differs).
        * DescribeAlarmHistory: served from the history kept here.
        * PutMetricData without Timestamp: stamped with the sandbox's AWS time (AWS:
          the time the data was received), so alarm periods line up at any time scale.
        """

        def put_metric_alarm(original: Callable) -> Callable:
            def wrapper(backend: Any, *args: Any, **kwargs: Any) -> Any:
                name = kwargs["name"] if "name" in kwargs else args[0]
                before = backend.alarms.get(name)
                alarm = original(backend, *args, **kwargs)
                when = now()
                alarm.configuration_updated_timestamp = _naive(when)
                if before is None:
                    alarm.state_value = "INSUFFICIENT_DATA"
                    alarm.state_reason = INITIAL_REASON
                    alarm.state_reason_data = None
                    alarm.state_updated_timestamp = _naive(when)
                    _record_config(backend, alarm, "created", when)
                    return alarm
                alarm.state_value = before.state_value
                alarm.state_reason = before.state_reason
                alarm.state_reason_data = before.state_reason_data
                alarm.state_updated_timestamp = before.state_updated_timestamp
                alarm.history = before.history
                old, new = _view(before), _view(alarm)
                if any(getattr(old, f) != getattr(new, f) for f in _CONFIG_FIELDS):
                    _record_config(backend, alarm, "updated", when)
                else:
                    alarm.configuration_updated_timestamp = before.configuration_updated_timestamp
                return alarm

            return wrapper

        def put_metric_data(original: Callable) -> Callable:
            def wrapper(backend: Any, namespace: str, metric_data: list[dict[str, Any]]) -> Any:
                received = _naive(now())
                stamped = [
                    d if d.get("Timestamp") else {**d, "Timestamp": received} for d in metric_data
                ]
                return original(backend, namespace, stamped)

            return wrapper

        def set_alarm_state(original: Callable) -> Callable:
            def wrapper(
                backend: Any, alarm_name: str, reason: str, reason_data: str, state_value: str
            ) -> None:
                before = backend.alarms.get(alarm_name)
                old_state = before.state_value if before is not None else ""
                old_reason = before.state_reason if before is not None else ""
                original(backend, alarm_name, reason, reason_data, state_value)
                alarm = backend.alarms[alarm_name]
                alarm.state_updated_timestamp = _naive(now())
                if old_state == state_value:
                    return
                try:
                    state_set(StateChange(_view(alarm), old_state, old_reason))
                except Exception:
                    log.exception("alarm %s: SetAlarmState follow-up failed", alarm_name)

            return wrapper

        from . import patch_method  # noqa: PLC0415 - the package imports this module

        patch_method(CloudWatchBackend, "put_metric_alarm", put_metric_alarm)
        patch_method(CloudWatchBackend, "set_alarm_state", set_alarm_state)
        patch_method(CloudWatchBackend, "put_metric_data", put_metric_data)
        # moto 5.2.5 has no handler at all (HTTP 500 NotImplementedError).
        CloudWatchResponse.describe_alarm_history = _describe_alarm_history  # type: ignore[attr-defined]


def _describe_alarm_history(response: Any) -> ActionResult:
    name = response._get_param("AlarmName")
    kind = response._get_param("HistoryItemType")
    start = response._get_param("StartDate")
    end = response._get_param("EndDate")
    limit = int(response._get_param("MaxRecords") or 100)
    oldest_first = response._get_param("ScanBy") == "TimestampAscending"
    items = [
        i
        for i in _history(response.cloudwatch_backend)
        if (not name or i["AlarmName"] == name)
        and (not kind or i["HistoryItemType"] == kind)
        and (start is None or i["Timestamp"] >= _aware(start))
        and (end is None or i["Timestamp"] <= _aware(end))
    ]
    items.sort(key=lambda i: i["Timestamp"], reverse=not oldest_first)
    return ActionResult({"AlarmHistoryItems": items[:limit]})


def _group_launches_detailed(group: Any) -> bool:
    if group.ec2_launch_template is not None:
        version = group.ec2_launch_template.get_version(group.launch_template_version)
        monitoring = version.data.get("Monitoring") or {}
        return str(monitoring.get("Enabled", False)).lower() == "true"
    # CreateLaunchConfiguration: InstanceMonitoring defaults to enabled on AWS. moto
    # stores False when it was not given, so an explicit False cannot be told apart:
    # the AWS default is assumed (known gap: kinder than AWS for that one case).
    return True


def _record_config(backend: Any, alarm: Any, verb: str, when: datetime) -> None:
    view = _view(alarm)
    _history(backend).append(
        {
            "AlarmName": alarm.name,
            "AlarmType": "MetricAlarm",
            "Timestamp": when,
            "HistoryItemType": "ConfigurationUpdate",
            "HistorySummary": f'Alarm "{alarm.name}" {verb}',
            "HistoryData": json.dumps(
                {
                    "version": "1.0",
                    "type": "Create" if verb == "created" else "Update",
                    "updatedAlarm": {
                        "alarmName": view.name,
                        "alarmArn": view.arn,
                        "namespace": view.namespace,
                        "metricName": view.metric_name,
                        "dimensions": [{"name": n, "value": v} for n, v in view.dimensions],
                        "statistic": view.statistic,
                        "period": view.period,
                        "evaluationPeriods": view.evaluation_periods,
                        "datapointsToAlarm": view.datapoints_to_alarm,
                        "threshold": view.threshold,
                        "comparisonOperator": view.comparison_operator,
                        "treatMissingData": view.treat_missing_data,
                        "actionsEnabled": view.actions_enabled,
                        "alarmActions": list(view.alarm_actions),
                        "okActions": list(view.ok_actions),
                        "insufficientDataActions": list(view.insufficient_data_actions),
                    },
                }
            ),
        }
    )
