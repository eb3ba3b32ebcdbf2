"""EC2 Auto Scaling behaviour: health checks, replacement, AZ balance, capacity,
scaling activities, notifications and scaling policies (aws-semantics.md §2, §3, §5).

moto keeps the groups; this behaviour decides what AWS would decide, through the
adapter's hooks (moto hands over every desired-capacity change and terminate
request) and one reconcile loop that moves instances through their lifecycle:

    Pending --EC2 running and booted, registered in the target groups--> InService
    InService --unhealthy / scale-in / user request--> Terminating
    Terminating --deregistered, deregistration delay over--> Terminated (then gone)
"""

from __future__ import annotations

import json
import logging
import random
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .adapter.autoscaling import COUNTED, AsgGroup, AsgInstance, GroupRef, Refusal, desired_reason
from .autoscaling_policies import PolicyEngine
from .clock import Periodic
from .metrics import behaviour_method

if TYPE_CHECKING:
    from .server import Sandbox

log = logging.getLogger(__name__)

TICK_AWS_S = 1.0
# AWS documents no interval for its periodic health checks ("periodically"). The
# conservative choice of aws-semantics.md: no faster than one target group health check
# interval (5 s in this collection's default stack, AWS's minimum).
HEALTH_CHECK_INTERVAL_AWS_S = 5.0
# A Terminated instance stays visible this long before it leaves the group.
TERMINATED_VISIBLE_AWS_S = 2.0

CAUSE_EC2_GONE = (
    "an instance was taken out of service in response to an EC2 health check "
    "indicating it has been terminated or stopped."
)
CAUSE_ELB = (
    "an instance was taken out of service in response to an ELB system health check failure."
)
CAUSE_USER_HEALTH = "an instance was taken out of service in response to a user health-check."


def stamp(when: datetime) -> str:
    """Cause timestamps: YYYY-MM-DDThh:mm:ssZ (no milliseconds), as AWS writes them."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class Activity:
    """One scaling activity; moto's response layer serializes these attributes."""

    activity_id: str
    auto_scaling_group_name: str
    auto_scaling_group_arn: str
    description: str
    cause: str
    start_time: datetime
    status_code: str
    progress: int = 0
    end_time: datetime | None = None
    status_message: str | None = None
    details: str = "{}"
    # Not part of the API shape: what a notification needs.
    instance_id: str | None = None


@dataclass
class Member:
    """What the sandbox knows of one group instance beyond moto's InstanceState."""

    group_arn: str
    launched_aws: float
    in_service_aws: float | None = None
    launch_activity: Activity | None = None
    terminate_activity: Activity | None = None
    drain_until: float | None = None
    terminated_aws: float | None = None
    # Why it is Unhealthy (a Cause sentence) and whether the grace period applies.
    unhealthy_cause: str | None = None
    respect_grace: bool = True
    health_replacement: bool = False
    scaled_out_by_policy: bool = False
    # Launched by AZ rebalancing: not counted against desired until it is InService.
    rebalancing: bool = False


@dataclass
class GroupState:
    name: str
    activities: list[Activity] = field(default_factory=list)
    # Simple scaling: an activity is running (cooldown not started) / cooldown end.
    simple_cooldown_pending: float | None = None
    cooldown_until: float = 0.0
    next_health_check: float = 0.0


def select_for_scale_in(
    instances: list[AsgInstance],
    count: int,
    policies: tuple[str, ...],
    age_s: Callable[[AsgInstance], float],
) -> list[AsgInstance]:
    """AWS termination policies (§2.3): AZ balance first (the AZ with the most
    instances that has an unprotected one), then the policies in order inside it."""
    ages = {i.id: age_s(i) for i in instances}  # one reading: the clock moves on
    age_s = lambda i: ages[i.id]  # noqa: E731
    remaining = list(instances)
    chosen: list[AsgInstance] = []
    for _ in range(count):
        candidates = [i for i in remaining if not i.protected]
        if not candidates:
            break
        per_az = Counter(i.az for i in remaining)
        top = max(per_az[i.az] for i in candidates)
        pool = [i for i in candidates if per_az[i.az] == top]
        for policy in policies:
            if len(pool) == 1:
                break
            pool = _apply_policy(policy, pool, age_s)
        victim = random.choice(pool)  # noqa: S311 - AWS: ties are broken at random
        chosen.append(victim)
        remaining.remove(victim)
    return chosen


