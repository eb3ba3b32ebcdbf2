#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: game_day
short_description: Measure how a selfheal stack detects and recovers from a fault under load
version_added: 0.2.0
description:
  - Sends a bounded, open-loop HTTP load (fixed O(rate) for O(duration) seconds) to O(url) while it
    samples target health, the Auto Scaling group and alarm states every O(sample_interval) seconds.
  - After O(fault_after) seconds it injects O(fault) with the same guards as M(selfheal.aws.chaos)
    (stack tag, blast radius, min_healthy); without O(fault) the load itself is the event (scale-out).
  - From the fault's timestamp it computes time to detect (a target unhealthy or an instance out of
    service), time to replacement launched, time to recover (healthy capacity back to desired and probes
    succeeding), time to scale out, requests sent and failed, the failure rate and latency p50/p95/p99.
  - A fault that does not recover before the load ends is reported as C(timeout), never as a number.
  - With O(report_dir), writes C(<report_dir>/<stack>-<scenario>-<UTC timestamp>/) with C(report.json),
    C(report.md) and C(timeline.png).
  - Check mode checks the input and runs the fault's guards, sending no request and injecting nothing.
author:
  - selfheal.aws contributors (@selfheal-aws)
requirements:
  - httpx
  - matplotlib (for timeline.png)
