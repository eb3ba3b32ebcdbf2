"""moto access for SSM Run Command (`ssm.py` runs the commands).

moto 5.2.5's SendCommand runs nothing: it records a canned "Success" with empty
output for every instance, and without Targets it targets every instance in the
region (moto-internals.md §7). ListCommandInvocations is not implemented. Here:

* SendCommand validates the named instances (AWS: InvalidInstanceId unless the
  instance is a managed node in a valid state), resolves Targets (InstanceIds,
  tag:<key>, tag-key) to the managed instances they name and nothing else, records
  Pending invocations and hands AWS-RunShellScript commands to the agent;
* the agent reports progress through `ssm_update_invocation` (under the lock);
* ListCommandInvocations answers from the same invocation records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from moto.core.responses import ActionResult
from moto.ssm.exceptions import SSMException
from moto.ssm.models import Command, SimpleSystemManagerBackend, ssm_backends
from moto.ssm.responses import SimpleSystemManagerResponse

RUN_SHELL_SCRIPT = "AWS-RunShellScript"
PLUGIN_NAME = "aws:runShellScript"
# AWS-RunShellScript's executionTimeout parameter: default 3600, allowed 1..172800.
DEFAULT_EXECUTION_TIMEOUT = 3600
MAX_EXECUTION_TIMEOUT = 172800
# ListCommandInvocations (Details) shows the first 2,500 characters of a plugin's output.
LIST_OUTPUT_LIMIT = 2500
TERMINAL = ("Success", "Failed", "TimedOut", "Cancelled")
ERRORS = ("Failed", "TimedOut")


class InvalidInstanceId(SSMException):
    def __init__(self, instance_ids: Iterable[str]) -> None:
        super().__init__(
            "InvalidInstanceId",
            f"Instances {sorted(instance_ids)} not in a valid state for SSM: not a running "
            "managed node (terminated, stopped, unknown, or its SSM agent has not "
            "registered yet because the instance is still booting)",
        )


class InvalidParameters(SSMException):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidParameters", message)


@dataclass(frozen=True)
class SentCommand:
    command_id: str
    instance_ids: tuple[str, ...]
    commands: tuple[str, ...]
    execution_timeout_aws_s: int
    # As given (an absolute path on the instance), "" for the default.
    working_directory: str


class SsmAgent(Protocol):
    """The sandbox side of Run Command (ssm.py). Called inside the API request,
    under the sandbox lock: quick, no process or network I/O."""

    def managed_instances(self) -> set[str]: ...

    def now(self) -> datetime:
        """AWS time (the sandbox clock), for the command's timestamps."""
        ...

    def command_sent(self, command: SentCommand) -> None: ...


def _parameter(parameters: dict[str, Any], name: str) -> list[str]:
    value = parameters.get(name) or []
    return [value] if isinstance(value, str) else list(value)


def _execution_timeout(parameters: dict[str, Any]) -> int:
    raw = _parameter(parameters, "executionTimeout")
    if not raw or raw[0] == "":
        return DEFAULT_EXECUTION_TIMEOUT
    try:
        value = int(raw[0])
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_EXECUTION_TIMEOUT:
        raise InvalidParameters(
            f"executionTimeout={raw[0]!r}: must be a whole number of seconds "
            f"from 1 to {MAX_EXECUTION_TIMEOUT}"
        )
    return value


def _recompute_command(command: Any) -> None:
    statuses = [inv["Status"] for inv in command.invocations]
    command.target_count = len(statuses)
    command.completed_count = sum(s in TERMINAL for s in statuses)
    command.error_count = sum(s in ERRORS for s in statuses)
    if not statuses:
        return  # nothing targeted: moto's "Success" stands
    if not all(s in TERMINAL for s in statuses):
        started = any(s != "Pending" for s in statuses)
        command.status = command.status_details = "InProgress" if started else "Pending"
    elif "Failed" in statuses:
        command.status = command.status_details = "Failed"
    elif "TimedOut" in statuses:
        command.status, command.status_details = "TimedOut", "ExecutionTimedOut"
    else:
        command.status = command.status_details = "Success"


def _plugin(inv: dict[str, Any]) -> dict[str, Any]:
    output = inv.get("StandardOutputContent", "")
    if inv.get("StandardErrorContent"):
        # The agent appends stderr after this marker in the plugin output.
        output += "\n----------ERROR-------\n" + inv["StandardErrorContent"]
    plugin: dict[str, Any] = {
        "Name": inv["PluginName"],
        "Status": inv["Status"],
        "StatusDetails": inv["StatusDetails"],
        "ResponseCode": inv["ResponseCode"],
        "Output": output[:LIST_OUTPUT_LIMIT],
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
    }
    for key, field in (("ResponseStartDateTime", "_started"), ("ResponseFinishDateTime", "_ended")):
        if isinstance(inv.get(field), datetime):
            plugin[key] = inv[field]
    return plugin


