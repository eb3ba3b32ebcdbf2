"""selfheal.aws.stack_health_info against moto and a local HTTP answerer."""

from moto_stack import make_stack

from ansible_collections.selfheal.aws.plugins.modules import stack_health_info


def test_healthy_stack_reports_counts_targets_and_who_answered(aws, run_module, web_app):
    group = make_stack(aws)
    result = run_module(
        stack_health_info.main, {"autoscaling_group_name": group["name"], "url": web_app.url, "probes": 2}
    )
    assert result["healthy"] is True, result["problems"]
    assert result["problems"] == []
    assert result["autoscaling_group"]["desired"] == 3
    assert result["autoscaling_group"]["in_service"] == 3
    assert result["autoscaling_group"]["healthy_targets"] == 3
    assert sorted(t["id"] for t in result["targets"]) == group["instances"]
    assert [p["instance_id"] for p in result["probes"]] == ["i-answering", "i-answering"]
    assert all(p["status"] == 200 and p["latency"] >= 0 for p in result["probes"])


def test_target_groups_by_name(aws, run_module, web_app):
    group = make_stack(aws)
    result = run_module(
        stack_health_info.main,
        {"autoscaling_group_name": group["name"], "target_groups": ["selfheal-asg-tg"], "probes": 0},
    )
    assert result["autoscaling_group"]["healthy_targets"] == 3


def test_wait_fails_with_an_account_of_what_is_wrong(aws, run_module, web_app):
    group = make_stack(aws)
    aws["elbv2"].deregister_targets(
        TargetGroupArn=group["tg_arn"], Targets=[{"Id": group["instances"][0], "Port": 8080}]
    )
    web_app.status = 503
    args = {"autoscaling_group_name": group["name"], "url": web_app.url, "wait": True, "timeout": 1, "interval": 0.3}
    result = run_module(stack_health_info.main, args)
    assert result["failed"] is True
    assert result["checks"] >= 2
    assert result["msg"].startswith("The stack is not healthy after 1 s (timeout 1 s): 2 healthy targets, desired 3")
    assert "3 of 3 probes failed (HTTP 503)" in result["msg"]


def test_without_wait_an_unhealthy_stack_is_reported_not_failed(aws, run_module, web_app):
    group = make_stack(aws)
    web_app.status = 502
    result = run_module(
        stack_health_info.main, {"autoscaling_group_name": group["name"], "url": web_app.url, "probes": 1}
    )
    assert "failed" not in result
    assert result["healthy"] is False
    assert result["problems"] == ["1 of 1 probes failed (HTTP 502)"]
