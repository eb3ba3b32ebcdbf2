"""Instance roots and AMI artifacts: the sandbox's EBS root volumes and snapshots."""

from __future__ import annotations

import base64
import time
from typing import Any

from conftest import RunningSandbox, launch, make_subnets


def _bake(aws: RunningSandbox, ec2: Any, files: dict[str, str]) -> tuple[str, str]:
    """Builder instance + files written into its root (as the webapp role does with a
    local connection) + CreateImage. Returns (builder id, image id)."""
    builder = launch(ec2)
    for name, text in files.items():
        path = aws.instance_root(builder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    image = ec2.create_image(InstanceId=builder, Name="golden-v1")["ImageId"]
    return builder, image


def test_run_instances_creates_an_empty_root_for_an_ami_the_sandbox_did_not_build(
    aws: RunningSandbox, ec2: Any
) -> None:
    """An instance boots from its AMI's root volume; a public AMI is a bare OS image.
    The root exists as soon as RunInstances returns."""
    instance = launch(ec2)
    root = aws.instance_root(instance)
    assert root.is_dir()
    assert list(root.iterdir()) == []


def test_run_instances_saves_decoded_user_data(aws: RunningSandbox, ec2: Any) -> None:
    """User data is given to the instance as the plain script (the API carries base64)."""
    script = "#!/bin/sh\necho 'hello from user data'\n"
    instance = launch(ec2, UserData=script)
    assert (aws.state_dir / "instances" / instance / "user-data").read_text() == script


def test_instance_without_user_data_has_no_user_data_file(aws: RunningSandbox, ec2: Any) -> None:
    """No user data given, none handed to the instance."""
    instance = launch(ec2)
    assert not (aws.state_dir / "instances" / instance / "user-data").exists()


def test_create_image_snapshots_instance_root(aws: RunningSandbox, ec2: Any) -> None:
    """CreateImage snapshots the root volume: later changes to the instance do not
    affect the image."""
    builder, image = _bake(aws, ec2, {"opt/app/app.py": "v1", "etc/app.conf": "port=8080"})
    (aws.instance_root(builder) / "opt/app/app.py").write_text("v2")
    (aws.instance_root(builder) / "added-later").write_text("x")

    artifact = aws.ami_root(image)
    assert (artifact / "opt/app/app.py").read_text() == "v1"
    assert (artifact / "etc/app.conf").read_text() == "port=8080"
    assert not (artifact / "added-later").exists()


def test_instance_launched_from_a_sandbox_ami_starts_from_its_artifact(
    aws: RunningSandbox, ec2: Any
) -> None:
    """An instance's root volume is a copy of its AMI's snapshot: writes on the
    instance change neither the image nor other instances."""
    _, image = _bake(aws, ec2, {"opt/app/app.py": "v1"})
    first, second = launch(ec2, image), launch(ec2, image)
    (aws.instance_root(first) / "opt/app/app.py").write_text("changed")

    assert (aws.instance_root(second) / "opt/app/app.py").read_text() == "v1"
    assert (aws.ami_root(image) / "opt/app/app.py").read_text() == "v1"


def test_terminate_removes_the_root_and_keeps_user_data(aws: RunningSandbox, ec2: Any) -> None:
    """The root EBS volume is deleted on termination (DeleteOnTermination=true)."""
    instance = launch(ec2, UserData="#!/bin/sh\n")
    ec2.terminate_instances(InstanceIds=[instance])
    assert not aws.instance_root(instance).exists()
    assert (aws.state_dir / "instances" / instance / "user-data").exists()


def test_deregister_image_removes_the_artifact_not_existing_instances(
    aws: RunningSandbox, ec2: Any
) -> None:
    """A deregistered AMI can launch no more instances; instances launched from it
    keep their own root volumes."""
    _, image = _bake(aws, ec2, {"app.py": "v1"})
    instance = launch(ec2, image)
    ec2.deregister_image(ImageId=image)
    assert not (aws.state_dir / "amis" / image).exists()
    assert (aws.instance_root(instance) / "app.py").read_text() == "v1"


def test_copy_image_copies_the_artifact(aws: RunningSandbox, ec2: Any) -> None:
    """CopyImage copies the AMI's snapshots into a new AMI."""
    _, image = _bake(aws, ec2, {"app.py": "v1"})
    copy = ec2.copy_image(SourceImageId=image, SourceRegion="us-east-1", Name="copy")["ImageId"]
    assert (aws.ami_root(copy) / "app.py").read_text() == "v1"


def test_auto_scaling_instances_get_roots_from_the_launch_template_ami(
    aws: RunningSandbox, ec2: Any
) -> None:
    """Auto Scaling launches from the launch template: its AMI and its user data; a
    scale-in terminates instances and so deletes their root volumes."""
    _, image = _bake(aws, ec2, {"app.py": "v1"})
    script = "#!/bin/sh\nexec python3 /app.py\n"
    ec2.create_launch_template(
        LaunchTemplateName="web",
        LaunchTemplateData={
            "ImageId": image,
            "InstanceType": "t3.micro",
            "UserData": base64.b64encode(script.encode()).decode(),
        },
    )
    autoscaling = aws.client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web-asg",
        LaunchTemplate={"LaunchTemplateName": "web", "Version": "$Latest"},
        MinSize=0,
        MaxSize=3,
        DesiredCapacity=2,
        VPCZoneIdentifier=",".join(make_subnets(ec2)),
    )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])
    members = [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]
    assert len(members) == 2
    for member in members:
        assert (aws.instance_root(member) / "app.py").read_text() == "v1"
        assert (aws.state_dir / "instances" / member / "user-data").read_text() == script

    # AWS scales in asynchronously: Terminating (after draining), then Terminated.
    autoscaling.set_desired_capacity(AutoScalingGroupName="web-asg", DesiredCapacity=0)
    deadline = time.monotonic() + 60
    while any(aws.instance_root(m).exists() for m in members) and time.monotonic() < deadline:
        time.sleep(0.2)
    for member in members:
        assert not aws.instance_root(member).exists()


