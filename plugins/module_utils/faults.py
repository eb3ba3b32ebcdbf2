# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inject and revert chaos faults. Callers have run the guards of chaos.py first.

Every function returns the list of what it did, one entry per instance or resource,
each with the time it was done (stack.stamp()).
"""

from __future__ import annotations

import random
import shlex
import time

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.selfheal.aws.plugins.module_utils.chaos import (
    DEFAULT_BLAST_RADIUS,
    REVERSIBLE,
    STACK_TAG,
    ChaosError,
    check_blast_radius,
    check_fault_params,
    check_floor,
    guard_group,
    guard_instances,
    select_instances,
)
from ansible_collections.selfheal.aws.plugins.module_utils.recovery import stamp
from ansible_collections.selfheal.aws.plugins.module_utils.stack import (
    describe_group,
    describe_instances,
    target_health,
)

# The ASG remembers the subnets an az_outage removed, so revert needs no input but the group.
AZ_OUTAGE_TAG = "selfheal:az-outage"
SSM_DOCUMENT = "AWS-RunShellScript"
# An SSM fault prints the instance's clock just before it acts: the fault's time is when it
# happened on the instance, not when SendCommand was called (SSM takes a second or more).
APPLIED_AT_MARK = "selfheal-fault-applied-at"
_MARK = f'echo "{APPLIED_AT_MARK} $(date +%s.%N)"'


def applied_at(output):
    """The epoch seconds an SSM fault printed with its mark; None when absent."""
    for line in (output or "").splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == APPLIED_AT_MARK:
            try:
                return float(words[1])
            except ValueError:
                return None
    return None


def _flag(install_dir, name):
    # SELFHEAL_ROOT is unset on EC2; the sandbox sets it to the instance's root folder, the
    # same prefix its user data starts the app under (roles/launch_template user data).
    return '"${SELFHEAL_ROOT:-}"' + shlex.quote(f"{install_dir.rstrip('/')}/run/{name}")


def fail_health_commands(install_dir):
    # The web app answers 503 on its health path while this file exists.
    return [f"mkdir -p {_flag(install_dir, '')}", _MARK, f"touch {_flag(install_dir, 'fail-health')}"]


def heal_health_commands(install_dir):
    return [f"rm -f {_flag(install_dir, 'fail-health')}"]


def crash_app_commands(install_dir):
    """Kill the web app at once (SIGKILL: no graceful shutdown) and keep it down.

    Under systemd (EC2) the unit is stopped too, or Restart=on-failure would bring it back
    within a second; in the sandbox (SELFHEAL_ROOT set) the app's pid file names it.
    """
    return [
        _MARK,
        'if [ -z "${SELFHEAL_ROOT:-}" ] && command -v systemctl >/dev/null 2>&1; then'
        " systemctl kill --signal=SIGKILL selfheal-web.service && systemctl stop selfheal-web.service;"
        f' else kill -KILL "$(cat {_flag(install_dir, "web.pid")})"; fi',
    ]


def cpu_stress_commands(install_dir, duration):
    """Busy loops on every CPU that end by themselves after duration seconds, or when the flag goes.

    Each loop is one shell doing builtins only (no process per iteration), so all the CPU
    it burns is its own and shows in the instance's CPUUtilization.
    """
    flag = _flag(install_dir, "cpu-stress")
    loop = shlex.quote('while [ -e "$1" ]; do :; done')
    return [
        f"mkdir -p {_flag(install_dir, '')} && touch {flag}",
        f"for i in $(seq $(nproc 2>/dev/null || echo 1)); do timeout {int(duration)} sh -c {loop} sh {flag} & done",
        "wait",
        f"rm -f {flag}",
    ]


def stop_stress_commands(install_dir):
    return [f"rm -f {_flag(install_dir, 'cpu-stress')}"]


def run_shell(ssm, instance_ids, commands, wait_seconds=30, wait=True):
    """SSM RunCommand AWS-RunShellScript; waits for every invocation to finish when wait is set."""
    command = ssm.send_command(
        InstanceIds=list(instance_ids),
        DocumentName=SSM_DOCUMENT,
        Parameters={"commands": commands},
        Comment="selfheal.aws chaos",
        aws_retry=True,
    )["Command"]
    statuses = {i: "Pending" for i in instance_ids}
    outputs = {}
    deadline = time.monotonic() + wait_seconds
    while wait and any(s in ("Pending", "InProgress", "Delayed") for s in statuses.values()):
        if time.monotonic() > deadline:
            break
        for instance_id in instance_ids:
            if statuses[instance_id] in ("Pending", "InProgress", "Delayed"):
                invocation = _invocation(ssm, command["CommandId"], instance_id)
                statuses[instance_id] = invocation.get("Status", "Pending") if invocation else "Pending"
                outputs[instance_id] = (invocation or {}).get("StandardOutputContent", "")
        if any(s in ("Pending", "InProgress", "Delayed") for s in statuses.values()):
            time.sleep(0.5)
    failed = {i: s for i, s in statuses.items() if wait and s not in ("Success",)}
    if failed:
        raise ChaosError(
            f"SSM command {command['CommandId']} did not succeed on "
            + ", ".join(f"{i} ({s})" for i, s in sorted(failed.items()))
        )
    return command["CommandId"], statuses, outputs


@AWSRetry.jittered_backoff(retries=5, catch_extra_error_codes=["InvocationDoesNotExist"])
def _invocation(ssm, command_id, instance_id):
    return ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)


def _done(action, instance, **detail):
    entry = {"action": action, "instance_id": instance["id"], "availability_zone": instance.get("az")}
    entry.update(detail)
    entry["at"] = stamp()
    return entry


def _done_ssm(action, instance, command_id, outputs):
    entry = _done(action, instance, ssm_command_id=command_id)
    entry["applied_at"] = applied_at(outputs.get(instance["id"]))
    return entry


def inject(clients, action, selected, group, params):
    """Do the fault to the selected instances; returns what was done."""
    ec2, autoscaling, ssm = clients["ec2"], clients["autoscaling"], clients.get("ssm")
    ids = [s["id"] for s in selected]
    done = []
    if action == "terminate":
        if params.get("terminate_via") == "autoscaling":
            for instance in selected:
                autoscaling.terminate_instance_in_auto_scaling_group(
                    InstanceId=instance["id"],
                    ShouldDecrementDesiredCapacity=params.get("decrement_desired_capacity", False),
                    aws_retry=True,
                )
                done.append(_done(action, instance, via="autoscaling"))
        else:
            ec2.terminate_instances(InstanceIds=ids, aws_retry=True)
            done += [_done(action, i, via="ec2") for i in selected]
    elif action == "stop":
        ec2.stop_instances(InstanceIds=ids, aws_retry=True)
        done += [_done(action, i) for i in selected]
    elif action == "reboot":
        ec2.reboot_instances(InstanceIds=ids, aws_retry=True)
        done += [_done(action, i) for i in selected]
    elif action == "fail_health":
        command_id, _statuses, outputs = run_shell(ssm, ids, fail_health_commands(params["install_dir"]))
        done += [_done_ssm(action, i, command_id, outputs) for i in selected]
    elif action == "crash_app":
        command_id, _statuses, outputs = run_shell(ssm, ids, crash_app_commands(params["install_dir"]))
        done += [_done_ssm(action, i, command_id, outputs) for i in selected]
    elif action == "cpu_stress":
        # Not waited for: it runs for its duration and ends by itself.
        command_id, _statuses, _outputs = run_shell(
            ssm, ids, cpu_stress_commands(params["install_dir"], params["duration"]), wait=False
        )
        done += [_done(action, i, ssm_command_id=command_id, duration=params["duration"]) for i in selected]
    elif action == "az_outage":
        done += az_outage(ec2, autoscaling, group, selected)
    return done


def _group_subnets(group):
    return [s for s in group.get("VPCZoneIdentifier", "").split(",") if s]


def az_outage(ec2, autoscaling, group, selected):
    """Take one AZ out: the group stops launching there and its instances stop.

    Removing the AZ's subnets from the group makes replacements go to the surviving
    AZs (as an impaired AZ or an ARC zonal shift would); the removed subnets are kept
    in a group tag so that revert can put them back.
    """
    zone = selected[0]["az"]
    subnets = _group_subnets(group)
    described = ec2.describe_subnets(SubnetIds=subnets, aws_retry=True)["Subnets"] if subnets else []
    removed = sorted(s["SubnetId"] for s in described if s["AvailabilityZone"] == zone)
    remaining = [s for s in subnets if s not in removed]
    if not remaining:
        raise ChaosError(f"availability_zone: {zone} holds every subnet of the group; no AZ would survive")
    name = group["AutoScalingGroupName"]
    autoscaling.create_or_update_tags(
        Tags=[
            {
                "ResourceId": name,
                "ResourceType": "auto-scaling-group",
                "Key": AZ_OUTAGE_TAG,
                "Value": ",".join(removed),
                "PropagateAtLaunch": False,
            }
        ],
        aws_retry=True,
    )
    autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=name, VPCZoneIdentifier=",".join(remaining), aws_retry=True
    )
    done = [{"action": "az_outage", "availability_zone": zone, "removed_subnets": removed, "at": stamp()}]
    ec2.stop_instances(InstanceIds=[s["id"] for s in selected], aws_retry=True)
    done += [_done("stop", i) for i in selected]
    return done


def revert(clients, action, group, stack, params, instance_ids=None):
    """Undo what can be undone of a fault; returns what was done (empty: nothing to undo)."""
    ec2, autoscaling, ssm = clients["ec2"], clients["autoscaling"], clients.get("ssm")
    name = group["AutoScalingGroupName"]
    in_service = [i["InstanceId"] for i in group.get("Instances", []) if i.get("LifecycleState") == "InService"]
    targets = instance_ids or in_service
    done = []
    if action in ("fail_health", "cpu_stress") and targets:
        commands = (
            heal_health_commands(params["install_dir"])
            if action == "fail_health"
            else stop_stress_commands(params["install_dir"])
        )
        command_id, _statuses, _outputs = run_shell(ssm, targets, commands)
        done += [_done(f"revert_{action}", {"id": i}, ssm_command_id=command_id) for i in targets]
    if action == "az_outage":
        tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
        removed = [s for s in tags.get(AZ_OUTAGE_TAG, "").split(",") if s]
        if removed:
            subnets = _group_subnets(group)
            restored = subnets + [s for s in removed if s not in subnets]
            autoscaling.update_auto_scaling_group(
                AutoScalingGroupName=name, VPCZoneIdentifier=",".join(restored), aws_retry=True
            )
            autoscaling.delete_tags(
                Tags=[{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": AZ_OUTAGE_TAG}], aws_retry=True
            )
            done.append({"action": "revert_az_outage", "restored_subnets": removed, "at": stamp()})
    if action in ("stop", "az_outage"):
        stopped = ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{STACK_TAG}", "Values": [stack]},
                {"Name": "tag:aws:autoscaling:groupName", "Values": [name]},
                {"Name": "instance-state-name", "Values": ["stopped"]},
            ],
            aws_retry=True,
        )
        ids = [i["InstanceId"] for r in stopped.get("Reservations", []) for i in r.get("Instances", [])]
        ids = [i for i in ids if not instance_ids or i in instance_ids]
        if ids:
            ec2.start_instances(InstanceIds=ids, aws_retry=True)
            done += [_done("start", {"id": i}) for i in ids]
    return done


def plan(clients, stack, group_name, params):
    """Read the group, run every guard and pick the instances; acts on nothing.

    Returns {"group", "selected", "desired", "healthy", "blast_radius_limit"}; raises
    ChaosError when a guard refuses.
    """
    check_fault_params(params)
    group = describe_group(clients["autoscaling"], group_name)
    guard_group(group, stack)
    members = [i["InstanceId"] for i in group.get("Instances", [])]
    described = describe_instances(clients["ec2"], members)
    guard_instances(group_name, members, described, stack)
    if params.get("instance_ids"):
        outside = sorted(set(params["instance_ids"]) - set(members))
        if outside:
            raise ChaosError(
                f"instance_ids: {', '.join(outside)} not in group {group_name!r} of stack {stack!r}; "
                f"allowed: {', '.join(sorted(members)) or 'none'}"
            )
    candidates = [
        {"id": i["InstanceId"], "az": i.get("AvailabilityZone")}
        for i in group.get("Instances", [])
        if i.get("LifecycleState") == "InService"
    ]
    zone = params.get("availability_zone")
    if params["action"] == "az_outage" and not zone:
        zones = sorted({c["az"] for c in candidates})
        if not zones:
            raise ChaosError(f"autoscaling_group_name: {group_name!r} has no instance in service")
        zone = random.Random(params.get("seed")).choice(zones)
    if params["action"] == "az_outage" and any(params.get(k) for k in ("count", "percent", "instance_ids")):
        raise ChaosError(
            "action: az_outage takes every instance of one availability_zone; "
            "do not give count, percent or instance_ids"
        )
    selected = select_instances(
        candidates,
        count=params.get("count"),
        percent=params.get("percent"),
        availability_zone=zone,
        instance_ids=params.get("instance_ids"),
        seed=params.get("seed"),
    )
    desired = group["DesiredCapacity"]
    limit = check_blast_radius(selected, desired, params.get("max_blast_radius") or DEFAULT_BLAST_RADIUS)
    healthy = healthy_count(clients["elbv2"], group)
    check_floor(healthy, selected, params.get("min_healthy"), params["action"])
    return {"group": group, "selected": selected, "desired": desired, "healthy": healthy, "blast_radius_limit": limit}


def healthy_count(elbv2, group):
    return sum(
        1 for arn in group.get("TargetGroupARNs", []) for t in target_health(elbv2, arn) if t["state"] == "healthy"
    )


def execute(clients, stack, planned, params, watch=0, interval=2.0):
    """Inject the planned fault, then watch the floor for `watch` seconds.

    When healthy capacity falls below min_healthy, the fault is reverted where it can
    be and the result says aborted. Returns {"done", "reverted", "aborted", "abort_reason"}.
    """
    done = inject(clients, params["action"], planned["selected"], planned["group"], params)
    result = {"done": done, "reverted": [], "aborted": False, "abort_reason": None}
    floor = params.get("min_healthy")
    deadline = time.monotonic() + watch
    while floor is not None and time.monotonic() < deadline:
        group = describe_group(clients["autoscaling"], planned["group"]["AutoScalingGroupName"])
        healthy = healthy_count(clients["elbv2"], group)
        if healthy < floor:
            result["aborted"] = True
            result["abort_reason"] = f"{healthy} healthy targets, below min_healthy {floor}"
            if params["action"] in REVERSIBLE:
                ids = [s["id"] for s in planned["selected"]] if params["action"] != "az_outage" else None
                result["reverted"] = revert(clients, params["action"], group, stack, params, instance_ids=ids)
            break
        time.sleep(interval)
    return result
