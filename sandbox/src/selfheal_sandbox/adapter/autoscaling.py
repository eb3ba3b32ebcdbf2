"""moto access for the Auto Scaling behaviour: reads, the few writes it makes, and
the patches that hand moto's Auto Scaling decisions to the sandbox.

moto 5.2.5 launches every instance of a group in its first subnet, puts them
InService at once, ignores min/max, terminates scale-in victims without
deregistering them, replaces an instance terminated through EC2 without
registering the replacement, and records no activities (moto-internals.md §3).
Here `FakeAutoScalingGroup.set_desired_capacity` and the terminate paths call
the behaviour's `AutoScalingHooks` instead; the behaviour decides (AZ, victims,
timing) and asks this adapter for the moto-level operations.

Group objects handed to the behaviour are opaque references (`GroupRef`): it
passes them back, it never reads them.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import (
    ASG_NAME_TAG,
    AutoScalingBackend,
    FakeAutoScalingGroup,
    InstanceState,
    autoscaling_backends,
)
from moto.autoscaling.responses import AutoScalingResponse
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.responses import ActionResult, EmptyResult
from moto.sns.exceptions import TopicNotFound
from moto.sns.models import sns_backends

log = logging.getLogger(__name__)

GroupRef = Any  # a moto FakeAutoScalingGroup, opaque to the behaviour

# Lifecycle states that count toward desired capacity (AWS counts Pending ones).
COUNTED = frozenset({"Pending", "InService"})

# Why the desired capacity changes, set by the API wrappers around the moto call
# so that the launch/terminate activities can say it as AWS does.
desired_reason: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "selfheal_desired_reason", default=None
)


class Refusal(Exception):
    """Raised by the behaviour where AWS answers ValidationError; the message is AWS's."""


@contextmanager
def refusals_as_validation_errors() -> Iterator[None]:
    try:
        yield
    except Refusal as e:
        raise ValidationError(str(e)) from None


@contextmanager
def reason(text: str | None) -> Iterator[None]:
    token = desired_reason.set(text)
    try:
        yield
    finally:
        desired_reason.reset(token)


@dataclass(frozen=True)
class AsgInstance:
    id: str
    az: str
    subnet_id: str | None
    lifecycle: str
    health: str
    protected: bool
    ec2_state: str
    launch_time: datetime  # naive UTC, as moto keeps it
    # Launch template version the instance came from (None: launch configuration).
    template_version: int | None


@dataclass(frozen=True)
class AsgGroup:
    name: str
    arn: str
    min_size: int
    max_size: int
    desired: int
    health_check_type: str
    grace_period: int
    default_cooldown: int
    default_instance_warmup: int | None
    termination_policies: tuple[str, ...]
    target_group_arns: tuple[str, ...]
    # (subnet_id or None, az) in the order the group lists them.
    zones: tuple[tuple[str | None, str], ...]
    instances: tuple[AsgInstance, ...]
    suspended: frozenset[str]


@dataclass(frozen=True)
class AsgPolicy:
    name: str
    arn: str
    group_name: str
    policy_type: str
    adjustment_type: str | None
    scaling_adjustment: int | None
    min_adjustment_magnitude: int | None
    cooldown: int | None
    step_adjustments: tuple[dict[str, Any], ...]
    estimated_instance_warmup: int | None
    target_tracking: dict[str, Any] | None


class AutoScalingHooks(Protocol):
    """The decisions moto leaves to the sandbox. Called under the sandbox lock,
    inside the API request (or the behaviour's own tick)."""

    def desired_capacity_set(self, group: GroupRef, old: int | None) -> None: ...

    def terminate_requested(self, instance_id: str, decrement: bool) -> Any: ...

    def group_deleting(self, group: GroupRef) -> None: ...

    def instance_health_set(self, instance_id: str, status: str, respect_grace: bool) -> None: ...

    def scaling_activities(self, group_name: str | None, ids: list[str]) -> list[Any]: ...

    def policy_put(self, policy_name: str, group_name: str) -> list[dict[str, str]]: ...

    def policy_deleting(self, policy_name: str, group_name: str | None) -> None: ...

    def policy_executed_by_api(
        self,
        policy: str,
        group_name: str | None,
        honor_cooldown: bool,
        metric_value: float | None,
        breach_threshold: float | None,
    ) -> None: ...

    def notification_configuration_put(self, group_name: str, topic_arn: str) -> None: ...