def test_status_lists_instances_with_their_roots(aws: RunningSandbox, ec2: Any) -> None:
    """status shows each instance's state and root folder (none once terminated)."""
    running, terminated = launch(ec2), launch(ec2)
    ec2.terminate_instances(InstanceIds=[terminated])
    listed = {i["id"]: i for i in aws.status()["instances"]}
    assert listed[running]["state"] == "running"
    assert listed[running]["root"] == str(aws.instance_root(running))
    assert listed[terminated]["state"] == "terminated"
    assert listed[terminated]["root"] is None


def test_reset_clears_moto_state_instance_roots_and_artifacts(
    aws: RunningSandbox, ec2: Any
) -> None:
    """POST /moto-api/reset keeps working and forgets everything, on disk too."""
    builder, image = _bake(aws, ec2, {"app.py": "v1"})
    aws.reset()
    assert ec2.describe_instances()["Reservations"] == []
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    assert not (aws.state_dir / "instances" / builder).exists()
    assert not (aws.state_dir / "amis" / image).exists()
    assert launch(ec2)  # and moto serves requests after the reset


def test_sandbox_log_names_the_aws_rule_it_follows(aws: RunningSandbox, ec2: Any) -> None:
    """Users can tell sandbox mechanics from AWS behaviour: every action is logged
    with the rule it follows."""
    builder, image = _bake(aws, ec2, {"app.py": "v1"})
    instance = launch(ec2, image)
    ec2.terminate_instances(InstanceIds=[instance])
    log = aws.log()
    assert f"instance {builder} root created empty: ami-12c6146b has no sandbox artifact" in log
    assert f"image {image} artifact snapshotted from instance {builder} root (AWS:" in log
    assert f"instance {instance} root created from {image} artifact (AWS:" in log
    assert f"instance {instance} root removed on termination (AWS:" in log
