"""A selfheal-like stack in moto: VPC, subnets in 3 AZs, target group, tagged ASG."""

REGION = "us-east-1"
STACK = "selfheal"


def make_stack(aws, name="selfheal-asg", stack=STACK, desired=3, tag_stack=True):
    """VPC with 3 subnets, target group and a 3-instance ASG tagged selfheal:stack (propagated)."""
    ec2, autoscaling, elbv2 = aws["ec2"], aws["autoscaling"], aws["elbv2"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
        for n, z in enumerate("abc")
    ]
    image = "ami-12c6146b"  # moto does not validate AMI ids; describing its catalogue costs seconds
    ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"}
    )
    tg = elbv2.create_target_group(Name=f"{name}-tg"[:32], Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance")
    tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
    tags = [{"Key": "selfheal:stack", "Value": stack, "PropagateAtLaunch": True}] if tag_stack else []
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"{name}-lt", "Version": "$Latest"},
        MinSize=1,
        MaxSize=6,
        DesiredCapacity=desired,
        VPCZoneIdentifier=",".join(subnets),
        TargetGroupARNs=[tg_arn],
        Tags=[dict(t, ResourceId=name, ResourceType="auto-scaling-group") for t in tags],
    )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    elbv2.register_targets(
        TargetGroupArn=tg_arn, Targets=[{"Id": i["InstanceId"], "Port": 8080} for i in group["Instances"]]
    )
    return {
        "name": name,
        "subnets": subnets,
        "tg_arn": tg_arn,
        "instances": sorted(i["InstanceId"] for i in group["Instances"]),
    }


def running(aws, ids):
    described = aws["ec2"].describe_instances(InstanceIds=ids)
    return {i["InstanceId"]: i["State"]["Name"] for r in described["Reservations"] for i in r["Instances"]}
