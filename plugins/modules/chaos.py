#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: chaos
short_description: Inject a guarded fault into the instances of a selfheal stack
version_added: 0.2.0
description:
  - Terminates, stops or reboots instances, fails their health check, stresses their CPU
    or takes a whole availability zone out, to prove that the stack heals.
  - Acts only on instances of the named Auto Scaling group, and only when the group and
    every one of its instances are tagged C(selfheal:stack) with O(stack); anything else is
    refused and nothing is done.
  - Hits at most O(max_blast_radius) of the desired capacity (default one third).
  - With O(min_healthy), refuses a fault that would leave fewer healthy targets than that,
    and while O(watch) runs, reverts what can be reverted when healthy capacity falls below it.
  - O(revert=true) undoes a reversible fault (V(stop), V(fail_health), V(cpu_stress),
    V(az_outage)); V(terminate) and V(reboot) cannot be undone.
  - Check mode reads everything, runs every guard and returns what it would do.
author:
  - selfheal.aws contributors (@selfheal-aws)
options:
  stack:
    description: Value of the C(selfheal:stack) tag the group and its instances must carry.
    type: str
    required: true
  autoscaling_group_name:
    description: Auto Scaling group whose in-service instances may be hit.
    type: str
    required: true
  action:
    description:
      - V(terminate) - terminate the instances (through EC2, or the Auto Scaling API with O(terminate_via=autoscaling)).
      - V(stop) - stop the instances (reversible).
      - V(reboot) - reboot the instances.
      - V(crash_app) - kill the web app with SIGKILL through SSM RunCommand and keep it down (its systemd
        unit is stopped on EC2), while the instance keeps running; the load balancer's health checks
        must find it and the Auto Scaling group replace the instance. Not reversible.
      - V(fail_health) - make the web app answer 503 on its health path while it keeps running, by
        creating C(<install_dir>/run/fail-health) through SSM RunCommand (reversible).
      - V(cpu_stress) - busy loops on every CPU for O(duration) seconds through SSM RunCommand (reversible).
      - V(az_outage) - take one availability zone out, reversibly. The zone's subnets are removed from the
        group (remembered in the group tag C(selfheal:az-outage)) so replacements launch in the surviving
        zones, and the zone's instances are stopped. A network ACL was not chosen because the group
        would keep launching into the blocked zone, which no real outage does for long.
    type: str
    required: true
    choices: [terminate, stop, reboot, crash_app, fail_health, cpu_stress, az_outage]
  count:
    description:
      - Number of instances to pick at random (reproducible with O(seed)).
      - One instance when no way of choosing is given.
    type: int
  percent:
    description: Percentage of the in-service instances to pick at random, rounded up.
    type: float
  availability_zone:
    description:
      - Pick every in-service instance in this zone.
      - For V(az_outage), the zone to take out; a random zone (by O(seed)) when omitted.
    type: str
  instance_ids:
    description: Pick these instances; each must be in service in the group.
    type: list
    elements: str
  seed:
    description: Seed of the random choice; the same seed picks the same instances of the same group.
    type: int
  max_blast_radius:
    description:
      - Largest share of the desired capacity that may be hit, as a fraction (V(1/3), V(0.5)) or a percentage (V(50%)).
      - Raise it explicitly to hit more.
    type: str
    default: "1/3"
  min_healthy:
    description: Floor of healthy targets; the fault is refused when it would go below, and aborted while O(watch) runs.
    type: int
  watch:
    description: Seconds to watch the healthy capacity after the fault (only with O(min_healthy)).
    type: int
    default: 0
  duration:
    description: Seconds the V(cpu_stress) runs (1-600).
    type: int
    default: 60
  install_dir:
    description: Installation directory of the web app on the instances.
    type: str
    default: /opt/selfheal-web
  terminate_via:
    description:
      - V(ec2) terminates abruptly; V(autoscaling) goes through the group, which deregisters and drains first.
    type: str
    default: ec2
    choices: [ec2, autoscaling]
  decrement_desired_capacity:
    description: With O(terminate_via=autoscaling), lower the desired capacity instead of replacing.
    type: bool
    default: false
  revert:
    description: Undo a reversible fault of O(action) on the group (all its instances, or O(instance_ids)).
    type: bool
    default: false
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Fail the health check of one random instance (the app keeps running)
  selfheal.aws.chaos:
    stack: selfheal
    autoscaling_group_name: selfheal-asg
    action: fail_health
    seed: 42

- name: Terminate two instances, allowing up to two thirds of the group, never below one healthy
  selfheal.aws.chaos:
    stack: selfheal
    autoscaling_group_name: selfheal-asg
    action: terminate
    count: 2
    max_blast_radius: 2/3
    min_healthy: 1

