"""Run every chaos scenario several times against a private, time-scaled sandbox.

Deploys the default stack once (playbooks/site.yml, with a minimum of 3 instances so that
the idle stack does not scale in to 2 between game days) and sets the group back to 3 before
each game day (a scale-out leaves it larger): every game day starts with N = 3. It
runs playbooks/chaos.yml --runs times for each
scenario and prints, per scenario, the median and worst time to detect, time to
recover, scale-out time and success rate, in AWS seconds (wall seconds x time scale), read
from each game day's report.json. Worst is the highest time and the lowest success rate; a
measurement that timed out counts as worst and is shown as "timeout". Every game day's
report folder is kept under reports/recovery-<UTC time>/.

Run: .venv/bin/python benchmarks/recovery.py [--runs 5] [--time-scale 10] [--scenario ...]
     (make dev-collections first; about 1 minute per game day at time scale 10)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from sandbox_session import REPO, Sandbox, run_playbook, running_sandbox

BASELINE_CAPACITY = 3  # every game day starts from N = 3 (the default desired capacity)
SCENARIOS = ("terminate", "stop", "crash_app", "fail_health", "cpu_stress", "az_outage", "scale_out_load")
TIMES = ("detect", "recover", "scale_out")
# What each scenario is judged on (as playbooks/chaos.yml does): "-" in the other columns.
JUDGED = {"cpu_stress": (), "scale_out_load": ("scale_out",)}
HEALING = ("detect", "recover")


def reset_capacity(sandbox: Sandbox, desired: int, timeout: float = 120) -> None:
    """Put the group back to `desired`: a scale-out game day leaves it larger (up to max).
    Waits for the CPU alarm to leave ALARM first: while in ALARM it runs its scale-out
    policy again every minute (AWS), which would undo the reset."""
    cloudwatch = sandbox.client("cloudwatch")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alarms = cloudwatch.describe_alarms(AlarmNames=["selfheal-cpu-high"])["MetricAlarms"]
        if all(a["StateValue"] != "ALARM" for a in alarms):
            break
        time.sleep(1)
    sandbox.client("autoscaling").set_desired_capacity(AutoScalingGroupName="selfheal-asg", DesiredCapacity=desired)


def game_day(sandbox: Sandbox, scenario: str, reports: Path) -> dict:
    """One chaos.yml run (it waits for a healthy stack first); its report.json (written also
    when an SLO is missed)."""
    reset_capacity(sandbox, BASELINE_CAPACITY)
    before = set(reports.glob(f"*-{scenario}-*"))
    extra = ["-e", f"chaos_scenario={scenario}", "-e", f"selfheal_reports_dir={reports}"]
    proc = run_playbook(sandbox, "chaos.yml", extra)
    new = sorted(set(reports.glob(f"*-{scenario}-*")) - before)
    if not new:
        sys.exit(f"chaos.yml {scenario} wrote no report ({proc.returncode}):\n{proc.stdout[-3000:]}")
    report = json.loads((new[-1] / "report.json").read_text())
    report["playbook_rc"] = proc.returncode
    return report


def aws_seconds(report: dict, metric: str) -> float | None:
    """The metric in AWS seconds; None when it timed out; absent metrics are skipped by the caller."""
    measured = report["metrics"].get(metric) or {}
    return measured.get("aws_seconds") if measured.get("status") == "measured" else None


def summary(values: list[float | None], worst_is_high: bool = True) -> str:
    """'median / worst'; a timeout is worse than any number."""
    if not values:
        return "-"
    numbers = [v for v in values if v is not None]
    median = f"{statistics.median(numbers):.1f}" if len(numbers) * 2 > len(values) else "timeout"
    worst = "timeout" if len(numbers) < len(values) else f"{(max if worst_is_high else min)(numbers):.1f}"
    return f"{median} / {worst}"


def rate_summary(values: list[float]) -> str:
    return f"{statistics.median(values):.4f} / {min(values):.4f}"


def row(scenario: str, reports: list[dict]) -> list[str]:
    columns = [scenario, str(len(reports)), f"{sum(r['passed'] for r in reports)}/{len(reports)}"]
    for metric in TIMES:
        judged = metric in JUDGED.get(scenario, HEALING)
        columns.append(summary([aws_seconds(r, metric) for r in reports]) if judged else "-")
    columns.append(rate_summary([r["requests"]["success_rate"] for r in reports]))
    columns.append(str(max(r["requests"]["failed"] for r in reports)))
    ratios = [r["requests"].get("failed_over_floor") for r in reports]
    abrupt = scenario in ("crash_app", "terminate", "stop") and None not in ratios
    columns.append(f"{max(ratios):.2f}" if abrupt else "-")
    return columns


def print_table(results: dict[str, list[dict]], time_scale: float) -> None:
    header = ["scenario", "runs", "SLOs met", "TTD", "TTR", "scale-out", "success rate", "max failed", "failed/floor"]
    table = [header, ["---"] * len(header)] + [row(s, r) for s, r in results.items()]
    print(f"time scale {time_scale:g}; times in AWS seconds, median / worst; success rate median / lowest;")
    print("failed/floor: the highest ratio of failed requests after the fault to r x TTD / N")
    for line in table:
        print("| " + " | ".join(line) + " |")


def load_reports(folder: Path) -> dict[str, list[dict]]:
    """The reports of an earlier run, by scenario, in SCENARIOS order."""
    results: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*/report.json")):
        report = json.loads(path.read_text())
        results.setdefault(report["scenario"], []).append(report)
    return {s: results[s] for s in SCENARIOS if s in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--time-scale", type=float, default=10)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    parser.add_argument("--table", type=Path, metavar="DIR", help="only print the table of the reports in DIR")
    args = parser.parse_args()
    if args.table:
        print_table(load_reports(args.table), args.time_scale)
        return
    results: dict[str, list[dict]] = {}
    reports = REPO / "reports" / time.strftime("recovery-%Y%m%dT%H%M%SZ", time.gmtime())
    reports.mkdir(parents=True)
    with (
        tempfile.TemporaryDirectory(prefix="selfheal-recovery-") as state,
        running_sandbox(Path(state), args.time_scale) as sandbox,
    ):
        site = run_playbook(sandbox, "site.yml", ["-e", "autoscaling_min_size=3"])
        if site.returncode != 0:
            sys.exit(f"site.yml failed:\n{site.stdout[-3000:]}")
        for scenario in args.scenario or SCENARIOS:
            for run in range(1, args.runs + 1):
                report = game_day(sandbox, scenario, reports)
                results.setdefault(scenario, []).append(report)
                print(f"{scenario} run {run}: passed={report['passed']}", file=sys.stderr, flush=True)
        run_playbook(sandbox, "teardown.yml")
    print(f"reports: {reports}")
    print_table(results, args.time_scale)


if __name__ == "__main__":
    main()