def _list_command_invocations(response: Any) -> ActionResult:
    """ListCommandInvocations (missing in moto 5.2.5), from the invocation records."""
    command_id = response._get_param("CommandId")
    instance_id = response._get_param("InstanceId")
    details = response._get_bool_param("Details", False)
    backend = ssm_backends[response.current_account][response.region]
    items = []
    for command in backend.list_commands(command_id, None):
        for inv in command.invocations:
            if instance_id and inv["InstanceId"] != instance_id:
                continue
            items.append(
                {
                    "CommandId": command.command_id,
                    "InstanceId": inv["InstanceId"],
                    "InstanceName": "",
                    "Comment": command.comment,
                    "DocumentName": command.document_name,
                    "DocumentVersion": "$DEFAULT",
                    "RequestedDateTime": command.requested_date_time,
                    "Status": inv["Status"],
                    "StatusDetails": inv["StatusDetails"],
                    "TraceOutput": "",
                    "StandardOutputUrl": "",
                    "StandardErrorUrl": "",
                    "CommandPlugins": [_plugin(inv)] if details else [],
                    "ServiceRole": command.service_role_arn,
                    "NotificationConfig": command.notification_config,
                }
            )
    return ActionResult({"CommandInvocations": items})


class SsmAdapterMixin:
    """Mixed into `MotoAdapter` (which provides `account_id`, `region`, `_ec2()`)."""

    account_id: str
    region: str
    _ec2: Callable[[], Any]

    def _ssm(self) -> Any:
        return ssm_backends[self.account_id][self.region]

    def install_ssm_run_command(self, agent: SsmAgent) -> None:
        """Route SendCommand to `agent`; once per process."""
        from . import patch_method  # noqa: PLC0415 - the package imports this module

        adapter = self

        def targets_to_instances(original: Callable) -> Callable:
            def wrapper(command: Any) -> list[str]:
                return adapter._instances_targeted(command.targets)

            return wrapper

        def send_command(original: Callable) -> Callable:
            def wrapper(backend: Any, **kwargs: Any) -> Any:
                managed = agent.managed_instances()
                unmanaged = [i for i in kwargs.get("instance_ids") or [] if i not in managed]
                if unmanaged:
                    raise InvalidInstanceId(unmanaged)
                runs = kwargs.get("document_name") == RUN_SHELL_SCRIPT
                parameters = kwargs.get("parameters") or {}
                if runs:
                    timeout = _execution_timeout(parameters)
                    commands = _parameter(parameters, "commands")
                    if not commands:
                        raise InvalidParameters("commands: at least one command is required")
                command = original(backend, **kwargs)
                command.requested_date_time = agent.now()
                command.expires_after = command.requested_date_time + timedelta(
                    seconds=command.timeout_seconds
                )
                # Targets name candidates; only managed nodes are sent the command.
                command.instance_ids = sorted(i for i in command.instance_ids if i in managed)
                command.invocations = [
                    inv for inv in command.invocations if inv["InstanceId"] in command.instance_ids
                ]
                if not runs:
                    _recompute_command(command)
                    return command
                for inv in command.invocations:
                    inv.update(
                        Status="Pending",
                        StatusDetails="Pending",
                        ResponseCode=-1,
                        ExecutionStartDateTime="",
                        ExecutionEndDateTime="",
                        ExecutionElapsedTime="",
                    )
                _recompute_command(command)
                agent.command_sent(
                    SentCommand(
                        command_id=command.command_id,
                        instance_ids=tuple(command.instance_ids),
                        commands=tuple(commands),
                        execution_timeout_aws_s=timeout,
                        working_directory=(_parameter(parameters, "workingDirectory") or [""])[0],
                    )
                )
                return command

            return wrapper

        patch_method(Command, "_get_instance_ids_from_targets", targets_to_instances)
        patch_method(SimpleSystemManagerBackend, "send_command", send_command)
        if not hasattr(SimpleSystemManagerResponse, "list_command_invocations"):
            SimpleSystemManagerResponse.list_command_invocations = _list_command_invocations

    def _instances_targeted(self, targets: list[dict[str, Any]]) -> list[str]:
        """AWS Targets: Key InstanceIds, tag:<key> or tag-key; several keys all apply."""
        if not targets:
            return []  # moto: every instance in the region
        ids: set[str] | None = None
        for target in targets:
            key, values = target.get("Key", ""), target.get("Values", [])
            if key == "InstanceIds":
                found = set(values)
            elif key.startswith("tag:") or key == "tag-key":
                reservations = self._ec2().all_reservations(filters={key: values})
                found = {i.id for r in reservations for i in r.instances}
            else:
                raise InvalidParameters(
                    f"Targets Key={key!r}: the sandbox supports InstanceIds, tag:<key>, tag-key"
                )
            ids = found if ids is None else ids & found
        return sorted(ids or ())

    def ssm_update_invocation(self, command_id: str, instance_id: str, **fields: Any) -> None:
        """Call under the sandbox lock. A command gone with a moto reset is ignored."""
        command = next(
            (c for c in self._ssm().list_commands(None, None) if c.command_id == command_id), None
        )
        if command is None:
            return
        for inv in command.invocations:
            if inv["InstanceId"] == instance_id:
                inv.update(fields)
        _recompute_command(command)