def _keep(pool: list[AsgInstance], key: Callable[[AsgInstance], float], best: float) -> list:
    return [i for i in pool if key(i) == best]


def _apply_policy(
    policy: str, pool: list[AsgInstance], age_s: Callable[[AsgInstance], float]
) -> list[AsgInstance]:
    def version(i: AsgInstance) -> float:
        # Launch configuration instances (no template version) go first.
        return -1 if i.template_version is None else i.template_version

    def to_next_hour(i: AsgInstance) -> float:
        return 3600 - (age_s(i) % 3600)

    if policy in ("OldestLaunchTemplate", "OldestLaunchConfiguration"):
        return _keep(pool, version, min(version(i) for i in pool))
    if policy == "OldestInstance":
        return _keep(pool, age_s, max(age_s(i) for i in pool))
    if policy == "NewestInstance":
        return _keep(pool, age_s, min(age_s(i) for i in pool))
    if policy == "ClosestToNextInstanceHour":
        return _keep(pool, to_next_hour, min(to_next_hour(i) for i in pool))
    if policy == "Default":
        pool = _keep(pool, version, min(version(i) for i in pool))
        return _keep(pool, to_next_hour, min(to_next_hour(i) for i in pool))
    return pool  # AllocationStrategy, Lambda ARNs: nothing to apply here


def choose_zone(
    zones: tuple[tuple[str | None, str], ...], counted: list[AsgInstance], extra: Counter
) -> tuple[str | None, str]:
    """AWS: launch into the AZ with the fewest instances (BEN #Rebalancing)."""
    per_az = Counter(i.az for i in counted) + extra
    first_subnet: dict[str, str | None] = {}
    for subnet, az in zones:
        first_subnet.setdefault(az, subnet)
    az = min(first_subnet, key=lambda z: (per_az[z], list(first_subnet).index(z)))
    return first_subnet[az], az


