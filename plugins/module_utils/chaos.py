# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Chaos guards and target selection: pure logic, shared by the chaos and game_day modules."""

from __future__ import annotations

import math
import random
from fractions import Fraction

ACTIONS = ("terminate", "stop", "reboot", "crash_app", "fail_health", "cpu_stress", "az_outage")
# What revert can undo: terminate and reboot cannot be taken back.
REVERSIBLE = ("stop", "fail_health", "cpu_stress", "az_outage")
STACK_TAG = "selfheal:stack"
DEFAULT_BLAST_RADIUS = "1/3"
MAX_CPU_STRESS_SECONDS = 600


class ChaosError(ValueError):
    """Bad input or a guard that refused: nothing was done."""


def fault_argument_spec():
    """Options that pick instances and bound a fault: the same in chaos and game_day's fault."""
    return dict(
        action=dict(type="str", required=True, choices=list(ACTIONS)),
        count=dict(type="int"),
        percent=dict(type="float"),
        availability_zone=dict(type="str"),
        instance_ids=dict(type="list", elements="str"),
        seed=dict(type="int"),
        max_blast_radius=dict(type="str", default=DEFAULT_BLAST_RADIUS),
        min_healthy=dict(type="int"),
        duration=dict(type="int", default=60),
        install_dir=dict(type="str", default="/opt/selfheal-web"),
        terminate_via=dict(type="str", default="ec2", choices=["ec2", "autoscaling"]),
        decrement_desired_capacity=dict(type="bool", default=False),
    )


def check_action(action):
    if action not in ACTIONS:
        raise ChaosError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")


def parse_fraction(value, field="max_blast_radius"):
    """'1/3', '0.5' or '50%' -> a Fraction in (0, 1]."""
    text = str(value).strip()
    try:
        fraction = Fraction(text[:-1]) / 100 if text.endswith("%") else Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ChaosError(f"{field}: {value!r} is not a fraction; use e.g. 1/3, 0.5 or 50%") from None
    if not 0 < fraction <= 1:
        raise ChaosError(f"{field}: {value!r} must be above 0 and at most 1 (100%)")
    return fraction


def blast_radius_limit(desired, max_blast_radius=DEFAULT_BLAST_RADIUS):
    """Instances a fault may hit: floor(desired x fraction), at least 1 of a non-empty group."""
    fraction = parse_fraction(max_blast_radius)
    return max(1, math.floor(desired * fraction)) if desired > 0 else 0


def guard_instances(group_name, group_instances, described, stack):
    """Refuse when a group instance is not tagged as the stack's.

    group_instances: instance ids the ASG lists; described: {instance_id: {"tags": {..}}}.
    """
    foreign = sorted(i for i in group_instances if described.get(i, {}).get("tags", {}).get(STACK_TAG) != stack)
    if foreign:
        raise ChaosError(
            f"autoscaling_group_name: instances {', '.join(foreign)} of {group_name!r} are not tagged "
            f"{STACK_TAG}={stack}; chaos only acts on instances of stack {stack!r}"
        )


def guard_group(group, stack):
    """Refuse a group that is missing or not tagged as the stack's."""
    if group is None:
        raise ChaosError("autoscaling_group_name: no such Auto Scaling group")
    tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
    if tags.get(STACK_TAG) != stack:
        raise ChaosError(
            f"autoscaling_group_name: {group['AutoScalingGroupName']!r} is tagged "
            f"{STACK_TAG}={tags.get(STACK_TAG)!r}, not {stack!r}; chaos only acts on the stack's group"
        )


def select_instances(candidates, count=None, percent=None, availability_zone=None, instance_ids=None, seed=None):
    """Pick the instances to hit.

    candidates: [{"id": ..., "az": ...}] of the group, in any order. Exactly one way of
    choosing may be given (instance_ids, availability_zone, count or percent); with none,
    one instance. Random picks are reproducible with a seed.
    """
    given = [
        n
        for n, v in (
            ("instance_ids", instance_ids),
            ("availability_zone", availability_zone),
            ("count", count),
            ("percent", percent),
        )
        if v not in (None, [])
    ]
    if len(given) > 1:
        raise ChaosError(
            f"{' and '.join(given)}: choose instances one way only (instance_ids, availability_zone, count or percent)"
        )
    ordered = sorted(candidates, key=lambda c: c["id"])  # the seed must not depend on API order
    if instance_ids:
        known = {c["id"] for c in ordered}
        unknown = sorted(set(instance_ids) - known)
        if unknown:
            raise ChaosError(
                f"instance_ids: {', '.join(unknown)} not in service in the stack's group; "
                f"allowed: {', '.join(sorted(known)) or 'none'}"
            )
        return [c for c in ordered if c["id"] in set(instance_ids)]
    if availability_zone:
        zones = sorted({c["az"] for c in ordered})
        chosen = [c for c in ordered if c["az"] == availability_zone]
        if not chosen:
            raise ChaosError(
                f"availability_zone: {availability_zone!r} has no instance of the group; allowed: {', '.join(zones)}"
            )
        return chosen
    if percent is not None:
        if not 0 < percent <= 100:
            raise ChaosError(f"percent: {percent} must be above 0 and at most 100")
        count = max(1, math.ceil(len(ordered) * percent / 100.0))
    if count is None:
        count = 1
    if not 1 <= count <= len(ordered):
        raise ChaosError(f"count: {count} must be between 1 and the {len(ordered)} instances in service")
    return sorted(random.Random(seed).sample(ordered, count), key=lambda c: c["id"])


def check_blast_radius(selected, desired, max_blast_radius=DEFAULT_BLAST_RADIUS):
    limit = blast_radius_limit(desired, max_blast_radius)
    if len(selected) > limit:
        raise ChaosError(
            f"max_blast_radius: {len(selected)} instances selected, but at most {limit} of desired {desired} "
            f"may be hit with max_blast_radius={max_blast_radius}; raise max_blast_radius explicitly to allow more"
        )
    return limit


def check_floor(healthy, selected, min_healthy, action):
    """Refuse before acting when the fault would take healthy capacity below the floor."""
    if min_healthy is None or action == "cpu_stress":  # stress degrades, it does not remove capacity
        return
    left = healthy - len(selected)
    if left < min_healthy:
        raise ChaosError(
            f"min_healthy: {healthy} healthy targets now, {left} after hitting {len(selected)}; "
            f"below the floor of {min_healthy}"
        )


def check_fault_params(params):
    """Input checks that need no AWS: run before anything is read or done."""
    check_action(params["action"])
    parse_fraction(params.get("max_blast_radius") or DEFAULT_BLAST_RADIUS)
    duration = params.get("duration")
    if duration is not None and not 1 <= duration <= MAX_CPU_STRESS_SECONDS:
        raise ChaosError(f"duration: {duration} must be between 1 and {MAX_CPU_STRESS_SECONDS} seconds")
    if params.get("min_healthy") is not None and params["min_healthy"] < 0:
        raise ChaosError(f"min_healthy: {params['min_healthy']} must be 0 or more")
    if params.get("count") is not None and params["count"] < 1:
        raise ChaosError(f"count: {params['count']} must be 1 or more")
