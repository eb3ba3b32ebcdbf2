"""moto 5.2.5 gaps the sandbox closes, each checked through boto3 as AWS documents it."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import RunningSandbox, launch, make_subnets

# -- a. CreateImage with snapshot tag specifications


def test_create_image_applies_image_and_snapshot_tags(aws: RunningSandbox, ec2: Any) -> None:
    """CreateImage TagSpecifications: ResourceType image tags the AMI, ResourceType
    snapshot tags the snapshots created with it (as amazon.aws.ec2_ami sends them)."""
    instance = launch(ec2)
    image_id = ec2.create_image(
        InstanceId=instance,
        Name="golden-v1",
        TagSpecifications=[
            {"ResourceType": "image", "Tags": [{"Key": "selfheal:version", "Value": "1"}]},
            {"ResourceType": "snapshot", "Tags": [{"Key": "selfheal:stack", "Value": "demo"}]},
        ],
    )["ImageId"]
    [image] = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert image["Tags"] == [{"Key": "selfheal:version", "Value": "1"}]
    snapshot_id = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    [snapshot] = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert snapshot["Tags"] == [{"Key": "selfheal:stack", "Value": "demo"}]


# -- b. DisableMetricsCollection


@pytest.fixture
def autoscaling_group(aws: RunningSandbox, ec2: Any) -> Any:
    ec2.create_launch_template(
        LaunchTemplateName="web", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )
    autoscaling = aws.client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web-asg",
        LaunchTemplate={"LaunchTemplateName": "web"},
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        VPCZoneIdentifier=make_subnets(ec2, 1)[0],
    )
    autoscaling.enable_metrics_collection(
        AutoScalingGroupName="web-asg",
        Metrics=["GroupInServiceInstances", "GroupDesiredCapacity", "GroupMaxSize"],
        Granularity="1Minute",
    )
    return autoscaling


def _enabled_metrics(autoscaling: Any) -> list[str]:
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])
    return sorted(m["Metric"] for m in group["AutoScalingGroups"][0]["EnabledMetrics"])


def test_disable_metrics_collection_disables_the_listed_metrics(autoscaling_group: Any) -> None:
    """DisableMetricsCollection with Metrics disables just those group metrics."""
    autoscaling_group.disable_metrics_collection(
        AutoScalingGroupName="web-asg", Metrics=["GroupMaxSize", "GroupDesiredCapacity"]
    )
    assert _enabled_metrics(autoscaling_group) == ["GroupInServiceInstances"]


def test_disable_metrics_collection_without_metrics_disables_all(autoscaling_group: Any) -> None:
    """ "If you omit this property, all metrics are disabled" (what
    amazon.aws.autoscaling_group sends on every update with metrics_collection false)."""
    autoscaling_group.disable_metrics_collection(AutoScalingGroupName="web-asg")
    assert _enabled_metrics(autoscaling_group) == []


def test_disable_metrics_collection_on_an_unknown_group_is_a_validation_error(
    aws: RunningSandbox,
) -> None:
    """An unknown group name is a ValidationError, not a server error."""
    with pytest.raises(ClientError) as caught:
        aws.client("autoscaling").disable_metrics_collection(AutoScalingGroupName="nope")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "nope" in caught.value.response["Error"]["Message"]


# -- c. DeleteLaunchTemplateVersions


def _template_with_versions(ec2: Any, count: int) -> str:
    template_id = ec2.create_launch_template(
        LaunchTemplateName="web", LaunchTemplateData={"InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    for n in range(2, count + 1):
        ec2.create_launch_template_version(
            LaunchTemplateId=template_id,
            LaunchTemplateData={"InstanceType": "t3.micro"},
            VersionDescription=f"v{n}",
        )
    return template_id


def _version_numbers(ec2: Any, template_id: str) -> list[int]:
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)
    return [v["VersionNumber"] for v in versions["LaunchTemplateVersions"]]


def test_delete_launch_template_versions_deletes_non_default_versions(
    aws: RunningSandbox, ec2: Any
) -> None:
    """DeleteLaunchTemplateVersions deletes the given versions and lists each as
    successfully deleted (amazon.aws.ec2_launch_template state=absent does this first)."""
    template_id = _template_with_versions(ec2, 3)
    response = ec2.delete_launch_template_versions(LaunchTemplateName="web", Versions=["2", "3"])
    assert response["SuccessfullyDeletedLaunchTemplateVersions"] == [
        {"LaunchTemplateId": template_id, "LaunchTemplateName": "web", "VersionNumber": n}
        for n in (2, 3)
    ]
    assert response["UnsuccessfullyDeletedLaunchTemplateVersions"] == []
    assert _version_numbers(ec2, template_id) == [1]
    [template] = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"]
    assert template["LatestVersionNumber"] == 1
    ec2.delete_launch_template(LaunchTemplateId=template_id)  # the module's next call
    assert ec2.describe_launch_templates()["LaunchTemplates"] == []


def test_delete_launch_template_versions_refuses_the_default_and_unknown_versions(
    aws: RunningSandbox, ec2: Any
) -> None:
    """The default version cannot be deleted and unknown versions are reported; both
    per version in UnsuccessfullyDeletedLaunchTemplateVersions, not as a failed call."""
    template_id = _template_with_versions(ec2, 2)
    response = ec2.delete_launch_template_versions(
        LaunchTemplateId=template_id, Versions=["1", "2", "9"]
    )
    assert [v["VersionNumber"] for v in response["SuccessfullyDeletedLaunchTemplateVersions"]] == [
        2
    ]
    refused = {
        v["VersionNumber"]: v["ResponseError"]["Code"]
        for v in response["UnsuccessfullyDeletedLaunchTemplateVersions"]
    }
    assert refused == {1: "unexpectedError", 9: "launchTemplateVersionDoesNotExist"}
    assert _version_numbers(ec2, template_id) == [1]


def test_deleted_launch_template_versions_are_gone_and_numbers_not_reused(
    aws: RunningSandbox, ec2: Any
) -> None:
    """A deleted version cannot be described, made default or launched; the next
    version gets a new number; $Latest means the newest remaining version."""
    template_id = _template_with_versions(ec2, 3)
    ec2.delete_launch_template_versions(LaunchTemplateId=template_id, Versions=["3"])

    with pytest.raises(ClientError) as described:
        ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=["3"])
    assert described.value.response["Error"]["Code"] == "InvalidLaunchTemplateId.VersionNotFound"
    with pytest.raises(ClientError):
        ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion="3")
    [latest] = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=["$Latest"]
    )["LaunchTemplateVersions"]
    assert latest["VersionNumber"] == 2

    new = ec2.create_launch_template_version(
        LaunchTemplateId=template_id, LaunchTemplateData={"InstanceType": "t3.small"}
    )
    assert new["LaunchTemplateVersion"]["VersionNumber"] == 4
    assert _version_numbers(ec2, template_id) == [1, 2, 4]


# -- d. launch-template tags in LaunchTemplateData


def test_launch_template_data_never_contains_launch_template_tags(
    aws: RunningSandbox, ec2: Any
) -> None:
    """Template tags belong to the template (DescribeLaunchTemplates Tags), never to
    LaunchTemplateData; instance tag specifications stay in the data and apply."""
    instance_tags = {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}
    template_id = ec2.create_launch_template(
        LaunchTemplateName="web",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "TagSpecifications": [instance_tags]},
        TagSpecifications=[
            {"ResourceType": "launch-template", "Tags": [{"Key": "selfheal:stack", "Value": "d"}]}
        ],
    )["LaunchTemplate"]["LaunchTemplateId"]

    [version] = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)[
        "LaunchTemplateVersions"
    ]
    assert version["LaunchTemplateData"]["TagSpecifications"] == [instance_tags]
    [template] = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"]
    assert template["Tags"] == [{"Key": "selfheal:stack", "Value": "d"}]
    instance = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": template_id}, MinCount=1, MaxCount=1
    )["Instances"][0]
    assert {"Key": "Name", "Value": "web"} in instance["Tags"]


def test_launch_template_without_data_tags_has_no_tag_specifications(
    aws: RunningSandbox, ec2: Any
) -> None:
    """With only template tags, LaunchTemplateData has no TagSpecifications at all,
    so a module comparing the data it sent finds no difference."""
    data = {"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"}
    ec2.create_launch_template(
        LaunchTemplateName="web",
        LaunchTemplateData=data,
        TagSpecifications=[
            {"ResourceType": "launch-template", "Tags": [{"Key": "a", "Value": "b"}]}
        ],
    )
    [version] = ec2.describe_launch_template_versions(LaunchTemplateName="web")[
        "LaunchTemplateVersions"
    ]
    assert version["LaunchTemplateData"] == data


# -- e. Attributes of a new Application Load Balancer


def test_new_alb_reports_every_default_attribute(aws: RunningSandbox, ec2: Any) -> None:
    """DescribeLoadBalancerAttributes lists every attribute with its default
    (API_LoadBalancerAttribute: idle_timeout.timeout_seconds 60, routing.http2.enabled
    true); amazon.aws.elb_application_lb reads idle_timeout_timeout_seconds."""
    elbv2 = aws.client("elbv2")
    arn = elbv2.create_load_balancer(Name="web-alb", Subnets=make_subnets(ec2, 2))["LoadBalancers"][
        0
    ]["LoadBalancerArn"]
    attributes = {
        a["Key"]: a["Value"]
        for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    }
    assert attributes["idle_timeout.timeout_seconds"] == "60"
    assert attributes["routing.http2.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "false"
    assert attributes["deletion_protection.enabled"] == "false"


# -- f. Notification configurations of an Auto Scaling group

TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"


def test_notification_configuration_is_stored_replaced_and_deleted(autoscaling_group: Any) -> None:
    """PutNotificationConfiguration: one configuration per topic, a second Put for the
    same topic replaces its types; DeleteNotificationConfiguration removes it."""

    def configured() -> list[tuple[str, str]]:
        found = autoscaling_group.describe_notification_configurations(
            AutoScalingGroupNames=["web-asg"]
        )["NotificationConfigurations"]
        return sorted((c["TopicARN"], c["NotificationType"]) for c in found)

    launch_types = ["autoscaling:EC2_INSTANCE_LAUNCH", "autoscaling:EC2_INSTANCE_LAUNCH_ERROR"]
    autoscaling_group.put_notification_configuration(
        AutoScalingGroupName="web-asg", TopicARN=TOPIC, NotificationTypes=launch_types
    )
    assert configured() == [(TOPIC, t) for t in launch_types]
    autoscaling_group.put_notification_configuration(
        AutoScalingGroupName="web-asg",
        TopicARN=TOPIC,
        NotificationTypes=["autoscaling:EC2_INSTANCE_TERMINATE"],
    )
    assert configured() == [(TOPIC, "autoscaling:EC2_INSTANCE_TERMINATE")]
    autoscaling_group.delete_notification_configuration(
        AutoScalingGroupName="web-asg", TopicARN=TOPIC
    )
    assert configured() == []


def test_notification_configuration_of_an_unknown_group_is_a_validation_error(
    autoscaling_group: Any,
) -> None:
    with pytest.raises(ClientError, match="not found"):
        autoscaling_group.put_notification_configuration(
            AutoScalingGroupName="nope",
            TopicARN=TOPIC,
            NotificationTypes=["autoscaling:EC2_INSTANCE_LAUNCH"],
        )


# -- g. Order of an Auto Scaling group's tags


def test_group_tags_are_listed_sorted_by_key(autoscaling_group: Any) -> None:
    """DescribeAutoScalingGroups lists a group's tags sorted by key, whatever order
    they were created in (amazon.aws.autoscaling_group compares them as a list)."""
    autoscaling_group.create_or_update_tags(
        Tags=[
            {
                "ResourceId": "web-asg",
                "ResourceType": "auto-scaling-group",
                "Key": key,
                "Value": "v",
                "PropagateAtLaunch": True,
            }
            for key in ["selfheal:stack", "Name", "Team"]
        ]
    )
    group = autoscaling_group.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])
    assert [t["Key"] for t in group["AutoScalingGroups"][0]["Tags"]] == [
        "Name",
        "Team",
        "selfheal:stack",
    ]
