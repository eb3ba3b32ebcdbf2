"""selfheal.aws.chaos against moto: the guards refuse and do nothing; check mode does nothing."""

import pytest
from moto_stack import STACK, make_stack, running

from ansible_collections.selfheal.aws.plugins.modules import chaos


def args(group, **extra):
    return {"stack": STACK, "autoscaling_group_name": group["name"], **extra}


def test_terminate_one_instance_returns_what_it_did_with_timestamps(aws, run_module):
    group = make_stack(aws)
    result = run_module(chaos.main, args(group, action="terminate", seed=1))
    assert result["changed"] is True
    (done,) = result["done"]
    assert done["action"] == "terminate"
    assert done["instance_id"] in group["instances"]
    assert set(done["at"]) == {"utc", "epoch"}
    assert done["at"]["utc"].endswith("+00:00")
    assert running(aws, [done["instance_id"]])[done["instance_id"]] in ("shutting-down", "terminated")


def test_seeded_selection_picks_the_same_instance_in_check_mode(aws, run_module):
    group = make_stack(aws)
    first = run_module(chaos.main, args(group, action="stop", seed=5, _ansible_check_mode=True))
    second = run_module(chaos.main, args(group, action="stop", seed=5, _ansible_check_mode=True))
    assert first["selected"] == second["selected"]


def test_check_mode_does_nothing(aws, run_module):
    group = make_stack(aws)
    result = run_module(chaos.main, args(group, action="stop", seed=5, _ansible_check_mode=True))
    assert result["changed"] is True
    assert result["done"] == []
    assert [w["instance_id"] for w in result["would_do"]] == [s["id"] for s in result["selected"]]
    assert set(running(aws, group["instances"]).values()) == {"running"}


def test_group_of_another_stack_is_refused_and_nothing_is_done(aws, run_module):
    group = make_stack(aws, stack="production")
    result = run_module(chaos.main, args(group, action="terminate"))
    assert result["failed"] is True
    assert result["msg"].startswith("autoscaling_group_name: 'selfheal-asg' is tagged selfheal:stack='production'")
    assert result["done"] == []
    assert set(running(aws, group["instances"]).values()) == {"running"}


def test_untagged_group_is_refused(aws, run_module):
    group = make_stack(aws, tag_stack=False)
    result = run_module(chaos.main, args(group, action="stop"))
    assert result["failed"] is True
    assert "autoscaling_group_name" in result["msg"]
    assert set(running(aws, group["instances"]).values()) == {"running"}


def test_untagged_instance_in_the_group_is_refused(aws, run_module):
    group = make_stack(aws)
    aws["ec2"].delete_tags(Resources=[group["instances"][0]], Tags=[{"Key": "selfheal:stack"}])
    result = run_module(chaos.main, args(group, action="stop", instance_ids=[group["instances"][1]]))
    assert result["failed"] is True
    assert (
        f"instances {group['instances'][0]} of 'selfheal-asg' are not tagged selfheal:stack=selfheal" in result["msg"]
    )
    assert set(running(aws, group["instances"]).values()) == {"running"}


def test_unknown_group_is_refused(aws, run_module):
    make_stack(aws)
    result = run_module(chaos.main, {"stack": STACK, "autoscaling_group_name": "someone-elses-asg", "action": "stop"})
    assert result["failed"] is True
    assert result["msg"] == "autoscaling_group_name: no such Auto Scaling group"


def test_instance_outside_the_group_is_refused(aws, run_module):
    group = make_stack(aws)
    other = make_stack(aws, name="other-asg")
    result = run_module(chaos.main, args(group, action="terminate", instance_ids=[other["instances"][0]]))
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"instance_ids: {other['instances'][0]} not in group 'selfheal-asg' of stack 'selfheal'"
    )
    assert set(running(aws, other["instances"]).values()) == {"running"}


def test_blast_radius_above_the_limit_is_refused_unless_raised(aws, run_module):
    group = make_stack(aws)
    refused = run_module(chaos.main, args(group, action="stop", count=2))
    assert refused["failed"] is True
    assert refused["msg"].startswith("max_blast_radius: 2 instances selected, but at most 1 of desired 3")
    assert set(running(aws, group["instances"]).values()) == {"running"}
    allowed = run_module(
        chaos.main, args(group, action="stop", count=2, max_blast_radius="2/3", _ansible_check_mode=True)
    )
    assert len(allowed["would_do"]) == 2


def test_unknown_action_names_the_field_and_the_allowed_values(aws, run_module):
    group = make_stack(aws)
    result = run_module(chaos.main, args(group, action="explode"))
    assert result["failed"] is True
    assert "action" in result["msg"]
    assert "terminate, stop, reboot, crash_app, fail_health, cpu_stress, az_outage" in result["msg"]


def test_floor_refuses_a_fault_below_min_healthy(aws, run_module):
    group = make_stack(aws)
    result = run_module(chaos.main, args(group, action="terminate", min_healthy=3))
    assert result["failed"] is True
    assert result["msg"].startswith("min_healthy: 3 healthy targets now, 2 after hitting 1")
    assert set(running(aws, group["instances"]).values()) == {"running"}


def test_az_outage_removes_the_zone_and_revert_puts_it_back(aws, run_module):
    group = make_stack(aws)
    # moto puts every instance in the first subnet: the whole group is in us-east-1a
    outage = run_module(
        chaos.main, args(group, action="az_outage", availability_zone="us-east-1a", max_blast_radius="1")
    )
    assert outage["changed"] is True, outage.get("msg")
    assert outage["done"][0]["action"] == "az_outage"
    removed = outage["done"][0]["removed_subnets"]
    assert removed == [group["subnets"][0]]
    described = aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[group["name"]])[
        "AutoScalingGroups"
    ][0]
    assert removed[0] not in described["VPCZoneIdentifier"]
    reverted = run_module(chaos.main, args(group, action="az_outage", revert=True))
    assert reverted["reverted"][0]["restored_subnets"] == removed
    described = aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[group["name"]])[
        "AutoScalingGroups"
    ][0]
    assert set(described["VPCZoneIdentifier"].split(",")) == set(group["subnets"])


@pytest.mark.parametrize("action", ["terminate", "reboot"])
def test_irreversible_actions_cannot_be_reverted(aws, run_module, action):
    group = make_stack(aws)
    result = run_module(chaos.main, args(group, action=action, revert=True))
    assert result["failed"] is True
    assert result["msg"] == f"action: {action} cannot be reverted; reversible: stop, fail_health, cpu_stress, az_outage"
