# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the state of a selfheal stack: Auto Scaling group, target health, alarms, HTTP probes.

Every boto call is one small function with AWSRetry; callers pass clients made by
AnsibleAWSModule.client(..., retry_decorator=AWSRetry.jittered_backoff()).
"""

from __future__ import annotations

import json
import time
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

RETRY = AWSRetry.jittered_backoff(retries=5)


def describe_group(autoscaling, name):
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name], aws_retry=True)
    found = groups.get("AutoScalingGroups", [])
    return found[0] if found else None


def describe_instances(ec2, instance_ids):
    """{instance_id: {"id", "az", "state", "subnet_id", "tags"}} of the ids that exist."""
    if not instance_ids:
        return {}
    found = {}
    described = ec2.describe_instances(InstanceIds=list(instance_ids), aws_retry=True)
    for reservation in described.get("Reservations", []):
        for instance in reservation.get("Instances", []):
            found[instance["InstanceId"]] = {
                "id": instance["InstanceId"],
                "az": instance.get("Placement", {}).get("AvailabilityZone"),
                "state": instance.get("State", {}).get("Name"),
                "subnet_id": instance.get("SubnetId"),
                "tags": {t["Key"]: t["Value"] for t in instance.get("Tags", [])},
            }
    return found


def resolve_target_groups(elbv2, names_or_arns):
    """Target group ARNs from ARNs or names (names are looked up)."""
    arns = [n for n in names_or_arns if n.startswith("arn:")]
    names = [n for n in names_or_arns if not n.startswith("arn:")]
    if names:
        found = elbv2.describe_target_groups(Names=names, aws_retry=True)["TargetGroups"]
        arns += [g["TargetGroupArn"] for g in found]
    return arns


def target_health(elbv2, target_group_arn):
    """[{"id", "port", "state", "reason", "description", "target_group_arn"}]."""
    described = elbv2.describe_target_health(TargetGroupArn=target_group_arn, aws_retry=True)
    return [
        {
            "id": d["Target"]["Id"],
            "port": d["Target"].get("Port"),
            "state": d.get("TargetHealth", {}).get("State"),
            "reason": d.get("TargetHealth", {}).get("Reason"),
            "description": d.get("TargetHealth", {}).get("Description"),
            "target_group_arn": target_group_arn,
        }
        for d in described.get("TargetHealthDescriptions", [])
    ]


def load_balancer_url(elbv2, name):
    """http://<DNS name>/ of an application load balancer."""
    found = elbv2.describe_load_balancers(Names=[name], aws_retry=True)["LoadBalancers"]
    return f"http://{found[0]['DNSName']}/"


@RETRY
def alarm_states(cloudwatch, names=None, prefix=None):
    """{alarm name: state} of the named alarms, or of every alarm whose name starts with prefix."""
    if not names and not prefix:
        return {}
    kwargs = {"AlarmNames": list(names)} if names else {"AlarmNamePrefix": prefix}
    paginator = cloudwatch.get_paginator("describe_alarms")
    result = paginator.paginate(**kwargs).build_full_result()
    return {a["AlarmName"]: a["StateValue"] for a in result.get("MetricAlarms", [])}


def probe(url, timeout=2.0):
    """One GET: status, latency and the instance that answered (the web app's JSON)."""
    started = time.monotonic()
    result = {
        "url": url,
        "status": None,
        "latency": None,
        "instance_id": None,
        "availability_zone": None,
        "error": None,
    }
    try:
        # no proxy: the probe must reach the load balancer itself, as the load does
        with open_url(url, timeout=timeout, use_proxy=False) as response:
            body = response.read()
            result["status"] = response.status
    except urllib.error.HTTPError as error:
        body = b""
        result["status"] = error.code
        result["error"] = f"HTTP {error.code}"
    except (OSError, ValueError, UrlConnectionError) as error:
        body = b""
        result["error"] = str(getattr(error, "reason", error))
    result["latency"] = round(time.monotonic() - started, 6)
    try:
        answer = json.loads(body.decode() or "{}")
        if isinstance(answer, dict):
            result["instance_id"] = answer.get("instance_id")
            result["availability_zone"] = answer.get("availability_zone")
    except ValueError:
        pass
    result["ok"] = result["status"] is not None and 200 <= result["status"] < 400
    return result


def snapshot(autoscaling, elbv2, group_name, target_group_arns, cloudwatch=None, alarm_names=None, alarm_prefix=None):
    """One sample of the stack, in the shape recovery.py computes on."""
    now = time.time()
    group = describe_group(autoscaling, group_name)
    if group is None:
        return {
            "t": now,
            "exists": False,
            "desired": 0,
            "in_service": 0,
            "healthy": 0,
            "unhealthy": 0,
            "instances": [],
            "targets": [],
            "group_instances": [],
            "alarms": {},
        }
    arns = target_group_arns or group.get("TargetGroupARNs", [])
    targets = [t for arn in arns for t in target_health(elbv2, arn)]
    group_instances = [
        {
            "id": i["InstanceId"],
            "az": i.get("AvailabilityZone"),
            "lifecycle_state": i.get("LifecycleState"),
            "health_status": i.get("HealthStatus"),
        }
        for i in group.get("Instances", [])
    ]
    alarms = alarm_states(cloudwatch, alarm_names, alarm_prefix) if cloudwatch is not None else {}
    return {
        "t": now,
        "exists": True,
        "desired": group["DesiredCapacity"],
        "min_size": group.get("MinSize"),
        "max_size": group.get("MaxSize"),
        "in_service": sum(1 for i in group_instances if i["lifecycle_state"] == "InService"),
        "healthy": sum(1 for t in targets if t["state"] == "healthy"),
        "unhealthy": sum(1 for t in targets if t["state"] == "unhealthy"),
        "instances": sorted(i["id"] for i in group_instances),
        "group_instances": group_instances,
        "targets": targets,
        "target_group_arns": arns,
        "alarms": alarms,
    }


def problems(sample, probes):
    """What keeps the stack from being healthy, in words; empty when it is."""
    found = []
    if not sample.get("exists", True):
        return ["the Auto Scaling group does not exist"]
    desired = sample["desired"]
    if sample["in_service"] != desired:
        found.append(f"{sample['in_service']} instances in service, desired {desired}")
    if sample["healthy"] != desired:
        found.append(f"{sample['healthy']} healthy targets, desired {desired}")
    for target in sample["targets"]:
        if target["state"] != "healthy":
            reason = ": ".join(x for x in (target.get("reason"), target.get("description")) if x)
            found.append(f"target {target['id']} is {target['state']}" + (f" ({reason})" if reason else ""))
    for instance in sample["group_instances"]:
        if instance["lifecycle_state"] != "InService" or instance["health_status"] != "Healthy":
            found.append(f"instance {instance['id']} is {instance['lifecycle_state']}/{instance['health_status']}")
    failed = [p for p in probes if not p["ok"]]
    if failed:
        found.append(
            f"{len(failed)} of {len(probes)} probes failed ("
            + ", ".join(sorted({p["error"] or str(p["status"]) for p in failed}))
            + ")"
        )
    return found