- name: Take us-east-1a out, then put it back
  selfheal.aws.chaos:
    stack: selfheal
    autoscaling_group_name: selfheal-asg
    action: az_outage
    availability_zone: us-east-1a
- name: Revert the AZ outage
  selfheal.aws.chaos:
    stack: selfheal
    autoscaling_group_name: selfheal-asg
    action: az_outage
    revert: true
"""

RETURN = r"""
selected:
  description: The instances picked (or that would be picked in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{"id": "i-0123456789abcdef0", "az": "us-east-1a"}]
done:
  description:
    - What was done, one entry per instance or resource.
    - Each has C(at), with C(utc) (ISO 8601) and C(epoch) (seconds).
  returned: always
  type: list
  elements: dict
  sample: [{"action": "stop", "instance_id": "i-0123456789abcdef0", "availability_zone": "us-east-1a",
            "at": {"utc": "2026-11-25T10:00:00.000+00:00", "epoch": 1795600800.0}}]
would_do:
  description: In check mode, what would be done.
  returned: check mode
  type: list
  elements: dict
reverted:
  description: What was undone (by O(revert), or by the stop condition).
  returned: always
  type: list
  elements: dict
aborted:
  description: Whether the stop condition fired.
  returned: always
  type: bool
abort_reason:
  description: Why the stop condition fired.
  returned: always
  type: str
desired:
  description: Desired capacity of the group before the fault.
  returned: unless O(revert)
  type: int
healthy:
  description: Healthy targets before the fault.
  returned: unless O(revert)
  type: int
blast_radius_limit:
  description: Largest number of instances the fault was allowed to hit.
  returned: unless O(revert)
  type: int
started:
  description: When the module started acting (C(utc), C(epoch)).
  returned: always
  type: dict
"""

try:  # noqa: SIM105 - the amazon.aws way: AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.selfheal.aws.plugins.module_utils.chaos import (
    REVERSIBLE,
    ChaosError,
    fault_argument_spec,
    guard_group,
)
from ansible_collections.selfheal.aws.plugins.module_utils.faults import execute, plan, revert
from ansible_collections.selfheal.aws.plugins.module_utils.recovery import stamp
from ansible_collections.selfheal.aws.plugins.module_utils.stack import describe_group


def clients(module):
    retry = AWSRetry.jittered_backoff(retries=5)
    return {name: module.client(name, retry_decorator=retry) for name in ("ec2", "autoscaling", "elbv2", "ssm")}


def do_revert(module, aws):
    params = module.params
    if params["action"] not in REVERSIBLE:
        raise ChaosError(f"action: {params['action']} cannot be reverted; reversible: {', '.join(REVERSIBLE)}")
    group = describe_group(aws["autoscaling"], params["autoscaling_group_name"])
    guard_group(group, params["stack"])
    if module.check_mode:
        return {
            "changed": True,
            "would_do": [{"action": f"revert_{params['action']}", "group": params["autoscaling_group_name"]}],
        }
    reverted = revert(aws, params["action"], group, params["stack"], params, instance_ids=params["instance_ids"])
    return {"changed": bool(reverted), "reverted": reverted}


def do_fault(module, aws):
    params = module.params
    planned = plan(aws, params["stack"], params["autoscaling_group_name"], params)
    result = {
        "selected": planned["selected"],
        "desired": planned["desired"],
        "healthy": planned["healthy"],
        "blast_radius_limit": planned["blast_radius_limit"],
    }
    if module.check_mode:
        result["would_do"] = [
            {"action": params["action"], "instance_id": s["id"], "availability_zone": s["az"]}
            for s in planned["selected"]
        ]
        result["changed"] = True
        return result
    result.update(execute(aws, params["stack"], planned, params, watch=params["watch"]))
    result["changed"] = True
    return result


def main():
    argument_spec = fault_argument_spec()
    argument_spec.update(
        stack=dict(type="str", required=True),
        autoscaling_group_name=dict(type="str", required=True),
        watch=dict(type="int", default=0),
        revert=dict(type="bool", default=False),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[["count", "percent", "availability_zone", "instance_ids"]],
    )
    result = {
        "changed": False,
        "selected": [],
        "done": [],
        "reverted": [],
        "aborted": False,
        "abort_reason": None,
        "started": stamp(),
    }
    aws = clients(module)
    try:
        result.update(do_revert(module, aws) if module.params["revert"] else do_fault(module, aws))
    except ChaosError as error:
        module.fail_json(msg=str(error), **result)
    except (BotoCoreError, ClientError) as error:
        module.fail_json_aws(error, msg="Failed to run the chaos action", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
