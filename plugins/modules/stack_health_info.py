#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_health_info
short_description: Report whether a selfheal stack is healthy, optionally waiting until it is
version_added: 0.2.0
description:
  - Reads the Auto Scaling group (desired and in-service capacity, each instance's lifecycle
    and health), the health of every target with its reason, and sends HTTP probes through the
    load balancer, reporting status, latency and which instance answered.
  - The stack is healthy when desired == in service == healthy targets, every target is
    healthy and every probe succeeds.
  - With O(wait=true), waits until it is, up to O(timeout) seconds, then fails with an account
    of what is still wrong.
  - Probes go only to O(url), or when it is not given to C(http://<DNS name>/) of O(load_balancer_name).
author:
  - selfheal.aws contributors (@selfheal-aws)
options:
  autoscaling_group_name:
    description: Name of the stack's Auto Scaling group.
    type: str
    required: true
  target_groups:
    description: Target group names or ARNs; the group's own target groups when omitted.
    type: list
    elements: str
  url:
    description:
      - URL to probe, e.g. the ALB's address (in the sandbox, the local address of its listener).
    type: str
  load_balancer_name:
    description: Application load balancer whose DNS name is probed when O(url) is not given.
    type: str
  probes:
    description: Number of HTTP GETs per check; 0 for none.
    type: int
    default: 3
  probe_timeout:
    description: Seconds a probe may take.
    type: float
    default: 2.0
  alarm_name_prefix:
    description: Also report the state of the CloudWatch alarms whose names start with this.
    type: str
  wait:
    description: Wait until the stack is healthy; fail after O(timeout) seconds.
    type: bool
    default: false
  timeout:
    description: Seconds to wait with O(wait=true).
    type: int
    default: 300
  interval:
    description: Seconds between checks with O(wait=true).
    type: float
    default: 5.0
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Wait up to 5 minutes until every instance is in service and healthy and the ALB answers
  selfheal.aws.stack_health_info:
    autoscaling_group_name: selfheal-asg
    load_balancer_name: selfheal-alb
    wait: true
    timeout: 300

- name: Read the health now, probing a given URL
  selfheal.aws.stack_health_info:
    autoscaling_group_name: selfheal-asg
    target_groups: [selfheal-tg]
    url: http://127.0.0.1:8081/
  register: health
"""

RETURN = r"""
healthy:
  description: Whether desired == in service == healthy targets and every probe succeeded.
  returned: always
  type: bool
problems:
  description: What keeps the stack from being healthy, one sentence each; empty when healthy.
  returned: always
  type: list
  elements: str
  sample: ["2 healthy targets, desired 3", "target i-0abc is unhealthy (Target.ResponseCodeMismatch)"]
autoscaling_group:
  description: Capacity of the group.
  returned: always
  type: dict
  sample: {"name": "selfheal-asg", "desired": 3, "min_size": 2, "max_size": 6, "in_service": 3, "healthy_targets": 3}
instances:
  description: Instances of the group with their zone, lifecycle state and health status.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "i-0abc", "az": "us-east-1a", "lifecycle_state": "InService", "health_status": "Healthy"}]
targets:
  description: Every target with its state, reason and description.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "i-0abc", "port": 8080, "state": "healthy", "reason": null, "description": null}]
probes:
  description: The HTTP probes of the last check, with status, latency (seconds) and the instance that answered.
  returned: always
  type: list
  elements: dict
  sample: [{"url": "http://127.0.0.1:8081/", "status": 200, "ok": true, "latency": 0.002,
            "instance_id": "i-0abc", "availability_zone": "us-east-1a", "error": null}]
alarms:
  description: State of each alarm matching O(alarm_name_prefix).
  returned: always
  type: dict
  sample: {"selfheal-cpu-high": "OK"}
url:
  description: The URL probed.
  returned: always
  type: str
checks:
  description: Number of checks made (more than one with O(wait=true)).
  returned: always
  type: int
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
"""

import time

try:  # noqa: SIM105 - the amazon.aws way: AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.selfheal.aws.plugins.module_utils.stack import (
    load_balancer_url,
    probe,
    problems,
    resolve_target_groups,
    snapshot,
)


def check(aws, params, target_group_arns, url):
    sample = snapshot(
        aws["autoscaling"],
        aws["elbv2"],
        params["autoscaling_group_name"],
        target_group_arns,
        cloudwatch=aws["cloudwatch"] if params["alarm_name_prefix"] else None,
        alarm_prefix=params["alarm_name_prefix"],
    )
    probes = [probe(url, params["probe_timeout"]) for _index in range(params["probes"])] if url else []
    return sample, probes


def report(params, sample, probes, url, checks, waited):
    found = problems(sample, probes)
    return {
        "changed": False,
        "healthy": not found,
        "problems": found,
        "autoscaling_group": {
            "name": params["autoscaling_group_name"],
            "desired": sample["desired"],
            "min_size": sample.get("min_size"),
            "max_size": sample.get("max_size"),
            "in_service": sample["in_service"],
            "healthy_targets": sample["healthy"],
        },
        "instances": sample["group_instances"],
        "targets": sample["targets"],
        "probes": probes,
        "alarms": sample["alarms"],
        "url": url,
        "checks": checks,
        "waited": round(waited, 3),
    }


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            autoscaling_group_name=dict(type="str", required=True),
            target_groups=dict(type="list", elements="str"),
            url=dict(type="str"),
            load_balancer_name=dict(type="str"),
            probes=dict(type="int", default=3),
            probe_timeout=dict(type="float", default=2.0),
            alarm_name_prefix=dict(type="str"),
            wait=dict(type="bool", default=False),
            timeout=dict(type="int", default=300),
            interval=dict(type="float", default=5.0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for field in ("probes", "timeout"):
        if params[field] < 0:
            module.fail_json(msg=f"{field}: {params[field]} must be 0 or more")
    if params["interval"] <= 0:
        module.fail_json(msg=f"interval: {params['interval']} must be above 0")
    retry = AWSRetry.jittered_backoff(retries=5)
    aws = {name: module.client(name, retry_decorator=retry) for name in ("autoscaling", "elbv2", "cloudwatch")}
    started = time.monotonic()
    try:
        url = params["url"] or (
            load_balancer_url(aws["elbv2"], params["load_balancer_name"]) if params["load_balancer_name"] else None
        )
        arns = resolve_target_groups(aws["elbv2"], params["target_groups"]) if params["target_groups"] else None
        checks = 1
        sample, probes = check(aws, params, arns, url)
        while params["wait"] and problems(sample, probes) and time.monotonic() - started < params["timeout"]:
            time.sleep(min(params["interval"], max(0.0, params["timeout"] - (time.monotonic() - started))))
            checks += 1
            sample, probes = check(aws, params, arns, url)
    except (BotoCoreError, ClientError) as error:
        module.fail_json_aws(error, msg="Failed to read the health of the stack")
    result = report(params, sample, probes, url, checks, time.monotonic() - started)
    if params["wait"] and not result["healthy"]:
        module.fail_json(
            msg=f"The stack is not healthy after {result['waited']:.0f} s (timeout {params['timeout']} s): "
            + "; ".join(result["problems"]),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
