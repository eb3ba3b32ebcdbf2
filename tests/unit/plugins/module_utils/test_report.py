"""report.json, report.md and timeline.png from a synthetic game day."""

import json
import os
import struct
from pathlib import Path

from ansible_collections.selfheal.aws.plugins.module_utils import recovery, report


def synthetic(recovers=True, time_scale=5.0):
    """A 90 s run at 20 req/s: one of 3 instances fails at t0+20, detected at +24, replaced, healthy at +60."""
    t0 = 1_795_600_000.0
    samples = []
    for second in range(0, 91, 2):
        t = t0 + second
        healthy, unhealthy, instances = 3, 0, ["i-1", "i-2", "i-3"]
        if 24 <= second < 60 or (second >= 60 and not recovers):
            healthy, unhealthy = 2, 1 if second < 30 else 0
        if second >= 30:
            instances = ["i-2", "i-3", "i-4"]
        samples.append(
            {
                "t": t,
                "desired": 3,
                "in_service": 3 if second < 26 or second >= 32 else 2,
                "healthy": healthy,
                "unhealthy": unhealthy,
                "instances": instances,
                "probe_ok": True,
                "alarms": {},
            }
        )
    requests = []
    for i in range(90 * 20):
        t = t0 + i / 20
        failed = 20 <= t - t0 < 24 and i % 3 == 0
        requests.append(
            {"t": t, "ok": not failed, "status": 502 if failed else 200, "latency": 0.002 + (0.05 if failed else 0)}
        )
    return recovery.build_result(
        "selfheal",
        "fail_health",
        samples,
        requests,
        t0,
        t0 + 90,
        fault_time=t0 + 20,
        fault={"action": "fail_health", "done": [{"instance_id": "i-1"}]},
        rate=20,
        time_scale=time_scale,
        slos={"max_ttd": 25, "max_ttr": 300, "min_success_rate": 0.99},
    )


def png_size(path):
    with open(path, "rb") as handle:
        header = handle.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_report_writes_json_markdown_and_png(tmp_path):
    result = synthetic()
    paths = report.write_report(str(tmp_path), result)
    assert os.path.basename(paths["dir"]) == "selfheal-fail_health-20261125T094640Z"
    assert json.loads(Path(paths["json"]).read_text())["metrics"]["detect"]["aws_seconds"] == 20.0
    text = Path(paths["markdown"]).read_text()
    assert "# Game day: selfheal / fail_health — FAIL" in text  # TTR 40 wall = 200 AWS s passes, success rate fails
    assert "4.0 s wall = **20.0 AWS s**" in text
    assert "| min_success_rate | 0.99 |" in text
    assert png_size(paths["png"]) == (1000, 800)
    if os.environ.get("SELFHEAL_KEEP_PNG"):  # to look at it: SELFHEAL_KEEP_PNG=/tmp/x.png make units
        os.replace(paths["png"], os.environ["SELFHEAL_KEEP_PNG"])


def test_report_of_a_fault_that_never_recovers_says_timeout(tmp_path):
    paths = report.write_report(str(tmp_path), synthetic(recovers=False, time_scale=1))
    text = Path(paths["markdown"]).read_text()
    assert "**Time to recover**: **TIMEOUT**" in text
    assert "| max_ttr | 300 | timeout | **FAIL** |" in text
    assert png_size(paths["png"]) == (1000, 800)
