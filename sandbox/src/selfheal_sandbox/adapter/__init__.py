"""The one narrow adapter between the sandbox's behaviour and moto's internals.

Behaviour modules (instances.py, later health checks, autoscaling, alarms ...)
never import moto: they read moto's state through `MotoAdapter` and learn about
API calls through `MotoListener` events. This file is the only place that knows
which moto class and method stands for "an instance was launched" and so on.
(`moto_gaps.py` is the exception by design: it extends moto's own API layer.)

Rules that keep it correct:
* Backends are re-resolved on every call. `POST /moto-api/reset` clears moto's
  BackendDicts, so any backend or model object kept across calls goes stale.
* Hooks wrap moto methods at class level, once per process, and never let a
  sandbox error fail the AWS API call that triggered it (on AWS, too, an API call
  succeeds and the instance may still fail to boot).
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import AmiBackend
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.elbv2.models import elbv2_backends
from moto.moto_api._internal.models import MotoAPIBackend

from .autoscaling import AutoScalingAdapter
from .cloudwatch import CloudWatchAdapter
from .ec2 import Ec2AdapterMixin
from .elbv2 import Elbv2Adapter
from .sns import SnsAdapter
from .ssm import SsmAdapterMixin

log = logging.getLogger(__name__)

_HOOKS_ATTR = "__selfheal_hooks__"


def patch_method(cls: type, name: str, make_wrapper: Callable[[Callable], Callable]) -> None:
    """Replace `cls.name` by `make_wrapper(original)`, once per process and factory.

    Class level, so every backend moto creates (also after a reset) is covered.
    Several factories may wrap the same method (a gap fix and an event hook);
    each is applied once however often install code runs.
    """
    original = getattr(cls, name)
    key = f"{make_wrapper.__module__}.{make_wrapper.__qualname__}"
    applied: frozenset[str] = getattr(original, _HOOKS_ATTR, frozenset())
    if key in applied:
        return
    wrapper = make_wrapper(original)
    functools.update_wrapper(wrapper, original)
    setattr(wrapper, _HOOKS_ATTR, applied | {key})
    setattr(cls, name, wrapper)


# ----------------------------------------------------------------- read models


@dataclass(frozen=True)
class InstanceView:
    id: str
    state: str
    image_id: str


@dataclass(frozen=True)
class ListenerView:
    protocol: str
    port: int


@dataclass(frozen=True)
class LoadBalancerView:
    name: str
    arn: str
    dns_name: str
    state: str
    type: str
    listeners: tuple[ListenerView, ...]


@dataclass(frozen=True)
class LaunchedInstance:
    id: str
    image_id: str
    # Decoded user data; None when the instance has none.
    user_data: bytes | None


def decode_user_data(raw: object) -> bytes | None:
    """moto keeps user data base64-encoded (a Base64EncodedString, or a plain str
    when it came from a launch template or CloudFormation)."""
    if raw is None:
        return None
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        # Not base64 after all: keep what the caller gave rather than lose it.
        return str(raw).encode()


class MotoListener(Protocol):
    """What the sandbox can learn from moto. Called inside the API request, under
    the sandbox lock, so implementations must be quick and do no network I/O."""

    def instances_launched(self, instances: list[LaunchedInstance]) -> None: ...

    def instance_terminated(self, instance_id: str) -> None: ...

    def image_created(self, image_id: str, instance_id: str) -> None: ...

    def image_copied(self, image_id: str, source_image_id: str) -> None: ...

    def image_deregistered(self, image_id: str) -> None: ...

    def backends_reset(self) -> None: ...

    # Emitted once `install_instance_state_hooks()` ran (adapter/ec2.py).
    def instance_started(self, instance_id: str) -> None: ...

    def instance_stopped(self, instance_id: str) -> None: ...

    def instance_rebooted(self, instance_id: str) -> None: ...


class MotoAdapter(
    Ec2AdapterMixin,
    SsmAdapterMixin,
    CloudWatchAdapter,
    SnsAdapter,
    Elbv2Adapter,
    AutoScalingAdapter,
):
    """Reads moto's state for one account/region and forwards moto events."""

    def __init__(self, region: str, account_id: str = DEFAULT_ACCOUNT_ID) -> None:
        self.region = region
        self.account_id = account_id
        self._listeners: list[MotoListener] = []

    # -- backends (re-resolved on every call, see module docstring)

    def _ec2(self) -> Any:
        return ec2_backends[self.account_id][self.region]

    def _elbv2(self) -> Any:
        return elbv2_backends[self.account_id][self.region]

    # -- reads

    def instances(self) -> list[InstanceView]:
        return [InstanceView(i.id, i.state, i.image_id) for i in self._ec2().all_instances()]

    def load_balancers(self) -> list[LoadBalancerView]:
        return [
            LoadBalancerView(
                name=lb.name,
                arn=lb.arn,
                dns_name=lb.dns_name,
                state=lb.state,
                type=lb.type,
                listeners=tuple(
                    ListenerView(listener.protocol, int(listener.port))
                    for listener in list(lb.listeners.values())
                ),
            )
            for lb in list(self._elbv2().load_balancers.values())
        ]

    # -- events

    def subscribe(self, listener: MotoListener) -> None:
        self._listeners.append(listener)

    def _emit(self, event: str, *args: Any) -> None:
        for listener in self._listeners:
            handler = getattr(listener, event, None)
            if handler is None:  # a listener implements only the events it needs
                continue
            try:
                handler(*args)
            except Exception:
                log.exception(
                    "sandbox failed to handle %s%r; the AWS call itself succeeded", event, args
                )

    def install_hooks(self) -> None:
        """Wrap the moto methods that stand for the events of `MotoListener`.

        The wrappers are process-wide and report to this adapter's listeners: one
        adapter per process installs them (the server's `Sandbox` does).
        """
        emit = self._emit

        # Every launch path (RunInstances, Auto Scaling, fleets) ends in this call.
        def run_instances(original: Callable) -> Callable:
            def wrapper(backend: Any, *args: Any, **kwargs: Any) -> Any:
                reservation = original(backend, *args, **kwargs)
                launched = [
                    LaunchedInstance(i.id, i.image_id, decode_user_data(i.user_data))
                    for i in reservation.instances
                ]
                emit("instances_launched", launched)
                return reservation

            return wrapper

        # Instance.terminate is the one funnel: TerminateInstances, Auto Scaling
        # scale-in and replacement, CloudFormation deletes.
        def terminate(original: Callable) -> Callable:
            def wrapper(instance: Any) -> Any:
                previous = original(instance)
                if previous.name != "terminated":
                    emit("instance_terminated", instance.id)
                return previous

            return wrapper

        def create_image(original: Callable) -> Callable:
            def wrapper(backend: Any, instance_id: str, *args: Any, **kwargs: Any) -> Any:
                ami = original(backend, instance_id, *args, **kwargs)
                emit("image_created", ami.id, instance_id)
                return ami

            return wrapper

        def copy_image(original: Callable) -> Callable:
            def wrapper(backend: Any, source_image_id: str, *args: Any, **kwargs: Any) -> Any:
                ami = original(backend, source_image_id, *args, **kwargs)
                emit("image_copied", ami.id, source_image_id)
                return ami

            return wrapper

        def deregister_image(original: Callable) -> Callable:
            def wrapper(backend: Any, ami_id: str) -> Any:
                result = original(backend, ami_id)
                emit("image_deregistered", ami_id)
                return result

            return wrapper

        def reset(original: Callable) -> Callable:
            def wrapper(api_backend: Any) -> Any:
                result = original(api_backend)
                emit("backends_reset")
                return result

            return wrapper

        patch_method(InstanceBackend, "run_instances", run_instances)
        patch_method(Instance, "terminate", terminate)
        patch_method(AmiBackend, "create_image", create_image)
        patch_method(AmiBackend, "copy_image", copy_image)
        patch_method(AmiBackend, "deregister_image", deregister_image)
        patch_method(MotoAPIBackend, "reset", reset)
