"""selfheal.aws.game_day: bounded input, guards before load, a short real run with a report."""

import asyncio
import json
from pathlib import Path

import pytest
from moto_stack import STACK, make_stack, running

from ansible_collections.selfheal.aws.plugins.modules import game_day


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"rate": 500}, "rate: 500.0 requests/s is outside 0 < rate <= 200"),
        ({"duration": 3600}, "duration: 3600 s is outside 0 < duration <= 600"),
        ({"request_timeout": 0}, "request_timeout: 0.0 s is outside 0 < request_timeout <= 60"),
        ({"fault_after": 200, "duration": 100}, "fault_after: 200.0 must be 0 or more and below duration 100"),
        ({"url": "ftp://example.com/"}, "url: 'ftp://example.com/' must be an http:// or https:// URL"),
    ],
)
def test_load_beyond_the_caps_is_refused_naming_the_field(aws, run_module, web_app, extra, message):
    group = make_stack(aws)
    args = {"stack": STACK, "autoscaling_group_name": group["name"], "url": web_app.url, **extra}
    result = run_module(game_day.main, args)
    assert result["failed"] is True
    assert result["msg"] == message


def test_fault_guards_run_before_any_request(aws, run_module, web_app):
    group = make_stack(aws, stack="production")
    args = {
        "stack": STACK,
        "autoscaling_group_name": group["name"],
        "url": web_app.url,
        "fault": {"action": "terminate"},
    }
    result = run_module(game_day.main, args)
    assert result["failed"] is True
    assert result["msg"].startswith("autoscaling_group_name: 'selfheal-asg' is tagged selfheal:stack='production'")
    assert set(running(aws, group["instances"]).values()) == {"running"}


def test_short_game_day_sends_the_load_injects_the_fault_and_writes_the_report(aws, run_module, web_app, tmp_path):
    group = make_stack(aws)
    args = {
        "stack": STACK,
        "autoscaling_group_name": group["name"],
        "url": web_app.url,
        "rate": 20,
        "duration": 3,
        "fault_after": 1,
        "sample_interval": 0.5,
        "time_scale": 5,
        "fault": {"action": "terminate", "seed": 3},
        "slos": {"max_ttd": 11, "min_success_rate": 0.99},
        "report_dir": str(tmp_path),
    }
    result = run_module(game_day.main, args)
    assert "failed" not in result, result.get("msg")
    assert result["requests"]["sent"] == 60
    assert result["requests"]["failed"] == 0
    (done,) = result["fault"]["done"]
    assert done["action"] == "terminate"
    assert abs(done["at"]["epoch"] - result["fault_at"]["epoch"]) < 1
    assert result["metrics"]["detect"]["status"] in ("measured", "timeout")
    if result["metrics"]["detect"]["status"] == "measured":
        assert result["metrics"]["detect"]["aws_seconds"] == pytest.approx(
            5 * result["metrics"]["detect"]["seconds"], abs=0.01
        )
    assert len(result["timeline"]["samples"]) >= 4
    report_dir = Path(result["report"]["dir"])
    assert report_dir.name.startswith("selfheal-terminate-")
    assert json.loads((report_dir / "report.json").read_text())["requests"]["sent"] == 60
    assert (report_dir / "report.md").read_text().startswith("# Game day: selfheal / terminate")
    assert (report_dir / "timeline.png").stat().st_size > 10_000


def test_check_mode_selects_but_sends_nothing(aws, run_module, web_app):
    group = make_stack(aws)
    args = {
        "stack": STACK,
        "autoscaling_group_name": group["name"],
        "url": web_app.url,
        "fault": {"action": "stop", "seed": 1},
        "_ansible_check_mode": True,
    }
    result = run_module(game_day.main, args)
    assert result["changed"] is False
    assert len(result["would_select"]) == 1
    assert set(running(aws, group["instances"]).values()) == {"running"}


class ScriptedGameDay(game_day.GameDay):
    """A game day whose stack samples come from a script: (healthy, unhealthy, probe_ok) per sample."""

    def __init__(self, script):
        super().__init__({"stop_after_recovery": 0, "sample_interval": 0}, aws=None, target_group_arns=None)
        self.script = list(script)

    # probe and sample run side by side: both read the script line of the sample being taken
    # (past the end, the last line again: the sampler may take one more before it stops)
    def line(self):
        return self.script[min(len(self.samples), len(self.script) - 1)]

    async def probe(self, client):
        return self.line()[2]

    def sample(self):
        healthy, unhealthy, _probe_ok = self.line()
        clock = 101.0 + len(self.samples)
        if clock == 102:
            self.fault_time = 101.5  # the fault lands between the 1st and the 2nd sample
        taken = {"t": clock, "desired": 3, "in_service": 3, "healthy": healthy, "unhealthy": unhealthy}
        return taken | {"instances": ["i-1", "i-2", "i-3"]}


def run_scripted(script):
    day = ScriptedGameDay(script)

    async def until_stopped_or_script_done():
        stop = asyncio.Event()
        sampler = asyncio.ensure_future(day.sampler(None, stop))
        while not stop.is_set() and len(day.samples) < len(day.script):
            await asyncio.sleep(0)
        stop.set()
        await sampler

    asyncio.run(until_stopped_or_script_done())
    return day


def test_a_lost_probe_before_detection_does_not_end_the_game_day():
    # healthy before; a probe hits the crashed app before the ALB notices; then detection and recovery
    day = run_scripted(
        [(3, 0, True), (3, 0, False), (3, 0, True), (2, 1, True), (2, 0, True), (3, 0, True), (3, 0, True)]
    )
    assert day.recovered_at == 106  # not 104, the first sample after the lost probe


def test_a_game_day_without_detection_never_counts_as_recovered():
    day = run_scripted([(3, 0, True), (3, 0, False), (3, 0, True), (3, 0, True)])
    assert day.recovered_at is None


def test_a_fault_time_moved_later_measures_recovery_from_the_new_time():
    # an SSM fault applied later than the API call: the degraded sample before it is the baseline's past
    day = ScriptedGameDay([(2, 1, True), (2, 1, True), (3, 0, True), (2, 1, True), (3, 0, True)])
    for _index in range(3):
        day.samples.append(day.sample())
        day.follow_recovery(day.samples[-1])
    assert day.recovered_at == 103
    day.fault_time = 103.5
    for _index in range(2):
        day.samples.append(day.sample())
        day.follow_recovery(day.samples[-1])
    assert day.recovered_at == 105
