"""moto access for the EC2 instance runtime (`ec2_runtime.py`).

Reads what an instance needs to boot (private IP, AZ, type) and reports the
instance state changes moto has no event for: StartInstances, StopInstances and
RebootInstances each end in one `Instance` method, wrapped here at class level.
Launch and terminate events come from `MotoAdapter.install_hooks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.ec2.models.instances import Instance
from moto.ec2.responses.general import General
from moto.ec2.utils import Base64EncodedString

# moto's running state; anything else is not running.
RUNNING = "running"
TERMINATED = "terminated"


@dataclass(frozen=True)
class InstanceDetails:
    id: str
    state: str
    private_ip: str | None
    availability_zone: str
    instance_type: str


class Ec2AdapterMixin:
    """Mixed into `MotoAdapter` (which provides `_ec2()` and `_emit()`)."""

    _ec2: Callable[[], Any]
    _emit: Callable[..., None]

    def instance_details(self, instance_id: str) -> InstanceDetails | None:
        """Call under the sandbox lock. None for an id moto does not know."""
        instance = next((i for i in self._ec2().all_instances() if i.id == instance_id), None)
        if instance is None:
            return None
        return InstanceDetails(
            id=instance.id,
            state=instance.state,
            private_ip=instance.private_ip,
            availability_zone=instance.placement.zone,
            instance_type=instance.instance_type,
        )

    def install_instance_state_hooks(self) -> None:
        """Emit `instance_started`, `instance_stopped`, `instance_rebooted` (instance id)
        when moto changes a known instance's state; once per process."""
        from . import patch_method  # noqa: PLC0415 - the package imports this module

        emit = self._emit

        def start(original: Callable) -> Callable:
            def wrapper(instance: Any) -> Any:
                previous = original(instance)
                if previous.name != RUNNING:
                    emit("instance_started", instance.id)
                return previous

            return wrapper

        def stop(original: Callable) -> Callable:
            def wrapper(instance: Any) -> Any:
                previous = original(instance)
                if previous.name == RUNNING:
                    emit("instance_stopped", instance.id)
                return previous

            return wrapper

        def reboot(original: Callable) -> Callable:
            def wrapper(instance: Any) -> Any:
                if instance.state == TERMINATED:
                    # moto turns it back to running; AWS: "Requests to reboot
                    # terminated instances are ignored."
                    return None
                was_running = instance.state == RUNNING
                result = original(instance)
                # moto also "reboots" a stopped instance into running: treat that as a
                # start, so the sandbox never shows a running instance that never booted.
                emit("instance_rebooted" if was_running else "instance_started", instance.id)
                return result

            return wrapper

        patch_method(Instance, "start", start)
        patch_method(Instance, "stop", stop)
        patch_method(Instance, "reboot", reboot)

    def install_console_output(self, console: Callable[[str], str | None]) -> None:
        """GetConsoleOutput answers `console(instance_id)` (moto: a canned 2006 Xen
        boot log) when it has text; once per process."""
        from . import patch_method  # noqa: PLC0415 - the package imports this module

        def get_console_output(original: Callable) -> Callable:
            def wrapper(response: Any) -> Any:
                result = original(response)  # validates the instance id
                text = console(result.result["InstanceId"])
                if text is not None:
                    result.result["Output"] = Base64EncodedString.from_raw_string(text)
                return result

            return wrapper

        patch_method(General, "get_console_output", get_console_output)