def _int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _instance_view(group: Any, state: Any) -> AsgInstance:
    inst = state.instance
    version = next(
        (t["value"] for t in inst.get_tags() if t["key"] == "aws:ec2launchtemplate:version"),
        None,
    )
    return AsgInstance(
        id=inst.id,
        az=inst.placement.zone,
        subnet_id=getattr(inst, "subnet_id", None),
        lifecycle=state.lifecycle_state,
        health=state.health_status,
        protected=bool(state.protected_from_scale_in),
        ec2_state=inst.state,
        launch_time=inst.launch_time,
        template_version=int(version) if version and str(version).isdigit() else None,
    )


class AutoScalingAdapter:
    """Mixin of `MotoAdapter` (uses its `account_id`, `region`, `_ec2`, `_elbv2`)."""

    account_id: str
    region: str
    _ec2: Callable[[], Any]
    _elbv2: Callable[[], Any]

    def _autoscaling(self) -> Any:
        return autoscaling_backends[self.account_id][self.region]

    # ------------------------------------------------------------------ reads

    def asg_refs(self) -> list[GroupRef]:
        return list(self._autoscaling().autoscaling_groups.values())

    def asg_ref_of_instance(self, instance_id: str) -> GroupRef | None:
        for group in self.asg_refs():
            if any(s.instance.id == instance_id for s in group.instance_states):
                return group
        return None

    def asg_ref(self, name: str) -> GroupRef | None:
        return self._autoscaling().autoscaling_groups.get(name)

    def asg_view(self, group: GroupRef) -> AsgGroup:
        zones: list[tuple[str | None, str]] = []
        if group.vpc_zone_identifier:
            for subnet_id in group.vpc_zone_identifier.split(","):
                subnet = self._ec2().get_subnet(subnet_id.strip())
                zones.append((subnet.id, subnet.availability_zone))
        else:
            zones = [(None, az) for az in group.availability_zones]
        warmup = getattr(group, "default_instance_warmup", None)
        return AsgGroup(
            name=group.name,
            arn=group.arn,
            min_size=int(group.min_size or 0),
            max_size=int(group.max_size or 0),
            desired=int(group.desired_capacity or 0),
            health_check_type=group.health_check_type or "EC2",
            grace_period=int(group.health_check_grace_period or 0),
            default_cooldown=int(group.default_cooldown or 300),
            default_instance_warmup=_int(warmup),
            termination_policies=tuple(group.termination_policies or ["Default"]),
            target_group_arns=tuple(group.target_group_arns or ()),
            zones=tuple(zones),
            instances=tuple(_instance_view(group, s) for s in group.instance_states),
            suspended=frozenset(p["ProcessName"] for p in group.suspended_processes),
        )

    def asg_notification_topics(self, group: GroupRef) -> dict[str, list[str]]:
        # Stored by moto_gaps (PutNotificationConfiguration) on the group object.
        return dict(getattr(group, "_selfheal_notification_configurations", {}) or {})

    def asg_policies(self, group_name: str | None = None) -> list[AsgPolicy]:
        return [
            AsgPolicy(
                name=p.name,
                arn=p.arn,
                group_name=p.auto_scaling_group_name,
                policy_type=p.policy_type or "SimpleScaling",
                adjustment_type=p.adjustment_type,
                scaling_adjustment=_int(p.scaling_adjustment),
                min_adjustment_magnitude=_int(p.min_adjustment_magnitude),
                cooldown=_int(p.cooldown),
                step_adjustments=tuple(p.step_adjustments or ()),
                estimated_instance_warmup=_int(p.estimated_instance_warmup),
                target_tracking=(
                    dict(vars(p.target_tracking_configuration))
                    if p.target_tracking_configuration is not None
                    else None
                ),
            )
            for p in list(self._autoscaling().policies.values())
            if group_name is None or p.auto_scaling_group_name == group_name
        ]

    def asg_set_policy_alarms(self, policy_name: str, alarms: list[dict[str, str]]) -> None:
        policy = self._autoscaling().policies.get(policy_name)
        if policy is not None:
            # DescribePolicies picks `alarms` off the object like any other member.
            policy.alarms = alarms

    def asg_deregistration_delay(self, tg_arn: str) -> float:
        tg = self._elbv2().target_groups.get(tg_arn)
        if tg is None:
            return 0.0
        return float(tg.attributes.get("deregistration_delay.timeout_seconds", 300))

    def asg_target_registered(self, tg_arn: str, instance_id: str) -> bool:
        tg = self._elbv2().target_groups.get(tg_arn)
        return tg is not None and instance_id in tg.targets

    # ------------------------------------------------------------------ writes

    def asg_launch(self, group: GroupRef, subnet_id: str | None, az: str) -> str:
        """One instance for the group in the given subnet/AZ, lifecycle Pending.
        (moto's replace_autoscaling_group_instances, minus its first-subnet rule.)"""
        tags = group.get_propagated_tags()
        tags[ASG_NAME_TAG] = group.name
        tags.update(group.instance_tags)
        launch_template = None
        if group.ec2_launch_template:
            launch_template = {"LaunchTemplateId": group.ec2_launch_template.id}
        reservation = group.autoscaling_backend.ec2_backend.run_instances(
            group.image_id,
            1,
            group.user_data,
            group.security_groups,
            instance_type=group.instance_type,
            tags={"instance": tags},
            placement=az,
            launch_config=group.launch_config,
            launch_template=launch_template,
            is_instance_type_default=False,
            associate_public_ip=(
                group.launch_config.associate_public_ip_address if group.launch_config else None
            ),
            subnet_id=subnet_id,
        )
        [instance] = reservation.instances
        instance.autoscaling_group = group
        group.instance_states.append(
            InstanceState(
                instance,
                lifecycle_state="Pending",
                protected_from_scale_in=group.new_instances_protected_from_scale_in,
            )
        )
        return instance.id

    def _state(self, group: GroupRef, instance_id: str) -> Any:
        return next((s for s in group.instance_states if s.instance.id == instance_id), None)

    def asg_set_lifecycle(self, group: GroupRef, instance_id: str, lifecycle: str) -> None:
        state = self._state(group, instance_id)
        if state is not None:
            state.lifecycle_state = lifecycle

    def asg_set_health(self, group: GroupRef, instance_id: str, health: str) -> None:
        state = self._state(group, instance_id)
        if state is not None:
            state.health_status = health

    def asg_register(self, group: GroupRef, instance_id: str) -> None:
        """Register with every attached target group (AWS: before InService)."""
        elbv2 = self._elbv2()
        for arn in group.target_group_arns:
            tg = elbv2.target_groups.get(arn)
            if tg is not None and instance_id not in tg.targets:
                elbv2.register_targets(arn, [{"Id": instance_id, "Port": tg.port}])

    def asg_deregister(self, group: GroupRef, instance_id: str) -> list[str]:
        """Deregister from the attached target groups; returns those it was in."""
        elbv2 = self._elbv2()
        left = []
        for arn in group.target_group_arns:
            tg = elbv2.target_groups.get(arn)
            if tg is not None and instance_id in tg.targets:
                elbv2.deregister_targets(arn, [{"Id": instance_id}])
                left.append(arn)
        return left

    def asg_terminate_ec2(self, instance_id: str) -> None:
        ec2 = self._ec2()
        try:
            if ec2.get_instance(instance_id).state != "terminated":
                ec2.terminate_instances([instance_id])
        except Exception:  # already gone from moto (e.g. after a reset)
            log.debug("instance %s already gone", instance_id)

    def asg_forget(self, group: GroupRef, instance_id: str) -> None:
        group.instance_states = [s for s in group.instance_states if s.instance.id != instance_id]

    def asg_set_desired_raw(self, group: GroupRef, desired: int) -> None:
        group.desired_capacity = desired

    def asg_execute_set_desired(self, group: GroupRef, desired: int, why: str) -> None:
        with reason(why):
            group.set_desired_capacity(desired)

    # -- CloudWatch alarms of target tracking policies

    def asg_put_alarm(self, **kwargs: Any) -> str:
        alarm = cloudwatch_backends[self.account_id][self.region].put_metric_alarm(**kwargs)
        return alarm.alarm_arn

    def asg_delete_alarms(self, names: list[str]) -> None:
        cloudwatch_backends[self.account_id][self.region].delete_alarms(names)

    # -- SNS

    def asg_publish(self, topic_arn: str, subject: str, message: str) -> bool:
        """Publish a group notification; False when the topic no longer exists."""
        region = topic_arn.split(":")[3]
        try:
            sns_backends[self.account_id][region].publish(message, arn=topic_arn, subject=subject)
        except TopicNotFound:
            return False
        return True

    # ------------------------------------------------------------------ patches

    def install_autoscaling_hooks(self, hooks: AutoScalingHooks) -> None:
        """Class-level, once per process: moto's Auto Scaling decisions go to `hooks`."""
        from . import patch_method  # noqa: PLC0415 - the package imports this module

        def set_desired_capacity(_original: Callable) -> Callable:
            def wrapper(group: Any, new_capacity: int | None) -> None:
                old = getattr(group, "desired_capacity", None)
                group.desired_capacity = group.min_size if new_capacity is None else new_capacity
                hooks.desired_capacity_set(group, old)

            return wrapper

        def update_attached_target_groups(_original: Callable) -> Callable:
            # moto registers every instance of the group, Terminating ones included;
            # AWS registers an instance before it goes InService and never again after.
            def wrapper(backend: Any, group_name: str) -> None:
                group = backend.autoscaling_groups[group_name]
                for state in group.instance_states:
                    if state.lifecycle_state == "InService" and state.instance.state == "running":
                        self.asg_register(group, state.instance.id)

            return wrapper

        def notify_terminate_instances(_original: Callable) -> Callable:
            # EC2 TerminateInstances on a member: moto replaces it at once (and does
            # not register the replacement). AWS finds it on its next EC2 health
            # check; the behaviour's reconciler does that.
            def wrapper(backend: Any, instance_ids: list[str]) -> None:
                return None

            return wrapper

        def terminate_instance(_original: Callable) -> Callable:
            def wrapper(backend: Any, instance_id: str, should_decrement: bool) -> Any:
                with refusals_as_validation_errors():
                    return hooks.terminate_requested(instance_id, should_decrement)

            return wrapper

        def delete_group(original: Callable) -> Callable:
            def wrapper(backend: Any, group_name: str) -> None:
                group = backend.autoscaling_groups.get(group_name)
                if group is not None:
                    hooks.group_deleting(group)
                original(backend, group_name)

            return wrapper

        def delete_policy(original: Callable) -> Callable:
            def wrapper(backend: Any, policy_name: str) -> None:
                policy = backend.policies.get(policy_name)
                hooks.policy_deleting(
                    policy_name, policy.auto_scaling_group_name if policy else None
                )
                original(backend, policy_name)

            return wrapper

        patch_method(FakeAutoScalingGroup, "set_desired_capacity", set_desired_capacity)
        patch_method(
            AutoScalingBackend, "update_attached_target_groups", update_attached_target_groups
        )
        patch_method(AutoScalingBackend, "notify_terminate_instances", notify_terminate_instances)
        patch_method(AutoScalingBackend, "terminate_instance", terminate_instance)
        patch_method(AutoScalingBackend, "delete_auto_scaling_group", delete_group)
        patch_method(AutoScalingBackend, "delete_policy", delete_policy)
        _patch_responses(hooks)


