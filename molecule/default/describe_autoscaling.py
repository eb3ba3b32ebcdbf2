"""Print an Auto Scaling group's scaling policies and SNS notifications as JSON.

amazon.aws has no _info module for either (autoscaling_group_info returns neither), so
the verify step reads them with boto3. Endpoint and credentials come from the AWS_*
environment variables.

    python describe_autoscaling.py <group name>
"""

import json
import sys

import boto3

group = sys.argv[1]
autoscaling = boto3.client("autoscaling")
policies = autoscaling.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"]
notifications = autoscaling.describe_notification_configurations(AutoScalingGroupNames=[group])
json.dump(
    {
        "policies": {p["PolicyName"]: p for p in policies},
        "notifications": notifications["NotificationConfigurations"],
    },
    sys.stdout,
    default=str,
)