options:
  stack:
    description: Value of the C(selfheal:stack) tag of the group and its instances.
    type: str
    required: true
  autoscaling_group_name:
    description: The stack's Auto Scaling group.
    type: str
    required: true
  url:
    description: URL the load and the probes go to (the ALB); nothing else receives requests.
    type: str
    required: true
  target_groups:
    description: Target group names or ARNs to sample; the group's own when omitted.
    type: list
    elements: str
  alarm_name_prefix:
    description: Sample the state of the alarms whose names start with this.
    type: str
  scenario:
    description: Name of the scenario in the report; the fault's action (or V(load)) when omitted.
    type: str
  rate:
    description: Requests per second (above 0, at most 200).
    type: float
    default: 20
  duration:
    description: Seconds of load (above 0, at most 600); measuring ends with it.
    type: int
    default: 120
  request_timeout:
    description: Seconds a request may take before it counts as failed (above 0, at most 60).
    type: float
    default: 5
  sample_interval:
    description: Seconds between samples of the stack.
    type: float
    default: 2
  fault_after:
    description: Seconds of load before the fault (the baseline).
    type: float
    default: 10
  stop_after_recovery:
    description: End the load this many seconds after recovery instead of running the full O(duration).
    type: float
  time_scale:
    description:
      - How many times faster than AWS the target runs (the sandbox's time scale).
      - Every time is then also reported as C(aws_seconds) = wall seconds x O(time_scale); SLOs are in AWS seconds.
    type: float
    default: 1
  slos:
    description: Service level objectives, in AWS seconds; each is reported as pass or fail.
    type: dict
    suboptions:
      max_ttd:
        description: Longest time to detect.
        type: float
      max_ttr:
        description: Longest time to recover.
        type: float
      max_replacement:
        description: Longest time until a replacement instance is launched.
        type: float
      max_scale_out:
        description: Longest time until the desired capacity grows.
        type: float
      min_success_rate:
        description: Lowest share of successful requests (0-1).
        type: float
      max_failed_requests:
        description: Most failed requests.
        type: int
      max_failed_over_floor:
        description: Most failed requests after the fault, as a multiple of the floor rate x TTD / N.
        type: float
  report_dir:
    description: Folder under which the report folder is written; no report when omitted.
    type: path
  fault:
    description: The fault to inject, with the options of M(selfheal.aws.chaos).
    type: dict
    suboptions:
      action:
        description: What to do; see M(selfheal.aws.chaos).
        type: str
        required: true
        choices: [terminate, stop, reboot, crash_app, fail_health, cpu_stress, az_outage]
      count:
        description: Number of instances to pick at random.
        type: int
      percent:
        description: Percentage of the in-service instances to pick at random.
        type: float
      availability_zone:
        description: Pick every instance of this zone (the zone of V(az_outage)).
        type: str
      instance_ids:
        description: Pick these instances.
        type: list
        elements: str
      seed:
        description: Seed of the random choice.
        type: int
      max_blast_radius:
        description: Largest share of the desired capacity that may be hit (V(1/3), V(0.5), V(50%)).
        type: str
        default: "1/3"
      min_healthy:
        description: Floor of healthy targets the fault may not go below.
        type: int
      duration:
        description: Seconds of V(cpu_stress) (1-600).
        type: int
        default: 60
      install_dir:
        description: Installation directory of the web app on the instances.
        type: str
        default: /opt/selfheal-web
      terminate_via:
        description: V(ec2) terminates abruptly; V(autoscaling) goes through the group (drains first).
        type: str
        default: ec2
        choices: [ec2, autoscaling]
      decrement_desired_capacity:
        description: With O(fault.terminate_via=autoscaling), lower the desired capacity instead of replacing.
        type: bool
        default: false
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Crash-test one instance under 50 requests/s and write a report
  selfheal.aws.game_day:
    stack: selfheal
    autoscaling_group_name: selfheal-asg
    url: http://127.0.0.1:8081/
    rate: 50
    duration: 180
    fault:
      action: fail_health
      seed: 1
    slos:
      max_ttd: 11
      max_ttr: 120
      min_success_rate: 0.99
    report_dir: reports
  register: game_day

- name: Fail the play when an SLO was missed (after the report is written)
  ansible.builtin.assert:
    that: game_day.passed
    fail_msg: "SLO missed, see {{ game_day.report.markdown }}"
"""

RETURN = r"""
passed:
  description: Whether every SLO passed (true when no SLO was given).
  returned: always
  type: bool
slos:
  description: One verdict per SLO.
  returned: always
  type: list
  elements: dict
  sample: [{"slo": "max_ttd", "limit": 11, "actual": 10.2, "passed": true, "why": "measured"}]
metrics:
  description:
    - C(detect), C(replacement), C(recover) and C(scale_out), each with C(status) (C(measured), C(timeout)),
      C(seconds) (wall), C(aws_seconds) (wall x time_scale) and C(at) (epoch).
  returned: always
  type: dict
  sample: {"detect": {"status": "measured", "seconds": 2.0, "aws_seconds": 10.0, "at": 1795600812.0},
           "recover": {"status": "timeout", "seconds": null, "aws_seconds": null, "waited": 120.0}}
requests:
  description: Requests sent, failed, failure and success rate, latency p50/p95/p99 (seconds), counts by status.
  returned: always
  type: dict
failure_floor:
  description: Requests any load balancer loses when one of N instances dies, rate x TTD / N (wall seconds).
  returned: always
  type: float
fault:
  description: The fault and exactly what was done, with timestamps.
  returned: always
  type: dict
fault_at:
  description:
    - When the fault was injected (the time measurements start from), C(utc) and C(epoch).
    - Just before the API call; for faults sent through SSM RunCommand, when the instance applied it
      (the clock it printed), never earlier than the call.
  returned: always
  type: dict
timeline:
  description: The samples of the stack and the per-second request counts.
  returned: always
  type: dict
alarm_transitions:
  description: Every alarm state change seen, with its time.
  returned: always
  type: list
  elements: dict
report:
  description: Paths of the report folder and its files.
  returned: when O(report_dir) is set
  type: dict
  sample: {"dir": "reports/selfheal-fail_health-20261125T100000Z", "json": "...", "markdown": "...", "png": "..."}
"""

import asyncio
import contextlib
import time

try:  # noqa: SIM105 - the amazon.aws way: AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.selfheal.aws.plugins.module_utils import load, report
from ansible_collections.selfheal.aws.plugins.module_utils.chaos import ChaosError, fault_argument_spec
from ansible_collections.selfheal.aws.plugins.module_utils.faults import execute, plan
from ansible_collections.selfheal.aws.plugins.module_utils.recovery import SLOS, RecoveryWatch, build_result
from ansible_collections.selfheal.aws.plugins.module_utils.stack import resolve_target_groups, snapshot


class GameDay:
    """One run: load, sampler and fault on one event loop; boto calls in threads."""

    def __init__(self, params, aws, target_group_arns):
        self.params = params
        self.aws = aws
        self.arns = target_group_arns
        self.samples = []
        self.requests = []
        self.fault_time = None
        self.fault = None
        self.watch = None
        self.recovered_at = None

    def sample(self):
        return snapshot(
            self.aws["autoscaling"],
            self.aws["elbv2"],
            self.params["autoscaling_group_name"],
            self.arns,
            cloudwatch=self.aws["cloudwatch"] if self.params["alarm_name_prefix"] else None,
            alarm_prefix=self.params["alarm_name_prefix"],
        )

    def follow_recovery(self, taken):
        """Recovered as the report will say it (after detection, not after a lost probe)."""
        if self.fault_time is None:
            return
        if self.watch is None or self.watch.fault_time != self.fault_time:
            # The fault's time is set, or moved to when an instance applied it: start over.
            self.watch = RecoveryWatch(self.fault_time)
            for earlier in self.samples:
                self.watch.add(earlier)
        else:
            self.watch.add(taken)
        self.recovered_at = self.watch.recovered

    async def probe(self, client):
        try:
            response = await client.get(self.params["url"])
            return 200 <= response.status_code < 400
        except load.httpx.HTTPError:
            return False

    async def sampler(self, client, stop):
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            # One sample per interval, however long one takes; probe and API calls side by side.
            due = loop.time() + self.params["sample_interval"]
            probe_ok, taken = await asyncio.gather(self.probe(client), asyncio.to_thread(self.sample))
            taken["probe_ok"] = probe_ok
            self.samples.append(taken)
            self.follow_recovery(taken)
            after = self.params["stop_after_recovery"]
            if after is not None and self.recovered_at is not None and time.time() - self.recovered_at >= after:
                stop.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), max(due - loop.time(), 0))

    async def injector(self, planned_fault):
        await asyncio.sleep(self.params["fault_after"])
        fault_params = self.params["fault"]
        planned = await asyncio.to_thread(
            plan, self.aws, self.params["stack"], self.params["autoscaling_group_name"], fault_params
        )
        # Measured from just before the API call: never kinder than what happened.
        self.fault_time = time.time()
        # With a floor, the stop condition watches for the rest of the run.
        watch = (
            self.params["duration"] - self.params["fault_after"] if fault_params.get("min_healthy") is not None else 0
        )
        outcome = await asyncio.to_thread(execute, self.aws, self.params["stack"], planned, fault_params, watch)
        # An SSM fault says when the instance applied it: the measurements start there.
        applied = [d["applied_at"] for d in outcome["done"] if d.get("applied_at")]
        if applied:
            self.fault_time = max(self.fault_time, min(applied))
        self.fault = dict(planned_fault, selected=planned["selected"], **outcome)

    async def run(self):
        stop = asyncio.Event()
        params = self.params
        async with load.make_client(params["request_timeout"]) as client:
            sampler = asyncio.ensure_future(self.sampler(client, stop))
            injector = (
                asyncio.ensure_future(self.injector({"action": params["fault"]["action"]})) if params["fault"] else None
            )
            loader = asyncio.ensure_future(
                load.run_load(client, params["url"], params["rate"], params["duration"], self.requests, stop)
            )
            try:
                if injector is not None:
                    await injector
                await loader
            finally:
                stop.set()
                for task in (sampler, injector, loader):
                    if task is not None and not task.done():
                        task.cancel()
                await asyncio.gather(sampler, loader, *([injector] if injector else []), return_exceptions=True)
            # one last sample after the load: the state the run ended in
            last = await asyncio.to_thread(self.sample)
            self.samples.append(dict(last, probe_ok=await self.probe(client)))


def check_input(params):
    load.check_load(params["rate"], params["duration"], params["request_timeout"])
    if params["sample_interval"] <= 0:
        raise ValueError(f"sample_interval: {params['sample_interval']} must be above 0")
    if not 0 <= params["fault_after"] < params["duration"]:
        raise ValueError(
            f"fault_after: {params['fault_after']} must be 0 or more and below duration {params['duration']}"
        )
    if params["time_scale"] <= 0:
        raise ValueError(f"time_scale: {params['time_scale']} must be above 0")
    if not params["url"].startswith(("http://", "https://")):
        raise ValueError(f"url: {params['url']!r} must be an http:// or https:// URL")


def main():
    slo_options = {name: dict(type="int" if name == "max_failed_requests" else "float") for name in SLOS}
    module = AnsibleAWSModule(
        argument_spec=dict(
            stack=dict(type="str", required=True),
            autoscaling_group_name=dict(type="str", required=True),
            url=dict(type="str", required=True),
            target_groups=dict(type="list", elements="str"),
            alarm_name_prefix=dict(type="str"),
            scenario=dict(type="str"),
            rate=dict(type="float", default=20),
            duration=dict(type="int", default=120),
            request_timeout=dict(type="float", default=5),
            sample_interval=dict(type="float", default=2),
            fault_after=dict(type="float", default=10),
            stop_after_recovery=dict(type="float"),
            time_scale=dict(type="float", default=1),
            slos=dict(type="dict", options=slo_options),
            report_dir=dict(type="path"),
            fault=dict(type="dict", options=fault_argument_spec()),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        check_input(params)
    except ValueError as error:
        module.fail_json(msg=str(error))
    if not load.HAS_HTTPX:
        module.fail_json(msg=missing_required_lib("httpx"), exception=load.HTTPX_IMPORT_ERROR)
    if params["report_dir"] and not report.HAS_MATPLOTLIB:
        module.fail_json(msg=missing_required_lib("matplotlib"), exception=report.MATPLOTLIB_IMPORT_ERROR)
    retry = AWSRetry.jittered_backoff(retries=5)
    aws = {
        name: module.client(name, retry_decorator=retry)
        for name in ("ec2", "autoscaling", "elbv2", "ssm", "cloudwatch")
    }
    scenario = params["scenario"] or (params["fault"]["action"] if params["fault"] else "load")
    try:
        arns = resolve_target_groups(aws["elbv2"], params["target_groups"]) if params["target_groups"] else None
        if params["fault"]:
            # The guards run before any request is sent: bad input does nothing.
            planned = plan(aws, params["stack"], params["autoscaling_group_name"], params["fault"])
        if module.check_mode:
            module.exit_json(changed=False, passed=True, would_select=planned["selected"] if params["fault"] else [])
        run = GameDay(params, aws, arns)
        start = time.time()
        asyncio.run(run.run())
        end = time.time()
    except ChaosError as error:
        module.fail_json(msg=str(error), changed=False)
    except (BotoCoreError, ClientError) as error:
        module.fail_json_aws(error, msg="Failed to run the game day")
    fault = run.fault if params["fault"] else None
    result = build_result(
        params["stack"],
        scenario,
        run.samples,
        run.requests,
        start,
        end,
        fault_time=run.fault_time,
        fault=fault,
        rate=params["rate"],
        time_scale=params["time_scale"],
        slos={k: v for k, v in (params["slos"] or {}).items() if v is not None},
    )
    if params["report_dir"]:
        result["report"] = report.write_report(params["report_dir"], result)
    module.exit_json(changed=bool(fault), **result)


if __name__ == "__main__":
    main()