def _capacity_error(desired: int | None, min_size: int | None, max_size: int | None) -> None:
    """AWS: desired capacity must lie within [min, max] (user-observed message)."""
    if desired is None or min_size is None or max_size is None:
        return
    if not min_size <= desired <= max_size:
        raise ValidationError(
            f"Desired capacity:{desired} must be between the specified min size:{min_size} "
            f"and max size:{max_size}"
        )


def _patch_responses(hooks: AutoScalingHooks) -> None:  # noqa: PLR0915
    from . import patch_method  # noqa: PLC0415 - the package imports this module

    def create_group(original: Callable) -> Callable:
        def wrapper(response: AutoScalingResponse) -> Any:
            min_size = response._get_int_param("MinSize")
            max_size = response._get_int_param("MaxSize")
            desired = response._get_int_param("DesiredCapacity")
            _capacity_error(desired, min_size, max_size)
            if min_size is not None and max_size is not None and min_size > max_size:
                raise ValidationError(
                    f"Max bound, {max_size}, must be greater than or equal to min bound, {min_size}"
                )
            warmup = response._get_int_param("DefaultInstanceWarmup")
            with reason("a user request created an AutoScalingGroup"):
                result = original(response)
            # moto does not keep DefaultInstanceWarmup.
            group = response.autoscaling_backend.autoscaling_groups.get(
                response._get_param("AutoScalingGroupName")
            )
            if group is not None and warmup is not None and warmup >= 0:
                group.default_instance_warmup = warmup
            return result

        return wrapper

    def update_group(original: Callable) -> Callable:
        def wrapper(response: AutoScalingResponse) -> Any:
            name = response._get_param("AutoScalingGroupName")
            group = response.autoscaling_backend.autoscaling_groups.get(name)
            min_size = response._get_int_param("MinSize")
            max_size = response._get_int_param("MaxSize")
            desired = response._get_int_param("DesiredCapacity")
            if group is not None:
                min_size = group.min_size if min_size is None else min_size
                max_size = group.max_size if max_size is None else max_size
                _capacity_error(desired, min_size, max_size)
                if min_size is not None and max_size is not None and min_size > max_size:
                    raise ValidationError(
                        f"Max bound, {max_size}, must be greater than or equal to min bound, "
                        f"{min_size}"
                    )
            shown = desired if desired is not None else (group.desired_capacity if group else "")
            why = (
                f"a user request update of AutoScalingGroup constraints to min: {min_size}, "
                f"max: {max_size}, desired: {shown}"
            )
            cooldown = response._get_int_param("DefaultCooldown")
            warmup = response._get_int_param("DefaultInstanceWarmup")
            policies = response._get_param("TerminationPolicies", [])
            with reason(why):
                result = original(response)
            # moto ignores these on update ("not yet implemented").
            if group is not None:
                if cooldown is not None:
                    group.default_cooldown = cooldown
                if warmup is not None:
                    group.default_instance_warmup = None if warmup == -1 else warmup
                if policies:
                    group.termination_policies = policies
            return result

        return wrapper

    def set_desired(original: Callable) -> Callable:
        def wrapper(response: AutoScalingResponse) -> Any:
            name = response._get_param("AutoScalingGroupName")
            desired = response._get_int_param("DesiredCapacity")
            group = response.autoscaling_backend.autoscaling_groups.get(name)
            if group is not None and desired is not None:
                if desired > (group.max_size or 0):
                    raise ValidationError(
                        f"New SetDesiredCapacity value {desired} is above max value "
                        f"{group.max_size} for the AutoScalingGroup."
                    )
                if desired < (group.min_size or 0):
                    raise ValidationError(
                        f"New SetDesiredCapacity value {desired} is below min value "
                        f"{group.min_size} for the AutoScalingGroup."
                    )
            with reason("a user request explicitly set group desired capacity"):
                return original(response)

        return wrapper

    def set_instance_health(_original: Callable) -> Callable:
        def wrapper(response: AutoScalingResponse) -> Any:
            status = response._get_param("HealthStatus")
            if status not in ("Healthy", "Unhealthy"):
                raise ValidationError("Valid instance health states are: [Healthy, Unhealthy]")
            with refusals_as_validation_errors():
                hooks.instance_health_set(
                    response._get_param("InstanceId"),
                    status,
                    response._get_bool_param("ShouldRespectGracePeriod", True),
                )
            return EmptyResult()

        return wrapper

    def describe_scaling_activities(_original: Callable) -> Callable:
        def wrapper(response: AutoScalingResponse) -> Any:
            name = response._get_param("AutoScalingGroupName")
            ids = response._get_param("ActivityIds", [])
            activities = hooks.scaling_activities(name, ids)
            max_records = response._get_int_param("MaxRecords") or 100
            return ActionResult({"Activities": activities[:max_records]})

        return wrapper

    def put_scaling_policy(original: Callable) -> Callable:
        def wrapper(response: AutoScalingResponse) -> Any:
            name = response._get_param("PolicyName")
            group_name = response._get_param("AutoScalingGroupName")
            if group_name not in response.autoscaling_backend.autoscaling_groups:
                raise ValidationError(f"Group {group_name} not found")
            previous = response.autoscaling_backend.policies.get(name)
            if previous is not None:
                hooks.policy_deleting(name, previous.auto_scaling_group_name)
            original(response)
            policy = response.autoscaling_backend.policies[name]
            alarms = hooks.policy_put(name, group_name)
            # moto answers "PolicyArn"; the API (and boto3) says PolicyARN.
            return ActionResult({"PolicyARN": policy.arn, "Alarms": alarms})

        return wrapper

    def execute_policy(_original: Callable) -> Callable:
        def wrapper(response: AutoScalingResponse) -> Any:
            metric = response._get_param("MetricValue")
            breach = response._get_param("BreachThreshold")
            with refusals_as_validation_errors():
                hooks.policy_executed_by_api(
                    response._get_param("PolicyName"),
                    response._get_param("AutoScalingGroupName"),
                    response._get_bool_param("HonorCooldown", False),
                    None if metric is None else float(metric),
                    None if breach is None else float(breach),
                )
            return EmptyResult()

        return wrapper

    def put_notification_configuration(original: Callable) -> Callable:
        def wrapper(response: AutoScalingResponse) -> Any:
            result = original(response)
            hooks.notification_configuration_put(
                response._get_param("AutoScalingGroupName"), response._get_param("TopicARN")
            )
            return result

        return wrapper

    patch_method(AutoScalingResponse, "create_auto_scaling_group", create_group)
    patch_method(AutoScalingResponse, "update_auto_scaling_group", update_group)
    patch_method(AutoScalingResponse, "set_desired_capacity", set_desired)
    patch_method(AutoScalingResponse, "set_instance_health", set_instance_health)
    patch_method(AutoScalingResponse, "describe_scaling_activities", describe_scaling_activities)
    patch_method(AutoScalingResponse, "put_scaling_policy", put_scaling_policy)
    patch_method(AutoScalingResponse, "execute_policy", execute_policy)
    if hasattr(AutoScalingResponse, "put_notification_configuration"):
        patch_method(
            AutoScalingResponse, "put_notification_configuration", put_notification_configuration
        )
