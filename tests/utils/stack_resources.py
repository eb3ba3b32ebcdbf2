"""List what is left of a stack in an AWS endpoint: every resource tagged selfheal:stack=<stack>.

Used after teardown.yml (molecule `destroy`, benchmarks/converge) to prove that nothing of
the stack remains. Terminated instances are not counted: EC2 keeps showing them for a while,
on AWS as in the sandbox. Alarms carry no tags in amazon.aws.cloudwatch_metric_alarm, so
they are matched by the stack's name prefix.

    python tests/utils/stack_resources.py --endpoint http://127.0.0.1:4599 --stack selfheal
prints {"kind": [ids...]} for the kinds that still have resources; exit code 1 when any do.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3

TAG = "selfheal:stack"


def remaining(stack: str, **client_args: Any) -> dict[str, list[str]]:
    """Resources of the stack by kind; kinds with nothing left are omitted."""

    def client(service: str) -> Any:
        return boto3.client(service, **client_args)

    ec2, elbv2, autoscaling = client("ec2"), client("elbv2"), client("autoscaling")
    cloudwatch, sns = client("cloudwatch"), client("sns")
    tagged = [{"Name": f"tag:{TAG}", "Values": [stack]}]

    def tagged_arns(arns: list[str]) -> list[str]:
        # DescribeTags takes at most 20 ARNs per call
        found = []
        for start in range(0, len(arns), 20):
            for description in elbv2.describe_tags(ResourceArns=arns[start : start + 20])["TagDescriptions"]:
                if {"Key": TAG, "Value": stack} in description["Tags"]:
                    found.append(description["ResourceArn"])
        return found

    def tagged_topics() -> list[str]:
        topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
        return [
            arn for arn in topics if {"Key": TAG, "Value": stack} in sns.list_tags_for_resource(ResourceArn=arn)["Tags"]
        ]

    kinds = {
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=tagged)["Vpcs"]],
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=tagged)["Subnets"]],
        "internet_gateways": [
            g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=tagged)["InternetGateways"]
        ],
        "route_tables": [t["RouteTableId"] for t in ec2.describe_route_tables(Filters=tagged)["RouteTables"]],
        "security_groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]],
        "instances": [
            i["InstanceId"]
            for r in ec2.describe_instances(Filters=tagged)["Reservations"]
            for i in r["Instances"]
            if i["State"]["Name"] != "terminated"
        ],
        "images": [i["ImageId"] for i in ec2.describe_images(Owners=["self"], Filters=tagged)["Images"]],
        "snapshots": [s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=tagged)["Snapshots"]],
        "volumes": [v["VolumeId"] for v in ec2.describe_volumes(Filters=tagged)["Volumes"] if v["State"] != "deleted"],
        "launch_templates": [
            t["LaunchTemplateName"] for t in ec2.describe_launch_templates(Filters=tagged)["LaunchTemplates"]
        ],
        "load_balancers": tagged_arns([b["LoadBalancerArn"] for b in elbv2.describe_load_balancers()["LoadBalancers"]]),
        "target_groups": tagged_arns([t["TargetGroupArn"] for t in elbv2.describe_target_groups()["TargetGroups"]]),
        "autoscaling_groups": [
            g["AutoScalingGroupName"]
            for g in autoscaling.describe_auto_scaling_groups(Filters=[{"Name": f"tag:{TAG}", "Values": [stack]}])[
                "AutoScalingGroups"
            ]
        ],
        "alarms": [a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNamePrefix=f"{stack}-")["MetricAlarms"]],
        "topics": tagged_topics(),
    }
    return {kind: ids for kind, ids in kinds.items() if ids}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="value of the selfheal:stack tag")
    parser.add_argument("--endpoint", help="AWS API endpoint (the sandbox); default: AWS itself")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    client_args: dict[str, Any] = {"region_name": args.region}
    if args.endpoint:
        client_args["endpoint_url"] = args.endpoint
    left = remaining(args.stack, **client_args)
    json.dump(left, sys.stdout, indent=2, sort_keys=True)
    print()
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
