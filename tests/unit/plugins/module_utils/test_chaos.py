"""Guards and instance selection of chaos.py: refused means nothing is returned to act on."""

import pytest

from ansible_collections.selfheal.aws.plugins.module_utils import chaos

CANDIDATES = [{"id": f"i-{n}", "az": f"us-east-1{'abc'[n % 3]}"} for n in range(9)]


def test_seeded_random_selection_is_reproducible_and_order_independent():
    first = chaos.select_instances(CANDIDATES, count=3, seed=7)
    again = chaos.select_instances(list(reversed(CANDIDATES)), count=3, seed=7)
    assert first == again
    assert len(first) == 3
    others = {tuple(c["id"] for c in chaos.select_instances(CANDIDATES, count=3, seed=s)) for s in range(10)}
    assert len(others) > 1  # the seed does choose


def test_percent_rounds_up_and_zone_takes_the_whole_zone():
    assert len(chaos.select_instances(CANDIDATES, percent=20, seed=1)) == 2
    assert {c["id"] for c in chaos.select_instances(CANDIDATES, availability_zone="us-east-1b")} == {
        "i-1",
        "i-4",
        "i-7",
    }


def test_default_selection_is_one_instance():
    assert len(chaos.select_instances(CANDIDATES, seed=3)) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"instance_ids": ["i-99"]}, "instance_ids"),
        ({"availability_zone": "eu-west-1a"}, "availability_zone"),
        ({"count": 10}, "count"),
        ({"percent": 150}, "percent"),
        ({"count": 1, "percent": 10}, "count and percent"),
    ],
)
def test_bad_selection_names_the_field(kwargs, field):
    with pytest.raises(chaos.ChaosError, match=rf"^{field}: "):
        chaos.select_instances(CANDIDATES, **kwargs)


def test_blast_radius_defaults_to_a_third_of_desired():
    assert chaos.blast_radius_limit(3) == 1
    assert chaos.blast_radius_limit(9) == 3
    assert chaos.check_blast_radius(CANDIDATES[:1], 3) == 1
    with pytest.raises(chaos.ChaosError, match=r"^max_blast_radius: 2 instances selected, but at most 1 of desired 3"):
        chaos.check_blast_radius(CANDIDATES[:2], 3)


def test_blast_radius_can_be_raised_explicitly():
    assert chaos.check_blast_radius(CANDIDATES[:2], 3, "2/3") == 2
    assert chaos.blast_radius_limit(4, "50%") == 2
    with pytest.raises(chaos.ChaosError, match=r"^max_blast_radius: '150%' must be above 0 and at most 1"):
        chaos.blast_radius_limit(3, "150%")
    with pytest.raises(chaos.ChaosError, match=r"^max_blast_radius: 'all' is not a fraction"):
        chaos.blast_radius_limit(3, "all")


def group(tags):
    return {"AutoScalingGroupName": "other-asg", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def test_group_of_another_stack_is_refused():
    with pytest.raises(chaos.ChaosError, match=r"^autoscaling_group_name: 'other-asg' is tagged selfheal:stack='prod'"):
        chaos.guard_group(group({"selfheal:stack": "prod"}), "selfheal")
    with pytest.raises(chaos.ChaosError, match=r"^autoscaling_group_name: no such"):
        chaos.guard_group(None, "selfheal")
    chaos.guard_group(group({"selfheal:stack": "selfheal"}), "selfheal")


def test_untagged_instance_in_the_group_is_refused():
    described = {"i-1": {"tags": {"selfheal:stack": "selfheal"}}, "i-2": {"tags": {}}}
    with pytest.raises(chaos.ChaosError, match=r"instances i-2 of 'g' are not tagged selfheal:stack=selfheal"):
        chaos.guard_instances("g", ["i-1", "i-2"], described, "selfheal")


def test_floor_refuses_a_fault_that_would_go_below_min_healthy():
    with pytest.raises(
        chaos.ChaosError, match=r"^min_healthy: 3 healthy targets now, 1 after hitting 2; below the floor of 2"
    ):
        chaos.check_floor(3, CANDIDATES[:2], 2, "terminate")
    chaos.check_floor(3, CANDIDATES[:1], 2, "terminate")
    chaos.check_floor(1, CANDIDATES[:1], 2, "cpu_stress")  # stress removes no capacity


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"action": "explode"},
            r"^action: 'explode' is not one of terminate, stop, reboot, crash_app, fail_health, cpu_stress, az_outage",
        ),
        ({"action": "cpu_stress", "duration": 3600}, r"^duration: 3600 must be between 1 and 600"),
        ({"action": "stop", "min_healthy": -1}, r"^min_healthy: -1"),
    ],
)
def test_bad_fault_parameters_name_the_field(params, message):
    with pytest.raises(chaos.ChaosError, match=message):
        chaos.check_fault_params(params)