class AutoScaling:
    name = "autoscaling"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.adapter = sandbox.adapter
        self.clock = sandbox.clock
        self.members: dict[str, Member] = {}
        self.groups: dict[str, GroupState] = {}  # by group ARN (unique per group)
        self.outbox: deque[tuple[str, str, str]] = deque()
        # Test seam: tg_arn -> {instance_id: (state, reason, description)}. None
        # asks the elb behaviour (no elb behaviour: no ELB verdicts).
        self.target_health_source: Callable[[str], dict[str, tuple]] | None = None
        self.policies = PolicyEngine(self)
        self._loop = Periodic("autoscaling", self.clock, TICK_AWS_S, self.tick, self._tick_failed)
        self._publishing = threading.Lock()
        self.adapter.install_autoscaling_hooks(self)
        self.adapter.subscribe(self)

    # ------------------------------------------------------------ Behaviour

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def status(self) -> dict[str, Any]:
        with self.sandbox.lock:
            groups = {}
            for ref in self.adapter.asg_refs():
                view = self.adapter.asg_view(ref)
                groups[view.name] = {
                    "desired": view.desired,
                    "min": view.min_size,
                    "max": view.max_size,
                    "health_check_type": view.health_check_type,
                    "grace_period_aws_s": view.grace_period,
                    "instances": [
                        {
                            "id": i.id,
                            "az": i.az,
                            "lifecycle": i.lifecycle,
                            "health": i.health,
                            "ec2_state": i.ec2_state,
                        }
                        for i in view.instances
                    ],
                }
            return {"tick_aws_s": TICK_AWS_S, "groups": groups}

    def _tick_failed(self, error: BaseException) -> None:
        log.error("autoscaling tick failed: %r", error, exc_info=error)

    # ------------------------------------------------------------ moto events

    def backends_reset(self) -> None:
        self.members.clear()
        self.groups.clear()
        self.outbox.clear()

    def instances_launched(self, instances: Any) -> None: ...
    def instance_terminated(self, instance_id: str) -> None: ...
    def image_created(self, image_id: str, instance_id: str) -> None: ...
    def image_copied(self, image_id: str, source_image_id: str) -> None: ...
    def image_deregistered(self, image_id: str) -> None: ...

    # ------------------------------------------------------------ helpers

    def _group_state(self, view: AsgGroup) -> GroupState:
        state = self.groups.get(view.arn)
        if state is None:
            state = self.groups[view.arn] = GroupState(view.name)
        return state

    def _member(self, view: AsgGroup, instance: AsgInstance) -> Member:
        member = self.members.get(instance.id)
        if member is None:
            now = self.clock.now()
            member = self.members[instance.id] = Member(view.arn, launched_aws=now)
            if instance.lifecycle == "InService":
                member.in_service_aws = now
        return member

    def _age_s(self, instance: AsgInstance) -> float:
        member = self.members.get(instance.id)
        return self.clock.now() - member.launched_aws if member else 0.0

    def _activity(
        self, view: AsgGroup, description: str, cause: str, instance: AsgInstance | None, **kw: Any
    ) -> Activity:
        details = {}
        if instance is not None:
            details = {"Subnet ID": instance.subnet_id or "", "Availability Zone": instance.az}
        activity = Activity(
            activity_id=str(uuid.uuid4()),
            auto_scaling_group_name=view.name,
            auto_scaling_group_arn=view.arn,
            description=description,
            cause=cause,
            start_time=self.clock.utcnow(),
            details=json.dumps(details),
            instance_id=instance.id if instance else None,
            **{"status_code": "InProgress", **kw},
        )
        self._group_state(view).activities.insert(0, activity)
        return activity

    def _finish(self, activity: Activity | None) -> None:
        if activity is not None and activity.end_time is None:
            activity.status_code = "Successful"
            activity.progress = 100
            activity.end_time = self.clock.utcnow()

    def _notify(self, ref: GroupRef, view: AsgGroup, event: str, activity: Activity) -> None:
        """AWS §2.5: one SNS message per configured topic that asked for the event."""
        topics = [
            topic
            for topic, kinds in self.adapter.asg_notification_topics(ref).items()
            if f"autoscaling:{event}" in kinds
        ]
        if not topics:
            return
        launch = event == "EC2_INSTANCE_LAUNCH"
        now = self.clock.utcnow()
        message = {
            "Origin": "EC2" if launch else "AutoScalingGroup",
            "Destination": "AutoScalingGroup" if launch else "EC2",
            "Progress": 50 if launch else 60,
            "AccountId": self.adapter.account_id,
            "Description": activity.description,
            "RequestId": activity.activity_id,
            "EndTime": iso_ms(now),
            "AutoScalingGroupARN": view.arn,
            "ActivityId": activity.activity_id,
            "StartTime": iso_ms(activity.start_time),
            "Service": "AWS Auto Scaling",
            "Time": iso_ms(now),
            "EC2InstanceId": activity.instance_id,
            "StatusCode": "InProgress",
            "StatusMessage": "",
            "Details": json.loads(activity.details),
            "AutoScalingGroupName": view.name,
            "Cause": activity.cause,
            "Event": f"autoscaling:{event}",
        }
        subject = f'Auto Scaling: {"launch" if launch else "termination"} for group "{view.name}"'
        for topic in topics:
            self.outbox.append((topic, subject, json.dumps(message)))

    def _publish_outbox(self) -> None:
        # After the tick's own work: publishing is queued there and sent here, the
        # SNS behaviour hands http/https deliveries to its own threads.
        with self._publishing:
            while self.outbox:
                topic, subject, message = self.outbox.popleft()
                try:
                    with self.sandbox.lock:
                        published = self.adapter.asg_publish(topic, subject, message)
                    if published:
                        log.info("autoscaling notification %r published to %s", subject, topic)
                    else:
                        # AWS keeps a group's notification configuration when its topic is
                        # deleted; the notification is lost (e.g. during teardown).
                        log.warning("notification %r lost: no topic %s", subject, topic)
                except Exception:
                    log.exception("autoscaling notification to %s failed", topic)

    # ------------------------------------------------------------ reconcile loop

    def tick(self) -> None:
        with self.sandbox.lock:
            now = self.clock.now()
            live = set()
            for ref in self.adapter.asg_refs():
                view = self.adapter.asg_view(ref)
                live.add(view.arn)
                self._advance_lifecycle(ref, view, now)
                view = self.adapter.asg_view(ref)
                self._check_health(ref, view, now)
                self._replace_unhealthy(ref, view, now)
                self.converge(ref)
                self._rebalance(ref, self.adapter.asg_view(ref))
                self.policies.tick(ref, self.adapter.asg_view(ref), now)
            for instance_id in [i for i, m in self.members.items() if m.group_arn not in live]:
                del self.members[instance_id]
        self._publish_outbox()

    def _advance_lifecycle(self, ref: GroupRef, view: AsgGroup, now: float) -> None:
        for inst in view.instances:
            member = self._member(view, inst)
            if (
                inst.lifecycle == "Pending"
                and inst.ec2_state == "running"
                and self._booted(inst.id)
            ):
                # AWS LC: registered with the load balancer before it is InService.
                self.adapter.asg_register(ref, inst.id)
                self.adapter.asg_set_lifecycle(ref, inst.id, "InService")
                member.in_service_aws = now
                if member.launch_activity is not None:
                    self._notify(ref, view, "EC2_INSTANCE_LAUNCH", member.launch_activity)
                self._finish(member.launch_activity)
                log.info("autoscaling %s: %s is InService in %s", view.name, inst.id, inst.az)
            elif inst.lifecycle == "Terminating" and now >= (member.drain_until or 0):
                self.adapter.asg_terminate_ec2(inst.id)
                self.adapter.asg_set_lifecycle(ref, inst.id, "Terminated")
                member.terminated_aws = now
                if member.terminate_activity is not None:
                    self._notify(ref, view, "EC2_INSTANCE_TERMINATE", member.terminate_activity)
                self._finish(member.terminate_activity)
                log.info("autoscaling %s: %s terminated", view.name, inst.id)
            elif (
                inst.lifecycle == "Terminated"
                and now - (member.terminated_aws or now) >= TERMINATED_VISIBLE_AWS_S
            ):
                self.adapter.asg_forget(ref, inst.id)
                self.members.pop(inst.id, None)

    def _booted(self, instance_id: str) -> bool:
        """AWS LC: an instance enters InService (and its load balancer registration) once it
        passes the EC2 health checks, by when its OS has booted: here, once the ec2
        behaviour has booted it. Registering earlier would fail the new target's first
        health checks while it boots, and cost it HealthyThresholdCount checks to recover."""
        address = behaviour_method(self.sandbox, "ec2", "address")
        return address is None or address(instance_id) is not None

    def _target_health(self, tg_arn: str) -> dict[str, tuple]:
        if self.target_health_source is not None:
            return self.target_health_source(tg_arn)
        try:
            elb = self.sandbox.behaviour("elb")
        except StopIteration:
            return {}
        return elb.target_health(tg_arn)

    def _check_health(self, ref: GroupRef, view: AsgGroup, now: float) -> None:
        if "HealthCheck" in view.suspended:
            return
        state = self._group_state(view)
        elb_due = "ELB" in view.health_check_type and now >= state.next_health_check
        if elb_due:
            state.next_health_check = now + HEALTH_CHECK_INTERVAL_AWS_S
        verdicts = (
            {arn: self._target_health(arn) for arn in view.target_group_arns} if elb_due else {}
        )
        for inst in view.instances:
            if inst.lifecycle not in COUNTED or inst.health != "Healthy":
                continue
            member = self._member(view, inst)
            if inst.ec2_state not in ("running", "pending"):
                # AWS HCK: not running is an immediate failure, grace period or not.
                cause = CAUSE_EC2_GONE
            elif (
                elb_due
                and inst.lifecycle == "InService"
                and member.in_service_aws is not None
                and now - member.in_service_aws >= view.grace_period
                and any(v.get(inst.id, ("",))[0] == "unhealthy" for v in verdicts.values())
            ):
                # AWS HCK: any attached target group reporting it unhealthy, once the
                # grace period since InService is over.
                cause = CAUSE_ELB
            else:
                continue
            self.adapter.asg_set_health(ref, inst.id, "Unhealthy")
            member.unhealthy_cause, member.respect_grace = cause, False
            log.info("autoscaling %s: %s marked Unhealthy: %s", view.name, inst.id, cause)

    def _replace_unhealthy(self, ref: GroupRef, view: AsgGroup, now: float) -> None:
        if "ReplaceUnhealthy" in view.suspended:
            return
        # AWS HCK #minimize-downtime: ELB-unhealthy instances are replaced at most
        # 10% of desired capacity (at least one) at a time; not-running and
        # SetInstanceHealth ones at once.
        batch = max(1, view.desired // 10)
        in_flight = sum(
            1
            for i in view.instances
            if i.lifecycle == "Pending"
            or (i.lifecycle == "Terminating" and self._member(view, i).health_replacement)
        )
        for inst in view.instances:
            if inst.lifecycle not in COUNTED or inst.health != "Unhealthy":
                continue
            member = self._member(view, inst)
            cause = member.unhealthy_cause or CAUSE_USER_HEALTH
            in_grace = (
                member.in_service_aws is not None
                and now - member.in_service_aws < view.grace_period
            )
            if cause == CAUSE_USER_HEALTH and member.respect_grace and in_grace:
                continue  # SetInstanceHealth respects the grace period by default
            if cause == CAUSE_ELB:
                if in_flight >= batch:
                    continue
                in_flight += 1
            member.health_replacement = True
            at = stamp(self.clock.utcnow())
            self.begin_termination(ref, view, inst, f"At {at} {cause}")

    # ------------------------------------------------------------ capacity

    def begin_termination(
        self, ref: GroupRef, view: AsgGroup, inst: AsgInstance, cause: str
    ) -> Activity:
        """AWS: deregister from the target groups first, wait for draining (the
        deregistration delay; ELB drains), then terminate."""
        member = self._member(view, inst)
        left = self.adapter.asg_deregister(ref, inst.id)
        drain = max((self.adapter.asg_deregistration_delay(arn) for arn in left), default=0.0)
        self.adapter.asg_set_lifecycle(ref, inst.id, "Terminating")
        member.drain_until = self.clock.now() + drain
        member.terminate_activity = self._activity(
            view,
            f"Terminating EC2 instance: {inst.id}",
            cause,
            inst,
            status_code="WaitingForELBConnectionDraining" if drain else "InProgress",
        )
        log.info(
            "autoscaling %s: terminating %s after %.0f AWS s of draining: %s",
            view.name,
            inst.id,
            drain,
            cause,
        )
        return member.terminate_activity

    def converge(self, ref: GroupRef, old_desired: int | None = None) -> None:
        """Launch or terminate until the Pending+InService count equals desired."""
        view = self.adapter.asg_view(ref)
        counted = [
            i
            for i in view.instances
            if i.lifecycle in COUNTED
            and not (i.lifecycle == "Pending" and self._member(view, i).rebalancing)
        ]
        delta = view.desired - len(counted)
        why = desired_reason.get()
        at = stamp(self.clock.utcnow())
        prefix = ""
        if why and old_desired != view.desired:
            prefix = (
                f"At {at} {why} changing the desired capacity from {old_desired or 0} "
                f"to {view.desired}.  "
            )
        if delta > 0 and "Launch" not in view.suspended and view.zones:
            extra: Counter = Counter()
            for _ in range(delta):
                subnet, az = choose_zone(view.zones, counted, extra)
                extra[az] += 1
                instance_id = self.adapter.asg_launch(ref, subnet, az)
                now = self.clock.now()
                member = self.members[instance_id] = Member(view.arn, launched_aws=now)
                inst = next(i for i in self.adapter.asg_view(ref).instances if i.id == instance_id)
                member.launch_activity = self._activity(
                    view,
                    f"Launching a new EC2 instance: {instance_id}",
                    prefix + f"At {at} an instance was started in response to a difference "
                    f"between desired and actual capacity, increasing the capacity from "
                    f"{len(counted)} to {view.desired}.",
                    inst,
                    progress=50,
                )
                log.info(
                    "autoscaling %s: launched %s in %s (%s)", view.name, instance_id, az, subnet
                )
        elif delta < 0 and "Terminate" not in view.suspended:
            for victim in select_for_scale_in(
                counted, -delta, view.termination_policies, self._age_s
            ):
                self.begin_termination(
                    ref,
                    view,
                    victim,
                    prefix + f"At {at} an instance was taken out of service in response to a "
                    f"difference between desired and actual capacity, shrinking the capacity "
                    f"from {len(counted)} to {view.desired}.  At {at} instance {victim.id} was "
                    "selected for termination.",
                )

    def _rebalance(self, ref: GroupRef, view: AsgGroup) -> None:
        """AWS BEN (AZ rebalancing): when the zones differ by more than one instance (e.g.
        a zone was added back to the group), launch into the zone with the fewest first;
        once it is InService the group is one over desired and converge terminates one in
        the zone with the most (termination policy: AZ balance first)."""
        if {"AZRebalance", "Launch", "Terminate"} & view.suspended or not view.zones:
            return
        if len(view.instances) != view.desired or any(
            i.lifecycle != "InService" for i in view.instances
        ):
            return  # only a settled group rebalances
        zones = sorted({az for _subnet, az in view.zones})
        per_az = Counter(i.az for i in view.instances if i.az in zones)
        per_az.update({az: 0 for az in zones})  # (Counter + Counter would drop the empty zones)
        if max(per_az.values()) - min(per_az.values()) <= 1:
            return
        subnet, az = choose_zone(view.zones, view.instances, Counter())
        instance_id = self.adapter.asg_launch(ref, subnet, az)
        member = Member(view.arn, launched_aws=self.clock.now(), rebalancing=True)
        self.members[instance_id] = member
        inst = next(i for i in self.adapter.asg_view(ref).instances if i.id == instance_id)
        counts = " ".join(str(per_az[z]) for z in zones)
        member.launch_activity = self._activity(
            view,
            f"Launching a new EC2 instance: {instance_id}",
            f"At {stamp(self.clock.utcnow())} availability zones {' '.join(zones)} had {counts} "
            "instances respectively. An instance was launched to aid in balancing the group's "
            "zones.",
            inst,
            progress=50,
        )
        log.info("autoscaling %s: rebalancing, launched %s in %s", view.name, instance_id, az)

    # ------------------------------------------------------------ adapter hooks

    def desired_capacity_set(self, group: GroupRef, old: int | None) -> None:
        self.converge(group, old)

    def terminate_requested(self, instance_id: str, decrement: bool) -> Activity:
        ref = self.adapter.asg_ref_of_instance(instance_id)
        if ref is None:
            raise Refusal(
                f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
            )
        view = self.adapter.asg_view(ref)
        inst = next(i for i in view.instances if i.id == instance_id)
        old = view.desired
        if decrement:
            if old <= view.min_size:
                raise Refusal(
                    f"Currently, desiredCapacity ({old}) is equal to minSize ({view.min_size}). "
                    "Terminating instance without replacement will violate group's min size "
                    "constraint. Either set shouldDecrementDesiredCapacity flag to false or "
                    "lower group's min size."
                )
            self.adapter.asg_set_desired_raw(ref, old - 1)
        at = stamp(self.clock.utcnow())
        cause = (
            f"At {at} instance {instance_id} was taken out of service in response to a user request"
        )
        cause += f", shrinking the capacity from {old} to {old - 1}." if decrement else "."
        activity = self.begin_termination(ref, self.adapter.asg_view(ref), inst, cause)
        self.converge(ref)
        return activity

    def group_deleting(self, group: GroupRef) -> None:
        view = self.adapter.asg_view(group)
        self.policies.group_deleted(view.name)
        at = stamp(self.clock.utcnow())
        for inst in view.instances:
            if inst.lifecycle in ("Terminated",):
                continue
            self.adapter.asg_deregister(group, inst.id)
            self.adapter.asg_terminate_ec2(inst.id)
            activity = self._activity(
                view,
                f"Terminating EC2 instance: {inst.id}",
                f"At {at} an instance was taken out of service in response to a user request.",
                inst,
            )
            self._finish(activity)
            self.adapter.asg_forget(group, inst.id)
            self.members.pop(inst.id, None)

    def instance_health_set(self, instance_id: str, status: str, respect_grace: bool) -> None:
        ref = self.adapter.asg_ref_of_instance(instance_id)
        if ref is None:
            raise Refusal(f"Instance Id not found - No managed instance found for {instance_id}")
        view = self.adapter.asg_view(ref)
        inst = next(i for i in view.instances if i.id == instance_id)
        member = self._member(view, inst)
        if status == "Healthy" and inst.lifecycle not in COUNTED:
            raise Refusal(f"Instance {instance_id} is {inst.lifecycle}; its health cannot be set")
        self.adapter.asg_set_health(ref, instance_id, status)
        member.unhealthy_cause = CAUSE_USER_HEALTH if status == "Unhealthy" else None
        member.respect_grace = respect_grace
        if status == "Unhealthy":
            # AWS HCK: instances set Unhealthy are replaced immediately.
            self._replace_unhealthy(ref, self.adapter.asg_view(ref), self.clock.now())
            self.converge(ref)

    def scaling_activities(self, group_name: str | None, ids: list[str]) -> list[Activity]:
        found = [
            a
            for state in self.groups.values()
            for a in state.activities
            if (not group_name or a.auto_scaling_group_name == group_name)
            and (not ids or a.activity_id in ids)
        ]
        return sorted(found, key=lambda a: a.start_time, reverse=True)

    def notification_configuration_put(self, group_name: str, topic_arn: str) -> None:
        """AWS §2.5: a TEST_NOTIFICATION is sent when a configuration is put."""
        ref = self.adapter.asg_ref(group_name)
        if ref is None:
            return
        view = self.adapter.asg_view(ref)
        message = {
            "AccountId": self.adapter.account_id,
            "RequestId": str(uuid.uuid4()),
            "AutoScalingGroupARN": view.arn,
            "AutoScalingGroupName": view.name,
            "Service": "AWS Auto Scaling",
            "Event": "autoscaling:TEST_NOTIFICATION",
            "Time": iso_ms(self.clock.utcnow()),
        }
        subject = f'Auto Scaling: test notification for group "{view.name}"'
        self.outbox.append((topic_arn, subject, json.dumps(message)))

    def policy_put(self, policy_name: str, group_name: str) -> list[dict[str, str]]:
        return self.policies.policy_put(policy_name, group_name)

    def policy_deleting(self, policy_name: str, group_name: str | None) -> None:
        self.policies.policy_deleting(policy_name)

    def policy_executed_by_api(
        self,
        policy: str,
        group_name: str | None,
        honor_cooldown: bool,
        metric_value: float | None,
        breach_threshold: float | None,
    ) -> None:
        self.policies.execute(
            policy,
            group_name=group_name,
            metric_value=metric_value,
            breach_threshold=breach_threshold,
            honor_cooldown=honor_cooldown,
            cause="",
            from_api=True,
        )

    # ------------------------------------------------------------ for other behaviours

    def execute_policy(
        self,
        policy_arn: str,
        *,
        metric_value: float | None = None,
        breach_threshold: float | None = None,
        cause: str = "",
    ) -> dict:
        """Run a scaling policy as a CloudWatch alarm action does (cooldown honoured
        for simple scaling). `cause` is the alarm's name (or a full reason phrase).
        Returns old/new desired capacity, or why nothing changed."""
        with self.sandbox.lock:
            try:
                result = self.policies.execute(
                    policy_arn,
                    group_name=None,
                    metric_value=metric_value,
                    breach_threshold=breach_threshold,
                    honor_cooldown=True,
                    cause=cause,
                    from_api=False,
                )
            except Refusal as e:
                result = {"changed": False, "reason": str(e)}
        self._publish_outbox()
        return result
